//! Telegram update ids (`UPD#`) and queued effects' keys (`EFFECT#`): what makes a retry harmless.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::codec::*;
use super::{DynamoStore, Query, fault, held, keys};
use crate::adapters::stored::ts;
use crate::ports::*;

#[async_trait]
impl UpdateLog for DynamoStore {
    async fn claim_update(&self, update_id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.claim(&Claimed::update(update_id), now, UPDATE_LEASE, UPDATE_RETENTION).await
    }

    async fn complete_update(&self, update_id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.complete(&Claimed::update(update_id), now, UPDATE_RETENTION).await
    }

    async fn release_update(&self, update_id: i64) -> Result<(), StoreError> {
        self.release(&Claimed::update(update_id)).await
    }
}

#[async_trait]
impl EffectLog for DynamoStore {
    async fn claim_effect(&self, key: &str, now: DateTime<Utc>, lease: Duration) -> Result<bool, StoreError> {
        self.claim(&Claimed::effect(key), now, lease, EFFECT_RETENTION).await
    }

    async fn complete_effect(&self, key: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.complete(&Claimed::effect(key), now, EFFECT_RETENTION).await
    }

    async fn release_effect(&self, key: &str) -> Result<(), StoreError> {
        self.release(&Claimed::effect(key)).await
    }
}

/// The item of something done once (an update, an effect): its key.
struct Claimed {
    pk: String,
    sk: &'static str,
}

impl Claimed {
    fn update(update_id: i64) -> Self {
        Self { pk: keys::update(update_id), sk: "UPD" }
    }
    fn effect(key: &str) -> Self {
        Self { pk: keys::effect(key), sk: "EFFECT" }
    }
}

impl DynamoStore {
    /// Takes the item for `lease` unless it is done or leased to someone else; one past its TTL
    /// is gone, whether or not DynamoDB has deleted it yet.
    async fn claim(
        &self,
        c: &Claimed,
        now: DateTime<Utc>,
        lease: Duration,
        keep: Duration,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&c.pk))
            .item("sk", s(c.sk))
            .item("done", b(false))
            .item("lease_until", s(ts(now + lease)))
            .item("ttl", n((now + keep).timestamp()))
            .condition_expression("attribute_not_exists(pk) OR #ttl < :epoch OR (done = :no AND lease_until < :now)")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":no", b(false))
            .expression_attribute_values(":now", s(ts(now)))
            .expression_attribute_values(":epoch", n(now.timestamp()))
            .send()
            .await;
        held(result)
    }

    async fn complete(&self, c: &Claimed, now: DateTime<Utc>, keep: Duration) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&c.pk))
            .key("sk", s(c.sk))
            .update_expression("SET done = :yes, #ttl = :ttl")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":yes", b(true))
            .expression_attribute_values(":ttl", n((now + keep).timestamp()))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }

    /// Gives the claim back, so that a retry is processed; a done item stays done.
    async fn release(&self, c: &Claimed) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&c.pk))
            .key("sk", s(c.sk))
            .condition_expression("done = :no")
            .expression_attribute_values(":no", b(false))
            .send()
            .await;
        held(result).map(drop)
    }
}

#[async_trait]
impl EffectOutbox for DynamoStore {
    async fn pending_intents(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Envelope>, StoreError> {
        // The partition holds only unsettled intents: reading it whole is reading what is due.
        let items = self.query(Query::on(None, "pk = :p", vec![(":p", s(keys::INTENTS))]).oldest_first()).await?;
        let mut due: Vec<(String, Envelope)> = Vec::new();
        for item in &items {
            let at = get_s(item, "created_at")?;
            if at < ts(before) {
                due.push((at, intent_from(item)?));
            }
        }
        due.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(due.into_iter().take(limit as usize).map(|(_, e)| e).collect())
    }

    async fn settle_intent(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::INTENTS))
            .key("sk", s(key))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }
}

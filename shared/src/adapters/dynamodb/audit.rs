//! The audit log (`AUDIT#`) and the abuse limits' counters (`RATE#`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::codec::*;
use super::{DynamoStore, Query, fault, keys};
use crate::domain::AuditEntry;
use crate::ports::*;

#[async_trait]
impl AuditLog for DynamoStore {
    async fn record(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(audit_item(e)))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }

    async fn audit(&self, of: AuditOf<'_>, p: &PageRequest) -> Result<Page<AuditEntry>, StoreError> {
        let (index, pk_attr, sk_attr, pk) = match of {
            AuditOf::User(u) => ("gsi1", "gsi1pk", "gsi1sk", keys::audit_of_user(u)),
            AuditOf::Action(a) => ("gsi2", "gsi2pk", "gsi2sk", keys::audit_of_action(a.as_str())),
            AuditOf::Everyone => ("gsi3", "gsi3pk", "gsi3sk", keys::ALL_AUDIT.to_owned()),
        };
        let mut values = vec![(":p", s(pk))];
        let condition = match &p.after {
            Some(after) => {
                values.push((":c", s(after.as_str())));
                format!("{pk_attr} = :p AND {sk_attr} < :c")
            }
            None => format!("{pk_attr} = :p"),
        };
        let items = self.query(Query::on(Some(index), &condition, values).limit(p.limit + 1)).await?;
        let entries = items.iter().map(audit_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::of(entries, p.limit, |e| e.id.to_string()))
    }
}

#[async_trait]
impl RateLimits for DynamoStore {
    async fn hit(&self, key: &str, until: DateTime<Utc>) -> Result<u32, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::rate(key)))
            .key("sk", s("RATE"))
            .update_expression("ADD #v :one SET #ttl = :ttl")
            .expression_attribute_names("#v", "value")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":ttl", n(until.timestamp()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(fault)?;
        get_n(&out.attributes.unwrap_or_default(), "value")
    }

    async fn hits(&self, key: &str, now: DateTime<Utc>) -> Result<u32, StoreError> {
        match self.get(&keys::rate(key), "RATE").await? {
            Some(item) if alive(&item, now) => get_n(&item, "value"),
            _ => Ok(0),
        }
    }
}

//! The scheduled jobs' reads and writes, statistics (`COUNTER#`) and the job log (`JOB#`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

use super::codec::*;
use super::{Cancelled, DynamoStore, Query, fault, is_condition, keys};
use crate::adapters::stored::{day_bucket, hour_bucket, ts};
use crate::domain::{Membership, MembershipId, MembershipStatus, TokenStatus, UserId};
use crate::ports::*;

#[async_trait]
impl LifecycleStore for DynamoStore {
    async fn expire_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut expired = 0;
        for status in [TokenStatus::Pending, TokenStatus::Bound] {
            let pk = keys::tokens_by_status(status.as_str());
            let items = self
                .query(
                    Query::on(
                        Some("gsi2"),
                        "gsi2pk = :p AND gsi2sk <= :now",
                        vec![(":p", s(pk)), (":now", s(ts(now)))],
                    )
                    .oldest_first(),
                )
                .await?;
            for item in &items {
                let token = token_from(item)?;
                let key = keys::token(token.hash.as_str());
                let mut writes = vec![
                    self.update(
                        (&key, "TOKEN"),
                        "SET #status = :expired REMOVE gsi2pk, gsi2sk",
                        Some("#status = :was AND expires_at <= :now"),
                        vec![(":expired", s("expired")), (":was", s(status.as_str())), (":now", s(ts(now)))],
                    )?,
                    self.bump("tokens.pending", -1, None)?,
                ];
                // The pending membership it opened never starts, unless another live token backs it.
                if let Some(m) = &token.membership_id
                    && let Some(mem) = self.get(&keys::membership(m), "MEM").await?
                {
                    let mut others_live = false;
                    for other in token_hashes(&mem).iter().filter(|h| *h != token.hash.as_str()) {
                        if let Some(o) = self.token_record(other).await? {
                            others_live |= o.status == TokenStatus::Bound && o.expires_at > now;
                        }
                    }
                    if !others_live {
                        writes.push(self.update(
                            (&keys::membership(m), "MEM"),
                            "SET #status = :expired, ended_at = :now, end_reason = :why",
                            Some("#status = :pending"),
                            vec![
                                (":expired", s("expired")),
                                (":now", s(ts(now))),
                                (":why", s("token expired before joining")),
                                (":pending", s("pending")),
                            ],
                        )?);
                    }
                }
                match self.transact(writes).await {
                    Ok(()) => expired += 1,
                    Err(Cancelled::Condition(_)) => {}
                    Err(Cancelled::Fault(e)) => return Err(e),
                }
            }
        }
        Ok(expired)
    }

    async fn due_memberships(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Membership>, StoreError> {
        let items = self
            .query(
                Query::on(
                    Some("gsi2"),
                    "gsi2pk = :p AND gsi2sk <= :now",
                    vec![(":p", s(keys::memberships_by_status("active"))), (":now", s(ts(now)))],
                )
                .oldest_first()
                .limit(limit),
            )
            .await?;
        items.iter().map(membership_from).collect()
    }

    async fn expire_membership(&self, id: &MembershipId, now: DateTime<Utc>) -> Result<Option<Membership>, StoreError> {
        let items = vec![
            self.update(
                (&keys::membership(id), "MEM"),
                "SET #status = :expired, ended_at = :now, end_reason = :why, in_channel = :no, gsi2pk = :g, gsi2sk = :now",
                Some("#status = :active AND expires_at <= :now"),
                vec![
                    (":expired", s("expired")),
                    (":now", s(ts(now))),
                    (":why", s("subscription ended")),
                    (":no", b(false)),
                    (":g", s(keys::memberships_by_status("expired"))),
                    (":active", s("active")),
                ],
            )?,
            self.bump("members.active", -1, None)?,
        ];
        match self.transact(items).await {
            Ok(()) => self.membership_record(id.as_str()).await,
            Err(Cancelled::Condition(_)) => Ok(None),
            Err(Cancelled::Fault(e)) => Err(e),
        }
    }

    async fn ending_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Membership>, StoreError> {
        let items = self
            .query(
                Query::on(
                    Some("gsi2"),
                    "gsi2pk = :p AND gsi2sk BETWEEN :f AND :u",
                    vec![(":p", s(keys::memberships_by_status("active"))), (":f", s(ts(from))), (":u", s(ts(until)))],
                )
                .oldest_first()
                .limit(limit + 1),
            )
            .await?;
        let mut list = Vec::new();
        for item in &items {
            let m = membership_from(item)?;
            if m.expires_at.is_some_and(|e| e > from) && list.len() < limit as usize {
                list.push(m);
            }
        }
        Ok(list)
    }

    async fn claim_warning(
        &self,
        id: &MembershipId,
        threshold_days: u32,
        period_end: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::warning(id, threshold_days, period_end)))
            .item("sk", s("WARN"))
            .item("ttl", n((period_end + Duration::days(30)).timestamp()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition(&e) => Ok(false),
            Err(e) => Err(fault(e)),
        }
    }

    async fn revoke_user(
        &self,
        user: &UserId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Membership>, StoreError> {
        let mut revoked = Vec::new();
        for m in self.memberships_of(user).await? {
            if !matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active) {
                continue;
            }
            let mut items = vec![self.update(
                (&keys::membership(&m.id), "MEM"),
                "SET #status = :revoked, ended_at = :now, end_reason = :why, in_channel = :no, gsi2pk = :g, gsi2sk = :now",
                Some("#status = :was"),
                vec![
                    (":revoked", s("revoked")),
                    (":now", s(ts(now))),
                    (":why", s(reason)),
                    (":no", b(false)),
                    (":g", s(keys::memberships_by_status("revoked"))),
                    (":was", s(m.status.as_str())),
                ],
            )?];
            if m.status == MembershipStatus::Active {
                items.push(self.bump("members.active", -1, None)?);
            }
            match self.transact(items).await {
                Ok(()) => {
                    if let Some(r) = self.membership_record(m.id.as_str()).await? {
                        revoked.push(r);
                    }
                }
                Err(Cancelled::Condition(_)) => {}
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        let tokens =
            self.query(Query::on(Some("gsi3"), "gsi3pk = :p", vec![(":p", s(keys::tokens_of_user(user)))])).await?;
        for item in &tokens {
            let t = token_from(item)?;
            if !matches!(t.status, TokenStatus::Pending | TokenStatus::Bound) {
                continue;
            }
            let items = vec![
                self.update(
                    (&keys::token(t.hash.as_str()), "TOKEN"),
                    "SET #status = :revoked REMOVE gsi2pk, gsi2sk",
                    Some("#status = :was"),
                    vec![(":revoked", s("revoked")), (":was", s(t.status.as_str()))],
                )?,
                self.bump("tokens.pending", -1, None)?,
            ];
            match self.transact(items).await {
                Ok(()) | Err(Cancelled::Condition(_)) => {}
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        Ok(revoked)
    }

    async fn ended_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<Membership>, StoreError> {
        let mut ended = Vec::new();
        for group in [keys::memberships_by_status("expired"), keys::memberships_by_status("revoked")] {
            let items = self
                .query(
                    Query::on(
                        Some("gsi2"),
                        "gsi2pk = :p AND gsi2sk >= :s",
                        vec![(":p", s(group)), (":s", s(ts(since)))],
                    )
                    .limit(limit),
                )
                .await?;
            for item in &items {
                ended.push(membership_from(item)?);
            }
        }
        ended.sort_by_key(|m| std::cmp::Reverse(m.ended_at));
        ended.truncate(limit as usize);
        Ok(ended)
    }

    async fn active_in_channel(&self, limit: u32) -> Result<Vec<Membership>, StoreError> {
        // Reads at most `limit` items: nearly every active member is in the channel.
        let items = self
            .query(
                Query::on(Some("gsi2"), "gsi2pk = :p", vec![(":p", s(keys::memberships_by_status("active")))])
                    .oldest_first()
                    .limit(limit),
            )
            .await?;
        let mut list = Vec::new();
        for item in &items {
            let m = membership_from(item)?;
            if m.in_channel {
                list.push(m);
            }
        }
        Ok(list)
    }
}

#[async_trait]
impl Stats for DynamoStore {
    async fn counters(&self, now: DateTime<Utc>) -> Result<Counters, StoreError> {
        let fixed = [
            "tokens.total",
            "tokens.pending",
            "tokens.used",
            "invites.total",
            "invites.accepted",
            "members.total",
            "members.active",
        ];
        let hours: Vec<String> = (0..24).map(|h| hour_bucket(now - Duration::hours(h))).collect();
        let days: Vec<String> = (0..7).map(|d| day_bucket(now - Duration::days(d))).collect();
        let names: Vec<String> =
            fixed.iter().map(|f| f.to_string()).chain(hours.iter().cloned()).chain(days.iter().cloned()).collect();
        let mut keys = KeysAndAttributes::builder().consistent_read(true);
        for name in &names {
            keys =
                keys.keys(HashMap::from([("pk".to_owned(), s(keys::counter(name))), ("sk".to_owned(), s("COUNTER"))]));
        }
        let out = self
            .client
            .batch_get_item()
            .request_items(&self.table, keys.build().map_err(fault)?)
            .send()
            .await
            .map_err(fault)?;
        let mut values: HashMap<String, i64> = HashMap::new();
        for item in out.responses.unwrap_or_default().remove(&self.table).unwrap_or_default() {
            let name = get_s(&item, "pk")?.trim_start_matches(&keys::counter("")).to_owned();
            values.insert(name, get_n(&item, "value")?);
        }
        let get = |k: &str| values.get(k).copied().unwrap_or(0);
        Ok(Counters {
            tokens_total: get("tokens.total"),
            tokens_pending: get("tokens.pending"),
            tokens_used: get("tokens.used"),
            tokens_recent: hours.iter().map(|h| get(h)).sum(),
            invites_total: get("invites.total"),
            invites_accepted: get("invites.accepted"),
            members_total: get("members.total"),
            members_active: get("members.active"),
            members_recent_joins: days.iter().map(|d| get(d)).sum(),
        })
    }
}

#[async_trait]
impl JobLog for DynamoStore {
    async fn last_job_run(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.get(&keys::job(job), "JOB").await?.map(|i| time(&i, "at")).transpose()
    }

    async fn record_job_run(&self, job: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::job(job)))
            .item("sk", s("JOB"))
            .item("at", s(ts(at)))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }
}

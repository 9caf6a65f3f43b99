//! The scheduled jobs' reads and writes and statistics (`COUNTER#`); the job log is `jobs.rs`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{KeysAndAttributes, TransactWriteItem};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

use super::codec::*;
use super::{Cancelled, DynamoStore, Item, Query, fault, held, keys};
use crate::adapters::stored::{
    ATTEMPT_KEEP_HOURS, active_month_counter, attempt_bucket, counter_names, counters_from, lapse_counter, ts,
};
use crate::domain::{Membership, MembershipId, MembershipStatus, TokenHash, TokenStatus, UserId};
use crate::ports::*;

#[async_trait]
impl LifecycleStore for DynamoStore {
    async fn expire_tokens(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let mut expired = 0;
        for status in [TokenStatus::Pending, TokenStatus::Bound] {
            let left = limit.saturating_sub(expired as u32);
            if left == 0 {
                break;
            }
            let pk = keys::tokens_by_status(status.as_str());
            let items = self
                .query(
                    Query::on(
                        Some("gsi2"),
                        "gsi2pk = :p AND gsi2sk <= :now",
                        vec![(":p", s(pk)), (":now", s(ts(now)))],
                    )
                    .oldest_first()
                    .limit(left),
                )
                .await?;
            for item in items.iter().take(left as usize) {
                let token = token_from(item)?;
                let key = keys::token(token.hash.as_str());
                // The pending membership it opened never starts, unless another live token backs it.
                let mut close = None;
                let mut others_live = false;
                if let Some(m) = &token.membership_id
                    && let Some(mem) = self.get(&keys::membership(m), "MEM").await?
                {
                    others_live = self.kept_waiting_by_another(&mem, &token.hash, now).await?;
                    if !others_live {
                        close = Some(self.close_pending(m, "token expired before joining", now)?);
                    }
                }
                // Its days stay in a membership another token keeps: kept, as a used token is,
                // for a refund to take them back however late.
                let expire = match others_live {
                    true => "SET #status = :expired REMOVE gsi2pk, gsi2sk, #ttl",
                    false => "SET #status = :expired REMOVE gsi2pk, gsi2sk",
                };
                let mut writes = vec![
                    self.update(
                        (&key, "TOKEN"),
                        expire,
                        Some("#status = :was AND expires_at <= :now"),
                        vec![(":expired", s("expired")), (":was", s(status.as_str())), (":now", s(ts(now)))],
                    )?,
                    self.bump("tokens.pending", -1, None)?,
                ];
                writes.extend(close);
                match self.transact(writes).await {
                    Ok(()) => expired += 1,
                    Err(Cancelled::Condition(_)) => {}
                    Err(Cancelled::Fault(e)) => return Err(e),
                }
            }
        }
        Ok(expired)
    }

    async fn due_memberships(
        &self,
        cutoff: DateTime<Utc>,
        after: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Membership>, StoreError> {
        let mut values = vec![(":p", s(keys::memberships_by_status("active"))), (":cutoff", s(ts(cutoff)))];
        let condition = match after {
            Some(after) if after < cutoff => {
                // BETWEEN is inclusive: the first item (ending exactly at `after`) is skipped below.
                values.push((":after", s(ts(after))));
                "gsi2pk = :p AND gsi2sk BETWEEN :after AND :cutoff"
            }
            Some(_) => return Ok(Vec::new()),
            None => "gsi2pk = :p AND gsi2sk <= :cutoff",
        };
        let items = self.query(Query::on(Some("gsi2"), condition, values).oldest_first().limit(limit + 1)).await?;
        let items: Vec<_> = items
            .into_iter()
            .filter(|i| after.is_none_or(|a| i.get("gsi2sk").and_then(|v| v.as_s().ok()) != Some(&ts(a))))
            .take(limit as usize)
            .collect();
        items.iter().map(membership_from).collect()
    }

    async fn expire_membership(
        &self,
        id: &MembershipId,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        intents: &[Envelope],
    ) -> Result<Option<Membership>, StoreError> {
        let mut items = vec![
            self.update(
                (&keys::membership(id), "MEM"),
                "SET #status = :expired, ended_at = :now, end_reason = :why, in_channel = :no, gsi2pk = :g, gsi2sk = :now",
                Some(
                    "#status = :active AND expires_at <= :cutoff \
                     AND (attribute_not_exists(renews_until) OR renews_until <= :now)",
                ),
                vec![
                    (":expired", s("expired")),
                    (":now", s(ts(now))),
                    (":cutoff", s(ts(cutoff))),
                    (":why", s("subscription ended")),
                    (":no", b(false)),
                    (":g", s(keys::memberships_by_status("expired"))),
                    (":active", s("active")),
                ],
            )?,
            self.bump("members.active", -1, None)?,
        ];
        items.extend(self.intents(intents, now)?);
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
        page: &PageRequest,
    ) -> Result<Page<Membership>, StoreError> {
        let active = s(keys::memberships_by_status("active"));
        let values = vec![(":p", active.clone()), (":f", s(ts(from))), (":u", s(ts(until)))];
        let mut query = Query::on(Some("gsi2"), "gsi2pk = :p AND gsi2sk BETWEEN :f AND :u", values)
            .oldest_first()
            .limit(page.limit + 1);
        // The cursor is where the page before stopped in the index: its last item's keys, from
        // which DynamoDB goes on, ties at the same end included.
        if let Some(after) = &page.after {
            let mut keys = after.splitn(3, '|');
            let (Some(end), Some(pk), Some(sk)) = (keys.next(), keys.next(), keys.next()) else {
                return Err(StoreError::Corrupt(format!("not a cursor of ending_between: {after:?}")));
            };
            query = query.start(HashMap::from([
                ("gsi2pk".to_owned(), active),
                ("gsi2sk".to_owned(), s(end)),
                ("pk".to_owned(), s(pk)),
                ("sk".to_owned(), s(sk)),
            ]));
        }
        let from = ts(from);
        let text = |i: &Item, k: &str| i.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        // BETWEEN is inclusive: one ending exactly at `from` is not in `(from, until]`.
        let items: Vec<Item> = self.query(query).await?.into_iter().filter(|i| text(i, "gsi2sk") != from).collect();
        let page =
            Page::of(items, page.limit, |i| format!("{}|{}|{}", text(i, "gsi2sk"), text(i, "pk"), text(i, "sk")));
        Ok(Page { items: page.items.iter().map(membership_from).collect::<Result<_, _>>()?, next: page.next })
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
        held(result)
    }

    async fn revoke_user(
        &self,
        user: &UserId,
        reason: &str,
        now: DateTime<Utc>,
        intents: &IntentsFor<'_>,
    ) -> Result<Vec<Membership>, StoreError> {
        // Tokens first: once revoked, none can open a membership (that needs it bound), and the
        // memberships they opened are known from the token items themselves, however fresh.
        let mut ids = self.revoke_tokens(user).await?;
        for m in self.memberships_of(user).await? {
            if !ids.contains(&m.id) {
                ids.push(m.id);
            }
        }
        let mut revoked = Vec::new();
        for id in &ids {
            if let Some(m) = self.revoke_one(id, Some(user), reason, now, intents).await? {
                revoked.push(m);
            }
        }
        Ok(revoked)
    }

    async fn revoke_membership(
        &self,
        id: &MembershipId,
        reason: &str,
        now: DateTime<Utc>,
        intents: &IntentsFor<'_>,
    ) -> Result<Option<Membership>, StoreError> {
        self.revoke_one(id, None, reason, now, intents).await
    }

    async fn withdraw_token(
        &self,
        hash: &TokenHash,
        reason: &str,
        now: DateTime<Utc>,
        intents: &IntentsFor<'_>,
    ) -> Result<Withdrawn, StoreError> {
        self.withdraw(hash, reason, now, intents).await
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
        let mut values: HashMap<String, i64> = HashMap::new();
        // BatchGetItem takes at most 100 keys.
        for names in counter_names(now).chunks(100) {
            let mut keys = KeysAndAttributes::builder().consistent_read(true);
            for name in names {
                keys = keys
                    .keys(HashMap::from([("pk".to_owned(), s(keys::counter(name))), ("sk".to_owned(), s("COUNTER"))]));
            }
            let mut request = Some(HashMap::from([(self.table.clone(), keys.build().map_err(fault)?)]));
            // Under throttling DynamoDB answers part of a batch: the rest comes back as unprocessed
            // keys, asked again (with a pause) until every counter is read. Never a zero for a
            // counter unread.
            for attempt in 0u32.. {
                let Some(items) = request.take().filter(|r| !r.is_empty()) else { break };
                if attempt >= 8 {
                    return Err(StoreError::Unavailable("DynamoDB kept leaving counters unread".into()));
                }
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
                let out = self.client.batch_get_item().set_request_items(Some(items)).send().await.map_err(fault)?;
                for item in out.responses.unwrap_or_default().remove(&self.table).unwrap_or_default() {
                    let name = get_s(&item, "pk")?.trim_start_matches(&keys::counter("")).to_owned();
                    values.insert(name, get_n(&item, "value")?);
                }
                request = out.unprocessed_keys;
            }
        }
        Ok(counters_from(now, &|n| values.get(n).copied().unwrap_or(0)))
    }

    async fn count_attempt(&self, attempt: Attempt, at: DateTime<Utc>) -> Result<(), StoreError> {
        let keep = at + chrono::Duration::hours(ATTEMPT_KEEP_HOURS);
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::counter(attempt_bucket(attempt, at))))
            .key("sk", s("COUNTER"))
            .update_expression("ADD #v :one SET #ttl = :ttl")
            .expression_attribute_names("#v", "value")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":ttl", n(keep.timestamp()))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }

    async fn record_active_members(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        let active = match self.get(&keys::counter("members.active"), "COUNTER").await? {
            Some(item) => get_n(&item, "value")?,
            None => 0,
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::counter(active_month_counter(at))))
            .item("sk", s("COUNTER"))
            .item("value", n(active))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }

    async fn count_lapse(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::counter(lapse_counter(at))))
            .key("sk", s("COUNTER"))
            .update_expression("ADD #v :one")
            .expression_attribute_names("#v", "value")
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }

    async fn count_subscription(&self, end: DateTime<Utc>, delta: i64) -> Result<(), StoreError> {
        let (name, delta, ttl) = crate::adapters::stored::subscription_end(end, delta);
        match self.transact(vec![self.bump(&name, delta, ttl)?]).await {
            Ok(()) => Ok(()),
            Err(Cancelled::Condition(_)) => {
                Err(StoreError::Unavailable("a counter refused an unconditional add".into()))
            }
            Err(Cancelled::Fault(e)) => Err(e),
        }
    }
}

impl DynamoStore {
    /// Revokes the user's pending and bound tokens; returns the memberships the bound and used ones opened.
    /// Each token is read with a consistent read and written only if it is still as read.
    async fn revoke_tokens(&self, user: &UserId) -> Result<Vec<MembershipId>, StoreError> {
        let listed =
            self.query(Query::on(Some("gsi3"), "gsi3pk = :p", vec![(":p", s(keys::tokens_of_user(user)))])).await?;
        let mut opened = Vec::new();
        for item in &listed {
            let hash = token_from(item)?.hash;
            for attempt in 0.. {
                let Some(t) = self.token_record(hash.as_str()).await? else { break };
                if !matches!(t.status, TokenStatus::Pending | TokenStatus::Bound) {
                    // Used: its membership started, perhaps a moment ago, where the user's
                    // membership index may not show it yet.
                    if t.status == TokenStatus::Used {
                        opened.extend(t.membership_id);
                    }
                    break;
                }
                // The membership the token opened (if any) must be the one read: an opening that
                // commits in between fails this condition, and the next read sees it.
                let (condition, mut values) = match &t.membership_id {
                    Some(m) => ("#status = :was AND membership_id = :m", vec![(":m", s(m.as_str()))]),
                    None => ("#status = :was AND attribute_not_exists(membership_id)", vec![]),
                };
                values.extend([(":revoked", s("revoked")), (":was", s(t.status.as_str()))]);
                let items = vec![
                    self.update(
                        (&keys::token(hash.as_str()), "TOKEN"),
                        "SET #status = :revoked REMOVE gsi2pk, gsi2sk",
                        Some(condition),
                        values,
                    )?,
                    self.bump("tokens.pending", -1, None)?,
                ];
                match self.transact(items).await {
                    Ok(()) => {
                        opened.extend(t.membership_id);
                        break;
                    }
                    Err(Cancelled::Condition(_)) if attempt < 5 => continue,
                    Err(Cancelled::Condition(_)) => {
                        return Err(StoreError::Unavailable("a token kept changing during the revoke".into()));
                    }
                    Err(Cancelled::Fault(e)) => return Err(e),
                }
            }
        }
        Ok(opened)
    }

    /// Pending or active (and `user`'s, when given) → revoked, decided on a consistent read of the
    /// item and written only if it is still as read (a join or renewal landing in between is read
    /// again, never ignored).
    async fn revoke_one(
        &self,
        id: &MembershipId,
        user: Option<&UserId>,
        reason: &str,
        now: DateTime<Utc>,
        intents: &IntentsFor<'_>,
    ) -> Result<Option<Membership>, StoreError> {
        for _ in 0..5 {
            let Some(m) = self.membership_record(id.as_str()).await? else { return Ok(None) };
            if user.is_some_and(|u| &m.user_id != u)
                || !matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active)
            {
                return Ok(None);
            }
            match self.transact(self.revocation(&m, reason, now, intents)?.0).await {
                Ok(()) => return self.membership_record(id.as_str()).await,
                Err(Cancelled::Condition(_)) => continue,
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        Err(StoreError::Unavailable("the membership kept changing during the revoke".into()))
    }

    /// The writes that revoke `m` as read (its status and end unchanged since), with its intents,
    /// and the membership as they leave it.
    pub(super) fn revocation(
        &self,
        m: &Membership,
        reason: &str,
        now: DateTime<Utc>,
        intents: &IntentsFor<'_>,
    ) -> Result<(Vec<TransactWriteItem>, Membership), StoreError> {
        let mut revoked = m.clone();
        revoked.status = MembershipStatus::Revoked;
        revoked.ended_at = Some(now);
        revoked.end_reason = Some(reason.to_owned());
        revoked.in_channel = false;
        // Still as read: same status, same end (a renewal moves it).
        let mut values = vec![
            (":revoked", s("revoked")),
            (":now", s(ts(now))),
            (":why", s(reason)),
            (":no", b(false)),
            (":g", s(keys::memberships_by_status("revoked"))),
            (":was", s(m.status.as_str())),
        ];
        let condition = match m.expires_at {
            Some(end) => {
                values.push((":end", s(ts(end))));
                "#status = :was AND expires_at = :end"
            }
            None => "#status = :was AND attribute_not_exists(expires_at)",
        };
        let mut items = vec![self.update(
            (&keys::membership(&m.id), "MEM"),
            "SET #status = :revoked, ended_at = :now, end_reason = :why, in_channel = :no, gsi2pk = :g, gsi2sk = :now",
            Some(condition),
            values,
        )?];
        if m.status == MembershipStatus::Active {
            items.push(self.bump("members.active", -1, None)?);
        }
        items.extend(self.intents(&intents(&revoked), now)?);
        Ok((items, revoked))
    }
}

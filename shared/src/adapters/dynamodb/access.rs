//! Tokens and memberships: issue, bind, open, extend, activate (`TOKEN#`, `MEM#`, `INVITE#`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

use super::codec::*;
use super::{Cancelled, DynamoStore, Item, Query, fault, held, keys};
use crate::adapters::stored::{day_bucket, hour_bucket, ts};
use crate::domain::{
    Membership, MembershipId, MembershipStatus, PaymentId, PaymentStatus, TelegramUserId, TokenHash, TokenRecord,
    TokenStatus, UserId, extended_end,
};
use crate::ports::*;

/// A token applies its period once, and only while it is bound: a revoke that lands between the
/// binding and the opening wins.
const TOKEN_STILL_BOUND: &str = "attribute_not_exists(membership_id) AND #status = :bound";

const TOKEN_USED: &str = "SET #status = :used, used_at = :now REMOVE gsi2pk, gsi2sk, #ttl";

impl DynamoStore {
    /// The token the payment item names as current: the only one of the payment that can be
    /// live (issuing replaces the others, reopening revokes it).
    async fn current_token(&self, payment: &Item) -> Result<Option<TokenRecord>, StoreError> {
        match opt_s(payment, "current_token")? {
            Some(hash) => self.token_record(&hash).await,
            None => Ok(None),
        }
    }

    /// The current token of the payment `id`, if the payment and its token exist.
    pub(super) async fn current_token_of(&self, id: &PaymentId) -> Result<Option<TokenRecord>, StoreError> {
        match self.get(&keys::payment(id), "PAY").await? {
            Some(payment) => self.current_token(&payment).await,
            None => Ok(None),
        }
    }

    async fn retire_current_token(
        &self,
        payment: &Item,
        now: DateTime<Utc>,
    ) -> Result<(Vec<TransactWriteItem>, i64), StoreError> {
        let Some(token) = self.current_token(payment).await? else { return Ok((Vec::new(), 0)) };
        let live_bound = token.status == TokenStatus::Bound && token.expires_at > now;
        if token.status == TokenStatus::Used || live_bound || self.days_in_a_membership(&token, now).await? {
            return Err(StoreError::Conflict("already_redeemed"));
        }
        if !matches!(token.status, TokenStatus::Pending | TokenStatus::Bound) {
            return Ok((Vec::new(), 0));
        }
        let key = keys::token(token.hash.as_str());
        let mut items = vec![self.update(
            (&key, "TOKEN"),
            "SET #status = :replaced REMOVE gsi2pk, gsi2sk",
            Some("#status = :was"),
            vec![(":replaced", s("replaced")), (":was", s(token.status.as_str()))],
        )?];
        // A pending membership opened by the token we replace will never start.
        if let Some(m) = &token.membership_id {
            items.push(self.close_pending(m, "token replaced", now)?);
        }
        Ok((items, 1))
    }

    /// A token past its end whose days are in a membership that runs, or that waits for the join
    /// on another live token: opened, as a used one is.
    async fn days_in_a_membership(&self, token: &TokenRecord, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let (TokenStatus::Bound | TokenStatus::Expired, Some(m)) = (token.status, &token.membership_id) else {
            return Ok(false);
        };
        let Some(item) = self.get(&keys::membership(m), "MEM").await? else { return Ok(false) };
        match membership_from(&item)?.status {
            MembershipStatus::Active => Ok(true),
            MembershipStatus::Pending => self.kept_waiting_by_another(&item, &token.hash, now).await,
            _ => Ok(false),
        }
    }

    async fn mark_tokens_used(&self, hashes: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        for hash in hashes {
            let items = vec![
                self.update(
                    (&keys::token(hash), "TOKEN"),
                    TOKEN_USED,
                    Some("#status = :bound"),
                    vec![(":used", s("used")), (":now", s(ts(now))), (":bound", s("bound"))],
                )?,
                self.bump("tokens.used", 1, None)?,
                self.bump("tokens.pending", -1, None)?,
            ];
            match self.transact(items).await {
                Ok(()) | Err(Cancelled::Condition(_)) => {}
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Why a token's period was not applied (see `applied_before`).
    async fn already(&self, hash: &TokenHash) -> Result<Applied, StoreError> {
        let token = self.token_record(hash.as_str()).await?.ok_or(StoreError::Unavailable("token vanished".into()))?;
        Ok(applied_before(&token))
    }
}

#[async_trait]
impl AccessStore for DynamoStore {
    async fn issue_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        // The payment item names its current token: issuing is a compare-and-swap on it.
        for _ in 0..3 {
            let pay_key = keys::payment(&t.payment_id);
            let Some(payment) = self.get(&pay_key, "PAY").await? else {
                return Err(StoreError::Unavailable(format!("payment {} vanished", t.payment_id).into()));
            };
            // A refund asked for is final: the payment's status read is a condition of the write.
            let status = get_s(&payment, "status")?;
            if parsed(PaymentStatus::parse(&status))?.is_refund() {
                return Err(StoreError::Conflict("payment_refunded"));
            }
            let (mut items, replaced) = self.retire_current_token(&payment, t.created_at).await?;
            let mut values = vec![(":new", s(t.hash.as_str())), (":paid", s(status))];
            let condition = match opt_s(&payment, "current_token")? {
                Some(old) => {
                    values.push((":old", s(old)));
                    "current_token = :old AND #status = :paid"
                }
                None => "attribute_not_exists(current_token) AND #status = :paid",
            };
            items.insert(0, self.update((&pay_key, "PAY"), "SET current_token = :new", Some(condition), values)?);
            items.push(self.put(token_item(t), Some("attribute_not_exists(pk)"), vec![])?);
            items.push(self.bump("tokens.total", 1, None)?);
            items.push(self.bump("tokens.pending", 1 - replaced, None)?);
            items.push(self.bump(&hour_bucket(t.created_at), 1, Some(t.created_at + Duration::days(8)))?);
            match self.transact(items).await {
                Ok(()) => return Ok(()),
                // Another issue or a redemption got there first: read again and decide again.
                Err(Cancelled::Condition(_)) => continue,
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        Err(StoreError::Conflict("already_redeemed"))
    }

    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        self.token_record(hash.as_str()).await
    }

    async fn live_tokens(&self, payment: &PaymentId) -> Result<Vec<TokenHash>, StoreError> {
        let live = self.current_token_of(payment).await?.filter(|t| match t.status {
            TokenStatus::Pending | TokenStatus::Bound | TokenStatus::Used => true,
            TokenStatus::Expired => t.membership_id.is_some(),
            TokenStatus::Revoked | TokenStatus::Replaced => false,
        });
        Ok(live.map(|t| t.hash).into_iter().collect())
    }

    async fn bind_token(
        &self,
        hash: &TokenHash,
        account: TelegramUserId,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::token(hash.as_str())))
            .key("sk", s("TOKEN"))
            .update_expression("SET #status = :bound, telegram_user_id = :a, gsi2pk = :g")
            .condition_expression("#status = :pending AND attribute_not_exists(telegram_user_id) AND expires_at > :now")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":bound", s("bound"))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":a", n(account.get()))
            .expression_attribute_values(":g", s(keys::tokens_by_status("bound")))
            .expression_attribute_values(":now", s(ts(now)))
            .send()
            .await;
        held(result)?;
        Ok(self.token_record(hash.as_str()).await?.filter(|t| {
            t.telegram_user_id == Some(account) && matches!(t.status, TokenStatus::Bound | TokenStatus::Used)
        }))
    }

    async fn open_membership(&self, hash: &TokenHash, m: &Membership) -> Result<Applied, StoreError> {
        let items = vec![
            self.update(
                (&keys::token(hash.as_str()), "TOKEN"),
                "SET membership_id = :m",
                Some(TOKEN_STILL_BOUND),
                vec![(":m", s(m.id.as_str())), (":bound", s("bound"))],
            )?,
            self.put(membership_item(m, hash), Some("attribute_not_exists(pk)"), vec![])?,
        ];
        match self.transact(items).await {
            Ok(()) => {
                self.remember_username(m.telegram_username.as_deref(), m.telegram_user_id).await;
                Ok(Applied::Now(Box::new(m.clone())))
            }
            Err(Cancelled::Condition(_)) => self.already(hash).await,
            Err(Cancelled::Fault(e)) => Err(e),
        }
    }

    async fn extend_membership(
        &self,
        hash: &TokenHash,
        id: &MembershipId,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let token_key = keys::token(hash.as_str());
        let mem_key = keys::membership(id);
        for _ in 0..3 {
            let token =
                self.token_record(hash.as_str()).await?.ok_or(StoreError::Unavailable("token vanished".into()))?;
            if token.membership_id.is_some() || token.status != TokenStatus::Bound {
                return Ok(applied_before(&token));
            }
            let m = self
                .membership_record(id.as_str())
                .await?
                .ok_or(StoreError::Unavailable("membership vanished".into()))?;
            if !matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active) {
                return Ok(Applied::Ended);
            }
            let hashes = AttributeValue::Ss(vec![hash.as_str().to_owned()]);
            let items = if m.status == MembershipStatus::Active {
                let end = extended_end(m.expires_at, now, token.days);
                let old_end = m.expires_at.map(ts).unwrap_or_default();
                vec![
                    self.update(
                        (&token_key, "TOKEN"),
                        "SET membership_id = :m, #status = :used, used_at = :now REMOVE gsi2pk, gsi2sk, #ttl",
                        Some(TOKEN_STILL_BOUND),
                        vec![
                            (":m", s(id.as_str())),
                            (":used", s("used")),
                            (":now", s(ts(now))),
                            (":bound", s("bound")),
                        ],
                    )?,
                    self.update(
                        (&mem_key, "MEM"),
                        "SET expires_at = :e, gsi2sk = :e ADD token_hashes :h",
                        Some("#status = :active AND expires_at = :old"),
                        vec![(":e", s(ts(end))), (":h", hashes), (":active", s("active")), (":old", s(old_end))],
                    )?,
                    self.bump("tokens.used", 1, None)?,
                    self.bump("tokens.pending", -1, None)?,
                ]
            } else {
                vec![
                    self.update(
                        (&token_key, "TOKEN"),
                        "SET membership_id = :m",
                        Some(TOKEN_STILL_BOUND),
                        vec![(":m", s(id.as_str())), (":bound", s("bound"))],
                    )?,
                    self.update(
                        (&mem_key, "MEM"),
                        "ADD pending_days :d, token_hashes :h",
                        Some("#status = :pending"),
                        vec![(":d", n(token.days)), (":h", hashes), (":pending", s("pending"))],
                    )?,
                ]
            };
            match self.transact(items).await {
                Ok(()) => {
                    let m = self
                        .membership_record(id.as_str())
                        .await?
                        .ok_or(StoreError::Unavailable("membership vanished".into()))?;
                    return Ok(Applied::Now(Box::new(m)));
                }
                Err(Cancelled::Condition(reasons)) if reasons.first() == Some(&true) => {
                    return self.already(hash).await;
                }
                // The membership changed under us (a concurrent renewal or join): read again.
                Err(Cancelled::Condition(_)) => continue,
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        Err(StoreError::Unavailable("the membership kept changing; try again".into()))
    }

    async fn membership(&self, id: &MembershipId) -> Result<Option<Membership>, StoreError> {
        self.membership_record(id.as_str()).await
    }

    async fn current_membership(&self, account: TelegramUserId) -> Result<Option<Membership>, StoreError> {
        let items = self.query(Query::on(Some("gsi1"), "gsi1pk = :p", vec![(":p", s(keys::account(account)))])).await?;
        for item in &items {
            let m = membership_from(item)?;
            if matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active) {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    async fn last_membership(&self, account: TelegramUserId) -> Result<Option<Membership>, StoreError> {
        let newest = Query::on(Some("gsi1"), "gsi1pk = :p", vec![(":p", s(keys::account(account)))]).limit(1);
        self.query(newest).await?.first().map(membership_from).transpose()
    }

    async fn account_with_username(&self, username: &str) -> Result<Option<TelegramUserId>, StoreError> {
        let Some(item) = self.get(&keys::username(username.to_lowercase()), "USERNAME").await? else {
            return Ok(None);
        };
        let id = get_n::<i64>(&item, "telegram_user_id")?;
        TelegramUserId::parse(id).map(Some).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    async fn membership_by_invite(&self, link: &str) -> Result<Option<Membership>, StoreError> {
        let Some(item) = self.get(&keys::invite(link), "INVITE").await? else { return Ok(None) };
        self.membership_record(&get_s(&item, "membership_id")?).await
    }

    async fn memberships_of(&self, user: &UserId) -> Result<Vec<Membership>, StoreError> {
        let items = self
            .query(Query::on(Some("gsi3"), "gsi3pk = :p", vec![(":p", s(keys::memberships_of_user(user)))]))
            .await?;
        items.iter().map(membership_from).collect()
    }

    async fn set_invite(&self, id: &MembershipId, link: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        let invite: Item = HashMap::from([
            ("pk".into(), s(keys::invite(link))),
            ("sk".into(), s("INVITE")),
            ("membership_id".into(), s(id.as_str())),
            // Kept well past its expiry: a leaked link is traced to its member for months.
            ("ttl".into(), n((expires_at + Duration::days(180)).timestamp())),
        ]);
        let items = vec![
            self.update(
                (&keys::membership(id), "MEM"),
                "SET invite_link = :l, invite_expires_at = :e",
                None,
                vec![(":l", s(link)), (":e", s(ts(expires_at)))],
            )?,
            self.put(invite, None, vec![])?,
            self.bump("invites.total", 1, None)?,
        ];
        self.transact(items).await.map_err(|e| match e {
            Cancelled::Condition(_) => StoreError::Unavailable("unexpected condition".into()),
            Cancelled::Fault(e) => e,
        })
    }

    async fn activate_membership(
        &self,
        id: &MembershipId,
        period_from: DateTime<Utc>,
        now: DateTime<Utc>,
        username: Option<&str>,
    ) -> Result<Option<Membership>, StoreError> {
        let key = keys::membership(id);
        for _ in 0..5 {
            let Some(item) = self.get(&key, "MEM").await? else { return Ok(None) };
            let m = membership_from(&item)?;
            if m.status != MembershipStatus::Pending {
                return Ok(None);
            }
            // Written only if the days read are still the days there: a renewal that adds its days
            // in between makes this fail, and the next read counts them.
            let end = period_from + Duration::days(i64::from(m.pending_days));
            let mut values = vec![
                (":active", s("active")),
                (":pending", s("pending")),
                (":days", n(m.pending_days)),
                (":now", s(ts(now))),
                (":e", s(ts(end))),
                (":zero", n(0)),
                (":yes", b(true)),
                (":g", s(keys::memberships_by_status("active"))),
            ];
            let mut expression = "SET #status = :active, joined_at = :now, expires_at = :e, pending_days = :zero, in_channel = :yes, gsi2pk = :g, gsi2sk = :e".to_owned();
            if let Some(u) = username {
                expression.push_str(", telegram_username = :u");
                values.push((":u", s(u)));
            }
            let items = vec![
                self.update((&key, "MEM"), &expression, Some("#status = :pending AND pending_days = :days"), values)?,
                self.bump("invites.accepted", 1, None)?,
                self.bump("members.total", 1, None)?,
                self.bump("members.active", 1, None)?,
                self.bump(&day_bucket(now), 1, Some(now + Duration::days(8)))?,
            ];
            match self.transact(items).await {
                Ok(()) => {
                    self.mark_tokens_used(&token_hashes(&item), now).await?;
                    self.remember_username(username, m.telegram_user_id).await;
                    return self.membership_record(id.as_str()).await;
                }
                Err(Cancelled::Condition(_)) => continue,
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        Err(StoreError::Unavailable("the membership kept changing during its activation".into()))
    }

    async fn set_in_channel(&self, id: &MembershipId, in_channel: bool, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::membership(id)))
            .key("sk", s("MEM"))
            .expression_attribute_values(":c", b(in_channel));
        request = if in_channel {
            request.update_expression("SET in_channel = :c")
        } else {
            request
                .update_expression("SET in_channel = :c, left_at = :now")
                .expression_attribute_values(":now", s(ts(now)))
        };
        request.send().await.map(drop).map_err(fault)
    }

    async fn set_renewal(&self, id: &MembershipId, until: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::membership(id)))
            .key("sk", s("MEM"))
            .condition_expression("attribute_exists(pk)");
        let request = match until {
            Some(t) => request.update_expression("SET renews_until = :t").expression_attribute_values(":t", s(ts(t))),
            None => request.update_expression("REMOVE renews_until"),
        };
        // A membership that is not there has no renewal to await.
        super::held(request.send().await).map(drop)
    }
}

//! Records brought over from the system telegate replaces (`PAY#`, `TX#`, `TOKEN#`, `MEM#`,
//! `NOTIF#`, `EXEMPT#`): up to 25 records per transaction, each put only if absent, with the
//! counters they add summed into the same transaction.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::codec::*;
use super::{Cancelled, DynamoStore, Item, keys};
use crate::adapters::stored::{CounterChange, membership_counters, token_counters, ts};
use crate::domain::{Exemption, Membership, MembershipStatus, TelegramUserId, TokenHash, TokenStatus};
use crate::ports::*;

/// Records per transaction: at most two items each, plus the counters, stays under DynamoDB's
/// 100 items per transaction.
const RECORDS_PER_WRITE: usize = 25;

const ABSENT: Option<&str> = Some("attribute_not_exists(pk)");

fn imported_membership_item(m: &Membership, tokens: &[TokenHash]) -> Item {
    let first = tokens.first().cloned().unwrap_or_else(|| TokenHash::from_stored(String::new()));
    let mut i = membership_item(m, &first);
    // A string set may not be empty: a membership with no token of its own carries none.
    set(
        &mut i,
        "token_hashes",
        (!tokens.is_empty()).then(|| AttributeValue::Ss(tokens.iter().map(|t| t.as_str().to_owned()).collect())),
    );
    // The sweeps' index, as the live transitions leave it.
    let by_status = match (m.status, m.expires_at, m.ended_at) {
        (MembershipStatus::Active, Some(end), _) => Some((keys::memberships_by_status("active"), end)),
        (MembershipStatus::Expired | MembershipStatus::Revoked, _, Some(ended)) => {
            Some((keys::memberships_by_status(m.status.as_str()), ended))
        }
        _ => None,
    };
    if let Some((pk, at)) = by_status {
        i.insert("gsi2pk".into(), s(pk));
        i.insert("gsi2sk".into(), s(ts(at)));
    }
    set(&mut i, "ended_at", m.ended_at.map(|t| s(ts(t))));
    set(&mut i, "end_reason", m.end_reason.clone().map(s));
    i
}

impl DynamoStore {
    /// The record's items, its own first, and the counters it adds.
    fn import_items(&self, record: &Imported) -> Result<(Vec<TransactWriteItem>, Vec<CounterChange>), StoreError> {
        Ok(match record {
            Imported::Payment { payment, current_token } => {
                let mut item = payment_item(payment);
                set(&mut item, "current_token", current_token.as_ref().map(|t| s(t.as_str())));
                let tx = tx_item(&payment.transaction_key(), &payment.id);
                (vec![self.put(item, ABSENT, vec![])?, self.put(tx, ABSENT, vec![])?], Vec::new())
            }
            Imported::Token(t) => {
                let mut item = token_item(t);
                // As the live transitions leave a token that is no longer waiting to be opened.
                if !matches!(t.status, TokenStatus::Pending | TokenStatus::Bound) {
                    item.remove("gsi2pk");
                    item.remove("gsi2sk");
                }
                if t.status == TokenStatus::Used {
                    item.remove("ttl");
                }
                (vec![self.put(item, ABSENT, vec![])?], token_counters(t))
            }
            Imported::Membership { membership, tokens } => (
                vec![self.put(imported_membership_item(membership, tokens), ABSENT, vec![])?],
                membership_counters(membership),
            ),
            Imported::Notification(n) => (vec![self.put(notification_item(n), ABSENT, vec![])?], Vec::new()),
            Imported::Exempt(e) => {
                let item: Item = HashMap::from([
                    ("pk".to_owned(), s(keys::exempt(e.telegram_user_id))),
                    ("sk".to_owned(), s("EXEMPT")),
                    ("note".to_owned(), s(&e.note)),
                    ("at".to_owned(), s(ts(e.at))),
                ]);
                (vec![self.put(item, ABSENT, vec![])?], Vec::new())
            }
        })
    }

    /// Writes the records still `pending` in one transaction; a record whose own item is there
    /// already is `Already`, one whose transaction id another payment holds is refused, and the
    /// rest are written again without them.
    async fn import_chunk(&self, chunk: &[Imported], written: &mut [Written]) -> Result<(), StoreError> {
        let mut pending: Vec<usize> = (0..chunk.len()).collect();
        while !pending.is_empty() {
            let mut items = Vec::new();
            let mut owners = Vec::new();
            let mut counters: BTreeMap<String, (i64, Option<DateTime<Utc>>)> = BTreeMap::new();
            for &i in &pending {
                let (own, changes) = self.import_items(&chunk[i])?;
                for (k, item) in own.into_iter().enumerate() {
                    owners.push((i, k));
                    items.push(item);
                }
                for (name, delta, keep) in changes {
                    let c = counters.entry(name).or_insert((0, keep));
                    c.0 += delta;
                }
            }
            for (name, (delta, keep)) in counters {
                items.push(self.bump(&name, delta, keep)?);
            }
            match self.transact(items).await {
                Ok(()) => return Ok(()),
                Err(Cancelled::Condition(failed)) => {
                    let before = pending.len();
                    for (position, _) in failed.iter().enumerate().filter(|(_, f)| **f) {
                        let Some(&(i, k)) = owners.get(position) else { continue };
                        if pending.contains(&i) {
                            written[i] =
                                if k == 0 { Written::Already } else { Written::Refused("transaction_id_taken") };
                            pending.retain(|p| *p != i);
                        }
                    }
                    if pending.len() == before {
                        return Err(StoreError::Unavailable(
                            "an import write failed a condition it does not have".into(),
                        ));
                    }
                }
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ImportStore for DynamoStore {
    async fn import(&self, records: &[Imported]) -> Result<Vec<Written>, StoreError> {
        let mut written = vec![Written::New; records.len()];
        for (chunk, out) in records.chunks(RECORDS_PER_WRITE).zip(written.chunks_mut(RECORDS_PER_WRITE)) {
            self.import_chunk(chunk, out).await?;
        }
        let named: Vec<(&str, TelegramUserId)> = records
            .iter()
            .zip(&written)
            .filter_map(|(record, w)| match (record, w) {
                (Imported::Membership { membership: m, .. }, Written::New) => {
                    Some((m.telegram_username.as_deref().filter(|u| !u.is_empty())?, m.telegram_user_id))
                }
                _ => None,
            })
            .collect();
        self.remember_usernames(&named).await;
        Ok(written)
    }
}

#[async_trait]
impl Exemptions for DynamoStore {
    async fn exemption(&self, account: TelegramUserId) -> Result<Option<Exemption>, StoreError> {
        let Some(item) = self.get(&keys::exempt(account), "EXEMPT").await? else { return Ok(None) };
        Ok(Some(Exemption { telegram_user_id: account, note: get_s(&item, "note")?, at: time(&item, "at")? }))
    }
}

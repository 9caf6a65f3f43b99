//! Taking back what one refunded payment's token bought (`LifecycleStore::withdraw_token`).

use chrono::{DateTime, Utc};

use super::codec::*;
use super::{Cancelled, DynamoStore, keys};
use crate::adapters::stored::ts;
use crate::domain::{MembershipStatus, TokenHash, TokenStatus};
use crate::ports::{IntentsFor, StoreError, Withdrawn};

impl DynamoStore {
    /// The token revoked and its days taken out of its membership in one transaction, written only
    /// if both are still as read (a join, renewal or revoke in between is read again).
    pub(super) async fn withdraw(
        &self,
        hash: &TokenHash,
        reason: &str,
        now: DateTime<Utc>,
        intents: &IntentsFor<'_>,
    ) -> Result<Withdrawn, StoreError> {
        for _ in 0..5 {
            let Some(t) = self.token_record(hash.as_str()).await?.filter(|t| t.status != TokenStatus::Revoked) else {
                return Ok(Withdrawn::Nothing);
            };
            let (condition, mut values) = match &t.membership_id {
                Some(m) => ("#status = :was AND membership_id = :m", vec![(":m", s(m.as_str()))]),
                None => ("#status = :was AND attribute_not_exists(membership_id)", vec![]),
            };
            values.extend([(":revoked", s("revoked")), (":was", s(t.status.as_str()))]);
            let mut items = vec![self.update(
                (&keys::token(hash.as_str()), "TOKEN"),
                "SET #status = :revoked REMOVE gsi2pk, gsi2sk",
                Some(condition),
                values,
            )?];
            if matches!(t.status, TokenStatus::Pending | TokenStatus::Bound) {
                items.push(self.bump("tokens.pending", -1, None)?);
            }
            let live = match &t.membership_id {
                Some(id) => self.get(&keys::membership(id.as_str()), "MEM").await?,
                None => None,
            };
            let live = match live {
                Some(item) => Some((membership_from(&item)?, item))
                    .filter(|(m, _)| matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active)),
                None => None,
            };
            let outcome = match live {
                None => Withdrawn::Nothing,
                Some((m, item)) => {
                    // Waiting for the join, it lives on only while another live token keeps it
                    // waiting: days left of purchases whose period is over open nothing.
                    let waits =
                        m.status != MembershipStatus::Pending || self.kept_waiting_by_another(&item, hash, now).await?;
                    match m.without_days(t.days, now).filter(|_| waits) {
                        Some(shorter) => {
                            items.push(match (m.expires_at, shorter.expires_at) {
                                (Some(old), Some(end)) => self.update(
                                    (&keys::membership(&m.id), "MEM"),
                                    "SET expires_at = :e, gsi2sk = :e",
                                    Some("#status = :active AND expires_at = :old"),
                                    vec![(":e", s(ts(end))), (":old", s(ts(old))), (":active", s("active"))],
                                )?,
                                _ => self.update(
                                    (&keys::membership(&m.id), "MEM"),
                                    "SET pending_days = :left",
                                    Some("#status = :pending AND pending_days = :days"),
                                    vec![
                                        (":left", n(shorter.pending_days)),
                                        (":days", n(m.pending_days)),
                                        (":pending", s("pending")),
                                    ],
                                )?,
                            });
                            Withdrawn::Shortened(Box::new(shorter))
                        }
                        None => {
                            let (revocation, revoked) = self.revocation(&m, reason, now, intents)?;
                            items.extend(revocation);
                            Withdrawn::Revoked(Box::new(revoked))
                        }
                    }
                }
            };
            match self.transact(items).await {
                Ok(()) => return Ok(outcome),
                Err(Cancelled::Condition(_)) => continue,
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        Err(StoreError::Unavailable("the token or its membership kept changing during the refund".into()))
    }
}

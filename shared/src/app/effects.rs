//! Carrying out queued side effects: the same code behind the local queue and the SQS consumer.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::{AuditAction, AuditEntry, AuditId};
use crate::metrics::{self, Metric};
use crate::ports::{
    AccessStore, AccountBars, AuditLog, Clock, Effect, EffectLog, EffectOutbox, Envelope, EventBus, Exemptions,
    MailError, Mailer, PaymentStore, StoreError, Telegram, TelegramError,
};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EffectError {
    /// Worth another try: after `after` when Telegram said so, else with backoff.
    #[error("retry: {reason}")]
    Retry { after: Option<Duration>, reason: String },
    /// Will not succeed by retrying: goes to the dead letters with this reason.
    #[error("failed: {0}")]
    Permanent(String),
    /// Can never be delivered (a mail SES refuses for good): given up at once — audited and
    /// announced, not retried, not kept in the dead letters.
    #[error("undeliverable: {0}")]
    Undeliverable(String),
}

pub struct EffectRunner {
    telegram: Arc<dyn Telegram>,
    mailer: Arc<dyn Mailer>,
    events: Arc<dyn EventBus>,
}

impl EffectRunner {
    /// `telegram` keeps to the bot's pace (`adapters::pace::PacedTelegram`).
    pub fn new(telegram: Arc<dyn Telegram>, mailer: Arc<dyn Mailer>, events: Arc<dyn EventBus>) -> Self {
        Self { telegram, mailer, events }
    }

    pub async fn run(&self, key: &str, effect: &Effect) -> Result<(), EffectError> {
        let result = match effect {
            Effect::SendMessage { chat_id, text } => {
                match self.telegram.send_message(*chat_id, text, &[]).await {
                    // Someone who blocked the bot cannot be messaged; nothing to retry.
                    Err(TelegramError::Unreachable(why)) => {
                        tracing::info!(key, why, "message not delivered: user unreachable");
                        Ok(())
                    }
                    other => other,
                }
            }
            Effect::SendEmail { email } => {
                return self.mailer.send(email).await.map_err(|e| match e {
                    MailError::Refused(_) => EffectError::Undeliverable(e.to_string()),
                    MailError::Unavailable(_) => EffectError::Retry { after: None, reason: e.to_string() },
                });
            }
            Effect::Publish { event } => {
                return self
                    .events
                    .publish(event)
                    .await
                    .map_err(|e| EffectError::Retry { after: None, reason: e.to_string() });
            }
            Effect::RemoveMember { telegram_user_id, keep_banned } => {
                let banned = self.telegram.ban(*telegram_user_id).await;
                match (banned, keep_banned) {
                    (Ok(()), false) => self.telegram.unban(*telegram_user_id, true).await,
                    // Made an administrator since (a paying member promoted): never removed. Once
                    // demoted, the bot sees it and keeps or removes them as anyone.
                    (Err(TelegramError::Administrator(why)), _) => {
                        tracing::info!(key, why, "not removed: a channel administrator");
                        Ok(())
                    }
                    (other, _) => other,
                }
            }
            Effect::LiftBan { telegram_user_id } => self.telegram.unban(*telegram_user_id, true).await,
            Effect::ApproveJoinRequest { telegram_user_id } => {
                already_done_is_done(self.telegram.approve_join_request(*telegram_user_id).await)
            }
            Effect::DeclineJoinRequest { telegram_user_id } => {
                already_done_is_done(self.telegram.decline_join_request(*telegram_user_id).await)
            }
            Effect::RevokeInvite { link } => already_done_is_done(self.telegram.revoke_invite(link).await),
            Effect::RefundStars { telegram_user_id, charge_id, .. } => {
                already_done_is_done(self.telegram.refund_stars(*telegram_user_id, charge_id).await)
            }
            Effect::CancelSubscription { telegram_user_id, charge_id } => {
                self.telegram.cancel_subscription(*telegram_user_id, charge_id, true).await
            }
        };
        result.map_err(|e| match e {
            TelegramError::RetryAfter(s) => {
                EffectError::Retry { after: Some(Duration::from_secs(u64::from(s))), reason: e.to_string() }
            }
            TelegramError::Unavailable(_) => EffectError::Retry { after: None, reason: e.to_string() },
            TelegramError::Refused(_)
            | TelegramError::Unreachable(_)
            | TelegramError::AlreadyDone(_)
            | TelegramError::Administrator(_) => EffectError::Permanent(e.to_string()),
        })
    }
}

/// What was asked is already so (a join request decided, a link revoked, a charge refunded): the
/// effect holds.
fn already_done_is_done(result: Result<(), TelegramError>) -> Result<(), TelegramError> {
    match result {
        Err(TelegramError::AlreadyDone(why)) => {
            tracing::info!(why, "already done");
            Ok(())
        }
        other => other,
    }
}

/// What became of one delivery of a queued effect.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Done,
    /// Done before (a redelivery), or being done by another consumer right now.
    AlreadyDone,
    /// A later change made it stale: not carried out (see `Consumer::current_effect`).
    Dropped(&'static str),
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Will not succeed; the queue keeps it until its dead-letter rule takes it.
    Failed(String),
    /// Given up at once (see `EffectError::Undeliverable`): the queue drops it and queues `event`,
    /// the `Effect Dead-Lettered` announcement.
    GivenUp {
        reason: String,
        event: Option<Envelope>,
    },
}

/// How often, and how far apart, a queue tries an effect again before it dead-letters it: one
/// policy, carried out by the SQS consumer and by the local queue alike.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts (SQS: receives) after which a failing effect goes to the dead letters. On SQS the
    /// queue's redrive policy moves it (`maxReceiveCount` in template.yaml, the same number).
    pub attempts: u32,
    /// The wait after attempt `n` is `unit · 2ⁿ`, at most `MAX_BACKOFF`.
    pub unit: Duration,
    /// Whether a permanent failure goes to the dead letters at once. SQS cannot do that: only its
    /// redrive policy moves a message, after the last receive, so there a permanent failure is
    /// tried as often as any other.
    pub permanent_at_once: bool,
}

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl RetryPolicy {
    /// SQS: ten receives, 2 s to 5 min apart (about 13 minutes in all): a Telegram or DynamoDB
    /// outage of several minutes (at 00:00, in the middle of the expiry) leaves the dead-letter
    /// queue empty.
    pub const SQS: Self = Self { attempts: 10, unit: Duration::from_secs(1), permanent_at_once: false };
    /// The local queue: ten attempts, 0.5 s to about 2 min apart (about 4 minutes in all): the same
    /// outages pass on the local host too.
    pub const LOCAL: Self = Self { attempts: 10, unit: Duration::from_millis(250), permanent_at_once: true };

    fn backoff(&self, attempt: u32) -> Duration {
        self.unit.saturating_mul(2u32.saturating_pow(attempt.clamp(1, 16))).min(MAX_BACKOFF)
    }
}

/// What a queue does with a delivery once the consumer has handled it.
#[derive(Debug, PartialEq)]
pub enum Settle {
    /// Finished with (done, done before, stale, or given up at once): delete it, then queue
    /// `then` (the `Effect Dead-Lettered` announcement of an effect given up), if any.
    Finished { then: Option<Envelope> },
    /// Telegram's flood control: deliver it again after `after`. This spends no attempt.
    FloodControl { after: Duration },
    /// Failed: try again after `after`, as the next attempt.
    Retry { after: Duration },
    /// Out of attempts: audited as dead-lettered; the queue keeps it in its dead letters and queues
    /// `then`, if any.
    DeadLetter { reason: String, then: Option<Envelope> },
}

/// How long a consumer holds an effect's key: longer than a Lambda invocation may run.
const LEASE_SECONDS: i64 = 120;

/// Applies each effect at most once in effect: its idempotency key is claimed (with a lease, so a
/// consumer that dies mid-way does not lose it), then marked done, or released on failure.
/// Channel effects are level-triggered: each is checked against the membership as it is now.
pub struct Consumer {
    pub(crate) runner: EffectRunner,
    pub(crate) effect_log: Arc<dyn EffectLog>,
    pub(crate) outbox: Arc<dyn EffectOutbox>,
    pub(crate) payments: Arc<dyn PaymentStore>,
    pub(crate) access: Arc<dyn AccessStore>,
    pub(crate) bars: Arc<dyn AccountBars>,
    pub(crate) exemptions: Arc<dyn Exemptions>,
    pub(crate) audit_log: Arc<dyn AuditLog>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Consumer {
    pub async fn handle(&self, envelope: &Envelope) -> Outcome {
        let key = &envelope.idempotency_key;
        let now = self.clock.now();
        match self.effect_log.claim_effect(key, now, chrono::Duration::seconds(LEASE_SECONDS)).await {
            Ok(true) => {}
            Ok(false) => {
                self.settle_intent(envelope).await;
                return Outcome::AlreadyDone;
            }
            Err(e) => return Outcome::Retry { after: None, reason: e.to_string() },
        }
        let result = match self.current_effect(&envelope.effect).await {
            Ok(Current::Run(effect)) => match self.runner.run(key, &effect).await {
                Ok(()) => self.undo_if_let_back_in_meanwhile(key, &effect).await.map(|()| Outcome::Done),
                Err(e) => Err(e),
            },
            Ok(Current::Drop(why)) => self.dropped(envelope, why).await.map(|()| Outcome::Dropped(why)),
            Err(e) => Err(EffectError::Retry { after: None, reason: e.to_string() }),
        };
        let result = match &envelope.effect {
            Effect::RefundStars { payment_id: Some(id), .. } => self.record_refund(id, result).await,
            _ => result,
        };
        let settled = match &result {
            Ok(_) | Err(EffectError::Undeliverable(_)) => self.effect_log.complete_effect(key, self.clock.now()).await,
            Err(_) => self.effect_log.release_effect(key).await,
        };
        if let Err(e) = settled {
            tracing::error!(key = %key, error = %e, "could not record the effect's outcome");
        }
        match result {
            Ok(outcome) => {
                self.settle_intent(envelope).await;
                outcome
            }
            Err(EffectError::Retry { after, reason }) => Outcome::Retry { after, reason },
            Err(EffectError::Permanent(reason)) => Outcome::Failed(reason),
            Err(EffectError::Undeliverable(reason)) => {
                tracing::error!(key = %key, reason, "effect given up: it can never be delivered");
                let event = self.dead_lettered(envelope, &reason).await;
                Outcome::GivenUp { reason, event }
            }
        }
    }

    /// Handles `attempt` (1 for the first delivery) of an effect and decides, by `policy`, what
    /// the queue does with it next.
    pub async fn deliver(&self, envelope: &Envelope, attempt: u32, policy: &RetryPolicy) -> Settle {
        let key = &envelope.idempotency_key;
        let (reason, permanent) = match self.handle(envelope).await {
            Outcome::Done | Outcome::AlreadyDone | Outcome::Dropped(_) => return Settle::Finished { then: None },
            Outcome::GivenUp { event, .. } => {
                metrics::count(Metric::EffectDeadLettered);
                return Settle::Finished { then: event };
            }
            Outcome::Retry { after: Some(after), reason } => {
                tracing::warn!(key = %key, reason, delay_ms = after.as_millis() as u64, "flood control: tried again after Telegram's delay");
                return Settle::FloodControl { after };
            }
            Outcome::Retry { after: None, reason } => (reason, false),
            Outcome::Failed(reason) => (reason, true),
        };
        if attempt >= policy.attempts || (permanent && policy.permanent_at_once) {
            tracing::error!(key = %key, attempt, reason, "effect dead-lettered");
            metrics::count(Metric::EffectDeadLettered);
            let then = self.dead_lettered(envelope, &reason).await;
            Settle::DeadLetter { reason, then }
        } else {
            tracing::warn!(key = %key, attempt, reason, "effect will be retried");
            metrics::count(Metric::EffectRetried);
            Settle::Retry { after: policy.backoff(attempt) }
        }
    }

    /// A refund's outcome goes into the payment's state before the effect counts as done: carried
    /// out → `refunded`; refused by Telegram → `refund_failed` with the reason (and the effect
    /// fails as before). A store that cannot record it makes the effect retried, and
    /// `refundStarPayment` then answers `CHARGE_ALREADY_REFUNDED`, which counts as carried out.
    async fn record_refund(
        &self,
        id: &crate::domain::PaymentId,
        result: Result<Outcome, EffectError>,
    ) -> Result<Outcome, EffectError> {
        use crate::domain::PaymentStatus::{RefundFailed, Refunded};
        let now = self.clock.now();
        let recorded = match &result {
            Ok(_) => self.payments.move_refund(id, Refunded, None, now).await,
            Err(EffectError::Permanent(why)) => {
                metrics::count(Metric::RefundFailed);
                self.payments.move_refund(id, RefundFailed, Some(why), now).await
            }
            Err(_) => return result,
        };
        match recorded {
            Ok(moved) => {
                if let Some(p) = moved {
                    tracing::info!(payment = %p.id, status = p.status.as_str(), "Stars refund recorded");
                }
                result
            }
            Err(e) => Err(EffectError::Retry { after: None, reason: format!("recording the refund: {e}") }),
        }
    }

    /// What the channel effect must be now, read from the store: a removal of an account with an
    /// active membership, or kept at the import, is dropped; one of an account whose new membership
    /// waits for its join puts it out unbanned; an approval for an account that may no longer
    /// enter becomes a decline; a lift of a ban with no membership to let in is dropped. Other
    /// effects run as queued.
    async fn current_effect(&self, effect: &Effect) -> Result<Current, StoreError> {
        let account = match effect {
            Effect::RemoveMember { telegram_user_id, .. }
            | Effect::ApproveJoinRequest { telegram_user_id }
            | Effect::LiftBan { telegram_user_id } => *telegram_user_id,
            _ => return Ok(Current::Run(effect.clone())),
        };
        let now = self.clock.now();
        let current = self.access.current_membership(account).await?;
        let barred = self.bars.account_bar(account).await?.is_some();
        let holds_place = current.as_ref().is_some_and(|m| m.holds_place(now));
        let active = current.as_ref().is_some_and(|m| m.is_active(now));
        let admitted = current.as_ref().is_some_and(|m| m.admits(now)) && !barred;
        let exempt =
            matches!(effect, Effect::RemoveMember { .. }) && self.exemptions.exemption(account).await?.is_some();
        Ok(match effect {
            Effect::RemoveMember { .. } if active => Current::Drop("the account has a current membership"),
            Effect::RemoveMember { .. } if exempt => Current::Drop("the account is exempt (kept at the import)"),
            // Paid again, not joined yet, and maybe still in on what ended: Telegram sends no join
            // for an account already in, so the new period would never start. Out now, never
            // banned, so that the invite it holds lets it back in (and starts the period).
            Effect::RemoveMember { .. } if holds_place => {
                Current::Run(Effect::RemoveMember { telegram_user_id: account, keep_banned: false })
            }
            Effect::ApproveJoinRequest { .. } if !admitted => {
                Current::Run(Effect::DeclineJoinRequest { telegram_user_id: account })
            }
            Effect::LiftBan { .. } if !holds_place => Current::Drop("the account has no current membership"),
            _ => Current::Run(effect.clone()),
        })
    }

    /// A removal that raced a payment or a join: the account's membership was written while the
    /// ban was on its way (the check before it saw none, or one still waiting for its join). The
    /// ban is lifted, so that the invite the account got lets it in, and a membership marked in the
    /// channel is marked out, so that `/start` invites again.
    async fn undo_if_let_back_in_meanwhile(&self, key: &str, effect: &Effect) -> Result<(), EffectError> {
        let Effect::RemoveMember { telegram_user_id: account, keep_banned } = *effect else {
            return Ok(());
        };
        let retry = |e: StoreError| EffectError::Retry { after: None, reason: e.to_string() };
        let now = self.clock.now();
        let current = self.access.current_membership(account).await.map_err(retry)?;
        let Some(m) = current.filter(|m| m.holds_place(now) && (keep_banned || m.in_channel)) else {
            return Ok(());
        };
        if self.bars.account_bar(account).await.map_err(retry)?.is_some() {
            return Ok(());
        }
        tracing::warn!(key, membership = %m.id, "removed while a payment or a join let it back in: let back");
        if m.in_channel {
            self.access.set_in_channel(&m.id, false, now).await.map_err(retry)?;
        }
        if keep_banned {
            return self.runner.run(key, &Effect::LiftBan { telegram_user_id: account }).await;
        }
        Ok(())
    }

    /// An effect given up after its retries: audited, and announced as an `Effect Dead-Lettered`
    /// business event, which the caller queues (none for a dead event, which would loop).
    async fn dead_lettered(&self, envelope: &Envelope, reason: &str) -> Option<Envelope> {
        let kind = serde_json::to_value(&envelope.effect).ok().and_then(|v| v["type"].as_str().map(str::to_owned));
        let details = serde_json::json!({ "key": envelope.idempotency_key, "effect": kind, "error": reason });
        let entry = self.audit_entry(AuditAction::EffectDeadLettered, envelope, details).ok()?;
        if let Err(e) = self.audit_log.record(&entry).await {
            tracing::error!(key = %envelope.idempotency_key, error = %e, "could not audit a dead-lettered effect");
        }
        if matches!(envelope.effect, Effect::Publish { .. }) {
            return None;
        }
        super::business_event(&entry)
    }

    async fn dropped(&self, envelope: &Envelope, why: &'static str) -> Result<(), EffectError> {
        tracing::info!(key = %envelope.idempotency_key, why, "stale effect dropped");
        let retry = |e: String| EffectError::Retry { after: None, reason: e };
        let details = serde_json::json!({ "key": envelope.idempotency_key, "effect": envelope.effect, "why": why });
        let entry =
            self.audit_entry(AuditAction::EffectDropped, envelope, details).map_err(|e| retry(e.to_string()))?;
        self.audit_log.record(&entry).await.map_err(|e| retry(e.to_string()))
    }

    /// The queue's audit entry about one effect, on the account it acts on.
    fn audit_entry(
        &self,
        action: AuditAction,
        envelope: &Envelope,
        details: serde_json::Value,
    ) -> Result<AuditEntry, crate::domain::DomainError> {
        let at = self.clock.now();
        Ok(AuditEntry {
            id: AuditId::generate(at)?,
            at,
            actor: "queue".into(),
            action,
            user_id: None,
            telegram_user_id: envelope.effect.account(),
            details,
        })
    }

    /// The effect's intent is settled (a failure here only means the sweep queues it once more,
    /// and the claim makes that harmless). Only removals have intents.
    async fn settle_intent(&self, envelope: &Envelope) {
        if !matches!(envelope.effect, Effect::RemoveMember { .. }) {
            return;
        }
        let key = &envelope.idempotency_key;
        if let Err(e) = self.outbox.settle_intent(key).await {
            tracing::warn!(key, error = %e, "could not settle the effect's intent");
        }
    }
}

enum Current {
    Run(Effect),
    Drop(&'static str),
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::RetryPolicy;

    #[test]
    fn the_retry_policy_backs_off_and_matches_the_redrive_policy() {
        let waits = |p: RetryPolicy| (1..p.attempts).map(|n| p.backoff(n)).collect::<Vec<_>>();
        assert_eq!(waits(RetryPolicy::SQS), [2, 4, 8, 16, 32, 64, 128, 256, 300].map(Duration::from_secs));
        assert_eq!(
            waits(RetryPolicy::LOCAL),
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000].map(Duration::from_millis)
        );
        // Longer in all than a three-minute outage, on both.
        for p in [RetryPolicy::SQS, RetryPolicy::LOCAL] {
            assert!(waits(p).iter().sum::<Duration>() > Duration::from_secs(180), "{p:?}");
        }
        assert_eq!(RetryPolicy::SQS.backoff(40), Duration::from_secs(300));
        // The SQS consumer dead-letters at its last receive; the queue's redrive policy must agree.
        let template = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"));
        let counts: Vec<&str> =
            template.lines().filter_map(|l| l.trim().strip_prefix("maxReceiveCount:")).map(str::trim).collect();
        assert_eq!(counts, [RetryPolicy::SQS.attempts.to_string()]);
    }
}

//! Carrying out queued side effects: the same code behind the local queue and the SQS consumer.

use std::sync::Arc;
use std::time::Duration;

use crate::ports::{Effect, Envelope, Mailer, Telegram, TelegramError};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EffectError {
    /// Worth another try: after `after` when Telegram said so, else with backoff.
    #[error("retry: {reason}")]
    Retry { after: Option<Duration>, reason: String },
    /// Will not succeed by retrying: goes to the dead letters with this reason.
    #[error("failed: {0}")]
    Permanent(String),
}

pub struct EffectRunner {
    telegram: Arc<dyn Telegram>,
    mailer: Arc<dyn Mailer>,
}

impl EffectRunner {
    pub fn new(telegram: Arc<dyn Telegram>, mailer: Arc<dyn Mailer>) -> Self {
        Self { telegram, mailer }
    }

    pub async fn run(&self, envelope: &Envelope) -> Result<(), EffectError> {
        let result = match &envelope.effect {
            Effect::SendMessage { chat_id, text } => {
                match self.telegram.send_message(*chat_id, text, None).await {
                    // Someone who blocked the bot cannot be messaged; nothing to retry.
                    Err(TelegramError::Unreachable(why)) => {
                        tracing::info!(key = %envelope.idempotency_key, why, "message not delivered: user unreachable");
                        Ok(())
                    }
                    other => other,
                }
            }
            Effect::SendEmail { email } => {
                return self
                    .mailer
                    .send(email)
                    .await
                    .map_err(|e| EffectError::Retry { after: None, reason: e.to_string() });
            }
            Effect::RemoveMember { telegram_user_id, keep_banned } => {
                let banned = self.telegram.ban(*telegram_user_id).await;
                match (banned, keep_banned) {
                    (Ok(()), false) => self.telegram.unban(*telegram_user_id, true).await,
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
        };
        result.map_err(|e| match e {
            TelegramError::RetryAfter(s) => {
                EffectError::Retry { after: Some(Duration::from_secs(u64::from(s))), reason: e.to_string() }
            }
            TelegramError::Unavailable(_) => EffectError::Retry { after: None, reason: e.to_string() },
            TelegramError::Refused(_) | TelegramError::Unreachable(_) => EffectError::Permanent(e.to_string()),
        })
    }
}

/// A join request already handled (or a link already revoked) answers 400; the effect holds.
fn already_done_is_done(result: Result<(), TelegramError>) -> Result<(), TelegramError> {
    match result {
        Err(TelegramError::Refused(why))
            if why.contains("HIDE_REQUESTER_MISSING")
                || why.contains("USER_ALREADY_PARTICIPANT")
                || why.contains("INVITE_HASH_EXPIRED") =>
        {
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
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Will not succeed; the queue keeps it until its dead-letter rule takes it.
    Failed(String),
}

/// How long a consumer holds an effect's key: longer than a Lambda invocation may run.
const LEASE_SECONDS: i64 = 120;

/// Applies each effect at most once in effect: its idempotency key is claimed (with a lease, so a
/// consumer that dies mid-way does not lose it), then marked done, or released on failure.
pub struct Consumer {
    runner: EffectRunner,
    store: Arc<dyn crate::ports::Store>,
    clock: Arc<dyn crate::ports::Clock>,
}

impl Consumer {
    pub fn new(runner: EffectRunner, store: Arc<dyn crate::ports::Store>, clock: Arc<dyn crate::ports::Clock>) -> Self {
        Self { runner, store, clock }
    }

    pub async fn handle(&self, envelope: &Envelope) -> Outcome {
        let key = &envelope.idempotency_key;
        let now = self.clock.now();
        match self.store.claim_effect(key, now, chrono::Duration::seconds(LEASE_SECONDS)).await {
            Ok(true) => {}
            Ok(false) => return Outcome::AlreadyDone,
            Err(e) => return Outcome::Retry { after: None, reason: e.to_string() },
        }
        let result = self.runner.run(envelope).await;
        let settled = match &result {
            Ok(()) => self.store.complete_effect(key, self.clock.now()).await,
            Err(_) => self.store.release_effect(key).await,
        };
        if let Err(e) = settled {
            tracing::error!(key = %key, error = %e, "could not record the effect's outcome");
        }
        match result {
            Ok(()) => Outcome::Done,
            Err(EffectError::Retry { after, reason }) => Outcome::Retry { after, reason },
            Err(EffectError::Permanent(reason)) => Outcome::Failed(reason),
        }
    }
}

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

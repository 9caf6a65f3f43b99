//! Long polling for the local host with a real bot: Telegram's updates fetched with
//! `getUpdates` instead of a webhook, each handled like a webhook delivery.

use std::sync::Arc;
use std::time::Duration;

use telegate_core::adapters::telegram::BotApi;
use telegate_core::app::App;
use telegate_core::ports::TelegramError;
use tokio::sync::watch;

/// Long polling: each update goes through `App::handle_update`, like a webhook delivery. A failed
/// update is retried (5 times) before the offset moves past it.
pub(crate) async fn poll(bot: Arc<BotApi>, app: App, mut stop: watch::Receiver<bool>) {
    match bot.webhook_state().await {
        Ok(w) if w.url.as_deref().is_some_and(|u| !u.is_empty()) => {
            tracing::error!(
                webhook = w.url.as_deref().unwrap_or_default(),
                "a webhook is registered for this bot, so Telegram will not answer getUpdates: remove it with \
                 `telegate set-webhook --delete` (or set TELEGATE_POLLING=0 and let the webhook route receive updates)"
            );
            return;
        }
        Ok(_) => tracing::info!("long polling Telegram for message, chat_member and chat_join_request updates"),
        Err(e) => tracing::warn!(error = %e, "could not read the webhook state; polling anyway"),
    }
    let mut offset: i32 = 0;
    let mut failures = 0u32;
    loop {
        let batch = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            b = bot.poll(offset, 25) => b,
        };
        let updates = match batch {
            Ok(u) => u,
            Err(e) => {
                let wait = match e {
                    TelegramError::RetryAfter(s) => Duration::from_secs(u64::from(s)),
                    _ => Duration::from_secs(3),
                };
                tracing::warn!(error = %e, wait_s = wait.as_secs(), "getUpdates failed");
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
        };
        for update in updates {
            match app.bot.handle_update(&update).await {
                Ok(()) => failures = 0,
                Err(e) if failures < 5 => {
                    failures += 1;
                    tracing::warn!(update_id = update.update_id, error = %e, "update failed; will retry");
                    tokio::time::sleep(Duration::from_secs(u64::from(failures))).await;
                    break;
                }
                Err(e) => {
                    failures = 0;
                    tracing::error!(update_id = update.update_id, error = %e, "update failed 5 times; skipped");
                }
            }
            offset = i32::try_from(update.update_id + 1).unwrap_or(i32::MAX);
        }
    }
}

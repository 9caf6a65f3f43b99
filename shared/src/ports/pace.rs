//! One pace for every Bot API call the bot makes: Telegram's flood limit is per bot, whatever
//! the number of processes calling it.

use std::time::SystemTime;

use async_trait::async_trait;

#[async_trait]
pub trait Pace: Send + Sync {
    /// Reserves the next `calls` turns, one after the other; answers when the first one starts
    /// (now or later). Never fails: a pace that cannot be shared paces this process alone.
    async fn reserve(&self, calls: u32) -> SystemTime;
}

//! The ports: what the use cases need from the outside world, named by role. Adapters implement
//! them (SQLite and DynamoDB stores, Telegram via teloxide-core, SES or the local outbox, SQS or the
//! local queue); the use cases see only these traits.

mod clock;
mod events;
mod mailer;
mod queue;
mod store;
mod telegram;

pub use clock::*;
pub use events::*;
pub use mailer::*;
pub use queue::*;
pub use store::*;
pub use telegram::*;

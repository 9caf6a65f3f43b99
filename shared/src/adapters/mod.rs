//! Adapters: the ports implemented for real systems.

pub mod clock;
pub mod local_queue;
pub mod outbox;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod telegram;

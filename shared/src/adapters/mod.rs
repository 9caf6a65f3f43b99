//! Adapters: the ports implemented for real systems.

#[cfg(feature = "aws")]
pub mod aws;
pub mod clock;
#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod local_queue;
pub mod outbox;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod telegram;

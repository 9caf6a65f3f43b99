//! Adapters: the ports implemented for real systems.

#[cfg(feature = "aws")]
pub mod aws;
pub mod clock;
#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
pub mod eventbridge;
pub mod local_jobs;
pub mod local_queue;
pub mod outbox;
pub mod pace;
#[cfg(feature = "aws")]
pub mod secrets;
#[cfg(feature = "aws")]
pub mod ses;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;
#[cfg(any(feature = "sqlite", feature = "aws"))]
mod stored;
pub mod telegram;

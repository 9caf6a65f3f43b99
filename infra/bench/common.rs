//! What the sweep benchmarks share.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use telegate_core::ports::{Envelope, Queue, QueueError};

/// The sweep only queues effects; the queue counts them.
#[derive(Default)]
pub struct CountingQueue(pub AtomicUsize);

#[async_trait]
impl Queue for CountingQueue {
    async fn enqueue(&self, envelopes: Vec<Envelope>) -> Result<(), QueueError> {
        self.0.fetch_add(envelopes.len(), Ordering::Relaxed);
        Ok(())
    }
}

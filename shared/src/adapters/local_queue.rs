//! The in-process queue of `telegate serve`: the same effect runner as the SQS consumer, with
//! retries (Telegram's `retry_after`, else backoff) and dead letters after 5 attempts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, Notify, mpsc};

use crate::app::effects::{Consumer, Outcome};
use crate::ports::{Envelope, Queue, QueueError};

pub const MAX_ATTEMPTS: u32 = 5;

#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub envelope: Envelope,
    pub error: String,
}

struct Shared {
    tx: mpsc::UnboundedSender<(Envelope, u32)>,
    in_flight: AtomicUsize,
    idle: Notify,
    dead: Mutex<Vec<DeadLetter>>,
}

#[derive(Clone)]
pub struct LocalQueue {
    shared: Arc<Shared>,
}

impl LocalQueue {
    /// Starts the worker on the current runtime.
    pub fn start(consumer: Arc<Consumer>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Envelope, u32)>();
        let shared =
            Arc::new(Shared { tx, in_flight: AtomicUsize::new(0), idle: Notify::new(), dead: Mutex::default() });
        let worker = Arc::clone(&shared);
        tokio::spawn(async move {
            while let Some((envelope, attempt)) = rx.recv().await {
                let result = consumer.handle(&envelope).await;
                worker.settle(envelope, attempt, result).await;
            }
        });
        Self { shared }
    }

    /// Waits until every queued effect has been carried out or dead-lettered.
    pub async fn drain(&self) {
        loop {
            let notified = self.shared.idle.notified();
            if self.shared.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.dead.lock().await.clone()
    }
}

impl Shared {
    async fn settle(self: &Arc<Self>, envelope: Envelope, attempt: u32, result: Outcome) {
        match result {
            Outcome::Done | Outcome::AlreadyDone | Outcome::Dropped(_) => self.done(),
            // Flood control delays an effect; it never uses up its attempts.
            Outcome::Retry { after: Some(delay), reason } => self.retry(envelope, attempt, delay, reason),
            Outcome::Retry { after: None, reason } if attempt < MAX_ATTEMPTS => {
                let delay = Duration::from_millis(200 * 2u64.pow(attempt));
                self.retry(envelope, attempt + 1, delay, reason)
            }
            Outcome::Retry { reason: error, .. } | Outcome::Failed(error) => {
                tracing::error!(key = %envelope.idempotency_key, attempt, error, "effect dead-lettered");
                self.dead.lock().await.push(DeadLetter { envelope, error });
                self.done();
            }
        }
    }

    fn retry(self: &Arc<Self>, envelope: Envelope, attempt: u32, delay: Duration, reason: String) {
        tracing::warn!(key = %envelope.idempotency_key, attempt, reason, delay_ms = delay.as_millis() as u64, "effect will be retried");
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if shared.tx.send((envelope, attempt)).is_err() {
                shared.done();
            }
        });
    }

    fn done(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }
}

#[async_trait]
impl Queue for LocalQueue {
    async fn enqueue(&self, envelopes: Vec<Envelope>) -> Result<(), QueueError> {
        for envelope in envelopes {
            self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
            if self.shared.tx.send((envelope, 1)).is_err() {
                self.shared.done();
                return Err(QueueError("the local queue has stopped".into()));
            }
        }
        Ok(())
    }
}

//! The queue of `telegate serve` on the embedded store: the same effect runner as the SQS consumer,
//! carrying out the same retry policy (`RetryPolicy::LOCAL`: Telegram's `retry_after` spends no
//! attempt; else backoff, and dead letters after the last attempt). Queued effects live in the
//! store (`QueueLog`), so a crash or a restart loses
//! none; dead letters stay there, visible (`dead_letters`, the admin route, the log).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;

use crate::app::effects::{Consumer, RetryPolicy, Settle};
use crate::ports::{Clock, Envelope, Queue, QueueError, StoreError};

/// An effect that will not be carried out, with the last error.
#[derive(Clone, Debug, Serialize)]
pub struct DeadLetter {
    pub envelope: Envelope,
    pub error: String,
    pub at: DateTime<Utc>,
}

/// One queued effect as the log holds it.
#[derive(Clone, Debug)]
pub struct Queued {
    pub seq: i64,
    pub envelope: Envelope,
    /// Attempts made so far that count towards the dead letters (flood control does not).
    pub attempt: u32,
}

/// Where the local queue keeps its effects (the SQLite store implements it).
#[async_trait]
pub trait QueueLog: Send + Sync {
    async fn push(&self, envelopes: &[Envelope], at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Effects due at `now` (not dead), oldest first.
    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Queued>, StoreError>;
    async fn retry_at(&self, seq: i64, attempt: u32, at: DateTime<Utc>) -> Result<(), StoreError>;
    async fn remove(&self, seq: i64) -> Result<(), StoreError>;
    async fn bury(&self, seq: i64, error: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Effects not yet carried out nor dead.
    async fn waiting(&self) -> Result<u64, StoreError>;
    /// The next time an effect waiting for its retry is due.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError>;
}

#[derive(Clone)]
pub struct LocalQueue {
    inner: Arc<Inner>,
}

struct Inner {
    log: Arc<dyn QueueLog>,
    clock: Arc<dyn Clock>,
    /// Something was queued: wakes the worker (a permit is kept if it is busy).
    queued: Notify,
    /// The worker settled a round: wakes whoever drains.
    settled: Notify,
}

impl LocalQueue {
    /// Starts the worker on the current runtime; effects left in the log by an earlier run (a
    /// crash, a restart) are carried out first. The worker stops once the queue is dropped.
    pub fn start(consumer: Arc<Consumer>, log: Arc<dyn QueueLog>, clock: Arc<dyn Clock>) -> Self {
        let inner = Arc::new(Inner { log, clock, queued: Notify::new(), settled: Notify::new() });
        let worker = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while let Some(inner) = worker.upgrade() {
                inner.round(&consumer).await;
            }
        });
        Self { inner }
    }

    /// Waits until every queued effect has been carried out or dead-lettered.
    pub async fn drain(&self) {
        loop {
            let notified = self.inner.settled.notified();
            match self.inner.log.waiting().await {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the local queue cannot count its effects"),
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }

    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.log.dead_letters().await
    }
}

impl Inner {
    /// Carries out what is due, or waits for something to be.
    async fn round(&self, consumer: &Consumer) {
        let now = self.clock.now();
        let due = match self.log.due(now, 10).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "the local queue cannot read its log; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
        };
        if due.is_empty() {
            return self.idle_until_next().await;
        }
        for queued in due {
            let next = consumer.deliver(&queued.envelope, queued.attempt + 1, &RetryPolicy::LOCAL).await;
            if let Err(e) = self.settle(&queued, next).await {
                tracing::error!(key = %queued.envelope.idempotency_key, error = %e, "could not settle an effect; it runs again");
            }
        }
        self.settled.notify_waiters();
    }

    async fn idle_until_next(&self) {
        let wait = match self.log.next_due().await {
            Ok(Some(at)) => (at - self.clock.now()).to_std().unwrap_or_default().min(Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        };
        let _ = tokio::time::timeout(wait, self.queued.notified()).await;
    }

    async fn settle(&self, queued: &Queued, next: Settle) -> Result<(), StoreError> {
        let now = self.clock.now();
        let later = |d: Duration| now + chrono::Duration::from_std(d).unwrap_or_default();
        let then = match next {
            Settle::Finished { then } => {
                self.log.remove(queued.seq).await?;
                then
            }
            Settle::FloodControl { after } => return self.log.retry_at(queued.seq, queued.attempt, later(after)).await,
            Settle::Retry { after } => return self.log.retry_at(queued.seq, queued.attempt + 1, later(after)).await,
            Settle::DeadLetter { reason, then } => {
                self.log.bury(queued.seq, &reason, now).await?;
                then
            }
        };
        if let Some(event) = then {
            self.log.push(&[event], now).await?;
            self.queued.notify_one();
        }
        Ok(())
    }
}

#[async_trait]
impl Queue for LocalQueue {
    async fn enqueue(&self, envelopes: Vec<Envelope>) -> Result<(), QueueError> {
        let inner = &self.inner;
        inner.log.push(&envelopes, inner.clock.now()).await.map_err(|e| QueueError(crate::ports::Cause::new(e)))?;
        inner.queued.notify_one();
        Ok(())
    }
}

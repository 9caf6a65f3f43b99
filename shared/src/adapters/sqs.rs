//! Side effects on SQS: typed JSON envelopes out; in, each message goes through the `Consumer`
//! and is settled: deleted when done; under Telegram's flood control, sent again as a fresh copy
//! delayed by `retry_after` (never a sleep in the function, and never a receive counted towards
//! the dead-letter queue); after other failures made visible again after the backoff of
//! `RetryPolicy::SQS`, and after its last receive the queue's redrive policy moves it to the
//! dead-letter queue, its last error logged.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry};

use crate::app::effects::{Consumer, RetryPolicy, Settle};
use crate::ports::{Envelope, Queue, QueueError};

pub struct SqsQueue {
    client: Client,
    url: String,
}

/// One received message, as SQS (or a Lambda SQS event) hands it over.
pub struct Delivery {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub receive_count: u32,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self { client, url: url.into() }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Receives up to 10 messages (long polling `wait` seconds), handles and settles each.
    /// Returns how many were received.
    pub async fn poll(&self, consumer: &Consumer, wait: i32) -> Result<usize, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| QueueError(crate::ports::Cause::with("SQS receive", e)))?;
        let messages = out.messages.unwrap_or_default();
        for m in &messages {
            let delivery = Delivery {
                message_id: m.message_id.clone().unwrap_or_default(),
                receipt_handle: m.receipt_handle.clone().unwrap_or_default(),
                body: m.body.clone().unwrap_or_default(),
                receive_count: m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
            };
            let done = self.handle(consumer, &delivery).await?;
            if done {
                self.client
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(&delivery.receipt_handle)
                    .send()
                    .await
                    .map_err(|e| QueueError(crate::ports::Cause::with("SQS delete", e)))?;
            }
        }
        Ok(messages.len())
    }

    /// Handles one delivery: `true` when it is settled for good (delete it, or report success);
    /// `false` leaves it on the queue, visible again after the delay this decides.
    pub async fn handle(&self, consumer: &Consumer, delivery: &Delivery) -> Result<bool, QueueError> {
        let envelope: Envelope = match serde_json::from_str(&delivery.body) {
            Ok(e) => e,
            Err(e) => {
                // A poison message: it never blocks the others and ends in the dead-letter queue.
                tracing::error!(message = %delivery.message_id, receives = delivery.receive_count, error = %e, "not an effect envelope");
                return Ok(false);
            }
        };
        let delay = match consumer.deliver(&envelope, delivery.receive_count, &RetryPolicy::SQS).await {
            Settle::Finished { then } => {
                waited(&delivery.body);
                self.announce(&envelope, then).await;
                return Ok(true);
            }
            // Flood control must not use up the receives that lead to the dead-letter queue: a
            // fresh copy waits out Telegram's delay, and this delivery is settled.
            Settle::FloodControl { after } => match self.send_after(&delivery.body, after).await {
                Ok(()) => return Ok(true),
                Err(e) => {
                    tracing::warn!(key = %envelope.idempotency_key, error = %e, "could not send a delayed copy");
                    after
                }
            },
            Settle::Retry { after } => after,
            // Left on the queue: at its next receive the redrive policy moves it to the
            // dead-letter queue.
            Settle::DeadLetter { then, .. } => {
                waited(&delivery.body);
                self.announce(&envelope, then).await;
                RetryPolicy::SQS.unit
            }
        };
        self.retry_later(&delivery.receipt_handle, delay).await?;
        Ok(false)
    }

    /// A message this invocation has no time to start: the same again, for the next invocation, so
    /// that no receive of the dead-letter count is spent on it (its first-queued time is kept).
    pub async fn put_back(&self, body: &str) -> Result<(), QueueError> {
        self.send_after(body, Duration::from_secs(1)).await
    }

    /// The same message again, delivered after `delay` (SQS delays at most 15 minutes; an effect
    /// still under flood control then is simply sent again).
    async fn send_after(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay.as_secs().clamp(1, 900) as i32)
            .send()
            .await
            .map(drop)
            .map_err(|e| QueueError(crate::ports::Cause::with("SQS send", e)))
    }

    pub async fn retry_later(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(delay.as_secs().min(43_200) as i32)
            .send()
            .await
            .map(drop)
            .map_err(|e| QueueError(crate::ports::Cause::with("SQS visibility", e)))
    }

    /// Messages waiting, delayed or being handled (approximate, as SQS counts them).
    pub async fn backlog(&self) -> Result<u64, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| QueueError(crate::ports::Cause::with("SQS attributes", e)))?;
        let attrs = out.attributes.unwrap_or_default();
        Ok([
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ]
        .iter()
        .filter_map(|k| attrs.get(k).and_then(|v| v.parse::<u64>().ok()))
        .sum())
    }
}

impl SqsQueue {
    /// Queues the announcement of an effect given up (a failure is only logged: the audit entry
    /// is written).
    async fn announce(&self, envelope: &Envelope, event: Option<Envelope>) {
        if let Some(event) = event
            && let Err(e) = self.enqueue(vec![event]).await
        {
            tracing::error!(key = %envelope.idempotency_key, error = %e, "dead-letter event not queued");
        }
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn enqueue(&self, envelopes: Vec<Envelope>) -> Result<(), QueueError> {
        for chunk in envelopes.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, envelope) in chunk.iter().enumerate() {
                let mut body = serde_json::to_value(envelope).map_err(|e| QueueError(crate::ports::Cause::new(e)))?;
                // When it was first queued: a delayed copy under flood control keeps it.
                body["queued_at_ms"] = serde_json::Value::from(now_ms());
                let body = body.to_string();
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| QueueError(crate::ports::Cause::new(e)))?,
                );
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| QueueError(crate::ports::Cause::with("SQS send", e)))?;
            if !out.failed.is_empty() {
                return Err(QueueError(format!("SQS refused {} of {} messages", out.failed.len(), chunk.len()).into()));
            }
        }
        Ok(())
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// How long a settled effect waited since it was first queued, for the backlog alarm (a body
/// queued by an earlier release has no time: nothing is told).
fn waited(body: &str) {
    let queued = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|b| b["queued_at_ms"].as_u64());
    if let Some(queued) = queued {
        crate::metrics::effect_age(now_ms().saturating_sub(queued) as f64 / 1000.0);
    }
}

//! The pace of Bot API calls shared by every function: one item holds when the next free turn
//! starts (`next_us`, microseconds since the epoch); a reservation moves it on by its turns in
//! one conditional update. About one write per call, on one item: ~30 writes a second at the
//! busiest, far under a partition's 1,000.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;

use super::codec::*;
use super::{DynamoStore, fault, held, keys};
use crate::adapters::pace::{LocalPace, every};
use crate::ports::{Pace, StoreError};

pub struct DynamoPace {
    client: Client,
    table: String,
    every: Duration,
    /// When the table cannot be reached: this process paces itself.
    alone: LocalPace,
    /// Where this process last saw the pace end: the likelier of the two updates goes first.
    seen: Mutex<SystemTime>,
}

impl DynamoPace {
    pub fn new(store: &DynamoStore, per_second: u32) -> Self {
        Self {
            client: store.client.clone(),
            table: store.table.clone(),
            every: every(per_second),
            alone: LocalPace::new(per_second),
            seen: Mutex::new(UNIX_EPOCH),
        }
    }

    /// One reservation, in at most three conditional updates: the likelier guess first, then
    /// the other; if that other was "idle" and failed, the pace was busy past `now` and stays so
    /// (`next_us` only grows), so "busy" with the same `now` cannot fail.
    async fn shared(&self, calls: u32) -> Result<SystemTime, StoreError> {
        let span = micros(self.every * calls);
        let now = micros(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default());
        let busy = *self.seen.lock().unwrap_or_else(|p| p.into_inner()) > SystemTime::now();
        let guesses: &[bool] = if busy { &[true, false, true] } else { &[false, true] };
        for &guess in guesses {
            if let Some(start) = self.take(now, span, guess).await? {
                let start = UNIX_EPOCH + Duration::from_micros(start);
                *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = start + self.every * calls;
                return Ok(start);
            }
        }
        Err(fault(PaceError::WentBack))
    }

    /// Takes `span` µs of turns: from `now` if the pace is idle (its next turn has passed), else
    /// (`busy`) from where the last reservation ends. `None`: the pace was not as guessed.
    async fn take(&self, now: u64, span: u64, busy: bool) -> Result<Option<u64>, StoreError> {
        let (set, condition, value) = match busy {
            false => ("SET next_us = :v", "attribute_not_exists(next_us) OR next_us <= :now", now + span),
            true => ("SET next_us = next_us + :v", "next_us > :now", span),
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::PACE))
            .key("sk", s("PACE"))
            .update_expression(set)
            .condition_expression(condition)
            .expression_attribute_values(":v", n(value))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) => return held::<(), _, _>(Err(e)).map(|_| None),
        };
        if !busy {
            return Ok(Some(now));
        }
        let old = out.attributes().and_then(|a| a.get("next_us")).and_then(|v| v.as_n().ok());
        old.and_then(|v| v.parse::<u64>().ok()).map(Some).ok_or_else(|| fault(PaceError::MissingTurn))
    }
}

#[derive(Debug, thiserror::Error)]
enum PaceError {
    #[error("the pace item has no next_us")]
    MissingTurn,
    #[error("the pace item went back in time (was it written by something else?)")]
    WentBack,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[async_trait]
impl Pace for DynamoPace {
    async fn reserve(&self, calls: u32) -> SystemTime {
        match self.shared(calls).await {
            Ok(start) => start,
            Err(e) => {
                tracing::warn!(error = %e, "the shared pace cannot be read: this process paces itself");
                self.alone.reserve(calls).await
            }
        }
    }
}

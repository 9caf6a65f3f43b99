//! Business events on an EventBridge bus (`EVENT_BUS_NAME`): source `telegate`, the documented
//! `detail-type`, the JSON `detail` (EVENTS.md). A rejected entry is an error, so the queue tries
//! the effect again and, in the end, dead-letters it. The same bus carries the job runs an admin
//! asks for to the scheduled-jobs function (source `telegate.jobs`).

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::{Job, RunId};
use crate::ports::{BusinessEvent, EVENT_SOURCE, EventBus, EventError, JOB_REQUESTED, JOB_SOURCE, JobStarter};

pub struct EventBridgeBus {
    client: Client,
    bus: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self { client, bus: bus.into() }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, event: &BusinessEvent) -> Result<(), EventError> {
        self.put(EVENT_SOURCE, &event.detail_type, &event.detail, event.at).await
    }
}

#[async_trait]
impl JobStarter for EventBridgeBus {
    async fn start(&self, job: Job, run: &RunId) -> Result<(), EventError> {
        self.put(JOB_SOURCE, JOB_REQUESTED, &json!({ "job": job, "run_id": run }), Utc::now()).await
    }
}

impl EventBridgeBus {
    async fn put(
        &self,
        source: &str,
        detail_type: &str,
        detail: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), EventError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(source)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .time(aws_sdk_eventbridge::primitives::DateTime::from_millis(at.timestamp_millis()))
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| EventError(format!("{:?}", aws_sdk_eventbridge::error::DisplayErrorContext(e))))?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .filter_map(|e| e.error_code().map(|c| format!("{c}: {}", e.error_message().unwrap_or(""))))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(EventError(format!("the bus refused the event: {why}")));
        }
        Ok(())
    }
}

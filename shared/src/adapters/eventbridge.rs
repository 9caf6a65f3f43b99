//! Business events on an EventBridge bus (`EVENT_BUS_NAME`): source `telegate`, the documented
//! `detail-type`, the JSON `detail` (EVENTS.md). A rejected entry is an error, so the queue tries
//! the effect again and, in the end, dead-letters it.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::ports::{BusinessEvent, EVENT_SOURCE, EventBus, EventError};

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
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(&event.detail_type)
            .detail(event.detail.to_string())
            .time(aws_sdk_eventbridge::primitives::DateTime::from_millis(event.at.timestamp_millis()))
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

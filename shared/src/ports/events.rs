//! Business events for integrations: what happened, put on an event bus (EventBridge in AWS, a
//! file locally) for a creator to route to a CRM, a spreadsheet or a webhook.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Job, RunId};

/// One business event. `id` is the audit entry it comes from: a consumer that sees an event twice
/// (delivery is at least once) recognises it by its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BusinessEvent {
    pub id: String,
    /// `Payment Submitted`, `Membership Started`… (EVENTS.md lists them with their `detail`).
    pub detail_type: String,
    pub at: DateTime<Utc>,
    pub detail: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
#[error("event bus unavailable: {0}")]
pub struct EventError(pub String);

#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, event: &BusinessEvent) -> Result<(), EventError>;
}

/// The source every event carries on the bus.
pub const EVENT_SOURCE: &str = "telegate";

/// Starts a job run an admin asked for where the jobs run (the scheduled-jobs function, through
/// the event bus; locally, the host's own runner), so that the request answers at once.
#[async_trait]
pub trait JobStarter: Send + Sync {
    async fn start(&self, job: Job, run: &RunId) -> Result<(), EventError>;
}

/// The source and `detail-type` of a requested run on the bus (`detail`: `{job, run_id}`), which
/// the template's rule sends to the scheduled-jobs function; not a business event (EVENTS.md).
pub const JOB_SOURCE: &str = "telegate.jobs";
pub const JOB_REQUESTED: &str = "Job Run Requested";

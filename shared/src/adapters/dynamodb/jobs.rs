//! The job log (`JOB#`: last runs, cursors, run slots) and the runs an admin asked for (`RUN#`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::codec::*;
use super::{DynamoStore, fault, keys};
use crate::adapters::stored::ts;
use crate::domain::{REQUESTED_RUN_DAYS, RequestedRun, RunId};
use crate::ports::*;

#[async_trait]
impl JobLog for DynamoStore {
    async fn last_job_run(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.get(&keys::job(job), "JOB").await?.map(|i| time(&i, "at")).transpose()
    }

    async fn record_job_run(&self, job: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::job(job)))
            .item("sk", s("JOB"))
            .item("at", s(ts(at)))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }

    async fn put_requested_run(&self, run: &RequestedRun) -> Result<(), StoreError> {
        let body = serde_json::to_string(run).map_err(|e| StoreError::Unavailable(crate::ports::Cause::new(e)))?;
        let forgotten = run.requested_at + chrono::Duration::days(REQUESTED_RUN_DAYS);
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::run(&run.run_id)))
            .item("sk", s("RUN"))
            .item("body", s(body))
            .item("ttl", n(forgotten.timestamp()))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }

    async fn job_cursor(&self, job: &str) -> Result<Option<String>, StoreError> {
        self.get(&keys::job(job), "CURSOR").await?.map(|i| get_s(&i, "cursor")).transpose()
    }

    async fn set_job_cursor(&self, job: &str, cursor: &str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::job(job)))
            .item("sk", s("CURSOR"))
            .item("cursor", s(cursor))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }

    async fn requested_run(&self, id: &RunId) -> Result<Option<RequestedRun>, StoreError> {
        let item = self.get(&keys::run(id), "RUN").await?;
        item.map(|i| parsed(serde_json::from_str(&get_s(&i, "body")?))).transpose()
    }

    async fn claim_job(
        &self,
        job: &str,
        slot: JobSlot,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::job(job)))
            .item("sk", s(slot.name()))
            .item("holder", s(holder))
            .item("until", s(ts(until)))
            .condition_expression("attribute_not_exists(pk) OR #until <= :now OR holder = :holder")
            .expression_attribute_names("#until", "until")
            .expression_attribute_values(":now", s(ts(now)))
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        if super::held(put)? { Ok(None) } else { self.job_holder(job, slot).await }
    }

    async fn release_job(&self, job: &str, slot: JobSlot, holder: &str) -> Result<(), StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::job(job)))
            .key("sk", s(slot.name()))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        // Held by another since: theirs to give back.
        super::held(deleted).map(drop)
    }

    async fn job_holder(&self, job: &str, slot: JobSlot) -> Result<Option<String>, StoreError> {
        self.get(&keys::job(job), slot.name()).await?.map(|i| get_s(&i, "holder")).transpose()
    }
}

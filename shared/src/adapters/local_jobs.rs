//! The local host's way to start a job run an admin asked for: a channel to the host's runner,
//! which runs it in the background (serialised with the scheduler's runs) while the request
//! answers at once, as the scheduled-jobs function does in AWS.

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::domain::{Job, RunId};
use crate::ports::{EventError, JobStarter};

pub struct LocalJobs(mpsc::UnboundedSender<(Job, RunId)>);

/// The runs asked for, in order, for the host's runner.
pub type JobRequests = mpsc::UnboundedReceiver<(Job, RunId)>;

impl LocalJobs {
    pub fn channel() -> (Self, JobRequests) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }
}

#[async_trait]
impl JobStarter for LocalJobs {
    async fn start(&self, job: Job, run: &RunId) -> Result<(), EventError> {
        self.0.send((job, run.clone())).map_err(|_| EventError("the local job runner has stopped".into()))
    }
}

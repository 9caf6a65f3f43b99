//! Job runs an admin asks for: queued at once and read back by id, run where the jobs run (the
//! scheduled-jobs function, the local host's runner), at most one asked for and not finished per
//! job, and none left pending by a stopped process or a time limit.

use std::sync::Arc;
use std::time::Instant;

use chrono::Duration;

use super::jobs::JobRun;
use super::{AppError, Jobs, require};
use crate::auth::{Caller, Role};
use crate::domain::{Job, RUN_DEADLINE_MINUTES, RequestedRun, RunId, RunStatus};
use crate::ports::{Clock, JobLog, JobSlot, JobStarter};

/// Job runs an admin asks for: requested here, started where the jobs run, read back by id.
#[derive(Clone)]
pub struct JobRuns {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) job_log: Arc<dyn JobLog>,
    pub(crate) starter: Arc<dyn JobStarter>,
}

impl JobRuns {
    /// `POST /api/telegram/admin/jobs/{job}/run/`: asks for a run and answers at once. The run
    /// happens where the jobs run, with their time (the scheduled-jobs function; locally, the
    /// host's runner), and is read back by its id (`requested_run`).
    /// At most one run of a job is asked for and not finished: a second request answers that one.
    pub async fn request_job_run(&self, caller: &Caller, name: &str) -> Result<RequestedRun, AppError> {
        require(caller, Role::Admin)?;
        let job = Job::parse(name).map_err(|_| AppError::NotFound("no such job"))?;
        let now = self.clock.now();
        let run = RequestedRun::queued(RunId::generate(now)?, job, &format!("user:{}", caller.user_id), now);
        let until = now + Duration::minutes(RUN_DEADLINE_MINUTES);
        let slot = JobSlot::Request;
        if let Some(holder) = self.job_log.claim_job(job.name(), slot, run.run_id.as_str(), now, until).await? {
            if let Some(pending) = self.pending_run(&holder).await? {
                return Ok(pending);
            }
            // Finished, but its slot not given back (a crash in between): the slot is free.
            self.job_log.release_job(job.name(), slot, &holder).await?;
            if self.job_log.claim_job(job.name(), slot, run.run_id.as_str(), now, until).await?.is_some() {
                return Err(AppError::Conflict {
                    code: "job_run_pending",
                    message: format!("a run of {} was just asked for; read it back, or ask again later", job.name()),
                });
            }
        }
        self.job_log.put_requested_run(&run).await?;
        if let Err(e) = self.starter.start(job, &run.run_id).await {
            tracing::error!(error = %e, job = job.name(), run = %run.run_id, "could not start the job run");
            self.job_log.put_requested_run(&run.clone().failed("it could not be started", self.clock.now())).await?;
            self.job_log.release_job(job.name(), slot, run.run_id.as_str()).await?;
            return Err(AppError::Unavailable("the job run could not be started; try again".into()));
        }
        Ok(run)
    }

    /// The run `holder` names, if it is on record and not finished.
    async fn pending_run(&self, holder: &str) -> Result<Option<RequestedRun>, AppError> {
        let Ok(id) = RunId::parse(holder) else { return Ok(None) };
        let run = self.job_log.requested_run(&id).await?.map(|r| r.as_of(self.clock.now()));
        Ok(run.filter(RequestedRun::is_pending))
    }

    /// At start (the local host): a run asked for that a stopped process left queued is started
    /// again; one it left running is recorded failed. Either way none stays pending forever.
    pub async fn recover_requested_runs(&self) -> Result<(), AppError> {
        for job in Job::ALL {
            let Some(holder) = self.job_log.job_holder(job.name(), JobSlot::Request).await? else { continue };
            let Some(run) = self.pending_run(&holder).await? else {
                self.job_log.release_job(job.name(), JobSlot::Request, &holder).await?;
                continue;
            };
            if run.status == RunStatus::Queued && self.starter.start(job, &run.run_id).await.is_ok() {
                tracing::info!(job = job.name(), run = %run.run_id, "a run asked for before the restart: started again");
                continue;
            }
            tracing::warn!(job = job.name(), run = %run.run_id, "a run the stopped process left unfinished: failed");
            let failed = run.failed("the process that ran it stopped; ask again", self.clock.now());
            self.job_log.put_requested_run(&failed).await?;
            self.job_log.release_job(job.name(), JobSlot::Request, &holder).await?;
        }
        Ok(())
    }

    /// `GET /api/telegram/admin/job-runs/{run_id}/`: how far a requested run has got.
    pub async fn requested_run(&self, caller: &Caller, raw: &str) -> Result<RequestedRun, AppError> {
        require(caller, Role::Admin)?;
        let id = RunId::parse(raw).map_err(|_| AppError::NotFound("no such job run"))?;
        let run = self.job_log.requested_run(&id).await?.ok_or(AppError::NotFound("no such job run"))?;
        Ok(run.as_of(self.clock.now()))
    }
}

/// Where the jobs run (the scheduled-jobs function, the local runner).
impl Jobs {
    /// Runs a job an admin asked for (the scheduled-jobs function, the local runner), recording
    /// under its id when it started and how it ended.
    pub async fn run_requested(&self, job: Job, id: &RunId, deadline: Instant) -> Result<JobRun, AppError> {
        let now = self.clock.now();
        let asked = match self.job_log.requested_run(id).await? {
            Some(run) if run.job == job => run,
            Some(run) => {
                return Err(AppError::Invalid(format!(
                    "run {id} was asked for {}, not {}",
                    run.job.name(),
                    job.name()
                )));
            }
            // Only this bus's own events reach here, and each job is idempotent: run it, on record.
            None => {
                tracing::warn!(run = %id, job = job.name(), "a job run that is not on record; running it");
                RequestedRun::queued(id.clone(), job, "unknown", now)
            }
        };
        let running = asked.started(now);
        self.job_log.put_requested_run(&running).await?;
        let result = self.run_job_as(job, &running.requested_by, id.as_str(), deadline).await;
        let ended = match &result {
            Ok(run) => running.done(run.processed, run.complete, self.clock.now()),
            Err(AppError::Conflict { message, .. }) => running.failed(message, self.clock.now()),
            Err(_) => {
                running.failed("it failed; the cause is in the log of the function that ran it", self.clock.now())
            }
        };
        if let Err(w) = self.job_log.put_requested_run(&ended).await {
            tracing::error!(error = %w, run = %id, "could not record how the run ended");
        }
        self.job_log.release_job(job.name(), JobSlot::Request, id.as_str()).await?;
        result
    }
}

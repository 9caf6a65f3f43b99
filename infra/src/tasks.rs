//! The local host's background tasks: the SQS consumer (on AWS resources), the scheduler (the
//! local Celery beat) and the runner of the job runs admins ask for.

use std::sync::Arc;
use std::time::Duration;

use telegate_core::adapters::local_jobs::JobRequests;
use telegate_core::adapters::sqs::SqsQueue;
use telegate_core::app::App;
use telegate_core::app::effects::Consumer;
use tokio::sync::watch;

/// The SQS consumer of the local host when it runs on AWS resources.
pub(crate) async fn consume_sqs(queue: Arc<SqsQueue>, consumer: Arc<Consumer>, mut stop: watch::Receiver<bool>) {
    loop {
        let polled = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = queue.poll(&consumer, 1) => r,
        };
        if let Err(e) = polled {
            tracing::warn!(error = %e, "SQS poll failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// The local Celery beat: checks every 30 s which jobs are due on the app's clock.
pub(crate) async fn schedule(app: App, jobs: Arc<tokio::sync::Mutex<()>>, mut stop: watch::Receiver<bool>) {
    loop {
        {
            let _guard = jobs.lock().await;
            if let Err(e) = app.jobs.run_due_jobs().await {
                tracing::error!(error = %e, "scheduled jobs failed; retrying at the next tick");
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }
}

/// The job runs admins ask for, in order, each within `JOB_MAX_SECONDS`. A job's run slot (in the
/// store) keeps a run from overlapping the scheduler's run of the same job; other jobs go on.
/// A run still queued when the host stops is started again at the next start.
pub(crate) async fn run_requested(app: App, mut requests: JobRequests, mut stop: watch::Receiver<bool>) {
    loop {
        let (job, id) = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            next = requests.recv() => match next {
                Some(r) => r,
                None => return,
            },
        };
        let limit = Duration::from_secs(u64::from(app.settings.limits.job_max_seconds));
        if let Err(e) = app.jobs.run_requested(job, &id, std::time::Instant::now() + limit).await {
            tracing::error!(error = %e, job = job.name(), run = %id, "the requested job run failed");
        }
    }
}

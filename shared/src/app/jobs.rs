//! The scheduled jobs: each idempotent, each returning how many items it processed.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::ending::renew_by;
use super::{AppError, Auditor, Ending, Meaning, Notifier, Stars};
use crate::config::Settings;
use crate::domain::{
    AuditAction, Job, Membership, NotificationKind, READ_NOTIFICATION_DAYS, RUN_DEADLINE_MINUTES,
    UNREAD_NOTIFICATION_DAYS, texts,
};
use crate::ports::{
    AccessStore, Clock, Effect, EffectOutbox, Exemptions, JobLog, JobSlot, LifecycleStore, NotificationStore,
    PageRequest, Presence, Queue, Stats, Telegram,
};

/// Rows read per round of a sweep.
pub(super) const BATCH: u32 = 500;

/// The scheduled jobs (warnings, expiry, reconciliations, clean-ups), run by the scheduler or on request.
#[derive(Clone)]
pub struct Jobs {
    pub(crate) access: Arc<dyn AccessStore>,
    pub(crate) auditor: Auditor,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ending: Arc<Ending>,
    pub(crate) exemptions: Arc<dyn Exemptions>,
    pub(crate) job_log: Arc<dyn JobLog>,
    pub(crate) lifecycle: Arc<dyn LifecycleStore>,
    pub(crate) notifications: Arc<dyn NotificationStore>,
    pub(crate) notifier: Notifier,
    pub(crate) outbox: Arc<dyn EffectOutbox>,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) stars: Arc<Stars>,
    pub(crate) stats: Arc<dyn Stats>,
    pub(crate) telegram: Arc<dyn Telegram>,
}

impl Jobs {
    /// Runs one job now (EventBridge, the local scheduler, or an admin) and records the run,
    /// within `JOB_MAX_SECONDS`.
    pub async fn run_job(&self, job: Job, actor: &str) -> Result<JobRun, AppError> {
        let limit = std::time::Duration::from_secs(u64::from(self.settings.limits.job_max_seconds));
        self.run_job_until(job, actor, Instant::now() + limit).await
    }

    /// A scheduled run (EventBridge, the local scheduler), under the job's one-run-at-a-time slot;
    /// `Conflict("job_running")` while another run of the job holds it.
    pub async fn run_job_until(&self, job: Job, actor: &str, deadline: Instant) -> Result<JobRun, AppError> {
        let holder = format!("{actor}@{}", self.clock.now().timestamp_micros());
        self.run_job_as(job, actor, &holder, deadline).await
    }

    /// One run of a job at a time, scheduled or asked for, on every host: the run slot is held
    /// for the run (`RUN_DEADLINE_MINUTES` at most, so that a killed run does not hold it for
    /// good).
    pub(super) async fn run_job_as(
        &self,
        job: Job,
        actor: &str,
        holder: &str,
        deadline: Instant,
    ) -> Result<JobRun, AppError> {
        let now = self.clock.now();
        let until = now + Duration::minutes(RUN_DEADLINE_MINUTES);
        if let Some(other) = self.job_log.claim_job(job.name(), JobSlot::Run, holder, now, until).await? {
            tracing::warn!(job = job.name(), other = %other, "another run of this job is in progress: not run now");
            return Err(AppError::Conflict {
                code: "job_running",
                message: format!("another run of {} was in progress; ask again once it is done", job.name()),
            });
        }
        let result = self.run_job_now(job, actor, deadline).await;
        if let Err(e) = self.job_log.release_job(job.name(), JobSlot::Run, holder).await {
            tracing::error!(error = %e, job = job.name(), "could not give the job's run slot back; it runs out by itself");
        }
        result
    }

    /// Runs one job, starting no new batch after `deadline` (the Lambda function passes its own
    /// remaining time): a run cut short has done whole batches only, and the next run goes on from
    /// what is still due.
    async fn run_job_now(&self, job: Job, actor: &str, deadline: Instant) -> Result<JobRun, AppError> {
        let now = self.clock.now();
        // Every run (hourly at least) first relays what a crashed process left between commit and
        // queue; a queue still down does not stop the job itself.
        if let Err(e) = self.relay_intents(now).await {
            tracing::error!(error = %e, "could not relay pending effect intents; the next job run tries again");
        }
        let (processed, complete) = match job {
            Job::ExpireTokens => in_batches(deadline, || self.lifecycle.expire_tokens(now, BATCH)).await?,
            Job::ExpireSubscriptions => self.ending.expire_subscriptions(now, deadline).await?,
            Job::ExpirationWarnings => self.expiration_warnings(now, deadline).await?,
            Job::ReconcileMembers => self.reconcile_members(now, deadline).await?,
            Job::ReconcileStars => self.stars.reconcile_stars(deadline).await?,
            Job::CleanupNotifications => {
                let read = now - Duration::days(READ_NOTIFICATION_DAYS);
                let unread = now - Duration::days(UNREAD_NOTIFICATION_DAYS);
                in_batches(deadline, || self.notifications.delete_old_notifications(read, unread, BATCH)).await?
            }
        };
        // Only a run that got through what was due counts as the job's run: after one cut short,
        // the local scheduler runs it again on its next tick, and doctor does not call it done.
        if complete {
            self.job_log.record_job_run(job.name(), now).await?;
        }
        // The month's figure of members active, for the console's chart of the last 12 months.
        if job == Job::ExpireSubscriptions
            && let Err(e) = self.stats.record_active_members(now).await
        {
            tracing::error!(error = %e, "could not keep this month's number of active members");
        }
        let details = json!({ "job": job.name(), "processed": processed, "complete": complete });
        self.auditor.audit(actor, AuditAction::JobRun, None, None, details).await?;
        tracing::info!(job = job.name(), processed, complete, "job run");
        Ok(JobRun { processed, complete })
    }

    /// Runs every job whose last scheduled time has passed since its last run (the local scheduler):
    /// a job missed while the host was down runs once on the next tick.
    pub async fn run_due_jobs(&self) -> Result<Vec<(Job, u64)>, AppError> {
        let now = self.clock.now();
        let mut ran = Vec::new();
        for job in Job::ALL {
            let schedule = self.settings.schedule(job);
            let due = schedule.last_due(now);
            match self.job_log.last_job_run(job.name()).await? {
                // A new store starts the clock: the first run is at the next scheduled time, as with beat.
                None => self.job_log.record_job_run(job.name(), now).await?,
                Some(last) if last < due => match self.run_job(job, "scheduler").await {
                    Ok(run) => ran.push((job, run.processed)),
                    // A run asked for is at it: this one is due again at the next tick.
                    Err(AppError::Conflict { code: "job_running", .. }) => {}
                    Err(e) => return Err(e),
                },
                Some(_) => {}
            }
        }
        Ok(ran)
    }

    async fn expiration_warnings(&self, now: DateTime<Utc>, deadline: Instant) -> Result<(u64, bool), AppError> {
        let mut thresholds = self.settings.expiry_warning_days.clone();
        thresholds.sort_unstable();
        let Some(&widest) = thresholds.last() else {
            return Ok((0, true));
        };
        let until = now + Duration::days(i64::from(widest));
        let mut sent = 0;
        let mut page = PageRequest { limit: BATCH, after: None };
        loop {
            // A warning is claimed before it is sent: a run cut short here sends the rest next time.
            if out_of_time(deadline) {
                return Ok((sent, false));
            }
            let ending = self.lifecycle.ending_between(now, until, &page).await?;
            for m in &ending.items {
                let Some(end) = m.expires_at else { continue };
                let left = end - now;
                // The narrowest threshold the membership is within; wider ones are marked too, so
                // that a late first run sends one warning, not one per threshold.
                let mut applicable = thresholds.iter().filter(|t| left <= Duration::days(i64::from(**t)));
                let Some(&narrowest) = applicable.next() else {
                    continue;
                };
                let fresh = self.lifecycle.claim_warning(&m.id, narrowest, end).await?;
                for &wider in applicable {
                    self.lifecycle.claim_warning(&m.id, wider, end).await?;
                }
                if fresh {
                    sent += 1;
                    self.warn(m, end, now).await?;
                }
            }
            // Pages follow the end date, then the id: members ending at the same instant (an
            // import, a season's end) are all warned, whatever the page they fall on.
            match ending.next {
                Some(next) => page.after = Some(next),
                None => return Ok((sent, true)),
            }
        }
    }

    async fn warn(&self, m: &Membership, end: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), AppError> {
        let days = m.days_remaining(now);
        let lang = self.notifier.payer_lang(m).await?;
        let removal = end + Duration::hours(i64::from(self.settings.grace_hours));
        let text = texts::warning(lang, &self.settings.channel_name, end, days, renew_by(m), removal);
        let key = format!("warn:{}:{}:{days}", m.id, end.timestamp());
        self.notifier.notify_member(m, NotificationKind::ExpirationWarning, &text, &key).await?;
        self.auditor
            .audit(
                "job:expiration-warnings",
                AuditAction::WarningSent,
                Some(&m.user_id),
                Some(m.telegram_user_id),
                json!({ "membership_id": m.id, "expires_at": end, "days_remaining": days }),
            )
            .await
    }
}

impl Jobs {
    /// Telegram against the store: people whose membership ended or was revoked in the last 7 days
    /// are confirmed out of the channel (removed again if not); active members believed to be in
    /// the channel are checked too (up to a limit per run) and those who left are recorded. Paced to
    /// stay under Telegram's limits. Returns how many it fixed.
    async fn reconcile_members(&self, now: DateTime<Utc>, deadline: Instant) -> Result<(u64, bool), AppError> {
        let limits = self.settings.limits;
        let pace = std::time::Duration::from_millis(1000 / u64::from(limits.reconcile_per_second.max(1)));
        let own = Instant::now() + std::time::Duration::from_secs(u64::from(limits.reconcile_max_seconds));
        let deadline = deadline.min(own);
        let Some(mut fixed) = self.reconcile_demoted(now, pace, deadline).await? else {
            return Ok((0, false));
        };
        let mut seen = std::collections::HashSet::new();
        for m in self.lifecycle.ended_since(now - Duration::days(7), 10_000).await? {
            // Just ended: its removal is still on the queue.
            if m.ended_at.is_some_and(|at| at > now - Duration::minutes(10)) || !seen.insert(m.telegram_user_id) {
                continue;
            }
            // Paid again since: the current membership decides.
            if self.access.current_membership(m.telegram_user_id).await?.is_some() {
                continue;
            }
            let Some(presence) = self.presence_paced(m.telegram_user_id, pace, deadline).await else {
                return Ok((fixed, false));
            };
            if presence == Presence::In {
                fixed += 1;
                tracing::warn!(membership = %m.id, telegram_user = %m.telegram_user_id, "still in the channel after its membership ended: removing");
                self.notifier
                    .enqueue(vec![(
                        format!("reconcile:{}:{}", m.id, now.format("%Y%m%d")),
                        Effect::RemoveMember { telegram_user_id: m.telegram_user_id, keep_banned: true },
                    )])
                    .await?;
                let why = "still in the channel after its membership ended";
                self.audit_reconciled(&m, AuditAction::MemberRemoved, json!({ "membership_id": m.id, "reason": why }))
                    .await?;
            }
        }
        for m in self.lifecycle.active_in_channel(limits.reconcile_active_per_run).await? {
            let Some(presence) = self.presence_paced(m.telegram_user_id, pace, deadline).await else {
                return Ok((fixed, false));
            };
            if presence == Presence::Out {
                fixed += 1;
                self.access.set_in_channel(&m.id, false, now).await?;
                let details = json!({ "membership_id": m.id, "noticed_by": "reconciliation" });
                self.audit_reconciled(&m, AuditAction::MemberLeft, details).await?;
            }
        }
        Ok((fixed, true))
    }

    /// Administrators at the last run who no longer are (a demotion whose update was missed):
    /// one still in the channel with no membership holding its place, nor an exemption, is
    /// removed as a stranger. `None`: stopped before the end (the next run checks them again).
    async fn reconcile_demoted(
        &self,
        now: DateTime<Utc>,
        pace: std::time::Duration,
        deadline: Instant,
    ) -> Result<Option<u64>, AppError> {
        const STAFF: &str = "reconcile-members:staff";
        let staff = match self.telegram.administrators().await {
            Ok(staff) => staff,
            Err(e) => {
                tracing::warn!(error = %e, "could not list the channel's administrators; demotions are checked next run");
                return Ok(Some(0));
            }
        };
        let known: Vec<i64> =
            self.job_log.job_cursor(STAFF).await?.and_then(|c| serde_json::from_str(&c).ok()).unwrap_or_default();
        let mut fixed = 0;
        for account in known.into_iter().filter_map(|id| crate::domain::TelegramUserId::parse(id).ok()) {
            if staff.contains(&account)
                || self.access.current_membership(account).await?.is_some_and(|m| m.holds_place(now))
                || self.exemptions.exemption(account).await?.is_some()
            {
                continue;
            }
            let Some(presence) = self.presence_paced(account, pace, deadline).await else {
                return Ok(None);
            };
            if presence == Presence::In {
                fixed += 1;
                tracing::warn!(telegram_user = %account, "a former administrator in the channel without a membership: removing");
                let remove = Effect::RemoveMember { telegram_user_id: account, keep_banned: false };
                self.notifier.enqueue(vec![(format!("demoted:{account}:{}", now.format("%Y%m%d")), remove)]).await?;
                let details = json!({ "reason": "no active membership", "former_administrator": true });
                let (actor, action) = ("job:reconcile-members", AuditAction::MemberRemoved);
                self.auditor.audit_as(Meaning::Stranger, actor, action, None, Some(account), details).await?;
            }
        }
        let ids: Vec<i64> = staff.iter().map(|a| a.get()).collect();
        self.job_log.set_job_cursor(STAFF, &json!(ids).to_string()).await?;
        Ok(Some(fixed))
    }

    async fn audit_reconciled(
        &self,
        m: &Membership,
        action: AuditAction,
        details: serde_json::Value,
    ) -> Result<(), AppError> {
        self.auditor.audit("job:reconcile-members", action, Some(&m.user_id), Some(m.telegram_user_id), details).await
    }

    /// One `getChatMember`, then the pause that keeps the job under Telegram's rate. `None` stops
    /// the run (its time is up, flood control, Telegram down, or the bot cannot see the channel):
    /// what could not be checked is never guessed, and the next run picks up the rest.
    async fn presence_paced(
        &self,
        account: crate::domain::TelegramUserId,
        pace: std::time::Duration,
        deadline: Instant,
    ) -> Option<Presence> {
        if Instant::now() >= deadline {
            tracing::warn!("reconciliation stopped: RECONCILE_MAX_SECONDS reached; the next run continues");
            return None;
        }
        let result = self.telegram.presence(account).await;
        tokio::time::sleep(pace).await;
        match result {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "reconciliation stopped early; the next run continues");
                None
            }
        }
    }
}

/// Whether a job must stop before its next batch.
pub(super) fn out_of_time(deadline: Instant) -> bool {
    let over = Instant::now() >= deadline;
    if over {
        tracing::warn!("job cut short by its time limit; the next run goes on from what is still due");
    }
    over
}

/// Runs `batch` until it processes less than a full batch or the time is up; the total processed.
async fn in_batches<F, Fut>(deadline: Instant, mut batch: F) -> Result<(u64, bool), AppError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, crate::ports::StoreError>>,
{
    let mut total = 0;
    while !out_of_time(deadline) {
        let done = batch().await?;
        total += done;
        if done < u64::from(BATCH) {
            return Ok((total, true));
        }
    }
    Ok((total, false))
}

/// What one run of a job did: how many it processed, and whether it got through everything that
/// was due (`false`: cut short by its time; the next run goes on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct JobRun {
    pub processed: u64,
    pub complete: bool,
}

/// How old an intent must be before the sweep queues it again: longer than a request takes to
/// queue it itself.
const INTENT_GRACE: Duration = Duration::minutes(5);

impl Jobs {
    /// Queues again every intent older than `INTENT_GRACE` that no consumer has settled: what a
    /// process that died between its commit and its queue left behind. Returns how many.
    pub(crate) async fn relay_intents(&self, now: DateTime<Utc>) -> Result<u64, AppError> {
        let pending = self.outbox.pending_intents(now - INTENT_GRACE, BATCH).await?;
        let count = pending.len() as u64;
        if count > 0 {
            tracing::warn!(count, "queuing again effects whose intent was not settled");
            self.queue.enqueue(pending).await?;
        }
        Ok(count)
    }
}

//! The console's health panel: the bot's rights in the channel, Telegram's webhook state, each
//! job's last run against its schedule, and the channel changes decided but not yet carried out.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::{AppError, require};
use crate::auth::{Caller, Role};
use crate::domain::{Job, Schedule};
use crate::ports::{ChannelHealth, Clock, EffectOutbox, JobLog, Telegram};

/// How many pending channel changes the panel counts before it says "more than".
const BACKLOG_COUNTED: u32 = 100;
/// How late a job's run may be after its scheduled time before the panel calls it overdue.
const OVERDUE_AFTER_MINUTES: i64 = 60;
/// How long what Telegram said of the bot and the webhook is shown before it is asked again: the
/// overview stays quick, and three Bot API calls are not made at every look.
const CHANNEL_CACHE_SECONDS: i64 = 60;

pub struct Health {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) outbox: Arc<dyn EffectOutbox>,
    pub(crate) job_log: Arc<dyn JobLog>,
    /// Where there is a bot: its standing in the channel is read from Telegram.
    pub(crate) telegram: Option<Arc<dyn Telegram>>,
    pub(crate) schedules: Vec<(Job, Schedule)>,
    /// What Telegram said last, and when.
    pub(crate) channel_seen: std::sync::Mutex<Option<(DateTime<Utc>, ChannelRead)>>,
}

/// What Telegram said of the bot and the webhook, or why it could not be read.
type ChannelRead = Result<ChannelHealth, String>;

pub struct HealthView {
    /// The bot's rights and the webhook, or why they could not be read.
    pub channel: ChannelRead,
    pub jobs: Vec<JobHealth>,
    /// Channel changes (bans, approvals…) decided and not yet carried out, up to `BACKLOG_COUNTED`.
    pub backlog: u32,
    pub backlog_more: bool,
}

pub struct JobHealth {
    pub job: Job,
    pub schedule: Schedule,
    pub last_run: Option<DateTime<Utc>>,
    /// Its last scheduled time is more than an hour past and it has not run since.
    pub overdue: bool,
}

impl Health {
    async fn channel(&self, now: DateTime<Utc>) -> ChannelRead {
        let seen = self.channel_seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((_, channel)) = seen.filter(|(at, _)| now - *at < Duration::seconds(CHANNEL_CACHE_SECONDS)) {
            return channel;
        }
        let channel = match &self.telegram {
            Some(telegram) => telegram.channel_health().await.map_err(|e| e.to_string()),
            None => Err("this function has no bot".to_owned()),
        };
        *self.channel_seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, channel.clone()));
        channel
    }

    /// Each job: when it runs, when it last ran, and whether it is overdue (the jobs page too).
    pub async fn jobs(&self, caller: &Caller) -> Result<Vec<JobHealth>, AppError> {
        require(caller, Role::Admin)?;
        let now = self.clock.now();
        let mut jobs = Vec::new();
        for (job, schedule) in &self.schedules {
            let last_run = self.job_log.last_job_run(job.name()).await?;
            let overdue = overdue(schedule, last_run, now);
            jobs.push(JobHealth { job: *job, schedule: *schedule, last_run, overdue });
        }
        Ok(jobs)
    }

    pub async fn health(&self, caller: &Caller) -> Result<HealthView, AppError> {
        require(caller, Role::Admin)?;
        let now = self.clock.now();
        let channel = self.channel(now).await;
        let jobs = self.jobs(caller).await?;
        let pending = self.outbox.pending_intents(now, BACKLOG_COUNTED + 1).await?.len() as u32;
        Ok(HealthView { channel, jobs, backlog: pending.min(BACKLOG_COUNTED), backlog_more: pending > BACKLOG_COUNTED })
    }
}

/// Whether a job's last scheduled time is more than `OVERDUE_AFTER_MINUTES` past and it has not
/// run since.
fn overdue(schedule: &Schedule, last_run: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    let due = schedule.last_due(now - Duration::minutes(OVERDUE_AFTER_MINUTES));
    last_run.is_none_or(|at| at < due)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_job_is_overdue_an_hour_after_a_scheduled_time_it_did_not_run_at() {
        let daily = Schedule::parse("00:00").unwrap();
        let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 12, 6, h, m, 0).unwrap();
        let yesterday = Some(at(0, 1) - Duration::days(1));
        assert!(!overdue(&daily, yesterday, at(0, 30)), "still within the hour after midnight");
        assert!(overdue(&daily, yesterday, at(1, 30)), "midnight's run did not happen");
        assert!(!overdue(&daily, Some(at(0, 2)), at(23, 0)), "it ran");
        assert!(overdue(&daily, None, at(12, 0)), "never ran");
    }
}

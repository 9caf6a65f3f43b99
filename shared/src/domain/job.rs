//! The scheduled jobs that replace Celery beat, and when each is due.

use chrono::{DateTime, Datelike, Duration, NaiveTime, Timelike, Utc, Weekday};

use serde::{Deserialize, Serialize};

use super::{DomainError, RunId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Job {
    ExpireTokens,
    ExpireSubscriptions,
    ExpirationWarnings,
    CleanupNotifications,
    ReconcileMembers,
    ReconcileStars,
}

impl Job {
    pub const ALL: [Job; 6] = [
        Job::ExpireTokens,
        Job::ExpireSubscriptions,
        Job::ExpirationWarnings,
        Job::CleanupNotifications,
        Job::ReconcileMembers,
        Job::ReconcileStars,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::ExpireTokens => "expire-tokens",
            Self::ExpireSubscriptions => "expire-subscriptions",
            Self::ExpirationWarnings => "expiration-warnings",
            Self::CleanupNotifications => "cleanup-notifications",
            Self::ReconcileMembers => "reconcile-members",
            Self::ReconcileStars => "reconcile-stars",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL.into_iter().find(|j| j.name() == raw).ok_or(DomainError::invalid(
            "job",
            "must be expire-tokens, expire-subscriptions, expiration-warnings, cleanup-notifications, reconcile-members or reconcile-stars",
        ))
    }

    /// The guide's beat schedule: hourly tokens, daily 00:00 expiry, daily 09:00 warnings, Monday 03:00 cleanup.
    pub fn default_schedule(self) -> Schedule {
        match self {
            Self::ExpireTokens => Schedule::Hourly { minute: 0 },
            Self::ExpireSubscriptions => Schedule::Daily { at: hm(0, 0) },
            Self::ExpirationWarnings => Schedule::Daily { at: hm(9, 0) },
            Self::CleanupNotifications => Schedule::Weekly { day: Weekday::Mon, at: hm(3, 0) },
            Self::ReconcileMembers => Schedule::Daily { at: hm(4, 0) },
            Self::ReconcileStars => Schedule::Hourly { minute: 30 },
        }
    }

    /// The setting that overrides the schedule, e.g. `SCHEDULE_EXPIRE_SUBSCRIPTIONS`.
    pub fn setting(self) -> String {
        format!("SCHEDULE_{}", self.name().replace('-', "_").to_ascii_uppercase())
    }
}

impl TryFrom<String> for Job {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<Job> for &'static str {
    fn from(j: Job) -> &'static str {
        j.name()
    }
}

/// How far a run an admin asked for has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Asked for; the function that runs jobs has not started it yet.
    Queued,
    Running,
    Done,
    Failed,
}

/// A job run an admin asked for (`POST …/admin/jobs/{job}/run/`): it runs elsewhere, and this
/// record, read back by its id, says how far it got. Kept `REQUESTED_RUN_DAYS`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestedRun {
    pub run_id: RunId,
    pub job: Job,
    pub status: RunStatus,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Once done: how many items it processed, and whether it got through all that was due.
    pub processed: Option<u64>,
    pub complete: Option<bool>,
    pub error: Option<String>,
}

/// How long a requested run stays readable (both stores).
pub const REQUESTED_RUN_DAYS: i64 = 30;

/// A run of a job that has not finished this long after it was asked for (or started) never will:
/// the process that ran it stopped or ran out of time (the function's 300 s, its deliveries).
pub const RUN_DEADLINE_MINUTES: i64 = 15;

impl RequestedRun {
    pub fn queued(run_id: RunId, job: Job, requested_by: &str, now: DateTime<Utc>) -> Self {
        Self {
            run_id,
            job,
            status: RunStatus::Queued,
            requested_by: requested_by.to_owned(),
            requested_at: now,
            started_at: None,
            finished_at: None,
            processed: None,
            complete: None,
            error: None,
        }
    }

    pub fn started(mut self, now: DateTime<Utc>) -> Self {
        self.status = RunStatus::Running;
        self.started_at = Some(now);
        self
    }

    pub fn done(mut self, processed: u64, complete: bool, now: DateTime<Utc>) -> Self {
        self.status = RunStatus::Done;
        (self.processed, self.complete, self.finished_at) = (Some(processed), Some(complete), Some(now));
        self
    }

    pub fn failed(mut self, error: &str, now: DateTime<Utc>) -> Self {
        self.status = RunStatus::Failed;
        (self.error, self.finished_at) = (Some(error.to_owned()), Some(now));
        self
    }

    /// Queued or running: not finished.
    pub fn is_pending(&self) -> bool {
        matches!(self.status, RunStatus::Queued | RunStatus::Running)
    }

    /// As it stands at `now`: a run still queued or running past `RUN_DEADLINE_MINUTES` failed
    /// (killed by its time limit, or its process stopped), whatever its record still says.
    pub fn as_of(self, now: DateTime<Utc>) -> Self {
        let deadline = self.started_at.unwrap_or(self.requested_at) + Duration::minutes(RUN_DEADLINE_MINUTES);
        if self.is_pending() && now > deadline {
            let why = "it did not finish in time: the process that ran it stopped or ran out of time";
            self.failed(why, deadline)
        } else {
            self
        }
    }
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)
}

/// When a job runs, in UTC: `:MM` hourly, `HH:MM` daily, `Mon HH:MM` weekly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    Hourly { minute: u32 },
    Daily { at: NaiveTime },
    Weekly { day: Weekday, at: NaiveTime },
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hourly { minute } => write!(f, "every hour at :{minute:02}"),
            Self::Daily { at } => write!(f, "every day at {} UTC", at.format("%H:%M")),
            Self::Weekly { day, at } => write!(f, "every {day} at {} UTC", at.format("%H:%M")),
        }
    }
}

impl Schedule {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let bad = DomainError::invalid(
            "schedule",
            "must look like :05 (hourly), 09:00 (daily) or Mon 03:00 (weekly), in UTC",
        );
        let raw = raw.trim();
        if let Some(minute) = raw.strip_prefix(':') {
            return minute.parse::<u32>().ok().filter(|m| *m < 60).map(|minute| Self::Hourly { minute }).ok_or(bad);
        }
        let time = |t: &str| NaiveTime::parse_from_str(t, "%H:%M").ok();
        match raw.split_once(' ') {
            None => time(raw).map(|at| Self::Daily { at }).ok_or(bad),
            Some((day, t)) => match (day.parse::<Weekday>(), time(t.trim())) {
                (Ok(day), Some(at)) => Ok(Self::Weekly { day, at }),
                _ => Err(bad),
            },
        }
    }

    /// The latest scheduled instant at or before `now`.
    pub fn last_due(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = now.date_naive();
        let candidate = match *self {
            Self::Hourly { minute } => {
                let this_hour = today.and_hms_opt(now.hour(), minute, 0).map(|t| t.and_utc()).unwrap_or(now);
                return if this_hour <= now { this_hour } else { this_hour - Duration::hours(1) };
            }
            Self::Daily { at } => today.and_time(at).and_utc(),
            Self::Weekly { day, at } => {
                let back = (7 + now.weekday().num_days_from_monday() - day.num_days_from_monday()) % 7;
                (today - Duration::days(i64::from(back))).and_time(at).and_utc()
            }
        };
        if candidate <= now {
            candidate
        } else {
            match self {
                Self::Weekly { .. } => candidate - Duration::days(7),
                _ => candidate - Duration::days(1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn schedules_parse_in_three_shapes() {
        assert_eq!(Schedule::parse(":05").unwrap(), Schedule::Hourly { minute: 5 });
        assert_eq!(Schedule::parse("09:30").unwrap(), Schedule::Daily { at: hm(9, 30) });
        assert_eq!(Schedule::parse("Mon 03:00").unwrap(), Schedule::Weekly { day: Weekday::Mon, at: hm(3, 0) });
        assert!(Schedule::parse("25:00").is_err());
        assert!(Schedule::parse(":60").is_err());
        assert!(Schedule::parse("Someday 03:00").is_err());
    }

    #[test]
    fn last_due_is_the_latest_instant_not_after_now() {
        // 2026-11-25 is a Wednesday.
        let now = at(2026, 11, 25, 8, 30);
        assert_eq!(Schedule::Hourly { minute: 0 }.last_due(now), at(2026, 11, 25, 8, 0));
        assert_eq!(Schedule::Hourly { minute: 45 }.last_due(now), at(2026, 11, 25, 7, 45));
        assert_eq!(Schedule::Daily { at: hm(9, 0) }.last_due(now), at(2026, 11, 24, 9, 0));
        assert_eq!(Schedule::Daily { at: hm(0, 0) }.last_due(now), at(2026, 11, 25, 0, 0));
        assert_eq!(Schedule::Weekly { day: Weekday::Mon, at: hm(3, 0) }.last_due(now), at(2026, 11, 23, 3, 0));
        assert_eq!(Schedule::Weekly { day: Weekday::Wed, at: hm(9, 0) }.last_due(now), at(2026, 11, 18, 9, 0));
        assert_eq!(Schedule::Daily { at: hm(8, 30) }.last_due(now), now);
    }

    #[test]
    fn a_run_left_queued_or_running_past_its_deadline_reads_failed() {
        let asked = at(2026, 11, 25, 8, 0);
        let run = RequestedRun::queued(RunId::parse("r1").unwrap(), Job::ExpireTokens, "user:root", asked);
        assert!(run.clone().as_of(asked + Duration::minutes(14)).is_pending());
        let late = run.clone().as_of(asked + Duration::minutes(16));
        assert_eq!((late.status, late.finished_at), (RunStatus::Failed, Some(asked + Duration::minutes(15))));
        let started = run.started(asked + Duration::minutes(10));
        assert!(started.clone().as_of(asked + Duration::minutes(20)).is_pending(), "counted from its start");
        let done = started.done(3, true, asked + Duration::minutes(11));
        assert_eq!(done.clone().as_of(asked + Duration::days(1)), done, "a finished run stays as it ended");
    }

    #[test]
    fn job_names_round_trip() {
        for j in Job::ALL {
            assert_eq!(Job::parse(j.name()).unwrap(), j);
        }
        assert_eq!(Job::ExpireSubscriptions.setting(), "SCHEDULE_EXPIRE_SUBSCRIPTIONS");
        assert!(Job::parse("reboot").is_err());
    }
}

//! What both stores write the same way: times, and the names of the counters' time buckets.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

/// Fixed-width UTC timestamps, so that text order is time order (SQLite columns, DynamoDB sort keys).
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_ts(raw: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc))
}

/// Tokens issued per hour: "recent" sums the last 24 buckets, whatever the size of the table.
pub(crate) fn hour_bucket(at: DateTime<Utc>) -> String {
    format!("tokens.issued.h{}", at.format("%Y%m%d%H"))
}

/// Memberships started per day: "recent joins" sums the last 7 buckets.
pub(crate) fn day_bucket(at: DateTime<Utc>) -> String {
    format!("members.joined.d{}", at.format("%Y%m%d"))
}

/// The buckets that `tokens_recent` (24 hours) and `members_recent_joins` (7 days) add up at `now`.
pub(crate) fn recent_buckets(now: DateTime<Utc>) -> (Vec<String>, Vec<String>) {
    let hours = (0..24).map(|h| hour_bucket(now - Duration::hours(h))).collect();
    let days = (0..7).map(|d| day_bucket(now - Duration::days(d))).collect();
    (hours, days)
}

/// A counter change an imported record brings; a time bucket carries the time its item may be
/// dropped after (DynamoDB's TTL), the fixed counters none.
pub(crate) type CounterChange = (String, i64, Option<DateTime<Utc>>);

/// How long a time bucket is kept after its time: longer than the 7 days "recent" looks back.
pub(crate) const BUCKET_KEEP_DAYS: i64 = 8;

/// The counters an imported token adds, as issuing and redeeming it live would have.
pub(crate) fn token_counters(t: &crate::domain::TokenRecord) -> Vec<CounterChange> {
    use crate::domain::TokenStatus::*;
    let keep = Some(t.created_at + chrono::Duration::days(BUCKET_KEEP_DAYS));
    let mut c = vec![("tokens.total".to_owned(), 1, None), (hour_bucket(t.created_at), 1, keep)];
    match t.status {
        Pending | Bound => c.push(("tokens.pending".into(), 1, None)),
        Used => c.push(("tokens.used".into(), 1, None)),
        _ => {}
    }
    c
}

/// The counters an imported membership adds: one accepted invite and one member if it started,
/// one active member while it is active.
pub(crate) fn membership_counters(m: &crate::domain::Membership) -> Vec<CounterChange> {
    let Some(joined) = m.joined_at else { return Vec::new() };
    let mut c = vec![
        ("invites.total".to_owned(), 1, None),
        ("invites.accepted".to_owned(), 1, None),
        ("members.total".to_owned(), 1, None),
        (day_bucket(joined), 1, Some(joined + chrono::Duration::days(BUCKET_KEEP_DAYS))),
    ];
    if m.status == crate::domain::MembershipStatus::Active {
        c.push(("members.active".into(), 1, None));
    }
    c
}

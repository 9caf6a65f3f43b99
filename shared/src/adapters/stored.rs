//! What both stores write the same way: times, and the names of the counters' time buckets.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::domain::STAR_SUBSCRIPTION_DAYS;

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

/// Suspicious access attempts of one kind per hour.
pub(crate) fn attempt_bucket(attempt: crate::ports::Attempt, at: DateTime<Utc>) -> String {
    format!("attempts.{}.h{}", attempt.name(), at.format("%Y%m%d%H"))
}

/// A calendar month of Stars figures (`YYYYMM`), kept for good.
fn month(at: DateTime<Utc>) -> String {
    at.format("m%Y%m").to_string()
}

/// Payments of Stars subscriptions per day, as earlier releases counted them (no longer written):
/// a payment of day X covered until X + 30, so the buckets of the last 30 days still count.
fn renewing_bucket(at: DateTime<Utc>) -> String {
    format!("stars.renewing.d{}", at.format("%Y%m%d"))
}

/// Stars subscriptions by the day the period paid for ends: "active subscriptions" sums the
/// buckets from today on. A renewal moves its subscription from its predecessor's end to its
/// own; a refund takes it out; a lapse is a day that passes.
fn subscription_end_bucket(end: DateTime<Utc>) -> String {
    format!("stars.subend.d{}", end.format("%Y%m%d"))
}

/// How far ahead a subscription's period may end: two of Telegram's 30-day periods and a day of
/// rounding (a renewal told early still ends within it).
const SUBSCRIPTION_DAYS_AHEAD: i64 = 61;

/// The figures of the Stars stats, per month.
const STARS_MONTHLY: [&str; 6] = ["revenue", "refunded", "payments", "subscriptions", "renewals", "lapsed"];
/// How many months the stats show, this one first.
pub(crate) const STARS_MONTHS: u32 = 12;

/// One value per month of the last `STARS_MONTHS`, this month first, from the month's first day.
fn last_12_months<T>(now: DateTime<Utc>, of: impl Fn(DateTime<Utc>) -> T) -> Vec<T> {
    (0..STARS_MONTHS).map(|back| of(months_back(now, back))).collect()
}

/// The first day of the month `back` months before `now`'s.
fn months_back(now: DateTime<Utc>, back: u32) -> DateTime<Utc> {
    use chrono::{Datelike, TimeZone};
    let index = now.year() * 12 + now.month0() as i32 - back as i32;
    Utc.with_ymd_and_hms(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1, 0, 0, 0).single().unwrap_or(now)
}

/// The counters a payment adds in the transaction that records it: for a payment in Stars, its
/// revenue and kind, by month.
pub(crate) fn payment_counters(p: &crate::domain::Payment) -> Vec<CounterChange> {
    let Some(paid) = p.stars_paid() else { return Vec::new() };
    let m = month(p.created_at);
    let stars = i64::from(paid.stars);
    let mut c = vec![
        ("stars.revenue".to_owned(), stars, None),
        (format!("stars.revenue.{m}"), stars, None),
        (format!("stars.payments.{m}"), 1, None),
    ];
    if paid.renewing {
        let kind = if paid.renewal { "renewals" } else { "subscriptions" };
        c.push((format!("stars.{kind}.{m}"), 1, None));
        let end = paid.period_end;
        c.push(subscription_end(end, 1));
        if paid.renewal {
            // Its predecessor's period ended when this one began.
            c.push(subscription_end(end - Duration::days(i64::from(STAR_SUBSCRIPTION_DAYS)), -1));
        }
    }
    c
}

pub(crate) fn subscription_end(end: DateTime<Utc>, delta: i64) -> CounterChange {
    (subscription_end_bucket(end), delta, Some(end + Duration::days(BUCKET_KEEP_DAYS)))
}

/// The counters a refund takes out of the revenue in the write that records it refunded, in the
/// month of the refund (`at`): a payment in Stars, its Stars; a web payment, what its validation
/// counted.
pub(crate) fn refund_counters(p: &crate::domain::Payment, at: DateTime<Utc>) -> Vec<CounterChange> {
    let Some(paid) = p.stars_paid() else {
        let Some(cents) = p.revenue_cents else { return Vec::new() };
        return vec![("web.refunded".to_owned(), cents, None), (format!("web.refunded.{}", month(at)), cents, None)];
    };
    let stars = i64::from(paid.stars);
    let mut c =
        vec![("stars.refunded".to_owned(), stars, None), (format!("stars.refunded.{}", month(at)), stars, None)];
    if paid.renewing {
        // No longer a running subscription.
        c.push(subscription_end(paid.period_end, -1));
    }
    c
}

/// The counters a validated web payment adds in the write that validates it: its price (the
/// offer's `price_cents`) in the web revenue, by month.
pub(crate) fn review_counters(r: &crate::ports::Review) -> Vec<CounterChange> {
    match r.counted_cents() {
        Some(cents) => {
            let m = month(r.at);
            vec![
                ("web.revenue".to_owned(), cents, None),
                (format!("web.revenue.{m}"), cents, None),
                (format!("web.payments.{m}"), 1, None),
            ]
        }
        _ => Vec::new(),
    }
}

/// The members active in the month of `at`, as the daily expiry run last saw them.
pub(crate) fn active_month_counter(at: DateTime<Utc>) -> String {
    format!("members.active.{}", month(at))
}

/// A Stars subscription that lapsed (its membership expired, not renewed) in the month of `at`.
pub(crate) fn lapse_counter(at: DateTime<Utc>) -> String {
    format!("stars.lapsed.{}", month(at))
}

/// How long an attempt bucket is kept: a little over the 24 hours the stats look back.
pub(crate) const ATTEMPT_KEEP_HOURS: i64 = 26;

const FIXED_COUNTERS: [&str; 7] = [
    "tokens.total",
    "tokens.pending",
    "tokens.used",
    "invites.total",
    "invites.accepted",
    "members.total",
    "members.active",
];

fn last_24_hours(now: DateTime<Utc>, name: impl Fn(DateTime<Utc>) -> String) -> Vec<String> {
    (0..24).map(|h| name(now - Duration::hours(h))).collect()
}

/// The buckets of the subscriptions whose period paid for runs today or later.
fn subscription_ends(now: DateTime<Utc>) -> Vec<String> {
    (0..=SUBSCRIPTION_DAYS_AHEAD).map(|d| subscription_end_bucket(now + Duration::days(d))).collect()
}

/// Earlier releases' payments whose 30 days still cover today (a renewal of one since then took
/// it out through its predecessor's end bucket).
fn legacy_renewing(now: DateTime<Utc>) -> Vec<String> {
    (0..=i64::from(STAR_SUBSCRIPTION_DAYS)).map(|d| renewing_bucket(now - Duration::days(d))).collect()
}

/// Every counter `counters` reads at `now`: the fixed ones and the time buckets that make up the
/// recent figures (24 hourly buckets, 7 daily ones).
pub(crate) fn counter_names(now: DateTime<Utc>) -> Vec<String> {
    let mut names: Vec<String> = FIXED_COUNTERS.iter().map(|n| n.to_string()).collect();
    names.extend(last_24_hours(now, hour_bucket));
    names.extend((0..7).map(|d| day_bucket(now - Duration::days(d))));
    for attempt in crate::ports::Attempt::ALL {
        names.extend(last_24_hours(now, |t| attempt_bucket(attempt, t)));
    }
    names.extend((1..STARS_MONTHS).map(|back| active_month_counter(months_back(now, back))));
    names.extend(["web.revenue".into(), "web.refunded".into()]);
    for m in last_12_months(now, month) {
        names.extend(["revenue", "refunded", "payments"].map(|figure| format!("web.{figure}.{m}")));
    }
    names.push("stars.revenue".into());
    names.push("stars.refunded".into());
    names.extend(legacy_renewing(now));
    names.extend(subscription_ends(now));
    for m in last_12_months(now, month) {
        names.extend(STARS_MONTHLY.iter().map(|figure| format!("stars.{figure}.{m}")));
    }
    names
}

/// The figures, from the values of `counter_names(now)` (a counter never written is 0).
pub(crate) fn counters_from(now: DateTime<Utc>, get: &dyn Fn(&str) -> i64) -> crate::ports::Counters {
    use crate::ports::Attempt;
    let sum = |names: Vec<String>| names.iter().map(|n| get(n)).sum::<i64>();
    let attempts = |a: Attempt| sum(last_24_hours(now, |t| attempt_bucket(a, t)));
    let this_month = months_back(now, 0);
    crate::ports::Counters {
        tokens_total: get("tokens.total"),
        tokens_pending: get("tokens.pending"),
        tokens_used: get("tokens.used"),
        tokens_recent: sum(last_24_hours(now, hour_bucket)),
        invites_total: get("invites.total"),
        invites_accepted: get("invites.accepted"),
        members_total: get("members.total"),
        members_active: get("members.active"),
        members_recent_joins: sum((0..7).map(|d| day_bucket(now - Duration::days(d))).collect()),
        refused_tokens_recent: attempts(Attempt::RefusedToken),
        declined_joins_recent: attempts(Attempt::DeclinedJoin),
        removed_strangers_recent: attempts(Attempt::RemovedStranger),
        members_active_by_month: last_12_months(now, |start| {
            // This month's figure is the live count; earlier months keep what their last sweep saw.
            let active = if start == this_month { get("members.active") } else { get(&active_month_counter(start)) };
            crate::ports::MonthActive { month: start.format("%Y-%m").to_string(), active }
        }),
        attempts_by_hour: (0..24)
            .map(|back| {
                let hour = now - Duration::hours(back);
                let count = |a: Attempt| get(&attempt_bucket(a, hour));
                crate::ports::HourAttempts {
                    hour: hour.format("%Y-%m-%dT%H").to_string(),
                    refused_tokens: count(Attempt::RefusedToken),
                    declined_joins: count(Attempt::DeclinedJoin),
                    removed_strangers: count(Attempt::RemovedStranger),
                }
            })
            .collect(),
        web: crate::ports::WebCounters {
            revenue_total_cents: get("web.revenue"),
            refunded_total_cents: get("web.refunded"),
            net_total_cents: get("web.revenue") - get("web.refunded"),
            months: last_12_months(now, |start| {
                let figure = |f: &str| get(&format!("web.{f}.{}", month(start)));
                crate::ports::WebMonth {
                    month: start.format("%Y-%m").to_string(),
                    revenue_cents: figure("revenue"),
                    refunded_cents: figure("refunded"),
                    net_cents: figure("revenue") - figure("refunded"),
                    payments: figure("payments"),
                }
            }),
        },
        stars: crate::ports::StarsCounters {
            revenue_total: get("stars.revenue"),
            refunded_total: get("stars.refunded"),
            net_total: get("stars.revenue") - get("stars.refunded"),
            active_subscriptions: sum(subscription_ends(now)) + sum(legacy_renewing(now)),
            months: last_12_months(now, |start| {
                let figure = |f: &str| get(&format!("stars.{f}.{}", month(start)));
                crate::ports::StarsMonth {
                    month: start.format("%Y-%m").to_string(),
                    revenue: figure("revenue"),
                    refunded: figure("refunded"),
                    net: figure("revenue") - figure("refunded"),
                    payments: figure("payments"),
                    new_subscriptions: figure("subscriptions"),
                    renewals: figure("renewals"),
                    lapsed: figure("lapsed"),
                }
            }),
        },
    }
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

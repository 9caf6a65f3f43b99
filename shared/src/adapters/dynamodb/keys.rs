//! The table's keys, one function per prefix, as infra/TABLES.md lists them. Nothing else in the
//! adapter spells a prefix.

use std::fmt::Display;

use chrono::{DateTime, Utc};

use crate::adapters::stored::ts;

macro_rules! prefixed {
    ($($name:ident => $prefix:literal,)*) => {
        $(
            pub(super) fn $name(id: impl Display) -> String {
                format!(concat!($prefix, "#{}"), id)
            }
        )*
    };
}

prefixed! {
    // Items (pk).
    payment => "PAY",
    transaction => "TX",
    token => "TOKEN",
    membership => "MEM",
    invite => "INVITE",
    user => "USER",
    update => "UPD",
    effect => "EFFECT",
    counter => "COUNTER",
    job => "JOB",
    run => "RUN",
    audit => "AUDIT",
    rate => "RATE",
    bar => "BAR",
    exempt => "EXEMPT",
    invoice => "INVOICE",
    sale => "SALE",
    username => "USERNAME",
    // Sort keys under `user`.
    notification => "NOTIF",
    // Index partitions (gsiNpk).
    payments_of_user => "USERPAY",
    payments_by_status => "PAYSTATUS",
    tokens_by_status => "TOKSTATUS",
    tokens_of_user => "USERTOK",
    account => "ACCT",
    memberships_by_status => "MEMSTATUS",
    memberships_of_user => "USERMEM",
    notifications_by_age => "NOTIFAGE",
    audit_of_user => "AUDITUSER",
    audit_of_action => "AUDITACTION",
}

/// The sort keys of a user's notifications all begin with this.
pub(super) const NOTIFICATION_PREFIX: &str = "NOTIF#";
/// Every payment, for the admin list (gsi3).
pub(super) const ALL_PAYMENTS: &str = "PAYALL";
/// The partition of effect intents (sort key: the effect's idempotency key); small, since intents
/// live only until their effect is settled.
pub(super) const INTENTS: &str = "INTENT";
/// Every audit entry (gsi3).
pub(super) const ALL_AUDIT: &str = "AUDIT";

/// One warning threshold of one period of a membership.
pub(super) fn warning(membership: impl Display, threshold_days: u32, period_end: DateTime<Utc>) -> String {
    format!("WARN#{membership}#{threshold_days}#{}", ts(period_end))
}

/// The one pace of the bot's Bot API calls, shared by every function (`pace.rs`).
pub(super) const PACE: &str = "PACE#telegram";

//! Identifiers. Raw strings stop at the edge: each id is parsed once and carried as its type.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::DomainError;

/// The application user, as the JWT's `sub` (or `user_id`) names them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 128 || raw.chars().any(char::is_control) {
            return Err(DomainError::invalid("user_id", "must be 1 to 128 printable characters"));
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The payer of a Stars payment with no web account: the Telegram account itself,
    /// `tg:<telegram id>`.
    pub fn of_telegram_account(account: TelegramUserId) -> Self {
        Self(format!("{TELEGRAM_ACCOUNT_PREFIX}{account}"))
    }
    /// A Telegram account paying in Stars with no web account (`tg:<telegram id>`): a namespace
    /// telegate names itself, never an identity provider's subject.
    pub fn is_telegram_account(&self) -> bool {
        self.0.starts_with(TELEGRAM_ACCOUNT_PREFIX)
    }
}

/// The user id prefix of a Telegram account paying in Stars on its own.
const TELEGRAM_ACCOUNT_PREFIX: &str = "tg:";

impl TryFrom<String> for UserId {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<UserId> for String {
    fn from(u: UserId) -> String {
        u.0
    }
}
impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Telegram account (user ids are positive 64-bit integers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct TelegramUserId(i64);

impl TelegramUserId {
    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        if raw <= 0 {
            return Err(DomainError::invalid("telegram_user_id", "must be a positive integer"));
        }
        Ok(Self(raw))
    }
    pub fn get(self) -> i64 {
        self.0
    }
}
impl TryFrom<i64> for TelegramUserId {
    type Error = DomainError;
    fn try_from(v: i64) -> Result<Self, Self::Error> {
        Self::parse(v)
    }
}
impl From<TelegramUserId> for i64 {
    fn from(t: TelegramUserId) -> i64 {
        t.0
    }
}
impl fmt::Display for TelegramUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! record_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A new, time-ordered id (sorts by creation time, then randomly).
            pub fn generate(now: DateTime<Utc>) -> Result<Self, DomainError> {
                Ok(Self(time_ordered_id(now)?))
            }
            /// A time-ordered id derived from a creation time and a name instead of randomness:
            /// a record brought from another system gets the same id however often it is imported.
            pub fn derived(at: DateTime<Utc>, name: &str) -> Self {
                Self(derived_id(at, name))
            }
            pub fn parse(raw: &str) -> Result<Self, DomainError> {
                let ok = !raw.is_empty()
                    && raw.len() <= 64
                    && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !ok {
                    return Err(DomainError::invalid(stringify!($name), "is not a valid id"));
                }
                Ok(Self(raw.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

record_id!(
    /// A submitted payment.
    PaymentId
);
record_id!(
    /// A membership: one Telegram account's access to the channel, extended by renewals.
    MembershipId
);
record_id!(
    /// An in-app notification.
    NotificationId
);
record_id!(
    /// An entry of the audit log.
    AuditId
);
record_id!(
    /// A job run an admin asked for.
    RunId
);

/// 16 hex digits of (milliseconds << 16 | sequence), then 8 of randomness: 24 characters that
/// sort by creation time. Within one process the first part strictly increases, so ids made in
/// the same millisecond keep their order.
fn time_ordered_id(now: DateTime<Utc>) -> Result<String, DomainError> {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let ms = u64::try_from(now.timestamp_millis()).unwrap_or(0) & 0xffff_ffff_ffff;
    let mut prev = LAST.load(Ordering::Relaxed);
    let stamp = loop {
        let next = (ms << 16).max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(actual) => prev = actual,
        }
    };
    let mut rand = [0u8; 4];
    getrandom::fill(&mut rand).map_err(|e| DomainError::Random(e.to_string()))?;
    Ok(format!("{stamp:016x}{:08x}", u32::from_be_bytes(rand)))
}

/// As `time_ordered_id`, with the sequence and the random part taken from a hash of `name`.
fn derived_id(at: DateTime<Utc>, name: &str) -> String {
    use sha2::{Digest, Sha256};
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0) & 0xffff_ffff_ffff;
    let d = Sha256::digest(name.as_bytes());
    let sequence = u64::from(u16::from_be_bytes([d[0], d[1]]));
    format!("{:016x}{:08x}", (ms << 16) | sequence, u32::from_be_bytes([d[2], d[3], d[4], d[5]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn generated_ids_sort_by_creation_time() {
        let a = PaymentId::generate(Utc.timestamp_opt(1_000, 0).unwrap()).unwrap();
        let b = PaymentId::generate(Utc.timestamp_opt(2_000, 0).unwrap()).unwrap();
        assert!(a < b);
        assert_eq!(a.as_str().len(), 24);
        assert_eq!(PaymentId::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn ids_made_in_the_same_millisecond_keep_their_order() {
        let t = Utc.timestamp_opt(5_000, 0).unwrap();
        let ids: Vec<AuditId> = (0..100).map(|_| AuditId::generate(t).unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn ids_with_foreign_characters_are_refused() {
        assert!(PaymentId::parse("../etc/passwd").is_err());
        assert!(PaymentId::parse("").is_err());
        assert!(PaymentId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn telegram_user_ids_are_positive() {
        assert!(TelegramUserId::parse(0).is_err());
        assert!(TelegramUserId::parse(-5).is_err());
        assert_eq!(TelegramUserId::parse(42).unwrap().get(), 42);
    }

    #[test]
    fn user_ids_are_trimmed_and_bounded() {
        assert_eq!(UserId::parse("  alice ").unwrap().as_str(), "alice");
        assert!(UserId::parse("   ").is_err());
        assert!(UserId::parse("a\nb").is_err());
    }
}

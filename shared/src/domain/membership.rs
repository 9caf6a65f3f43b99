use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{DomainError, MembershipId, PaymentId, TelegramUserId, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipStatus {
    /// A token was redeemed and an invite issued; the period starts when the account joins.
    Pending,
    Active,
    Expired,
    Revoked,
}

impl MembershipStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Ok(match raw {
            "pending" => Self::Pending,
            "active" => Self::Active,
            "expired" => Self::Expired,
            "revoked" => Self::Revoked,
            _ => return Err(DomainError::invalid("membership status", "unknown")),
        })
    }
}

/// One Telegram account's access to the channel, opened by a redeemed token and extended by renewals.
#[derive(Clone, Debug, PartialEq)]
pub struct Membership {
    pub id: MembershipId,
    pub user_id: UserId,
    pub telegram_user_id: TelegramUserId,
    pub telegram_username: Option<String>,
    pub payment_id: PaymentId,
    pub offer_name: String,
    /// Days granted and not yet started: counted from the join.
    pub pending_days: u32,
    pub status: MembershipStatus,
    pub created_at: DateTime<Utc>,
    pub joined_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub in_channel: bool,
    pub left_at: Option<DateTime<Utc>>,
    pub invite_link: Option<String>,
    pub invite_expires_at: Option<DateTime<Utc>>,
    /// When and why it ended (expired, revoked).
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
    /// A Stars subscription renews it: past its end, it is not removed before this time, while
    /// Telegram's renewal may still arrive. Cleared when the subscription is cancelled or fails.
    pub renews_until: Option<DateTime<Utc>>,
}

impl Membership {
    /// The membership a token bound to `account` opens: paid for, waiting for the join, which
    /// starts its period.
    pub fn pending(
        id: MembershipId,
        token: &super::TokenRecord,
        account: TelegramUserId,
        username: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            telegram_username: username,
            pending_days: token.days,
            ..Self::opened(id, token.user_id.clone(), account, token.payment_id.clone(), token.offer_name.clone(), now)
        }
    }

    /// A membership whose member joined at `joined_at`, active until `expires_at` (as the import
    /// writes one it brings over).
    pub fn joined(
        id: MembershipId,
        user_id: UserId,
        account: TelegramUserId,
        payment_id: PaymentId,
        offer_name: String,
        joined_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            status: MembershipStatus::Active,
            joined_at: Some(joined_at),
            expires_at: Some(expires_at),
            in_channel: true,
            ..Self::opened(id, user_id, account, payment_id, offer_name, joined_at)
        }
    }

    /// Paid for, not joined yet, nothing else known: what the constructors start from.
    fn opened(
        id: MembershipId,
        user_id: UserId,
        account: TelegramUserId,
        payment_id: PaymentId,
        offer_name: String,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            user_id,
            telegram_user_id: account,
            telegram_username: None,
            payment_id,
            offer_name,
            pending_days: 0,
            status: MembershipStatus::Pending,
            created_at: at,
            joined_at: None,
            expires_at: None,
            in_channel: false,
            left_at: None,
            invite_link: None,
            invite_expires_at: None,
            ended_at: None,
            end_reason: None,
            renews_until: None,
        }
    }

    /// Active and not past its end, whatever a job has or has not done yet.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.status == MembershipStatus::Active && self.expires_at.is_some_and(|end| end > now)
    }

    /// Held past its end while a renewal may still come (see `renews_until`).
    pub fn renewal_awaited(&self, now: DateTime<Utc>) -> bool {
        self.renews_until.is_some_and(|until| until > now)
    }

    /// May this account be let into the channel now: an active period, or a pending one whose
    /// personal invite is still open.
    pub fn admits(&self, now: DateTime<Utc>) -> bool {
        self.is_active(now)
            || (self.status == MembershipStatus::Pending && self.invite_expires_at.is_some_and(|end| end > now))
    }

    /// Does this membership still hold the account's place: an active period, or a pending one
    /// (paid for, waiting for the join). A removal of the account is stale while one does.
    pub fn holds_place(&self, now: DateTime<Utc>) -> bool {
        self.is_active(now) || self.status == MembershipStatus::Pending
    }

    /// This membership without `days` of what was paid into it (a refunded payment's): its end
    /// earlier, or fewer days waiting for the join. `None` when nothing paid for is left.
    pub fn without_days(&self, days: u32, now: DateTime<Utc>) -> Option<Self> {
        let mut shorter = self.clone();
        match self.status {
            MembershipStatus::Pending => {
                shorter.pending_days = self.pending_days.saturating_sub(days);
                (shorter.pending_days > 0).then_some(shorter)
            }
            MembershipStatus::Active => {
                let end = self.expires_at? - Duration::days(i64::from(days));
                shorter.expires_at = Some(end);
                (end > now).then_some(shorter)
            }
            MembershipStatus::Expired | MembershipStatus::Revoked => None,
        }
    }

    /// Whole days left, rounded up, never negative.
    pub fn days_remaining(&self, now: DateTime<Utc>) -> i64 {
        match self.expires_at {
            Some(end) if self.is_active(now) => {
                let secs = (end - now).num_seconds();
                (secs + 86_399) / 86_400
            }
            _ => 0,
        }
    }
}

/// The end after adding `days` to a period: counted from the later of now and the current end,
/// so a renewal never loses paid days and never backdates.
pub fn extended_end(current_end: Option<DateTime<Utc>>, now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let from = current_end.map_or(now, |end| end.max(now));
    from + Duration::days(i64::from(days))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + day * 86_400, 0).unwrap()
    }

    #[test]
    fn a_renewal_before_the_end_extends_from_the_end() {
        assert_eq!(extended_end(Some(at(10)), at(5), 30), at(40));
    }

    #[test]
    fn a_renewal_after_the_end_extends_from_now() {
        assert_eq!(extended_end(Some(at(10)), at(20), 30), at(50));
        assert_eq!(extended_end(None, at(20), 30), at(50));
    }

    fn member(status: MembershipStatus, end: DateTime<Utc>) -> Membership {
        let (id, user, account) =
            (MembershipId::parse("m1").unwrap(), UserId::parse("u").unwrap(), TelegramUserId::parse(1).unwrap());
        Membership {
            status,
            ..Membership::joined(id, user, account, PaymentId::parse("p1").unwrap(), "x".into(), at(0), end)
        }
    }

    #[test]
    fn a_membership_past_its_end_is_not_active_even_before_the_sweep() {
        let m = member(MembershipStatus::Active, at(10));
        assert!(m.is_active(at(9)));
        assert!(!m.is_active(at(10)));
        assert_eq!(m.days_remaining(at(11)), 0);
    }

    #[test]
    fn days_remaining_rounds_up() {
        let m = member(MembershipStatus::Active, at(10));
        assert_eq!(m.days_remaining(at(9)), 1);
        assert_eq!(m.days_remaining(at(9) + Duration::hours(23)), 1);
        assert_eq!(m.days_remaining(at(0)), 10);
        assert_eq!(member(MembershipStatus::Revoked, at(10)).days_remaining(at(0)), 0);
    }
}

/// An account a channel administrator removed by hand: respected (no `/start`, no approval, no
/// unban lets it back) until support lifts it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AccountBar {
    pub telegram_user_id: super::TelegramUserId,
    pub reason: String,
    /// Who barred it: `telegram:<administrator id>`.
    pub by: String,
    pub at: DateTime<Utc>,
}

/// An account already in the channel when telegate took over that no payment covers (staff,
/// legacy free members): kept, never removed by telegate, never counted as paying.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Exemption {
    pub telegram_user_id: super::TelegramUserId,
    pub note: String,
    pub at: DateTime<Utc>,
}

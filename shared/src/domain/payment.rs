use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DomainError, Lang, PaymentId, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    TransactionSubmitted,
    Validated,
    Rejected,
    /// A refund was asked for and is being carried out (Telegram's answer not yet in).
    RefundRequested,
    /// The money went back: terminal, the payment buys nothing again.
    Refunded,
    /// Telegram refused the refund; the note says why. Asking again tries again.
    RefundFailed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TransactionSubmitted => "transaction_submitted",
            Self::Validated => "validated",
            Self::Rejected => "rejected",
            Self::RefundRequested => "refund_requested",
            Self::Refunded => "refunded",
            Self::RefundFailed => "refund_failed",
        }
    }
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Ok(match raw {
            "transaction_submitted" => Self::TransactionSubmitted,
            "validated" => Self::Validated,
            "rejected" => Self::Rejected,
            "refund_requested" => Self::RefundRequested,
            "refunded" => Self::Refunded,
            "refund_failed" => Self::RefundFailed,
            _ => {
                return Err(DomainError::invalid(
                    "status",
                    "must be transaction_submitted, validated, rejected, refund_requested, refunded or refund_failed",
                ));
            }
        })
    }

    /// The refund's moves, the only ways out of `validated`: validated → refund requested →
    /// refunded | refund failed; a failed refund asked again, or carried out after all (a retry
    /// that went through), moves on. Refunded is terminal: no move leads out of it.
    pub fn may_become(self, to: Self) -> bool {
        use PaymentStatus::*;
        matches!(
            (self, to),
            (Validated | RefundFailed, RefundRequested)
                | (RefundRequested | RefundFailed, Refunded)
                | (RefundRequested, RefundFailed)
        )
    }

    /// Whether a refund was asked for (whatever became of it): such a payment buys nothing.
    pub fn is_refund(self) -> bool {
        matches!(self, Self::RefundRequested | Self::Refunded | Self::RefundFailed)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Payment {
    pub id: PaymentId,
    pub user_id: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub offer_id: String,
    pub transaction_id: String,
    pub user_info: Option<serde_json::Value>,
    pub status: PaymentStatus,
    pub admin_notes: Option<String>,
    pub reject_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub reviewed_by: Option<UserId>,
    /// Why a refund was asked for, or, once Telegram refused it, why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_note: Option<String>,
    /// What its validation added to the web revenue (its offer's `price_cents` then), which a
    /// refund takes out again; `None` for a payment in Stars, or when nothing was counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revenue_cents: Option<i64>,
    /// The payer's language, from `Accept-Language` at submission: mails and notifications use it.
    pub lang: Lang,
}

/// A payment in Telegram Stars is recorded with its charge id under this prefix, a form a manual
/// transaction id may not take.
pub const STARS_TRANSACTION_PREFIX: &str = "stars:";

/// What a payment in Stars paid, as telegate recorded it with the payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StarsPaid {
    pub stars: u32,
    /// A subscription's payment (its first or a renewal).
    pub renewing: bool,
    /// A renewal of a subscription already running.
    pub renewal: bool,
    /// A subscription's payment: until when it pays (Telegram's `subscription_expiration_date`,
    /// else 30 days from the payment).
    pub period_end: DateTime<Utc>,
}

impl Payment {
    /// The charge id of a payment in Stars.
    pub fn stars_charge(&self) -> Option<&str> {
        self.transaction_id.strip_prefix(STARS_TRANSACTION_PREFIX)
    }

    /// The charge id and the paying account of a payment in Stars.
    pub fn stars_payer(&self) -> Option<(&str, super::TelegramUserId)> {
        let account = self.user_info.as_ref()?["telegram_user_id"].as_i64()?;
        Some((self.stars_charge()?, super::TelegramUserId::parse(account).ok()?))
    }

    /// What a payment in Stars paid; `None` for a manual payment.
    pub fn stars_paid(&self) -> Option<StarsPaid> {
        self.stars_charge()?;
        let info = self.user_info.as_ref()?;
        let expiration = info["subscription_expiration_date"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok());
        let default_end = self.created_at + chrono::Duration::days(i64::from(super::STAR_SUBSCRIPTION_DAYS));
        Some(StarsPaid {
            stars: u32::try_from(info["stars"].as_u64()?).ok()?,
            renewing: info["renewing"] == true,
            renewal: info["renewal"] == true,
            period_end: expiration.filter(|e| *e > self.created_at).unwrap_or(default_end),
        })
    }
}

/// A transaction id as the payer typed it (or support corrected it, or a dump holds it): trimmed,
/// 1 to 128 printable characters, never in the form of a Stars charge (`stars:` in any spelling),
/// which only Telegram's payments take: such an id would be revenue telegate never took, and a
/// refund would go to whoever the row names.
pub fn parse_transaction_id(raw: &str) -> Result<String, DomainError> {
    let t = raw.trim();
    let key = transaction_key(t);
    if key.is_empty() || t.len() > 128 || t.chars().any(char::is_control) {
        return Err(DomainError::invalid("transaction_id", "must be 1 to 128 printable characters"));
    }
    if key.starts_with(STARS_TRANSACTION_PREFIX) {
        return Err(DomainError::invalid(
            "transaction_id",
            "must not begin with \"stars:\", the form of a Telegram Stars charge",
        ));
    }
    Ok(t.to_owned())
}

/// The form of a transaction id that uniqueness is decided on: Unicode compatibility form (NFKC:
/// full-width letters, ligatures and no-break spaces become plain ones), without whitespace or
/// invisible format characters (zero-width spaces and joiners, soft hyphens, BOM), in lower case.
/// `TX-1`, `tx-1`, `TX-1` + U+200B and `TX<NBSP>-1` are one transaction; what the payer typed is
/// kept for display.
pub fn transaction_key(transaction_id: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    // A Stars charge id is Telegram's: compared exactly as Telegram sends it (manual ids may not
    // take the prefix, whatever their spelling).
    if transaction_id.starts_with(STARS_TRANSACTION_PREFIX) {
        return transaction_id.to_owned();
    }
    transaction_id
        .nfkc()
        .filter(|c| !c.is_whitespace() && !is_invisible_format(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Unicode's format characters (category Cf) that commonly hide in pasted text.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

impl Payment {
    /// See `transaction_key`.
    pub fn transaction_key(&self) -> String {
        transaction_key(&self.transaction_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_that_look_alike_have_one_key() {
        let key = transaction_key("TX-1");
        for alike in ["tx-1", "TX-1\u{200B}", "TX\u{00A0}-1", "ＴＸ－１", " T X-1 ", "TX\u{FEFF}-1", "Tx-\u{2060}1"]
        {
            assert_eq!(transaction_key(alike), key, "{alike:?}");
        }
        assert_ne!(transaction_key("TX-2"), key);
        assert_ne!(transaction_key("TX1"), transaction_key("TX-1"), "punctuation that shows is kept");
    }

    #[test]
    fn stars_charge_ids_are_compared_exactly() {
        let key = transaction_key("stars:stxAbC");
        for other in ["stars:stxabc", "stars:stxAbC\u{200B}", "stars:stx AbC"] {
            assert_ne!(transaction_key(other), key, "{other:?}");
        }
        assert_eq!(
            transaction_key("STARS:x"),
            "stars:x",
            "a manual id that looks like one is still folded (and refused)"
        );
    }

    #[test]
    fn transaction_ids_are_trimmed_and_bounded() {
        assert_eq!(parse_transaction_id("  TX-1 ").unwrap(), "TX-1");
        assert!(parse_transaction_id("").is_err());
        assert!(parse_transaction_id(&"x".repeat(129)).is_err());
    }

    #[test]
    fn statuses_round_trip() {
        use PaymentStatus::*;
        for s in [TransactionSubmitted, Validated, Rejected, RefundRequested, Refunded, RefundFailed] {
            assert_eq!(PaymentStatus::parse(s.as_str()).unwrap(), s);
        }
        assert!(PaymentStatus::parse("paid").is_err());
    }

    #[test]
    fn a_refund_moves_one_way_and_refunded_is_terminal() {
        use PaymentStatus::*;
        let all = [TransactionSubmitted, Validated, Rejected, RefundRequested, Refunded, RefundFailed];
        for to in all {
            assert!(!Refunded.may_become(to), "refunded → {to:?}");
            assert!(
                !TransactionSubmitted.may_become(to) && !Rejected.may_become(to),
                "only a validated payment is refunded"
            );
            assert!(!Validated.may_become(to) || to == RefundRequested);
        }
        assert!(Validated.may_become(RefundRequested) && RefundRequested.may_become(Refunded));
        assert!(RefundRequested.may_become(RefundFailed) && RefundFailed.may_become(RefundRequested));
        assert!(RefundFailed.may_become(Refunded), "a retry that went through after all");
        assert!(!RefundRequested.may_become(RefundRequested), "asked once");
    }
}

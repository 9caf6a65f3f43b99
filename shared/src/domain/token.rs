//! Access tokens: 256 random bits, deep-link alphabet, stored only as a SHA-256 hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

use super::{DomainError, MembershipId, PaymentId, TelegramUserId, UserId};

/// The secret a buyer carries in the bot link. Never logged: `Debug` is redacted and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// 32 bytes from the OS, base64url without padding: 43 characters of `[A-Za-z0-9_-]`.
    pub fn generate() -> Result<Self, DomainError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| DomainError::Random(e.to_string()))?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// What Telegram hands back after `/start `: anything outside the deep-link alphabet is not ours.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(DomainError::invalid("token", "is not a telegate token"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(hex(&Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// The only form in which a token is stored. Looked up by equality in the store's index, so the
/// token itself is never compared byte by byte in our code.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The key of the token a Stars payment grants its payer: it has no secret to carry (the payer
    /// is already the account), and one charge id names one token however often it arrives.
    pub fn of_stars_charge(charge_id: &str) -> Self {
        Self(hex(&Sha256::digest(format!("telegram-stars-charge:{charge_id}").as_bytes())))
    }
    /// A short, non-secret label for logs and audit (the first 12 hex digits of the hash).
    pub fn label(&self) -> &str {
        &self.0[..self.0.len().min(12)]
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Issued, not yet opened in Telegram.
    Pending,
    /// Opened by one Telegram account; that account alone may use it.
    Bound,
    /// Its period has been granted (the member joined, or an active membership was extended).
    Used,
    /// A newer token for the same payment took its place.
    Replaced,
    Expired,
    Revoked,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Bound => "bound",
            Self::Used => "used",
            Self::Replaced => "replaced",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Ok(match raw {
            "pending" => Self::Pending,
            "bound" => Self::Bound,
            "used" => Self::Used,
            "replaced" => Self::Replaced,
            "expired" => Self::Expired,
            "revoked" => Self::Revoked,
            _ => return Err(DomainError::invalid("token status", "unknown")),
        })
    }
}

/// A token as stored: its hash, what it grants, and who has bound it.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenRecord {
    pub hash: TokenHash,
    pub payment_id: PaymentId,
    pub user_id: UserId,
    pub offer_name: String,
    pub days: u32,
    pub status: TokenStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub telegram_user_id: Option<TelegramUserId>,
    pub membership_id: Option<MembershipId>,
    pub used_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_43_characters_of_the_deep_link_alphabet() {
        let t = AccessToken::generate().unwrap();
        assert_eq!(t.expose().len(), 43);
        assert!(t.expose().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(t, AccessToken::generate().unwrap());
    }

    #[test]
    fn a_token_parses_back_and_hashes_the_same() {
        let t = AccessToken::generate().unwrap();
        let back = AccessToken::parse(t.expose()).unwrap();
        assert_eq!(back.hash(), t.hash());
        assert_eq!(t.hash().as_str().len(), 64);
    }

    #[test]
    fn tokens_outside_the_alphabet_or_too_long_are_refused() {
        assert!(AccessToken::parse("").is_err());
        assert!(AccessToken::parse("abc def").is_err());
        assert!(AccessToken::parse("abc+/=").is_err());
        assert!(AccessToken::parse(&"a".repeat(65)).is_err());
        assert!(AccessToken::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let t = AccessToken::generate().unwrap();
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}

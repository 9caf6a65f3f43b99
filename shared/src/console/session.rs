//! The console's session: a signed, short-lived cookie naming who signed in, their role and the
//! CSRF token every form of theirs carries; and the one-time sign-in link of the local host.

use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::{Caller, Role};
use crate::domain::{DomainError, UserId};

/// The session cookie's name.
pub const COOKIE: &str = "telegate_console";
/// How long a session lasts: a working session, not a remembered device.
pub const SESSION_HOURS: i64 = 8;
/// How long the one-time sign-in link can be used.
pub const SIGN_IN_MINUTES: i64 = 10;

/// What the session cookie holds (signed, so not changed by its holder).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Session {
    /// Names the session where signing out marks it (`Session::signed_out_key`).
    pub id: String,
    pub sub: String,
    pub role: Role,
    /// Unix time the session ends.
    pub exp: i64,
    /// The token every form of this session carries.
    pub csrf: String,
    /// The Telegram account a session opened inside Telegram was signed for: its role is read
    /// again as the session goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram: Option<i64>,
}

impl Session {
    pub fn caller(&self) -> Result<Caller, DomainError> {
        Ok(Caller { user_id: UserId::parse(&self.sub)?, email: None, role: self.role })
    }

    /// Where signing out marks the session, until it would have ended: a copy of the cookie
    /// opens nothing after that.
    pub fn signed_out_key(&self) -> String {
        format!("console-signed-out:{}", self.id)
    }

    /// When the session ends.
    pub fn ends_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.exp, 0).unwrap_or_default()
    }

    /// Whether a form's token is this session's.
    pub fn csrf_matches(&self, given: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(given.as_bytes()))
    }

    /// A form of this session goes on; any other is refused (403, nothing done).
    pub fn check_csrf(&self, given: &str) -> Result<(), super::ConsoleError> {
        if self.csrf_matches(given) { Ok(()) } else { Err(super::ConsoleError::Csrf) }
    }
}

struct OneTime {
    hash: [u8; 32],
    until: DateTime<Utc>,
    sub: String,
    role: Role,
}

/// Signs and reads sessions with a key of this process, and keeps the one pending sign-in link.
pub struct Sessions {
    key: [u8; 32],
    sign_in: Mutex<Option<OneTime>>,
}

fn random() -> Result<[u8; 32], DomainError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| DomainError::Random(e.to_string()))?;
    Ok(bytes)
}

/// 256 random bits, as URL-safe text.
pub(super) fn random_text() -> Result<String, DomainError> {
    Ok(URL_SAFE_NO_PAD.encode(random()?))
}

/// HMAC-SHA-256: the session's signature, and Telegram's check of launch data (`telegram.rs`).
pub(super) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // An HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl Sessions {
    /// With a fresh random key: sessions end with the process.
    pub fn new() -> Result<Self, DomainError> {
        Ok(Self { key: random()?, sign_in: Mutex::new(None) })
    }

    /// With the key every container shares (`CONSOLE_SESSION_KEY`): a session opened by one is
    /// read by the others.
    pub fn with_key(key: &crate::config::Secret) -> Self {
        Self { key: Sha256::digest(key.expose().as_bytes()).into(), sign_in: Mutex::new(None) }
    }

    /// With `key` if there is one, else a key of this process.
    pub fn from_settings(key: Option<&crate::config::Secret>) -> Result<Self, DomainError> {
        key.map_or_else(Self::new, |k| Ok(Self::with_key(k)))
    }

    /// A new session for `sub` with `role` (signed in inside Telegram as `telegram`), as the
    /// cookie's value. It lasts `SESSION_HOURS`, or less when what vouched for the role is good
    /// for less (`ends_by`: the identity provider's token, whose role is not read again).
    pub fn open(
        &self,
        sub: &str,
        role: Role,
        telegram: Option<i64>,
        now: DateTime<Utc>,
        ends_by: Option<DateTime<Utc>>,
    ) -> Result<(Session, String), DomainError> {
        let longest = now + Duration::hours(SESSION_HOURS);
        let session = Session {
            id: random_text()?,
            sub: sub.to_owned(),
            role,
            exp: ends_by.map_or(longest, |end| end.min(longest)).timestamp(),
            csrf: random_text()?,
            telegram,
        };
        let value = self.seal(COOKIE, &session);
        Ok((session, value))
    }

    /// The session a cookie's value carries, if this key signed it and it has not ended.
    pub fn read(&self, value: &str, now: DateTime<Utc>) -> Option<Session> {
        self.unseal::<Session>(COOKIE, value).filter(|s| s.exp > now.timestamp())
    }

    /// `value` as JSON, signed for `purpose` (a cookie's name): one purpose's value is never
    /// read as another's.
    pub(super) fn seal(&self, purpose: &str, value: &impl Serialize) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default());
        let signature = URL_SAFE_NO_PAD.encode(hmac(&self.key, format!("{purpose}.{payload}").as_bytes()));
        format!("{payload}.{signature}")
    }

    /// What `seal` signed for `purpose`, if this key signed it.
    pub(super) fn unseal<T: DeserializeOwned>(&self, purpose: &str, value: &str) -> Option<T> {
        let (payload, signature) = value.split_once('.')?;
        let given = URL_SAFE_NO_PAD.decode(signature).ok()?;
        if !bool::from(hmac(&self.key, format!("{purpose}.{payload}").as_bytes()).ct_eq(given.as_slice())) {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }

    /// A new one-time sign-in code for `sub` (the one before it stops working).
    pub fn sign_in_code(&self, sub: &str, role: Role, now: DateTime<Utc>) -> Result<String, DomainError> {
        let code = random_text()?;
        let pending = OneTime {
            hash: Sha256::digest(code.as_bytes()).into(),
            until: now + Duration::minutes(SIGN_IN_MINUTES),
            sub: sub.to_owned(),
            role,
        };
        *self.sign_in.lock().unwrap_or_else(|p| p.into_inner()) = Some(pending);
        Ok(code)
    }

    /// Uses the sign-in code: who it signs in, once, while it lasts.
    pub fn redeem_code(&self, code: &str, now: DateTime<Utc>) -> Option<(String, Role)> {
        let mut pending = self.sign_in.lock().unwrap_or_else(|p| p.into_inner());
        let hash: [u8; 32] = Sha256::digest(code.as_bytes()).into();
        let matches = pending.as_ref().is_some_and(|p| bool::from(p.hash.ct_eq(&hash)) && p.until > now);
        if !matches {
            return None;
        }
        pending.take().map(|p| (p.sub, p.role))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_reads_back_only_as_signed_and_until_it_ends() {
        let sessions = Sessions::new().unwrap();
        let now = Utc::now();
        let (session, cookie) = sessions.open("root", Role::Admin, None, now, None).unwrap();
        assert_eq!(sessions.read(&cookie, now), Some(session.clone()));
        assert_eq!(sessions.read(&cookie, now + Duration::hours(SESSION_HOURS)), None, "ended");
        let (_, shorter) = sessions.open("root", Role::Admin, None, now, Some(now + Duration::hours(1))).unwrap();
        assert!(sessions.read(&shorter, now + Duration::minutes(59)).is_some());
        assert_eq!(sessions.read(&shorter, now + Duration::hours(1)), None, "ended with what vouched for it");
        let (_, longer) = sessions.open("root", Role::Admin, None, now, Some(now + Duration::hours(99))).unwrap();
        assert_eq!(sessions.read(&longer, now + Duration::hours(SESSION_HOURS)), None, "never past its hours");
        let (payload, signature) = cookie.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Session { role: Role::Admin, sub: "mallory".into(), ..session.clone() }).unwrap(),
        );
        assert_eq!(sessions.read(&format!("{forged}.{signature}"), now), None, "another payload");
        assert_eq!(sessions.read(payload, now), None, "no signature");
        assert_eq!(Sessions::new().unwrap().read(&cookie, now), None, "another process's key");
        assert!(session.csrf_matches(&session.csrf) && !session.csrf_matches("x"));
    }

    #[test]
    fn a_sign_in_code_works_once_and_not_after_its_minutes() {
        let sessions = Sessions::new().unwrap();
        let now = Utc::now();
        let code = sessions.sign_in_code("local", Role::Admin, now).unwrap();
        assert_eq!(sessions.redeem_code("wrong", now), None);
        assert_eq!(sessions.redeem_code(&code, now), Some(("local".to_owned(), Role::Admin)));
        assert_eq!(sessions.redeem_code(&code, now), None, "used");
        let late = sessions.sign_in_code("local", Role::Admin, now).unwrap();
        assert_eq!(sessions.redeem_code(&late, now + Duration::minutes(SIGN_IN_MINUTES)), None, "expired");
    }
}

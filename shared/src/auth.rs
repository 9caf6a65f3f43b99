//! Bearer JWT verification: HS256 secret, RS256 public key, or a JWKS (Cognito). The algorithm is
//! pinned by the configuration; the token's header never chooses it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::RwLock;

use crate::config::{ConfigError, JwtKey, JwtSettings};
use crate::domain::UserId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Support,
    Admin,
}

/// The Telegram accounts with a console role besides the channel's administrators
/// (`ADMIN_TELEGRAM_IDS`, `SUPPORT_TELEGRAM_IDS`): one rule for the bot's `/admin` and the
/// console's sign-in inside Telegram.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Staff {
    pub admins: Vec<i64>,
    pub support: Vec<i64>,
}

impl Staff {
    /// The role of `account`, given the channel's administrators (admins too).
    pub fn role(&self, account: i64, channel_administrators: &[i64]) -> Option<Role> {
        if self.admins.contains(&account) || channel_administrators.contains(&account) {
            Some(Role::Admin)
        } else {
            self.support.contains(&account).then_some(Role::Support)
        }
    }
}

/// Who is calling, as the verified token says.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: UserId,
    pub email: Option<String>,
    pub role: Role,
}

impl Caller {
    pub fn has(&self, role: Role) -> bool {
        self.role >= role
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid token")]
    Invalid,
    #[error("the token has no usable subject")]
    NoSubject,
    /// A subject in telegate's own namespace of Telegram accounts (`tg:`): an identity provider
    /// that let a user pick it would hand them a Stars buyer's payments.
    #[error("the token's subject is reserved for Telegram accounts")]
    ReservedSubject,
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

enum Keys {
    /// No key configured: every token is refused.
    None,
    Static(DecodingKey),
    Jwks {
        url: String,
        client: reqwest::Client,
        cache: RwLock<JwksCache>,
    },
}

#[derive(Default)]
struct JwksCache {
    keys: HashMap<String, DecodingKey>,
    /// The last fetch, and its error if it failed: while it is recent, no other fetch is made.
    fetched: Option<(Instant, Option<String>)>,
}

/// How long an unknown `kid` waits before the key set is fetched again.
const JWKS_REFRESH: Duration = Duration::from_secs(60);
/// After a failed fetch, requests naming an unknown key are answered 503 at once for this long
/// instead of each waiting on the endpoint again.
const JWKS_RETRY: Duration = Duration::from_secs(10);

pub struct JwtVerifier {
    keys: Keys,
    validation: Validation,
}

impl JwtVerifier {
    pub fn new(settings: &JwtSettings) -> Result<Self, ConfigError> {
        let (keys, alg) = match &settings.key {
            JwtKey::Hs256(secret) => {
                (Keys::Static(DecodingKey::from_secret(secret.expose().as_bytes())), Algorithm::HS256)
            }
            JwtKey::Rs256Pem(pem) => {
                let key = DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| ConfigError(format!("bad setting JWT_PUBLIC_KEY_PEM: {e}")))?;
                (Keys::Static(key), Algorithm::RS256)
            }
            JwtKey::JwksUrl(url) => {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .map_err(|e| ConfigError(format!("cannot build the JWKS client: {e}")))?;
                (Keys::Jwks { url: url.clone(), client, cache: RwLock::default() }, Algorithm::RS256)
            }
            JwtKey::None => (Keys::None, Algorithm::HS256),
        };
        let mut validation = Validation::new(alg);
        validation.leeway = 30;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        match &settings.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &settings.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Self { keys, validation })
    }

    /// Verifies an `Authorization` header value and returns the caller it names.
    pub async fn verify_header(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let token = header
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        self.verify(token).await
    }

    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        Ok(self.verify_until(token).await?.0)
    }

    /// The caller a token names, and when the token stops being good (its `exp`).
    pub async fn verify_until(&self, token: &str) -> Result<(Caller, DateTime<Utc>), AuthError> {
        let claims = match &self.keys {
            Keys::None => return Err(AuthError::Invalid),
            Keys::Static(key) => decode(token, key, &self.validation)?,
            Keys::Jwks { url, client, cache } => {
                let kid = jsonwebtoken::decode_header(token)
                    .map_err(|_| AuthError::Invalid)?
                    .kid
                    .ok_or(AuthError::Invalid)?;
                let key = cache.read().await.keys.get(&kid).cloned();
                let key = match key {
                    Some(k) => k,
                    None => refresh_jwks(url, client, cache, &kid).await?.ok_or(AuthError::Invalid)?,
                };
                decode(token, &key, &self.validation)?
            }
        };
        // `exp` is required and checked by `decode`; a number, whole or not.
        let ends = claims.get("exp").and_then(Value::as_f64).and_then(|t| DateTime::from_timestamp(t as i64, 0));
        Ok((caller_from(&claims)?, ends.ok_or(AuthError::Invalid)?))
    }
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Value, AuthError> {
    jsonwebtoken::decode::<Value>(token, key, validation).map(|d| d.claims).map_err(|_| AuthError::Invalid)
}

async fn refresh_jwks(
    url: &str,
    client: &reqwest::Client,
    cache: &RwLock<JwksCache>,
    kid: &str,
) -> Result<Option<DecodingKey>, AuthError> {
    // One fetch in flight: the write lock is held across it, and whoever waited finds its outcome.
    let mut cache = cache.write().await;
    if let Some(k) = cache.keys.get(kid) {
        return Ok(Some(k.clone()));
    }
    match &cache.fetched {
        Some((at, Some(error))) if at.elapsed() < JWKS_RETRY => return Err(AuthError::KeysUnavailable(error.clone())),
        Some((at, None)) if at.elapsed() < JWKS_REFRESH => return Ok(None),
        _ => {}
    }
    let fetched: Result<JwkSet, reqwest::Error> =
        async { client.get(url).send().await?.error_for_status()?.json().await }.await;
    let set = match fetched {
        Ok(set) => set,
        Err(e) => {
            let error = e.without_url().to_string();
            cache.fetched = Some((Instant::now(), Some(error.clone())));
            return Err(AuthError::KeysUnavailable(error));
        }
    };
    cache.fetched = Some((Instant::now(), None));
    cache.keys = set
        .keys
        .iter()
        .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
        .collect();
    Ok(cache.keys.get(kid).cloned())
}

fn caller_from(claims: &Value) -> Result<Caller, AuthError> {
    // Only access tokens open the API: simplejwt's refresh tokens (`token_type`) and Cognito's ID
    // tokens (`token_use`) are signed by the same key but are not for this.
    for kind in ["token_type", "token_use"] {
        if claims.get(kind).is_some_and(|v| v != "access") {
            return Err(AuthError::Invalid);
        }
    }
    let subject = match (claims.get("sub"), claims.get("user_id")) {
        (Some(Value::String(s)), _) => s.clone(),
        (None, Some(Value::String(s))) => s.clone(),
        (None, Some(Value::Number(n))) => n.to_string(),
        _ => return Err(AuthError::NoSubject),
    };
    let user_id = UserId::parse(&subject).map_err(|_| AuthError::NoSubject)?;
    if user_id.is_telegram_account() {
        return Err(AuthError::ReservedSubject);
    }
    let email = claims.get("email").and_then(Value::as_str).map(str::to_owned);
    let mut names: Vec<&str> = Vec::new();
    if let Some(r) = claims.get("role").and_then(Value::as_str) {
        names.push(r);
    }
    for key in ["roles", "cognito:groups"] {
        if let Some(list) = claims.get(key).and_then(Value::as_array) {
            names.extend(list.iter().filter_map(Value::as_str));
        }
    }
    let role = names
        .iter()
        .map(|n| match n.to_ascii_lowercase().as_str() {
            "admin" => Role::Admin,
            "support" => Role::Support,
            _ => Role::User,
        })
        .max()
        .unwrap_or(Role::User);
    Ok(Caller { user_id, email, role })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn verifier(issuer: Option<&str>, audience: Option<&str>) -> JwtVerifier {
        JwtVerifier::new(&JwtSettings {
            key: JwtKey::Hs256(Secret::new(SECRET)),
            issuer: issuer.map(str::to_owned),
            audience: audience.map(str::to_owned),
        })
        .unwrap()
    }

    fn sign(claims: Value) -> String {
        encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
    }

    fn exp() -> i64 {
        chrono::Utc::now().timestamp() + 600
    }

    #[tokio::test]
    async fn the_highest_role_of_all_claims_wins() {
        let v = verifier(None, None);
        let c = v
            .verify(&sign(json!({"sub": "u1", "exp": exp(), "cognito:groups": ["support"], "role": "user"})))
            .await
            .unwrap();
        assert_eq!(c.role, Role::Support);
        let c = v.verify(&sign(json!({"user_id": 42, "exp": exp(), "roles": ["admin"]}))).await.unwrap();
        assert_eq!((c.user_id.as_str(), c.role), ("42", Role::Admin));
    }

    #[tokio::test]
    async fn a_subject_in_the_namespace_of_telegram_accounts_is_refused() {
        let v = verifier(None, None);
        for claims in [json!({"sub": "tg:7101", "exp": exp()}), json!({"user_id": " tg:7101", "exp": exp()})] {
            assert_eq!(v.verify(&sign(claims)).await.unwrap_err(), AuthError::ReservedSubject);
        }
        assert_eq!(v.verify(&sign(json!({"sub": "TG:7101", "exp": exp()}))).await.unwrap().user_id.as_str(), "TG:7101");
    }

    #[tokio::test]
    async fn expired_future_and_unsigned_tokens_are_invalid() {
        let v = verifier(None, None);
        let now = chrono::Utc::now().timestamp();
        assert_eq!(v.verify(&sign(json!({"sub": "u", "exp": now - 3600}))).await.unwrap_err(), AuthError::Invalid);
        assert_eq!(
            v.verify(&sign(json!({"sub": "u", "exp": exp(), "nbf": now + 3600}))).await.unwrap_err(),
            AuthError::Invalid
        );
        assert_eq!(v.verify(&sign(json!({"sub": "u"}))).await.unwrap_err(), AuthError::Invalid);
        // alg: none with the same claims
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", base64_claims(json!({"sub": "u", "exp": exp()})));
        assert_eq!(v.verify(&none).await.unwrap_err(), AuthError::Invalid);
    }

    #[tokio::test]
    async fn issuer_and_audience_are_checked_when_set() {
        let v = verifier(Some("https://issuer"), Some("telegate"));
        let good = json!({"sub": "u", "exp": exp(), "iss": "https://issuer", "aud": "telegate"});
        assert!(v.verify(&sign(good)).await.is_ok());
        let wrong = json!({"sub": "u", "exp": exp(), "iss": "https://other", "aud": "telegate"});
        assert!(v.verify(&sign(wrong)).await.is_err());
        let no_aud = json!({"sub": "u", "exp": exp(), "iss": "https://issuer"});
        assert!(v.verify(&sign(no_aud)).await.is_err());
    }

    #[tokio::test]
    async fn a_header_without_bearer_is_missing() {
        let v = verifier(None, None);
        assert_eq!(v.verify_header(None).await.unwrap_err(), AuthError::Missing);
        assert_eq!(v.verify_header(Some("Basic abc")).await.unwrap_err(), AuthError::Missing);
    }

    fn base64_claims(v: Value) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }
}

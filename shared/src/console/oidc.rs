//! Signing in in a browser: OpenID Connect's authorization code flow with PKCE (RFC 7636), as
//! Cognito's hosted UI serves it. The browser leaves for the provider with a state and a code
//! challenge, its verifier kept in a signed cookie of ten minutes; it comes back with a code, which
//! telegate exchanges (with the verifier) for the provider's access token, checked exactly as the
//! API checks a bearer token: the same keys, issuer, audience, and roles from the same claims.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::session::random_text;
use super::{Console, ConsoleError, cookie_named, pages, session_cookie_for};
use crate::app::AppError;
use crate::auth::{JwtVerifier, Role};
use crate::config::OidcSettings;
use crate::ports::Cause;

/// The cookie that carries the flow's state and verifier to the way back.
const PENDING: &str = "telegate_oidc";
/// How long the way back may take: the provider's sign-in page, a password, a second factor.
const PENDING_MINUTES: i64 = 10;

/// The identity provider's client, as `CONSOLE_OIDC_*` sets it.
pub struct Oidc {
    settings: OidcSettings,
    /// `CONSOLE_URL`, where the provider sends the browser back; else the request's own host.
    console_url: Option<String>,
    http: reqwest::Client,
}

/// What the browser carries while it is at the provider (signed, so not changed on the way).
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    verifier: String,
    redirect_uri: String,
    exp: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("the identity provider: {0}")]
struct ProviderError(String);

impl Oidc {
    pub fn new(settings: OidcSettings, console_url: Option<String>) -> Result<Self, AppError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| AppError::Internal(Cause::with("the identity provider's client", e)))?;
        Ok(Self { settings, console_url, http })
    }

    /// Where the provider sends the browser back: the console's public address, or this request's.
    fn redirect_uri(&self, headers: &HeaderMap) -> String {
        let base = self.console_url.clone().unwrap_or_else(|| {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let scheme = Some(header("x-forwarded-proto")).filter(|p| p == "https").unwrap_or_else(|| "http".into());
            format!("{scheme}://{}", header("host"))
        });
        format!("{base}/console/oidc/callback")
    }

    /// The provider's answer to the code and its verifier: its access token.
    async fn exchange(&self, code: &str, pending: &Pending) -> Result<String, AppError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &pending.redirect_uri),
            ("client_id", &self.settings.client_id),
            ("code_verifier", &pending.verifier),
        ];
        let unavailable =
            |e: reqwest::Error| AppError::Unavailable(Cause::with("the identity provider", e.without_url()));
        let response = self.http.post(&self.settings.token_url).form(&form).send().await.map_err(unavailable)?;
        let status = response.status();
        if status.is_server_error() {
            return Err(AppError::Unavailable(Cause::new(ProviderError(format!("answered {status}")))));
        }
        let body: serde_json::Value = response.json().await.map_err(unavailable)?;
        match body["access_token"].as_str() {
            Some(token) if status.is_success() => Ok(token.to_owned()),
            // A code used twice, expired, or not this verifier's: the sign-in starts again.
            _ => {
                let why = body["error"].as_str().unwrap_or("no access token");
                tracing::info!(%status, error = why, "console: the identity provider refused the code");
                Err(AppError::Unauthorized("the identity provider did not sign you in; try again"))
            }
        }
    }
}

fn pending_cookie(value: &str, max_age: i64) -> HeaderValue {
    // Lax, not Strict: the provider's redirect back is a navigation from another site, and this
    // cookie must come with it. It opens nothing by itself.
    let cookie = format!("{PENDING}={value}; Path=/console/oidc; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("telegate_oidc=; Max-Age=0"))
}

fn configured(console: &Console) -> Result<&Oidc, ConsoleError> {
    console.oidc.as_deref().ok_or(ConsoleError::App(AppError::NotFound(
        "signing in with the identity provider is not set up here (CONSOLE_OIDC_*)",
    )))
}

/// Off to the identity provider, with a fresh state and PKCE challenge.
pub(super) async fn start(State(console): State<Console>, headers: HeaderMap) -> Result<Response, ConsoleError> {
    let oidc = configured(&console)?;
    let now = console.clock.now();
    let pending = Pending {
        state: random_text().map_err(AppError::from)?,
        verifier: random_text().map_err(AppError::from)?,
        redirect_uri: oidc.redirect_uri(&headers),
        exp: (now + chrono::Duration::minutes(PENDING_MINUTES)).timestamp(),
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(pending.verifier.as_bytes()));
    let mut to = reqwest::Url::parse(&oidc.settings.authorize_url)
        .map_err(|e| AppError::Internal(Cause::with("CONSOLE_OIDC_AUTHORIZE_URL", e)))?;
    to.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &oidc.settings.client_id)
        .append_pair("redirect_uri", &pending.redirect_uri)
        .append_pair("scope", "openid email")
        .append_pair("state", &pending.state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let location = HeaderValue::from_str(to.as_str())
        .map_err(|_| AppError::Internal(Cause::new(ProviderError("an address that is not a header".into()))))?;
    let sealed = console.sessions.seal(PENDING, &pending);
    let headers = [(header::LOCATION, location), (header::SET_COOKIE, pending_cookie(&sealed, PENDING_MINUTES * 60))];
    Ok((StatusCode::SEE_OTHER, headers).into_response())
}

#[derive(Deserialize)]
pub(super) struct Back {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Back from the identity provider: the state must be the one this browser left with, and the
/// code, exchanged with its verifier, must give an access token the API would accept, of support
/// or admin.
pub(super) async fn callback(
    State(console): State<Console>,
    State(verifier): State<std::sync::Arc<JwtVerifier>>,
    headers: HeaderMap,
    Query(back): Query<Back>,
) -> Result<Response, ConsoleError> {
    let oidc = configured(&console)?;
    let now = console.clock.now();
    let pending = pending_of(&console, &headers, now).ok_or(console.sign_in_again())?;
    let same_state = back.state.as_deref().is_some_and(|s| bool::from(s.as_bytes().ct_eq(pending.state.as_bytes())));
    if !same_state {
        tracing::info!("console: a way back from the identity provider with another state");
        return Err(console.sign_in_again());
    }
    let Some(code) = back.code else {
        tracing::info!(error = back.error.as_deref().unwrap_or("none"), "console: the identity provider sent no code");
        return Err(console.sign_in_again());
    };
    let token = oidc.exchange(&code, &pending).await?;
    let (caller, token_ends) = verifier.verify_until(&token).await.map_err(|e| {
        tracing::info!(error = %e, "console: the identity provider's token is not one the API accepts");
        console.sign_in_again()
    })?;
    if !caller.has(Role::Support) {
        tracing::info!(user = %caller.user_id, "console: signed in at the provider without a console role");
        return Err(AppError::Forbidden("this account has neither the support nor the admin role").into());
    }
    tracing::info!(user = %caller.user_id, role = ?caller.role, "console: signed in with the identity provider");
    // The provider's role is not read again: the session ends when its token does (at most
    // `SESSION_HOURS`), and the next sign-in asks the provider anew.
    let session = session_cookie_for(&console, caller.user_id.as_str(), caller.role, None, now, Some(token_ends))?;
    // The browser came here from the provider's site: a Strict cookie is not sent on the
    // redirects of that navigation, so a page of ours goes on to the console.
    let cookies = AppendHeaders([(header::SET_COOKIE, session), (header::SET_COOKIE, pending_cookie("", 0))]);
    Ok((cookies, pages::continue_to("/console/payments")).into_response())
}

fn pending_of(console: &Console, headers: &HeaderMap, now: DateTime<Utc>) -> Option<Pending> {
    let value = cookie_named(headers, PENDING)?;
    console.sessions.unseal::<Pending>(PENDING, value).filter(|p| p.exp > now.timestamp())
}

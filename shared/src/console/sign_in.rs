//! Signing in and out: the session a request carries (checked against the signed-out ones and,
//! for a session opened inside Telegram, against the channel's staff), the one-time link, the
//! Mini App's launch data, and signing out.

use axum::Form;
use axum::extract::{FromRef, FromRequestParts, Query, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{COOKIE, Console, ConsoleError, CsrfOnly, Session, pages};
use crate::app::AppError;
use crate::auth::Role;

impl Console {
    /// A session opened inside Telegram goes on while its account keeps a console role (read
    /// again, trusted a few minutes), with the lower of its roles: a demoted administrator is
    /// signed out within minutes, not at the session's end. When Telegram cannot say, the
    /// session keeps the role it was opened with.
    pub(super) async fn still_staff(&self, mut session: Session) -> Result<Session, ConsoleError> {
        let (Some(account), Some(check)) = (session.telegram, &self.telegram) else {
            return Ok(session);
        };
        match check.staff.role_of(account).await {
            Ok(Some(role)) => session.role = session.role.min(role),
            Ok(None) => {
                tracing::info!(telegram_user = account, "console: the account has lost its console role; signed out");
                return Err(self.sign_in_again());
            }
            Err(e) => {
                tracing::warn!(error = %e, "console: the channel's administrators could not be read; the session keeps its role");
            }
        }
        Ok(session)
    }
}

/// The signed-in session of a request (else the sign-in page).
impl<S: Send + Sync> FromRequestParts<S> for Session
where
    Console: FromRef<S>,
{
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let console = Console::from_ref(state);
        let now = console.clock.now();
        let session = cookie_named(&parts.headers, COOKIE)
            .and_then(|value| console.sessions.read(value, now))
            .ok_or(console.sign_in_again())?;
        if console.signed_out.hits(&session.signed_out_key(), now).await.map_err(AppError::from)? > 0 {
            return Err(console.sign_in_again());
        }
        console.still_staff(session).await
    }
}

/// The value of the request's cookie `name`.
pub(super) fn cookie_named<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

pub(super) fn session_cookie(value: &str, max_age: i64) -> HeaderValue {
    let cookie = format!("{COOKIE}={value}; Path=/console; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("telegate_console=; Max-Age=0"))
}

/// The Mini App's first page: its script posts Telegram's launch data, from the URL's fragment.
pub(super) async fn telegram_page() -> Response {
    pages::telegram_sign_in().into_response()
}

pub(super) async fn telegram_script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], pages::TELEGRAM_JS).into_response()
}

#[derive(Deserialize)]
pub(super) struct SignIn {
    code: Option<String>,
}

/// The one-time link `telegate serve` prints: a session, once.
pub(super) async fn sign_in(State(console): State<Console>, Query(q): Query<SignIn>) -> Result<Response, ConsoleError> {
    let now = console.clock.now();
    let (sub, role) =
        q.code.and_then(|code| console.sessions.redeem_code(&code, now)).ok_or(console.sign_in_again())?;
    tracing::info!(user = %sub, "console: signed in with the one-time link");
    signed_in(&console, &sub, role, None, now)
}

/// A new session for `sub`: its cookie, and on to the payments.
pub(super) fn signed_in(
    console: &Console,
    sub: &str,
    role: Role,
    telegram: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Response, ConsoleError> {
    let cookie = session_cookie_for(console, sub, role, telegram, now, None)?;
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, HeaderValue::from_static("/console/payments")), (header::SET_COOKIE, cookie)],
    )
        .into_response())
}

/// A new session for `sub` (ending by `ends_by` if sooner than its hours), as the header that
/// sets its cookie.
pub(super) fn session_cookie_for(
    console: &Console,
    sub: &str,
    role: Role,
    telegram: Option<i64>,
    now: DateTime<Utc>,
    ends_by: Option<DateTime<Utc>>,
) -> Result<HeaderValue, ConsoleError> {
    let (session, value) = console.sessions.open(sub, role, telegram, now, ends_by).map_err(AppError::from)?;
    Ok(session_cookie(&value, session.exp - now.timestamp()))
}

#[derive(Deserialize)]
pub(super) struct LaunchData {
    /// `tgWebAppData`, as Telegram put it in the Mini App's URL.
    launch_data: String,
}

/// Inside Telegram: the Mini App's launch data, checked against the bot's token, signs in the
/// account with its console role (the channel's administrators and `ADMIN_TELEGRAM_IDS` as admin,
/// `SUPPORT_TELEGRAM_IDS` as support); anyone else is refused.
pub(super) async fn telegram_sign_in(
    State(console): State<Console>,
    Form(form): Form<LaunchData>,
) -> Result<Response, ConsoleError> {
    let Some(check) = &console.telegram else {
        return Err(AppError::NotFound("this host has no bot: sign in with its one-time link").into());
    };
    let now = console.clock.now();
    let account = check.launch.verify(&form.launch_data, now).map_err(|why| {
        tracing::info!(%why, "console: Telegram sign-in refused");
        console.sign_in_again()
    })?;
    let Some(role) = check.staff.role_of(account).await? else {
        tracing::info!(telegram_user = account, "console: Telegram sign-in of an account with no console role");
        return Err(AppError::Forbidden("this Telegram account is neither an admin nor support of the channel").into());
    };
    let sub = format!("telegram-{account}");
    tracing::info!(user = %sub, ?role, "console: signed in inside Telegram");
    signed_in(&console, &sub, role, Some(account), now)
}

pub(super) async fn sign_out(
    State(console): State<Console>,
    session: Session,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
    console.signed_out.hit(&session.signed_out_key(), session.ends_at()).await.map_err(AppError::from)?;
    tracing::info!(user = %session.sub, "console: signed out");
    let mut response = (StatusCode::OK, pages::signed_out(console.oidc.is_some())).into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie("", 0));
    Ok(response)
}

//! The console for support and admins (`/console/…`): server-rendered pages over the same use
//! cases as the API, a signed session cookie (`session.rs`), a CSRF token in every form, and a
//! strict Content-Security-Policy: no script, nothing loaded from anywhere but telegate.
//!
//! First rooms: the local one-time sign-in and the payments queue.

mod pages;
pub mod session;
pub mod telegram;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Query, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::app::{Admin, AppError, Ending, JobRuns, PaymentDesk, Refunds};
use crate::domain::{PaymentId, PaymentStatus};
use crate::http::{PathParam, status_of};
use crate::ports::{Clock, PageRequest};
pub use session::{COOKIE, Session, Sessions};

/// What the console's pages need besides the services: the sessions and the clock they end by,
/// and the check of Telegram's launch data where there is a bot (its token signs the data).
#[derive(Clone)]
pub struct Console {
    pub sessions: Arc<Sessions>,
    pub clock: Arc<dyn Clock>,
    pub telegram: Option<Arc<telegram::TelegramSignIn>>,
}

/// The console's routes, in any router whose state gives the console and the payment desk.
pub fn console_routes<S: Clone + Send + Sync + 'static>() -> Router<S>
where
    Console: FromRef<S>,
    Arc<PaymentDesk>: FromRef<S>,
    Arc<Admin>: FromRef<S>,
    Arc<JobRuns>: FromRef<S>,
    Arc<Ending>: FromRef<S>,
    Arc<Refunds>: FromRef<S>,
{
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/sign-in", get(sign_in))
        .route("/console/telegram", get(telegram_page).post(telegram_sign_in))
        .route("/console/telegram.js", get(telegram_script))
        .route("/console/sign-out", post(sign_out))
        .route("/console/console.css", get(stylesheet))
        .route("/console/payments", get(payments))
        .route("/console/payments/{id}/validate", post(validate))
        .route("/console/payments/{id}/reject", post(reject))
        .route("/console/members", get(members))
        .route("/console/members/revoke", post(revoke))
        .route("/console/members/reinstate", post(reinstate))
        .route("/console/payments/{id}/refund", post(refund))
        .route("/console/overview", get(overview))
        .route("/console/export/payments.csv", get(export_payments))
        .route("/console/export/members.csv", get(export_members))
        .route("/console/audit", get(audit))
        .route("/console/jobs", get(jobs))
        .route("/console/jobs/{job}/run", post(run_job))
        .route("/console/jobs/runs/{id}", get(job_run))
        .layer(axum::middleware::map_response(harden))
}

/// Every console answer: nothing but telegate's own stylesheet and its one script (the Mini App's
/// sign-in) may load, nothing inline runs, only Telegram's web client may frame it (a Mini App
/// there is a frame), nothing is cached or told where it came from.
async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors https://web.telegram.org; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A page, or the page that says what went wrong, with the API's status for the same error.
pub enum ConsoleError {
    /// No session, or one that ended: the sign-in page.
    SignIn,
    /// A form without this session's token.
    Csrf,
    App(AppError),
}

impl From<AppError> for ConsoleError {
    fn from(e: AppError) -> Self {
        Self::App(e)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => (StatusCode::UNAUTHORIZED, pages::signed_out()).into_response(),
            Self::Csrf => {
                (StatusCode::FORBIDDEN, pages::problem("This form has expired", "Reload the page and try again."))
                    .into_response()
            }
            Self::App(e) => {
                let (status, _) = status_of(&e);
                let detail = if status.is_server_error() {
                    tracing::error!(error = %e, "console: the action failed");
                    "Something went wrong on our side; try again shortly.".to_owned()
                } else {
                    e.to_string()
                };
                (status, pages::problem("That did not work", &detail)).into_response()
            }
        }
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
        cookie(&parts.headers)
            .and_then(|value| console.sessions.read(value, console.clock.now()))
            .ok_or(ConsoleError::SignIn)
    }
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

fn session_cookie(value: &str, max_age: i64) -> HeaderValue {
    let cookie = format!("{COOKIE}={value}; Path=/console; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("telegate_console=; Max-Age=0"))
}

fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, HeaderValue::from_static(to))]).into_response()
}

async fn home(_: Session) -> Response {
    see_other("/console/payments")
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], pages::CSS).into_response()
}

/// The Mini App's first page: its script posts Telegram's launch data, from the URL's fragment.
async fn telegram_page() -> Response {
    pages::telegram_sign_in().into_response()
}

async fn telegram_script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], pages::TELEGRAM_JS).into_response()
}

#[derive(Deserialize)]
struct SignIn {
    code: Option<String>,
}

/// The one-time link `telegate serve` prints: a session, once.
async fn sign_in(State(console): State<Console>, Query(q): Query<SignIn>) -> Result<Response, ConsoleError> {
    let now = console.clock.now();
    let (sub, role) = q.code.and_then(|code| console.sessions.redeem_code(&code, now)).ok_or(ConsoleError::SignIn)?;
    let (_, value) = console.sessions.open(&sub, role, now).map_err(AppError::from)?;
    tracing::info!(user = %sub, "console: signed in with the one-time link");
    let max_age = session::SESSION_HOURS * 3600;
    let mut response = see_other("/console/payments");
    response.headers_mut().insert(header::SET_COOKIE, session_cookie(&value, max_age));
    Ok(response)
}

#[derive(Deserialize)]
struct LaunchData {
    /// `tgWebAppData`, as Telegram put it in the Mini App's URL.
    launch_data: String,
}

/// Inside Telegram: the Mini App's launch data, checked against the bot's token, signs in the
/// account with its console role (the channel's administrators and `ADMIN_TELEGRAM_IDS` as admin,
/// `SUPPORT_TELEGRAM_IDS` as support); anyone else is refused.
async fn telegram_sign_in(
    State(console): State<Console>,
    Form(form): Form<LaunchData>,
) -> Result<Response, ConsoleError> {
    let Some(check) = &console.telegram else {
        return Err(AppError::NotFound("this host has no bot: sign in with its one-time link").into());
    };
    let now = console.clock.now();
    let account = check.launch.verify(&form.launch_data, now).map_err(|why| {
        tracing::info!(%why, "console: Telegram sign-in refused");
        ConsoleError::SignIn
    })?;
    let Some(role) = check.role_of(account, now).await? else {
        tracing::info!(telegram_user = account, "console: Telegram sign-in of an account with no console role");
        return Err(AppError::Forbidden("this Telegram account is neither an admin nor support of the channel").into());
    };
    let sub = format!("telegram-{account}");
    let (_, value) = console.sessions.open(&sub, role, now).map_err(AppError::from)?;
    tracing::info!(user = %sub, ?role, "console: signed in inside Telegram");
    let mut response = see_other("/console/payments");
    response.headers_mut().insert(header::SET_COOKIE, session_cookie(&value, session::SESSION_HOURS * 3600));
    Ok(response)
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn sign_out(session: Session, Form(form): Form<CsrfOnly>) -> Result<Response, ConsoleError> {
    if !session.csrf_matches(&form.csrf) {
        return Err(ConsoleError::Csrf);
    }
    let mut response = (StatusCode::OK, pages::signed_out()).into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie("", 0));
    Ok(response)
}

/// The payments queue: the submitted ones first (support's work), the others by status.
async fn payments(
    State(desk): State<Arc<PaymentDesk>>,
    session: Session,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let caller = session.caller().map_err(AppError::from)?;
    let status = match q.get("status").map(String::as_str) {
        None | Some("") => Some(PaymentStatus::TransactionSubmitted),
        Some("all") => None,
        Some(raw) => Some(PaymentStatus::parse(raw).map_err(AppError::from)?),
    };
    let page = PageRequest { limit: 50, after: q.get("cursor").filter(|c| !c.is_empty()).cloned() };
    let listed = desk.list_payments(&caller, status, &page).await?;
    Ok(pages::payments(&session, status, &listed).into_response())
}

#[derive(Deserialize)]
struct Validate {
    csrf: String,
    #[serde(default)]
    admin_notes: String,
}

async fn validate(
    State(desk): State<Arc<PaymentDesk>>,
    session: Session,
    PathParam(id): PathParam,
    Form(form): Form<Validate>,
) -> Result<Response, ConsoleError> {
    if !session.csrf_matches(&form.csrf) {
        return Err(ConsoleError::Csrf);
    }
    let caller = session.caller().map_err(AppError::from)?;
    let id = PaymentId::parse(&id).map_err(|_| AppError::NotFound("no such payment"))?;
    let notes = Some(form.admin_notes).filter(|n| !n.trim().is_empty());
    let issued = desk.validate_payment(&caller, &id, notes, None).await?;
    Ok(pages::validated(&session, &issued).into_response())
}

#[derive(Deserialize)]
struct Reject {
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn reject(
    State(desk): State<Arc<PaymentDesk>>,
    session: Session,
    PathParam(id): PathParam,
    Form(form): Form<Reject>,
) -> Result<Response, ConsoleError> {
    if !session.csrf_matches(&form.csrf) {
        return Err(ConsoleError::Csrf);
    }
    let caller = session.caller().map_err(AppError::from)?;
    let id = PaymentId::parse(&id).map_err(|_| AppError::NotFound("no such payment"))?;
    desk.reject_payment(&caller, &id, form.reason).await?;
    Ok(see_other("/console/payments"))
}

/// The audit log, newest first, optionally about one user (admins).
async fn audit(
    State(admin): State<Arc<Admin>>,
    session: Session,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let caller = session.caller().map_err(AppError::from)?;
    let user = q.get("user").map(|u| u.trim()).filter(|u| !u.is_empty());
    let page = PageRequest { limit: 50, after: q.get("cursor").filter(|c| !c.is_empty()).cloned() };
    let entries = admin.audit_log(&caller, user, &page).await?;
    Ok(pages::audit(&session, user, &entries).into_response())
}

/// Each job, when it last ran, and a button to run it now (admins).
async fn jobs(State(runs): State<Arc<JobRuns>>, session: Session) -> Result<Response, ConsoleError> {
    let caller = session.caller().map_err(AppError::from)?;
    let last = runs.last_runs(&caller).await?;
    Ok(pages::jobs(&session, &last).into_response())
}

async fn run_job(
    State(runs): State<Arc<JobRuns>>,
    session: Session,
    PathParam(job): PathParam,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, ConsoleError> {
    if !session.csrf_matches(&form.csrf) {
        return Err(ConsoleError::Csrf);
    }
    let caller = session.caller().map_err(AppError::from)?;
    let run = runs.request_job_run(&caller, &job).await?;
    let location = HeaderValue::from_str(&format!("/console/jobs/runs/{}", run.run_id))
        .map_err(|_| AppError::Internal("a run id that is not a header value".into()))?;
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}

/// How far a run asked for has got; the page reloads itself until it is over.
async fn job_run(
    State(runs): State<Arc<JobRuns>>,
    session: Session,
    PathParam(id): PathParam,
) -> Result<Response, ConsoleError> {
    let caller = session.caller().map_err(AppError::from)?;
    let run = runs.requested_run(&caller, &id).await?;
    Ok(pages::job_run(&session, &run).into_response())
}

/// A member's file: search by Telegram id or web user id (support and admins).
async fn members(
    State(admin): State<Arc<Admin>>,
    session: Session,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let caller = session.caller().map_err(AppError::from)?;
    let query = q.get("q").map(|v| v.trim()).filter(|v| !v.is_empty());
    let file = match query {
        Some(query) => Some(admin.member(&caller, query).await?),
        None => None,
    };
    Ok(pages::members(&session, query, file.as_ref()).into_response())
}

/// Back to the member's file after an action.
fn back_to(user: &str) -> Result<Response, ConsoleError> {
    let query = serde_urlencoded::to_string([("q", user)]).unwrap_or_default();
    let location = HeaderValue::from_str(&format!("/console/members?{query}"))
        .map_err(|_| AppError::Invalid("user_id is not a printable id".into()))?;
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}

/// An action that cannot be undone asks to be confirmed (a box to tick in its form).
fn confirmed(session: &Session, csrf: &str, confirm: Option<&str>) -> Result<(), ConsoleError> {
    if !session.csrf_matches(csrf) {
        return Err(ConsoleError::Csrf);
    }
    match confirm {
        Some("yes") => Ok(()),
        _ => Err(AppError::Invalid("tick the box to confirm: this cannot be undone".into()).into()),
    }
}

#[derive(Deserialize)]
struct Revoke {
    csrf: String,
    user: String,
    #[serde(default)]
    reason: String,
    confirm: Option<String>,
}

async fn revoke(
    State(ending): State<Arc<Ending>>,
    session: Session,
    Form(form): Form<Revoke>,
) -> Result<Response, ConsoleError> {
    confirmed(&session, &form.csrf, form.confirm.as_deref())?;
    let caller = session.caller().map_err(AppError::from)?;
    ending.revoke_access(&caller, &form.user, &form.reason).await?;
    back_to(&form.user)
}

#[derive(Deserialize)]
struct Reinstate {
    csrf: String,
    user: String,
    telegram_user_id: Option<i64>,
    payment_id: Option<String>,
    #[serde(default)]
    reason: String,
    confirm: Option<String>,
}

async fn reinstate(
    State(admin): State<Arc<Admin>>,
    session: Session,
    Form(form): Form<Reinstate>,
) -> Result<Response, ConsoleError> {
    confirmed(&session, &form.csrf, form.confirm.as_deref())?;
    let caller = session.caller().map_err(AppError::from)?;
    let payment = form.payment_id.as_deref().filter(|p| !p.is_empty());
    admin.reinstate(&caller, form.telegram_user_id, payment, &form.reason).await?;
    back_to(&form.user)
}

#[derive(Deserialize)]
struct Refund {
    csrf: String,
    user: String,
    #[serde(default)]
    reason: String,
    confirm: Option<String>,
}

async fn refund(
    State(refunds): State<Arc<Refunds>>,
    session: Session,
    PathParam(id): PathParam,
    Form(form): Form<Refund>,
) -> Result<Response, ConsoleError> {
    confirmed(&session, &form.csrf, form.confirm.as_deref())?;
    let caller = session.caller().map_err(AppError::from)?;
    refunds.refund_stars(&caller, &id, &form.reason).await?;
    back_to(&form.user)
}

/// The numbers and charts of the statistics (admins): the same `stats` as the API's.
async fn overview(State(admin): State<Arc<Admin>>, session: Session) -> Result<Response, ConsoleError> {
    let caller = session.caller().map_err(AppError::from)?;
    let stats = admin.stats(&caller).await?;
    Ok(pages::overview(&session, &stats).into_response())
}

/// One CSV field: quoted when it must be, and never read as a formula by a spreadsheet.
fn csv_field(value: &str) -> String {
    let value = match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_owned(),
    };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

fn csv_line(fields: &[String]) -> String {
    let mut line = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// A CSV download streamed page by page over the store: the first page is read before the answer
/// starts (a refusal is a page, not a broken file); the rest as the client reads.
async fn csv_download<T, F, Fut>(
    name: &'static str,
    header: &[&str],
    row: fn(&T) -> Vec<String>,
    first: crate::ports::Page<T>,
    next_page: F,
) -> Response
where
    T: Send + 'static,
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<crate::ports::Page<T>, AppError>> + Send,
{
    let head = csv_line(&header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>());
    let first_chunk: String = head + &first.items.iter().map(|t| csv_line(&row(t))).collect::<String>();
    let rest = futures_util::stream::unfold((first.next, next_page), move |(cursor, next_page)| async move {
        let cursor = cursor?;
        match next_page(cursor).await {
            Ok(page) => {
                let chunk: String = page.items.iter().map(|t| csv_line(&row(t))).collect();
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk)), (page.next, next_page)))
            }
            Err(e) => {
                // The answer has started: the file ends short, and the log says why.
                tracing::error!(error = %e, "console: an export stopped part-way");
                Some((Err(std::io::Error::other(e.to_string())), (None, next_page)))
            }
        }
    });
    let stream = futures_util::stream::once(async move { Ok(axum::body::Bytes::from(first_chunk)) }).chain(rest);
    let disposition = format!("attachment; filename=\"{name}\"");
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

const EXPORT_PAGE: u32 = 100;

/// Every payment, newest first (support and admins).
async fn export_payments(State(desk): State<Arc<PaymentDesk>>, session: Session) -> Result<Response, ConsoleError> {
    let caller = session.caller().map_err(AppError::from)?;
    let first = desk.list_payments(&caller, None, &PageRequest { limit: EXPORT_PAGE, after: None }).await?;
    let next = move |cursor: String| {
        let (desk, caller) = (desk.clone(), caller.clone());
        async move { desk.list_payments(&caller, None, &PageRequest { limit: EXPORT_PAGE, after: Some(cursor) }).await }
    };
    let header = ["id", "user_id", "email", "offer_id", "transaction_id", "status", "created_at", "updated_at"];
    let row = |p: &crate::domain::Payment| {
        vec![
            p.id.to_string(),
            p.user_id.to_string(),
            p.email.clone().unwrap_or_default(),
            p.offer_id.clone(),
            p.transaction_id.clone(),
            p.status.as_str().to_owned(),
            p.created_at.to_rfc3339(),
            p.updated_at.to_rfc3339(),
        ]
    };
    Ok(csv_download("payments.csv", &header, row, first, next).await)
}

/// The active members, by the end of their period (admins).
async fn export_members(State(admin): State<Arc<Admin>>, session: Session) -> Result<Response, ConsoleError> {
    let caller = session.caller().map_err(AppError::from)?;
    let first = admin.active_members(&caller, &PageRequest { limit: EXPORT_PAGE, after: None }).await?;
    let next = move |cursor: String| {
        let (admin, caller) = (admin.clone(), caller.clone());
        async move { admin.active_members(&caller, &PageRequest { limit: EXPORT_PAGE, after: Some(cursor) }).await }
    };
    let header = [
        "membership_id",
        "user_id",
        "telegram_user_id",
        "telegram_username",
        "offer",
        "joined_at",
        "expires_at",
        "in_channel",
    ];
    let row = |m: &crate::domain::Membership| {
        vec![
            m.id.to_string(),
            m.user_id.to_string(),
            m.telegram_user_id.to_string(),
            m.telegram_username.clone().unwrap_or_default(),
            m.offer_name.clone(),
            m.joined_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            m.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            m.in_channel.to_string(),
        ]
    };
    Ok(csv_download("members.csv", &header, row, first, next).await)
}

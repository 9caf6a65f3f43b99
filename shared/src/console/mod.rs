//! The console for support and admins (`/console/…`): server-rendered pages over the same use
//! cases as the API, a signed session cookie (`session.rs`, signing in and out in `sign_in.rs`,
//! inside Telegram `telegram.rs`, with the identity provider `oidc.rs`), a CSRF token in every
//! form, and a strict Content-Security-Policy: one script of telegate's own (the Mini App's
//! sign-in), nothing loaded from anywhere else. Here: the routes, the payments queue, the audit
//! log and the jobs; the members' rooms in `members.rs`, the overview in `overview.rs`.

mod charts;
mod export;
mod members;
pub mod oidc;
mod overview;
mod pages;
pub mod session;
mod sign_in;
pub mod telegram;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRef, Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::app::{Admin, AppError, Ending, Health, JobRuns, PaymentDesk, Refunds};
use crate::domain::{AuditAction, PaymentId, PaymentStatus};
use crate::http::{PathParam, status_of};
use crate::ports::{Clock, PageRequest, RateLimits};
pub use session::{COOKIE, Session, Sessions};
use sign_in::{cookie_named, session_cookie_for, sign_in, sign_out, telegram_page, telegram_script, telegram_sign_in};

/// Payments on a page of the queue: a page stays small on a phone (about 25 KB).
const PAYMENTS_PAGE: u32 = 25;

/// What the console's pages need besides the services: the sessions, the clock they end by and
/// the ones signed out, the sign-in inside Telegram where there is a bot (its token signs the
/// launch data) and the identity provider's where it is set up.
#[derive(Clone)]
pub struct Console {
    pub sessions: Arc<Sessions>,
    pub clock: Arc<dyn Clock>,
    pub telegram: Option<Arc<telegram::TelegramSignIn>>,
    /// Signing in in a browser, where the identity provider is set up (`CONSOLE_OIDC_*`).
    pub oidc: Option<Arc<oidc::Oidc>>,
    /// The sessions signed out before their end, marked until it.
    pub signed_out: Arc<dyn RateLimits>,
}

impl Console {
    /// The console of a process with `ports`: its sessions signed with `CONSOLE_SESSION_KEY`
    /// (else a key of the process), the sign-in inside Telegram where there is a bot, and the
    /// identity provider's where it is set up.
    pub fn build(ports: &crate::app::Ports) -> Result<Self, AppError> {
        let settings = &ports.settings;
        let sessions = Sessions::from_settings(settings.console_session_key.as_ref())?;
        let telegram = match (&settings.bot_token, ports.staff_roles()) {
            (Some(token), Ok(staff)) => Some(Arc::new(telegram::TelegramSignIn {
                launch: telegram::LaunchData::new(token),
                staff: Arc::new(staff),
            })),
            _ => None,
        };
        let oidc = match &settings.console_oidc {
            Some(oidc) => Some(Arc::new(oidc::Oidc::new(oidc.clone(), settings.console_url.clone())?)),
            None => None,
        };
        Ok(Self {
            sessions: Arc::new(sessions),
            clock: ports.clock.clone(),
            telegram,
            oidc,
            signed_out: ports.store.clone(),
        })
    }

    /// The answer to a request without a session: the ways to sign in here.
    fn sign_in_again(&self) -> ConsoleError {
        ConsoleError::SignIn { oidc: self.oidc.is_some() }
    }
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
    Arc<crate::auth::JwtVerifier>: FromRef<S>,
    Arc<Health>: FromRef<S>,
{
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/sign-in", get(sign_in))
        .route("/console/telegram", get(telegram_page).post(telegram_sign_in))
        .route("/console/telegram.js", get(telegram_script))
        .route("/console/oidc", get(oidc::start))
        .route("/console/oidc/callback", get(oidc::callback))
        .route("/console/sign-out", post(sign_out))
        .route("/console/console.css", get(stylesheet))
        .route("/console/payments", get(payments))
        .route("/console/payments/{id}/validate", post(validate))
        .route("/console/payments/{id}/reject", post(reject))
        .route("/console/members", get(members::members))
        .route("/console/members/revoke", post(members::revoke))
        .route("/console/members/reinstate", post(members::reinstate))
        .route("/console/payments/{id}/refund", post(members::refund))
        .route("/console/overview", get(overview))
        .route("/console/export/payments.csv", get(export::payments))
        .route("/console/export/members.csv", get(export::members))
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
    /// No session, or one that ended: the sign-in page (`oidc`: with the identity provider's way in).
    SignIn {
        oidc: bool,
    },
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
            Self::SignIn { oidc } => (StatusCode::UNAUTHORIZED, pages::signed_out(oidc)).into_response(),
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
                let mut response = (status, pages::problem("That did not work", &detail)).into_response();
                // As the API says it: a dependency down is worth trying again in a few seconds.
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    let retry = HeaderValue::from_static(crate::http::RETRY_AFTER_SECONDS);
                    response.headers_mut().insert(header::RETRY_AFTER, retry);
                }
                response
            }
        }
    }
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

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

/// The payments queue: the submitted ones first (support's work), the others by status.
async fn payments(
    State(desk): State<Arc<PaymentDesk>>,
    session: Session,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let caller = session.caller().map_err(AppError::from)?;
    if let Some(tx) = q.get("tx").map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let found = desk.payment_with_transaction(&caller, tx).await?;
        let listed = crate::ports::Page { items: vec![found], next: None };
        return Ok(pages::payments(&session, None, Some(tx), &listed).into_response());
    }
    let status = match q.get("status").map(String::as_str) {
        None | Some("") => Some(PaymentStatus::TransactionSubmitted),
        Some("all") => None,
        Some(raw) => Some(PaymentStatus::parse(raw).map_err(AppError::from)?),
    };
    let page = PageRequest { limit: PAYMENTS_PAGE, after: q.get("cursor").filter(|c| !c.is_empty()).cloned() };
    let listed = desk.list_payments(&caller, status, &page).await?;
    Ok(pages::payments(&session, status, None, &listed).into_response())
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
    session.check_csrf(&form.csrf)?;
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
    session.check_csrf(&form.csrf)?;
    let caller = session.caller().map_err(AppError::from)?;
    let id = PaymentId::parse(&id).map_err(|_| AppError::NotFound("no such payment"))?;
    desk.reject_payment(&caller, &id, form.reason).await?;
    Ok(see_other("/console/payments"))
}

/// The audit log, newest first: about one user, or of one kind (leaked links, strangers…), with
/// the suspicious attempts of the last 24 hours, hour by hour (admins).
async fn audit(
    State(admin): State<Arc<Admin>>,
    session: Session,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let caller = session.caller().map_err(AppError::from)?;
    let filter = |name: &str| q.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let (user, action) = (filter("user"), filter("action"));
    let page = PageRequest { limit: 50, after: filter("cursor").map(str::to_owned) };
    let entries = admin.audit_log(&caller, user, action, &page).await?;
    let stats = admin.stats(&caller).await?;
    Ok(pages::audit(&session, pages::AuditFilter { user, action }, &entries, &stats.attempts.by_hour).into_response())
}

/// Each job: when it runs, when it last ran, a button to run it now; and the latest runs with
/// what they did (admins).
async fn jobs(
    State(health): State<Arc<Health>>,
    State(admin): State<Arc<Admin>>,
    session: Session,
) -> Result<Response, ConsoleError> {
    let caller = session.caller().map_err(AppError::from)?;
    let jobs = health.jobs(&caller).await?;
    let recent = PageRequest { limit: 20, after: None };
    let outcomes = admin.audit_log(&caller, None, Some(AuditAction::JobRun.as_str()), &recent).await?;
    Ok(pages::jobs(&session, &jobs, &outcomes.items).into_response())
}

async fn run_job(
    State(runs): State<Arc<JobRuns>>,
    session: Session,
    PathParam(job): PathParam,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
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

/// The numbers and charts of the statistics (admins): the same `stats` as the API's; and the
/// health of what the system leans on.
async fn overview(
    State(admin): State<Arc<Admin>>,
    State(health): State<Arc<Health>>,
    State(desk): State<Arc<PaymentDesk>>,
    session: Session,
) -> Result<Response, ConsoleError> {
    let caller = session.caller().map_err(AppError::from)?;
    let stats = admin.stats(&caller).await?;
    let health = health.health(&caller).await?;
    // The payments waiting for support, counted up to a page of the queue's index.
    let first = PageRequest { limit: 100, after: None };
    let waiting = desk.list_payments(&caller, Some(PaymentStatus::TransactionSubmitted), &first).await?;
    let to_review = overview::Count { counted: waiting.items.len(), more: waiting.next.is_some() };
    Ok(overview::overview(&session, &stats, &health, to_review).into_response())
}

//! HTTP routers, one per Lambda function; the local host mounts them all on one port.

mod error;
mod extract;
mod refunds;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

pub use error::{RETRY_AFTER_SECONDS, error_body, status_of};
pub use extract::{BODY_LIMIT, JsonBody, LimitedBody, PathParam};

use crate::app::{
    Admin, App, AppError, Bot, Ending, Inbox, Issuer, JobRuns, PaymentDesk, Refunds, Status, SubmitPayment,
};
use crate::auth::{Caller, JwtVerifier};
use crate::domain::{Lang, NotificationId, PaymentId, PaymentStatus};
use crate::ports::{Page, PageRequest};

/// Implements `FromRef` for each field of a router's state, so that a handler extracts the one
/// service it calls (`State<Arc<Status>>`) from whichever state its router is given.
macro_rules! substates {
    ($state:ty { $($($field:ident).+: $ty:ty),+ $(,)? }) => {
        $(impl FromRef<$state> for $ty {
            fn from_ref(state: &$state) -> Self {
                state.$($field).+.clone()
            }
        })+
    };
}

/// Every service, as `telegate serve` mounts every route, and the console.
#[derive(Clone)]
pub struct HttpState {
    pub app: App,
    pub verifier: Arc<JwtVerifier>,
    pub console: crate::console::Console,
}

substates!(HttpState {
    app.payments: Arc<PaymentDesk>,
    app.issuer: Arc<Issuer>,
    app.inbox: Arc<Inbox>,
    app.status: Arc<Status>,
    app.ending: Arc<Ending>,
    app.refunds: Arc<Refunds>,
    app.admin: Arc<Admin>,
    app.job_runs: Arc<JobRuns>,
    app.bot: Arc<Bot>,
    app.health: Arc<crate::app::Health>,
    verifier: Arc<JwtVerifier>,
    console: crate::console::Console,
});

/// Every route, as `telegate serve` mounts them.
pub fn router(state: HttpState) -> Router {
    finish(
        Router::new()
            .merge(payments_routes())
            .merge(generate_token_routes())
            .merge(notifications_routes())
            .merge(status_routes())
            .merge(revoke_routes())
            .merge(stats_routes())
            .merge(jobs_routes())
            .merge(webhook_routes())
            .merge(crate::console::console_routes()),
        state,
    )
}

/// A function's state: exactly the services its routes call, and the verifier.
macro_rules! function_state {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            $(pub $field: $ty,)+
            pub verifier: Arc<JwtVerifier>,
        }
        substates!($name { $($field: $ty,)+ verifier: Arc<JwtVerifier> });
    };
}

function_state!(
    /// The `payments` function's: web payments, submitted and reviewed.
    PaymentsState { payments: Arc<PaymentDesk> }
);
function_state!(
    /// The `generate-token` function's.
    GenerateTokenState { issuer: Arc<Issuer> }
);
function_state!(
    /// The `notifications` function's.
    NotificationsState { inbox: Arc<Inbox> }
);
function_state!(
    /// The `status` function's.
    StatusState { status: Arc<Status> }
);
function_state!(
    /// The `revoke` function's: revoking, support's way back, refunds.
    RevokeState { ending: Arc<Ending>, admin: Arc<Admin>, refunds: Arc<Refunds> }
);
function_state!(
    /// The `stats` function's: statistics and the audit log, job runs asked for.
    AdminState { admin: Arc<Admin>, job_runs: Arc<JobRuns> }
);
function_state!(
    /// The `console` function's: the console's pages over the services they call.
    ConsoleState {
        payments: Arc<PaymentDesk>,
        admin: Arc<Admin>,
        job_runs: Arc<JobRuns>,
        ending: Arc<Ending>,
        refunds: Arc<Refunds>,
        health: Arc<crate::app::Health>,
        console: crate::console::Console,
    }
);
/// The `telegram-webhook` function's: Telegram's updates only, checked by the webhook secret (no
/// JWT is ever read there).
#[derive(Clone)]
pub struct WebhookState {
    pub bot: Arc<Bot>,
}
substates!(WebhookState { bot: Arc<Bot> });

/// Adds the JSON 404/405 answers and the state: what every function's router ends with.
pub fn finish<S: Clone + Send + Sync + 'static>(routes: Router<S>, state: S) -> Router {
    routes
        .fallback(|| async { error_body(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            error_body(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        })
        .with_state(state)
}

/// Registers a path with and without its trailing slash (the guide's paths end with one).
fn route<S: Clone + Send + Sync + 'static>(router: Router<S>, path: &str, handler: MethodRouter<S>) -> Router<S> {
    let bare = path.trim_end_matches('/');
    router.route(bare, handler.clone()).route(&format!("{bare}/"), handler)
}

pub fn payments_routes<S: Clone + Send + Sync + 'static>() -> Router<S>
where
    Arc<PaymentDesk>: FromRef<S>,
    Arc<JwtVerifier>: FromRef<S>,
{
    let r = Router::new();
    let r = route(r, "/api/payments/pending-payments/create/", post(submit_payment));
    let r = route(r, "/api/payments/pending-payments/", get(my_payments));
    let r = route(r, "/api/payments/admin/pending-payments/", get(list_payments));
    let r = route(r, "/api/payments/admin/pending-payments/{id}/validate/", post(validate_payment));
    route(r, "/api/payments/admin/pending-payments/{id}/reject/", post(reject_payment))
}

pub fn generate_token_routes<S: Clone + Send + Sync + 'static>() -> Router<S>
where
    Arc<Issuer>: FromRef<S>,
    Arc<JwtVerifier>: FromRef<S>,
{
    route(Router::new(), "/api/telegram/generate-token/", post(generate_token))
}

pub fn notifications_routes<S: Clone + Send + Sync + 'static>() -> Router<S>
where
    Arc<Inbox>: FromRef<S>,
    Arc<JwtVerifier>: FromRef<S>,
{
    let r = route(Router::new(), "/api/telegram/notifications/", get(notifications));
    route(r, "/api/telegram/notifications/{id}/read/", post(mark_read))
}

pub fn status_routes<S: Clone + Send + Sync + 'static>() -> Router<S>
where
    Arc<Status>: FromRef<S>,
    Arc<JwtVerifier>: FromRef<S>,
{
    route(Router::new(), "/api/telegram/status/", get(status))
}

/// Revoking access, support's way back (reinstate), and refunds (of a payment in Stars, and the
/// record of a manual payment's).
pub fn revoke_routes<S: Clone + Send + Sync + 'static>() -> Router<S>
where
    Arc<Ending>: FromRef<S>,
    Arc<Admin>: FromRef<S>,
    Arc<Refunds>: FromRef<S>,
    Arc<JwtVerifier>: FromRef<S>,
{
    let routes = route(Router::new(), "/api/telegram/revoke-access/", post(revoke_access));
    let routes = route(routes, "/api/telegram/admin/reinstate/", post(reinstate));
    let routes = route(routes, "/api/telegram/admin/refund/", post(refunds::refund));
    route(routes, "/api/telegram/admin/stars/refund/", post(refunds::refund_stars))
}

/// Statistics and the audit log: the admin's read side.
pub fn stats_routes<S: Clone + Send + Sync + 'static>() -> Router<S>
where
    Arc<Admin>: FromRef<S>,
    Arc<JwtVerifier>: FromRef<S>,
{
    let r = route(Router::new(), "/api/telegram/admin/stats/", get(stats));
    route(r, "/api/telegram/admin/audit/", get(audit))
}

/// Running a job now: asked for here, run where the jobs run, read back by its id.
pub fn jobs_routes<S: Clone + Send + Sync + 'static>() -> Router<S>
where
    Arc<JobRuns>: FromRef<S>,
    Arc<JwtVerifier>: FromRef<S>,
{
    let r = route(Router::new(), "/api/telegram/admin/jobs/{job}/run/", post(run_job));
    route(r, "/api/telegram/admin/job-runs/{run_id}/", get(job_run))
}

/// The admin's side: statistics, the audit log, running a job now (the `stats` function).
pub fn admin_routes<S: Clone + Send + Sync + 'static>() -> Router<S>
where
    Arc<Admin>: FromRef<S>,
    Arc<JobRuns>: FromRef<S>,
    Arc<JwtVerifier>: FromRef<S>,
{
    stats_routes().merge(jobs_routes())
}

pub fn webhook_routes<S: Clone + Send + Sync + 'static>() -> Router<S>
where
    Arc<Bot>: FromRef<S>,
{
    route(Router::new(), "/api/telegram/webhook", post(webhook))
}

async fn submit_payment(
    State(payments): State<Arc<PaymentDesk>>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(input): JsonBody<SubmitPayment>,
) -> Result<Response, AppError> {
    let lang = Lang::from_code(headers.get("accept-language").and_then(|v| v.to_str().ok()));
    let p = payments.submit_payment(&caller, input, lang).await?;
    let body = json!({
        "id": p.id,
        "status": p.status,
        "message": "Paiement reçu : il sera vérifié par notre équipe. / Payment received: our team will review it.",
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn my_payments(State(payments): State<Arc<PaymentDesk>>, caller: Caller) -> Result<Response, AppError> {
    Ok(Json(payments.my_payments(&caller).await?).into_response())
}

async fn list_payments(
    State(payments): State<Arc<PaymentDesk>>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let status = q.get("status").filter(|v| !v.is_empty()).map(|v| PaymentStatus::parse(v)).transpose()?;
    let page = payments.list_payments(&caller, status, &page_request(&q)?).await?;
    Ok(paged(page))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateBody {
    admin_notes: Option<String>,
    transaction_id: Option<String>,
}

async fn validate_payment(
    State(payments): State<Arc<PaymentDesk>>,
    caller: Caller,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<ValidateBody>,
) -> Result<Response, AppError> {
    let id = PaymentId::parse(&id).map_err(|_| AppError::NotFound("no such payment"))?;
    let issued = payments.validate_payment(&caller, &id, body.admin_notes, body.transaction_id).await?;
    Ok(Json(issued_answer(&issued)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    reason: String,
}

async fn reject_payment(
    State(payments): State<Arc<PaymentDesk>>,
    caller: Caller,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<RejectBody>,
) -> Result<Response, AppError> {
    let id = PaymentId::parse(&id).map_err(|_| AppError::NotFound("no such payment"))?;
    payments.reject_payment(&caller, &id, body.reason).await?;
    Ok(Json(json!({ "success": true })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateTokenBody {
    payment_id: String,
    transaction_id: Option<String>,
}

async fn generate_token(
    State(issuer): State<Arc<Issuer>>,
    caller: Caller,
    JsonBody(body): JsonBody<GenerateTokenBody>,
) -> Result<Response, AppError> {
    let id = PaymentId::parse(&body.payment_id).map_err(|_| AppError::NotFound("no such payment"))?;
    let issued = issuer.generate_token(&caller, &id, body.transaction_id.as_deref()).await?;
    Ok(Json(issued_answer(&issued)).into_response())
}

/// A token as the validation and `generate-token` answer it, the one time it is shown.
fn issued_answer(issued: &crate::app::Issued) -> serde_json::Value {
    json!({
        "success": true, "payment_id": issued.payment_id, "bot_link": issued.bot_link,
        "token": issued.token.expose(), "expires_at": issued.expires_at, "notification_id": issued.notification_id,
    })
}

async fn notifications(
    State(inbox): State<Arc<Inbox>>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    Ok(paged(inbox.notifications(&caller, &page_request(&q)?).await?))
}

async fn mark_read(
    State(inbox): State<Arc<Inbox>>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Response, AppError> {
    let id = NotificationId::parse(&id).map_err(|_| AppError::NotFound("no such notification"))?;
    inbox.mark_notification_read(&caller, &id).await?;
    Ok(Json(json!({ "success": true })).into_response())
}

async fn status(State(status): State<Arc<Status>>, caller: Caller) -> Result<Response, AppError> {
    Ok(Json(status.status(&caller).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    user_id: String,
    reason: String,
}

async fn revoke_access(
    State(ending): State<Arc<Ending>>,
    caller: Caller,
    JsonBody(body): JsonBody<RevokeBody>,
) -> Result<Response, AppError> {
    let count = ending.revoke_access(&caller, &body.user_id, &body.reason).await?;
    Ok(Json(json!({ "success": true, "revoked_count": count })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReinstateBody {
    telegram_user_id: Option<i64>,
    payment_id: Option<String>,
    reason: String,
}

async fn reinstate(
    State(admin): State<Arc<Admin>>,
    caller: Caller,
    JsonBody(body): JsonBody<ReinstateBody>,
) -> Result<Response, AppError> {
    let done = admin.reinstate(&caller, body.telegram_user_id, body.payment_id.as_deref(), &body.reason).await?;
    let answer = json!({ "success": true, "bar_lifted": done.bar_lifted, "tokens_retired": done.tokens_retired });
    Ok(Json(answer).into_response())
}

async fn stats(State(admin): State<Arc<Admin>>, caller: Caller) -> Result<Response, AppError> {
    Ok(Json(admin.stats(&caller).await?).into_response())
}

async fn audit(
    State(admin): State<Arc<Admin>>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let filter = |name: &str| q.get(name).map(String::as_str).filter(|v| !v.is_empty());
    Ok(paged(admin.audit_log(&caller, filter("user_id"), filter("action"), &page_request(&q)?).await?))
}

/// `202 Accepted` with the queued run and where to read it back.
async fn run_job(
    State(job_runs): State<Arc<JobRuns>>,
    caller: Caller,
    PathParam(job): PathParam,
) -> Result<Response, AppError> {
    let run = job_runs.request_job_run(&caller, &job).await?;
    let location = format!("/api/telegram/admin/job-runs/{}/", run.run_id);
    Ok((StatusCode::ACCEPTED, [(axum::http::header::LOCATION, location)], Json(run)).into_response())
}

async fn job_run(
    State(job_runs): State<Arc<JobRuns>>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Response, AppError> {
    Ok(Json(job_runs.requested_run(&caller, &id).await?).into_response())
}

/// Telegram's push. Without the right secret nothing is read; a body that is not an update is 400.
async fn webhook(State(bot): State<Arc<Bot>>, request: axum::extract::Request) -> Result<Response, AppError> {
    // The secret first: a caller without it gets its 401 before a byte of the body is read.
    let given = request.headers().get("x-telegram-bot-api-secret-token").map(HeaderValue::as_bytes).unwrap_or_default();
    // A process given no webhook secret serves no webhook: nothing can match.
    let Some(secret) = bot.webhook_secret() else {
        return Err(AppError::Unauthorized("missing or wrong webhook secret"));
    };
    let expected = secret.expose().as_bytes();
    if !bool::from(given.ct_eq(expected)) {
        return Err(AppError::Unauthorized("missing or wrong webhook secret"));
    }
    let LimitedBody(body) = LimitedBody::from_request(request, &()).await?;
    let update = crate::adapters::telegram::parse_update(&body)
        .map_err(|e| AppError::Invalid(format!("not a Telegram update: {e}")))?;
    bot.handle_update(&update).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}

fn page_request(q: &HashMap<String, String>) -> Result<PageRequest, AppError> {
    let limit = match q.get("limit").filter(|v| !v.is_empty()) {
        None => 50,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or(AppError::Invalid("limit must be a whole number from 1 to 100".into()))?,
    };
    let after = q.get("cursor").filter(|v| !v.is_empty()).cloned();
    // Cursors are ids we issued: anything else is refused rather than quietly matching nothing.
    if after
        .as_ref()
        .is_some_and(|c| c.len() > 64 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(AppError::Invalid("cursor is not one we issued".into()));
    }
    Ok(PageRequest { limit, after })
}

/// A page as a JSON array, newest first; the next page's cursor travels in `X-Next-Cursor`.
fn paged<T: serde::Serialize>(page: Page<T>) -> Response {
    let mut response = Json(page.items).into_response();
    if let Some(next) = page.next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        response.headers_mut().insert("x-next-cursor", next);
    }
    response
}

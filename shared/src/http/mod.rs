//! HTTP routers, one per Lambda function; the local host mounts them all on one port.

mod error;
mod extract;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequest, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

pub use error::error_body;
pub use extract::{BODY_LIMIT, JsonBody, LimitedBody, PathParam};

use crate::app::{App, AppError, SubmitPayment};
use crate::auth::{Caller, JwtVerifier};
use crate::domain::{Lang, NotificationId, PaymentId, PaymentStatus, Update};
use crate::ports::{Page, PageRequest};

#[derive(Clone)]
pub struct HttpState {
    pub app: App,
    pub verifier: Arc<JwtVerifier>,
}

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
            .merge(webhook_routes()),
        state,
    )
}

/// Adds the JSON 404/405 answers and the state: what every function's router ends with.
pub fn finish(routes: Router<HttpState>, state: HttpState) -> Router {
    routes
        .fallback(|| async { error_body(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            error_body(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        })
        .with_state(state)
}

/// Registers a path with and without its trailing slash (the guide's paths end with one).
fn route(router: Router<HttpState>, path: &str, handler: MethodRouter<HttpState>) -> Router<HttpState> {
    let bare = path.trim_end_matches('/');
    router.route(bare, handler.clone()).route(&format!("{bare}/"), handler)
}

pub fn payments_routes() -> Router<HttpState> {
    let r = Router::new();
    let r = route(r, "/api/payments/pending-payments/create/", post(submit_payment));
    let r = route(r, "/api/payments/pending-payments/", get(my_payments));
    let r = route(r, "/api/payments/admin/pending-payments/", get(list_payments));
    let r = route(r, "/api/payments/admin/pending-payments/{id}/validate/", post(validate_payment));
    route(r, "/api/payments/admin/pending-payments/{id}/reject/", post(reject_payment))
}

pub fn generate_token_routes() -> Router<HttpState> {
    route(Router::new(), "/api/telegram/generate-token/", post(generate_token))
}

pub fn notifications_routes() -> Router<HttpState> {
    let r = route(Router::new(), "/api/telegram/notifications/", get(notifications));
    route(r, "/api/telegram/notifications/{id}/read/", post(mark_read))
}

pub fn status_routes() -> Router<HttpState> {
    route(Router::new(), "/api/telegram/status/", get(status))
}

/// Revoking access, support's way back (reinstate), and refunding a payment in Stars.
pub fn revoke_routes() -> Router<HttpState> {
    let routes = route(Router::new(), "/api/telegram/revoke-access/", post(revoke_access));
    let routes = route(routes, "/api/telegram/admin/reinstate/", post(reinstate));
    route(routes, "/api/telegram/admin/stars/refund/", post(refund_stars))
}

/// Statistics and the audit log: the admin's read side.
pub fn stats_routes() -> Router<HttpState> {
    let r = route(Router::new(), "/api/telegram/admin/stats/", get(stats));
    route(r, "/api/telegram/admin/audit/", get(audit))
}

/// Running a job now: asked for here, run where the jobs run, read back by its id.
pub fn jobs_routes() -> Router<HttpState> {
    let r = route(Router::new(), "/api/telegram/admin/jobs/{job}/run/", post(run_job));
    route(r, "/api/telegram/admin/job-runs/{run_id}/", get(job_run))
}

/// The admin's side: statistics, the audit log, running a job now (the `stats` function).
pub fn admin_routes() -> Router<HttpState> {
    stats_routes().merge(jobs_routes())
}

pub fn webhook_routes() -> Router<HttpState> {
    route(Router::new(), "/api/telegram/webhook", post(webhook))
}

async fn submit_payment(
    State(s): State<HttpState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(input): JsonBody<SubmitPayment>,
) -> Result<Response, AppError> {
    let lang = Lang::from_code(headers.get("accept-language").and_then(|v| v.to_str().ok()));
    let p = s.app.submit_payment(&caller, input, lang).await?;
    let body = json!({
        "id": p.id,
        "status": p.status,
        "message": "Paiement reçu : il sera vérifié par notre équipe. / Payment received: our team will review it.",
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn my_payments(State(s): State<HttpState>, caller: Caller) -> Result<Response, AppError> {
    Ok(Json(s.app.my_payments(&caller).await?).into_response())
}

async fn list_payments(
    State(s): State<HttpState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let status = q.get("status").filter(|v| !v.is_empty()).map(|v| PaymentStatus::parse(v)).transpose()?;
    let page = s.app.list_payments(&caller, status, &page_request(&q)?).await?;
    Ok(paged(page))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateBody {
    admin_notes: Option<String>,
    transaction_id: Option<String>,
}

async fn validate_payment(
    State(s): State<HttpState>,
    caller: Caller,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<ValidateBody>,
) -> Result<Response, AppError> {
    let id = PaymentId::parse(&id).map_err(|_| AppError::NotFound("no such payment"))?;
    let issued = s.app.validate_payment(&caller, &id, body.admin_notes, body.transaction_id).await?;
    Ok(Json(issued_answer(&issued)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    reason: String,
}

async fn reject_payment(
    State(s): State<HttpState>,
    caller: Caller,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<RejectBody>,
) -> Result<Response, AppError> {
    let id = PaymentId::parse(&id).map_err(|_| AppError::NotFound("no such payment"))?;
    s.app.reject_payment(&caller, &id, body.reason).await?;
    Ok(Json(json!({ "success": true })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateTokenBody {
    payment_id: String,
    transaction_id: Option<String>,
}

async fn generate_token(
    State(s): State<HttpState>,
    caller: Caller,
    JsonBody(body): JsonBody<GenerateTokenBody>,
) -> Result<Response, AppError> {
    let id = PaymentId::parse(&body.payment_id).map_err(|_| AppError::NotFound("no such payment"))?;
    let issued = s.app.generate_token(&caller, &id, body.transaction_id.as_deref()).await?;
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
    State(s): State<HttpState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    Ok(paged(s.app.notifications(&caller, &page_request(&q)?).await?))
}

async fn mark_read(State(s): State<HttpState>, caller: Caller, PathParam(id): PathParam) -> Result<Response, AppError> {
    let id = NotificationId::parse(&id).map_err(|_| AppError::NotFound("no such notification"))?;
    s.app.mark_notification_read(&caller, &id).await?;
    Ok(Json(json!({ "success": true })).into_response())
}

async fn status(State(s): State<HttpState>, caller: Caller) -> Result<Response, AppError> {
    Ok(Json(s.app.status(&caller).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    user_id: String,
    reason: String,
}

async fn revoke_access(
    State(s): State<HttpState>,
    caller: Caller,
    JsonBody(body): JsonBody<RevokeBody>,
) -> Result<Response, AppError> {
    let count = s.app.revoke_access(&caller, &body.user_id, &body.reason).await?;
    Ok(Json(json!({ "success": true, "revoked_count": count })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    payment_id: String,
    reason: String,
}

async fn refund_stars(
    State(s): State<HttpState>,
    caller: Caller,
    JsonBody(body): JsonBody<RefundBody>,
) -> Result<Response, AppError> {
    let refund = s.app.refund_stars(&caller, &body.payment_id, &body.reason).await?;
    let state = match refund.status {
        PaymentStatus::Refunded => "refunded",
        PaymentStatus::RefundFailed => "failed",
        _ => "requested",
    };
    let refunded = refund.status == PaymentStatus::Refunded;
    let answer = json!({ "success": true, "payment_id": body.payment_id, "refund": state, "refunded": refunded,
                         "revoked_count": refund.revoked_count, "access_until": refund.access_until });
    Ok(Json(answer).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReinstateBody {
    telegram_user_id: Option<i64>,
    payment_id: Option<String>,
    reason: String,
}

async fn reinstate(
    State(s): State<HttpState>,
    caller: Caller,
    JsonBody(body): JsonBody<ReinstateBody>,
) -> Result<Response, AppError> {
    let done = s.app.reinstate(&caller, body.telegram_user_id, body.payment_id.as_deref(), &body.reason).await?;
    let answer = json!({ "success": true, "bar_lifted": done.bar_lifted, "tokens_retired": done.tokens_retired });
    Ok(Json(answer).into_response())
}

async fn stats(State(s): State<HttpState>, caller: Caller) -> Result<Response, AppError> {
    Ok(Json(s.app.stats(&caller).await?).into_response())
}

async fn audit(
    State(s): State<HttpState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let user = q.get("user_id").filter(|u| !u.is_empty());
    Ok(paged(s.app.audit_log(&caller, user.map(String::as_str), &page_request(&q)?).await?))
}

/// `202 Accepted` with the queued run and where to read it back.
async fn run_job(State(s): State<HttpState>, caller: Caller, PathParam(job): PathParam) -> Result<Response, AppError> {
    let run = s.app.request_job_run(&caller, &job).await?;
    let location = format!("/api/telegram/admin/job-runs/{}/", run.run_id);
    Ok((StatusCode::ACCEPTED, [(axum::http::header::LOCATION, location)], Json(run)).into_response())
}

async fn job_run(State(s): State<HttpState>, caller: Caller, PathParam(id): PathParam) -> Result<Response, AppError> {
    Ok(Json(s.app.requested_run(&caller, &id).await?).into_response())
}

/// Telegram's push. Without the right secret nothing is read; a body that is not an update is 400.
async fn webhook(State(s): State<HttpState>, request: axum::extract::Request) -> Result<Response, AppError> {
    // The secret first: a caller without it gets its 401 before a byte of the body is read.
    let given = request.headers().get("x-telegram-bot-api-secret-token").map(HeaderValue::as_bytes).unwrap_or_default();
    // A process given no webhook secret serves no webhook: nothing can match.
    let Some(secret) = &s.app.settings.webhook_secret else {
        return Err(AppError::Unauthorized("missing or wrong webhook secret"));
    };
    let expected = secret.expose().as_bytes();
    if !bool::from(given.ct_eq(expected)) {
        return Err(AppError::Unauthorized("missing or wrong webhook secret"));
    }
    let LimitedBody(body) = LimitedBody::from_request(request, &s).await?;
    let update: Update =
        serde_json::from_slice(&body).map_err(|e| AppError::Invalid(format!("not a Telegram update: {e}")))?;
    s.app.handle_update(&update).await?;
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

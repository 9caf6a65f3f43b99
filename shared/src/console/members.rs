//! A member's file, and what admins do from it: revoke, reinstate, refund a payment (in Stars,
//! or a manual payment's refund recorded), each once its box is ticked.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ConsoleError, Session, pages};
use crate::app::{Admin, AppError, Ending, Refunds};
use crate::http::PathParam;

/// A member's file: search by Telegram id or web user id (support and admins).
pub(super) async fn members(
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
    session.check_csrf(csrf)?;
    match confirm {
        Some("yes") => Ok(()),
        _ => Err(AppError::Invalid("tick the box to confirm: this cannot be undone".into()).into()),
    }
}

#[derive(Deserialize)]
pub(super) struct Revoke {
    csrf: String,
    user: String,
    #[serde(default)]
    reason: String,
    confirm: Option<String>,
}

pub(super) async fn revoke(
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
pub(super) struct Reinstate {
    csrf: String,
    user: String,
    telegram_user_id: Option<i64>,
    payment_id: Option<String>,
    #[serde(default)]
    reason: String,
    confirm: Option<String>,
}

pub(super) async fn reinstate(
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
pub(super) struct Refund {
    csrf: String,
    user: String,
    #[serde(default)]
    reason: String,
    confirm: Option<String>,
}

pub(super) async fn refund(
    State(refunds): State<Arc<Refunds>>,
    session: Session,
    PathParam(id): PathParam,
    Form(form): Form<Refund>,
) -> Result<Response, ConsoleError> {
    confirmed(&session, &form.csrf, form.confirm.as_deref())?;
    let caller = session.caller().map_err(AppError::from)?;
    refunds.refund(&caller, &id, &form.reason).await?;
    back_to(&form.user)
}

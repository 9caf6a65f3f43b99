//! The refund routes: a payment's money going back (in Stars, or a manual payment's refund
//! recorded), answered with where the refund stands.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::JsonBody;
use crate::app::{AppError, Refund, Refunds};
use crate::auth::Caller;
use crate::domain::PaymentStatus;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RefundBody {
    payment_id: String,
    reason: String,
}

pub(super) async fn refund(
    State(refunds): State<Arc<Refunds>>,
    caller: Caller,
    JsonBody(body): JsonBody<RefundBody>,
) -> Result<Response, AppError> {
    let refund = refunds.refund(&caller, &body.payment_id, &body.reason).await?;
    Ok(refund_answer(&body.payment_id, &refund))
}

pub(super) async fn refund_stars(
    State(refunds): State<Arc<Refunds>>,
    caller: Caller,
    JsonBody(body): JsonBody<RefundBody>,
) -> Result<Response, AppError> {
    let refund = refunds.refund_stars(&caller, &body.payment_id, &body.reason).await?;
    Ok(refund_answer(&body.payment_id, &refund))
}

fn refund_answer(payment_id: &str, refund: &Refund) -> Response {
    let state = match refund.status {
        PaymentStatus::Refunded => "refunded",
        PaymentStatus::RefundFailed => "failed",
        _ => "requested",
    };
    let refunded = refund.status == PaymentStatus::Refunded;
    let answer = json!({ "success": true, "payment_id": payment_id, "refund": state, "refunded": refunded,
                         "revoked_count": refund.revoked_count, "access_until": refund.access_until });
    Json(answer).into_response()
}

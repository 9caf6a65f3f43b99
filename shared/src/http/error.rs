//! The one place where errors become HTTP answers: 4xx bodies explain, 5xx bodies are opaque.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppError;

/// When a client should try again after a 503: a store or queue blip is seconds long.
pub const RETRY_AFTER_SECONDS: &str = "5";

pub fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

/// The status and code an error answers with (the API's JSON, the console's pages).
pub fn status_of(e: &AppError) -> (StatusCode, &'static str) {
    match e {
        AppError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
        AppError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
        AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        AppError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
        AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        AppError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, code) = match &self {
            AppError::Unavailable(cause) => {
                tracing::error!(%cause, "dependency unavailable");
                let mut response = error_body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a service we depend on is unavailable; try again shortly",
                );
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
                return response;
            }
            AppError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                return error_body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "something went wrong on our side",
                );
            }
            other => status_of(other),
        };
        let mut response = error_body(status, code, &message);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use crate::app::AppError;
    use crate::ports::{Cause, QueueError, StoreError};

    /// What the log gets is the whole chain (`tracing::error!(%cause)`), what the caller gets a 503
    /// to try again.
    #[test]
    fn an_unavailable_store_or_queue_is_a_503_whose_cause_keeps_its_chain() {
        let refused = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let store = AppError::from(StoreError::Unavailable(Cause::with("DynamoDB", refused())));
        assert_eq!(store.to_string(), "service unavailable: DynamoDB: connection refused");
        let queue = AppError::from(QueueError(Cause::with("SQS send", refused())));
        assert_eq!(queue.to_string(), "service unavailable: SQS send: connection refused");
        for e in [store, queue] {
            let response = e.into_response();
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()["retry-after"], "5");
        }
        // A record that does not parse is not an outage: trying again cannot help.
        let corrupt = AppError::from(StoreError::Corrupt("membership m1: bad expires_at".into()));
        assert_eq!(corrupt.into_response().status(), 500);
    }
}

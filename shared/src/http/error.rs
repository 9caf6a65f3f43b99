//! The one place where errors become HTTP answers: 4xx bodies explain, 5xx bodies are opaque.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppError;

pub fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, code) = match &self {
            AppError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
            AppError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Conflict { code, .. } => (StatusCode::CONFLICT, *code),
            AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::Unavailable(cause) => {
                tracing::error!(cause, "dependency unavailable");
                return error_body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a service we depend on is unavailable; try again shortly",
                );
            }
            AppError::Internal(cause) => {
                tracing::error!(cause, "internal error");
                return error_body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "something went wrong on our side",
                );
            }
        };
        let mut response = error_body(status, code, &message);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

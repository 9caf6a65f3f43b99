//! Extractors that answer in the JSON error shape: the caller from the bearer token, and bounded JSON bodies.

use axum::body::{Body, Bytes};
use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::app::AppError;
use crate::auth::{AuthError, Caller, JwtVerifier};

/// Bodies above this are refused with 413 before they are read in full.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The caller, in any router whose state holds the verifier.
impl<S: Send + Sync> FromRequestParts<S> for Caller
where
    Arc<JwtVerifier>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        Arc::<JwtVerifier>::from_ref(state).verify_header(header).await.map_err(|e| match e {
            AuthError::Missing => AppError::Unauthorized("missing bearer token"),
            AuthError::Invalid => AppError::Unauthorized("invalid or expired token"),
            AuthError::NoSubject => AppError::Unauthorized("the token names no user (sub)"),
            AuthError::ReservedSubject => {
                AppError::Forbidden("the token's subject (tg:…) is reserved for Telegram accounts paying in Stars")
            }
            AuthError::KeysUnavailable(why) => AppError::Unavailable(why.into()),
        })
    }
}

/// The raw body, at most `BODY_LIMIT` bytes.
pub struct LimitedBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for LimitedBody {
    type Rejection = AppError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let declared =
            req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
            return Err(AppError::TooLarge(BODY_LIMIT));
        }
        let body: Body = req.into_body();
        match axum::body::to_bytes(body, BODY_LIMIT).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(e) if is_length_limit(&e) => Err(AppError::TooLarge(BODY_LIMIT)),
            Err(e) => Err(AppError::Invalid(format!("the request body could not be read: {e}"))),
        }
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.to_string().contains("length limit exceeded") {
            return true;
        }
        source = s.source();
    }
    false
}

/// A JSON body of type `T`; an empty body reads as `{}` so that all-optional bodies may be omitted.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let LimitedBody(bytes) = LimitedBody::from_request(req, state).await?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        serde_json::from_slice(bytes).map(JsonBody).map_err(|e| AppError::Invalid(format!("invalid JSON body: {e}")))
    }
}

/// One path parameter; a segment that is not valid UTF-8 (`%FF`) is a 400 in the JSON error shape,
/// like every other refusal.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(p)| Self(p))
            .map_err(|_| AppError::Invalid("the path holds an invalid parameter".into()))
    }
}

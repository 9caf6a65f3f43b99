//! CSV exports, streamed page by page over the store.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::{ConsoleError, Session};
use crate::app::{Admin, AppError, PaymentDesk};
use crate::ports::PageRequest;

const EXPORT_PAGE: u32 = 100;

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

/// Every payment, newest first (support and admins).
pub(super) async fn payments(State(desk): State<Arc<PaymentDesk>>, session: Session) -> Result<Response, ConsoleError> {
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
pub(super) async fn members(State(admin): State<Arc<Admin>>, session: Session) -> Result<Response, ConsoleError> {
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

//! What a caller sees at the edges: the payer's view, odd paths, the webhook's secret, the test clock.

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn a_payer_sees_the_status_and_the_reason_not_supports_internal_notes() {
    let app = TestApp::spawn().await;
    let user = app.jwt("alice", "user");
    let (_, p) = app
        .post("/api/payments/pending-payments/create/", &user, json!({"offer_id": "m", "transaction_id": "TX-NOTES"}))
        .await;
    let path = format!("/api/payments/admin/pending-payments/{}/reject/", p["id"].as_str().unwrap());
    let (status, _) = app.post(&path, &app.jwt("s", "support"), json!({"reason": "no such transfer"})).await;
    assert_eq!(status, 200);
    let (_, mine) = app.get("/api/payments/pending-payments/", &user).await;
    assert_eq!(
        (mine[0]["status"].as_str(), mine[0]["reject_reason"].as_str()),
        (Some("rejected"), Some("no such transfer"))
    );
    assert!(mine[0].get("admin_notes").is_none() && mine[0].get("reviewed_by").is_none(), "{mine}");
    let (_, all) = app.get("/api/payments/admin/pending-payments/", &app.jwt("s", "support")).await;
    assert_eq!(all[0]["reviewed_by"], "s", "support still sees who reviewed it");
}

/// An offer taken out of `OFFERS` after a buyer paid for it: validating says so before anything
/// changes (the payment waits, unvalidated, with no half-made link), and works once it is back.
#[tokio::test]
async fn a_payment_whose_offer_was_withdrawn_since_is_not_validated_half_way() {
    const BOTH: &str = r#"{"m": {"name": "Monthly", "days": 30}, "y": {"name": "Year", "days": 365}}"#;
    let mut app = TestApp::spawn_with(&[("OFFERS", BOTH)]).await;
    let body = json!({"offer_id": "y", "transaction_id": "TX-YEAR-1"});
    let (status, p) = app.post("/api/payments/pending-payments/create/", &app.jwt("alice", "user"), body).await;
    assert_eq!(status, 201, "{p}");
    app.restart_with("OFFERS", r#"{"m": {"name": "Monthly", "days": 30}}"#).await;
    let path = format!("/api/payments/admin/pending-payments/{}/validate/", p["id"].as_str().unwrap());
    let (status, answer) = app.post(&path, &app.jwt("s", "support"), json!({})).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("offer_not_on_sale")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("(y)"), "names the offer: {answer}");
    let (_, mine) = app.get("/api/payments/pending-payments/", &app.jwt("alice", "user")).await;
    assert_eq!(mine[0]["status"], "transaction_submitted", "nothing changed: {mine}");
    let (_, notes) = app.get("/api/telegram/notifications/", &app.jwt("alice", "user")).await;
    assert_eq!(notes.as_array().map(Vec::len), Some(0), "no link sent: {notes}");

    app.restart_with("OFFERS", BOTH).await;
    let (status, issued) = app.post(&path, &app.jwt("s", "support"), json!({})).await;
    assert_eq!(status, 200, "{issued}");
    // Withdrawn again after the validation: a new link is refused the same way, not as bad input.
    app.restart_with("OFFERS", r#"{"m": {"name": "Monthly", "days": 30}}"#).await;
    let again = json!({"payment_id": issued["payment_id"]});
    let (status, answer) = app.post("/api/telegram/generate-token/", &app.jwt("s", "support"), again).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("offer_not_on_sale")), "{answer}");
}

#[tokio::test]
async fn a_path_id_that_is_not_utf8_gets_the_json_error_shape() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .post(format!("{}/api/payments/admin/pending-payments/%FF/validate/", app.base))
        .bearer_auth(app.jwt("s", "support"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_input");
}

#[tokio::test]
async fn the_webhook_checks_the_secret_before_reading_the_body() {
    let app = TestApp::spawn().await;
    let big = vec![b' '; 2 * 1024 * 1024];
    let res = app
        .http
        .post(format!("{}/api/telegram/webhook", app.base))
        .header("X-Telegram-Bot-Api-Secret-Token", "wrong")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401, "not 413: the body of a stranger is never read");
}

#[tokio::test]
async fn the_test_clock_refuses_a_move_that_would_overflow_time() {
    let app = TestApp::spawn().await;
    let (status, body) =
        app.request(reqwest::Method::POST, "/_local/clock/advance", None, Some(json!({"seconds": i64::MAX}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_input")), "{body}");
    // And the host still answers.
    assert_eq!(app.status_of("alice").await["has_active_subscription"], false);
    app.advance(86_400).await;
}

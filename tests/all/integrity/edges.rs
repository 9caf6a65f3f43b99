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

//! The HTTP contract: webhook guard, de-duplication, auth, roles, errors, payments, tokens, notifications.

use crate::support;

use crate::support::{CHANNEL, JWT_SECRET, TestApp, updates};
use futures_util::future::join_all;
use serde_json::{Value, json};

const ALICE: i64 = 2001;

async fn raw_webhook(app: &TestApp, secret: Option<&str>, body: &str) -> u16 {
    let mut req = app
        .http
        .post(format!("{}/api/telegram/webhook", app.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(s) = secret {
        req = req.header("X-Telegram-Bot-Api-Secret-Token", s);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_webhook_without_the_right_secret_gets_401_and_nothing_happens() {
    let app = TestApp::spawn().await;
    let update = updates::text(1, ALICE, "fr", "/help").to_string();
    assert_eq!(raw_webhook(&app, None, &update).await, 401);
    assert_eq!(raw_webhook(&app, Some("wrong-secret"), &update).await, 401);
    assert_eq!(raw_webhook(&app, Some(""), &update).await, 401);
    assert!(app.fake().calls().is_empty());
    // The refused update was not recorded: delivered properly, it is handled.
    assert_eq!(raw_webhook(&app, Some(support::WEBHOOK_SECRET), &update).await, 200);
    assert_eq!(app.texts_to(ALICE).len(), 1);
}

#[tokio::test]
async fn a_replayed_update_has_one_effect() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-R").await;
    let update = updates::text(77, ALICE, "fr", &format!("/start {}", issued["token"].as_str().unwrap()));
    let statuses = join_all((0..5).map(|_| app.webhook(update.clone()))).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.webhook(update).await, 200);
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 1);
    assert_eq!(app.texts_to(ALICE).len(), 1);
}

#[tokio::test]
async fn a_failed_update_is_released_so_that_telegrams_retry_is_processed() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-F").await;
    let update = updates::text(78, ALICE, "fr", &format!("/start {}", issued["token"].as_str().unwrap()));
    app.fake().fail_next("createChatInviteLink", support::Fault::RetryAfter(5), 1);
    assert_eq!(app.webhook(update.clone()).await, 503, "Telegram is busy: it will retry");
    assert_eq!(app.webhook(update).await, 200);
    assert_eq!(app.texts_to(ALICE).len(), 1, "one invite message in the end");
    assert!(app.last_invite_link().is_some());
}

#[tokio::test]
async fn malformed_updates_get_400_and_unknown_kinds_get_200_without_effect() {
    let app = TestApp::spawn().await;
    let s = Some(support::WEBHOOK_SECRET);
    assert_eq!(raw_webhook(&app, s, "{not json").await, 400);
    assert_eq!(raw_webhook(&app, s, r#"{"message": {"text": "/help"}}"#).await, 400, "no update_id");
    assert_eq!(raw_webhook(&app, s, r#"{"update_id": 5, "poll": {"id": "1"}}"#).await, 200);
    assert_eq!(raw_webhook(&app, s, r#"{"update_id": 6, "edited_message": {"message_id": 1}}"#).await, 200);
    assert!(app.fake().calls().is_empty());
}

#[tokio::test]
async fn bodies_over_one_megabyte_get_413_in_the_json_error_shape() {
    let app = TestApp::spawn().await;
    let big =
        format!(r#"{{"offer_id": "m", "transaction_id": "T", "user_info": {{"x": "{}"}}}}"#, "a".repeat(1_100_000));
    let res = app
        .http
        .post(format!("{}/api/payments/pending-payments/create/", app.base))
        .bearer_auth(app.jwt("alice", "user"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(raw_webhook(&app, Some(support::WEBHOOK_SECRET), &big).await, 413);
}

#[tokio::test]
async fn bad_expired_unsigned_and_foreign_jwts_get_401() {
    let app = TestApp::spawn().await;
    let path = "/api/telegram/status/";
    let now = chrono::Utc::now().timestamp();
    let sign = |claims: Value, secret: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let b64 = |v: Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let cases = [
        ("no token", None),
        ("garbage", Some("not.a.jwt".to_owned())),
        ("expired", Some(sign(json!({"sub": "a", "exp": now - 600}), JWT_SECRET))),
        ("not yet valid", Some(sign(json!({"sub": "a", "exp": now + 600, "nbf": now + 300}), JWT_SECRET))),
        ("wrong key", Some(sign(json!({"sub": "a", "exp": now + 600}), "another-secret-another-secret-another!!"))),
        (
            "alg none",
            Some(format!(
                "{}.{}.",
                b64(json!({"alg": "none", "typ": "JWT"})),
                b64(json!({"sub": "a", "exp": now + 600, "role": "admin"}))
            )),
        ),
        ("no subject", Some(sign(json!({"exp": now + 600}), JWT_SECRET))),
    ];
    for (what, token) in cases {
        let (status, body) = app.request(reqwest::Method::GET, path, token.as_deref(), None).await;
        assert_eq!(status, 401, "{what}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
    }
    let (status, _) = app.get(path, &app.jwt("alice", "user")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn support_routes_refuse_users_with_403() {
    let app = TestApp::spawn().await;
    let user = app.jwt("alice", "user");
    let (_, payment) = app
        .post("/api/payments/pending-payments/create/", &user, json!({"offer_id": "m", "transaction_id": "TX-403"}))
        .await;
    let id = payment["id"].as_str().unwrap();
    let (s1, b1) = app.get("/api/payments/admin/pending-payments/", &user).await;
    let (s2, _) = app.post(&format!("/api/payments/admin/pending-payments/{id}/validate/"), &user, json!({})).await;
    let (s3, _) =
        app.post(&format!("/api/payments/admin/pending-payments/{id}/reject/"), &user, json!({"reason": "x"})).await;
    assert_eq!((s1, s2, s3), (403, 403, 403));
    assert_eq!(b1["error"]["code"], "forbidden");
    // Admin may do what support may.
    let (s, _) = app
        .post(&format!("/api/payments/admin/pending-payments/{id}/validate/"), &app.jwt("root", "admin"), json!({}))
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_transaction_id_is_unique_and_a_payment_is_validated_once() {
    let app = TestApp::spawn().await;
    let user = app.jwt("alice", "user");
    let (_, p) = app
        .post("/api/payments/pending-payments/create/", &user, json!({"offer_id": "m", "transaction_id": "TX-U"}))
        .await;
    let (status, body) = app
        .post(
            "/api/payments/pending-payments/create/",
            &app.jwt("bob", "user"),
            json!({"offer_id": "m", "transaction_id": " TX-U "}),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("transaction_id_taken")));

    let path = format!("/api/payments/admin/pending-payments/{}/validate/", p["id"].as_str().unwrap());
    let support = app.jwt("s", "support");
    let answers = join_all((0..8).map(|_| app.post(&path, &support, json!({})))).await;
    let ok: Vec<_> = answers.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(ok.len(), 1, "one validation wins");
    assert!(
        answers.iter().filter(|(s, _)| *s != 200).all(|(s, b)| *s == 409 && b["error"]["code"] == "already_validated")
    );
    let (_, mine) = app.get("/api/payments/pending-payments/", &user).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["status"], "validated");
    let (_, notes) = app.get("/api/telegram/notifications/", &user).await;
    assert_eq!(notes.as_array().unwrap().len(), 1, "one token, one notification");
}

#[tokio::test]
async fn a_rejected_payment_notifies_the_user_and_cannot_be_validated() {
    let app = TestApp::spawn().await;
    let user = app.jwt("alice", "user");
    let (_, p) = app
        .post("/api/payments/pending-payments/create/", &user, json!({"offer_id": "m", "transaction_id": "TX-J"}))
        .await;
    let id = p["id"].as_str().unwrap();
    let support = app.jwt("s", "support");
    let (s, _) = app.post(&format!("/api/payments/admin/pending-payments/{id}/reject/"), &support, json!({})).await;
    assert_eq!(s, 400, "a reason is required");
    let (s, body) = app
        .post(
            &format!("/api/payments/admin/pending-payments/{id}/reject/"),
            &support,
            json!({"reason": "no such transfer"}),
        )
        .await;
    assert_eq!((s, body["success"].clone()), (200, json!(true)));
    let (_, notes) = app.get("/api/telegram/notifications/", &user).await;
    assert_eq!(notes[0]["type"], "payment_rejected");
    assert!(notes[0]["message"].as_str().unwrap().contains("no such transfer"));
    let (s, body) =
        app.post(&format!("/api/payments/admin/pending-payments/{id}/validate/"), &support, json!({})).await;
    assert_eq!((s, body["error"]["code"].as_str()), (409, Some("already_rejected")));
    let (s, _) =
        app.post("/api/payments/admin/pending-payments/0000000000000000000000ff/validate/", &support, json!({})).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn generate_token_replaces_the_unused_token_and_only_for_owner_or_support() {
    let app = TestApp::spawn().await;
    let first = app.paid("alice", "TX-G").await;
    let payment_id = first["payment_id"].as_str().unwrap();
    let (s, _) =
        app.post("/api/telegram/generate-token/", &app.jwt("mallory", "user"), json!({"payment_id": payment_id})).await;
    assert_eq!(s, 404, "another user's payment is not confirmed to exist");
    let (s, _) = app
        .post(
            "/api/telegram/generate-token/",
            &app.jwt("alice", "user"),
            json!({"payment_id": payment_id, "transaction_id": "TX-other"}),
        )
        .await;
    assert_eq!(s, 400, "a transaction id that does not match");
    let (s, second) = app
        .post(
            "/api/telegram/generate-token/",
            &app.jwt("alice", "user"),
            json!({"payment_id": payment_id, "transaction_id": "TX-G"}),
        )
        .await;
    assert_eq!(s, 200, "{second}");
    assert_ne!(first["token"], second["token"]);

    app.start_command(ALICE, first["token"].as_str().unwrap()).await;
    assert!(app.fake().calls_to("createChatInviteLink").is_empty(), "the replaced token no longer works");
    app.start_command(ALICE, second["token"].as_str().unwrap()).await;
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 1);

    let (s, body) =
        app.post("/api/telegram/generate-token/", &app.jwt("s", "support"), json!({"payment_id": payment_id})).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("already_redeemed")),
        "opened in Telegram: no second account"
    );

    let (_, unvalidated) = app
        .post(
            "/api/payments/pending-payments/create/",
            &app.jwt("bob", "user"),
            json!({"offer_id": "m", "transaction_id": "TX-NV"}),
        )
        .await;
    let (s, body) = app
        .post("/api/telegram/generate-token/", &app.jwt("bob", "user"), json!({"payment_id": unvalidated["id"]}))
        .await;
    assert_eq!((s, body["error"]["code"].as_str()), (409, Some("payment_not_validated")));
}

#[tokio::test]
async fn notifications_page_newest_first_and_are_marked_read_by_their_owner_only() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.paid("alice", &format!("TX-N{i}")).await;
    }
    let alice = app.jwt("alice", "user");
    let res = app
        .http
        .get(format!("{}/api/telegram/notifications/?limit=2", app.base))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let cursor = res.headers()["x-next-cursor"].to_str().unwrap().to_owned();
    let page1: Vec<Value> = res.json().await.unwrap();
    assert_eq!(page1.len(), 2);
    let (_, page2) = app.get(&format!("/api/telegram/notifications/?limit=2&cursor={cursor}"), &alice).await;
    assert_eq!(page2.as_array().unwrap().len(), 1);
    let ids: Vec<&str> = page1.iter().chain(page2.as_array().unwrap()).map(|n| n["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "newest first");

    let id = ids[0];
    let (s, _) = app.post(&format!("/api/telegram/notifications/{id}/read/"), &app.jwt("bob", "user"), json!({})).await;
    assert_eq!(s, 404);
    let (s, _) = app.post(&format!("/api/telegram/notifications/{id}/read"), &alice, json!({})).await;
    assert_eq!(s, 200, "the trailing slash is optional");
    let (_, all) = app.get("/api/telegram/notifications/", &alice).await;
    assert_eq!(all[0]["read"], true);
    assert_eq!(all[1]["read"], false);
    let (s, _) = app.get("/api/telegram/notifications/?limit=0", &alice).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn bad_payment_input_gets_400_with_a_code_and_unknown_routes_404() {
    let app = TestApp::spawn().await;
    let user = app.jwt("alice", "user");
    for body in [
        json!({}),
        json!({"offer_id": "m"}),
        json!({"offer_id": "m", "transaction_id": ""}),
        json!({"offer_id": "m", "transaction_id": "T", "extra": 1}),
        json!({"offer_id": "m", "transaction_id": "T", "user_info": "str"}),
    ] {
        let (s, b) = app.post("/api/payments/pending-payments/create/", &user, body.clone()).await;
        assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_input")), "{body}");
    }
    let (s, b) = app.get("/api/nothing/here/", &user).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, b) = app.request(reqwest::Method::DELETE, "/api/telegram/status/", Some(&user), None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (405, Some("method_not_allowed")));
}

#[tokio::test]
async fn offers_from_settings_are_enforced_and_set_the_length() {
    let app = TestApp::spawn_with(&[("OFFERS", r#"{"q": {"name": "Quarterly", "days": 90}}"#)]).await;
    let user = app.jwt("alice", "user");
    let (s, _) = app
        .post(
            "/api/payments/pending-payments/create/",
            &user,
            json!({"offer_id": "monthly", "transaction_id": "TX-O1"}),
        )
        .await;
    assert_eq!(s, 400);
    let (_, p) = app
        .post("/api/payments/pending-payments/create/", &user, json!({"offer_id": "q", "transaction_id": "TX-O2"}))
        .await;
    let (_, issued) = app
        .post(
            &format!("/api/payments/admin/pending-payments/{}/validate/", p["id"].as_str().unwrap()),
            &app.jwt("s", "support"),
            json!({}),
        )
        .await;
    app.start_command(ALICE, issued["token"].as_str().unwrap()).await;
    app.webhook(updates::joined(app.update_id(), CHANNEL, ALICE, None)).await;
    let status = app.status_of("alice").await;
    assert_eq!(status["memberships"][0]["subscription_type"], "Quarterly");
    assert_eq!(status["memberships"][0]["days_remaining"], 90);
}

//! Business events for integrations: what happens is announced once per audit entry, locally in
//! the data folder's `events.jsonl`, in AWS on an EventBridge bus (checked on the stand-in).

use crate::support;

use std::sync::{Arc, Mutex};

use crate::support::{Fault, TestApp};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};
use telegate_core::adapters::eventbridge::EventBridgeBus;
use telegate_core::ports::{BusinessEvent, EventBus};

fn events(app: &TestApp) -> Vec<Value> {
    let raw = std::fs::read_to_string(app.data.0.join("events.jsonl")).unwrap_or_default();
    raw.lines().map(|l| serde_json::from_str(l).expect("one JSON event per line")).collect()
}

fn types(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["detail-type"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_flow_is_announced_once_per_step_in_the_local_events_file() {
    let app = TestApp::spawn().await;
    let issued = app.member("alice", "TX-EVENTS-1", 8101).await;
    let (s, body) = app
        .post(
            "/api/telegram/revoke-access/",
            &app.jwt("root", "admin"),
            json!({"user_id": "alice", "reason": "chargeback"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    app.drain().await;

    let seen = events(&app);
    assert_eq!(
        types(&seen),
        ["Payment Submitted", "Payment Validated", "Membership Started", "Membership Revoked"],
        "{seen:#?}"
    );
    for e in &seen {
        assert_eq!(e["source"], "telegate");
        assert_eq!(e["id"], e["detail"]["audit_id"], "deduplicated on the audit entry");
        assert_eq!(e["detail"]["user_id"], "alice");
    }
    assert_eq!(seen[0]["detail"]["transaction_id"], "TX-EVENTS-1");
    assert_eq!(seen[2]["detail"]["telegram_user_id"], 8101);
    assert_eq!(seen[3]["detail"]["reason"], "chargeback");
    let raw = std::fs::read_to_string(app.data.0.join("events.jsonl")).unwrap();
    assert!(!raw.contains(issued["token"].as_str().unwrap()), "no token in any event");

    // The audit log holds the same entries.
    let (_, audit) = app.get("/api/telegram/admin/audit/?limit=100", &app.jwt("root", "admin")).await;
    let ids: Vec<&Value> = audit.as_array().unwrap().iter().map(|a| &a["id"]).collect();
    assert!(seen.iter().all(|e| ids.contains(&&e["id"])), "{audit}");
}

#[tokio::test]
async fn an_effect_given_up_after_its_retries_is_announced() {
    let app = TestApp::spawn().await;
    app.member("bob", "TX-EVENTS-2", 8102).await;
    // Telegram refuses the ban for good (an answer no retry changes).
    app.fake().fail_next("banChatMember", Fault::BotBlocked, 1);
    app.post("/api/telegram/revoke-access/", &app.jwt("root", "admin"), json!({"user_id": "bob", "reason": "fraud"}))
        .await;
    app.drain().await;
    let dead: Vec<Value> = events(&app).into_iter().filter(|e| e["detail-type"] == "Effect Dead-Lettered").collect();
    assert_eq!(dead.len(), 1, "{:#?}", events(&app));
    assert_eq!(dead[0]["detail"]["effect"], "remove_member");
    assert_eq!(dead[0]["detail"]["telegram_user_id"], 8102);
    assert!(!app.running().effects.dead_letters().await.unwrap().is_empty());
}

/// Forwards to the stand-in and keeps every request body.
#[derive(Default)]
struct Recorder {
    upstream: String,
    bodies: Mutex<Vec<Value>>,
}

async fn record(State(r): State<Arc<Recorder>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    r.bodies.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
    let mut request = reqwest::Client::new().request(method, format!("{}{}", r.upstream, uri.path()));
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            request = request.header(k, v);
        }
    }
    let answer = request.body(body).send().await.expect("the stand-in answers");
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let content_type = answer.headers().get("content-type").cloned();
    let mut response = (status, answer.bytes().await.unwrap()).into_response();
    if let Some(ct) = content_type {
        response.headers_mut().insert("content-type", ct);
    }
    response
}

#[tokio::test]
async fn events_are_put_on_the_eventbridge_bus_with_their_type_and_detail() {
    let resources = support::aws_resources().await;
    let bus = resources.iter().find(|(k, _)| *k == "EVENT_BUS_NAME").unwrap().1.clone();
    let recorder = Arc::new(Recorder { upstream: support::aws_endpoint(), ..Recorder::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(record).with_state(recorder.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = telegate_core::adapters::aws::sdk_config().await;
    let client = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&config).endpoint_url(url).build(),
    );

    let event = BusinessEvent {
        id: "01a2".into(),
        detail_type: "Membership Ended".into(),
        at: Utc::now(),
        detail: json!({"audit_id": "01a2", "membership_id": "m-1", "telegram_user_id": 42}),
    };
    EventBridgeBus::new(client.clone(), &bus).publish(&event).await.expect("the bus takes it");
    let sent = recorder.bodies.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let entry = &sent[0]["Entries"][0];
    assert_eq!(entry["EventBusName"], bus.as_str());
    assert_eq!(entry["Source"], "telegate");
    assert_eq!(entry["DetailType"], "Membership Ended");
    let detail: Value = serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["membership_id"], "m-1");

    let missing = EventBridgeBus::new(client, "no-such-bus").publish(&event).await;
    assert!(missing.is_err(), "an event the bus does not take is an error, so the queue tries again");
}

/// A member who leaves and comes back within the period paid for is the same membership: no second
/// `Membership Started`.
#[tokio::test]
async fn a_member_back_within_the_paid_period_is_not_announced_as_a_new_membership() {
    let app = TestApp::spawn().await;
    app.member("rejoiner", "TX-EVENTS-REJOIN", 8102).await;
    app.webhook(support::updates::left(app.update_id(), support::CHANNEL, 8102)).await;
    app.webhook(support::updates::joined(app.update_id(), support::CHANNEL, 8102, None)).await;
    app.drain().await;
    let started = types(&events(&app)).iter().filter(|t| *t == "Membership Started").count();
    assert_eq!(started, 1);
}

//! DynamoDB's answers under contention and throttling, injected by a proxy in front of the local
//! stand-in: a `TransactionConflict` is tried again, a transaction whose answer was lost is not
//! reported as a conflict, and counters left unprocessed by `BatchGetItem` are read again.

mod support;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};
use telegate_core::adapters::dynamodb::DynamoStore;
use telegate_core::domain::{AccessToken, Lang, Payment, PaymentId, PaymentStatus, TokenRecord, TokenStatus, UserId};
use telegate_core::ports::{AccessStore, PaymentStore, Stats};

/// What the proxy does to the next calls of one DynamoDB operation.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Answer `TransactionCanceledException` with a `TransactionConflict` reason.
    Conflict,
    /// Forward, then lose the answer: a 500, which the SDK retries with the same request.
    LoseAnswer,
    /// Answer that every requested key is unprocessed (throttling).
    Unprocessed,
}

#[derive(Default)]
struct Proxy {
    upstream: String,
    faults: Mutex<Vec<(String, Fault)>>,
    /// The bodies of the `TransactWriteItems` calls that reached the proxy.
    transactions: Mutex<Vec<Value>>,
}

async fn forward(State(p): State<Arc<Proxy>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let operation = target.rsplit('.').next().unwrap_or("").to_owned();
    if operation == "TransactWriteItems" {
        p.transactions.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
    }
    let fault = {
        let mut faults = p.faults.lock().unwrap();
        faults.iter().position(|(op, _)| *op == operation).map(|i| faults.remove(i).1)
    };
    let json_error = |status: StatusCode, body: Value| {
        (status, [("content-type", "application/x-amz-json-1.0")], body.to_string()).into_response()
    };
    match fault {
        Some(Fault::Conflict) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                json!({"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                       "message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
                       "CancellationReasons": [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]}),
            );
        }
        Some(Fault::Unprocessed) => {
            let request: Value = serde_json::from_slice(&body).unwrap();
            let tables: serde_json::Map<String, Value> =
                request["RequestItems"].as_object().unwrap().keys().map(|t| (t.clone(), json!([]))).collect();
            return json_error(
                StatusCode::OK,
                json!({"Responses": tables, "UnprocessedKeys": request["RequestItems"]}),
            );
        }
        _ => {}
    }
    let client = reqwest::Client::new();
    let mut request = client.request(method, format!("{}{}", p.upstream, uri.path()));
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            request = request.header(k, v);
        }
    }
    let answer = request.body(body).send().await.expect("the stand-in answers");
    if fault == Some(Fault::LoseAnswer) {
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "injected: answer lost"}),
        );
    }
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let content_type = answer.headers().get("content-type").cloned();
    let bytes = answer.bytes().await.unwrap();
    let mut response = (status, bytes).into_response();
    if let Some(ct) = content_type {
        response.headers_mut().insert("content-type", ct);
    }
    response
}

/// A fresh table, and a store that reaches it through the fault-injecting proxy.
async fn store_behind_proxy() -> (DynamoStore, Arc<Proxy>) {
    let direct = support::dynamo_store().await;
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| support::aws_endpoint());
    let proxy = Arc::new(Proxy { upstream, ..Proxy::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(forward).with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = telegate_core::adapters::aws::sdk_config().await;
    let client =
        aws_sdk_dynamodb::Client::from_conf(aws_sdk_dynamodb::config::Builder::from(&config).endpoint_url(url).build());
    (DynamoStore::new(client, direct.table_name()), proxy)
}

fn payment(tx: &str) -> Payment {
    let now = Utc::now();
    Payment {
        id: PaymentId::generate(now).unwrap(),
        user_id: UserId::parse("faults").unwrap(),
        email: None,
        offer_id: "m".into(),
        transaction_id: tx.into(),
        user_info: None,
        status: PaymentStatus::TransactionSubmitted,
        admin_notes: None,
        reject_reason: None,
        created_at: now,
        updated_at: now,
        reviewed_by: None,
        lang: Lang::Fr,
    }
}

#[tokio::test]
async fn a_transaction_conflict_is_tried_again_not_reported_as_a_fault() {
    let (store, proxy) = store_behind_proxy().await;
    proxy.faults.lock().unwrap().extend(std::iter::repeat_n(("TransactWriteItems".into(), Fault::Conflict), 2));
    let p = payment("TX-CONFLICT");
    store.insert_payment(&p).await.expect("the third try commits");
    assert_eq!(store.payment(&p.id).await.unwrap().unwrap().transaction_id, "TX-CONFLICT");
    assert_eq!(proxy.transactions.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn every_transaction_carries_a_request_token_that_the_sdks_retry_repeats() {
    let (store, proxy) = store_behind_proxy().await;
    proxy.faults.lock().unwrap().push(("TransactWriteItems".into(), Fault::LoseAnswer));
    let p = payment("TX-LOST-ANSWER");
    let result = store.insert_payment(&p).await;
    let sent = proxy.transactions.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "the SDK retried the lost answer once");
    let tokens: Vec<&str> = sent.iter().map(|b| b["ClientRequestToken"].as_str().unwrap_or("")).collect();
    assert!(!tokens[0].is_empty() && tokens[0] == tokens[1], "the same token on the retry: {tokens:?}");
    // DynamoDB answers a repeated token with the first call's success. moto does not implement
    // request tokens; the test command's second pass runs this on AWS's DynamoDB Local, which does.
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok() {
        result.expect("the retry of a committed transaction is a success");
    }
    assert!(store.payment(&p.id).await.unwrap().is_some(), "committed once");
}

#[tokio::test]
async fn counters_left_unprocessed_by_throttling_are_read_again() {
    let (store, proxy) = store_behind_proxy().await;
    let p = payment("TX-COUNT");
    store.insert_payment(&p).await.unwrap();
    let now = Utc::now();
    let token = AccessToken::generate().unwrap();
    store
        .issue_token(&TokenRecord {
            hash: token.hash(),
            payment_id: p.id.clone(),
            user_id: p.user_id.clone(),
            offer_name: "Monthly".into(),
            days: 30,
            status: TokenStatus::Pending,
            created_at: now,
            expires_at: now + chrono::Duration::hours(24),
            telegram_user_id: None,
            membership_id: None,
            used_at: None,
        })
        .await
        .unwrap();
    let before = store.counters(now).await.unwrap();
    assert_eq!((before.tokens_total, before.tokens_pending, before.tokens_recent), (1, 1, 1));
    proxy.faults.lock().unwrap().extend(std::iter::repeat_n(("BatchGetItem".into(), Fault::Unprocessed), 2));
    assert_eq!(store.counters(now).await.unwrap(), before, "not zeros: the unprocessed keys were asked again");
}

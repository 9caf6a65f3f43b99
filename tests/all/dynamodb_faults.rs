//! DynamoDB's answers under contention and throttling, injected by a proxy in front of the local
//! stand-in: a `TransactionConflict` is tried again, a transaction whose answer was lost is not
//! reported as a conflict, counters left unprocessed by `BatchGetItem` are read again, and a
//! revoke decides on the items themselves while the indexes still show an older table.

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};
use telegate_core::adapters::dynamodb::DynamoStore;
use telegate_core::domain::{MembershipStatus, Payment, TelegramUserId, TokenRecord, TokenStatus};
use telegate_core::ports::{AccessStore, Applied, LifecycleStore, PaymentStore, Stats};

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
    /// While set, every item read is remembered as the indexes' picture of the table.
    remember: AtomicBool,
    /// While set, index queries answer from that picture: an item is shown as it was remembered,
    /// and one never remembered has not reached the index yet (DynamoDB's GSIs lag the table).
    stale_indexes: AtomicBool,
    /// `pk/sk` → the item as the lagging indexes still show it.
    picture: Mutex<HashMap<String, Value>>,
}

fn item_key(item: &Value) -> String {
    format!("{}/{}", item["pk"]["S"].as_str().unwrap_or(""), item["sk"]["S"].as_str().unwrap_or(""))
}

impl Proxy {
    fn remember(&self, answer: &Value) {
        let mut picture = self.picture.lock().unwrap();
        let items = answer["Items"].as_array().cloned().unwrap_or_default();
        for item in items.into_iter().chain(answer.get("Item").cloned()) {
            picture.insert(item_key(&item), item);
        }
    }

    /// An index query's answer as an index that lags the table would give it.
    fn as_stale_index(&self, mut answer: Value) -> Value {
        let picture = self.picture.lock().unwrap();
        let shown: Vec<Value> = answer["Items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|item| picture.get(&item_key(item)).cloned())
            .collect();
        answer["Count"] = json!(shown.len());
        answer["Items"] = Value::Array(shown);
        answer
    }
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
    let index_query = operation == "Query"
        && serde_json::from_slice::<Value>(&body).map(|b| b.get("IndexName").is_some()).unwrap_or(false);
    let answer = telegate_testkit::local_aws::pass_on(&p.upstream, method, &uri, &headers, body).await;
    if fault == Some(Fault::LoseAnswer) {
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "injected: answer lost"}),
        );
    }
    if p.remember.load(Ordering::SeqCst) || (index_query && p.stale_indexes.load(Ordering::SeqCst)) {
        let status = answer.status();
        let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX).await.unwrap();
        let mut read: Value = serde_json::from_slice(&bytes).unwrap();
        if p.remember.load(Ordering::SeqCst) {
            p.remember(&read);
        } else {
            read = p.as_stale_index(read);
        }
        return json_error(status, read);
    }
    answer
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
    payment_of("faults", tx)
}

fn payment_of(user: &str, tx: &str) -> Payment {
    Payment { offer_id: "m".into(), ..telegate_testkit::samples::payment(user, tx, Utc::now()) }
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

fn token_for(p: &Payment, now: chrono::DateTime<Utc>) -> TokenRecord {
    crate::support::records::token(p, now).1
}

#[tokio::test]
async fn counters_left_unprocessed_by_throttling_are_read_again() {
    let (store, proxy) = store_behind_proxy().await;
    let p = payment("TX-COUNT");
    store.insert_payment(&p).await.unwrap();
    let now = Utc::now();
    store.issue_token(&token_for(&p, now)).await.unwrap();
    let before = store.counters(now).await.unwrap();
    assert_eq!((before.tokens_total, before.tokens_pending, before.tokens_recent), (1, 1, 1));
    proxy.faults.lock().unwrap().extend(std::iter::repeat_n(("BatchGetItem".into(), Fault::Unprocessed), 2));
    assert_eq!(store.counters(now).await.unwrap(), before, "not zeros: the unprocessed keys were asked again");
}

/// Issue 11, defect 4: the indexes still show the token unbound and no membership at all (the
/// join landed a moment before the revoke); the revoke reads the items themselves and ends it.
#[tokio::test]
async fn a_revoke_ends_a_membership_the_lagging_indexes_do_not_show_yet() {
    let (store, proxy) = store_behind_proxy().await;
    let p = payment_of("stale-index", "TX-STALE-INDEX");
    store.insert_payment(&p).await.unwrap();
    let now = Utc::now();
    let token = token_for(&p, now);
    store.issue_token(&token).await.unwrap();

    // The indexes' picture: the token still pending, the user with no membership.
    proxy.remember.store(true, Ordering::SeqCst);
    assert_eq!(store.token(&token.hash).await.unwrap().unwrap().status, TokenStatus::Pending);
    assert!(store.memberships_of(&p.user_id).await.unwrap().is_empty());
    proxy.remember.store(false, Ordering::SeqCst);

    // Then the account opens the link and joins.
    let who = TelegramUserId::parse(950_001).unwrap();
    let bound = store.bind_token(&token.hash, who, now).await.unwrap().unwrap();
    let m = crate::support::records::pending_membership(&bound, who, now);
    assert!(matches!(store.open_membership(&token.hash, &m).await.unwrap(), Applied::Now(_)));
    store.activate_membership(&m.id, now, now, None).await.unwrap().unwrap();

    proxy.stale_indexes.store(true, Ordering::SeqCst);
    assert!(store.memberships_of(&p.user_id).await.unwrap().is_empty(), "the index lags: it shows no membership");
    let revoked = store.revoke_user(&p.user_id, "chargeback", now, &|_| vec![]).await.unwrap();
    proxy.stale_indexes.store(false, Ordering::SeqCst);

    assert_eq!(revoked.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), vec![m.id.clone()], "revoked_count 1");
    assert_eq!(store.membership(&m.id).await.unwrap().unwrap().status, MembershipStatus::Revoked);
    assert_eq!(store.token(&token.hash).await.unwrap().unwrap().status, TokenStatus::Used, "spent, as on SQLite");
}

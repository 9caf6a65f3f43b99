//! RS256 verification with a configured public key and with a JWKS endpoint (as Cognito issues),
//! through the real HTTP routes.

use crate::support::{JWT_SECRET, TestApp};
use axum::Router;
use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

const PRIVATE: &str = include_str!("../fixtures/test-rsa-private.pem");
const PUBLIC: &str = include_str!("../fixtures/test-rsa-public.pem");
const JWKS: &str = include_str!("../fixtures/test-jwks.json");

fn rs256(claims: Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    encode(&header, &claims, &EncodingKey::from_rsa_pem(PRIVATE.as_bytes()).unwrap()).unwrap()
}

fn hs256(claims: Value, secret: &str) -> String {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn claims(role: &str) -> Value {
    json!({"sub": "carol", "exp": chrono::Utc::now().timestamp() + 600, "cognito:groups": [role],
           "iss": "https://issuer.example", "aud": "telegate"})
}

async fn status_code(app: &TestApp, token: &str) -> u16 {
    app.get("/api/telegram/status/", token).await.0
}

#[tokio::test]
async fn an_rs256_public_key_verifies_tokens_and_refuses_hs256_ones() {
    let app = TestApp::spawn_with(&[
        ("JWT_HS256_SECRET", ""),
        ("JWT_PUBLIC_KEY_PEM", PUBLIC),
        ("JWT_ISSUER", "https://issuer.example"),
        ("JWT_AUDIENCE", "telegate"),
    ])
    .await;
    assert_eq!(status_code(&app, &rs256(claims("user"), None)).await, 200);
    // The algorithm is pinned: an HS256 token, even signed with the public key's text, is refused.
    assert_eq!(status_code(&app, &hs256(claims("user"), PUBLIC)).await, 401);
    assert_eq!(status_code(&app, &hs256(claims("user"), JWT_SECRET)).await, 401);
    let mut wrong_aud = claims("user");
    wrong_aud["aud"] = json!("someone-else");
    assert_eq!(status_code(&app, &rs256(wrong_aud, None)).await, 401);
}

#[tokio::test]
async fn a_jwks_endpoint_provides_the_keys_and_cognito_groups_give_roles() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    let jwks: Value = serde_json::from_str(JWKS).unwrap();
    tokio::spawn(async move {
        let app = Router::new().route("/.well-known/jwks.json", get(move || async move { axum::Json(jwks) }));
        axum::serve(listener, app).await.unwrap();
    });
    let app = TestApp::spawn_with(&[("JWT_HS256_SECRET", ""), ("JWT_JWKS_URL", &url)]).await;
    assert_eq!(status_code(&app, &rs256(claims("user"), Some("test-key-1"))).await, 200);
    assert_eq!(status_code(&app, &rs256(claims("user"), Some("unknown-kid"))).await, 401);
    assert_eq!(status_code(&app, &rs256(claims("user"), None)).await, 401, "a JWKS token names its key");
    let (s, _) = app.get("/api/payments/admin/pending-payments/", &rs256(claims("support"), Some("test-key-1"))).await;
    assert_eq!(s, 200, "cognito:groups [support] is the support role");
}

#[tokio::test]
async fn refresh_tokens_and_id_tokens_are_refused_where_an_access_token_is_expected() {
    let app = TestApp::spawn().await;
    let exp = chrono::Utc::now().timestamp() + 600;
    let simplejwt = |kind: &str| hs256(json!({"user_id": 42, "exp": exp, "token_type": kind}), JWT_SECRET);
    assert_eq!(status_code(&app, &simplejwt("access")).await, 200);
    assert_eq!(status_code(&app, &simplejwt("refresh")).await, 401, "a simplejwt refresh token");
    let cognito = |kind: &str| hs256(json!({"sub": "carol", "exp": exp, "token_use": kind}), JWT_SECRET);
    assert_eq!(status_code(&app, &cognito("access")).await, 200);
    assert_eq!(status_code(&app, &cognito("id")).await, 401, "a Cognito ID token");
}

/// A JWKS endpoint that is down is asked once, not once per request naming an unknown key.
#[tokio::test]
async fn a_jwks_endpoint_that_is_down_is_not_asked_again_by_every_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        let app = Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { axum::http::StatusCode::SERVICE_UNAVAILABLE }
            }),
        );
        axum::serve(listener, app).await.unwrap();
    });
    let app = TestApp::spawn_with(&[("JWT_HS256_SECRET", ""), ("JWT_JWKS_URL", &url)]).await;
    let token = rs256(claims("user"), Some("test-key-1"));
    let answers = futures_util::future::join_all((0..20).map(|_| status_code(&app, &token))).await;
    assert!(answers.iter().all(|s| *s == 503), "{answers:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one fetch for twenty requests");
}

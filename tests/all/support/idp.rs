//! A small OpenID Connect provider for the console's browser sign-in, as Cognito's hosted UI
//! behaves: `/authorize` shows a sign-in page for the account the test chose, whose button sends
//! the browser back with a code (a navigation from the provider's own site); `/token` gives an RS256 access token (with its own keys, published at `/jwks`) for that
//! code only once, only to the client it was issued for, only with the PKCE verifier of the
//! challenge it was given, and only for the same redirect address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PRIVATE: &str = include_str!("../../fixtures/test-rsa-private.pem");
const JWKS: &str = include_str!("../../fixtures/test-jwks.json");
pub const CLIENT_ID: &str = "telegate-console";

struct Issued {
    challenge: String,
    redirect_uri: String,
    state: String,
    sub: String,
    groups: Vec<String>,
}

#[derive(Default)]
struct Provider {
    issuer: String,
    /// Who signs in at the next `/authorize` (what a person would type on the hosted UI).
    next: Mutex<Option<(String, Vec<String>)>>,
    /// Sign-in pages shown, by the id their form carries.
    shown: Mutex<HashMap<String, Issued>>,
    codes: Mutex<HashMap<String, Issued>>,
    /// Every `/authorize` query, as received.
    authorized: Mutex<Vec<HashMap<String, String>>>,
}

pub struct Idp {
    pub base: String,
    provider: Arc<Provider>,
}

impl Idp {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // Another site than telegate's 127.0.0.1, as a real provider is: the way back is a
        // cross-site navigation, with what that means for SameSite cookies.
        let base = format!("http://localhost:{}", listener.local_addr().unwrap().port());
        let provider = Arc::new(Provider { issuer: base.clone(), ..Provider::default() });
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/approve", post(approve))
            .route("/token", post(token))
            .route("/jwks", get(|| async { Json(serde_json::from_str::<Value>(JWKS).unwrap()) }))
            .with_state(provider.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, provider }
    }

    /// The settings of a telegate that trusts this provider, for the API and the console.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("JWT_HS256_SECRET", String::new()),
            ("JWT_JWKS_URL", format!("{}/jwks", self.base)),
            ("JWT_ISSUER", self.base.clone()),
            ("CONSOLE_OIDC_CLIENT_ID", CLIENT_ID.into()),
            ("CONSOLE_OIDC_AUTHORIZE_URL", format!("{}/authorize", self.base)),
            ("CONSOLE_OIDC_TOKEN_URL", format!("{}/token", self.base)),
        ]
    }

    /// The account that signs in next, with its Cognito groups.
    pub fn sign_in_as(&self, sub: &str, groups: &[&str]) {
        *self.provider.next.lock().unwrap() = Some((sub.into(), groups.iter().map(|g| g.to_string()).collect()));
    }

    pub fn authorize_requests(&self) -> Vec<HashMap<String, String>> {
        self.provider.authorized.lock().unwrap().clone()
    }

    /// What a person does on the sign-in page at `authorize_url`, over plain HTTP: where the
    /// provider then sends the browser.
    pub async fn sign_in_at(&self, authorize_url: &str) -> String {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let page = http.get(authorize_url).send().await.unwrap();
        assert_eq!(page.status(), 200, "the provider's sign-in page");
        let page = page.text().await.unwrap();
        let id = page.split(r#"name="request" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
        let back = http.post(format!("{}/approve", self.base)).form(&[("request", id)]).send().await.unwrap();
        assert_eq!(back.status(), 303);
        back.headers()["location"].to_str().unwrap().to_owned()
    }
}

async fn authorize(State(p): State<Arc<Provider>>, Query(q): Query<HashMap<String, String>>) -> Response {
    p.authorized.lock().unwrap().push(q.clone());
    let well_formed = q.get("response_type").is_some_and(|t| t == "code")
        && q.get("client_id").is_some_and(|c| c == CLIENT_ID)
        && q.get("code_challenge_method").is_some_and(|m| m == "S256")
        && q.contains_key("code_challenge")
        && q.contains_key("redirect_uri");
    let Some((sub, groups)) = p.next.lock().unwrap().clone().filter(|_| well_formed) else {
        return (StatusCode::BAD_REQUEST, "invalid_request").into_response();
    };
    let id = format!("request-{}", p.authorized.lock().unwrap().len());
    let issued = Issued {
        challenge: q["code_challenge"].clone(),
        redirect_uri: q["redirect_uri"].clone(),
        state: q.get("state").cloned().unwrap_or_default(),
        sub: sub.clone(),
        groups,
    };
    p.shown.lock().unwrap().insert(id.clone(), issued);
    axum::response::Html(format!(
        r#"<!DOCTYPE html><html lang="en"><title>Sign in</title><link rel="icon" href="data:,"><form method="post" action="/approve">
        <input type="hidden" name="request" value="{id}"><button type="submit">Sign in as {sub}</button></form>"#
    ))
    .into_response()
}

async fn approve(State(p): State<Arc<Provider>>, Form(f): Form<HashMap<String, String>>) -> Response {
    let Some(issued) = f.get("request").and_then(|id| p.shown.lock().unwrap().remove(id)) else {
        return (StatusCode::BAD_REQUEST, "invalid_request").into_response();
    };
    let code = format!("code-{}", p.authorized.lock().unwrap().len());
    let back = serde_urlencoded::to_string([("code", code.as_str()), ("state", issued.state.as_str())]).unwrap();
    let to = format!("{}?{back}", issued.redirect_uri);
    p.codes.lock().unwrap().insert(code, issued);
    Redirect::to(&to).into_response()
}

async fn token(State(p): State<Arc<Provider>>, Form(f): Form<HashMap<String, String>>) -> Response {
    let refuse = || (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"}))).into_response();
    // A code works once, whatever the outcome.
    let Some(issued) = f.get("code").and_then(|c| p.codes.lock().unwrap().remove(c)) else { return refuse() };
    let verifier = f.get("code_verifier").map(String::as_str).unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if f.get("grant_type").map(String::as_str) != Some("authorization_code")
        || f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || f.get("redirect_uri") != Some(&issued.redirect_uri)
        || challenge != issued.challenge
    {
        return refuse();
    }
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "sub": issued.sub, "cognito:groups": issued.groups, "token_use": "access", "client_id": CLIENT_ID,
        "iss": p.issuer, "iat": now, "exp": now + 3600, "scope": "openid email",
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let access = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(PRIVATE.as_bytes()).unwrap());
    Json(json!({"access_token": access.unwrap(), "token_type": "Bearer", "expires_in": 3600})).into_response()
}

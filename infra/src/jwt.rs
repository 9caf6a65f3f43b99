//! Minting HS256 tokens for local use (`telegate jwt`) and for the demo and tests.

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

pub fn mint(secret: &str, sub: &str, role: &str, email: Option<&str>, minutes: i64) -> Result<String, String> {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({ "sub": sub, "role": role, "iat": now, "exp": now + minutes * 60 });
    if let Some(e) = email {
        claims["email"] = json!(e);
    }
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).map_err(|e| e.to_string())
}

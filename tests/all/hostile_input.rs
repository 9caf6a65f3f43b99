//! A seeded corpus of hostile bodies, query strings and ids against every route: no input gives a
//! 5xx, and every 4xx is JSON with an error code.

use crate::support;

use crate::support::{TestApp, WEBHOOK_SECRET};
use serde_json::{Value, json};

/// xorshift64*: a reproducible corpus without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

fn hostile_values(rng: &mut Rng) -> Value {
    let strings = [
        "",
        " ",
        "\u{0000}",
        "\u{202e}evil",
        "💥".repeat(40).as_str().to_owned().leak(),
        "'; DROP TABLE payments; --",
        "../../etc/passwd",
        "%00",
        "a".repeat(5000).leak(),
    ];
    match rng.next() % 9 {
        0 => Value::Null,
        1 => json!(rng.next() as i64),
        2 => json!(f64::MAX),
        3 => json!(-1),
        4 => json!(*rng.pick(&strings)),
        5 => json!([1, "x", null, {"a": []}]),
        6 => json!({"nested": {"deeper": {"deepest": [[[[[]]]]]}}}),
        7 => json!(true),
        _ => json!(u64::MAX),
    }
}

fn hostile_body(rng: &mut Rng, fields: &[&str]) -> String {
    match rng.next() % 6 {
        0 => "{".repeat(2000),
        1 => (0..64).map(|_| (rng.next() % 256) as u8 as char).collect(),
        2 => "[]".into(),
        3 => "null".into(),
        _ => {
            let mut body = serde_json::Map::new();
            for f in fields {
                if !rng.next().is_multiple_of(4) {
                    body.insert((*f).into(), hostile_values(rng));
                }
            }
            if rng.next().is_multiple_of(5) {
                body.insert("unexpected".into(), json!(1));
            }
            Value::Object(body).to_string()
        }
    }
}

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    jwt: Option<&str>,
    body: Option<String>,
    secret: bool,
) -> (u16, String) {
    let mut req = app.http.request(method.parse().unwrap(), format!("{}{path}", app.base));
    if let Some(j) = jwt {
        req = req.bearer_auth(j);
    }
    if secret {
        req = req.header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn no_hostile_input_gives_a_5xx_and_every_4xx_explains_itself() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-HOST").await;
    let pid = issued["payment_id"].as_str().unwrap().to_owned();
    let admin = app.jwt("root", "admin");
    let routes: Vec<(&str, String, Vec<&str>)> = vec![
        ("POST", "/api/payments/pending-payments/create/".into(), vec!["offer_id", "transaction_id", "user_info"]),
        (
            "POST",
            format!("/api/payments/admin/pending-payments/{pid}/validate/"),
            vec!["admin_notes", "transaction_id"],
        ),
        ("POST", format!("/api/payments/admin/pending-payments/{pid}/reject/"), vec!["reason"]),
        ("POST", "/api/telegram/generate-token/".into(), vec!["payment_id", "transaction_id"]),
        ("POST", "/api/telegram/revoke-access/".into(), vec!["user_id", "reason"]),
        ("POST", "/api/telegram/notifications/x/read/".into(), vec![]),
        ("POST", "/api/telegram/admin/jobs/expire-tokens/run/".into(), vec![]),
    ];
    let mut rng = Rng(0x5EED_7E1E_6A7E);
    let mut checked = 0;
    for round in 0..40 {
        for (method, path, fields) in &routes {
            let body = hostile_body(&mut rng, fields);
            let (status, text) = send(&app, method, path, Some(&admin), Some(body.clone()), false).await;
            assert!(status < 500, "{method} {path} with {body:.200} → {status} {text}");
            if status >= 400 {
                let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status} is not JSON: {text}"));
                assert!(v["error"]["code"].is_string(), "{text}");
            }
            checked += 1;
        }
        // Updates: hostile shapes behind the right secret.
        let update = match round % 4 {
            0 => hostile_body(&mut rng, &["update_id", "message", "chat_member", "chat_join_request"]),
            1 => json!({"update_id": rng.next() as i64, "message": {"message_id": 1, "chat": {"id": -5, "type": "private"}, "from": {"id": -7}, "text": "/start ../../"}}).to_string(),
            2 => json!({"update_id": rng.next() as i64, "chat_member": {"chat": {"id": support::CHANNEL}, "from": {"id": 0}, "old_chat_member": {"status": 7, "user": {}}, "new_chat_member": null}}).to_string(),
            _ => json!({"update_id": rng.next() as i64, "chat_join_request": {"chat": {"id": support::CHANNEL}, "from": {"id": i64::MIN}, "invite_link": {"invite_link": "x".repeat(3000)}}}).to_string(),
        };
        let (status, text) = send(&app, "POST", "/api/telegram/webhook", None, Some(update.clone()), true).await;
        assert!(status < 500, "webhook with {update:.200} → {status} {text}");
        checked += 1;
    }
    // Hostile ids and query strings.
    for path in [
        "/api/telegram/notifications/?limit=-1",
        "/api/telegram/notifications/?limit=99999999999999999999",
        "/api/telegram/notifications/?cursor=%00%FF",
        "/api/payments/admin/pending-payments/?status=%27%3B--",
        "/api/telegram/admin/audit/?user_id=%0A",
        "/api/payments/admin/pending-payments/..%2F..%2Fx/validate/",
    ] {
        let method = if path.ends_with("validate/") { "POST" } else { "GET" };
        let (status, text) = send(&app, method, path, Some(&admin), Some("{}".into()), false).await;
        assert!((400..500).contains(&status), "{path} → {status} {text}");
        checked += 1;
    }
    assert!(checked > 300);
}

//! The bodies of the fuzz targets in `fuzz/` (run with `cargo fuzz`, see SECURITY.md), kept here
//! so that `tests/all/fuzz_corpus.rs` replays the same checks on the stable toolchain.
//!
//! - [`update`]: the Telegram update parser, as the webhook and long polling use it.
//! - [`ApiTarget`]: every API body and the webhook, through the real router on an embedded store.
//!   The first byte of the input picks the route, the second the caller, the rest is the body.
//!   Any answer ≥ 500, or a 4xx that is not JSON with an error code, panics: that is a finding.

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use telegate_core::adapters::telegram::parse_update;
use telegate_core::config::Settings;
use telegate_core::domain::UpdateKind;

use telegate::host::{Host, Options, answer};
use telegate::jwt::mint;

const JWT_SECRET: &str = "fuzz-secret-fuzz-secret-fuzz-secret-0123";
const WEBHOOK_SECRET: &str = "fuzz-webhook-secret";

/// Parses `data` as an update; whatever it is, reading it must not panic.
pub fn update(data: &[u8]) {
    if let Ok(update) = parse_update(data) {
        match update.kind {
            UpdateKind::Message(m) => drop(m.text.as_deref().map(str::len)),
            UpdateKind::ChatMember(c) => drop((c.before.is_in_chat(), c.after.is_staff())),
            UpdateKind::JoinRequest(j) => drop(j.invite_link.as_ref().map(|l| l.invite_link.len())),
            UpdateKind::PreCheckout(q) => drop(q.invoice_payload.len()),
            UpdateKind::Subscription(s) => drop(s.state.as_str()),
            UpdateKind::Other => {}
        }
    }
}

/// The routes that take a body, and the webhook.
const ROUTES: [(&str, &str); 10] = [
    ("POST", "/api/payments/pending-payments/create/"),
    ("POST", "/api/payments/admin/pending-payments/{payment}/validate/"),
    ("POST", "/api/payments/admin/pending-payments/{payment}/reject/"),
    ("POST", "/api/telegram/generate-token/"),
    ("POST", "/api/telegram/revoke-access/"),
    ("POST", "/api/telegram/notifications/{payment}/read/"),
    ("POST", "/api/telegram/admin/jobs/expire-tokens/run/"),
    ("GET", "/api/telegram/admin/job-runs/{payment}/"),
    ("POST", "/api/telegram/webhook"),
    ("GET", "/api/telegram/admin/audit/?limit=5&cursor="),
];

pub struct ApiTarget {
    runtime: tokio::runtime::Runtime,
    router: Router,
    /// No caller, a user, support, an admin.
    callers: [Option<String>; 4],
    payment: String,
    data: PathBuf,
    /// Kept: it holds the queue of the job runs the admin's requests ask for.
    _host: Host,
}

impl ApiTarget {
    /// A host on a fresh embedded store in a temporary folder, with no bot token (Telegram calls go
    /// to the local outbox) and one submitted payment to aim at.
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let data = std::env::temp_dir().join(crate::local_aws::unique("telegate-fuzz"));
        let env = [
            ("JWT_HS256_SECRET", JWT_SECRET),
            ("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("TELEGRAM_CHANNEL_ID", "-1001234567890"),
            ("TELEGRAM_BOT_USERNAME", "telegate_fuzz_bot"),
            // The same callers send thousands of requests: the abuse limits are not what is fuzzed.
            ("START_FAILURES_PER_HOUR", "10000"),
            ("TOKEN_FAILURES_PER_HOUR", "10000"),
            ("GENERATE_TOKEN_PER_HOUR", "10000"),
        ];
        let settings = Settings::from_env(&|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
            .expect("fuzz settings");
        let jwt = |sub, role| Some(mint(JWT_SECRET, sub, role, Some("fuzz@example.com"), 24 * 60).expect("a jwt"));
        let callers = [None, jwt("alice", "user"), jwt("sam", "support"), jwt("root", "admin")];
        let (host, router, payment) = runtime.block_on(async {
            let host = Host::build(settings, &data, Options { polling: false, scheduler: false })
                .await
                .expect("a host on the embedded store");
            let router = host.router();
            let create = Request::post("/api/payments/pending-payments/create/")
                .header("authorization", format!("Bearer {}", callers[1].as_deref().unwrap_or_default()))
                .header("content-type", "application/json")
                .body(Body::from(r#"{"offer_id": "monthly", "transaction_id": "TX-FUZZ-1"}"#))
                .expect("a request");
            let (status, body) = answer(&router, create).await;
            assert_eq!(status, 201, "{body}");
            (host, router, body["id"].as_str().unwrap_or_default().to_owned())
        });
        Self { runtime, router, callers, payment, data, _host: host }
    }

    /// One input: route, caller, body. Panics on a 5xx or a 4xx without a JSON error code;
    /// returns the status (none for an input too short to name a route and a caller).
    pub fn run(&self, data: &[u8]) -> Option<u16> {
        let [route, caller, body @ ..] = data else { return None };
        let (method, path) = ROUTES[usize::from(*route) % ROUTES.len()];
        let path = path.replace("{payment}", &self.payment);
        let mut request = Request::builder().method(method).uri(&path).header("content-type", "application/json");
        if let Some(jwt) = &self.callers[usize::from(*caller) % self.callers.len()] {
            request = request.header("authorization", format!("Bearer {jwt}"));
        }
        if path.ends_with("/webhook") {
            request = request.header("x-telegram-bot-api-secret-token", WEBHOOK_SECRET);
        }
        let request = request.body(Body::from(body.to_vec())).expect("a request");
        let (status, answer) = self.runtime.block_on(answer(&self.router, request));
        assert!(status < 500, "{method} {path} with {:?} → {status} {answer}", String::from_utf8_lossy(body));
        if status >= 400 {
            assert!(
                answer["error"]["code"].is_string(),
                "{method} {path} → {status} without a JSON error code: {answer}"
            );
        }
        Some(status)
    }
}

impl Default for ApiTarget {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ApiTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

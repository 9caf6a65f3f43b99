//! A real headless Chromium, driven over W3C WebDriver (chromedriver) with plain HTTP: what the
//! console's browser tests need, and no more. Chromium, chromedriver and axe-core are installed by
//! the test command (infra/browser.sh); a test that cannot start them fails, loudly.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
}

fn bin(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// Where the screenshots go (the tests' artefacts).
pub fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// axe-core's script, as infra/browser.sh installed it.
pub fn axe() -> String {
    let path = std::env::var("AXE_JS")
        .unwrap_or_else(|_| format!("{}/.axe-core/node_modules/axe-core/axe.min.js", env!("CARGO_MANIFEST_DIR")));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("axe-core is not at {path} ({e}): run the test command, or `. infra/browser.sh`"))
}

impl Browser {
    /// A fresh headless Chromium, `width` pixels wide.
    pub async fn start(width: u32) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver_bin = bin("CHROMEDRIVER_BIN", "chromedriver");
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver ({driver_bin}) does not start ({e}): run `. infra/browser.sh`"));
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.json::<Value>().await.is_ok_and(|s| s["value"]["ready"] == true)
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not come up in 10 s");
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": bin("CHROMIUM_BIN", "/usr/bin/chromium"),
                // As root, Chromium's sandbox cannot start.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},900")],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let created: Value =
            http.post(format!("{base}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let id = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {created}"));
        let browser = Self { http, session: format!("{base}/session/{id}"), driver };
        browser.command("POST", "/window/rect", json!({ "width": width, "height": 900 })).await;
        browser
    }

    async fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if answer["value"]["error"].is_string() {
            panic!("WebDriver {method} {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.command("POST", "/url", json!({ "url": url })).await;
    }

    pub async fn url(&self) -> String {
        self.command("GET", "/url", json!({})).await.as_str().unwrap().to_owned()
    }

    /// Waits (up to 10 s) until the page is one whose address ends with `suffix` and is loaded: a
    /// form sent by a key press navigates after the key's command has answered.
    pub async fn wait_for(&self, suffix: &str) {
        self.wait_until(|url| url.ends_with(suffix), suffix).await
    }

    /// Waits (up to 10 s) until the page loaded is one of the site at `base`.
    pub async fn wait_for_page_of(&self, base: &str) {
        self.wait_until(|url| url.starts_with(base), base).await
    }

    async fn wait_until(&self, arrived: impl Fn(&str) -> bool, what: &str) {
        for _ in 0..100 {
            let loaded = self.run("return document.readyState;").await == "complete";
            if loaded && arrived(&self.url().await) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the browser did not get to {what}: it is at {}", self.url().await);
    }

    pub async fn source(&self) -> String {
        self.command("GET", "/source", json!({})).await.as_str().unwrap().to_owned()
    }

    /// The first element `css` matches.
    pub async fn find(&self, css: &str) -> String {
        let found = self.command("POST", "/element", json!({ "using": "css selector", "value": css })).await;
        found.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).unwrap().to_owned()
    }

    /// Types into an element, as a keyboard would (`\u{E007}` is Enter, `\u{E004}` Tab).
    pub async fn type_into(&self, element: &str, text: &str) {
        self.command("POST", &format!("/element/{element}/value"), json!({ "text": text })).await;
    }

    /// What the page loaded from anywhere but `base` (scripts, styles, images, fetches).
    pub async fn requests_elsewhere(&self, base: &str) -> Vec<String> {
        let names = self.run("return performance.getEntriesByType('resource').map(e => e.name);").await;
        names
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|n| !n.starts_with(base))
            .map(str::to_owned)
            .collect()
    }

    /// Clicks an element, as a mouse would.
    pub async fn click(&self, element: &str) {
        self.command("POST", &format!("/element/{element}/click"), json!({})).await;
    }

    /// The page's script result (`script` may return a promise).
    pub async fn run(&self, script: &str) -> Value {
        self.command("POST", "/execute/sync", json!({ "script": script, "args": [] })).await
    }

    pub async fn screenshot(&self, name: &str) {
        let png = self.command("GET", "/screenshot", json!({})).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        std::fs::write(screenshots().join(format!("{name}.png")), bytes).unwrap();
    }

    /// What the page wrote to its console (errors, CSP violations) since the last call.
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self.command("POST", "/se/log", json!({ "type": "browser" })).await;
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// axe-core's serious and critical violations on the page, by rule.
    pub async fn accessibility_violations(&self) -> Vec<String> {
        let script = format!(
            "{}\nreturn axe.run(document, {{ resultTypes: ['violations'] }}).then(r => r.violations\
             .filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => v.id + ': ' + v.help));",
            axe()
        );
        let found = self.run(&script).await;
        found.as_array().unwrap_or_else(|| panic!("axe did not run: {found}")).iter().map(|v| v.to_string()).collect()
    }

    pub async fn close(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

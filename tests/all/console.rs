//! The console over HTTP on the local host: the one-time sign-in, the session cookie, CSRF, the
//! Content-Security-Policy and the payments queue (validate, reject). The browser tests come with
//! the rest of the console.

use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

use crate::support::TestApp;

/// A browser of its own: no redirect followed, the cookie sent by hand.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// Signs in with a fresh one-time link; the session cookie (`name=value`).
async fn sign_in(app: &TestApp) -> String {
    let link = app.running().console_link().unwrap();
    let response = browser().get(&link).send().await.unwrap();
    assert_eq!(response.status(), 303, "a session, then the payments");
    assert_eq!(response.headers()[LOCATION], "/console/payments");
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    cookie.split(';').next().unwrap().to_owned()
}

async fn page(app: &TestApp, path: &str, cookie: &str) -> (u16, String) {
    let response = browser().get(format!("{}{path}", app.base)).header(COOKIE, cookie).send().await.unwrap();
    let csp = response.headers().get(CONTENT_SECURITY_POLICY).map(|v| v.to_str().unwrap().to_owned());
    let strict =
        |c: &str| c.contains("default-src 'none'") && c.contains("script-src 'self';") && !c.contains("unsafe");
    assert!(csp.as_deref().is_some_and(strict), "{path}: {csp:?}");
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The CSRF token the page's forms carry.
fn csrf(html: &str) -> String {
    let start = html.find(r#"name="csrf" value=""#).expect("a form with its token") + r#"name="csrf" value=""#.len();
    html[start..].split('"').next().unwrap().to_owned()
}

async fn post_form(app: &TestApp, path: &str, cookie: &str, form: &[(&str, &str)]) -> (u16, String) {
    let response =
        browser().post(format!("{}{path}", app.base)).header(COOKIE, cookie).form(form).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_one_time_link_signs_in_once_and_nothing_else_opens_the_console() {
    let app = TestApp::spawn().await;
    let link = app.running().console_link().unwrap();
    assert_eq!(browser().get(&link).send().await.unwrap().status(), 303);
    assert_eq!(browser().get(&link).send().await.unwrap().status(), 401, "used");

    let (status, html) = page(&app, "/console/payments", "").await;
    assert_eq!(status, 401);
    assert!(html.contains("one-time sign-in link"), "{html}");
    let forged = "telegate_console=eyJzdWIiOiJtYWxsb3J5In0.AAAA";
    assert_eq!(page(&app, "/console/payments", forged).await.0, 401, "a cookie this host did not sign");
    // An API token is not a console session.
    let api = browser()
        .get(format!("{}/console/payments", app.base))
        .bearer_auth(app.jwt("root", "admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);

    let cookie = sign_in(&app).await;
    let (status, html) = page(&app, "/console/payments", &cookie).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("local-admin (admin)"));
    let css = browser().get(format!("{}/console/console.css", app.base)).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    // A stale session opens nothing, and its forms do nothing.
    let token = csrf(&html);
    app.advance(8 * 3600 + 60).await;
    assert_eq!(page(&app, "/console/payments", &cookie).await.0, 401, "the session ended after 8 hours");
    assert_eq!(post_form(&app, "/console/sign-out", &cookie, &[("csrf", &token)]).await.0, 401);
}

#[tokio::test]
async fn support_validates_and_rejects_from_the_queue_and_every_form_needs_its_token() {
    let app = TestApp::spawn().await;
    let buyer = app.jwt("carol", "user");
    let submit = |tx: &'static str, note: serde_json::Value| {
        let buyer = buyer.clone();
        let app = &app;
        async move {
            let body = json!({ "offer_id": "monthly", "transaction_id": tx, "user_info": note });
            let (status, payment) = app.post("/api/payments/pending-payments/create/", &buyer, body).await;
            assert_eq!(status, 201, "{payment}");
            payment["id"].as_str().unwrap().to_owned()
        }
    };
    let first = submit("TX-CONSOLE-1", json!({ "note": "<script>alert(1)</script>" })).await;
    let second = submit("TX-CONSOLE-2", json!({})).await;

    let cookie = sign_in(&app).await;
    let (_, html) = page(&app, "/console/payments", &cookie).await;
    assert!(html.contains("TX-CONSOLE-1") && html.contains("TX-CONSOLE-2"), "the queue lists both");
    assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"), "what the buyer wrote is shown, inert");
    let token = csrf(&html);
    // Found by its transaction id, as the buyer may type it again.
    let (status, found) = page(&app, "/console/payments?tx=+tx-console-2+", &cookie).await;
    assert_eq!(status, 200);
    assert!(found.contains("TX-CONSOLE-2") && !found.contains("TX-CONSOLE-1"), "{found}");
    assert_eq!(page(&app, "/console/payments?tx=TX-NOWHERE", &cookie).await.0, 404);

    // Without the form's token, or with another, nothing happens.
    let validate = format!("/console/payments/{first}/validate");
    assert_eq!(post_form(&app, &validate, &cookie, &[("admin_notes", "ok")]).await.0, 422, "no token at all");
    assert_eq!(post_form(&app, &validate, &cookie, &[("csrf", "forged")]).await.0, 403);
    assert_eq!(post_form(&app, &validate, "", &[("csrf", &token)]).await.0, 401, "no session");
    let (_, mine) = app.get("/api/payments/pending-payments/", &buyer).await;
    assert!(mine.as_array().unwrap().iter().all(|p| p["status"] == "transaction_submitted"), "{mine}");

    let (status, html) = post_form(&app, &validate, &cookie, &[("csrf", &token), ("admin_notes", "bank ok")]).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("https://t.me/telegate_fake_bot?start="), "the link, shown once: {html}");
    let (status, html) = post_form(&app, &validate, &cookie, &[("csrf", &token)]).await;
    assert_eq!(status, 409, "validated once");
    assert!(html.contains("already validated"), "{html}");

    let reject = format!("/console/payments/{second}/reject");
    assert_eq!(post_form(&app, &reject, &cookie, &[("csrf", &token), ("reason", " ")]).await.0, 400);
    let (status, _) = post_form(&app, &reject, &cookie, &[("csrf", &token), ("reason", "no such transfer")]).await;
    assert_eq!(status, 303);

    let (_, mine) = app.get("/api/payments/pending-payments/", &buyer).await;
    let status_of = |id: &str| mine.as_array().unwrap().iter().find(|p| p["id"] == id).unwrap()["status"].clone();
    assert_eq!((status_of(&first), status_of(&second)), (json!("validated"), json!("rejected")));
    let (_, audit) = app.get("/api/telegram/admin/audit/?limit=100", &app.jwt("root", "admin")).await;
    let by_console = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "user:local-admin")
        .map(|e| e["action"].as_str().unwrap())
        .collect::<Vec<_>>();
    assert!(by_console.contains(&"payment_validated") && by_console.contains(&"payment_rejected"), "{by_console:?}");

    let (_, html) = page(&app, "/console/payments", &cookie).await;
    assert!(html.contains("Nothing here."), "the queue is empty once reviewed");
    let (_, html) = page(&app, "/console/payments?status=all", &cookie).await;
    assert!(html.contains("TX-CONSOLE-1") && html.contains("no such transfer"));

    // Signing out ends the session: the cookie is cleared, and a copy of it opens nothing.
    let (status, _) = post_form(&app, "/console/sign-out", &cookie, &[("csrf", &token)]).await;
    assert_eq!(status, 200);
    assert_eq!(page(&app, "/console/payments", &cookie).await.0, 401, "a copy of a signed-out session");
    let refused = post_form(&app, &reject, &cookie, &[("csrf", &token), ("reason", "after signing out")]).await;
    assert_eq!(refused.0, 401, "its forms do nothing");
    let other = sign_in(&app).await;
    assert_eq!(page(&app, "/console/payments", &other).await.0, 200, "another session of the same account goes on");
}

/// Inside Telegram: the Mini App's launch data, signed with the bot's token, signs in the
/// channel's administrators and the listed admins as admin, the listed support as support; data
/// another bot signed, data changed on the way, stale data or an account with no role get nowhere.
#[tokio::test]
async fn inside_telegram_the_launch_data_signs_in_the_channel_s_staff_with_their_role() {
    use telegate_testkit::fake_telegram::mini_app_launch_data;
    let app = TestApp::spawn_with(&[("ADMIN_TELEGRAM_IDS", "5001"), ("SUPPORT_TELEGRAM_IDS", "5002, 5003")]).await;
    app.fake().set_member_status(5004, "administrator");
    let now = chrono::Utc::now().timestamp();
    let sign_in = |data: String| {
        let url = format!("{}/console/telegram", app.base);
        async move { browser().post(url).form(&[("launch_data", data)]).send().await.unwrap() }
    };
    for (account, role) in [(5001, "admin"), (5002, "support"), (5004, "admin")] {
        let response = sign_in(mini_app_launch_data(crate::support::BOT_TOKEN, account, now)).await;
        assert_eq!(response.status(), 303, "{account}");
        let cookie = response.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
        let (status, html) = page(&app, "/console/payments", &cookie).await;
        assert_eq!(status, 200);
        assert!(html.contains(&format!("telegram-{account} ({role})")), "{account}: {html}");
    }
    assert_eq!(sign_in(mini_app_launch_data(crate::support::BOT_TOKEN, 5999, now)).await.status(), 403, "no role");
    assert_eq!(sign_in(mini_app_launch_data("654321:another-bot", 5001, now)).await.status(), 401);
    let changed = mini_app_launch_data(crate::support::BOT_TOKEN, 5999, now).replace("5999", "5001");
    assert_eq!(sign_in(changed).await.status(), 401, "changed on the way");
    assert_eq!(sign_in(mini_app_launch_data(crate::support::BOT_TOKEN, 5001, now - 2 * 3600)).await.status(), 401);
    assert_eq!(sign_in("not launch data".into()).await.status(), 401);
}

/// A session opened inside Telegram lasts while its account keeps a console role: a channel
/// administrator demoted in the channel is signed out within minutes (the administrators are
/// trusted five minutes), and one who is also listed as support goes on with support's pages only.
#[tokio::test]
async fn a_telegram_session_ends_within_minutes_once_its_account_is_no_longer_staff() {
    use telegate_testkit::fake_telegram::mini_app_launch_data;
    let app = TestApp::spawn_with(&[("SUPPORT_TELEGRAM_IDS", "5205")]).await;
    let now = chrono::Utc::now().timestamp();
    app.fake().set_member_status(5204, "administrator");
    app.fake().set_member_status(5205, "administrator");
    let mut cookies = Vec::new();
    for account in [5204, 5205] {
        let response = browser()
            .post(format!("{}/console/telegram", app.base))
            .form(&[("launch_data", mini_app_launch_data(crate::support::BOT_TOKEN, account, now))])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{account}");
        cookies.push(response.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned());
    }
    let (demoted, support) = (&cookies[0], &cookies[1]);
    for cookie in [demoted, support] {
        assert_eq!(page(&app, "/console/jobs", cookie).await.0, 200, "an admin's page");
    }
    app.fake().set_member_status(5204, "member");
    app.fake().set_member_status(5205, "member");
    assert_eq!(page(&app, "/console/jobs", demoted).await.0, 200, "the administrators as read a minute ago");

    app.advance(6 * 60).await;
    assert_eq!(page(&app, "/console/payments", demoted).await.0, 401, "no role any more: signed out");
    let (status, html) = page(&app, "/console/payments", support).await;
    assert_eq!(status, 200);
    assert!(html.contains("telegram-5205 (support)"), "{html}");
    assert_eq!(page(&app, "/console/jobs", support).await.0, 403, "support's pages only");
}

/// `/admin` in the bot opens the console as a Mini App, for the channel's staff only (the
/// channel's administrators read once for a few minutes); the Mini App's page carries the one
/// script that posts the launch data.
#[tokio::test]
async fn admin_in_the_bot_opens_the_console_for_staff_only() {
    use crate::support::updates;
    let app = TestApp::spawn_with(&[("ADMIN_TELEGRAM_IDS", "5101"), ("CONSOLE_URL", "https://console.example/")]).await;
    app.fake().set_member_status(5102, "administrator");
    for account in [5101, 5102, 5103] {
        assert_eq!(app.webhook(updates::text(app.update_id(), account, "en", "/admin")).await, 200);
    }
    let replies = app.fake().calls_to("sendMessage");
    let to = |chat: i64| replies.iter().find(|c| c.params["chat_id"] == chat).unwrap().params.clone();
    for staff in [5101, 5102] {
        let button = &to(staff)["reply_markup"]["inline_keyboard"][0][0];
        assert_eq!(button["web_app"]["url"], "https://console.example/console/telegram", "{staff}: {button}");
    }
    let stranger = to(5103);
    assert!(stranger["reply_markup"].is_null() && stranger["text"].as_str().unwrap().contains("/status"), "{stranger}");
    let administrators = app.fake().calls_to("getChatAdministrators").len();
    assert_eq!(administrators, 1, "three /admin, the channel's administrators read once and trusted a few minutes");

    let (status, html) = page(&app, "/console/telegram", "").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"<script src="/console/telegram.js"></script>"#)
            && html.contains(r#"action="/console/telegram""#)
    );
    let script = browser().get(format!("{}/console/telegram.js", app.base)).send().await.unwrap();
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(script.text().await.unwrap().contains("tgWebAppData"));
}

/// The console in a real headless Chromium: signed in with the one-time link, the payments queue at
/// a phone's width and a desktop's (screenshots in target/console-screenshots), axe-core finds no
/// serious or critical violation, nothing lands in the browser's console (no CSP violation, no
/// error), and a payment is validated with the keyboard alone.
#[tokio::test]
async fn in_a_real_browser_the_queue_is_accessible_and_works_with_the_keyboard_alone() {
    use crate::support::browser::Browser;
    let app = TestApp::spawn_with(&[("SUPPORT_TELEGRAM_IDS", "5601")]).await;
    let buyer = app.jwt("dora", "user");
    let body = json!({ "offer_id": "monthly", "transaction_id": "TX-BROWSER-1", "user_info": { "bank": "Ada's" } });
    let (status, payment) = app.post("/api/payments/pending-payments/create/", &buyer, body).await;
    assert_eq!(status, 201, "{payment}");

    for width in [375, 1280] {
        let browser = Browser::start(width).await;
        browser.goto(&app.running().console_link().unwrap()).await;
        browser.wait_for("/console/payments").await;
        assert!(browser.source().await.contains("TX-BROWSER-1"));
        browser.screenshot(&format!("payments-{width}")).await;
        assert_eq!(browser.accessibility_violations().await, Vec::<String>::new(), "payments at {width} px");
        let overflow = browser.run("return document.documentElement.scrollWidth > window.innerWidth;").await;
        assert_eq!(overflow, json!(false), "no sideways scrolling at {width} px");
        if width == 1280 {
            // Keyboard only: the notes field, then Enter, as someone without a mouse would.
            let notes = browser.find("input[name=admin_notes]").await;
            browser.type_into(&notes, "paid in full\u{E007}").await;
            browser.wait_for("/validate").await;
            assert!(browser.source().await.contains("https://t.me/telegate_fake_bot?start="));
            browser.screenshot("validated-1280").await;
            assert_eq!(browser.accessibility_violations().await, Vec::<String>::new(), "the validated page");
        }
        for room in ["overview", "audit", "jobs", "members?q=dora"] {
            browser.goto(&format!("{}/console/{room}", app.base)).await;
            browser.wait_for(&format!("/console/{room}")).await;
            let name = room.split('?').next().unwrap();
            browser.screenshot(&format!("{name}-{width}")).await;
            assert_eq!(browser.accessibility_violations().await, Vec::<String>::new(), "{room} at {width} px");
            assert_eq!(browser.requests_elsewhere(&app.base).await, Vec::<String>::new(), "{room}: telegate's only");
        }
        if width == 1280 {
            // A job run from its page: the run's page reloads itself until the run is over.
            browser.goto(&format!("{}/console/jobs", app.base)).await;
            browser.wait_for("/console/jobs").await;
            let run = browser.find(r#"button[aria-label="Run expire-tokens now"]"#).await;
            browser.click(&run).await;
            let mut finished = false;
            for _ in 0..100 {
                if browser.url().await.contains("/console/jobs/runs/")
                    && browser.source().await.contains("<strong>done</strong>")
                {
                    finished = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            assert!(finished, "the run's page showed the run done: {}", browser.source().await);
            browser.screenshot("job-run-1280").await;
        }
        assert_eq!(browser.console_errors().await, Vec::<String>::new(), "the browser's console at {width} px");
        browser.close().await;
    }
    let (_, mine) = app.get("/api/payments/pending-payments/", &buyer).await;
    assert_eq!(mine[0]["status"], "validated", "{mine}");

    // Inside Telegram: the Mini App's page reads the launch data from the URL's fragment, as
    // Telegram puts it there, and its one script signs the account in.
    let browser = Browser::start(375).await;
    let data = telegate_testkit::fake_telegram::mini_app_launch_data(
        crate::support::BOT_TOKEN,
        5601,
        chrono::Utc::now().timestamp(),
    );
    let fragment = serde_urlencoded::to_string([("tgWebAppData", data.as_str()), ("tgWebAppVersion", "8.0")]).unwrap();
    browser.goto(&format!("{}/console/telegram#{fragment}", app.base)).await;
    browser.wait_for("/console/payments").await;
    assert!(browser.source().await.contains("telegram-5601 (support)"));
    browser.screenshot("mini-app-375").await;
    assert_eq!(browser.console_errors().await, Vec::<String>::new(), "the Mini App's page");
    browser.close().await;
    for name in
        ["payments-375", "payments-1280", "validated-1280", "overview-375", "audit-375", "jobs-1280", "members-375"]
    {
        let shot = crate::support::browser::screenshots().join(format!("{name}.png"));
        assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000), "{name}.png written");
    }
}

/// Admins read the audit log and run jobs from the console; support sees the payments queue only:
/// the admin rooms answer them 403, and the run they might post is not started.
#[tokio::test]
async fn admins_read_the_audit_log_and_run_jobs_and_support_is_kept_to_the_payments() {
    use telegate_testkit::fake_telegram::mini_app_launch_data;
    let app = TestApp::spawn_with(&[("SUPPORT_TELEGRAM_IDS", "5202")]).await;
    let now = chrono::Utc::now().timestamp();
    let data = mini_app_launch_data(crate::support::BOT_TOKEN, 5202, now);
    let response =
        browser().post(format!("{}/console/telegram", app.base)).form(&[("launch_data", data)]).send().await.unwrap();
    let support = response.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let (status, html) = page(&app, "/console/payments", &support).await;
    assert_eq!(status, 200);
    assert!(!html.contains("/console/audit") && !html.contains("/console/jobs"), "no admin rooms in support's menu");
    assert_eq!(page(&app, "/console/audit", &support).await.0, 403);
    assert_eq!(page(&app, "/console/jobs", &support).await.0, 403);
    let token = csrf(&html);
    assert_eq!(post_form(&app, "/console/jobs/expire-tokens/run", &support, &[("csrf", &token)]).await.0, 403);
    // Members: support reads a file, and changes nothing in it.
    app.member("erin", "TX-SUPPORT-1", 5290).await;
    let (status, html) = page(&app, "/console/members?q=5290", &support).await;
    assert_eq!(status, 200);
    assert!(html.contains("Member erin") && !html.contains("Revoke access"), "read-only for support");
    let revoke = [("csrf", token.as_str()), ("user", "erin"), ("reason", "x"), ("confirm", "yes")];
    assert_eq!(post_form(&app, "/console/members/revoke", &support, &revoke).await.0, 403);
    assert_eq!(app.status_of("erin").await["has_active_subscription"], true);

    let admin = sign_in(&app).await;
    let (status, html) = page(&app, "/console/audit", &admin).await;
    assert_eq!(status, 200, "{html}");
    let (status, html) = page(&app, "/console/jobs", &admin).await;
    assert_eq!(status, 200);
    assert!(html.contains("expire-subscriptions") && html.contains("Run now"));
    let token = csrf(&html);
    let response = browser()
        .post(format!("{}/console/jobs/expire-tokens/run", app.base))
        .header(COOKIE, &admin)
        .form(&[("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let run = response.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(run.starts_with("/console/jobs/runs/"), "{run}");
    let mut done = false;
    for _ in 0..100 {
        let (status, html) = page(&app, &run, &admin).await;
        assert_eq!(status, 200);
        if html.contains("<strong>done</strong>") {
            assert!(!html.contains("http-equiv=\"refresh\""), "a finished run stops reloading");
            done = true;
            break;
        }
        assert!(html.contains("http-equiv=\"refresh\""), "a run still going reloads itself");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(done, "the run finished");
    let (_, html) = page(&app, "/console/jobs", &admin).await;
    assert!(html.contains("every hour at :"), "each job's schedule: {html}");
    let latest = html.split("Latest runs").nth(1).expect("the latest runs");
    assert!(latest.contains("<td>expire-tokens</td><td>user:local-admin</td>"), "the run, by whom: {latest}");
    let (_, html) = page(&app, "/console/audit?user=", &admin).await;
    assert!(html.contains("user:local-admin"), "the console's actions are in the audit log");
}

/// A member's file: support finds a member by Telegram id or web user and reads it; admins revoke,
/// reinstate and refund a Stars payment from it, each only once its box is ticked.
#[tokio::test]
async fn members_are_found_by_telegram_id_and_admins_revoke_reinstate_and_refund_with_a_confirmation() {
    let app = crate::stars::stars_app(false).await;
    app.member("alice", "TX-MEMBER-1", 7301).await;
    let charge = crate::stars::pay(&app, 7302, "pass").await;
    crate::stars::join(&app, 7302).await;

    let admin = sign_in(&app).await;
    // A Stars payment, found by the charge id Telegram gave the buyer.
    let (status, found) = page(&app, &format!("/console/payments?tx={charge}"), &admin).await;
    assert_eq!(status, 200);
    assert!(found.contains(&format!("stars:{charge}")), "{found}");
    let (status, html) = page(&app, "/console/members?q=7301", &admin).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Member alice") && html.contains("TX-MEMBER-1") && html.contains("in the channel"), "{html}");
    let sent = html.split("Notifications sent</h3>").nth(1).unwrap().split("<h3>").next().unwrap();
    assert!(sent.contains("payment_verified") && sent.contains("access_granted"), "what alice was told: {sent}");
    assert_eq!(page(&app, "/console/members?q=alice", &admin).await.0, 200, "by web user too");
    let by_name = page(&app, "/console/members?q=%40user7301", &admin).await;
    assert!(by_name.0 == 200 && by_name.1.contains("Member alice"), "by @username: {}", by_name.1);
    assert_eq!(page(&app, "/console/members?q=%40nobody_here", &admin).await.0, 404);
    assert_eq!(page(&app, "/console/members?q=7399", &admin).await.0, 404);
    let token = csrf(&html);

    // Revoke: refused until the box is ticked.
    let form = |confirm: bool| {
        let mut f = vec![("csrf", token.clone()), ("user", "alice".to_owned()), ("reason", "chargeback".to_owned())];
        if confirm {
            f.push(("confirm", "yes".to_owned()));
        }
        f
    };
    let post = |path: String, fields: Vec<(&'static str, String)>| {
        let admin = admin.clone();
        let url = format!("{}{path}", app.base);
        async move { browser().post(url).header(COOKIE, admin).form(&fields).send().await.unwrap() }
    };
    assert_eq!(post("/console/members/revoke".into(), form(false)).await.status(), 400);
    assert_eq!(app.status_of("alice").await["has_active_subscription"], true, "nothing done");
    let revoked = post("/console/members/revoke".into(), form(true)).await;
    assert_eq!(revoked.status(), 303);
    assert_eq!(revoked.headers()[LOCATION], "/console/members?q=alice");
    app.drain().await;
    assert_eq!(app.status_of("alice").await["has_active_subscription"], false);
    let (_, html) = page(&app, "/console/members?q=alice", &admin).await;
    assert!(html.contains("revoked") && html.contains("Reinstate"), "{html}");

    // The Stars buyer's payment, refunded from their file.
    let (_, html) = page(&app, "/console/members?q=7302", &admin).await;
    let user = html.split("Member ").nth(1).unwrap().split('<').next().unwrap().to_owned();
    let refund_action =
        html.split("action=\"/console/payments/").nth(1).expect("a refund form").split('"').next().unwrap();
    let refund_path = format!("/console/payments/{refund_action}");
    let fields = vec![
        ("csrf", token.clone()),
        ("user", user.clone()),
        ("reason", "asked for".to_owned()),
        ("confirm", "yes".to_owned()),
    ];
    assert_eq!(post(refund_path, fields).await.status(), 303);
    app.drain().await;
    assert_eq!(app.fake().calls_to("refundStarPayment").len(), 1, "the Stars go back");
    let (_, html) = page(&app, &format!("/console/members?q={user}"), &admin).await;
    assert!(html.contains("refunded"), "{html}");

    // Alice's bank sent her money back: her manual payment's refund recorded from her file.
    let (_, html) = page(&app, "/console/members?q=alice", &admin).await;
    assert!(html.contains("Record its refund, paid back elsewhere"), "{html}");
    let action = html.split("action=\"/console/payments/").nth(1).expect("a refund form").split('"').next().unwrap();
    let fields = vec![
        ("csrf", token),
        ("user", "alice".to_owned()),
        ("reason", "bank".to_owned()),
        ("confirm", "yes".to_owned()),
    ];
    assert_eq!(post(format!("/console/payments/{action}"), fields).await.status(), 303);
    assert_eq!(app.fake().calls_to("refundStarPayment").len(), 1, "nothing asked of Telegram");
    let (_, refunded) =
        app.get("/api/payments/admin/pending-payments/?status=refunded", &app.jwt("s", "support")).await;
    assert!(refunded.as_array().unwrap().iter().any(|p| p["transaction_id"] == "TX-MEMBER-1"), "{refunded}");
}

/// The overview's numbers and charts are the statistics the API returns.
#[tokio::test]
async fn the_overview_shows_the_numbers_and_charts_of_the_stats() {
    let app = crate::stars::stars_app(false).await;
    crate::stars::pay(&app, 7401, "pass").await;
    crate::stars::join(&app, 7401).await;
    app.member("frank", "TX-OVERVIEW-1", 7402).await;
    let body = json!({ "offer_id": "monthly", "transaction_id": "TX-OVERVIEW-WAITING" });
    assert_eq!(app.post("/api/payments/pending-payments/create/", &app.jwt("gus", "user"), body).await.0, 201);
    let (status, stats) = app.get("/api/telegram/admin/stats/", &app.jwt("root", "admin")).await;
    assert_eq!(status, 200);

    let admin = sign_in(&app).await;
    let (status, html) = page(&app, "/console/overview", &admin).await;
    assert_eq!(status, 200, "{html}");
    let number = |label: &str| {
        let after = html.split(&format!("<dt>{label}</dt><dd>")).nth(1).unwrap_or_else(|| panic!("{label}: {html}"));
        after.split('<').next().unwrap().parse::<i64>().unwrap()
    };
    assert_eq!(number("Members active"), stats["members"]["active"].as_i64().unwrap());
    assert_eq!(number("Payments to review"), 1, "gus's; the member's was validated");
    assert_eq!(number("Stars, net"), stats["stars"]["net_total"].as_i64().unwrap());
    assert_eq!(number("Stars, net"), 100);
    // This month's bar of the revenue chart carries this month's net revenue.
    let this_month = &stats["stars"]["months"][0];
    let month = this_month["month"].as_str().unwrap();
    let chart =
        html.split("Stars revenue per month, net</figcaption>").nth(1).unwrap().split("</figure>").next().unwrap();
    let bar = chart.split(&format!(r#"data-at="{month}" data-value=""#)).nth(1).expect("this month's bar");
    assert_eq!(bar.split('"').next().unwrap().parse::<i64>().unwrap(), this_month["net"].as_i64().unwrap());
    assert_eq!(chart.matches("<rect").count(), 12, "twelve months");

    // Health: the bot's rights, Telegram's webhook, the backlog and the jobs, as they are.
    let health = html.split(r#"aria-label="Health""#).nth(1).expect("the health panel");
    assert!(health.contains("administrator: invites and bans"), "{health}");
    assert!(health.contains("<dd>none</dd>"), "no delivery error yet: {health}");
    assert!(health.contains("<dt>Jobs</dt><dd>on time</dd>"), "the host ran each at its start: {health}");
    assert!(health.contains("<dt>Channel changes waiting</dt><dd>0</dd>"), "{health}");
    app.fake().set_bot_rights(true, false);
    app.fake().set_webhook_error("Wrong response from the webhook: 502 Bad Gateway");
    let (_, html) = page(&app, "/console/overview", &admin).await;
    assert!(html.contains("administrator: invites and bans"), "what Telegram said is kept a minute");
    app.advance(61).await;
    let (_, html) = page(&app, "/console/overview", &admin).await;
    let health = html.split(r#"aria-label="Health""#).nth(1).unwrap();
    assert!(health.contains("missing rights:</strong> ban users"), "{health}");
    assert!(health.contains("<strong>Wrong response from the webhook: 502 Bad Gateway</strong>"), "{health}");
}

/// The exports stream every row, page after page of the store, as CSV a spreadsheet reads safely.
#[tokio::test]
async fn the_csv_exports_have_every_row_and_no_formula() {
    let app = TestApp::spawn().await;
    let buyer = app.jwt("gina", "user");
    for i in 0..130 {
        let tx = if i == 0 { "=HYPERLINK(1)".to_owned() } else { format!("TX-EXPORT-{i:03}") };
        let body = json!({ "offer_id": "monthly", "transaction_id": tx });
        let (status, answer) = app.post("/api/payments/pending-payments/create/", &buyer, body).await;
        assert_eq!(status, 201, "{answer}");
    }
    app.member("hugo", "TX-EXPORT-MEMBER", 7501).await;
    let admin = sign_in(&app).await;
    let download = |path: &'static str| {
        let (url, admin) = (format!("{}{path}", app.base), admin.clone());
        async move {
            let response = browser().get(url).header(COOKIE, admin).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
            response.text().await.unwrap()
        }
    };
    let payments = download("/console/export/payments.csv").await;
    let lines: Vec<&str> = payments.lines().collect();
    assert_eq!(lines[0], "id,user_id,email,offer_id,transaction_id,status,created_at,updated_at");
    assert_eq!(lines.len(), 1 + 131, "every payment, over two pages of the store");
    let ids: std::collections::BTreeSet<&str> = lines[1..].iter().map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(ids.len(), 131, "each once");
    assert!(payments.contains(",'=HYPERLINK(1),"), "a formula is written as text");
    let members = download("/console/export/members.csv").await;
    assert_eq!(members.lines().count(), 2, "{members}");
    assert!(members.contains(",hugo,7501,"), "{members}");
    // Without a session, nothing is exported.
    let refused = browser().get(format!("{}/console/export/payments.csv", app.base)).send().await.unwrap();
    assert_eq!(refused.status(), 401);
}

/// In a browser, with the identity provider the API trusts: off to the provider with a state and
/// a PKCE challenge, back with a code, which telegate exchanges (with its verifier) for a token the
/// API would accept; its groups give the role. A way back with another state, without the cookie
/// the browser left with, or with a code already used signs no one in; an account of the `user`
/// role is refused.
#[tokio::test]
async fn in_a_browser_the_identity_provider_signs_in_support_and_admins_with_their_roles() {
    use crate::support::idp::{CLIENT_ID, Idp};
    let idp = Idp::start().await;
    let settings = idp.settings();
    let app = TestApp::spawn_with(&settings.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
    let (status, html) = page(&app, "/console/payments", "").await;
    assert_eq!(status, 401);
    assert!(html.contains(r#"href="/console/oidc""#), "the way in with the provider: {html}");

    // Leaves for the provider: its answer, the cookie it sets, the provider's redirect back.
    let leave = || async {
        let response = browser().get(format!("{}/console/oidc", app.base)).send().await.unwrap();
        assert_eq!(response.status(), 303);
        let pending = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/console/oidc", "Max-Age=600"] {
            assert!(pending.contains(attribute), "{attribute} in {pending}");
        }
        let to = response.headers()[LOCATION].to_str().unwrap().to_owned();
        assert!(to.starts_with(&format!("{}/authorize?", idp.base)), "{to}");
        let back = idp.sign_in_at(&to).await;
        (pending.split(';').next().unwrap().to_owned(), back)
    };
    let come_back = |url: String, cookie: String| async move {
        let response = browser().get(url).header(COOKIE, cookie).send().await.unwrap();
        let status = response.status().as_u16();
        let cookies: Vec<String> =
            response.headers().get_all(SET_COOKIE).iter().map(|c| c.to_str().unwrap().to_owned()).collect();
        (status, cookies, response.text().await.unwrap())
    };

    idp.sign_in_as("olga", &["admin"]);
    let (pending, back) = leave().await;
    let asked = idp.authorize_requests().pop().unwrap();
    assert_eq!(asked["client_id"], CLIENT_ID);
    assert_eq!((asked["code_challenge_method"].as_str(), asked["response_type"].as_str()), ("S256", "code"));
    assert_eq!(asked["redirect_uri"], format!("{}/console/oidc/callback", app.base));
    assert_eq!(asked["code_challenge"].len(), 43, "SHA-256 of the verifier, base64url");
    assert!(back.starts_with(&format!("{}/console/oidc/callback?code=", app.base)), "{back}");

    // Back with another state, without the cookie the browser left with, or with a changed one:
    // no session, and the code is not even exchanged.
    let forged_state = back.split("&state=").next().unwrap().to_owned() + "&state=forged";
    assert_eq!(come_back(forged_state, pending.clone()).await.0, 401);
    assert_eq!(come_back(back.clone(), String::new()).await.0, 401, "not the browser that left");
    assert_eq!(come_back(back.clone(), format!("{pending}x")).await.0, 401, "a changed cookie");

    let (status, cookies, html) = come_back(back.clone(), pending.clone()).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"content="0;url=/console/payments""#), "on to the console from a page of ours");
    let session = cookies.iter().find(|c| c.starts_with("telegate_console=")).expect("a session");
    assert!(session.contains("SameSite=Strict") && session.contains("HttpOnly"), "{session}");
    assert!(cookies.iter().any(|c| c.starts_with("telegate_oidc=;") && c.contains("Max-Age=0")), "{cookies:?}");
    let session = session.split(';').next().unwrap().to_owned();
    let (status, html) = page(&app, "/console/payments", &session).await;
    assert_eq!(status, 200);
    assert!(html.contains("olga (admin)"), "{html}");
    assert_eq!(page(&app, "/console/audit", &session).await.0, 200, "an admin's room");
    assert_eq!(come_back(back, pending).await.0, 401, "a code works once");

    // Support, by its group; an account of the user role is refused.
    idp.sign_in_as("pia", &["support"]);
    let (pending, back) = leave().await;
    let (status, cookies, _) = come_back(back, pending).await;
    assert_eq!(status, 200);
    let session = cookies.iter().find(|c| c.starts_with("telegate_console=")).unwrap().split(';').next().unwrap();
    assert!(page(&app, "/console/payments", session).await.1.contains("pia (support)"));
    assert_eq!(page(&app, "/console/audit", session).await.0, 403);
    // The provider's role is not read again: the session ends with the provider's token (an
    // hour here), not after the console's 8 hours, and the next sign-in asks the provider anew.
    let set = cookies.iter().find(|c| c.starts_with("telegate_console=")).unwrap();
    let max_age: i64 = set.split("Max-Age=").nth(1).unwrap().split(';').next().unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&max_age), "{set}");
    app.advance(3601).await;
    assert_eq!(page(&app, "/console/payments", session).await.0, 401, "ended with the provider's token");
    idp.sign_in_as("quinn", &[]);
    let (pending, back) = leave().await;
    let (status, cookies, _) = come_back(back, pending).await;
    assert_eq!(status, 403, "a buyer's account opens no console");
    assert!(!cookies.iter().any(|c| c.starts_with("telegate_console=")), "{cookies:?}");
}

/// The same in a real headless Chromium: the sign-in page's link, the provider, and back to the
/// payments signed in — the session cookie (SameSite=Strict) goes with the first page after the
/// provider's redirect because a page of ours navigates there.
#[tokio::test]
async fn in_a_real_browser_the_identity_provider_signs_in_through_the_sign_in_page() {
    use crate::support::browser::Browser;
    use crate::support::idp::Idp;
    let idp = Idp::start().await;
    let settings = idp.settings();
    let app = TestApp::spawn_with(&settings.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
    idp.sign_in_as("rosa", &["support"]);
    let browser = Browser::start(1280).await;
    browser.goto(&format!("{}/console/payments", app.base)).await;
    browser.wait_for("/console/payments").await;
    browser.screenshot("sign-in-1280").await;
    assert_eq!(browser.accessibility_violations().await, Vec::<String>::new(), "the sign-in page");
    let before = browser.console_errors().await;
    assert!(before.len() == 1 && before[0].contains("401"), "only the page's own status: {before:?}");
    let link = browser.find(r#"a[href="/console/oidc"]"#).await;
    browser.click(&link).await;
    // The provider's page, on its own site: its button sends the browser back.
    browser.wait_for_page_of(&idp.base).await;
    let button = browser.find("button[type=submit]").await;
    browser.click(&button).await;
    browser.wait_for("/console/payments").await;
    assert!(browser.source().await.contains("rosa (support)"), "signed in, on the payments");
    assert_eq!(browser.console_errors().await, Vec::<String>::new(), "nothing since the sign-in page");
    browser.close().await;
}

/// The audit log by kind (refused links, leaked invites, strangers…), on its own key, and the
/// suspicious attempts of the last 24 hours drawn hour by hour, as the statistics count them.
#[tokio::test]
async fn the_audit_log_filters_by_kind_and_charts_the_suspicious_attempts_per_hour() {
    use crate::support::updates;
    let app = TestApp::spawn().await;
    app.member("ivy", "TX-AUDIT-1", 7601).await;
    for account in [7602, 7603] {
        let start = updates::text(app.update_id(), account, "fr", "/start not-a-token-anyone-was-given");
        assert_eq!(app.webhook(start).await, 200);
    }
    let admin_jwt = app.jwt("root", "admin");
    let (status, api) = app.get("/api/telegram/admin/audit/?action=token_refused", &admin_jwt).await;
    assert_eq!(status, 200, "{api}");
    let refused = api.as_array().unwrap();
    assert_eq!(refused.len(), 2, "{api}");
    assert!(refused.iter().all(|e| e["action"] == "token_refused"));
    let (status, _) = app.get("/api/telegram/admin/audit/?action=token_refused&user_id=ivy", &admin_jwt).await;
    assert_eq!(status, 400, "one filter at a time");
    assert_eq!(app.get("/api/telegram/admin/audit/?action=nonsense", &admin_jwt).await.0, 400);

    let admin = sign_in(&app).await;
    let (status, html) = page(&app, "/console/audit?action=token_refused", &admin).await;
    assert_eq!(status, 200, "{html}");
    let kinds: Vec<&str> =
        html.split("<dt>What</dt><dd>").skip(1).map(|rest| rest.split('<').next().unwrap()).collect();
    assert_eq!(kinds, ["token_refused", "token_refused"], "only that kind");
    assert!(html.contains(r#"href="/console/audit?action=token_refused" aria-current="page""#));
    let (_, everything) = page(&app, "/console/audit", &admin).await;
    assert!(everything.contains("<dd>payment_validated</dd>"), "everything, unfiltered");

    // This hour's bar carries this hour's attempts, as the statistics count them.
    let (_, stats) = app.get("/api/telegram/admin/stats/", &admin_jwt).await;
    let this_hour = &stats["attempts"]["by_hour"][0];
    assert_eq!(this_hour["refused_tokens"], 2, "{stats}");
    let chart = html.split("last 24 hours</figcaption>").nth(1).unwrap().split("</figure>").next().unwrap();
    assert_eq!(chart.matches("<rect").count(), 24, "a day, hour by hour");
    let hour = this_hour["hour"].as_str().unwrap();
    let bar = chart.split(&format!(r#"data-at="{hour}" data-value=""#)).nth(1).expect("this hour's bar");
    assert_eq!(bar.split('"').next().unwrap(), "2");
}

/// The members active over the last 12 months: each month as the daily expiry run last saw it,
/// this month as it is now; the overview draws the same numbers.
#[tokio::test]
async fn the_overview_charts_the_members_active_month_by_month() {
    let app = TestApp::spawn().await;
    app.member("jude", "TX-ACTIVE-1", 7701).await;
    app.member("kate", "TX-ACTIVE-2", 7702).await;
    app.run_job("expire-subscriptions").await;
    let admin_jwt = app.jwt("root", "admin");
    let (_, before) = app.get("/api/telegram/admin/stats/", &admin_jwt).await;
    let month = before["members_by_month"][0]["month"].as_str().unwrap().to_owned();
    assert_eq!(before["members_by_month"][0]["active"], 2, "{before}");

    // Forty days on: both periods ended, and the month of the run keeps its two.
    app.advance(40 * 86_400).await;
    app.run_job("expire-subscriptions").await;
    app.drain().await;
    let (_, after) = app.get("/api/telegram/admin/stats/", &admin_jwt).await;
    let by_month = after["members_by_month"].as_array().unwrap();
    assert_eq!(by_month[0]["active"], 0, "none active now: {after}");
    let then = by_month.iter().find(|m| m["month"] == month.as_str()).expect("the month of the first run");
    assert_eq!(then["active"], 2);

    let cookie = sign_in(&app).await;
    let (_, html) = page(&app, "/console/overview", &cookie).await;
    let chart = html.split("Members active per month</figcaption>").nth(1).unwrap().split("</figure>").next().unwrap();
    assert_eq!(chart.matches("<rect").count(), 12);
    assert!(chart.contains(&format!(r#"data-at="{month}" data-value="2""#)), "{chart}");
}

/// Web revenue: each payment support validates counts its offer's web price, once, in the month
/// validated; the overview shows this month's and draws the months.
#[tokio::test]
async fn validated_web_payments_count_their_offer_s_price_in_the_web_revenue() {
    let offers =
        r#"{"monthly": {"name": "Monthly", "days": 30, "price_cents": 990}, "free": {"name": "Free", "days": 7}}"#;
    let app = TestApp::spawn_with(&[("OFFERS", offers)]).await;
    let support = app.jwt("support", "support");
    let mut ids = Vec::new();
    for (tx, offer) in [("TX-WEB-1", "monthly"), ("TX-WEB-2", "monthly"), ("TX-WEB-3", "free")] {
        let body = json!({ "offer_id": offer, "transaction_id": tx });
        let (status, p) = app.post("/api/payments/pending-payments/create/", &app.jwt("lena", "user"), body).await;
        assert_eq!(status, 201, "{p}");
        ids.push(p["id"].clone());
        let path = format!("/api/payments/admin/pending-payments/{}/validate/", p["id"].as_str().unwrap());
        assert_eq!(app.post(&path, &support, json!({})).await.0, 200);
        assert_eq!(app.post(&path, &support, json!({})).await.0, 409, "validated once, counted once");
    }
    let (_, stats) = app.get("/api/telegram/admin/stats/", &app.jwt("root", "admin")).await;
    assert_eq!(stats["web"]["revenue_total_cents"], 1980, "two at 9.90, the free one at nothing: {stats}");
    let this_month = &stats["web"]["months"][0];
    assert_eq!((this_month["revenue_cents"].as_i64(), this_month["payments"].as_i64()), (Some(1980), Some(2)));

    let admin = sign_in(&app).await;
    let (_, html) = page(&app, "/console/overview", &admin).await;
    assert!(html.contains("<dt>Web this month</dt><dd>19.80</dd>"), "{html}");
    let month = this_month["month"].as_str().unwrap();
    let chart = html.split("Web revenue per month, in cents</figcaption>").nth(1).unwrap();
    assert!(chart.split("</figure>").next().unwrap().contains(&format!(r#"data-at="{month}" data-value="1980""#)));

    // The bank gave one back: its refund recorded, the net is what was kept.
    let body = json!({"payment_id": ids[0], "reason": "bank"});
    assert_eq!(app.post("/api/telegram/admin/refund/", &app.jwt("root", "admin"), body).await.0, 200);
    let (_, html) = page(&app, "/console/overview", &admin).await;
    assert!(html.contains("<dt>Web this month</dt><dd>19.80</dd>"), "gross: {html}");
    assert!(html.contains("<dt>Web this month, net</dt><dd>9.90</dd>"), "net: {html}");
}

/// Revoke and refund in a real headless Chromium, as an admin does it: the reason typed, the box
/// ticked, the button pressed; the member is out, a bank's refund is recorded and the Stars go
/// back.
#[tokio::test]
async fn in_a_real_browser_an_admin_revokes_a_member_records_a_banks_refund_and_refunds_a_stars_payment() {
    use crate::support::browser::Browser;
    let app = crate::stars::stars_app(false).await;
    app.member("mona", "TX-BROWSER-REVOKE", 7811).await;
    crate::stars::pay(&app, 7812, "pass").await;
    crate::stars::join(&app, 7812).await;
    let browser = Browser::start(1280).await;
    browser.goto(&app.running().console_link().unwrap()).await;
    browser.wait_for("/console/payments").await;

    // Revoke: the form of the member's file.
    browser.goto(&format!("{}/console/members?q=7811", app.base)).await;
    browser.wait_for("/console/members?q=7811").await;
    let form = r#"form[action="/console/members/revoke"]"#;
    browser.type_into(&browser.find(&format!("{form} input[name=reason]")).await, "chargeback").await;
    browser.click(&browser.find(&format!("{form} input[name=confirm]")).await).await;
    browser.click(&browser.find(&format!("{form} button")).await).await;
    browser.wait_for("/console/members?q=mona").await;
    app.drain().await;
    assert_eq!(app.status_of("mona").await["has_active_subscription"], false, "revoked from the browser");
    assert!(!app.calls_for_user("banChatMember", 7811).is_empty(), "and removed from the channel");

    // Her bank gave her money back: the manual payment's refund recorded from her file.
    let form = r#"form[action$="/refund"]"#;
    browser.type_into(&browser.find(&format!("{form} input[name=reason]")).await, "paid back by the bank").await;
    browser.click(&browser.find(&format!("{form} input[name=confirm]")).await).await;
    browser.click(&browser.find(&format!("{form} button")).await).await;
    let support = app.jwt("s", "support");
    let path = "/api/payments/admin/pending-payments/?status=refunded";
    let refunded = crate::support::eventually(async || app.get(path, &support).await.1, |r| r[0].is_object()).await;
    assert_eq!(refunded[0]["transaction_id"], "TX-BROWSER-REVOKE", "recorded from the browser: {refunded}");
    assert!(app.fake().calls_to("refundStarPayment").is_empty(), "nothing asked of Telegram");

    // Refund: the Stars buyer's payment.
    browser.goto(&format!("{}/console/members?q=7812", app.base)).await;
    browser.wait_for("/console/members?q=7812").await;
    let form = r#"form[action$="/refund"]"#;
    browser.type_into(&browser.find(&format!("{form} input[name=reason]")).await, "asked for").await;
    browser.click(&browser.find(&format!("{form} input[name=confirm]")).await).await;
    browser.click(&browser.find(&format!("{form} button")).await).await;
    // Back to the buyer's file, under their web user id.
    for _ in 0..100 {
        if !browser.url().await.ends_with("q=7812") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.drain().await;
    assert_eq!(app.fake().calls_to("refundStarPayment").len(), 1, "the Stars go back");
    browser.goto(&format!("{}/console/members?q=7812", app.base)).await;
    browser.wait_for("/console/members?q=7812").await;
    assert!(browser.source().await.contains("refunded"), "the file says so");
    assert_eq!(browser.accessibility_violations().await, Vec::<String>::new(), "a member's file after a refund");
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
    browser.close().await;
}

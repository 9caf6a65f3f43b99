//! Outages that must lose nothing: Telegram down for three minutes during the night's expiry run
//! dead-letters no removal, and the ended member is out once it is back (the retry policy's
//! budget is longer than the outage). On the local host, whose queue runs on the app's clock.

use std::time::Duration;

use crate::support::TestApp;

/// The app's clock moves `seconds` in `step`s, the queue given `pause` at each to try what is due.
async fn let_time_pass(app: &TestApp, seconds: i64, step: i64, pause: Duration) {
    for _ in 0..seconds / step {
        app.advance(step).await;
        tokio::time::sleep(pause).await;
    }
}

#[tokio::test]
async fn a_three_minute_telegram_outage_during_the_expiry_loses_no_removal_on_the_local_host() {
    // Telegram does not answer: each call is given up at the client's timeout (1 s here, so the
    // test is quick; 10 s by default). A 5xx would be the same to the queue, but teloxide waits
    // 10 s after each before answering.
    let app = TestApp::spawn_with(&[("TELEGRAM_TIMEOUT_SECONDS", "1")]).await;
    let members = [9401];
    for (i, account) in members.iter().enumerate() {
        app.member(&format!("outage-{i}"), &format!("TX-OUTAGE-{i}"), *account).await;
    }
    app.fake().set_outage(true);
    // Past the end: the expiry runs and queues the three removals, which meet the outage.
    app.advance(31 * 86_400).await;
    // Three minutes, in steps long enough for the queue to try what became due (the removal and
    // the notice, a second each).
    let_time_pass(&app, 180, 20, Duration::from_millis(2_300)).await;
    let tried = app.fake().calls_to("banChatMember").len();
    assert!(tried >= 3, "the removal was tried during the outage, and failed: {tried} calls");
    assert!(members.iter().all(|m| app.fake().member_status(*m) == "member"), "nobody removed while down");
    assert!(app.running().effects.dead_letters().await.unwrap().is_empty(), "nothing given up during the outage");

    app.fake().set_outage(false);
    let_time_pass(&app, 300, 30, Duration::from_millis(100)).await;
    app.drain().await;
    assert!(app.running().effects.dead_letters().await.unwrap().is_empty(), "nothing dead-lettered");
    for account in members {
        assert_eq!(app.fake().member_status(account), "kicked", "{account} removed once Telegram was back");
    }
}

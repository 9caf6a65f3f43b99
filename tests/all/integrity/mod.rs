//! The store is the one truth about who may be in the channel: a queued effect carries out the
//! membership as it is when the effect runs, and a ban is never lost between commit and queue.
//! One file per subject.

mod access_rules;
mod edges;
mod lost_between_commit_and_queue;
mod recovery;
mod stale_effects;
mod transaction_ids;
mod whole_flow_under_faults;

use std::time::Duration;

use crate::support::TestApp;

const ALICE: i64 = 8201;

/// Waits (boundedly: 30 s, for a stand-in busy with the other tests of the binary) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    let (status, entries) = app.get("/api/telegram/admin/audit/?limit=100", &app.jwt("root", "admin")).await;
    assert_eq!(status, 200);
    entries.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect()
}

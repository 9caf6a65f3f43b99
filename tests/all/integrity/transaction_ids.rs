//! One transaction, however its id is spelt.

use serde_json::json;

use crate::support::{self, TestApp, on_store};

/// Transaction ids that only look different (case, spaces, invisible characters, compatibility
/// forms) are one transaction; the payer's own spelling is kept for display.
async fn look_alike_transaction_ids_are_one_transaction(app: TestApp) {
    let create = |who: &'static str, tx: &'static str| {
        let jwt = app.jwt(who, "user");
        let app = &app;
        async move {
            app.post("/api/payments/pending-payments/create/", &jwt, json!({"offer_id": "m", "transaction_id": tx}))
                .await
        }
    };
    let (status, _) = create("alice", "TX-1").await;
    assert_eq!(status, 201);
    for alike in ["tx-1", "TX-1\u{200B}", "TX\u{00A0}-1", "ＴＸ－１", "T X-1", "\u{FEFF}TX-1"] {
        let (status, body) = create("bob", alike).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("transaction_id_taken")), "{alike:?}");
    }
    let (status, body) = create("bob", "\u{200B}\u{200B}").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_input")), "nothing visible: {body}");
    let (_, mine) = app.get("/api/payments/pending-payments/", &app.jwt("alice", "user")).await;
    assert_eq!(mine[0]["transaction_id"], "TX-1", "shown as typed");

    // Support may correct the spelling while validating: the same key is no conflict. A
    // correction into a Stars charge's form is refused as the buyer's own would be, and the
    // payment waits on, unchanged.
    let (_, p) = create("carol", "Ab-9").await;
    let path = format!("/api/payments/admin/pending-payments/{}/validate/", p["id"].as_str().unwrap());
    for stars in ["stars:stx-9", "Stars:stx-9", "\u{200B}stars:stx-9"] {
        let (status, body) = app.post(&path, &app.jwt("s", "support"), json!({"transaction_id": stars})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_input")), "{stars:?}: {body}");
    }
    let (_, waiting) = app.get("/api/payments/pending-payments/", &app.jwt("carol", "user")).await;
    assert_eq!(
        (waiting[0]["status"].as_str(), waiting[0]["transaction_id"].as_str()),
        (Some("transaction_submitted"), Some("Ab-9"))
    );
    let (status, body) = app.post(&path, &app.jwt("s", "support"), json!({"transaction_id": "AB-9"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = create("dave", "ab-9").await;
    assert_eq!(status, 409);
}

#[test]
fn an_older_embedded_store_gets_the_keys_of_its_transaction_ids() {
    let dir = support::TempDir::new();
    let path = dir.0.join("old.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (i, step) in ["v1", "v2", "v3", "v4", "v5", "v6"].iter().enumerate() {
            let sql = std::fs::read_to_string(format!(
                "{}/shared/src/adapters/sqlite/migrations/{step}.sql",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            conn.execute_batch(&sql).unwrap();
            conn.pragma_update(None, "user_version", i as i64 + 1).unwrap();
        }
        for (id, tx) in [("01a0000000000001aaaaaaaa", "TX-OLD"), ("01a0000000000002aaaaaaaa", "tx-old")] {
            conn.execute(
                "INSERT INTO payments (id, user_id, offer_id, transaction_id, status, created_at, updated_at, lang)
                 VALUES (?1, 'u', 'm', ?2, 'transaction_submitted', '2026-01-01T00:00:00.000000Z',
                         '2026-01-01T00:00:00.000000Z', 'fr')",
                [id, tx],
            )
            .unwrap();
        }
    }
    telegate_core::adapters::sqlite::SqliteStore::open(&path).expect("migrated");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let keys: Vec<String> = conn
        .prepare("SELECT transaction_key FROM payments ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(keys, ["tx-old", "tx-old#01a0000000000002aaaaaaaa"], "both kept, the later one made unique");
}

support::on_both_stores!(
    on_store =>
    look_alike_transaction_ids_are_one_transaction,
);

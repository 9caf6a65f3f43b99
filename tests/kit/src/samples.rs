//! The records the sample events in `events/` refer to (two payments of `alice`, one
//! notification), for the test that feeds every sample to its function and for the cold-start
//! benchmark.

use telegate_core::domain::{
    Lang, Notification, NotificationId, NotificationKind, Payment, PaymentId, PaymentStatus, UserId,
};
use telegate_core::ports::{Store, StoreError};

pub const PAYMENTS: [(&str, &str); 2] =
    [("01a2000000000000000000a1", "TX-SEED-A"), ("01a2000000000000000000a2", "TX-SEED-B")];
pub const NOTIFICATION: &str = "01a2000000000000000000b1";

pub async fn seed(store: &dyn Store) -> Result<(), StoreError> {
    let now = chrono::Utc::now();
    let alice = UserId::parse("alice").expect("a valid user id");
    for (id, tx) in PAYMENTS {
        store
            .insert_payment(&Payment {
                id: PaymentId::parse(id).expect("a valid payment id"),
                user_id: alice.clone(),
                email: Some("alice@example.com".into()),
                offer_id: "monthly".into(),
                transaction_id: tx.into(),
                user_info: None,
                status: PaymentStatus::TransactionSubmitted,
                admin_notes: None,
                reject_reason: None,
                created_at: now,
                updated_at: now,
                reviewed_by: None,
                refund_note: None,
                lang: Lang::Fr,
            })
            .await?;
    }
    store
        .add_notification(&Notification {
            id: NotificationId::parse(NOTIFICATION).expect("a valid notification id"),
            user_id: alice,
            kind: NotificationKind::PaymentVerified,
            title: "t".into(),
            message: "m".into(),
            action_url: None,
            created_at: now,
            read: false,
        })
        .await
}

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

/// A web payment of `user` as submitted at `now`, for a test to write (or to change first).
pub fn payment(user: &str, transaction_id: &str, now: chrono::DateTime<chrono::Utc>) -> Payment {
    Payment {
        id: PaymentId::generate(now).expect("a payment id"),
        user_id: UserId::parse(user).expect("a valid user id"),
        email: None,
        offer_id: "monthly".into(),
        transaction_id: transaction_id.into(),
        user_info: None,
        status: PaymentStatus::TransactionSubmitted,
        admin_notes: None,
        reject_reason: None,
        created_at: now,
        updated_at: now,
        reviewed_by: None,
        refund_note: None,
        revenue_cents: None,
        lang: Lang::Fr,
    }
}

pub async fn seed(store: &dyn Store) -> Result<(), StoreError> {
    let now = chrono::Utc::now();
    let alice = UserId::parse("alice").expect("a valid user id");
    for (id, tx) in PAYMENTS {
        store
            .insert_payment(&Payment {
                id: PaymentId::parse(id).expect("a valid payment id"),
                email: Some("alice@example.com".into()),
                ..payment(alice.as_str(), tx, now)
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

/// A member as `telegate import` writes one: a validated payment of `user` (transaction `tx`,
/// made at `started`) and the membership it bought for `account`, ending at `end`.
pub fn paid_member(
    user: &str,
    account: i64,
    tx: &str,
    started: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
) -> [telegate_core::ports::Imported; 2] {
    use telegate_core::domain::{Membership, MembershipId, TelegramUserId};
    use telegate_core::ports::Imported;
    let user = UserId::parse(user).expect("a valid user id");
    let payment = PaymentId::derived(started, &format!("payment-{tx}"));
    let membership = Membership::joined(
        MembershipId::derived(started, &format!("membership-{tx}")),
        user.clone(),
        TelegramUserId::parse(account).expect("a valid Telegram id"),
        payment.clone(),
        "monthly".into(),
        started,
        end,
    );
    [
        Imported::Payment {
            payment: Payment {
                id: payment,
                user_id: user,
                email: None,
                offer_id: "monthly".into(),
                transaction_id: tx.into(),
                user_info: None,
                status: PaymentStatus::Validated,
                admin_notes: None,
                reject_reason: None,
                created_at: started,
                updated_at: started,
                reviewed_by: None,
                refund_note: None,
                revenue_cents: None,
                lang: Lang::Fr,
            },
            current_token: None,
        },
        Imported::Membership { membership, tokens: Vec::new() },
    ]
}

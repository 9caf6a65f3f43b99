//! What the sweep and expiry benchmarks share (each uses its part).
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{Duration, Utc};
use telegate_core::domain::{
    Lang, Membership, MembershipId, Payment, PaymentId, PaymentStatus, TelegramUserId, UserId,
};
use telegate_core::ports::{Envelope, Imported, Queue, QueueError};

/// The sweep only queues effects; the queue counts them.
#[derive(Default)]
pub struct CountingQueue(pub AtomicUsize);

#[async_trait]
impl Queue for CountingQueue {
    async fn enqueue(&self, envelopes: Vec<Envelope>) -> Result<(), QueueError> {
        self.0.fetch_add(envelopes.len(), Ordering::Relaxed);
        Ok(())
    }
}

/// `n` active members with a validated payment each; the first `due` ended an hour ago, the rest
/// end within 60 days.
pub fn records(n: usize, due: usize) -> Vec<Imported> {
    let now = Utc::now();
    let mut out = Vec::with_capacity(2 * n);
    for i in 0..n {
        let started = now - Duration::days(20);
        let end =
            if i < due { now - Duration::hours(1) } else { now + Duration::minutes(60 + (i as i64 * 7919) % 86_400) };
        let user = UserId::parse(&format!("u{i}")).expect("user id");
        let payment = PaymentId::derived(started, &format!("bench-pay-{i}"));
        out.push(Imported::Payment {
            payment: Payment {
                id: payment.clone(),
                user_id: user.clone(),
                email: None,
                offer_id: "bench".into(),
                transaction_id: format!("TX-BENCH-{i}"),
                user_info: None,
                status: PaymentStatus::Validated,
                admin_notes: None,
                reject_reason: None,
                created_at: started,
                updated_at: started,
                reviewed_by: None,
                refund_note: None,
                lang: Lang::Fr,
            },
            current_token: None,
        });
        out.push(Imported::Membership {
            membership: Membership::joined(
                MembershipId::derived(started, &format!("bench-mem-{i}")),
                user,
                TelegramUserId::parse(1_000_000 + i as i64).expect("account"),
                payment,
                "bench".into(),
                started,
                end,
            ),
            tokens: Vec::new(),
        });
    }
    out
}

//! The use cases' rules on in-memory role traits (`fakes.rs`): no HTTP, no store, no Telegram.
//! The flows over HTTP against both stores are in `tests/all`.

use serde_json::json;

use super::fakes::Rig;
use super::{AppError, Meaning, SubmitPayment};
use crate::auth::{Caller, Role};
use crate::domain::{
    AuditAction, Lang, Membership, MembershipId, MembershipStatus, NotificationId, PaymentStatus, TelegramUserId,
    UserId,
};
use crate::ports::{Attempt, Effect, PageRequest};

fn caller(user: &str, role: Role) -> Caller {
    Caller { user_id: UserId::parse(user).unwrap(), email: Some(format!("{user}@example.com")), role }
}

fn submitted(tx: &str) -> SubmitPayment {
    SubmitPayment { offer_id: "monthly".into(), transaction_id: tx.into(), user_info: None }
}

fn code(e: &AppError) -> &str {
    match e {
        AppError::Conflict { code, .. } => code,
        AppError::Invalid(_) => "invalid",
        AppError::Forbidden(_) => "forbidden",
        AppError::NotFound(_) => "not_found",
        AppError::RateLimited(_) => "rate_limited",
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_transaction_id_is_submitted_once_whatever_its_spelling() {
    let rig = Rig::new();
    let desk = rig.desk();
    desk.submit_payment(&caller("ann", Role::User), submitted("TX-1"), Lang::Fr).await.unwrap();
    let again = desk.submit_payment(&caller("bob", Role::User), submitted(" tx-1 "), Lang::Fr).await.unwrap_err();
    assert_eq!(code(&again), "transaction_id_taken");
    assert_eq!(rig.memory.kept().payments.len(), 1);
}

#[tokio::test]
async fn a_stars_charge_or_a_user_info_that_is_not_an_object_is_refused_before_anything_is_stored() {
    let rig = Rig::new();
    let desk = rig.desk();
    let ann = caller("ann", Role::User);
    let stars = desk.submit_payment(&ann, submitted("stars:ch_1"), Lang::Fr).await.unwrap_err();
    assert!(stars.to_string().contains("Telegram Stars"), "{stars}");
    let mut listed = submitted("TX-2");
    listed.user_info = Some(json!(["not", "an", "object"]));
    assert_eq!(code(&desk.submit_payment(&ann, listed, Lang::Fr).await.unwrap_err()), "invalid");
    assert!(rig.memory.kept().payments.is_empty() && rig.memory.kept().audit.is_empty());
}

#[tokio::test]
async fn only_support_reviews_and_a_payment_is_validated_once_with_one_token_and_one_notice() {
    let rig = Rig::new();
    let desk = rig.desk();
    let p = desk.submit_payment(&caller("ann", Role::User), submitted("TX-3"), Lang::Fr).await.unwrap();
    let refused = desk.validate_payment(&caller("ann", Role::User), &p.id, None, None).await.unwrap_err();
    assert_eq!(code(&refused), "forbidden");

    let support = caller("sue", Role::Support);
    let issued = desk.validate_payment(&support, &p.id, Some(" checked ".into()), None).await.unwrap();
    assert!(issued.bot_link.starts_with("https://t.me/unit_bot?start="), "{}", issued.bot_link);
    let again = desk.validate_payment(&support, &p.id, None, None).await.unwrap_err();
    assert_eq!(code(&again), "already_validated");
    let rejected = desk.reject_payment(&support, &p.id, "too late".into()).await.unwrap_err();
    assert_eq!(code(&rejected), "already_validated");

    let kept = rig.memory.kept();
    assert_eq!(kept.tokens.len(), 1, "one token");
    assert_eq!(kept.notifications.len(), 1, "one notice in the app");
    let mails: Vec<&str> = kept
        .queued
        .iter()
        .filter(|e| matches!(e.effect, Effect::SendEmail { .. }))
        .map(|e| e.idempotency_key.as_str())
        .collect();
    assert_eq!(mails.len(), 1, "one mail: {mails:?}");
    assert_eq!(kept.payments[0].admin_notes.as_deref(), Some("checked"), "notes are trimmed");
    let actions: Vec<AuditAction> = kept.audit.iter().map(|e| e.action).collect();
    assert_eq!(actions, [AuditAction::PaymentSubmitted, AuditAction::PaymentValidated, AuditAction::TokenIssued]);
}

#[tokio::test]
async fn a_rejection_needs_a_reason_and_tells_the_payer_why() {
    let rig = Rig::new();
    let desk = rig.desk();
    let p = desk.submit_payment(&caller("ann", Role::User), submitted("TX-4"), Lang::En).await.unwrap();
    let support = caller("sue", Role::Support);
    assert_eq!(code(&desk.reject_payment(&support, &p.id, "   ".into()).await.unwrap_err()), "invalid");
    desk.reject_payment(&support, &p.id, "no such transfer".into()).await.unwrap();
    let kept = rig.memory.kept();
    assert_eq!(kept.payments[0].status, PaymentStatus::Rejected);
    assert!(kept.notifications[0].message.contains("no such transfer"), "{}", kept.notifications[0].message);
}

#[tokio::test]
async fn a_new_link_is_only_for_the_payer_or_support_only_for_a_validated_payment_and_limited_per_hour() {
    let rig = Rig::new();
    let (desk, issuer) = (rig.desk(), rig.issuer());
    let ann = caller("ann", Role::User);
    let p = desk.submit_payment(&ann, submitted("TX-5"), Lang::Fr).await.unwrap();
    assert_eq!(code(&issuer.generate_token(&ann, &p.id, None).await.unwrap_err()), "payment_not_validated");
    desk.validate_payment(&caller("sue", Role::Support), &p.id, None, None).await.unwrap();

    // Another user is told the payment does not exist, as for an id that does not.
    let bob = caller("bob", Role::User);
    assert_eq!(code(&issuer.generate_token(&bob, &p.id, None).await.unwrap_err()), "not_found");
    assert_eq!(code(&issuer.generate_token(&ann, &p.id, Some("TX-other")).await.unwrap_err()), "invalid");

    // Every request of the payer counts, the one refused before validation too.
    let limit = rig.settings.limits.generated_tokens_per_payment;
    for _ in 1..limit {
        issuer.generate_token(&ann, &p.id, Some("TX-5")).await.unwrap();
    }
    assert_eq!(code(&issuer.generate_token(&ann, &p.id, None).await.unwrap_err()), "rate_limited");
    issuer.generate_token(&caller("sue", Role::Support), &p.id, None).await.expect("support is not limited");
    assert_eq!(rig.memory.kept().tokens.len(), 1, "each new token replaces the unopened one");
}

#[tokio::test]
async fn a_refunded_payment_buys_no_new_link() {
    let rig = Rig::new();
    let desk = rig.desk();
    let ann = caller("ann", Role::User);
    let p = desk.submit_payment(&ann, submitted("TX-6"), Lang::Fr).await.unwrap();
    desk.validate_payment(&caller("sue", Role::Support), &p.id, None, None).await.unwrap();
    rig.memory.kept().payments[0].status = PaymentStatus::Refunded;
    let refused = rig.issuer().generate_token(&caller("sue", Role::Support), &p.id, None).await.unwrap_err();
    assert_eq!(code(&refused), "payment_refunded");
}

#[tokio::test]
async fn a_refused_token_counts_as_a_suspicious_attempt_and_a_rejoin_publishes_no_event() {
    let rig = Rig::new();
    let auditor = rig.auditor();
    let account = TelegramUserId::parse(42).unwrap();
    let user = UserId::parse("ann").unwrap();
    auditor.audit("telegram:42", AuditAction::TokenRefused, None, Some(account), json!({})).await.unwrap();
    auditor
        .audit_as(Meaning::Rejoined, "telegram:42", AuditAction::MemberJoined, Some(&user), Some(account), json!({}))
        .await
        .unwrap();
    auditor.audit("telegram:42", AuditAction::MemberJoined, Some(&user), Some(account), json!({})).await.unwrap();
    let kept = rig.memory.kept();
    assert_eq!(kept.attempts, [Attempt::RefusedToken]);
    let events = kept.queued.iter().filter(|e| matches!(e.effect, Effect::Publish { .. })).count();
    assert_eq!(events, 1, "the first join is an event, the rejoin is not");
    assert_eq!(kept.audit.len(), 3, "all three are in the audit log");
}

#[tokio::test]
async fn the_status_counts_the_days_left_of_the_active_membership_only() {
    let rig = Rig::new();
    let now = chrono::Utc::now();
    let ann = caller("ann", Role::User);
    let membership = |days_left: i64, status| Membership {
        status,
        telegram_username: Some("ann_tg".into()),
        ..Membership::joined(
            MembershipId::generate(now).unwrap(),
            ann.user_id.clone(),
            TelegramUserId::parse(7).unwrap(),
            crate::domain::PaymentId::generate(now).unwrap(),
            "Monthly".into(),
            now,
            now + chrono::Duration::days(days_left),
        )
    };
    rig.memory.kept().memberships.push(membership(-3, MembershipStatus::Expired));
    rig.memory.kept().memberships.push(membership(12, MembershipStatus::Active));
    let view = rig.status().status(&ann).await.unwrap();
    assert!(view.has_active_subscription);
    assert_eq!(view.telegram_username.as_deref(), Some("ann_tg"));
    let days: Vec<(bool, i64)> = view.memberships.iter().map(|m| (m.is_active, m.days_remaining)).collect();
    assert_eq!(days, [(true, 12), (false, 0)], "newest first");
}

#[tokio::test]
async fn a_notification_of_another_user_cannot_be_marked_read() {
    let rig = Rig::new();
    let desk = rig.desk();
    let p = desk.submit_payment(&caller("ann", Role::User), submitted("TX-7"), Lang::Fr).await.unwrap();
    desk.reject_payment(&caller("sue", Role::Support), &p.id, "unknown transfer".into()).await.unwrap();
    let inbox = rig.inbox();
    let page = PageRequest { limit: 10, after: None };
    let ann = caller("ann", Role::User);
    let id: NotificationId = inbox.notifications(&ann, &page).await.unwrap().items[0].id.clone();
    let bob = caller("bob", Role::User);
    assert_eq!(code(&inbox.mark_notification_read(&bob, &id).await.unwrap_err()), "not_found");
    assert!(inbox.notifications(&bob, &page).await.unwrap().items.is_empty());
    inbox.mark_notification_read(&ann, &id).await.unwrap();
    assert!(rig.memory.kept().notifications[0].read);
}

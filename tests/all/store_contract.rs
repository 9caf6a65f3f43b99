//! One contract for the store, run against every adapter: SQLite (the embedded default) and
//! DynamoDB (on the local AWS stand-in).

use crate::support;

use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use telegate_core::domain::{
    AccessToken, AccountBar, AuditAction, AuditEntry, AuditId, Job, Lang, Membership, MembershipId, MembershipStatus,
    Notification, NotificationId, NotificationKind, Payment, PaymentId, PaymentStatus, RequestedRun, RunId, RunStatus,
    TelegramUserId, TokenRecord, TokenStatus, UserId,
};
use telegate_core::ports::{
    Applied, Attempt, AuditOf, Effect, Envelope, PageRequest, PaymentStore, Review, Store, StoreError, Withdrawn,
};

/// One test per section and per store: a failing section does not hide the others.
macro_rules! contract {
    ($($section:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $section() {
                    let dir = crate::support::TempDir::new();
                    let store = telegate_core::adapters::sqlite::SqliteStore::open(&dir.0.join("contract.sqlite3"))
                        .expect("open the store");
                    super::$section(&(std::sync::Arc::new(store) as super::Arc<dyn super::Store>), super::now()).await;
                }
            )*
        }
        mod on_dynamodb {
            $(
                #[tokio::test]
                async fn $section() {
                    let store = crate::support::dynamo_store().await;
                    super::$section(&(std::sync::Arc::new(store) as super::Arc<dyn super::Store>), super::now()).await;
                }
            )*
        }
    };
}

contract!(
    ending_at_the_same_instant,
    payments,
    refunds,
    withdrawals,
    expired_tokens_left_in_a_waiting_membership,
    access,
    revoke_between_binding_and_opening,
    one_membership_revoked,
    memberships_that_never_started_are_reconciled,
    batches,
    bars,
    notifications,
    updates,
    lifecycle,
    intents,
    audit,
    requested_runs,
    job_cursors,
    job_slots,
    limits
);

/// Stores keep microseconds (RFC 3339 with 6 digits).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn user(u: &str) -> UserId {
    UserId::parse(u).unwrap()
}

fn account(a: i64) -> TelegramUserId {
    TelegramUserId::parse(a).unwrap()
}

fn payment(who: &str, tx: &str, now: DateTime<Utc>) -> Payment {
    Payment {
        email: Some(format!("{who}@example.com")),
        user_info: Some(serde_json::json!({"note": "x"})),
        lang: Lang::En,
        ..telegate_testkit::samples::payment(who, tx, now)
    }
}

/// The refund's state machine, kept by the store: one move at a time, from where the payment
/// is; refunded is terminal; the Stars refunded leave the net revenue in the same write.
async fn refunds(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    use PaymentStatus::*;
    let manual = payment("refund-a", "TX-REFUND-1", now);
    store.insert_payment(&manual).await.unwrap();
    assert!(store.move_refund(&manual.id, RefundRequested, Some("no"), now).await.unwrap().is_none(), "not validated");
    let stars = Payment {
        transaction_id: "stars:stxREFUND1".into(),
        user_info: Some(serde_json::json!({"stars": 250, "telegram_user_id": 940_001})),
        status: Validated,
        ..payment("tg:940001", "unused", now)
    };
    store.insert_payment(&stars).await.unwrap();
    let (_, link) = token(&stars, now);
    store.issue_token(&link).await.unwrap();
    let asked = store.move_refund(&stars.id, RefundRequested, Some("asked within 48 h"), now).await.unwrap();
    assert_eq!(asked.map(|p| p.status), Some(RefundRequested));
    // The refund finds the payment's token still (to take back what it opened), and no new one
    // is issued for the payment from now on, however the two race.
    assert_eq!(store.live_tokens(&stars.id).await.unwrap(), std::slice::from_ref(&link.hash));
    let (_, late) = token(&stars, now);
    assert_eq!(store.issue_token(&late).await, Err(StoreError::Conflict("payment_refunded")));
    assert_eq!(store.token(&late.hash).await.unwrap(), None);
    assert!(store.move_refund(&stars.id, RefundRequested, Some("twice"), now).await.unwrap().is_none(), "asked once");
    let failed = store.move_refund(&stars.id, RefundFailed, Some("CHARGE_NOT_FOUND"), now).await.unwrap().unwrap();
    assert_eq!((failed.status, failed.refund_note.as_deref()), (RefundFailed, Some("CHARGE_NOT_FOUND")));
    assert_eq!(store.counters(now).await.unwrap().stars.refunded_total, 0, "a failed refund gave nothing back");
    store.move_refund(&stars.id, RefundRequested, Some("again"), now).await.unwrap().expect("asked again");
    let done = store.move_refund(&stars.id, Refunded, None, now).await.unwrap().expect("refunded");
    assert_eq!((done.status, done.refund_note.as_deref()), (Refunded, Some("again")), "the note is kept");
    let read = store.payment(&stars.id).await.unwrap().unwrap();
    assert_eq!((read.status, read.refund_note.as_deref()), (Refunded, Some("again")));
    for to in [Validated, RefundRequested, RefundFailed, Refunded] {
        assert!(store.move_refund(&stars.id, to, None, now).await.unwrap().is_none(), "refunded is terminal: {to:?}");
    }
    let c = store.counters(now).await.unwrap().stars;
    assert_eq!((c.revenue_total, c.refunded_total, c.net_total), (250, 250, 0), "counted once");
    assert_eq!((c.months[0].refunded, c.months[0].net), (250, 0));
    let listed = store.list_payments(Some(Refunded), &PageRequest { limit: 10, after: None }).await.unwrap();
    assert_eq!(listed.items.iter().map(|p| &p.id).collect::<Vec<_>>(), [&stars.id], "listed by its new status");
    let missing = PaymentId::generate(now).unwrap();
    assert!(store.move_refund(&missing, RefundRequested, None, now).await.unwrap().is_none());

    // A subscription runs while a payment of it covers today; a renewal keeps it one; a refund
    // of the payment that covers it ends it.
    let first = Payment {
        transaction_id: "stars:stxSUB1".into(),
        user_info: Some(serde_json::json!({"stars": 100, "telegram_user_id": 940_002, "renewing": true})),
        status: Validated,
        ..payment("tg:940002", "unused", now - Duration::days(29) - Duration::hours(23))
    };
    store.insert_payment(&first).await.unwrap();
    assert_eq!(store.counters(now).await.unwrap().stars.active_subscriptions, 1);
    let expires = (now + Duration::days(30) + Duration::hours(1)).to_rfc3339();
    let renewal = Payment {
        transaction_id: "stars:stxSUB2".into(),
        user_info: Some(serde_json::json!({"stars": 100, "telegram_user_id": 940_002, "renewing": true,
                                           "renewal": true, "subscription_expiration_date": expires})),
        status: Validated,
        ..payment("tg:940002", "unused", now)
    };
    store.insert_payment(&renewal).await.unwrap();
    assert_eq!(store.counters(now).await.unwrap().stars.active_subscriptions, 1, "renewed: still one");
    assert_eq!(store.counters(now + Duration::days(2)).await.unwrap().stars.active_subscriptions, 1);
    assert_eq!(store.counters(now + Duration::days(32)).await.unwrap().stars.active_subscriptions, 0, "lapsed");
    // Cancelled, then re-enabled.
    let ends = now + Duration::days(30) + Duration::hours(1);
    store.count_subscription(ends, -1).await.unwrap();
    assert_eq!(store.counters(now).await.unwrap().stars.active_subscriptions, 0, "cancelled");
    store.count_subscription(ends, 1).await.unwrap();
    assert_eq!(store.counters(now).await.unwrap().stars.active_subscriptions, 1, "re-enabled");
    store.move_refund(&renewal.id, RefundRequested, Some("asked"), now).await.unwrap().unwrap();
    store.move_refund(&renewal.id, Refunded, None, now).await.unwrap().unwrap();
    assert_eq!(store.counters(now + Duration::days(2)).await.unwrap().stars.active_subscriptions, 0, "refunded");
}

/// One payment, one period: a refunded payment's token takes back its own days, and the
/// membership ends only when nothing else paid for it (removal written with it); asked again,
/// nothing.
async fn withdrawals(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    let who = account(950_001);
    let mut hashes = Vec::new();
    for tx in ["TX-WD-1", "TX-WD-2", "TX-WD-3", "TX-WD-4"] {
        let p = payment("wd-a", tx, now);
        store.insert_payment(&p).await.unwrap();
        let (_, t) = token(&p, now);
        store.issue_token(&t).await.unwrap();
        hashes.push(t.hash);
    }
    let opener = store.bind_token(&hashes[0], who, now).await.unwrap().unwrap();
    let m = membership(&opener, who, now);
    store.open_membership(&hashes[0], &m).await.unwrap();
    store.bind_token(&hashes[1], who, now).await.unwrap().unwrap();
    store.extend_membership(&hashes[1], &m.id, now).await.unwrap();
    let removal = |m: &Membership| {
        vec![Envelope {
            idempotency_key: format!("remove:{}:refund", m.id),
            effect: Effect::RemoveMember { telegram_user_id: m.telegram_user_id, keep_banned: true },
        }]
    };

    // Waiting for the join: the days wait, fewer.
    let shorter = match store.withdraw_token(&hashes[1], "refund: asked", now, &removal).await.unwrap() {
        Withdrawn::Shortened(m) => m,
        other => panic!("shortened, not {other:?}"),
    };
    assert_eq!((shorter.status, shorter.pending_days), (MembershipStatus::Pending, 30));
    assert_eq!(store.membership(&m.id).await.unwrap().unwrap().pending_days, 30, "written");
    assert_eq!(store.token(&hashes[1]).await.unwrap().unwrap().status, TokenStatus::Revoked);
    assert_eq!(store.withdraw_token(&hashes[1], "again", now, &removal).await.unwrap(), Withdrawn::Nothing);
    assert_eq!(store.membership(&m.id).await.unwrap().unwrap().pending_days, 30, "taken back once");

    // Active: the end moves back by the days, and the expiry index with it.
    store.activate_membership(&m.id, now, now, None).await.unwrap().unwrap();
    store.bind_token(&hashes[2], who, now).await.unwrap().unwrap();
    store.extend_membership(&hashes[2], &m.id, now).await.unwrap();
    assert_eq!(store.membership(&m.id).await.unwrap().unwrap().expires_at, Some(now + Duration::days(60)));
    let Withdrawn::Shortened(shorter) = store.withdraw_token(&hashes[2], "refund", now, &removal).await.unwrap() else {
        panic!("shortened");
    };
    assert_eq!(shorter.expires_at, Some(now + Duration::days(30)));
    let due = store.due_memberships(now + Duration::days(30), None, 10).await.unwrap();
    assert_eq!(due.iter().map(|d| (&d.id, d.expires_at)).collect::<Vec<_>>(), [(&m.id, shorter.expires_at)]);
    assert!(store.pending_intents(now + Duration::hours(1), 10).await.unwrap().is_empty(), "nobody removed");

    // Nothing else paid for it: revoked, its removal written with it.
    let active = store.counters(now).await.unwrap().members_active;
    let Withdrawn::Revoked(ended) =
        store.withdraw_token(&hashes[0], "refund: chargeback", now, &removal).await.unwrap()
    else {
        panic!("revoked");
    };
    assert_eq!((ended.status, ended.end_reason.as_deref()), (MembershipStatus::Revoked, Some("refund: chargeback")));
    let read = store.membership(&m.id).await.unwrap().unwrap();
    assert_eq!((read.status, read.in_channel), (MembershipStatus::Revoked, false));
    assert_eq!(store.counters(now).await.unwrap().members_active, active - 1);
    let written = store.pending_intents(now + Duration::hours(1), 10).await.unwrap();
    assert_eq!(written, removal(&read));
    assert!(store.current_membership(who).await.unwrap().is_none());

    // A token never redeemed: revoked, it opens nothing.
    assert_eq!(store.withdraw_token(&hashes[3], "refund", now, &removal).await.unwrap(), Withdrawn::Nothing);
    assert!(store.bind_token(&hashes[3], account(950_002), now).await.unwrap().is_none(), "it binds no more");
}

/// A token whose 24 hours pass while the membership it was bound to waits for the join on a later
/// token: its days stay in that membership, so its payment's refund still withdraws it.
async fn expired_tokens_left_in_a_waiting_membership(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    let (early, later) = expired_token_left_in_a_waiting_membership(store, now).await;
    assert_eq!(
        store.live_tokens(&early.payment_id).await.unwrap(),
        std::slice::from_ref(&early.hash),
        "what a refund takes"
    );
    let removal = |_: &Membership| Vec::new();
    let Withdrawn::Shortened(m) = store.withdraw_token(&early.hash, "refund", now, &removal).await.unwrap() else {
        panic!("shortened");
    };
    assert_eq!((m.status, m.pending_days), (MembershipStatus::Pending, 30), "the later token's days alone");
    assert_eq!(store.live_tokens(&later.payment_id).await.unwrap(), [later.hash]);
}

/// Two tokens of one account, 12 hours apart, in one membership waiting for the join; the clock
/// past the first one's end and expire-tokens run. Returns (first, later) as issued.
async fn expired_token_left_in_a_waiting_membership(
    store: &Arc<dyn Store>,
    now: DateTime<Utc>,
) -> (TokenRecord, TokenRecord) {
    let who = account(955_001);
    let mut issued = Vec::new();
    for (tx, at) in [("TX-EXP-1", now), ("TX-EXP-2", now + Duration::hours(12))] {
        let p = payment("exp-a", tx, at);
        store.insert_payment(&p).await.unwrap();
        let (_, t) = token(&p, at);
        store.issue_token(&t).await.unwrap();
        store.bind_token(&t.hash, who, at).await.unwrap().unwrap();
        issued.push(t);
    }
    let m = membership(&issued[0], who, now);
    store.open_membership(&issued[0].hash, &m).await.unwrap();
    store.extend_membership(&issued[1].hash, &m.id, now + Duration::hours(12)).await.unwrap();
    assert_eq!(store.expire_tokens(now + Duration::hours(25), 1_000).await.unwrap(), 1);
    assert_eq!(store.membership(&m.id).await.unwrap().unwrap().status, MembershipStatus::Pending, "kept");
    assert_eq!(store.token(&issued[0].hash).await.unwrap().unwrap().status, TokenStatus::Expired);
    let later = issued.pop().unwrap();
    (issued.pop().unwrap(), later)
}

/// On DynamoDB such a token is kept as a used one is (no TTL): an expired token is otherwise
/// forgotten a week after its end, and a refund later than that would not find its days.
#[tokio::test]
async fn an_expired_token_left_in_a_waiting_membership_is_kept_on_dynamodb() {
    let dynamo = crate::support::dynamo_store().await;
    let table = dynamo.table_name().to_owned();
    let store: Arc<dyn Store> = Arc::new(dynamo);
    let (early, later) = expired_token_left_in_a_waiting_membership(&store, now()).await;
    let config = telegate_core::adapters::aws::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let ttl = async |t: &TokenRecord| {
        let key = |v: String| aws_sdk_dynamodb::types::AttributeValue::S(v);
        let item = client.get_item().table_name(&table).key("pk", key(format!("TOKEN#{}", t.hash.as_str())));
        let item = item.key("sk", key("TOKEN".into())).send().await.unwrap().item.expect("the token's item");
        item.contains_key("ttl")
    };
    assert!(!ttl(&early).await, "kept: its days are in a membership");
    assert!(ttl(&later).await, "a token not yet used keeps its TTL");
}

fn token(p: &Payment, now: DateTime<Utc>) -> (AccessToken, TokenRecord) {
    crate::support::records::token(p, now)
}

fn membership(r: &TokenRecord, who: TelegramUserId, now: DateTime<Utc>) -> Membership {
    Membership { telegram_username: Some("who".into()), ..crate::support::records::pending_membership(r, who, now) }
}

/// `user`'s validated payment `tx`, its token redeemed by `who`, who joined: an active member.
async fn active_member(
    store: &Arc<dyn Store>,
    user: &str,
    tx: &str,
    who: TelegramUserId,
    now: DateTime<Utc>,
) -> (Payment, TokenRecord, Membership) {
    let p = payment(user, tx, now);
    store.insert_payment(&p).await.unwrap();
    let (_, t) = token(&p, now);
    store.issue_token(&t).await.unwrap();
    let bound = store.bind_token(&t.hash, who, now).await.unwrap().unwrap();
    let m = membership(&bound, who, now);
    store.open_membership(&t.hash, &m).await.unwrap();
    store.activate_membership(&m.id, now, now, None).await.unwrap().unwrap();
    (p, t, m)
}

fn review(to: PaymentStatus, tx: Option<&str>, now: DateTime<Utc>) -> Review {
    Review {
        to,
        by: user("support"),
        admin_notes: Some("seen".into()),
        reason: None,
        transaction_id: tx.map(str::to_owned),
        at: now,
        revenue_cents: None,
    }
}

/// A revoke that lands between `/start`'s binding and its opening of the membership wins: the
/// token no longer opens or extends anything (defect: one intruder in 200 start/revoke pairs).
async fn revoke_between_binding_and_opening(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    let p = payment("race-a", "TX-RACE-OPEN", now);
    store.insert_payment(&p).await.unwrap();
    let (_, t) = token(&p, now);
    store.issue_token(&t).await.unwrap();
    let who = account(930_001);
    let bound = store.bind_token(&t.hash, who, now).await.unwrap().expect("bound");
    assert!(store.revoke_user(&user("race-a"), "chargeback", now, &|_| vec![]).await.unwrap().is_empty());
    assert_eq!(store.token(&t.hash).await.unwrap().unwrap().status, TokenStatus::Revoked);
    let m = membership(&bound, who, now);
    assert_eq!(store.open_membership(&t.hash, &m).await.unwrap(), Applied::Ended, "a revoked token opens nothing");
    assert!(store.current_membership(who).await.unwrap().is_none());

    // Nor does it extend the account's current membership (of another payment).
    let q = payment("race-b", "TX-RACE-EXT", now);
    store.insert_payment(&q).await.unwrap();
    let (_, own) = token(&q, now);
    store.issue_token(&own).await.unwrap();
    let own_bound = store.bind_token(&own.hash, who, now).await.unwrap().unwrap();
    let current = membership(&own_bound, who, now);
    store.open_membership(&own.hash, &current).await.unwrap();
    let r = payment("race-c", "TX-RACE-EXT2", now);
    store.insert_payment(&r).await.unwrap();
    let (_, renewal) = token(&r, now);
    store.issue_token(&renewal).await.unwrap();
    store.bind_token(&renewal.hash, who, now).await.unwrap().unwrap();
    store.revoke_user(&user("race-c"), "chargeback", now, &|_| vec![]).await.unwrap();
    assert_eq!(store.extend_membership(&renewal.hash, &current.id, now).await.unwrap(), Applied::Ended);
    assert_eq!(store.membership(&current.id).await.unwrap().unwrap().pending_days, 30, "no days added");

    // A membership opened a moment before the revoke is revoked with it (read from the token).
    let s2 = payment("race-d", "TX-RACE-FRESH", now);
    store.insert_payment(&s2).await.unwrap();
    let (_, fresh) = token(&s2, now);
    store.issue_token(&fresh).await.unwrap();
    let other = account(930_002);
    let fresh_bound = store.bind_token(&fresh.hash, other, now).await.unwrap().unwrap();
    let opened = membership(&fresh_bound, other, now);
    store.open_membership(&fresh.hash, &opened).await.unwrap();
    let revoked = store.revoke_user(&user("race-d"), "chargeback", now, &|_| vec![]).await.unwrap();
    assert_eq!(revoked.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), vec![opened.id.clone()]);
}

/// Effect intents are written with the state change, listed once old enough, and settled once.
async fn intents(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    let who = account(940_001);
    let (_, _, m) = active_member(store, "intent-a", "TX-INTENT", who, now).await;
    let removal = |key: &str| Envelope {
        idempotency_key: key.into(),
        effect: Effect::RemoveMember { telegram_user_id: who, keep_banned: true },
    };
    let end = now + Duration::days(30) + Duration::seconds(1);
    // A renewal won: the conditional expiry changes nothing and writes no intent.
    assert!(store.expire_membership(&m.id, now, now, &[removal("early")]).await.unwrap().is_none());
    store.expire_membership(&m.id, end, end, &[removal("remove:expired")]).await.unwrap().expect("expired");
    assert!(store.pending_intents(end, 10).await.unwrap().is_empty(), "not before it is old enough");
    let later = end + Duration::minutes(6);
    assert_eq!(store.pending_intents(later, 10).await.unwrap(), vec![removal("remove:expired")]);

    // Revoke writes one intent per membership it revokes, in the same transaction.
    let q = payment("intent-b", "TX-INTENT2", now);
    store.insert_payment(&q).await.unwrap();
    let (_, u) = token(&q, now);
    store.issue_token(&u).await.unwrap();
    let who2 = account(940_002);
    let b2 = store.bind_token(&u.hash, who2, now).await.unwrap().unwrap();
    store.open_membership(&u.hash, &membership(&b2, who2, now)).await.unwrap();
    let revoked = store
        .revoke_user(&user("intent-b"), "chargeback", end + Duration::seconds(1), &|m| {
            vec![removal(&format!("remove:{}", m.id))]
        })
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
    let pending: Vec<String> =
        store.pending_intents(later, 10).await.unwrap().into_iter().map(|e| e.idempotency_key).collect();
    assert_eq!(pending, vec!["remove:expired".to_owned(), format!("remove:{}", revoked[0].id)], "oldest first");
    assert_eq!(store.pending_intents(later, 1).await.unwrap().len(), 1, "at most the limit");

    store.settle_intent("remove:expired").await.unwrap();
    store.settle_intent("remove:expired").await.unwrap();
    store.settle_intent(&format!("remove:{}", revoked[0].id)).await.unwrap();
    assert!(store.pending_intents(later, 10).await.unwrap().is_empty(), "settled");
}

/// One membership revoked (a channel administrator removed its account): the payer's other
/// membership and unused token are left as they were; its intent is written with it; once only.
async fn one_membership_revoked(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    let mut opened = Vec::new();
    for (tx, who) in [("TX-ONE-1", account(945_001)), ("TX-ONE-2", account(945_002))] {
        opened.push(active_member(store, "one-a", tx, who, now).await.2);
    }
    let unused = payment("one-a", "TX-ONE-3", now);
    store.insert_payment(&unused).await.unwrap();
    let (_, left) = token(&unused, now);
    store.issue_token(&left).await.unwrap();
    let before = store.counters(now).await.unwrap();

    let removal = |m: &Membership| {
        vec![Envelope {
            idempotency_key: format!("remove:{}", m.id),
            effect: Effect::RemoveMember { telegram_user_id: m.telegram_user_id, keep_banned: true },
        }]
    };
    let revoked = store.revoke_membership(&opened[0].id, "removed", now, &removal).await.unwrap().expect("revoked");
    assert_eq!((revoked.status, revoked.end_reason.as_deref()), (MembershipStatus::Revoked, Some("removed")));
    assert!(!revoked.in_channel);
    assert!(store.revoke_membership(&opened[0].id, "again", now, &removal).await.unwrap().is_none(), "once");
    let other = store.membership(&opened[1].id).await.unwrap().unwrap();
    assert_eq!(other.status, MembershipStatus::Active, "the payer's other membership lasts");
    assert_eq!(store.token(&left.hash).await.unwrap().unwrap().status, TokenStatus::Pending, "the unused link too");
    assert_eq!(store.counters(now).await.unwrap().members_active, before.members_active - 1);
    let later = now + Duration::minutes(6);
    let keys: Vec<String> =
        store.pending_intents(later, 100).await.unwrap().into_iter().map(|e| e.idempotency_key).collect();
    assert_eq!(keys, vec![format!("remove:{}", opened[0].id)], "its intent, written with it");
}

async fn limits(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    let key = format!("contract:{}", now.timestamp_micros());
    assert_eq!(store.hits(&key, now).await.unwrap(), 0);
    let until = now + Duration::hours(2);
    assert_eq!(store.hit(&key, until).await.unwrap(), 1);
    assert_eq!(store.hit(&key, until).await.unwrap(), 2);
    assert_eq!(store.hits(&key, now).await.unwrap(), 2);
    assert_eq!(store.hits(&key, until + Duration::seconds(1)).await.unwrap(), 0, "forgotten after its window");

    // Suspicious attempts: counted per hour, summed over the last 24 hours, with every other
    // counter read in the same call (more than DynamoDB's 100 keys per batch read).
    let before = store.counters(now).await.unwrap();
    store.count_attempt(Attempt::RefusedToken, now).await.unwrap();
    store.count_attempt(Attempt::RefusedToken, now - Duration::hours(23)).await.unwrap();
    store.count_attempt(Attempt::RemovedStranger, now - Duration::hours(30)).await.unwrap();
    let after = store.counters(now).await.unwrap();
    assert_eq!(after.refused_tokens_recent - before.refused_tokens_recent, 2);
    assert_eq!(after.removed_strangers_recent, before.removed_strangers_recent, "30 hours ago is not recent");
    assert_eq!(after.tokens_total, before.tokens_total);
}

async fn payments(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    let a = payment("pay-a", "TX-A", now);
    let b = payment("pay-a", "TX-B", now + Duration::seconds(1));
    store.insert_payment(&a).await.unwrap();
    store.insert_payment(&b).await.unwrap();
    let dup = payment("pay-b", "TX-A", now);
    assert_eq!(store.insert_payment(&dup).await, Err(StoreError::Conflict("transaction_id_taken")));
    assert_eq!(store.payment(&a.id).await.unwrap().unwrap(), a);
    assert!(store.payment(&dup.id).await.unwrap().is_none(), "a refused payment leaves nothing");
    // Found by its transaction id, as the buyer might type it again (folded as uniqueness is).
    assert_eq!(store.payment_with_transaction("tx-b").await.unwrap().map(|p| p.id), Some(b.id.clone()));
    assert_eq!(store.payment_with_transaction("TX-NONE").await.unwrap(), None);
    let mine: Vec<PaymentId> = store.payments_of(&user("pay-a")).await.unwrap().into_iter().map(|p| p.id).collect();
    assert_eq!(mine, [b.id.clone(), a.id.clone()], "newest first");

    let first = store
        .list_payments(Some(PaymentStatus::TransactionSubmitted), &PageRequest { limit: 1, after: None })
        .await
        .unwrap();
    let all_submitted = store
        .list_payments(Some(PaymentStatus::TransactionSubmitted), &PageRequest { limit: 100, after: None })
        .await
        .unwrap();
    assert_eq!(first.items.len(), 1);
    assert!(first.next.is_some());
    let rest = store
        .list_payments(
            Some(PaymentStatus::TransactionSubmitted),
            &PageRequest { limit: 100, after: first.next.clone() },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len() + 1, all_submitted.items.len());

    // A validation that changes the transaction id to one already taken changes nothing, and
    // counts no revenue.
    let priced = |tx: Option<&str>| Review { revenue_cents: Some(990), ..review(PaymentStatus::Validated, tx, now) };
    assert_eq!(
        store.review_payment(&b.id, &priced(Some("TX-A"))).await,
        Err(StoreError::Conflict("transaction_id_taken"))
    );
    assert_eq!(store.counters(now).await.unwrap().web.revenue_total_cents, 0);
    let validated = store.review_payment(&b.id, &priced(Some("TX-B2"))).await.unwrap().unwrap();
    assert_eq!((validated.status, validated.transaction_id.as_str()), (PaymentStatus::Validated, "TX-B2"));
    assert!(store.review_payment(&b.id, &priced(None)).await.unwrap().is_none(), "once");
    // Its web price counts once, in the month validated.
    let web = store.counters(now).await.unwrap().web;
    assert_eq!((web.revenue_total_cents, web.months[0].revenue_cents, web.months[0].payments), (990, 990, 1));
    store.insert_payment(&payment("pay-c", "TX-B", now)).await.expect("the old transaction id is free again");
    assert_eq!(
        store.insert_payment(&payment("pay-c", "TX-B2", now)).await,
        Err(StoreError::Conflict("transaction_id_taken"))
    );
    let listed =
        store.list_payments(Some(PaymentStatus::Validated), &PageRequest { limit: 100, after: None }).await.unwrap();
    assert!(listed.items.iter().any(|p| p.id == b.id));
}

async fn access(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    let p = payment("acc-a", "TX-ACC", now);
    store.insert_payment(&p).await.unwrap();
    let (_, first) = token(&p, now);
    store.issue_token(&first).await.unwrap();
    let (_, second) = token(&p, now);
    store.issue_token(&second).await.unwrap();
    assert_eq!(
        store.token(&first.hash).await.unwrap().unwrap().status,
        TokenStatus::Replaced,
        "a new token replaces the unopened one"
    );

    let alice = account(910_001);
    let mallory = account(910_002);
    let bound = store.bind_token(&second.hash, alice, now).await.unwrap().expect("bound to alice");
    assert_eq!((bound.status, bound.telegram_user_id), (TokenStatus::Bound, Some(alice)));
    assert!(store.bind_token(&second.hash, mallory, now).await.unwrap().is_none(), "one account only");
    assert!(store.bind_token(&second.hash, alice, now).await.unwrap().is_some(), "the same account again");
    assert!(store.bind_token(&first.hash, alice, now).await.unwrap().is_none(), "a replaced token never binds");
    let (_, third) = token(&p, now);
    assert_eq!(store.issue_token(&third).await, Err(StoreError::Conflict("already_redeemed")));

    let m = membership(&bound, alice, now);
    assert_eq!(store.open_membership(&second.hash, &m).await.unwrap(), Applied::Now(Box::new(m.clone())));
    let other = membership(&bound, alice, now);
    assert_eq!(
        store.open_membership(&second.hash, &other).await.unwrap(),
        Applied::Already(m.id.clone()),
        "once per token"
    );
    assert_eq!(store.current_membership(alice).await.unwrap().unwrap().id, m.id);
    assert!(store.current_membership(mallory).await.unwrap().is_none());
    assert_eq!(store.last_membership(alice).await.unwrap().unwrap().id, m.id);
    assert!(store.last_membership(mallory).await.unwrap().is_none());

    store.set_invite(&m.id, "https://t.me/+contract1", now + Duration::minutes(5)).await.unwrap();
    assert_eq!(store.membership_by_invite("https://t.me/+contract1").await.unwrap().unwrap().id, m.id);
    assert!(store.membership_by_invite("https://t.me/+nobody").await.unwrap().is_none());

    let active = store.activate_membership(&m.id, now, now, Some("alice_tg")).await.unwrap().expect("activated");
    assert_eq!(active.status, MembershipStatus::Active);
    assert_eq!(active.expires_at, Some(now + Duration::days(30)));
    assert_eq!(active.telegram_username.as_deref(), Some("alice_tg"));
    assert!(store.activate_membership(&m.id, now, now, None).await.unwrap().is_none(), "activated once");
    assert_eq!(store.token(&second.hash).await.unwrap().unwrap().status, TokenStatus::Used);

    // A renewal extends from the current end, once.
    let renewal = payment("acc-a", "TX-ACC2", now);
    store.insert_payment(&renewal).await.unwrap();
    let (_, r) = token(&renewal, now);
    store.issue_token(&r).await.unwrap();
    store.bind_token(&r.hash, alice, now).await.unwrap().unwrap();
    let later = now + Duration::days(5);
    match store.extend_membership(&r.hash, &m.id, later).await.unwrap() {
        Applied::Now(extended) => assert_eq!(extended.expires_at, Some(now + Duration::days(60))),
        other => panic!("expected an extension, got {other:?}"),
    }
    assert_eq!(store.extend_membership(&r.hash, &m.id, later).await.unwrap(), Applied::Already(m.id.clone()));
    assert_eq!(store.membership(&m.id).await.unwrap().unwrap().expires_at, Some(now + Duration::days(60)));

    // A membership that ended (an expiry sweep won the race) is not extended: the token stays free.
    let swept = now + Duration::days(61);
    store.expire_membership(&m.id, swept, swept, &[]).await.unwrap().expect("expired");
    let late = payment("acc-a", "TX-ACC3", now);
    store.insert_payment(&late).await.unwrap();
    let (_, lt) = token(&late, now);
    store.issue_token(&lt).await.unwrap();
    store.bind_token(&lt.hash, alice, now).await.unwrap().unwrap();
    assert_eq!(store.extend_membership(&lt.hash, &m.id, swept).await.unwrap(), Applied::Ended);
    assert!(store.token(&lt.hash).await.unwrap().unwrap().membership_id.is_none());

    store.set_in_channel(&m.id, false, later).await.unwrap();
    let left = store.membership(&m.id).await.unwrap().unwrap();
    assert_eq!((left.in_channel, left.left_at), (false, Some(later)));
    let mine = store.memberships_of(&user("acc-a")).await.unwrap();
    assert_eq!(mine.len(), 1);
}

async fn notifications(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    let owner = user("notes-a");
    let mut ids = Vec::new();
    for i in 0..3 {
        let n = Notification {
            id: NotificationId::generate(now + Duration::seconds(i)).unwrap(),
            user_id: owner.clone(),
            kind: NotificationKind::PaymentVerified,
            title: format!("t{i}"),
            message: "m".into(),
            action_url: Some("https://t.me/x".into()),
            created_at: now + Duration::seconds(i),
            read: false,
        };
        store.add_notification(&n).await.unwrap();
        ids.push(n.id);
    }
    let first = store.notifications(&owner, &PageRequest { limit: 2, after: None }, now).await.unwrap();
    assert_eq!(first.items.iter().map(|n| n.id.clone()).collect::<Vec<_>>(), [ids[2].clone(), ids[1].clone()]);
    let second = store.notifications(&owner, &PageRequest { limit: 2, after: first.next.clone() }, now).await.unwrap();
    assert_eq!(second.items.iter().map(|n| n.id.clone()).collect::<Vec<_>>(), [ids[0].clone()]);
    assert!(second.next.is_none());
    assert!(!store.mark_read(&user("notes-b"), &ids[0], now).await.unwrap(), "not someone else's");
    assert!(store.mark_read(&owner, &ids[0], now).await.unwrap());
    let all = store.notifications(&owner, &PageRequest { limit: 10, after: None }, now).await.unwrap();
    assert!(all.items.iter().find(|n| n.id == ids[0]).unwrap().read);

    // Retention: read ones go after 30 days, unread ones after 90, whether or not a clean-up ran;
    // pages skip them and are short only at the end (a run of gone ones is read through).
    let other = user("notes-c");
    let at = |days: i64| now - Duration::days(days);
    let add = |days: i64, read: bool| {
        let created = at(days);
        let n = Notification {
            id: NotificationId::generate(created).unwrap(),
            user_id: other.clone(),
            kind: NotificationKind::PaymentVerified,
            title: format!("{days} days, read: {read}"),
            message: "m".into(),
            action_url: None,
            created_at: created,
            read,
        };
        let store = store.clone();
        async move {
            store.add_notification(&n).await.unwrap();
            n.id
        }
    };
    let unread_old = add(60, false).await;
    let mut gone = Vec::new();
    for days in [50, 45, 40, 35] {
        gone.push(add(days, true).await);
    }
    let newest = add(1, false).await;
    let page1 = store.notifications(&other, &PageRequest { limit: 1, after: None }, now).await.unwrap();
    assert_eq!(page1.items.iter().map(|n| n.id.clone()).collect::<Vec<_>>(), [newest]);
    let page2 = store.notifications(&other, &PageRequest { limit: 1, after: page1.next.clone() }, now).await.unwrap();
    assert_eq!(page2.items.iter().map(|n| &n.id).collect::<Vec<_>>(), [&unread_old], "read through");
    assert!(page2.next.is_none());
    assert!(!store.mark_read(&other, &gone[0], now).await.unwrap(), "past its retention");
    let later = now + Duration::days(31);
    assert!(
        store
            .notifications(&other, &PageRequest { limit: 10, after: None }, later)
            .await
            .unwrap()
            .items
            .iter()
            .all(|n| n.id != unread_old),
        "unread: 90 days"
    );
}

async fn updates(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    let id = 8_000_000 + (now.timestamp_subsec_micros() as i64);
    assert!(store.claim_update(id, now).await.unwrap());
    assert!(!store.claim_update(id, now).await.unwrap(), "being handled");
    store.release_update(id).await.unwrap();
    assert!(store.claim_update(id, now).await.unwrap(), "claimable again after a failure");
    store.complete_update(id, now).await.unwrap();
    assert!(!store.claim_update(id, now + Duration::minutes(5)).await.unwrap(), "a replay after it was handled");
    assert!(store.claim_update(id, now + Duration::hours(25)).await.unwrap(), "forgotten after 24 hours");

    // A handler that died (a killed function) loses its claim when the lease runs out.
    let killed = id + 1;
    assert!(store.claim_update(killed, now).await.unwrap());
    assert!(!store.claim_update(killed, now + Duration::seconds(20)).await.unwrap(), "the lease holds");
    assert!(store.claim_update(killed, now + Duration::seconds(31)).await.unwrap(), "Telegram's retry is processed");

    // Effects' keys: claimed under a lease, done for a week, then forgotten.
    let key = format!("contract-effect-{id}");
    let lease = Duration::seconds(120);
    assert!(store.claim_effect(&key, now, lease).await.unwrap());
    assert!(!store.claim_effect(&key, now, lease).await.unwrap(), "claimed");
    assert!(store.claim_effect(&key, now + Duration::seconds(121), lease).await.unwrap(), "the lease ran out");
    store.complete_effect(&key, now).await.unwrap();
    assert!(!store.claim_effect(&key, now + Duration::days(6), lease).await.unwrap(), "done");
    assert!(store.claim_effect(&key, now + Duration::days(8), lease).await.unwrap(), "forgotten after a week");
}

async fn lifecycle(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    // A member, and an unopened token that will expire.
    let who = account(920_001);
    let (_, _, m) = active_member(store, "life-a", "TX-LIFE", who, now).await;
    // The account a @username names, any case (support's search).
    assert_eq!(store.account_with_username("WHO").await.unwrap(), Some(who), "the membership's @who");
    assert_eq!(store.account_with_username("nobody_here").await.unwrap(), None);

    // The month's figure of members active, kept as the daily expiry run saw it.
    let active_now = store.counters(now).await.unwrap().members_active;
    assert!(active_now >= 1);
    store.record_active_members(now).await.unwrap();
    let later = store.counters(now + Duration::days(40)).await.unwrap().members_active_by_month;
    assert_eq!(later.len(), 12);
    let this_month = now.format("%Y-%m").to_string();
    assert_eq!(later.iter().find(|m| m.month == this_month).map(|m| m.active), Some(active_now));
    assert_eq!(later[0].active, active_now, "the latest month: as it is now");
    let q = payment("life-b", "TX-LIFE2", now);
    store.insert_payment(&q).await.unwrap();
    let (_, unopened) = token(&q, now);
    store.issue_token(&unopened).await.unwrap();

    let before = store.counters(now).await.unwrap();
    assert!(before.members_active >= 1 && before.tokens_pending >= 1 && before.tokens_recent >= 1);

    let day25 = now + Duration::hours(25);
    let expired = store.expire_tokens(day25, 1_000).await.unwrap() as i64;
    assert!(expired >= 1);
    assert_eq!(store.token(&unopened.hash).await.unwrap().unwrap().status, TokenStatus::Expired);
    assert_eq!(store.expire_tokens(day25, 1_000).await.unwrap(), 0, "once");

    assert!(store.active_in_channel(10_000).await.unwrap().iter().any(|x| x.id == m.id), "in the channel");

    let end = now + Duration::days(30);
    let first = PageRequest { limit: 100, after: None };
    let warned = store.ending_between(end - Duration::days(3), end, &first).await.unwrap();
    assert!(warned.items.iter().any(|x| x.id == m.id));
    assert!(store.claim_warning(&m.id, 3, end).await.unwrap());
    assert!(!store.claim_warning(&m.id, 3, end).await.unwrap());

    assert!(store.due_memberships(end - Duration::seconds(1), None, 100).await.unwrap().iter().all(|x| x.id != m.id));
    let after = end + Duration::seconds(1);
    assert!(store.due_memberships(after, None, 100).await.unwrap().iter().any(|x| x.id == m.id));
    assert!(store.due_memberships(after, Some(end), 100).await.unwrap().iter().all(|x| x.id != m.id), "paged past");
    assert!(
        store.due_memberships(after, Some(end - Duration::seconds(1)), 100).await.unwrap().iter().any(|x| x.id == m.id)
    );
    // A renewal awaited holds it past its end, until the hold runs out or is lifted.
    let hold = after + Duration::hours(24);
    store.set_renewal(&m.id, Some(hold)).await.unwrap();
    assert_eq!(store.membership(&m.id).await.unwrap().unwrap().renews_until, Some(hold));
    assert!(store.expire_membership(&m.id, after, after, &[]).await.unwrap().is_none(), "held");
    store.set_renewal(&m.id, None).await.unwrap();
    assert_eq!(store.membership(&m.id).await.unwrap().unwrap().renews_until, None);
    // The grace: a cutoff before the end expires nothing.
    assert!(
        store.expire_membership(&m.id, end - Duration::seconds(1), after, &[]).await.unwrap().is_none(),
        "in grace"
    );
    store.set_renewal(&MembershipId::generate(now).unwrap(), Some(hold)).await.unwrap();
    assert_eq!(
        store.expire_membership(&m.id, after, after, &[]).await.unwrap().unwrap().status,
        MembershipStatus::Expired
    );
    assert!(store.expire_membership(&m.id, after, after, &[]).await.unwrap().is_none(), "once");
    assert!(store.due_memberships(after, None, 100).await.unwrap().iter().all(|x| x.id != m.id));

    let c = store.counters(after).await.unwrap();
    assert_eq!(c.members_active, before.members_active - 1);
    assert_eq!(c.tokens_pending, before.tokens_pending - expired, "each expired token leaves the pending count");

    // Revoke: pending and active memberships and unused tokens of one user.
    let r = payment("life-c", "TX-LIFE3", now);
    store.insert_payment(&r).await.unwrap();
    let (_, rt) = token(&r, now);
    store.issue_token(&rt).await.unwrap();
    let rb = store.bind_token(&rt.hash, account(920_003), now).await.unwrap().unwrap();
    let rm = membership(&rb, account(920_003), now);
    store.open_membership(&rt.hash, &rm).await.unwrap();
    store.activate_membership(&rm.id, now, now, None).await.unwrap().unwrap();
    let revoked = store.revoke_user(&user("life-c"), "chargeback", now, &|_| vec![]).await.unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!((revoked[0].status, revoked[0].end_reason.as_deref()), (MembershipStatus::Revoked, Some("chargeback")));
    assert!(store.revoke_user(&user("life-c"), "again", now, &|_| vec![]).await.unwrap().is_empty());

    // Reconciliation reads who ended since a time, and who is active in the channel.
    let ended: Vec<_> = store.ended_since(now, 10_000).await.unwrap().into_iter().map(|x| x.id).collect();
    assert!(ended.contains(&m.id) && ended.contains(&rm.id), "expired and revoked both count");
    let at = |id: &MembershipId| ended.iter().position(|x| x == id);
    assert!(at(&m.id) < at(&rm.id), "the most recently ended first (m expired after rm was revoked)");
    let later: Vec<_> = store.ended_since(after + Duration::seconds(1), 10_000).await.unwrap();
    assert!(later.iter().all(|x| x.id != m.id && x.id != rm.id), "ended before the window");
    let in_channel = store.active_in_channel(10_000).await.unwrap();
    assert!(in_channel.iter().all(|x| x.id != m.id && x.id != rm.id), "ended memberships are not active");

    assert!(store.last_job_run("contract-job").await.unwrap().is_none());
    store.record_job_run("contract-job", now).await.unwrap();
    let at = store.last_job_run("contract-job").await.unwrap().unwrap();
    assert!((at - now).num_milliseconds().abs() < 1);
}

/// A requested run is written as it stands and read back whole; a later state replaces it.
async fn requested_runs(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    let id = RunId::generate(now).unwrap();
    assert_eq!(store.requested_run(&id).await.unwrap(), None);
    let queued = RequestedRun::queued(id.clone(), Job::ExpireTokens, "user:root", now);
    store.put_requested_run(&queued).await.unwrap();
    assert_eq!(store.requested_run(&id).await.unwrap(), Some(queued.clone()));
    let done = queued.started(now + Duration::seconds(1)).done(7, false, now + Duration::seconds(2));
    store.put_requested_run(&done).await.unwrap();
    let read = store.requested_run(&id).await.unwrap().unwrap();
    assert_eq!((read.status, read.processed, read.complete), (RunStatus::Done, Some(7), Some(false)));
    assert_eq!(read, done);
    // Another run does not disturb this one.
    let other = RequestedRun::queued(RunId::generate(now).unwrap(), Job::ReconcileMembers, "user:root", now);
    store.put_requested_run(&other).await.unwrap();
    assert_eq!(store.requested_run(&id).await.unwrap(), Some(done));
}

/// A job's cursor is kept apart from its last run: setting one leaves the other.
async fn job_cursors(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    assert_eq!(store.job_cursor("contract-cursor").await.unwrap(), None);
    store.record_job_run("contract-cursor", now).await.unwrap();
    store.set_job_cursor("contract-cursor", "100").await.unwrap();
    store.set_job_cursor("contract-cursor", "250").await.unwrap();
    assert_eq!(store.job_cursor("contract-cursor").await.unwrap().as_deref(), Some("250"));
    store.record_job_run("contract-cursor", now + Duration::seconds(1)).await.unwrap();
    assert_eq!(store.job_cursor("contract-cursor").await.unwrap().as_deref(), Some("250"));
    assert!(store.last_job_run("contract-cursor").await.unwrap().is_some());
}

/// One run of a job at a time, and one request: a slot is taken atomically, held again by its
/// holder, taken over once its time ran out, given back only by its holder.
async fn job_slots(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    use telegate_core::ports::JobSlot::{Request, Run};
    let until = now + Duration::minutes(15);
    assert_eq!(store.job_holder("contract-job", Run).await.unwrap(), None);
    assert_eq!(store.claim_job("contract-job", Run, "a", now, until).await.unwrap(), None, "taken");
    assert_eq!(store.claim_job("contract-job", Run, "b", now, until).await.unwrap().as_deref(), Some("a"));
    assert_eq!(store.claim_job("contract-job", Request, "b", now, until).await.unwrap(), None, "another slot");
    assert_eq!(store.claim_job("contract-job", Run, "a", now, until).await.unwrap(), None, "held again");
    store.release_job("contract-job", Run, "b").await.unwrap();
    assert_eq!(store.job_holder("contract-job", Run).await.unwrap().as_deref(), Some("a"), "only its holder frees it");
    let later = until + Duration::seconds(1);
    assert_eq!(
        store.claim_job("contract-job", Run, "c", later, later + Duration::minutes(15)).await.unwrap(),
        None,
        "ran out"
    );
    store.release_job("contract-job", Run, "c").await.unwrap();
    assert_eq!(store.job_holder("contract-job", Run).await.unwrap(), None);
    assert_eq!(store.claim_job("contract-job", Run, "d", now, until).await.unwrap(), None);
}

async fn audit(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    let who = user("audit-a");
    let mut ids = Vec::new();
    let actions = [
        AuditAction::PaymentSubmitted,
        AuditAction::PaymentValidated,
        AuditAction::TokenIssued,
        AuditAction::PaymentValidated,
    ];
    for (i, action) in actions.into_iter().enumerate() {
        let e = AuditEntry {
            id: AuditId::generate(now + Duration::milliseconds(i as i64)).unwrap(),
            at: now,
            actor: "user:support".into(),
            action,
            user_id: Some(who.clone()),
            telegram_user_id: Some(account(930_001)),
            details: serde_json::json!({"i": i}),
        };
        store.record(&e).await.unwrap();
        ids.push(e.id);
    }
    let page = store.audit(AuditOf::User(&who), &PageRequest { limit: 2, after: None }).await.unwrap();
    assert_eq!(
        page.items.iter().map(|e| e.action).collect::<Vec<_>>(),
        [AuditAction::PaymentValidated, AuditAction::TokenIssued]
    );
    let rest = store.audit(AuditOf::User(&who), &PageRequest { limit: 2, after: page.next.clone() }).await.unwrap();
    assert_eq!(rest.items.len(), 2);
    assert_eq!(rest.items[1].details, serde_json::json!({"i": 0}));
    let everyone = store.audit(AuditOf::Everyone, &PageRequest { limit: 100, after: None }).await.unwrap();
    assert!(ids.iter().all(|id| everyone.items.iter().any(|e| &e.id == id)));
    // One kind, on its own key: only its entries, newest first, page after page.
    let validated = AuditOf::Action(AuditAction::PaymentValidated);
    let kind = store.audit(validated, &PageRequest { limit: 100, after: None }).await.unwrap();
    assert!(kind.items.iter().all(|e| e.action == AuditAction::PaymentValidated), "{:?}", kind.items);
    let mine: Vec<&AuditId> = kind.items.iter().map(|e| &e.id).filter(|id| ids.contains(id)).collect();
    assert_eq!(mine, [&ids[3], &ids[1]]);
    let first = store.audit(validated, &PageRequest { limit: 1, after: None }).await.unwrap();
    let second = store.audit(validated, &PageRequest { limit: 1, after: first.next.clone() }).await.unwrap();
    assert!(first.next.is_some() && second.items.len() == 1, "two of that kind at least: two pages");
    assert!(second.items[0].id < first.items[0].id, "older, on the next page");
}

#[tokio::test]
async fn activation_racing_a_renewal_on_sqlite() {
    let dir = support::TempDir::new();
    let store = telegate_core::adapters::sqlite::SqliteStore::open(&dir.0.join("race.sqlite3")).unwrap();
    activation_racing_a_renewal(&(Arc::new(store) as Arc<dyn Store>), now(), true).await;
}

/// moto runs transactions without isolation (it snapshots whole tables and restores them on a
/// failed condition), so the concurrent form runs on AWS's DynamoDB Local, in the test command's
/// second pass (`AWS_ENDPOINT_URL_DYNAMODB`); on moto the two orders run one after the other.
#[tokio::test]
async fn activation_racing_a_renewal_on_dynamodb() {
    let real_engine = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok();
    let store = support::dynamo_store().await;
    activation_racing_a_renewal(&(Arc::new(store) as Arc<dyn Store>), now(), real_engine).await;
}

#[tokio::test]
async fn revoke_racing_activation_on_sqlite() {
    let dir = support::TempDir::new();
    let store = telegate_core::adapters::sqlite::SqliteStore::open(&dir.0.join("race.sqlite3")).unwrap();
    revoke_racing_activation(&(Arc::new(store) as Arc<dyn Store>), now(), true).await;
}

/// See `activation_racing_a_renewal_on_dynamodb` for why moto runs the two orders in turn.
#[tokio::test]
async fn revoke_racing_activation_on_dynamodb() {
    let real_engine = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok();
    let store = support::dynamo_store().await;
    revoke_racing_activation(&(Arc::new(store) as Arc<dyn Store>), now(), real_engine).await;
}

/// A revoke racing the first join never leaves the membership active (the defect: DynamoDB's
/// revoke read a pending membership, the join activated it, the revoke's condition failed and was
/// ignored: `revoked_count: 0` and the member stayed in).
async fn revoke_racing_activation(store: &Arc<dyn Store>, now: DateTime<Utc>, concurrent: bool) {
    for i in 0..40 {
        let who = account(980_000 + i);
        let payer = format!("rev-act-{i}");
        let p = payment(&payer, &format!("TX-REV-ACT-{i}"), now);
        store.insert_payment(&p).await.unwrap();
        let (_, t) = token(&p, now);
        store.issue_token(&t).await.unwrap();
        let bound = store.bind_token(&t.hash, who, now).await.unwrap().unwrap();
        let m = membership(&bound, who, now);
        store.open_membership(&t.hash, &m).await.unwrap();
        let (payer_id, none) = (user(&payer), |_: &Membership| vec![]);
        let revoke = || store.revoke_user(&payer_id, "chargeback", now, &none);
        let (activated, revoked) = if concurrent {
            tokio::join!(store.activate_membership(&m.id, now, now, None), revoke())
        } else if i % 2 == 0 {
            let a = store.activate_membership(&m.id, now, now, None).await;
            (a, revoke().await)
        } else {
            let r = revoke().await;
            (store.activate_membership(&m.id, now, now, None).await, r)
        };
        activated.unwrap();
        assert_eq!(revoked.unwrap().len(), 1, "iteration {i}: the membership is revoked, whichever came first");
        let end = store.membership(&m.id).await.unwrap().unwrap();
        assert_eq!(end.status, MembershipStatus::Revoked, "iteration {i}");
    }
}

/// A renewal landing while the first join activates the membership never loses its days (run
/// many times: the window is small).
async fn activation_racing_a_renewal(store: &Arc<dyn Store>, now: DateTime<Utc>, concurrent: bool) {
    for i in 0..40 {
        let who = account(950_000 + i);
        let p = payment(&format!("act-{i}"), &format!("TX-ACT-{i}"), now);
        store.insert_payment(&p).await.unwrap();
        let (_, first) = token(&p, now);
        store.issue_token(&first).await.unwrap();
        let bound = store.bind_token(&first.hash, who, now).await.unwrap().unwrap();
        let m = membership(&bound, who, now);
        store.open_membership(&first.hash, &m).await.unwrap();
        let q = payment(&format!("act-{i}"), &format!("TX-ACT-{i}-R"), now);
        store.insert_payment(&q).await.unwrap();
        let (_, renewal) = token(&q, now);
        store.issue_token(&renewal).await.unwrap();
        store.bind_token(&renewal.hash, who, now).await.unwrap().unwrap();
        let (activated, extended) = if concurrent {
            tokio::join!(
                store.activate_membership(&m.id, now, now, None),
                store.extend_membership(&renewal.hash, &m.id, now)
            )
        } else if i % 2 == 0 {
            let a = store.activate_membership(&m.id, now, now, None).await;
            (a, store.extend_membership(&renewal.hash, &m.id, now).await)
        } else {
            let e = store.extend_membership(&renewal.hash, &m.id, now).await;
            (store.activate_membership(&m.id, now, now, None).await, e)
        };
        activated.unwrap().expect("activated");
        assert!(matches!(extended.unwrap(), Applied::Now(_)));
        let end = store.membership(&m.id).await.unwrap().unwrap().expires_at;
        assert_eq!(end, Some(now + Duration::days(60)), "iteration {i}: both periods count");
    }
}

/// A pending membership closed because its token expired or was replaced before the join is
/// "ended" like any other: reconciliation reads it on both stores.
async fn memberships_that_never_started_are_reconciled(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    let opened = |who: &'static str, tx: &'static str, tg: i64| {
        let store = store.clone();
        async move {
            let p = payment(who, tx, now);
            store.insert_payment(&p).await.unwrap();
            let (_, t) = token(&p, now);
            store.issue_token(&t).await.unwrap();
            let bound = store.bind_token(&t.hash, account(tg), now).await.unwrap().unwrap();
            let m = membership(&bound, account(tg), now);
            store.open_membership(&t.hash, &m).await.unwrap();
            (p, m)
        }
    };
    let (_, by_expiry) = opened("never-a", "TX-NEVER-A", 960_001).await;
    let (replaced_payment, by_replacement) = opened("never-b", "TX-NEVER-B", 960_002).await;
    let day2 = now + Duration::hours(25);
    let (_, fresh) = token(&replaced_payment, day2);
    store.issue_token(&fresh).await.unwrap();
    assert!(store.expire_tokens(day2, 1_000).await.unwrap() >= 1);
    for m in [&by_expiry, &by_replacement] {
        assert_eq!(store.membership(&m.id).await.unwrap().unwrap().status, MembershipStatus::Expired);
    }
    let ended: Vec<_> = store.ended_since(now, 10_000).await.unwrap().into_iter().map(|x| x.id).collect();
    assert!(ended.contains(&by_expiry.id), "closed by the token's expiry");
    assert!(ended.contains(&by_replacement.id), "closed by the token's replacement");
}

/// The sweeps work in bounded batches: at most `limit` per call, the rest on the next call.
async fn batches(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    // Far in the future, so that only this section's tokens and notifications are due.
    let later = now + Duration::days(3_650);
    for i in 0..3 {
        let p = payment(&format!("batch-{i}"), &format!("TX-BATCH-{i}"), later);
        store.insert_payment(&p).await.unwrap();
        let (_, t) = token(&p, later);
        store.issue_token(&t).await.unwrap();
    }
    let due = later + Duration::hours(25);
    assert_eq!(store.expire_tokens(due, 2).await.unwrap(), 2);
    assert_eq!(store.expire_tokens(due, 2).await.unwrap(), 1);
    assert_eq!(store.expire_tokens(due, 2).await.unwrap(), 0);

    let owner = user("batch-notes");
    for i in 0..3 {
        let n = Notification {
            id: NotificationId::generate(later + Duration::seconds(i)).unwrap(),
            user_id: owner.clone(),
            kind: NotificationKind::AccessGranted,
            title: "t".into(),
            message: "m".into(),
            action_url: None,
            created_at: later + Duration::seconds(i),
            read: i == 0,
        };
        store.add_notification(&n).await.unwrap();
    }
    let (read_before, unread_before) = (later + Duration::days(31), later + Duration::days(91));
    assert_eq!(store.delete_old_notifications(read_before, unread_before, 2).await.unwrap(), 2);
    assert_eq!(store.delete_old_notifications(read_before, unread_before, 2).await.unwrap(), 1);
    assert_eq!(store.delete_old_notifications(read_before, unread_before, 2).await.unwrap(), 0);
}

/// Members ending at the same instant (an import, a season's end) are read a page at a time, each
/// once: a page's edge skips none of them.
async fn ending_at_the_same_instant(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    // Far in the future, so that only this section's members end then.
    let later = now + Duration::days(7_300);
    let mut opened = std::collections::BTreeSet::new();
    let mut end = None;
    for i in 0..7 {
        let p = payment(&format!("tie-{i}"), &format!("TX-TIE-{i}"), later);
        store.insert_payment(&p).await.unwrap();
        let (_, t) = token(&p, later);
        store.issue_token(&t).await.unwrap();
        let who = account(940_000 + i);
        let bound = store.bind_token(&t.hash, who, later).await.unwrap().unwrap();
        let m = membership(&bound, who, later);
        store.open_membership(&t.hash, &m).await.unwrap();
        let active = store.activate_membership(&m.id, later, later, None).await.unwrap().unwrap();
        assert!(end.is_none_or(|e| Some(e) == active.expires_at), "one end for all");
        end = active.expires_at;
        opened.insert(active.id.to_string());
    }
    let end = end.unwrap();
    let mut seen = Vec::new();
    let mut page = PageRequest { limit: 3, after: None };
    for _ in 0..5 {
        let got = store.ending_between(end - Duration::seconds(1), end, &page).await.unwrap();
        assert!(got.items.len() <= 3);
        seen.extend(got.items.iter().map(|m| m.id.to_string()));
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "each once: {seen:?}");
    assert_eq!(seen.into_iter().collect::<std::collections::BTreeSet<_>>(), opened);
    let none =
        store.ending_between(end, end + Duration::days(1), &PageRequest { limit: 3, after: None }).await.unwrap();
    assert!(none.items.is_empty() && none.next.is_none(), "(from, until]: not those ending at `from`");
}

/// Account bars: set, read, replaced, lifted once; a payment reopened only once its access ended.
async fn bars(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    let who = account(970_001);
    assert!(store.account_bar(who).await.unwrap().is_none());
    let bar = AccountBar { telegram_user_id: who, reason: "spam".into(), by: "telegram:1".into(), at: now };
    store.bar_account(&bar).await.unwrap();
    assert_eq!(store.account_bar(who).await.unwrap(), Some(bar.clone()));
    let again = AccountBar { reason: "again".into(), ..bar };
    store.bar_account(&again).await.unwrap();
    assert_eq!(store.account_bar(who).await.unwrap().unwrap().reason, "again");
    assert!(store.lift_bar(who).await.unwrap());
    assert!(!store.lift_bar(who).await.unwrap(), "lifted once");
    assert!(store.account_bar(who).await.unwrap().is_none());

    let (p, t, _) = active_member(store, "reopen-a", "TX-REOPEN", who, now).await;
    assert_eq!(store.reopen_payment(&p.id).await, Err(StoreError::Conflict("access_still_open")));
    store.revoke_user(&user("reopen-a"), "chargeback", now, &|_| vec![]).await.unwrap();
    assert_eq!(store.reopen_payment(&p.id).await.unwrap(), 1);
    assert_eq!(store.token(&t.hash).await.unwrap().unwrap().status, TokenStatus::Revoked);
    let (_, fresh) = token(&p, now);
    store.issue_token(&fresh).await.expect("a new token once reopened");
}

/// A record that does not parse is reported as corrupt, not as the store being down, and not
/// guessed around: a payment whose creation time was damaged on disk or in the table.
#[tokio::test]
async fn a_damaged_record_is_reported_as_corrupt_on_both_stores() {
    let now = now();
    let p = payment("corrupt-a", "TX-CORRUPT", now);

    let dir = crate::support::TempDir::new();
    let path = dir.0.join("contract.sqlite3");
    let sqlite = telegate_core::adapters::sqlite::SqliteStore::open(&path).unwrap();
    sqlite.insert_payment(&p).await.unwrap();
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute("UPDATE payments SET created_at = 'yesterday' WHERE id = ?1", [p.id.as_str()]).unwrap();
    let damaged = sqlite.payment(&p.id).await;
    assert!(matches!(damaged, Err(StoreError::Corrupt(ref why)) if why.contains("created_at")), "{damaged:?}");

    let dynamo = crate::support::dynamo_store().await;
    dynamo.insert_payment(&p).await.unwrap();
    let config = telegate_core::adapters::aws::sdk_config().await;
    aws_sdk_dynamodb::Client::new(&config)
        .update_item()
        .table_name(dynamo.table_name())
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("PAY#{}", p.id)))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("PAY".into()))
        .update_expression("SET created_at = :bad")
        .expression_attribute_values(":bad", aws_sdk_dynamodb::types::AttributeValue::S("yesterday".into()))
        .send()
        .await
        .unwrap();
    let damaged = dynamo.payment(&p.id).await;
    assert!(matches!(damaged, Err(StoreError::Corrupt(_))), "{damaged:?}");
}

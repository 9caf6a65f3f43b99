//! In-memory stand-ins for the role traits, for the use cases' unit tests: no store, no HTTP, a
//! rule tested in milliseconds. Each keeps what it is given in plain collections; the parts of a
//! role no unit test uses say so when called.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Auditor, Inbox, Issuer, Notifier, PaymentDesk, Status};
use crate::adapters::clock::TestClock;
use crate::config::Settings;
use crate::domain::{
    AuditEntry, Membership, MembershipId, MembershipStatus, Notification, NotificationId, Payment, PaymentId,
    PaymentStatus, TelegramUserId, TokenHash, TokenRecord, TokenStatus, UserId,
};
use crate::ports::*;

#[derive(Default)]
pub struct Kept {
    pub payments: Vec<Payment>,
    pub tokens: Vec<TokenRecord>,
    pub memberships: Vec<Membership>,
    pub notifications: Vec<Notification>,
    pub audit: Vec<AuditEntry>,
    pub attempts: Vec<Attempt>,
    pub hits: HashMap<String, u32>,
    pub queued: Vec<Envelope>,
}

/// Every role the unit tests need, over one set of collections.
#[derive(Default)]
pub struct Memory(Mutex<Kept>);

impl Memory {
    pub fn kept(&self) -> MutexGuard<'_, Kept> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn newest_first<T: Clone>(items: &[T], keep: impl Fn(&T) -> bool) -> Vec<T> {
    items.iter().rev().filter(|i| keep(i)).cloned().collect()
}

#[async_trait]
impl PaymentStore for Memory {
    async fn insert_payment(&self, payment: &Payment) -> Result<(), StoreError> {
        let mut kept = self.kept();
        if kept.payments.iter().any(|p| p.transaction_key() == payment.transaction_key()) {
            return Err(StoreError::Conflict("transaction_id_taken"));
        }
        kept.payments.push(payment.clone());
        Ok(())
    }
    async fn payment(&self, id: &PaymentId) -> Result<Option<Payment>, StoreError> {
        Ok(self.kept().payments.iter().find(|p| &p.id == id).cloned())
    }
    async fn payment_with_transaction(&self, transaction_id: &str) -> Result<Option<Payment>, StoreError> {
        let key = crate::domain::transaction_key(transaction_id);
        Ok(self.kept().payments.iter().find(|p| p.transaction_key() == key).cloned())
    }
    async fn payments_of(&self, user: &UserId) -> Result<Vec<Payment>, StoreError> {
        Ok(newest_first(&self.kept().payments, |p| &p.user_id == user))
    }
    async fn list_payments(
        &self,
        status: Option<PaymentStatus>,
        page: &PageRequest,
    ) -> Result<Page<Payment>, StoreError> {
        let rows = newest_first(&self.kept().payments, |p| status.is_none_or(|s| p.status == s));
        Ok(Page::of(rows, page.limit, |p| p.id.to_string()))
    }
    async fn review_payment(&self, id: &PaymentId, review: &Review) -> Result<Option<Payment>, StoreError> {
        let mut kept = self.kept();
        let Some(p) = kept.payments.iter_mut().find(|p| &p.id == id) else { return Ok(None) };
        if p.status != PaymentStatus::TransactionSubmitted {
            return Ok(None);
        }
        p.status = review.to;
        p.reviewed_by = Some(review.by.clone());
        p.admin_notes = review.admin_notes.clone().or(p.admin_notes.take());
        p.reject_reason = review.reason.clone();
        if let Some(tx) = &review.transaction_id {
            p.transaction_id = tx.clone();
        }
        p.updated_at = review.at;
        Ok(Some(p.clone()))
    }
    async fn move_refund(
        &self,
        id: &PaymentId,
        to: PaymentStatus,
        note: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Option<Payment>, StoreError> {
        let mut kept = self.kept();
        let Some(p) = kept.payments.iter_mut().find(|p| &p.id == id).filter(|p| p.status.may_become(to)) else {
            return Ok(None);
        };
        p.status = to;
        p.refund_note = note.map(str::to_owned).or(p.refund_note.take());
        p.updated_at = at;
        Ok(Some(p.clone()))
    }
}

#[async_trait]
impl AccessStore for Memory {
    /// As the stores: unopened tokens of the payment are replaced; one opened, or a refund, refuses.
    async fn issue_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let mut kept = self.kept();
        let of_payment = |t: &TokenRecord| t.payment_id == token.payment_id;
        if kept.payments.iter().any(|p| p.id == token.payment_id && p.status.is_refund()) {
            return Err(StoreError::Conflict("payment_refunded"));
        }
        if kept.tokens.iter().any(|t| of_payment(t) && matches!(t.status, TokenStatus::Bound | TokenStatus::Used)) {
            return Err(StoreError::Conflict("already_redeemed"));
        }
        kept.tokens.retain(|t| !(of_payment(t) && t.status == TokenStatus::Pending));
        kept.tokens.push(token.clone());
        Ok(())
    }
    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.kept().tokens.iter().find(|t| &t.hash == hash).cloned())
    }
    async fn live_tokens(&self, _: &PaymentId) -> Result<Vec<TokenHash>, StoreError> {
        unimplemented!("no unit test refunds")
    }
    async fn bind_token(
        &self,
        _: &TokenHash,
        _: TelegramUserId,
        _: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        unimplemented!("no unit test binds a token")
    }
    async fn open_membership(&self, _: &TokenHash, _: &Membership) -> Result<Applied, StoreError> {
        unimplemented!("no unit test opens a membership")
    }
    async fn extend_membership(
        &self,
        _: &TokenHash,
        _: &MembershipId,
        _: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        unimplemented!("no unit test extends a membership")
    }
    async fn membership(&self, id: &MembershipId) -> Result<Option<Membership>, StoreError> {
        Ok(self.kept().memberships.iter().find(|m| &m.id == id).cloned())
    }
    async fn current_membership(&self, account: TelegramUserId) -> Result<Option<Membership>, StoreError> {
        let holds = |m: &Membership| {
            m.telegram_user_id == account && matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active)
        };
        Ok(newest_first(&self.kept().memberships, holds).into_iter().next())
    }
    async fn last_membership(&self, account: TelegramUserId) -> Result<Option<Membership>, StoreError> {
        Ok(newest_first(&self.kept().memberships, |m| m.telegram_user_id == account).into_iter().next())
    }
    async fn account_with_username(&self, username: &str) -> Result<Option<TelegramUserId>, StoreError> {
        let named = |m: &Membership| m.telegram_username.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(username));
        Ok(newest_first(&self.kept().memberships, named).into_iter().next().map(|m| m.telegram_user_id))
    }
    async fn membership_by_invite(&self, link: &str) -> Result<Option<Membership>, StoreError> {
        Ok(self.kept().memberships.iter().find(|m| m.invite_link.as_deref() == Some(link)).cloned())
    }
    async fn memberships_of(&self, user: &UserId) -> Result<Vec<Membership>, StoreError> {
        Ok(newest_first(&self.kept().memberships, |m| &m.user_id == user))
    }
    async fn set_invite(&self, _: &MembershipId, _: &str, _: DateTime<Utc>) -> Result<(), StoreError> {
        unimplemented!("no unit test invites")
    }
    async fn activate_membership(
        &self,
        _: &MembershipId,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
        _: Option<&str>,
    ) -> Result<Option<Membership>, StoreError> {
        unimplemented!("no unit test activates a membership")
    }
    async fn set_in_channel(&self, _: &MembershipId, _: bool, _: DateTime<Utc>) -> Result<(), StoreError> {
        unimplemented!("no unit test moves a member")
    }
    async fn set_renewal(&self, _: &MembershipId, _: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        unimplemented!("no unit test awaits a renewal")
    }
}

#[async_trait]
impl NotificationStore for Memory {
    async fn add_notification(&self, notification: &Notification) -> Result<(), StoreError> {
        self.kept().notifications.push(notification.clone());
        Ok(())
    }
    async fn notifications(
        &self,
        user: &UserId,
        page: &PageRequest,
        _: DateTime<Utc>,
    ) -> Result<Page<Notification>, StoreError> {
        let rows = newest_first(&self.kept().notifications, |n| &n.user_id == user);
        Ok(Page::of(rows, page.limit, |n| n.id.to_string()))
    }
    async fn mark_read(&self, user: &UserId, id: &NotificationId, _: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut kept = self.kept();
        let found = kept.notifications.iter_mut().find(|n| &n.user_id == user && &n.id == id);
        Ok(found.map(|n| n.read = true).is_some())
    }
    async fn delete_old_notifications(&self, _: DateTime<Utc>, _: DateTime<Utc>, _: u32) -> Result<u64, StoreError> {
        unimplemented!("no unit test cleans up")
    }
}

#[async_trait]
impl AuditLog for Memory {
    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.kept().audit.push(entry.clone());
        Ok(())
    }
    async fn audit(&self, of: AuditOf<'_>, page: &PageRequest) -> Result<Page<AuditEntry>, StoreError> {
        let rows = newest_first(&self.kept().audit, |e| match of {
            AuditOf::Everyone => true,
            AuditOf::User(u) => e.user_id.as_ref() == Some(u),
            AuditOf::Action(a) => e.action == a,
        });
        Ok(Page::of(rows, page.limit, |e| e.id.to_string()))
    }
}

#[async_trait]
impl Stats for Memory {
    async fn counters(&self, _: DateTime<Utc>) -> Result<Counters, StoreError> {
        unimplemented!("no unit test reads the statistics")
    }
    async fn count_attempt(&self, attempt: Attempt, _: DateTime<Utc>) -> Result<(), StoreError> {
        self.kept().attempts.push(attempt);
        Ok(())
    }
    async fn count_lapse(&self, _: DateTime<Utc>) -> Result<(), StoreError> {
        unimplemented!("no unit test lapses")
    }
    async fn record_active_members(&self, _: DateTime<Utc>) -> Result<(), StoreError> {
        unimplemented!("no unit test runs the expiry job")
    }
    async fn count_subscription(&self, _: DateTime<Utc>, _: i64) -> Result<(), StoreError> {
        unimplemented!("no unit test counts subscriptions")
    }
}

#[async_trait]
impl RateLimits for Memory {
    async fn hit(&self, key: &str, _: DateTime<Utc>) -> Result<u32, StoreError> {
        let mut kept = self.kept();
        let count = kept.hits.entry(key.to_owned()).or_default();
        *count += 1;
        Ok(*count)
    }
    async fn hits(&self, key: &str, _: DateTime<Utc>) -> Result<u32, StoreError> {
        Ok(self.kept().hits.get(key).copied().unwrap_or_default())
    }
}

#[async_trait]
impl Queue for Memory {
    async fn enqueue(&self, envelopes: Vec<Envelope>) -> Result<(), QueueError> {
        self.kept().queued.extend(envelopes);
        Ok(())
    }
}

/// The use cases under test, built on one `Memory` and a test clock.
pub struct Rig {
    pub memory: Arc<Memory>,
    pub clock: Arc<TestClock>,
    pub settings: Arc<Settings>,
}

impl Rig {
    pub fn new() -> Self {
        let env: HashMap<&str, &str> = [
            ("TELEGRAM_CHANNEL_ID", "-1001"),
            ("TELEGRAM_BOT_USERNAME", "unit_bot"),
            ("TELEGRAM_WEBHOOK_SECRET", "unit-secret"),
            ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
        ]
        .into_iter()
        .collect();
        let settings = Settings::from_env(&|k| env.get(k).map(|v| v.to_string()))
            .unwrap_or_else(|e| panic!("the unit tests' settings: {e}"));
        Self { memory: Arc::default(), clock: Arc::default(), settings: Arc::new(settings) }
    }

    pub fn auditor(&self) -> Auditor {
        let m = &self.memory;
        Auditor { audit_log: m.clone(), stats: m.clone(), queue: m.clone(), clock: self.clock.clone() }
    }

    pub fn notifier(&self) -> Notifier {
        let m = &self.memory;
        Notifier { notifications: m.clone(), payments: m.clone(), queue: m.clone(), clock: self.clock.clone() }
    }

    pub fn issuer(&self) -> Issuer {
        let m = &self.memory;
        Issuer {
            access: m.clone(),
            auditor: self.auditor(),
            clock: self.clock.clone(),
            limits: m.clone(),
            notifier: self.notifier(),
            payments: m.clone(),
            settings: self.settings.clone(),
        }
    }

    pub fn desk(&self) -> PaymentDesk {
        PaymentDesk {
            auditor: self.auditor(),
            clock: self.clock.clone(),
            issuer: Arc::new(self.issuer()),
            notifier: self.notifier(),
            payments: self.memory.clone(),
            settings: self.settings.clone(),
        }
    }

    pub fn inbox(&self) -> Inbox {
        Inbox { clock: self.clock.clone(), notifications: self.memory.clone() }
    }

    pub fn status(&self) -> Status {
        Status { access: self.memory.clone(), clock: self.clock.clone(), settings: self.settings.clone() }
    }
}

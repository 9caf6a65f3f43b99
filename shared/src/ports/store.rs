//! What the use cases store, cut by role. Each adapter (SQLite, DynamoDB) implements every role,
//! and one contract-test body per role runs against both.

use super::Stats;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Envelope, Page, PageRequest};
use crate::domain::{
    AccountBar, AuditEntry, Exemption, Invoice, Membership, MembershipId, Notification, NotificationId, Payment,
    PaymentId, PaymentStatus, RequestedRun, RunId, TelegramUserId, TokenHash, TokenRecord, UserId,
};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StoreError {
    /// A uniqueness or state condition failed; the code says which (e.g. `transaction_id_taken`).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("store unavailable: {0}")]
    Unavailable(#[source] super::Cause),
    /// A stored record that does not parse (a missing attribute, a bad time, an unknown status):
    /// never guessed around; it says which.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// A review of a submitted payment by support.
#[derive(Clone, Debug)]
pub struct Review {
    pub to: PaymentStatus,
    pub by: UserId,
    pub admin_notes: Option<String>,
    pub reason: Option<String>,
    /// Support may correct the transaction id while validating; it stays unique.
    pub transaction_id: Option<String>,
    pub at: DateTime<Utc>,
    /// A validation's web revenue (the offer's `price_cents`), counted in the same write.
    pub revenue_cents: Option<i64>,
}

impl Review {
    /// What this review adds to the web revenue, kept with the payment for its refund.
    pub fn counted_cents(&self) -> Option<i64> {
        self.revenue_cents.filter(|_| self.to == PaymentStatus::Validated)
    }
}

#[async_trait]
pub trait PaymentStore: Send + Sync {
    /// Fails with `Conflict("transaction_id_taken")` when the transaction id is already used.
    async fn insert_payment(&self, payment: &Payment) -> Result<(), StoreError>;
    async fn payment(&self, id: &PaymentId) -> Result<Option<Payment>, StoreError>;
    /// The payment that holds a transaction id (compared as `domain::transaction_key` folds it).
    async fn payment_with_transaction(&self, transaction_id: &str) -> Result<Option<Payment>, StoreError>;
    /// A user's own payments, newest first.
    async fn payments_of(&self, user: &UserId) -> Result<Vec<Payment>, StoreError>;
    /// All payments (optionally of one status), newest first.
    async fn list_payments(
        &self,
        status: Option<PaymentStatus>,
        page: &PageRequest,
    ) -> Result<Page<Payment>, StoreError>;
    /// Moves a submitted payment to validated or rejected, atomically. `Ok(None)` when the payment
    /// is not (or no longer) awaiting review; the caller reads it to say why.
    async fn review_payment(&self, id: &PaymentId, review: &Review) -> Result<Option<Payment>, StoreError>;
    /// Moves a payment along its refund (`PaymentStatus::may_become`), atomically, with `note`
    /// (why it was asked for, or why Telegram refused it; `None` keeps the one it has); a payment in Stars that becomes
    /// `refunded` takes its Stars out of the revenue in the same write. `Ok(None)` when that move
    /// is not allowed from where the payment now is (or there is no such payment); the caller
    /// reads it to say why.
    async fn move_refund(
        &self,
        id: &PaymentId,
        to: PaymentStatus,
        note: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Option<Payment>, StoreError>;
}

/// The outcome of applying a token's period to a membership: at most once per token.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    Now(Box<Membership>),
    Already(MembershipId),
    /// Nothing changed: the membership ended (expired, revoked) before the token could extend it,
    /// or the token itself is no longer bound (revoked or expired since it was bound).
    Ended,
}

/// What taking back a token's days did to the membership they were in.
#[derive(Clone, Debug, PartialEq)]
pub enum Withdrawn {
    /// The token had no live membership (never redeemed, or it ended): the token alone is revoked.
    Nothing,
    /// The membership lasts on what its other payments bought.
    Shortened(Box<Membership>),
    /// Nothing else paid for it: revoked.
    Revoked(Box<Membership>),
}

/// Why a token's period was not applied when its conditional write failed: it was applied before
/// (to the membership it names), or it is no longer bound (revoked or expired meanwhile).
pub fn applied_before(token: &TokenRecord) -> Applied {
    match &token.membership_id {
        Some(id) => Applied::Already(id.clone()),
        None => Applied::Ended,
    }
}

#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Stores a new token for a payment, replacing its earlier unopened ones. Fails with
    /// `Conflict("already_redeemed")` when a token of the payment was already opened in Telegram,
    /// and with `Conflict("payment_refunded")` when the payment's refund was asked for (decided
    /// in the same write as the token: a refund is final whatever the timing).
    async fn issue_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError>;
    /// The payment's tokens that may still give access (pending, bound or used, or expired while
    /// the membership it was bound to waited on another token): what a refund takes back.
    async fn live_tokens(&self, payment: &PaymentId) -> Result<Vec<TokenHash>, StoreError>;
    /// Binds a pending, unexpired token to one Telegram account, atomically. Returns the token as
    /// it now stands when it is bound to `account` (by this call or an earlier one), else `None`.
    async fn bind_token(
        &self,
        hash: &TokenHash,
        account: TelegramUserId,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Opens a pending membership with the token's period, once per token, only while the token
    /// is still bound (`Ended` otherwise).
    async fn open_membership(&self, hash: &TokenHash, membership: &Membership) -> Result<Applied, StoreError>;
    /// Adds the token's days to an existing membership (pending: to the days not yet started;
    /// active: from the later of now and its end), once per token; `Ended` when the membership is
    /// no longer pending or active (an expiry sweep won the race).
    async fn extend_membership(
        &self,
        hash: &TokenHash,
        id: &MembershipId,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError>;

    async fn membership(&self, id: &MembershipId) -> Result<Option<Membership>, StoreError>;
    /// The account's current membership: the latest one still pending or active.
    async fn current_membership(&self, account: TelegramUserId) -> Result<Option<Membership>, StoreError>;
    /// The account's newest membership, whatever its status: whose web account it belongs to.
    async fn last_membership(&self, account: TelegramUserId) -> Result<Option<Membership>, StoreError>;
    /// The account a membership last named with this @username (without the `@`, any case): a
    /// search aid for support, never a decision (a username changes hands).
    async fn account_with_username(&self, username: &str) -> Result<Option<TelegramUserId>, StoreError>;
    async fn membership_by_invite(&self, link: &str) -> Result<Option<Membership>, StoreError>;
    /// A user's memberships, newest first.
    async fn memberships_of(&self, user: &UserId) -> Result<Vec<Membership>, StoreError>;
    async fn set_invite(&self, id: &MembershipId, link: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Pending → active on the first join at `now`: the days paid count from `period_from` (the
    /// join, or a Stars payment's time); the membership's tokens become used. `None` when it was
    /// not pending (a replayed or concurrent join).
    async fn activate_membership(
        &self,
        id: &MembershipId,
        period_from: DateTime<Utc>,
        now: DateTime<Utc>,
        username: Option<&str>,
    ) -> Result<Option<Membership>, StoreError>;
    async fn set_in_channel(&self, id: &MembershipId, in_channel: bool, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Holds the membership past its end until `until` (a Stars subscription's renewal may still
    /// arrive), or, with `None`, no longer.
    async fn set_renewal(&self, id: &MembershipId, until: Option<DateTime<Utc>>) -> Result<(), StoreError>;
}

#[async_trait]
pub trait NotificationStore: Send + Sync {
    async fn add_notification(&self, notification: &Notification) -> Result<(), StoreError>;
    /// Newest first; `page.after` is the id of the last notification already seen. Notifications
    /// past their retention (`Notification::kept_until`) at `now` are gone, whether or not a
    /// clean-up removed them yet; a page is short only when nothing follows it.
    async fn notifications(
        &self,
        user: &UserId,
        page: &PageRequest,
        now: DateTime<Utc>,
    ) -> Result<Page<Notification>, StoreError>;
    /// `false` when the user has no such notification (or it is past its retention at `now`).
    async fn mark_read(&self, user: &UserId, id: &NotificationId, now: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Deletes read notifications created before `read_before` and unread ones before
    /// `unread_before`, at most `limit`; fewer than `limit` deleted means none is left.
    async fn delete_old_notifications(
        &self,
        read_before: DateTime<Utc>,
        unread_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;
}

/// How long a claim on an update holds while it is being handled: longer than the webhook
/// function's timeout (10 s), so a live handler is never doubled.
pub const UPDATE_LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// How long a processed Telegram `update_id` is remembered: Telegram stops retrying an update
/// long before (it keeps undelivered updates for 24 hours).
pub const UPDATE_RETENTION: chrono::Duration = chrono::Duration::hours(24);
/// How long a completed effect's key is remembered: longer than any queue redelivery.
pub const EFFECT_RETENTION: chrono::Duration = chrono::Duration::days(7);

/// Telegram's `update_id`s: each update has one effect, however often Telegram delivers it.
#[async_trait]
pub trait UpdateLog: Send + Sync {
    /// Claims an update for `UPDATE_LEASE`: `false` when it was handled (a replay), or is being
    /// handled under a lease that has not run out. A handler that died (a killed function) loses
    /// its claim when the lease ends, so Telegram's retry is processed.
    async fn claim_update(&self, update_id: i64, now: DateTime<Utc>) -> Result<bool, StoreError>;
    /// The update was handled: it stays claimed for `UPDATE_RETENTION`.
    async fn complete_update(&self, update_id: i64, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Gives a claim back after a failure, so that Telegram's retry is processed.
    async fn release_update(&self, update_id: i64) -> Result<(), StoreError>;
}

/// The queued effects' idempotency keys: what makes a redelivery harmless.
#[async_trait]
pub trait EffectLog: Send + Sync {
    /// Claims a queued effect by its idempotency key for `lease`: `false` when it is done, or
    /// claimed by a consumer whose lease has not run out (a consumer that died loses its claim).
    async fn claim_effect(&self, key: &str, now: DateTime<Utc>, lease: chrono::Duration) -> Result<bool, StoreError>;
    /// The effect happened: its key stays claimed for `EFFECT_RETENTION`.
    async fn complete_effect(&self, key: &str, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// The effect failed: the next delivery may try again.
    async fn release_effect(&self, key: &str) -> Result<(), StoreError>;
}

/// What the scheduled jobs and the admin side need. The sweeps read an index by end date: they
/// touch the rows that are due, never the whole table.
#[async_trait]
pub trait LifecycleStore: Send + Sync {
    /// Pending or bound tokens past their end become expired (at most `limit`, earliest end
    /// first), with the memberships they opened that never started. Returns the number expired:
    /// fewer than `limit` means none is left.
    async fn expire_tokens(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
    /// Active memberships whose end is after `after` (when given) and at or before `cutoff`,
    /// earliest end first, at most `limit`.
    async fn due_memberships(
        &self,
        cutoff: DateTime<Utc>,
        after: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Membership>, StoreError>;
    /// Active → expired at `now`, only while it is still active, its end still at or before
    /// `cutoff` (a renewal wins) and no renewal is awaited (`renews_until` unset or past `now`).
    /// `intents` (the removal from the channel) are written in the same transaction: see `EffectOutbox`.
    async fn expire_membership(
        &self,
        id: &MembershipId,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        intents: &[Envelope],
    ) -> Result<Option<Membership>, StoreError>;
    /// Active memberships ending in `(from, until]`, by end (ties by id), a page at a time:
    /// `page.after` is the `next` of the page before. Many members may end at the same instant (an
    /// import, a season's end): a page's edge never skips one.
    async fn ending_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page<Membership>, StoreError>;
    /// Claims the warning for one threshold of one period (identified by its end); `false` if sent before.
    async fn claim_warning(
        &self,
        id: &MembershipId,
        threshold_days: u32,
        period_end: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Revokes the user's unused tokens, then their pending and active memberships (those the
    /// tokens opened included, however fresh); returns the memberships revoked. Each revocation
    /// writes `intents(membership)` in its own transaction (see `EffectOutbox`). Decisions read
    /// the items themselves, never an index alone.
    async fn revoke_user(
        &self,
        user: &UserId,
        reason: &str,
        now: DateTime<Utc>,
        intents: &IntentsFor<'_>,
    ) -> Result<Vec<Membership>, StoreError>;
    /// Revokes one pending or active membership and nothing else of its payer's, with its intents
    /// in the same transaction (a channel administrator removed its account). `None`: not live.
    async fn revoke_membership(
        &self,
        id: &MembershipId,
        reason: &str,
        now: DateTime<Utc>,
        intents: &IntentsFor<'_>,
    ) -> Result<Option<Membership>, StoreError>;
    /// Takes back what one token's payment bought (the payment was refunded): the token is
    /// revoked, and the pending or active membership it opened or extended loses the token's days
    /// (its end moves back by them, or its days waiting for the join). One left with nothing paid
    /// for (its end at or before `now`, no days, or waiting on no other live token: periods over)
    /// is revoked with `reason` and `intents(membership)` in the same transaction. Again: nothing.
    async fn withdraw_token(
        &self,
        hash: &TokenHash,
        reason: &str,
        now: DateTime<Utc>,
        intents: &IntentsFor<'_>,
    ) -> Result<Withdrawn, StoreError>;
    /// Memberships that expired or were revoked at or after `since`, most recently ended first (for
    /// reconciliation).
    async fn ended_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<Membership>, StoreError>;
    /// Active memberships believed to be in the channel, earliest end first.
    async fn active_in_channel(&self, limit: u32) -> Result<Vec<Membership>, StoreError>;
}

/// The effects a state change must not lose, given the membership it changed.
pub type IntentsFor<'a> = dyn Fn(&Membership) -> Vec<Envelope> + Send + Sync + 'a;

/// Effect intents: an effect the store must not lose (removing an ended member) is written in the
/// same transaction as the state change that decided it, then queued. It stays until the consumer
/// settles it (carried out, already done, or found stale); a sweep queues again every intent
/// older than a few minutes, so a process that dies between the commit and the queue loses nothing.
#[async_trait]
pub trait EffectOutbox: Send + Sync {
    /// Intents written before `before`, oldest first, at most `limit`.
    async fn pending_intents(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Envelope>, StoreError>;
    /// The effect with this idempotency key is settled: its intent goes (no-op when there is none).
    async fn settle_intent(&self, key: &str) -> Result<(), StoreError>;
}

/// Accounts a channel administrator removed by hand (see `AccountBar`), and support's way back.
#[async_trait]
pub trait AccountBars: Send + Sync {
    /// Bars the account (a second bar replaces the first).
    async fn bar_account(&self, bar: &AccountBar) -> Result<(), StoreError>;
    async fn account_bar(&self, account: TelegramUserId) -> Result<Option<AccountBar>, StoreError>;
    /// `false` when the account was not barred.
    async fn lift_bar(&self, account: TelegramUserId) -> Result<bool, StoreError>;
    /// Lets a redeemed payment have a new token: its used or bound tokens are retired (revoked),
    /// only while none of the memberships they opened is pending or active
    /// (`Conflict("access_still_open")`). Returns how many tokens were retired.
    async fn reopen_payment(&self, payment: &PaymentId) -> Result<u64, StoreError>;
}

/// When each scheduled job last ran (the local scheduler and `doctor` read it), and the runs an
/// admin asked for.
#[async_trait]
pub trait JobLog: Send + Sync {
    async fn last_job_run(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    async fn record_job_run(&self, job: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Writes a requested run as it now stands (replacing what was there); it stays readable
    /// `REQUESTED_RUN_DAYS` after it was asked for, on both stores.
    async fn put_requested_run(&self, run: &RequestedRun) -> Result<(), StoreError>;
    async fn requested_run(&self, id: &RunId) -> Result<Option<RequestedRun>, StoreError>;
    /// Where a job that walks an outside list got to (`reconcile-stars`: how many of Telegram's
    /// Star transactions it has checked), for its next run.
    async fn job_cursor(&self, job: &str) -> Result<Option<String>, StoreError>;
    async fn set_job_cursor(&self, job: &str, cursor: &str) -> Result<(), StoreError>;
    /// Takes the job's `slot` for `holder` until `until`, atomically: answers who holds it when
    /// someone else does and their time has not run out at `now` (`None`: taken). Holding it again
    /// extends it. Slots: `JobSlot::Run` (one run of a job at a time, scheduled or asked for) and
    /// `JobSlot::Request` (one run asked for and not finished).
    async fn claim_job(
        &self,
        job: &str,
        slot: JobSlot,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;
    /// Gives the slot back, if `holder` still has it.
    async fn release_job(&self, job: &str, slot: JobSlot, holder: &str) -> Result<(), StoreError>;
    /// Who holds the slot now, whatever their time.
    async fn job_holder(&self, job: &str, slot: JobSlot) -> Result<Option<String>, StoreError>;
}

/// What one job may have only one of at a time (see `JobLog::claim_job`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobSlot {
    Run,
    Request,
}

impl JobSlot {
    pub fn name(self) -> &'static str {
        match self {
            Self::Run => "RUN",
            Self::Request => "REQUEST",
        }
    }
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// Newest first: every entry, a user's, or one kind's (on keys, never a scan).
    async fn audit(&self, of: AuditOf<'_>, page: &PageRequest) -> Result<Page<AuditEntry>, StoreError>;
}

/// Which entries of the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditOf<'a> {
    Everyone,
    User(&'a UserId),
    Action(crate::domain::AuditAction),
}

/// Counters for abuse limits, in fixed windows named by the caller (the key includes the window).
#[async_trait]
pub trait RateLimits: Send + Sync {
    /// Counts one more attempt under `key`, kept until `until`; returns the count with this one.
    async fn hit(&self, key: &str, until: DateTime<Utc>) -> Result<u32, StoreError>;
    /// The attempts counted so far under `key` (0 once `now` is past its `until`).
    async fn hits(&self, key: &str, now: DateTime<Utc>) -> Result<u32, StoreError>;
}

/// The invoice links telegate created for its offers sold in Stars: what makes a Star payment
/// telegate's own.
#[async_trait]
pub trait InvoiceStore: Send + Sync {
    /// Records an invoice, once per sale (`Invoice::sale`): when one is already recorded for the
    /// sale (a concurrent `/buy` made it), that one is answered and this one is not written.
    async fn record_invoice(&self, invoice: &Invoice) -> Result<Invoice, StoreError>;
    async fn invoice_for_sale(&self, sale: &str) -> Result<Option<Invoice>, StoreError>;
    async fn invoice(&self, payload: &str) -> Result<Option<Invoice>, StoreError>;
}

/// A record brought over from the system telegate replaces, written as it stands there rather
/// than through the live flow's transitions.
#[derive(Clone, Debug)]
pub enum Imported {
    /// `current_token`: the payment's latest token, the one a newly generated token replaces.
    Payment {
        payment: Payment,
        current_token: Option<TokenHash>,
    },
    Token(TokenRecord),
    /// `tokens`: the tokens whose periods it holds.
    Membership {
        membership: Membership,
        tokens: Vec<TokenHash>,
    },
    Notification(Notification),
    Exempt(Exemption),
}

/// What writing one imported record did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    New,
    /// The same record (same id) was already there: nothing changed.
    Already,
    /// Not written; the code says why (`transaction_id_taken`).
    Refused(&'static str),
}

#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Writes each record once, keeping the counters live traffic keeps (tokens, members, invites
    /// accepted) in the same writes: a rerun after a crash writes only what is missing and counts
    /// nothing twice. Answers one `Written` per record, in order.
    async fn import(&self, records: &[Imported]) -> Result<Vec<Written>, StoreError>;
}

/// Accounts the system telegate replaces let in without a membership (staff, imported as such):
/// never removed for having none.
#[async_trait]
pub trait Exemptions: Send + Sync {
    async fn exemption(&self, account: TelegramUserId) -> Result<Option<Exemption>, StoreError>;
}

/// Everything the use cases store. Each adapter implements the parts (and `ImportStore`, which
/// only `telegate import` uses: it is not part of this union).
pub trait Store:
    PaymentStore
    + AccessStore
    + NotificationStore
    + UpdateLog
    + EffectLog
    + EffectOutbox
    + AccountBars
    + LifecycleStore
    + Stats
    + JobLog
    + AuditLog
    + RateLimits
    + Exemptions
    + InvoiceStore
{
}
impl<T> Store for T where
    T: PaymentStore
        + AccessStore
        + NotificationStore
        + UpdateLog
        + EffectLog
        + EffectOutbox
        + AccountBars
        + LifecycleStore
        + Stats
        + JobLog
        + AuditLog
        + RateLimits
        + Exemptions
        + InvoiceStore
{
}

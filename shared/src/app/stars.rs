//! Payments in Telegram Stars, inside the bot (the pay buttons are `invoices.rs`, refunds
//! `refunds.rs`): the pre-checkout check, and each payment (a purchase, a subscription's first payment or a renewal) recorded once
//! per charge id and turned into access for the paying account by the same steps as a validated
//! manual payment: a payment in the store, a token (already bound to the payer, who is the
//! account), the membership it opens or extends, the personal invite.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::admission::Redemption;
use super::invoices::Sold;
use super::{Admission, AppError, Auditor, Issuer, Notifier, Refunds, Sales, hour_window, telegram_actor};
use crate::config::Settings;
use crate::domain::{
    AuditAction, IncomingMessage, Lang, MembershipStatus, Offer, Payment, PaymentId, PaymentStatus, PreCheckoutQuery,
    STARS_RENEWAL_WAIT_HOURS, STARS_TRANSACTION_PREFIX, SubscriptionState, SubscriptionUpdated, SuccessfulPayment,
    TelegramUserId, TgUser, TokenHash, TokenRecord, UserId, texts,
};
use crate::ports::{
    AccessStore, AccountBars, Clock, Effect, JobLog, PaymentStore, Presence, RateLimits, Stats, StoreError, Telegram,
};

mod reconcile;

/// What an account may buy in Stars now (`Stars::may_buy`): one rule for the pay buttons shown
/// and the pre-checkout's answer.
#[derive(Clone, Copy)]
pub(crate) enum MayBuy {
    Anything,
    /// Its Stars subscription renews: a second one would charge twice a month for one membership.
    PassesOnly,
    /// Nothing; the text tells the buyer why.
    Nothing(fn(Lang) -> String),
}

/// Who reviewed a Stars payment: Telegram took it, nobody had to validate it.
const STARS_REVIEWER: &str = "telegram-stars";

/// Payments in Telegram Stars: pre-checkout, successful payments, subscription changes, reconciliation.
#[derive(Clone)]
pub struct Stars {
    pub(crate) access: Arc<dyn AccessStore>,
    pub(crate) admission: Arc<Admission>,
    pub(crate) auditor: Auditor,
    pub(crate) bars: Arc<dyn AccountBars>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) issuer: Arc<Issuer>,
    pub(crate) job_log: Arc<dyn JobLog>,
    pub(crate) limits: Arc<dyn RateLimits>,
    pub(crate) notifier: Notifier,
    pub(crate) payments: Arc<dyn PaymentStore>,
    pub(crate) refunds: Arc<Refunds>,
    pub(crate) sales: Arc<Sales>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) stats: Arc<dyn Stats>,
    pub(crate) telegram: Arc<dyn Telegram>,
}

impl Stars {
    /// `pre_checkout_query`: Telegram waits at most 10 seconds for the answer. Yes when the
    /// payload is an invoice telegate created, whose offer is still sold as invoiced, at the price
    /// asked, to an account that may buy it (`may_buy`); otherwise a refusal the buyer reads.
    pub(crate) async fn on_pre_checkout(&self, query: &PreCheckoutQuery) -> Result<(), AppError> {
        let lang = query.from.lang;
        let sold = self.sales.sold(&query.invoice_payload).await?.filter(|s| s.on_sale);
        let refusal = match (sold, TelegramUserId::parse(query.from.id)) {
            (Some(s), Ok(account)) if query.currency == "XTR" && s.offer.stars == Some(query.total_amount) => {
                match self.may_buy(account).await? {
                    MayBuy::Nothing(why) => Some(why(lang)),
                    MayBuy::PassesOnly if s.offer.renewing => Some(texts::checkout_already_subscribed(lang)),
                    MayBuy::PassesOnly | MayBuy::Anything => None,
                }
            }
            _ => Some(texts::checkout_offer_gone(lang)),
        };
        self.telegram.answer_pre_checkout(&query.id, refusal.as_deref()).await?;
        if let Some(why) = refusal {
            let account = TelegramUserId::parse(query.from.id).ok();
            tracing::info!(payload = %query.invoice_payload, amount = query.total_amount, "pre-checkout refused");
            let details = json!({ "payload": query.invoice_payload, "stars": query.total_amount,
                                  "currency": query.currency, "reason": why });
            let actor = account.map_or_else(|| "telegram".to_owned(), telegram_actor);
            self.auditor.audit(&actor, AuditAction::StarsCheckoutRefused, None, account, details).await?;
        }
        Ok(())
    }

    /// `successful_payment`: recorded once per charge id (a replayed update or a second delivery
    /// pays nothing twice), then access for the payer's account. A payment that cannot give access
    /// (the account is barred) is refunded and the buyer told.
    pub(crate) async fn on_stars_payment(&self, message: &IncomingMessage) -> Result<(), AppError> {
        let (Some(paid), Some(from)) = (&message.successful_payment, &message.from) else {
            return Ok(());
        };
        let at = DateTime::from_timestamp(message.date, 0).unwrap_or(self.clock.now());
        let Some(sold) = self.sales.sold(&paid.invoice_payload).await? else {
            // Another program's, or a tip or paid media: left alone, for whoever sold it.
            let account = TelegramUserId::parse(from.id).ok();
            tracing::warn!(stars = paid.total_amount, "a Star payment telegate did not invoice: it grants nothing");
            let details = json!({ "payload": paid.invoice_payload, "stars": paid.total_amount,
                                  "telegram_payment_charge_id": paid.telegram_payment_charge_id });
            let actor = account.map_or_else(|| "telegram".to_owned(), telegram_actor);
            return self.auditor.audit(&actor, AuditAction::StarsNotOurs, None, account, details).await;
        };
        self.apply_stars_payment(from, message.chat_id, paid, sold, at).await.map(drop)
    }

    /// One Stars payment of what telegate `sold`, from its update or found by the reconciliation:
    /// recorded once, then access (or a refund), and the payer told in `chat`. Whether it was new.
    async fn apply_stars_payment(
        &self,
        from: &TgUser,
        chat: i64,
        paid: &SuccessfulPayment,
        sold: Sold,
        at: DateTime<Utc>,
    ) -> Result<bool, AppError> {
        let Ok(account) = TelegramUserId::parse(from.id) else {
            return Ok(false);
        };
        let charge = paid.telegram_payment_charge_id.as_str();
        if paid.currency != "XTR" || charge.is_empty() || charge.len() > 120 {
            tracing::error!(currency = %paid.currency, "a payment telegate never invoiced: left to support");
            return Ok(false);
        }
        let lang = from.lang;
        let now = self.clock.now();
        let offer = (sold.offer_id, sold.offer);
        // Seen before (another delivery of the same charge): the payment its token names.
        let seen = match self.access.token(&TokenHash::of_stars_charge(charge)).await? {
            Some(t) => self.payments.payment(&t.payment_id).await?,
            None => None,
        };
        let new = seen.is_none();
        let payment = match seen {
            Some(p) => p,
            None => self.record_stars_payment(account, paid, &offer, at, lang).await?,
        };
        // Refunded (or being refunded) since, even before its token was written (a crash in
        // between): it buys nothing, however often it is told.
        if payment.status != PaymentStatus::Validated {
            return Ok(false);
        }
        let record = self.stars_token(&payment, &offer, charge, account, now).await?;
        let unusable = if self.bars.account_bar(account).await?.is_some() {
            Some("the account may not be let in")
        } else if self.renews_a_revoked_subscription(account, paid).await? {
            Some("a renewal of a subscription whose access was revoked")
        } else if new && paid_until(&payment, &offer.1) <= now {
            // Heard of only after the period it paid for (its update lost, reconcile-stars found
            // it late): no day of it is left to give.
            Some("heard of after the period it paid for was over")
        } else {
            None
        };
        let redemption = match unusable {
            Some(_) => Redemption::Refused,
            None => self.admission.admit(&record, from, account, now).await?,
        };
        let (reply, buttons) = match redemption {
            Redemption::Refused => {
                let why = unusable.unwrap_or("the access it bought has ended");
                self.refunds.refund_unusable(&payment, account, charge, why).await?;
                (texts::stars_refunded(lang), Vec::new())
            }
            other => {
                if offer.1.renewing {
                    self.await_renewal(account, &payment).await?;
                }
                self.admission.redemption_reply(other, lang)
            }
        };
        self.telegram.send_message(chat, &reply, &buttons).await?;
        Ok(new)
    }

    /// A renewal of a subscription whose access an admin revoked: the revoke cancelled its renewal,
    /// so this charge raced the cancellation. It is refunded, not let in. Only the account's own
    /// revoke counts: a web account revoked for what it paid does not stop this account's money.
    async fn renews_a_revoked_subscription(
        &self,
        account: TelegramUserId,
        paid: &SuccessfulPayment,
    ) -> Result<bool, AppError> {
        if !paid.is_recurring || paid.is_first_recurring || self.access.current_membership(account).await?.is_some() {
            return Ok(false);
        }
        let own = UserId::of_telegram_account(account);
        let last = self.access.last_membership(account).await?;
        Ok(last.is_some_and(|m| m.status == MembershipStatus::Revoked && m.user_id == own))
    }

    /// What `account` may buy in Stars now, for the pay buttons and the pre-checkout: nothing
    /// when a channel administrator removed it by hand or it administers the channel (it has
    /// access already), the one-off passes only while its Stars subscription renews (a renewal
    /// Telegram did not say was cancelled or failed).
    pub(crate) async fn may_buy(&self, account: TelegramUserId) -> Result<MayBuy, AppError> {
        let now = self.clock.now();
        Ok(if self.bars.account_bar(account).await?.is_some() {
            MayBuy::Nothing(texts::checkout_barred)
        } else if self.is_staff(account).await {
            MayBuy::Nothing(texts::checkout_staff)
        } else if self.access.current_membership(account).await?.is_some_and(|m| m.renewal_awaited(now)) {
            MayBuy::PassesOnly
        } else {
            MayBuy::Anything
        })
    }

    /// An administrator or the owner of the channel, who has access without paying. A check that
    /// fails does not stop a sale.
    async fn is_staff(&self, account: TelegramUserId) -> bool {
        match self.telegram.presence(account).await {
            Ok(presence) => presence == Presence::Staff,
            Err(e) => {
                tracing::warn!(error = %e, "could not tell whether the buyer administers the channel");
                false
            }
        }
    }

    /// The membership a subscription's payment went into waits for the next renewal: it is not
    /// removed before the renewal date and `STARS_RENEWAL_WAIT_HOURS`.
    async fn await_renewal(&self, account: TelegramUserId, payment: &Payment) -> Result<(), AppError> {
        let (Some(m), Some(paid)) = (self.access.current_membership(account).await?, payment.stars_paid()) else {
            return Ok(());
        };
        let until = paid.period_end + Duration::hours(STARS_RENEWAL_WAIT_HOURS);
        self.access.set_renewal(&m.id, Some(until.max(m.renews_until.unwrap_or(until)))).await?;
        Ok(())
    }

    /// A Stars subscription cancelled, re-enabled or failing to renew, where Telegram tells of it:
    /// recorded, and the member told until when access lasts. Cancelled or failed, no renewal is
    /// awaited any more: access ends with the period paid for (and `GRACE_HOURS`); re-enabled,
    /// the next renewal is awaited again.
    pub(crate) async fn on_subscription_change(&self, change: &SubscriptionUpdated) -> Result<(), AppError> {
        let Ok(account) = TelegramUserId::parse(change.user.id) else { return Ok(()) };
        let details = json!({ "payload": change.invoice_payload, "state": change.state.as_str() });
        self.auditor
            .audit(&telegram_actor(account), AuditAction::StarsSubscriptionChanged, None, Some(account), details)
            .await?;
        let now = self.clock.now();
        let Some(m) = self.access.current_membership(account).await? else { return Ok(()) };
        // The renewal awaited is the subscription's state here: only a change of it counts.
        let latest = self.latest_subscription_payment(account, &m.user_id).await?;
        let ends = latest.as_ref().and_then(Payment::stars_paid).map(|paid| paid.period_end);
        let stops = matches!(change.state, SubscriptionState::Canceled | SubscriptionState::Failed);
        match (change.state, m.renews_until.is_some()) {
            (_, true) if stops => {
                self.access.set_renewal(&m.id, None).await?;
                if let Some(end) = ends {
                    self.stats.count_subscription(end, -1).await?;
                }
            }
            (SubscriptionState::Active, false) => {
                if let (Some(latest), Some(end)) = (&latest, ends) {
                    self.await_renewal(account, latest).await?;
                    self.stats.count_subscription(end, 1).await?;
                }
            }
            _ => {}
        }
        let end = Some(&m).filter(|m| m.is_active(now)).and_then(|m| m.expires_at);
        if let (Some(end), true) = (end, stops) {
            let failed = change.state == SubscriptionState::Failed;
            let text = texts::subscription_ending(change.user.lang, &self.settings.channel_name, failed, end);
            // A notice, not a reply: queued like every message the member did not just ask for.
            let key = format!("subscription:{}:{}:{}", m.id, change.state.as_str(), end.timestamp());
            self.notifier.enqueue(vec![(key, Effect::SendMessage { chat_id: account.get(), text })]).await?;
        }
        Ok(())
    }

    /// The account's latest payment of a Stars subscription, among `user`'s payments.
    async fn latest_subscription_payment(
        &self,
        account: TelegramUserId,
        user: &UserId,
    ) -> Result<Option<Payment>, AppError> {
        let mine = self.payments.payments_of(user).await?.into_iter().filter(|p| {
            p.status == PaymentStatus::Validated
                && p.stars_paid().is_some_and(|s| s.renewing)
                && p.stars_payer().is_some_and(|(_, a)| a == account)
        });
        Ok(mine.max_by_key(|p| p.created_at))
    }

    /// `/paysupport`: who answers payment questions; the request is recorded (once an hour per
    /// account, however often it is sent).
    pub(crate) async fn pay_support(&self, account: TelegramUserId, lang: Lang) -> Result<String, AppError> {
        let (window, until) = hour_window(self.clock.now());
        if self.limits.hit(&format!("paysupport:{account}:{window}"), until).await? == 1 {
            let actor = telegram_actor(account);
            self.auditor.audit(&actor, AuditAction::PaySupportRequested, None, Some(account), json!({})).await?;
        }
        let contact = self.settings.pay_support.as_deref().unwrap_or("the creator");
        Ok(texts::pay_support(lang, contact))
    }

    /// The payment, written once: its id and transaction id come from the charge id, so a second
    /// delivery finds it instead of writing another. The payer is the web account the Telegram
    /// account's current (else last) membership belongs to, if any (its status then shows this
    /// access too), else the Telegram account itself (`tg:<id>`).
    async fn record_stars_payment(
        &self,
        account: TelegramUserId,
        paid: &SuccessfulPayment,
        (offer_id, offer): &(String, Offer),
        at: DateTime<Utc>,
        lang: Lang,
    ) -> Result<Payment, AppError> {
        let charge = paid.telegram_payment_charge_id.as_str();
        // The Telegram account that paid owns it, unless it buys within a web account's current
        // membership, which it joined by that account's link: linked on purpose, the purchase
        // extends that membership (one period, one payer) and shows there. An account that once
        // used a web link is not linked for good.
        let user_id = match self.access.current_membership(account).await? {
            Some(m) => m.user_id,
            None => UserId::of_telegram_account(account),
        };
        let payment = Payment {
            id: PaymentId::derived(at, &format!("{STARS_TRANSACTION_PREFIX}{charge}")),
            user_id,
            email: None,
            offer_id: offer_id.clone(),
            transaction_id: format!("{STARS_TRANSACTION_PREFIX}{charge}"),
            user_info: Some(json!({
                "stars": paid.total_amount, "telegram_user_id": account, "telegram_payment_charge_id": charge,
                "renewing": offer.renewing, "is_recurring": paid.is_recurring,
                "renewal": paid.is_recurring && !paid.is_first_recurring,
                "subscription_expiration_date": paid.subscription_expiration_date
                    .and_then(|t| DateTime::from_timestamp(t, 0)),
            })),
            status: PaymentStatus::Validated,
            admin_notes: None,
            reject_reason: None,
            created_at: at,
            updated_at: at,
            reviewed_by: Some(UserId::parse(STARS_REVIEWER)?),
            refund_note: None,
            revenue_cents: None,
            lang,
        };
        match self.payments.insert_payment(&payment).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                // Recorded before (a crash came before its token). Its id names the time Telegram
                // gave then, which the reconciliation's list may give differently: found by id,
                // else among the payer's payments by its charge.
                let first = match self.payments.payment(&payment.id).await? {
                    Some(p) => Some(p),
                    None => {
                        let mine = self.payments.payments_of(&payment.user_id).await?;
                        mine.into_iter().find(|p| p.transaction_id == payment.transaction_id)
                    }
                };
                return match first {
                    Some(first) if first.transaction_id == payment.transaction_id => {
                        tracing::info!(payment = %first.id, "a Stars payment seen before: not counted twice");
                        Ok(first)
                    }
                    _ => Err(AppError::Internal(
                        format!("the Stars charge of payment {} is held by another", payment.id).into(),
                    )),
                };
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(payment = %payment.id, stars = paid.total_amount, recurring = paid.is_recurring, "Stars payment");
        let details = json!({ "payment_id": payment.id, "offer_id": offer_id, "stars": paid.total_amount,
                              "telegram_payment_charge_id": charge, "renewal": paid.is_recurring && !paid.is_first_recurring });
        self.auditor
            .audit(&telegram_actor(account), AuditAction::StarsPaid, Some(&payment.user_id), Some(account), details)
            .await?;
        Ok(payment)
    }

    /// The payment's token, bound to the payer: issued and bound once, found again after.
    async fn stars_token(
        &self,
        payment: &Payment,
        (_, offer): &(String, Offer),
        charge: &str,
        account: TelegramUserId,
        now: DateTime<Utc>,
    ) -> Result<TokenRecord, AppError> {
        let hash = TokenHash::of_stars_charge(charge);
        if self.access.token(&hash).await?.is_none() {
            let mut record = self.issuer.pending_token(hash.clone(), payment, offer, now);
            // A Stars buyer has no other link to ask for: the purchase waits for its account as
            // long as the period paid for, never only `TOKEN_TTL_HOURS`.
            record.expires_at = record.expires_at.max(paid_until(payment, offer));
            match self.access.issue_token(&record).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(bound) = self.access.bind_token(&hash, account, now).await? {
            return Ok(bound);
        }
        self.access.token(&hash).await?.ok_or(AppError::Internal("a Stars payment's token vanished".into()))
    }
}

/// The end of the period a Stars purchase paid for: it starts at the payment (see
/// `Members::period_start`).
fn paid_until(payment: &Payment, offer: &Offer) -> DateTime<Utc> {
    payment.created_at + Duration::days(i64::from(offer.days))
}

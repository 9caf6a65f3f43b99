//! The `reconcile-stars` job: Telegram's list of Star transactions against the ledger.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::Stars;
use crate::app::AppError;
use crate::domain::{Lang, SuccessfulPayment, TelegramUserId, TgUser, TokenHash, UserId};

impl Stars {
    /// The `reconcile-stars` job: Telegram's list of Star transactions against the ledger. A
    /// payment whose update never reached us (Telegram gave up, the webhook was down) is applied
    /// as its update would have been; a refund the ledger does not show is recorded and ends what
    /// the payment bought (`Refunds::refunded_in_telegram`); each is reported. Walks on from where
    /// the last run stopped (the list only grows), a page back for safety; a cursor an earlier
    /// release wrote (a bare number, which did not look at refunds) starts the walk over once.
    /// The list is read to its end before anything is applied, so that a missed payment whose
    /// refund is listed on a later page is never let in (and then put out). Nothing is called
    /// when no offer is sold in Stars.
    pub(crate) async fn reconcile_stars(&self, deadline: std::time::Instant) -> Result<(u64, bool), AppError> {
        const JOB: &str = "reconcile-stars";
        const PAGE: u32 = 100;
        if self.settings.offers.in_stars().is_empty() {
            return Ok((0, true));
        }
        let cursor = self.job_log.job_cursor(JOB).await?;
        let checked: u32 = cursor.as_deref().and_then(|c| c.strip_prefix("listed:")?.parse().ok()).unwrap_or(0);
        let mut offset = checked.saturating_sub(PAGE);
        let (mut pages, mut next, mut read_to_the_end) = (Vec::new(), offset, false);
        while !read_to_the_end && std::time::Instant::now() < deadline {
            let page = self.telegram.star_payments(next, PAGE).await?;
            next += page.listed;
            read_to_the_end = page.listed < PAGE;
            pages.push(page);
        }
        let given_back: HashSet<&str> =
            pages.iter().flat_map(|p| p.refunds.iter().map(|r| r.charge_id.as_str())).collect();
        let mut repaired = 0;
        for page in &pages {
            if std::time::Instant::now() >= deadline {
                return Ok((repaired, false));
            }
            for t in &page.payments {
                // Not telegate's (a tip, paid media, another program's invoice): left alone.
                let Some(sold) = self.sales.sold(&t.payload).await? else { continue };
                if self.access.token(&TokenHash::of_stars_charge(&t.charge_id)).await?.is_some() {
                    continue;
                }
                // Missed, and given back since: nothing to let in.
                if given_back.contains(t.charge_id.as_str()) {
                    continue;
                }
                // The list does not say whether a subscription's payment is its first: it is a
                // renewal when the account paid for the same offer's subscription before.
                let subscription = t.subscription_period.is_some();
                let renewal = subscription && self.paid_before(t.payer, &sold.offer_id, &t.charge_id, t.at).await?;
                let paid = SuccessfulPayment {
                    currency: "XTR".into(),
                    total_amount: t.stars,
                    invoice_payload: t.payload.clone(),
                    telegram_payment_charge_id: t.charge_id.clone(),
                    subscription_expiration_date: None,
                    is_recurring: subscription,
                    is_first_recurring: subscription && !renewal,
                };
                let from = TgUser { id: t.payer.get(), is_bot: false, username: None, lang: Lang::default() };
                if self.apply_stars_payment(&from, t.payer.get(), &paid, sold, t.at).await? {
                    tracing::warn!(telegram_user = %t.payer, stars = t.stars, "a Stars payment whose update was missed: applied");
                    repaired += 1;
                }
            }
            for r in &page.refunds {
                if self.refunds.refunded_in_telegram(&r.charge_id, r.account).await? {
                    repaired += 1;
                }
            }
            // Over what Telegram listed, refunds and withdrawals included, not over what was kept.
            offset += page.listed;
            self.job_log.set_job_cursor(JOB, &format!("listed:{}", offset.max(checked))).await?;
        }
        Ok((repaired, read_to_the_end))
    }

    /// Whether `account` paid for a subscription to `offer_id` by another charge, by `at` (its own
    /// payments, or those of the web account whose membership it holds).
    async fn paid_before(
        &self,
        account: TelegramUserId,
        offer_id: &str,
        charge: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, AppError> {
        let mut owners = vec![UserId::of_telegram_account(account)];
        owners.extend(self.access.current_membership(account).await?.map(|m| m.user_id));
        for owner in owners {
            let earlier = self.payments.payments_of(&owner).await?.into_iter().any(|p| {
                p.offer_id == offer_id
                    && p.created_at <= at
                    && p.stars_charge() != Some(charge)
                    && p.stars_paid().is_some_and(|s| s.renewing)
                    && p.stars_payer().is_some_and(|(_, a)| a == account)
            });
            if earlier {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

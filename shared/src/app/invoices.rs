//! What telegate sells in Stars: the pay buttons of `/buy` and a bare `/start` (one recorded
//! invoice per sale, its link reused; a per-account limit; Telegram's flood control told to the
//! buyer), and what a payload Telegram hands back buys (`sold`): telegate's invoices only.

use std::sync::Arc;

use chrono::Duration;

use super::AppError;
use crate::config::Settings;
use crate::domain::{Invoice, Lang, Offer, TelegramUserId, offer_of_payload, sale_of, texts};
use crate::ports::{Clock, InvoiceStore, LinkButton, RateLimits, StarInvoice, StoreError, Telegram, TelegramError};

/// Offers sold in Stars: the invoice links telegate created, what makes a Star payment its own.
#[derive(Clone)]
pub struct Sales {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) invoices: Arc<dyn InvoiceStore>,
    pub(crate) limits: Arc<dyn RateLimits>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) telegram: Arc<dyn Telegram>,
}

impl Sales {
    /// `BUY_PER_MINUTE` pay-button answers (`/buy`, a bare `/start`) a minute per account: past
    /// them, the polite "wait" to answer instead.
    pub(crate) async fn wait_before_buying(
        &self,
        account: TelegramUserId,
        lang: Lang,
    ) -> Result<Option<String>, AppError> {
        let now = self.clock.now();
        let minute = now.format("%Y%m%d%H%M");
        let count = self.limits.hit(&format!("offers:{account}:{minute}"), now + Duration::minutes(2)).await?;
        if count <= self.settings.limits.offers_per_minute {
            return Ok(None);
        }
        let wait = 60 - u64::from(chrono::Timelike::second(&now));
        Ok(Some(texts::wait_before_buying(lang, wait)))
    }

    /// The offers sold in Stars under `text`, one pay button each (the one-off passes only when
    /// `passes_only`). Telegram's flood control while making a pay button is told to the buyer
    /// as a "wait", never a failure.
    pub(crate) async fn offers(
        &self,
        lang: Lang,
        text: String,
        passes_only: bool,
    ) -> Result<(String, Vec<LinkButton>), AppError> {
        match self.offer_buttons(lang, passes_only).await {
            Ok(buttons) if passes_only && buttons.is_empty() => Ok((texts::checkout_already_subscribed(lang), buttons)),
            Ok(buttons) if passes_only => Ok((format!("{text}\n\n{}", texts::passes_only(lang)), buttons)),
            Ok(buttons) => Ok((text, buttons)),
            Err(Busy::Telegram(seconds)) => {
                tracing::warn!(
                    seconds,
                    "Telegram's flood control while making a pay button: the buyer is told to wait"
                );
                Ok((texts::wait_before_buying(lang, u64::from(seconds.max(1))), Vec::new()))
            }
            Err(Busy::Failed(e)) => Err(e),
        }
    }

    /// A pay button per offer sold in Stars: an invoice link Telegram opens in the buyer's app.
    /// Each sale (offer, price, period, kind) has one invoice per language, recorded with what it
    /// sells, and its link is reused for every buyer who reads that language. Without the
    /// subscriptions when `passes_only`.
    async fn offer_buttons(&self, lang: Lang, passes_only: bool) -> Result<Vec<LinkButton>, Busy> {
        let channel = &self.settings.channel_name;
        let mut buttons = Vec::new();
        for (id, offer) in self.settings.offers.in_stars().into_iter().filter(|(_, o)| !(passes_only && o.renewing)) {
            let invoice = match self.invoices.invoice_for_sale(&sale_of(id, offer, lang)).await? {
                Some(invoice) => invoice,
                None => {
                    let mut invoice = Invoice::new(id, offer, lang, self.clock.now())?;
                    let wanted = StarInvoice {
                        title: offer.name.chars().take(32).collect(),
                        description: texts::invoice_description(lang, channel, offer.days, offer.renewing),
                        payload: invoice.payload.clone(),
                        stars: invoice.stars,
                        renewing: offer.renewing,
                    };
                    invoice.link = match self.telegram.create_invoice_link(&wanted).await {
                        Ok(link) => link,
                        Err(TelegramError::RetryAfter(seconds)) => return Err(Busy::Telegram(seconds)),
                        Err(e) => return Err(Busy::Failed(e.into())),
                    };
                    self.invoices.record_invoice(&invoice).await?
                }
            };
            let text = texts::pay_button(lang, &offer.name, invoice.stars, offer.renewing);
            buttons.push(LinkButton::link(text, invoice.link));
        }
        Ok(buttons)
    }

    /// What a Star payment's payload buys, when telegate sold it: an invoice it recorded (what it
    /// sold then, even if the offer changed since), or an earlier release's `v1:<offer>` payload
    /// of an offer still listed in Stars. `None`: not telegate's (a tip, paid media, another
    /// program's invoice).
    pub(super) async fn sold(&self, payload: &str) -> Result<Option<Sold>, AppError> {
        if let Some(invoice) = self.invoices.invoice(payload).await? {
            let listed = self.settings.offers.find_in_stars(&invoice.offer_id);
            let on_sale = listed.as_ref().is_some_and(|o| invoice.still_sold_as(o));
            let name = listed.map_or(invoice.offer_id.clone(), |o| o.name);
            let offer = Offer {
                name,
                days: invoice.days,
                stars: Some(invoice.stars),
                renewing: invoice.renewing,
                price_cents: None,
            };
            return Ok(Some(Sold { offer_id: invoice.offer_id, offer, on_sale }));
        }
        Ok(offer_of_payload(payload).and_then(|id| {
            let offer = self.settings.offers.find_in_stars(id)?;
            Some(Sold { offer_id: id.to_owned(), offer, on_sale: true })
        }))
    }
}

/// Why no pay buttons could be made: Telegram's flood control (seconds to wait), or a failure.
enum Busy {
    Telegram(u32),
    Failed(AppError),
}

impl From<StoreError> for Busy {
    fn from(e: StoreError) -> Self {
        Self::Failed(e.into())
    }
}

impl From<crate::domain::DomainError> for Busy {
    fn from(e: crate::domain::DomainError) -> Self {
        Self::Failed(e.into())
    }
}

/// What a payload telegate sold buys: the offer as invoiced, and whether it is still sold so.
pub(super) struct Sold {
    pub(super) offer_id: String,
    pub(super) offer: Offer,
    pub(super) on_sale: bool,
}

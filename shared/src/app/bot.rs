//! The webhook's entry: one Telegram update, processed at most once.

use std::sync::Arc;

use super::admission::Redemption;
use super::stars::MayBuy;
use super::{Admission, AppError, Members, Sales, StaffRoles, Stars, Status};
use crate::config::Settings;
use crate::domain::{IncomingMessage, Lang, TelegramUserId, Update, UpdateKind, texts};
use crate::ports::{AccessStore, AccountBars, Clock, LinkButton, Telegram, UpdateLog};

/// The Telegram webhook's updates: claimed once, dispatched to the use case they are for.
#[derive(Clone)]
pub struct Bot {
    pub(crate) access: Arc<dyn AccessStore>,
    pub(crate) admission: Arc<Admission>,
    pub(crate) bars: Arc<dyn AccountBars>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) members: Arc<Members>,
    pub(crate) sales: Arc<Sales>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) staff: Arc<StaffRoles>,
    pub(crate) stars: Arc<Stars>,
    pub(crate) status: Arc<Status>,
    pub(crate) telegram: Arc<dyn Telegram>,
    pub(crate) update_log: Arc<dyn UpdateLog>,
}

impl Bot {
    /// The secret Telegram sends with each update (`None`: this process serves no webhook).
    pub fn webhook_secret(&self) -> Option<&crate::config::Secret> {
        self.settings.webhook_secret.as_ref()
    }

    /// Handles an update unless its `update_id` was handled before (or is being handled now). On
    /// failure the claim is given back, and a handler killed mid-way loses it when its lease ends:
    /// either way Telegram's retry of the same update is processed.
    pub async fn handle_update(&self, update: &Update) -> Result<(), AppError> {
        if !self.update_log.claim_update(update.update_id, self.clock.now()).await? {
            tracing::info!(update_id = update.update_id, "update already processed");
            return Ok(());
        }
        let result = match &update.kind {
            UpdateKind::Message(m) if m.successful_payment.is_some() => self.stars.on_stars_payment(m).await,
            UpdateKind::Message(m) => self.on_message(m).await,
            UpdateKind::PreCheckout(q) => self.stars.on_pre_checkout(q).await,
            UpdateKind::Subscription(s) => self.stars.on_subscription_change(s).await,
            UpdateKind::ChatMember(c) if c.chat_id == self.settings.channel_id => {
                self.members.on_chat_member(update.update_id, c).await
            }
            UpdateKind::JoinRequest(j) if j.chat_id == self.settings.channel_id => {
                self.members.on_join_request(update.update_id, j).await
            }
            _ => Ok(()),
        };
        match &result {
            Ok(()) => self.update_log.complete_update(update.update_id, self.clock.now()).await?,
            Err(e) => {
                tracing::warn!(update_id = update.update_id, error = %e, "update failed; released for retry");
                self.update_log.release_update(update.update_id).await?;
            }
        }
        result
    }

    async fn on_message(&self, message: &IncomingMessage) -> Result<(), AppError> {
        // Commands are answered in private chats only; anything else is not addressed to us.
        let (Some(from), Some(text)) = (&message.from, &message.text) else {
            return Ok(());
        };
        if !message.private || from.is_bot {
            return Ok(());
        }
        let Ok(account) = TelegramUserId::parse(from.id) else {
            return Ok(());
        };
        let lang = from.lang;
        let mut words = text.split_whitespace();
        let command = words.next().unwrap_or("");
        // `/start@our_bot` is how Telegram writes a command aimed at one bot.
        let command = command.split_once('@').map_or(command, |(c, _)| c);
        let channel = &self.settings.channel_name;
        let (reply, buttons) = match (command, words.next()) {
            ("/start", Some(token)) if self.admission.start_is_silenced(account, token).await? => {
                tracing::info!(telegram_user = %account, "too many /start this hour: silent until the window passes");
                return Ok(());
            }
            ("/start", Some(token)) => {
                let redemption = self.admission.redeem(from, account, token).await?;
                match &redemption {
                    Redemption::Refused => self.admission.count_start_failure(account, token).await?,
                    Redemption::Invite { .. } => self.admission.count_invite(account).await?,
                    _ => {}
                }
                self.admission.redemption_reply(redemption, lang)
            }
            // Paid (in Stars, or a link already used) and not in the channel: a fresh invite, with
            // the same hourly limit as a re-sent link.
            ("/start", None) if self.admission.start_is_silenced(account, "").await? => return Ok(()),
            ("/start", None) if let Some(link) = self.invite_again(account).await? => {
                self.admission.count_invite(account).await?;
                self.admission.redemption_reply(Redemption::Invite { link }, lang)
            }
            ("/start", None) if !self.settings.offers.in_stars().is_empty() => {
                self.offers(account, lang, texts::welcome_with_stars(lang, channel)).await?
            }
            ("/start", None) => (texts::welcome(lang, channel), Vec::new()),
            ("/buy", _) if self.settings.offers.in_stars().is_empty() => (texts::nothing_for_sale(lang), Vec::new()),
            ("/buy", _) => self.offers(account, lang, texts::buy(lang, channel)).await?,
            ("/paysupport", _) => (self.stars.pay_support(account, lang).await?, Vec::new()),
            ("/status", _) => (self.status.status_text(account, lang).await?, Vec::new()),
            // To anyone without a console role, `/admin` is an unknown command.
            ("/admin", _) if self.staff.role_of(account.get()).await?.is_some() => match &self.settings.console_url {
                Some(url) => {
                    let (text, button) = texts::console(lang);
                    (text.to_owned(), vec![LinkButton::mini_app(button, format!("{url}/console/telegram"))])
                }
                None => (texts::console_unpublished(lang), Vec::new()),
            },
            _ => (texts::help(lang), Vec::new()),
        };
        self.telegram.send_message(message.chat_id, &reply, &buttons).await?;
        Ok(())
    }

    /// The pay buttons of what `account` may buy, under `text`; past the per-minute limit, a
    /// "wait" before anything is read or asked of Telegram.
    async fn offers(
        &self,
        account: TelegramUserId,
        lang: Lang,
        text: String,
    ) -> Result<(String, Vec<LinkButton>), AppError> {
        if let Some(wait) = self.sales.wait_before_buying(account, lang).await? {
            return Ok((wait, Vec::new()));
        }
        let passes_only = match self.stars.may_buy(account).await? {
            MayBuy::Nothing(why) => return Ok((why(lang), Vec::new())),
            MayBuy::PassesOnly => true,
            MayBuy::Anything => false,
        };
        self.sales.offers(lang, text, passes_only).await
    }

    /// A fresh invite for an account whose current membership waits for it (paid, not in the
    /// channel), unless a channel administrator removed it by hand.
    async fn invite_again(&self, account: TelegramUserId) -> Result<Option<String>, AppError> {
        let now = self.clock.now();
        let Some(m) = self.access.current_membership(account).await?.filter(|m| m.holds_place(now) && !m.in_channel)
        else {
            return Ok(None);
        };
        if self.bars.account_bar(account).await?.is_some() {
            return Ok(None);
        }
        Ok(Some(self.admission.invite(&m).await?))
    }
}

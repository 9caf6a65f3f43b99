//! Every text a person reads: French by default (the guide's language), English for `en*`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Fr,
    En,
}

impl Lang {
    /// From a Telegram `language_code` or an `Accept-Language` value.
    pub fn from_code(code: Option<&str>) -> Self {
        match code {
            Some(c) if c.trim().to_ascii_lowercase().starts_with("en") => Self::En,
            _ => Self::Fr,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fr => "fr",
            Self::En => "en",
        }
    }
}

pub fn date(lang: Lang, at: DateTime<Utc>) -> String {
    match lang {
        Lang::Fr => at.format("%d/%m/%Y à %H:%M UTC").to_string(),
        Lang::En => at.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

/// A message with an optional title (notifications, email subjects) and body.
pub struct Text {
    pub title: String,
    pub body: String,
}

fn t(title: impl Into<String>, body: impl Into<String>) -> Text {
    Text { title: title.into(), body: body.into() }
}

pub fn join_button(lang: Lang) -> &'static str {
    match lang {
        Lang::Fr => "Rejoindre le canal",
        Lang::En => "Join the channel",
    }
}

pub fn welcome(lang: Lang, channel: &str) -> String {
    match lang {
        Lang::Fr => format!(
            "Bienvenue ! Ce bot donne accès au canal privé « {channel} ».\n\nAprès validation de votre paiement, \
             vous recevez un lien personnel : ouvrez-le depuis Telegram et je vous inviterai.\n\n/status : votre abonnement\n/help : l'aide"
        ),
        Lang::En => format!(
            "Welcome! This bot gives access to the private channel \"{channel}\".\n\nOnce your payment is validated \
             you receive a personal link: open it in Telegram and I will invite you.\n\n/status: your subscription\n/help: help"
        ),
    }
}

pub fn help(lang: Lang) -> String {
    match lang {
        Lang::Fr => "Commandes :\n/start <code> : utiliser votre lien d'accès personnel\n/status : l'état de votre abonnement\n/help : cette aide\n\n\
                     Votre lien personnel se trouve dans vos notifications et dans l'e-mail de validation de votre paiement."
            .into(),
        Lang::En => "Commands:\n/start <code>: use your personal access link\n/status: your subscription\n/help: this help\n\n\
                     Your personal link is in your notifications and in the email confirming your payment."
            .into(),
    }
}

/// `/admin`, for the channel's staff: the console, opened inside Telegram.
pub fn console(lang: Lang) -> (&'static str, &'static str) {
    match lang {
        Lang::Fr => ("La console : paiements à valider, membres, tâches.", "Ouvrir la console"),
        Lang::En => ("The console: payments to review, members, jobs.", "Open the console"),
    }
}

/// `/admin` where the console has no public address yet.
pub fn console_unpublished(lang: Lang) -> String {
    match lang {
        Lang::Fr => "La console n'est pas encore publiée : réglez CONSOLE_URL sur son adresse https.".into(),
        Lang::En => "The console is not published yet: set CONSOLE_URL to its https address.".into(),
    }
}

/// One refusal for unknown, expired and foreign tokens alike: it must not tell which.
pub fn refusal(lang: Lang) -> String {
    match lang {
        Lang::Fr => {
            "Désolé, ce lien d'accès n'est pas valide. Demandez un nouveau lien depuis votre espace abonné.".into()
        }
        Lang::En => "Sorry, this access link is not valid. Ask for a new link from your subscriber area.".into(),
    }
}

pub fn invite(lang: Lang, channel: &str, minutes: u64) -> String {
    match lang {
        Lang::Fr => format!(
            "Votre accès à « {channel} » est prêt. Ce lien d'invitation est personnel : il ne fonctionne que pour \
             votre compte et expire dans {minutes} min. Si besoin, renvoyez votre lien d'accès (ou /start) pour en obtenir un nouveau."
        ),
        Lang::En => format!(
            "Your access to \"{channel}\" is ready. This invite is personal: it only works for your account and \
             expires in {minutes} min. If needed, open your access link again (or send /start) to get a fresh one."
        ),
    }
}

pub fn other_payer(lang: Lang, channel: &str) -> String {
    match lang {
        Lang::Fr => format!(
            "Ce compte Telegram a déjà un abonnement à « {channel} » payé par un autre compte. Ce lien n'a pas \
             été utilisé : ouvrez-le depuis un autre compte Telegram, ou à la fin de cet abonnement."
        ),
        Lang::En => format!(
            "This Telegram account already has a subscription to \"{channel}\" paid by another account. This \
             link was not used: open it from another Telegram account, or once that subscription ends."
        ),
    }
}

pub fn extended(lang: Lang, channel: &str, end: DateTime<Utc>) -> String {
    match lang {
        Lang::Fr => format!("Merci ! Votre abonnement à « {channel} » est prolongé jusqu'au {}.", date(lang, end)),
        Lang::En => format!("Thank you! Your subscription to \"{channel}\" now runs until {}.", date(lang, end)),
    }
}

pub fn already_member(lang: Lang, channel: &str, end: DateTime<Utc>) -> String {
    match lang {
        Lang::Fr => format!("Vous êtes déjà membre de « {channel} », abonnement jusqu'au {}.", date(lang, end)),
        Lang::En => format!("You are already a member of \"{channel}\", subscribed until {}.", date(lang, end)),
    }
}

pub fn status_active(lang: Lang, offer: &str, end: DateTime<Utc>, days: i64) -> String {
    match lang {
        Lang::Fr => format!("Abonnement « {offer} » actif jusqu'au {} ({days} jour(s) restant(s)).", date(lang, end)),
        Lang::En => format!("\"{offer}\" subscription active until {} ({days} day(s) left).", date(lang, end)),
    }
}

pub fn status_pending(lang: Lang) -> String {
    match lang {
        Lang::Fr => "Votre accès est prêt mais vous n'avez pas encore rejoint le canal : envoyez /start (ou renvoyez votre lien d'accès) pour recevoir une invitation.".into(),
        Lang::En => "Your access is ready but you have not joined the channel yet: send /start (or open your access link again) to get an invite.".into(),
    }
}

pub fn status_none(lang: Lang) -> String {
    match lang {
        Lang::Fr => "Aucun abonnement actif pour ce compte Telegram.".into(),
        Lang::En => "No active subscription for this Telegram account.".into(),
    }
}

pub fn joined(lang: Lang, channel: &str, end: DateTime<Utc>) -> Text {
    match lang {
        Lang::Fr => t(
            "Accès accordé",
            format!("Bienvenue dans « {channel} » ! Votre abonnement court jusqu'au {}.", date(lang, end)),
        ),
        Lang::En => {
            t("Access granted", format!("Welcome to \"{channel}\"! Your subscription runs until {}.", date(lang, end)))
        }
    }
}

pub fn payment_verified(lang: Lang, offer: &str, link: &str, hours: u32) -> Text {
    match lang {
        Lang::Fr => t(
            "Paiement validé",
            format!(
                "Votre paiement pour « {offer} » est validé. Ouvrez ce lien dans Telegram pour rejoindre le canal : {link}\n\
                 Le lien est personnel, utilisable par un seul compte Telegram, et valable {hours} h."
            ),
        ),
        Lang::En => t(
            "Payment validated",
            format!(
                "Your payment for \"{offer}\" is validated. Open this link in Telegram to join the channel: {link}\n\
                 The link is personal, works for one Telegram account only, and is valid for {hours} h."
            ),
        ),
    }
}

pub fn payment_rejected(lang: Lang, reason: &str) -> Text {
    match lang {
        Lang::Fr => t("Paiement refusé", format!("Votre paiement n'a pas pu être validé. Motif : {reason}")),
        Lang::En => t("Payment rejected", format!("Your payment could not be validated. Reason: {reason}")),
    }
}

/// How a member keeps their access: what the warnings and the end tell them to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewBy {
    /// A Stars subscription Telegram renews by itself.
    Itself,
    /// A buyer in Stars with no web account: `/buy` in the bot.
    Buy,
    /// A web subscriber: their subscriber area.
    Website,
}

pub fn expired(lang: Lang, channel: &str, how: RenewBy) -> Text {
    let back = match (lang, how) {
        (Lang::Fr, RenewBy::Website) => {
            "Pour revenir, renouvelez votre abonnement depuis votre espace : un nouveau lien vous sera envoyé."
        }
        (Lang::Fr, _) => "Pour revenir, envoyez /buy au bot.",
        (Lang::En, RenewBy::Website) => "To come back, renew from your subscriber area: you will get a new link.",
        (Lang::En, _) => "To come back, send /buy to the bot.",
    };
    match lang {
        Lang::Fr => t(
            "Abonnement terminé",
            format!("Votre abonnement à « {channel} » est terminé et votre accès a été retiré. {back}"),
        ),
        Lang::En => t(
            "Subscription ended",
            format!("Your subscription to \"{channel}\" has ended and your access was removed. {back}"),
        ),
    }
}

/// `removal`: when the member is removed, if later than `end` (`GRACE_HOURS`).
pub fn warning(lang: Lang, channel: &str, end: DateTime<Utc>, days: i64, how: RenewBy, removal: DateTime<Utc>) -> Text {
    let grace = match lang {
        _ if removal <= end => String::new(),
        Lang::Fr => format!(" Sans renouvellement, l'accès est retiré le {}.", date(lang, removal)),
        Lang::En => format!(" Without a renewal, access is removed on {}.", date(lang, removal)),
    };
    match (lang, how) {
        (Lang::Fr, RenewBy::Itself) => t(
            "Votre abonnement se renouvelle bientôt",
            format!(
                "Votre abonnement à « {channel} » se renouvelle de lui-même le {} : rien à faire. S'il est résilié ou si le paiement échoue, l'accès s'arrête à la fin de la période payée.{grace}",
                date(lang, end)
            ),
        ),
        (Lang::En, RenewBy::Itself) => t(
            "Your subscription renews soon",
            format!(
                "Your subscription to \"{channel}\" renews by itself on {}: nothing to do. If it is cancelled or the payment fails, access ends with the period paid for.{grace}",
                date(lang, end)
            ),
        ),
        (Lang::Fr, _) => {
            let renew =
                if how == RenewBy::Buy { "envoyez /buy au bot" } else { "renouvelez-le depuis votre espace abonné" };
            t(
                "Votre abonnement se termine bientôt",
                format!(
                    "Votre abonnement à « {channel} » se termine le {} (dans {days} jour(s)). Pour ne pas perdre l'accès, {renew} : les jours s'ajoutent à la date de fin actuelle.{grace}",
                    date(lang, end)
                ),
            )
        }
        (Lang::En, _) => {
            let renew = if how == RenewBy::Buy { "send /buy to the bot" } else { "renew from your subscriber area" };
            t(
                "Your subscription ends soon",
                format!(
                    "Your subscription to \"{channel}\" ends on {} (in {days} day(s)). To keep your access, {renew}: the days are added to the current end date.{grace}",
                    date(lang, end)
                ),
            )
        }
    }
}

pub fn revoked(lang: Lang, channel: &str, reason: &str) -> Text {
    match lang {
        Lang::Fr => t(
            "Accès retiré",
            format!("Votre accès à « {channel} » a été retiré par un administrateur. Motif : {reason}"),
        ),
        Lang::En => t(
            "Access revoked",
            format!("Your access to \"{channel}\" was revoked by an administrator. Reason: {reason}"),
        ),
    }
}

pub fn welcome_with_stars(lang: Lang, channel: &str) -> String {
    match lang {
        Lang::Fr => format!(
            "Bienvenue ! Ce bot donne accès au canal privé « {channel} ».\n\nPayez en Telegram Stars ci-dessous : \
             vous êtes invité aussitôt. Déjà payé sur le site ? Ouvrez votre lien personnel.\n\n/status : votre abonnement\n\
             /paysupport : aide au paiement\n/help : l'aide"
        ),
        Lang::En => format!(
            "Welcome! This bot gives access to the private channel \"{channel}\".\n\nPay in Telegram Stars below and \
             you are invited at once. Paid on the website? Open your personal link.\n\n/status: your subscription\n\
             /paysupport: payment support\n/help: help"
        ),
    }
}

pub fn buy(lang: Lang, channel: &str) -> String {
    match lang {
        Lang::Fr => format!("Choisissez votre accès à « {channel} », payé en Telegram Stars :"),
        Lang::En => format!("Choose your access to \"{channel}\", paid in Telegram Stars:"),
    }
}

/// Too many `/buy` in a minute, or Telegram's flood control: try again in `seconds`.
pub fn wait_before_buying(lang: Lang, seconds: u64) -> String {
    match lang {
        Lang::Fr => format!("Un instant : réessayez dans {seconds} s."),
        Lang::En => format!("Just a moment: try again in {seconds} s."),
    }
}

pub fn nothing_for_sale(lang: Lang) -> String {
    match lang {
        Lang::Fr => {
            "Aucune offre n'est en vente en Telegram Stars. Voyez le site du créateur pour vous abonner.".into()
        }
        Lang::En => "No offer is sold in Telegram Stars. See the creator's website to subscribe.".into(),
    }
}

/// The pay button of an offer: its name and price, and whether it renews.
pub fn pay_button(lang: Lang, offer: &str, stars: u32, renewing: bool) -> String {
    match (lang, renewing) {
        (Lang::Fr, true) => format!("{offer} — {stars} ⭐ / 30 jours"),
        (Lang::Fr, false) => format!("{offer} — {stars} ⭐"),
        (Lang::En, true) => format!("{offer} — {stars} ⭐ / 30 days"),
        (Lang::En, false) => format!("{offer} — {stars} ⭐"),
    }
}

/// The invoice's description (1 to 255 characters).
pub fn invoice_description(lang: Lang, channel: &str, days: u32, renewing: bool) -> String {
    let text = match (lang, renewing) {
        (Lang::Fr, true) => format!("Accès au canal « {channel} », renouvelé tous les 30 jours jusqu'à résiliation."),
        (Lang::Fr, false) => format!("Accès au canal « {channel} » pendant {days} jours."),
        (Lang::En, true) => format!("Access to the channel \"{channel}\", renewed every 30 days until cancelled."),
        (Lang::En, false) => format!("Access to the channel \"{channel}\" for {days} days."),
    };
    text.chars().take(255).collect()
}

/// Why a pre-checkout query is refused (Telegram shows it to the buyer).
pub fn checkout_offer_gone(lang: Lang) -> String {
    match lang {
        Lang::Fr => "Cette offre n'est plus en vente à ce prix. Envoyez /buy pour voir les offres actuelles.".into(),
        Lang::En => "This offer is no longer sold at this price. Send /buy to see the current offers.".into(),
    }
}

pub fn checkout_barred(lang: Lang) -> String {
    match lang {
        Lang::Fr => "Ce compte ne peut pas acheter d'accès pour le moment. Contactez le support : /paysupport".into(),
        Lang::En => "This account cannot buy access at the moment. Contact support: /paysupport".into(),
    }
}

/// A channel administrator has access already: paying would buy nothing.
pub fn checkout_staff(lang: Lang) -> String {
    match lang {
        Lang::Fr => "Vous administrez ce canal : vous y avez déjà accès, rien à payer.".into(),
        Lang::En => "You administer this channel: you have access already, nothing to pay.".into(),
    }
}

/// Why a second renewing subscription is refused: the first one renews by itself.
pub fn checkout_already_subscribed(lang: Lang) -> String {
    match lang {
        Lang::Fr => "Votre abonnement se renouvelle déjà tout seul : rien de plus à payer. /status indique jusqu'à quand il est payé.".into(),
        Lang::En => "Your subscription already renews by itself: nothing more to pay. /status tells until when it is paid.".into(),
    }
}

/// Under the pay buttons shown to a subscriber whose subscription renews: passes only.
pub fn passes_only(lang: Lang) -> String {
    match lang {
        Lang::Fr => "Votre abonnement se renouvelle tout seul : seuls les accès ponctuels sont proposés, ils s'ajoutent à la période payée.".into(),
        Lang::En => "Your subscription renews by itself: only one-off passes are offered; they add to the period paid for.".into(),
    }
}

/// A payment that could not be turned into access was given back.
pub fn stars_refunded(lang: Lang) -> String {
    match lang {
        Lang::Fr => "Votre paiement n'a pas pu donner accès au canal : il vous est remboursé. Contactez le support : /paysupport".into(),
        Lang::En => "Your payment could not give access to the channel: it is being refunded. Contact support: /paysupport".into(),
    }
}

/// A subscription that will not renew (cancelled, or its charge failed): until when access lasts.
pub fn subscription_ending(lang: Lang, channel: &str, failed: bool, end: DateTime<Utc>) -> String {
    match (lang, failed) {
        (Lang::Fr, true) => format!(
            "Le renouvellement de votre abonnement à « {channel} » a échoué. Votre accès dure jusqu'au {} ; \
             /buy pour vous réabonner.",
            date(lang, end)
        ),
        (Lang::Fr, false) => {
            format!("Abonnement à « {channel} » résilié : votre accès dure jusqu'au {}.", date(lang, end))
        }
        (Lang::En, true) => format!(
            "The renewal of your subscription to \"{channel}\" failed. Your access lasts until {}; /buy to subscribe again.",
            date(lang, end)
        ),
        (Lang::En, false) => {
            format!("Subscription to \"{channel}\" cancelled: your access lasts until {}.", date(lang, end))
        }
    }
}

pub fn pay_support(lang: Lang, contact: &str) -> String {
    match lang {
        Lang::Fr => format!(
            "Une question sur un paiement ? Écrivez à {contact} en indiquant votre identifiant Telegram. \
             Les paiements en Stars peuvent être remboursés par le créateur."
        ),
        Lang::En => format!(
            "A question about a payment? Write to {contact} with your Telegram id. \
             Payments in Stars can be refunded by the creator."
        ),
    }
}

/// A minimal HTML rendering of a text body, for the HTML part of emails.
pub fn to_html(title: &str, body: &str) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let paragraphs: String = body.split('\n').map(|l| format!("<p>{}</p>", esc(l))).collect();
    format!("<!doctype html><html><body><h1>{}</h1>{paragraphs}</body></html>", esc(title))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_only_for_english_codes() {
        assert_eq!(Lang::from_code(Some("en-GB")), Lang::En);
        assert_eq!(Lang::from_code(Some("fr")), Lang::Fr);
        assert_eq!(Lang::from_code(Some("de")), Lang::Fr);
        assert_eq!(Lang::from_code(None), Lang::Fr);
    }

    #[test]
    fn html_bodies_are_escaped() {
        assert!(to_html("a<b", "<script>").contains("&lt;script&gt;"));
    }
}

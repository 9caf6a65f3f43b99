use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

use super::DomainError;
use super::texts::Lang;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    pub name: String,
    pub days: u32,
    /// Its price in Telegram Stars, when it is also sold inside Telegram (`/buy`).
    #[serde(default)]
    pub stars: Option<u32>,
    /// Sold in Stars as a subscription Telegram renews every 30 days until it is cancelled or
    /// fails; otherwise each purchase pays for one period.
    #[serde(default)]
    pub renewing: bool,
    /// Its price on the website, in the smallest unit of the currency (`990` for 9.90 EUR): each
    /// payment support validates counts it in the web revenue. Unset: web payments count none.
    #[serde(default)]
    pub price_cents: Option<u64>,
}

/// Telegram's only subscription period (`subscription_period`), 30 days.
pub const STAR_SUBSCRIPTION_DAYS: u32 = 30;
/// How long past a subscription's renewal date telegate waits for Telegram's payment before it
/// removes the member: the update may come late, or be missed and found by `reconcile-stars`
/// (hourly).
pub const STARS_RENEWAL_WAIT_HOURS: i64 = 24;
/// The most Stars one purchase may cost (Telegram's limit for invoices and subscriptions).
pub const MAX_STARS: u32 = 10_000;

/// The invoice payload of the earlier releases named the offer (`v1:<offer id>`); subscriptions
/// bought then still renew with it. A payload of this form counts as telegate's only for an
/// offer still listed in `OFFERS`.
pub fn stars_payload(offer_id: &str) -> String {
    format!("v1:{offer_id}")
}

/// The offer id a legacy (`v1:`) Stars invoice payload names.
pub fn offer_of_payload(payload: &str) -> Option<&str> {
    payload.strip_prefix("v1:").filter(|id| !id.is_empty())
}

/// An invoice link telegate created, and what it sells: a Star payment buys access only when its
/// payload is one of these (Telegram hands the payload back with the payment and each renewal).
/// One per sale (offer, price, period, kind) and language (Telegram shows its description in the
/// payment form): the link is reusable and is shown to every buyer who reads that language.
#[derive(Clone, Debug, PartialEq)]
pub struct Invoice {
    /// `v2:` and 128 random bits, in hex: nobody else's invoice carries it.
    pub payload: String,
    pub offer_id: String,
    pub stars: u32,
    pub days: u32,
    pub renewing: bool,
    /// The language of its title and description.
    pub lang: Lang,
    pub link: String,
    pub created_at: DateTime<Utc>,
}

impl Invoice {
    /// A new invoice for `offer`, with a fresh payload (its link still to be created).
    pub fn new(offer_id: &str, offer: &Offer, lang: Lang, at: DateTime<Utc>) -> Result<Self, DomainError> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| DomainError::Random(e.to_string()))?;
        let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            payload: format!("v2:{hex}"),
            offer_id: offer_id.to_owned(),
            stars: offer.stars.unwrap_or_default(),
            days: offer.days,
            renewing: offer.renewing,
            lang,
            link: String::new(),
            created_at: at,
        })
    }

    /// What it sells, and in which language, as a key: an offer whose price, period or kind
    /// changes gets a new invoice.
    pub fn sale(&self) -> String {
        sale_key(&self.offer_id, self.stars, self.days, self.renewing, self.lang)
    }

    /// Whether `offer` (as `OFFERS` says now) is still sold as this invoice sells it.
    pub fn still_sold_as(&self, offer: &Offer) -> bool {
        offer.stars == Some(self.stars) && offer.days == self.days && offer.renewing == self.renewing
    }
}

/// The sale an offer sold in Stars makes now, to a buyer who reads `lang` (see `Invoice::sale`).
pub fn sale_of(offer_id: &str, offer: &Offer, lang: Lang) -> String {
    sale_key(offer_id, offer.stars.unwrap_or_default(), offer.days, offer.renewing, lang)
}

/// Invoices recorded before the language was part of the key (`…|once`) are never found by sale
/// again (a new one is made per language); their payloads still buy what they sold.
fn sale_key(offer_id: &str, stars: u32, days: u32, renewing: bool, lang: Lang) -> String {
    let kind = if renewing { "renewing" } else { "once" };
    format!("{offer_id}|{stars}|{days}|{kind}|{}", lang.as_str())
}

/// The offers on sale (`OFFERS`). Without a list, any offer id is accepted with the default length.
#[derive(Clone, Debug, PartialEq)]
pub struct Offers {
    listed: Option<BTreeMap<String, Offer>>,
    default_days: u32,
}

impl Offers {
    pub fn any(default_days: u32) -> Self {
        Self { listed: None, default_days }
    }

    pub fn from_json(raw: &str, default_days: u32) -> Result<Self, String> {
        let listed: BTreeMap<String, Offer> =
            serde_json::from_str(raw).map_err(|e| format!("OFFERS is not valid JSON: {e}"))?;
        if let Some((id, _)) = listed.iter().find(|(_, o)| o.days == 0 || o.days > 3660) {
            return Err(format!("OFFERS: offer {id:?} must last 1 to 3660 days"));
        }
        for (id, o) in &listed {
            if o.price_cents.is_some_and(|p| p == 0 || p > 100_000_000) {
                return Err(format!("OFFERS: offer {id:?}: price_cents is a whole number from 1 to 100000000"));
            }
            if o.stars.is_some_and(|s| s == 0 || s > MAX_STARS) {
                return Err(format!("OFFERS: offer {id:?} must cost 1 to {MAX_STARS} Stars"));
            }
            if o.renewing && (o.stars.is_none() || o.days != STAR_SUBSCRIPTION_DAYS) {
                return Err(format!(
                    "OFFERS: offer {id:?} renews in Stars, so it needs a \"stars\" price and lasts {STAR_SUBSCRIPTION_DAYS} days (Telegram's only subscription period)"
                ));
            }
            // The id travels in the invoice payload (at most 128 bytes).
            if o.stars.is_some() && (id.is_empty() || id.len() > 64 || id.chars().any(char::is_control)) {
                return Err(format!("OFFERS: offer {id:?} sold in Stars needs an id of 1 to 64 printable characters"));
            }
        }
        Ok(Self { listed: Some(listed), default_days })
    }

    /// The offers sold in Stars, by id.
    pub fn in_stars(&self) -> Vec<(&str, &Offer)> {
        self.listed.iter().flatten().filter(|(_, o)| o.stars.is_some()).map(|(id, o)| (id.as_str(), o)).collect()
    }

    /// The offer a Stars purchase names, if it is still sold in Stars.
    pub fn find_in_stars(&self, offer_id: &str) -> Option<Offer> {
        self.listed.as_ref()?.get(offer_id).filter(|o| o.stars.is_some()).cloned()
    }

    /// The offer a payment names, or an error a payer can act on.
    pub fn find(&self, offer_id: &str) -> Result<Offer, DomainError> {
        let id = offer_id.trim();
        if id.is_empty() || id.len() > 64 || id.chars().any(char::is_control) {
            return Err(DomainError::invalid("offer_id", "must be 1 to 64 printable characters"));
        }
        match &self.listed {
            Some(list) => list.get(id).cloned().ok_or(DomainError::invalid("offer_id", "is not an offer on sale")),
            None => Ok(Offer {
                name: id.to_owned(),
                days: self.default_days,
                stars: None,
                renewing: false,
                price_cents: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_list_any_offer_gets_the_default_length() {
        let offers = Offers::any(30);
        assert_eq!(
            offers.find("premium").unwrap(),
            Offer { name: "premium".into(), days: 30, stars: None, renewing: false, price_cents: None }
        );
    }

    #[test]
    fn with_a_list_only_listed_offers_are_accepted() {
        let offers = Offers::from_json(r#"{"p": {"name": "Premium", "days": 90}}"#, 30).unwrap();
        assert_eq!(offers.find("p").unwrap().days, 90);
        assert!(offers.find("q").is_err());
    }

    #[test]
    fn offers_sold_in_stars_are_checked_against_telegrams_rules() {
        let offers = Offers::from_json(
            r#"{"m": {"name": "Monthly", "days": 30, "stars": 250, "renewing": true},
                "y": {"name": "Year", "days": 365, "stars": 2500}, "w": {"name": "Web only", "days": 30}}"#,
            30,
        )
        .unwrap();
        assert_eq!(offers.in_stars().iter().map(|(id, _)| *id).collect::<Vec<_>>(), ["m", "y"]);
        assert!(offers.find_in_stars("w").is_none());
        assert_eq!(offer_of_payload(&stars_payload("m")), Some("m"));
        assert_eq!(offer_of_payload("m"), None);
        for bad in [
            r#"{"m": {"name": "M", "days": 31, "stars": 250, "renewing": true}}"#,
            r#"{"m": {"name": "M", "days": 30, "renewing": true}}"#,
            r#"{"m": {"name": "M", "days": 30, "stars": 0}}"#,
            r#"{"m": {"name": "M", "days": 30, "stars": 10001}}"#,
            r#"{"m": {"name": "M", "days": 30, "star": 10}}"#,
        ] {
            assert!(Offers::from_json(bad, 30).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_invoice_has_its_own_payload_and_a_changed_offer_is_another_sale() {
        let offer = Offer { name: "M".into(), days: 30, stars: Some(250), renewing: true, price_cents: None };
        let new = || Invoice::new("m", &offer, Lang::Fr, Utc::now()).unwrap();
        let (a, b) = (new(), new());
        assert_ne!(a.payload, b.payload);
        assert!(a.payload.starts_with("v2:") && a.payload.len() == 35, "{}", a.payload);
        assert_eq!((a.sale(), sale_of("m", &offer, Lang::Fr)), (b.sale(), a.sale()));
        assert_ne!(sale_of("m", &offer, Lang::En), a.sale(), "one invoice per language");
        assert!(a.still_sold_as(&offer));
        let repriced = Offer { stars: Some(300), ..offer.clone() };
        assert!(!a.still_sold_as(&repriced) && sale_of("m", &repriced, Lang::Fr) != a.sale());
        assert_eq!(offer_of_payload(&a.payload), None, "not a legacy payload");
    }

    #[test]
    fn an_offer_of_zero_days_is_a_configuration_error() {
        assert!(Offers::from_json(r#"{"p": {"name": "P", "days": 0}}"#, 30).is_err());
        assert!(Offers::from_json("not json", 30).is_err());
        assert!(Offers::from_json(r#"{"p": {"name": "P", "days": 30, "price_cents": 0}}"#, 30).is_err());
        let priced = Offers::from_json(r#"{"p": {"name": "P", "days": 30, "price_cents": 990}}"#, 30).unwrap();
        assert_eq!(priced.find("p").unwrap().price_cents, Some(990));
    }
}

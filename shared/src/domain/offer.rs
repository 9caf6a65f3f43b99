use serde::Deserialize;
use std::collections::BTreeMap;

use super::DomainError;

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Offer {
    pub name: String,
    pub days: u32,
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
        Ok(Self { listed: Some(listed), default_days })
    }

    /// The offer a payment names, or an error a payer can act on.
    pub fn find(&self, offer_id: &str) -> Result<Offer, DomainError> {
        let id = offer_id.trim();
        if id.is_empty() || id.len() > 64 || id.chars().any(char::is_control) {
            return Err(DomainError::invalid("offer_id", "must be 1 to 64 printable characters"));
        }
        match &self.listed {
            Some(list) => list.get(id).cloned().ok_or(DomainError::invalid("offer_id", "is not an offer on sale")),
            None => Ok(Offer { name: id.to_owned(), days: self.default_days }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_list_any_offer_gets_the_default_length() {
        let offers = Offers::any(30);
        assert_eq!(offers.find("premium").unwrap(), Offer { name: "premium".into(), days: 30 });
    }

    #[test]
    fn with_a_list_only_listed_offers_are_accepted() {
        let offers = Offers::from_json(r#"{"p": {"name": "Premium", "days": 90}}"#, 30).unwrap();
        assert_eq!(offers.find("p").unwrap().days, 90);
        assert!(offers.find("q").is_err());
    }

    #[test]
    fn an_offer_of_zero_days_is_a_configuration_error() {
        assert!(Offers::from_json(r#"{"p": {"name": "P", "days": 0}}"#, 30).is_err());
        assert!(Offers::from_json("not json", 30).is_err());
    }
}

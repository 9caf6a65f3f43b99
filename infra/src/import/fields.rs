//! One row of the dump, read through the mapping: the guide's field names, Django's value shapes
//! (numbers as text, flags as text, its time formats), and which fields were read.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::{Context, Mapping};
use telegate_core::domain::{Lang, Payment, PaymentId, PaymentStatus, UserId, parse_transaction_id};

/// One row's fields, read through the mapping; remembers which were read.
pub(super) struct Fields<'a> {
    pub(super) model: &'a str,
    pub(super) pk: String,
    pub(super) map: &'a Map<String, Value>,
    pub(super) renames: Option<&'a HashMap<String, String>>,
    pub(super) used: &'a mut BTreeSet<String>,
}

impl Fields<'_> {
    pub(super) fn value(&mut self, ours: &str) -> Option<Value> {
        let theirs = self.renames.and_then(|r| r.get(ours)).map(String::as_str).unwrap_or(ours);
        self.used.insert(theirs.to_owned());
        self.map.get(theirs).filter(|v| !v.is_null()).cloned()
    }
    pub(super) fn text(&mut self, ours: &str) -> Option<String> {
        match self.value(ours)? {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    pub(super) fn int(&mut self, ours: &str) -> Result<Option<i64>, String> {
        match self.value(ours) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(format!("{ours} is not an integer")),
            Some(Value::String(s)) => {
                s.trim().parse().map(Some).map_err(|_| format!("{ours} is not an integer: {s:?}"))
            }
            Some(v) => Err(format!("{ours} is not an integer: {v}")),
        }
    }
    pub(super) fn flag(&mut self, ours: &str) -> Option<bool> {
        match self.value(ours)? {
            Value::Bool(b) => Some(b),
            Value::Number(n) => Some(n.as_i64() != Some(0)),
            Value::String(s) => Some(matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes")),
            _ => None,
        }
    }
    pub(super) fn time(&mut self, ours: &str) -> Result<Option<DateTime<Utc>>, String> {
        match self.text(ours) {
            None => Ok(None),
            Some(raw) => parse_time(&raw).map(Some).ok_or(format!("{ours} is not a date: {raw:?}")),
        }
    }
    pub(super) fn required_time(&mut self, ours: &str) -> Result<DateTime<Utc>, String> {
        self.time(ours)?.ok_or(format!("{ours} is missing"))
    }
    /// The offer a payment names (`offer_id` or `offer`), renamed by the mapping, and on sale.
    pub(super) fn offer(&mut self, mapping: &Mapping, cx: &Context) -> Result<String, String> {
        let offer = self.text("offer_id").or_else(|| self.text("offer")).ok_or("offer_id is missing")?;
        let offer_id = mapping.offers.get(&offer).cloned().unwrap_or(offer);
        cx.offers.find(&offer_id).map_err(|_| format!("unknown offer {offer_id:?}"))?;
        Ok(offer_id)
    }

    pub(super) fn user(&mut self, mapping: &Mapping) -> Result<UserId, String> {
        let pk = self.text("user").ok_or("user is missing")?;
        let sub = mapping.users.get(&pk).cloned().unwrap_or(pk);
        UserId::parse(&sub).map_err(|e| format!("user {sub:?}: {e}"))
    }

    /// The payment a `PendingPayment` or `Payment` row describes, with `status` (its id derived from
    /// the row, so that a second import finds it again).
    pub(super) fn payment(
        &mut self,
        mapping: &Mapping,
        cx: &Context,
        status: PaymentStatus,
    ) -> Result<Payment, String> {
        let user_id = self.user(mapping)?;
        let offer_id = self.offer(mapping, cx)?;
        let transaction_id =
            parse_transaction_id(&self.text("transaction_id").unwrap_or_default()).map_err(|e| e.to_string())?;
        let created_at = self.required_time("created_at")?;
        Ok(Payment {
            id: PaymentId::derived(created_at, &format!("{}:{}", self.model, self.pk)),
            user_id,
            email: self.text("email"),
            offer_id,
            transaction_id,
            user_info: None,
            status,
            admin_notes: self.text("admin_notes"),
            reject_reason: None,
            created_at,
            updated_at: self.time("updated_at")?.unwrap_or(created_at),
            reviewed_by: None,
            refund_note: None,
            revenue_cents: None,
            lang: Lang::Fr,
        })
    }
}

/// Django writes `2026-11-20T10:00:00Z`, `…:00.123456+01:00`, naive times when `USE_TZ` is off
/// (read as UTC) and plain dates for a `DateField` (midnight UTC).
fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(raw, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

pub(super) fn pk_text(pk: &Value) -> String {
    match pk {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

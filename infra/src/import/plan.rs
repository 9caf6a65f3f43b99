//! The plan: the dump read and checked, nothing written.

use super::ImportError;
use super::fields::{Fields, pk_text};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use telegate_core::domain::{
    AccessToken, Exemption, Membership, MembershipId, MembershipStatus, Notification, NotificationId, NotificationKind,
    Offers, Payment, PaymentId, PaymentStatus, TelegramUserId, TokenHash, TokenRecord, TokenStatus, UserId,
    transaction_key,
};
use telegate_core::ports::Imported;

/// The five models of the original guide, by their lower-case model name (any app label).
const MODELS: [&str; 5] =
    ["pendingpayment", "payment", "telegrambottoken", "telegramchannelmember", "telegramnotification"];

/// Renames for a dump whose fields differ from the guide's, and the ids telegate should use.
/// `{"fields": {"telegramchannelmember": {"subscription_end_date": "ends_on"}},
///   "users": {"42": "cognito-sub-of-42"}, "offers": {"3": "monthly"}}`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Per model: the guide's field name → the dump's.
    #[serde(default)]
    pub fields: HashMap<String, HashMap<String, String>>,
    /// A Django user's primary key → the JWT subject that user signs in with (default: the key).
    #[serde(default)]
    pub users: HashMap<String, String>,
    /// The dump's offer → telegate's offer id (default: the same).
    #[serde(default)]
    pub offers: HashMap<String, String>,
}

impl Mapping {
    pub fn from_json(raw: &str) -> Result<Self, ImportError> {
        serde_json::from_str(raw).map_err(ImportError::Mapping)
    }
}

/// What the import needs to know about the telegate it writes into.
pub struct Context {
    pub offers: Offers,
    pub channel_id: i64,
    pub now: DateTime<Utc>,
    /// Telegram accounts to keep though no record covers them (`--keep`).
    pub keep: Vec<TelegramUserId>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Refusal {
    pub model: String,
    pub pk: String,
    pub reason: String,
}

/// Everything the dump holds, as telegate will store it, and what it refuses.
#[derive(Debug, Default)]
pub struct Plan {
    pub records: Vec<Imported>,
    pub refused: Vec<Refusal>,
    /// Per model, the dump's fields the import did not read.
    pub unused_fields: BTreeMap<String, BTreeSet<String>>,
    /// Rows of models the import does not know, per model.
    pub other_models: BTreeMap<String, usize>,
}

#[derive(Deserialize)]
struct Row {
    model: String,
    pk: Value,
    fields: Map<String, Value>,
}

/// A payment as planned, with what its tokens need.
struct Planned {
    payment: Payment,
    offer_name: String,
    days: u32,
    current_token: Option<(DateTime<Utc>, TokenHash)>,
}

#[derive(Default)]
struct Planner {
    refused: Vec<Refusal>,
    fields_seen: BTreeMap<String, BTreeSet<String>>,
    fields_used: BTreeMap<String, BTreeSet<String>>,
    payments: BTreeMap<PaymentId, Planned>,
    /// (model, pk) → our payment.
    payment_pks: HashMap<(String, String), PaymentId>,
    transaction_keys: HashMap<String, String>,
    tokens: Vec<TokenRecord>,
    token_hashes: BTreeSet<String>,
    /// (account, user) → the payment of their latest token.
    token_payments: HashMap<(TelegramUserId, UserId), PaymentId>,
    /// user → their latest validated payment; made when the first member is read, once every
    /// payment is.
    latest_validated: Option<HashMap<UserId, PaymentId>>,
    memberships: Vec<Membership>,
    /// account → its active membership in `memberships`.
    active_of_account: HashMap<TelegramUserId, usize>,
    notifications: Vec<Notification>,
}

impl Planner {
    fn refuse(&mut self, model: &str, pk: &str, reason: impl Into<String>) {
        self.refused.push(Refusal { model: model.into(), pk: pk.into(), reason: reason.into() });
    }

    /// The payment a row names: `payment` (or the guide's `payment_id`) is a `Payment`'s key, else
    /// a `PendingPayment`'s; `pending_payment` a `PendingPayment`'s.
    fn payment_of(&self, f: &mut Fields<'_>) -> Option<PaymentId> {
        let find = |model: &str, pk: &Option<String>| {
            pk.as_ref().and_then(|pk| self.payment_pks.get(&(model.to_owned(), pk.clone())).cloned())
        };
        let named = f.text("payment").or_else(|| f.text("payment_id"));
        let pending = f.text("pending_payment");
        find("payment", &named).or_else(|| find("pendingpayment", &named)).or_else(|| find("pendingpayment", &pending))
    }

    fn pending_payment(&mut self, f: &mut Fields<'_>, mapping: &Mapping, cx: &Context) -> Result<(), String> {
        let payment = f.payment(mapping, cx, PaymentStatus::TransactionSubmitted)?;
        let status = match f.text("status").as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("transaction_submitted" | "submitted" | "pending") | None => PaymentStatus::TransactionSubmitted,
            Some("validated" | "approved" | "completed" | "paid") => PaymentStatus::Validated,
            Some("rejected" | "refused" | "cancelled") => PaymentStatus::Rejected,
            Some(other) => return Err(format!("unknown status {other:?}")),
        };
        let payment = Payment {
            user_info: f.value("user_info").map(|v| match v {
                Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
                other => other,
            }),
            reject_reason: f.text("rejection_reason").or_else(|| f.text("reject_reason")),
            status,
            ..payment
        };
        self.add_payment(f, payment, cx)
    }

    fn add_payment(&mut self, f: &Fields<'_>, payment: Payment, cx: &Context) -> Result<(), String> {
        let key = transaction_key(&payment.transaction_id);
        if let Some(first) = self.transaction_keys.get(&key) {
            return Err(format!("duplicate transaction id (already used by {first})"));
        }
        let offer = cx.offers.find(&payment.offer_id).map_err(|e| e.to_string())?;
        self.transaction_keys.insert(key, format!("{} {}", f.model, f.pk));
        self.payment_pks.insert((f.model.to_owned(), f.pk.clone()), payment.id.clone());
        self.payments.insert(
            payment.id.clone(),
            Planned { payment, offer_name: offer.name, days: offer.days, current_token: None },
        );
        Ok(())
    }

    /// A `Payment` row: the validated side of a pending payment (merged into it), or a payment
    /// of its own when it names none.
    fn payment(&mut self, f: &mut Fields<'_>, mapping: &Mapping, cx: &Context) -> Result<(), String> {
        if let Some(pending) = f.text("pending_payment") {
            let id = self
                .payment_pks
                .get(&("pendingpayment".into(), pending.clone()))
                .cloned()
                .ok_or(format!("its pending payment {pending} is not imported"))?;
            let user_id = f.user(mapping)?;
            let planned = self.payments.get_mut(&id).ok_or("its pending payment is not imported")?;
            if planned.payment.user_id != user_id {
                return Err(format!("its pending payment {pending} belongs to another user"));
            }
            if planned.payment.status == PaymentStatus::Rejected {
                return Err(format!("its pending payment {pending} was rejected"));
            }
            planned.payment.status = PaymentStatus::Validated;
            if let Some(at) = f.time("created_at")? {
                planned.payment.updated_at = planned.payment.updated_at.max(at);
            }
            self.payment_pks.insert((f.model.to_owned(), f.pk.clone()), id);
            return Ok(());
        }
        let payment = f.payment(mapping, cx, PaymentStatus::Validated)?;
        // Validation in the guide creates a `Payment` with the pending payment's transaction id:
        // the same payment, even where the row does not name it.
        if let Some(id) = self.pending_with(&payment) {
            let planned = self.payments.get_mut(&id).ok_or("its pending payment is not imported")?;
            if planned.payment.status == PaymentStatus::Rejected {
                return Err("its pending payment (same transaction id and user) was rejected".into());
            }
            planned.payment.status = PaymentStatus::Validated;
            planned.payment.updated_at = planned.payment.updated_at.max(payment.created_at);
            self.payment_pks.insert((f.model.to_owned(), f.pk.clone()), id);
            return Ok(());
        }
        self.add_payment(f, payment, cx)
    }

    /// The imported `PendingPayment` with `payment`'s transaction id and user, if any.
    fn pending_with(&self, payment: &Payment) -> Option<PaymentId> {
        let key = transaction_key(&payment.transaction_id);
        self.payment_pks.iter().find_map(|((model, _), id)| {
            let p = &self.payments.get(id)?.payment;
            (model == "pendingpayment" && transaction_key(&p.transaction_id) == key && p.user_id == payment.user_id)
                .then(|| id.clone())
        })
    }

    fn token(&mut self, f: &mut Fields<'_>, mapping: &Mapping, cx: &Context) -> Result<(), String> {
        // A token is a string of at least 16 characters: `true`, `7` or `"a"` would open the
        // channel for anyone who types `/start a`.
        let raw = match f.value("token") {
            Some(Value::String(s)) if s.trim().chars().count() >= 16 => s,
            Some(Value::String(_)) => return Err("the token is shorter than 16 characters: guessable".into()),
            Some(other) => return Err(format!("the token is not a string: {other}")),
            None => return Err("token is missing".into()),
        };
        let token = AccessToken::parse(raw.trim()).map_err(|_| {
            format!("the token is not a valid deep-link payload (1 to 64 of A-Z a-z 0-9 _ -; {} characters)", raw.len())
        })?;
        let hash = token.hash();
        if self.token_hashes.contains(hash.as_str()) {
            return Err("duplicate token".into());
        }
        let payment_id = self.payment_of(f).ok_or("its payment is not imported")?;
        let user_id = f.user(mapping)?;
        let planned = self.payments.get_mut(&payment_id).ok_or("its payment is not imported")?;
        if planned.payment.user_id != user_id {
            return Err("its payment belongs to another user".into());
        }
        if planned.payment.status != PaymentStatus::Validated {
            return Err("its payment is not validated".into());
        }
        let expires_at = f.required_time("expires_at")?;
        let created_at = f.time("created_at")?.unwrap_or(planned.payment.updated_at);
        let account =
            f.int("telegram_user_id")?.map(|a| TelegramUserId::parse(a).map_err(|e| e.to_string())).transpose()?;
        let used = match f.text("status").as_deref() {
            Some(s) => s.eq_ignore_ascii_case("used"),
            None => f.flag("is_used").unwrap_or(false),
        };
        let status = if used {
            TokenStatus::Used
        } else if expires_at <= cx.now {
            TokenStatus::Expired
        } else if account.is_some() {
            TokenStatus::Bound
        } else {
            TokenStatus::Pending
        };
        if status != TokenStatus::Expired && planned.current_token.as_ref().is_none_or(|(at, _)| *at <= created_at) {
            planned.current_token = Some((created_at, hash.clone()));
        }
        self.token_hashes.insert(hash.as_str().to_owned());
        if let Some(a) = account {
            self.token_payments.insert((a, planned.payment.user_id.clone()), payment_id.clone());
        }
        self.tokens.push(TokenRecord {
            hash,
            payment_id: payment_id.clone(),
            user_id: planned.payment.user_id.clone(),
            offer_name: planned.offer_name.clone(),
            days: planned.days,
            status,
            created_at,
            expires_at,
            telegram_user_id: account,
            membership_id: None,
            used_at: if used { f.time("used_at")?.or(Some(created_at)) } else { None },
        });
        Ok(())
    }

    fn member(&mut self, f: &mut Fields<'_>, mapping: &Mapping, cx: &Context) -> Result<(), String> {
        let account = f.int("telegram_user_id")?.ok_or("telegram_user_id is missing")?;
        let account = TelegramUserId::parse(account).map_err(|e| e.to_string())?;
        if let Some(channel) = f.int("channel_id")?
            && channel != cx.channel_id
        {
            return Err(format!("another channel ({channel}, not TELEGRAM_CHANNEL_ID {})", cx.channel_id));
        }
        let user_id = f.user(mapping)?;
        let named = self.payment_of(f);
        let payments = &self.payments;
        let latest = self.latest_validated.get_or_insert_with(|| {
            let mut latest: HashMap<UserId, (DateTime<Utc>, PaymentId)> = HashMap::new();
            for p in payments.values().filter(|p| p.payment.status == PaymentStatus::Validated) {
                let (id, at) = (&p.payment.id, p.payment.created_at);
                let entry = latest.entry(p.payment.user_id.clone()).or_insert((at, id.clone()));
                if at > entry.0 {
                    *entry = (at, id.clone());
                }
            }
            latest.into_iter().map(|(user, (_, id))| (user, id)).collect()
        });
        let payment_id = match named {
            Some(p) => p,
            None => self
                .token_payments
                .get(&(account, user_id.clone()))
                .or_else(|| latest.get(&user_id))
                .cloned()
                .ok_or("no validated payment of this user is imported")?,
        };
        let planned = self.payments.get(&payment_id).ok_or("its payment is not imported")?;
        if planned.payment.user_id != user_id {
            return Err("its payment belongs to another user".into());
        }
        let end = f.time("subscription_end_date")?;
        let joined_at = f.time("joined_at")?.or(f.time("created_at")?).ok_or("joined_at is missing")?;
        let state = match f.text("status") {
            Some(s) => s.to_ascii_lowercase(),
            None => match f.flag("is_active") {
                Some(true) => "active".into(),
                _ => "expired".into(),
            },
        };
        let ended_at = f.time("left_at")?.or(f.time("updated_at")?).or(end).unwrap_or(joined_at);
        let (status, in_channel, ended) = match state.as_str() {
            "active" | "member" => (MembershipStatus::Active, true, None),
            "left" => (MembershipStatus::Active, false, None),
            "expired" | "inactive" | "ended" => {
                (MembershipStatus::Expired, false, Some((ended_at, "imported: expired")))
            }
            "revoked" | "banned" | "kicked" | "removed" => {
                (MembershipStatus::Revoked, false, Some((ended_at, "imported: revoked")))
            }
            other => return Err(format!("unknown status {other:?}")),
        };
        if status == MembershipStatus::Active && end.is_none() {
            return Err("subscription_end_date is missing".into());
        }
        let id = MembershipId::derived(joined_at, &format!("{}:{}", f.model, f.pk));
        let offer = planned.offer_name.clone();
        let membership = Membership {
            telegram_username: f.text("telegram_username"),
            status,
            expires_at: end,
            in_channel,
            left_at: if state == "left" { Some(ended_at) } else { None },
            ended_at: ended.map(|(at, _)| at),
            end_reason: ended.map(|(_, why)| why.to_owned()),
            ..Membership::joined(id, user_id, account, payment_id, offer, joined_at, end.unwrap_or(joined_at))
        };
        // One current membership per account: the one that ends last.
        if status == MembershipStatus::Active {
            if let Some(&pos) = self.active_of_account.get(&account) {
                if self.memberships[pos].expires_at >= membership.expires_at {
                    let kept = &self.memberships[pos].id;
                    return Err(format!("the account has an active membership that ends later ({kept})"));
                }
                let earlier = std::mem::replace(&mut self.memberships[pos], membership);
                let why = "the account has an active membership that ends later";
                self.refuse(f.model, &format!("(membership {})", earlier.id), why);
                return Ok(());
            }
            self.active_of_account.insert(account, self.memberships.len());
        }
        self.memberships.push(membership);
        Ok(())
    }

    fn notification(&mut self, f: &mut Fields<'_>, mapping: &Mapping) -> Result<(), String> {
        let user_id = f.user(mapping)?;
        let kind = f.text("notification_type").ok_or("notification_type is missing")?;
        let kind = NotificationKind::parse(&kind).map_err(|_| format!("unknown notification_type {kind:?}"))?;
        let created_at = f.required_time("created_at")?;
        self.notifications.push(Notification {
            id: NotificationId::derived(created_at, &format!("{}:{}", f.model, f.pk)),
            user_id,
            kind,
            title: f.text("title").ok_or("title is missing")?,
            message: f.text("message").ok_or("message is missing")?,
            action_url: f.text("action_url").filter(|u| !u.is_empty()),
            created_at,
            read: f.flag("is_read").or(f.flag("read")).unwrap_or(false),
        });
        Ok(())
    }

    fn into_plan(mut self, cx: &Context, other_models: BTreeMap<String, usize>) -> Plan {
        // A used token started the membership of its payment (or of its account and user).
        let mut by_payment: HashMap<&PaymentId, &MembershipId> = HashMap::new();
        let mut by_account: HashMap<(TelegramUserId, &UserId), &MembershipId> = HashMap::new();
        for m in &self.memberships {
            by_payment.entry(&m.payment_id).or_insert(&m.id);
            by_account.entry((m.telegram_user_id, &m.user_id)).or_insert(&m.id);
        }
        let mut tokens_of: HashMap<MembershipId, Vec<TokenHash>> = HashMap::new();
        for t in self.tokens.iter_mut().filter(|t| t.status == TokenStatus::Used) {
            let started = by_payment
                .get(&t.payment_id)
                .or_else(|| t.telegram_user_id.and_then(|a| by_account.get(&(a, &t.user_id))))
                .map(|m| (*m).clone());
            if let Some(m) = &started {
                tokens_of.entry(m.clone()).or_default().push(t.hash.clone());
            }
            t.membership_id = started;
        }
        let mut records: Vec<Imported> = self
            .payments
            .into_values()
            .map(|p| Imported::Payment { payment: p.payment, current_token: p.current_token.map(|(_, h)| h) })
            .collect();
        records.extend(self.tokens.into_iter().map(Imported::Token));
        records.extend(self.memberships.into_iter().map(|m| {
            let tokens = tokens_of.remove(&m.id).unwrap_or_default();
            Imported::Membership { membership: m, tokens }
        }));
        records.extend(self.notifications.into_iter().map(Imported::Notification));
        records.extend(cx.keep.iter().map(|&account| {
            Imported::Exempt(Exemption { telegram_user_id: account, note: "kept at the import".into(), at: cx.now })
        }));
        let unused_fields = self
            .fields_seen
            .into_iter()
            .map(|(model, seen)| {
                let used = self.fields_used.get(&model).cloned().unwrap_or_default();
                (model, seen.difference(&used).cloned().collect::<BTreeSet<_>>())
            })
            .filter(|(_, unused)| !unused.is_empty())
            .collect();
        Plan { records, refused: self.refused, unused_fields, other_models }
    }
}

/// Reads the dump and decides every row: what it becomes, or why it is refused. Writes nothing.
pub fn plan(dump: &str, mapping: &Mapping, cx: &Context) -> Result<Plan, ImportError> {
    let rows: Vec<Row> = serde_json::from_str(dump).map_err(ImportError::Dump)?;
    let mut by_model: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    let mut other_models = BTreeMap::new();
    for row in &rows {
        let name = row.model.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
        match MODELS.iter().find(|m| **m == name) {
            Some(m) => by_model.entry(m).or_default().push(row),
            None => *other_models.entry(row.model.clone()).or_insert(0) += 1,
        }
    }
    let mut planner = Planner::default();
    // Two rows of one model with one key: which is right is not ours to guess; both are refused.
    let mut keys: HashMap<(&str, String), usize> = HashMap::new();
    for (model, rows) in &by_model {
        for row in rows {
            *keys.entry((*model, pk_text(&row.pk))).or_insert(0) += 1;
        }
    }
    // In dependency order: payments before the tokens and members that name them.
    for model in MODELS {
        for row in by_model.get(model).cloned().unwrap_or_default() {
            let pk = pk_text(&row.pk);
            let copies = keys.get(&(model, pk.clone())).copied().unwrap_or(1);
            if copies > 1 {
                planner.refuse(model, &pk, format!("duplicate primary key: {copies} rows of {model} have it"));
                continue;
            }
            planner.fields_seen.entry(model.into()).or_default().extend(row.fields.keys().cloned());
            let mut used = std::mem::take(planner.fields_used.entry(model.into()).or_default());
            let mut fields =
                Fields { model, pk: pk.clone(), map: &row.fields, renames: mapping.fields.get(model), used: &mut used };
            let result = match model {
                "pendingpayment" => planner.pending_payment(&mut fields, mapping, cx),
                "payment" => planner.payment(&mut fields, mapping, cx),
                "telegrambottoken" => planner.token(&mut fields, mapping, cx),
                "telegramchannelmember" => planner.member(&mut fields, mapping, cx),
                _ => planner.notification(&mut fields, mapping),
            };
            planner.fields_used.insert(model.into(), used);
            if let Err(reason) = result {
                planner.refuse(model, &pk, reason);
            }
        }
    }
    Ok(planner.into_plan(cx, other_models))
}

//! Writing an import plan into the store, and checking the store against it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::{Importable, Plan, Refusal};
use telegate_core::domain::{AuditAction, AuditEntry, AuditId, UserId};
use telegate_core::ports::{Imported, PageRequest, Store, StoreError, Written};

/// What a record is, for the summary: its kind and status.
pub fn describe(record: &Imported) -> (&'static str, String) {
    match record {
        Imported::Payment { payment, .. } => ("payments", payment.status.as_str().into()),
        Imported::Token(t) => ("tokens", t.status.as_str().into()),
        Imported::Membership { membership, .. } => ("memberships", membership.status.as_str().into()),
        Imported::Notification(n) => ("notifications", if n.read { "read" } else { "unread" }.into()),
        Imported::Exempt(_) => ("kept accounts", "exempt".into()),
    }
}

/// Per kind and status: how many records were new, already there, or refused by the store.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Outcome {
    pub new: BTreeMap<String, usize>,
    pub already: BTreeMap<String, usize>,
    pub refused: Vec<Refusal>,
}

/// Records per call to the store: small enough to show progress and to lose little to a crash.
const BATCH: usize = 500;

/// Writes the plan, each record once (a rerun after a crash writes only what is missing), then
/// records what was imported in the audit log.
pub async fn apply(
    store: &dyn Importable,
    plan: &Plan,
    now: DateTime<Utc>,
    progress: &dyn Fn(usize, usize),
) -> Result<Outcome, StoreError> {
    let mut outcome = Outcome::default();
    for (i, batch) in plan.records.chunks(BATCH).enumerate() {
        let written = store.import(batch).await?;
        for (record, w) in batch.iter().zip(written) {
            let (kind, status) = describe(record);
            let label = format!("{kind} {status}");
            match w {
                Written::New => *outcome.new.entry(label).or_insert(0) += 1,
                Written::Already => *outcome.already.entry(label).or_insert(0) += 1,
                Written::Refused(code) => outcome.refused.push(Refusal {
                    model: kind.into(),
                    pk: record_id(record),
                    reason: code.replace('_', " "),
                }),
            }
        }
        progress((i * BATCH + batch.len()).min(plan.records.len()), plan.records.len());
    }
    let entry = AuditEntry {
        id: AuditId::generate(now).map_err(|e| StoreError::Unavailable(telegate_core::ports::Cause::new(e)))?,
        at: now,
        actor: "system".into(),
        action: AuditAction::Imported,
        user_id: None,
        telegram_user_id: None,
        details: serde_json::json!({
            "new": outcome.new, "already": outcome.already,
            "refused_by_store": outcome.refused.len(), "refused_in_dump": plan.refused.len(),
        }),
    };
    store.record(&entry).await?;
    Ok(outcome)
}

fn record_id(record: &Imported) -> String {
    match record {
        Imported::Payment { payment, .. } => payment.id.to_string(),
        Imported::Token(t) => t.hash.label().to_owned(),
        Imported::Membership { membership, .. } => membership.id.to_string(),
        Imported::Notification(n) => n.id.to_string(),
        Imported::Exempt(e) => e.telegram_user_id.get().to_string(),
    }
}

/// Compares the store with the plan: every record must be there; a record that moved on since
/// the import (a token used, a membership ended) is reported as changed, not as missing.
pub async fn verify(store: &dyn Store, plan: &Plan, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    let mut notifications_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for record in &plan.records {
        let (kind, _) = describe(record);
        let id = record_id(record);
        let found = match record {
            Imported::Payment { payment, .. } => match store.payment(&payment.id).await? {
                Some(p) if p.transaction_id == payment.transaction_id && p.user_id == payment.user_id => true,
                Some(_) => {
                    problems.push(format!("{kind} {id}: differs from the dump (transaction id or user)"));
                    continue;
                }
                None => false,
            },
            Imported::Token(t) => store.token(&t.hash).await?.is_some_and(|s| s.payment_id == t.payment_id),
            Imported::Membership { membership, .. } => store
                .membership(&membership.id)
                .await?
                .is_some_and(|m| m.telegram_user_id == membership.telegram_user_id),
            Imported::Exempt(e) => store.exemption(e.telegram_user_id).await?.is_some(),
            Imported::Notification(n) => {
                if n.kept_until() <= now {
                    continue; // past its retention: the clean-up may have removed it
                }
                let user = n.user_id.as_str().to_owned();
                if !notifications_of.contains_key(&user) {
                    notifications_of.insert(user.clone(), notification_ids(store, &n.user_id, now).await?);
                }
                notifications_of[&user].contains(n.id.as_str())
            }
        };
        if !found {
            problems.push(format!("{kind} {id}: missing from the store"));
        }
    }
    Ok(problems)
}

async fn notification_ids(
    store: &dyn Store,
    user: &UserId,
    now: DateTime<Utc>,
) -> Result<BTreeSet<String>, StoreError> {
    let mut ids = BTreeSet::new();
    let mut page = PageRequest { limit: 100, after: None };
    loop {
        let p = store.notifications(user, &page, now).await?;
        ids.extend(p.items.iter().map(|n| n.id.to_string()));
        match p.next {
            Some(next) => page.after = Some(next),
            None => return Ok(ids),
        }
    }
}

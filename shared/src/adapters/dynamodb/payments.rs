//! Payments and their unique transaction ids (`PAY#`, `TX#`).

use async_trait::async_trait;

use super::codec::*;
use super::{Cancelled, DynamoStore, Query, keys};
use crate::adapters::stored::{payment_counters, refund_counters, review_counters};
use crate::domain::{Payment, PaymentId, PaymentStatus, UserId, transaction_key};
use crate::ports::*;

#[async_trait]
impl PaymentStore for DynamoStore {
    async fn insert_payment(&self, p: &Payment) -> Result<(), StoreError> {
        let mut items = vec![
            self.put(payment_item(p), Some("attribute_not_exists(pk)"), vec![])?,
            self.put(tx_item(&p.transaction_key(), &p.id), Some("attribute_not_exists(pk)"), vec![])?,
        ];
        // A payment in Stars counts its revenue in the same transaction.
        for (name, delta, ttl) in payment_counters(p) {
            items.push(self.bump(&name, delta, ttl)?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(Cancelled::Condition(_)) => Err(StoreError::Conflict("transaction_id_taken")),
            Err(Cancelled::Fault(e)) => Err(e),
        }
    }

    async fn payment(&self, id: &PaymentId) -> Result<Option<Payment>, StoreError> {
        self.payment_record(id.as_str()).await
    }

    async fn payment_with_transaction(&self, transaction_id: &str) -> Result<Option<Payment>, StoreError> {
        let Some(tx) = self.get(&keys::transaction(transaction_key(transaction_id)), "TX").await? else {
            return Ok(None);
        };
        self.payment_record(&get_s(&tx, "payment_id")?).await
    }

    async fn payments_of(&self, user: &UserId) -> Result<Vec<Payment>, StoreError> {
        let items =
            self.query(Query::on(Some("gsi1"), "gsi1pk = :p", vec![(":p", s(keys::payments_of_user(user)))])).await?;
        items.iter().map(payment_from).collect()
    }

    async fn list_payments(&self, status: Option<PaymentStatus>, p: &PageRequest) -> Result<Page<Payment>, StoreError> {
        let (index, pk_name, pk) = match status {
            Some(st) => ("gsi2", "gsi2pk", keys::payments_by_status(st.as_str())),
            None => ("gsi3", "gsi3pk", keys::ALL_PAYMENTS.to_owned()),
        };
        let sk_name = if index == "gsi2" { "gsi2sk" } else { "gsi3sk" };
        let mut values = vec![(":p", s(pk))];
        let condition = match &p.after {
            Some(after) => {
                values.push((":c", s(after.as_str())));
                format!("{pk_name} = :p AND {sk_name} < :c")
            }
            None => format!("{pk_name} = :p"),
        };
        let items = self.query(Query::on(Some(index), &condition, values).limit(p.limit + 1)).await?;
        let payments = items.iter().map(payment_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::of(payments, p.limit, |x| x.id.to_string()))
    }

    async fn review_payment(&self, id: &PaymentId, r: &Review) -> Result<Option<Payment>, StoreError> {
        let Some(current) = self.payment_record(id.as_str()).await? else { return Ok(None) };
        if current.status != PaymentStatus::TransactionSubmitted {
            return Ok(None);
        }
        let mut reviewed = current.clone();
        reviewed.status = r.to;
        reviewed.reviewed_by = Some(r.by.clone());
        reviewed.admin_notes = r.admin_notes.clone().or(current.admin_notes.clone());
        reviewed.reject_reason = r.reason.clone();
        reviewed.updated_at = r.at;
        reviewed.revenue_cents = r.counted_cents();
        let submitted = || vec![(":submitted", s(PaymentStatus::TransactionSubmitted.as_str()))];
        if let Some(tx) = &r.transaction_id {
            reviewed.transaction_id = tx.clone();
        }
        // The `TX#` item moves only when the key does (a corrected case or space keeps it).
        let new_key = Some(reviewed.transaction_key()).filter(|k| *k != current.transaction_key());
        let mut items = vec![self.put(payment_item(&reviewed), Some("#status = :submitted"), submitted())?];
        if let Some(key) = new_key {
            items.push(self.put(tx_item(&key, id), Some("attribute_not_exists(pk)"), vec![])?);
            items.push(self.delete((&keys::transaction(current.transaction_key()), "TX"))?);
        }
        // A validation's web revenue counts in the same transaction.
        for (name, delta, ttl) in review_counters(r) {
            items.push(self.bump(&name, delta, ttl)?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(Some(reviewed)),
            Err(Cancelled::Condition(reasons)) if reasons.first() == Some(&true) => Ok(None),
            Err(Cancelled::Condition(_)) => Err(StoreError::Conflict("transaction_id_taken")),
            Err(Cancelled::Fault(e)) => Err(e),
        }
    }

    async fn move_refund(
        &self,
        id: &PaymentId,
        to: PaymentStatus,
        note: Option<&str>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Payment>, StoreError> {
        // Read, then written only if its status is still the one read: a concurrent move is
        // read again and decided again.
        for _ in 0..super::CONFLICT_RETRIES {
            let Some(item) = self.get(&keys::payment(id.as_str()), "PAY").await? else { return Ok(None) };
            let current = payment_from(&item)?;
            if !current.status.may_become(to) {
                return Ok(None);
            }
            let mut moved = current.clone();
            (moved.status, moved.updated_at) = (to, at);
            moved.refund_note = note.map(str::to_owned).or(current.refund_note.clone());
            let read = vec![(":read", s(current.status.as_str()))];
            // The item holds the payment's current token too: written back as it was, so the
            // refund still finds what that token opened (`live_tokens`).
            let mut moved_item = payment_item(&moved);
            set(&mut moved_item, "current_token", opt_s(&item, "current_token")?.map(s));
            let mut items = vec![self.put(moved_item, Some("#status = :read"), read)?];
            if to == PaymentStatus::Refunded {
                for (name, delta, ttl) in refund_counters(&current, at) {
                    items.push(self.bump(&name, delta, ttl)?);
                }
            }
            match self.transact(items).await {
                Ok(()) => return Ok(Some(moved)),
                Err(Cancelled::Condition(_)) => continue,
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        Err(StoreError::Unavailable("a payment's refund kept changing under its move".into()))
    }
}

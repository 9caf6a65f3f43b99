//! The invoice links telegate created (`INVOICE#`, found by payload; `SALE#`, found by what it
//! sells), written together, once per sale.

use std::collections::HashMap;

use async_trait::async_trait;

use super::codec::*;
use super::{Cancelled, DynamoStore, Item, keys};
use crate::adapters::stored::ts;
use crate::domain::{Invoice, Lang};
use crate::ports::{InvoiceStore, StoreError};

#[async_trait]
impl InvoiceStore for DynamoStore {
    async fn record_invoice(&self, i: &Invoice) -> Result<Invoice, StoreError> {
        let items = vec![
            self.put(invoice_item(i, (keys::sale(i.sale()), "SALE")), Some("attribute_not_exists(pk)"), vec![])?,
            self.put(
                invoice_item(i, (keys::invoice(&i.payload), "INVOICE")),
                Some("attribute_not_exists(pk)"),
                vec![],
            )?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(i.clone()),
            // Another invoice holds the sale: that one is shown.
            Err(Cancelled::Condition(_)) => self
                .invoice_for_sale(&i.sale())
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("invoice {} collides with another", i.payload))),
            Err(Cancelled::Fault(e)) => Err(e),
        }
    }

    async fn invoice_for_sale(&self, sale: &str) -> Result<Option<Invoice>, StoreError> {
        self.get(&keys::sale(sale), "SALE").await?.map(|i| invoice_from(&i)).transpose()
    }

    async fn invoice(&self, payload: &str) -> Result<Option<Invoice>, StoreError> {
        self.get(&keys::invoice(payload), "INVOICE").await?.map(|i| invoice_from(&i)).transpose()
    }
}

fn invoice_item(i: &Invoice, (pk, sk): (String, &str)) -> Item {
    HashMap::from([
        ("pk".into(), s(pk)),
        ("sk".into(), s(sk)),
        ("payload".into(), s(&i.payload)),
        ("offer_id".into(), s(&i.offer_id)),
        ("stars".into(), n(i.stars)),
        ("days".into(), n(i.days)),
        ("renewing".into(), b(i.renewing)),
        ("lang".into(), s(i.lang.as_str())),
        ("link".into(), s(&i.link)),
        ("created_at".into(), s(ts(i.created_at))),
    ])
}

fn invoice_from(i: &Item) -> Result<Invoice, StoreError> {
    Ok(Invoice {
        payload: get_s(i, "payload")?,
        offer_id: get_s(i, "offer_id")?,
        stars: get_n(i, "stars")?,
        days: get_n(i, "days")?,
        renewing: get_bool(i, "renewing"),
        // Absent on an earlier release's invoices, which did not keep it: French, the default.
        lang: Lang::from_code(opt_s(i, "lang")?.as_deref()),
        link: get_s(i, "link")?,
        created_at: time(i, "created_at")?,
    })
}

//! The invoice links telegate created (see `InvoiceStore`).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::rows::time;
use super::{SqliteStore, fault};
use crate::adapters::stored::ts;
use crate::domain::{Invoice, Lang};
use crate::ports::{InvoiceStore, StoreError};

#[async_trait]
impl InvoiceStore for SqliteStore {
    async fn record_invoice(&self, i: &Invoice) -> Result<Invoice, StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO invoices (payload, sale, offer_id, stars, days, renewing, lang, link, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(sale) DO NOTHING",
                params![
                    i.payload,
                    i.sale(),
                    i.offer_id,
                    i.stars,
                    i.days,
                    i.renewing,
                    i.lang.as_str(),
                    i.link,
                    ts(i.created_at)
                ],
            )
            .map_err(fault)?;
            conn.query_row("SELECT * FROM invoices WHERE sale = ?1", [i.sale()], invoice_from).map_err(fault)
        })
    }

    async fn invoice_for_sale(&self, sale: &str) -> Result<Option<Invoice>, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT * FROM invoices WHERE sale = ?1", [sale], invoice_from).optional().map_err(fault)
        })
    }

    async fn invoice(&self, payload: &str) -> Result<Option<Invoice>, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT * FROM invoices WHERE payload = ?1", [payload], invoice_from)
                .optional()
                .map_err(fault)
        })
    }
}

fn invoice_from(row: &Row) -> rusqlite::Result<Invoice> {
    Ok(Invoice {
        payload: row.get("payload")?,
        offer_id: row.get("offer_id")?,
        stars: row.get("stars")?,
        days: row.get("days")?,
        renewing: row.get("renewing")?,
        lang: Lang::from_code(Some(&row.get::<_, String>("lang")?)),
        link: row.get("link")?,
        created_at: time(row, "created_at")?,
    })
}

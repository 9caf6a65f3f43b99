//! In-app notifications (`USER#` / `NOTIF#`) and their clean-up.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use chrono::{DateTime, Utc};

use super::codec::*;
use super::{DynamoStore, Query, fault, held, keys};
use crate::adapters::stored::ts;
use crate::domain::{Notification, NotificationId, UserId};
use crate::ports::*;

#[async_trait]
impl NotificationStore for DynamoStore {
    async fn add_notification(&self, x: &Notification) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(notification_item(x)))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }

    async fn notifications(
        &self,
        user: &UserId,
        p: &PageRequest,
        now: DateTime<Utc>,
    ) -> Result<Page<Notification>, StoreError> {
        // Items past their TTL may still be there: they are skipped, and reading goes on until the
        // page is full (plus one, to know whether a next page exists) or the user has no more.
        let mut list = Vec::new();
        let mut after = p.after.clone();
        loop {
            let mut values = vec![(":p", s(keys::user(user))), (":lo", s(keys::NOTIFICATION_PREFIX))];
            let condition = match &after {
                Some(after) => {
                    values.push((":c", s(keys::notification(after))));
                    "pk = :p AND sk BETWEEN :lo AND :c"
                }
                None => "pk = :p AND begins_with(sk, :lo)",
            };
            let want = p.limit + 1 - list.len() as u32;
            // BETWEEN includes the cursor itself: one more item is read to make up for it.
            let items = self.query(Query::on(None, condition, values).limit(want + 1)).await?;
            let read = items.len();
            let mut last = None;
            for item in &items {
                let x = notification_from(item)?;
                last = Some(x.id.to_string());
                if after.as_deref() != Some(x.id.as_str()) && x.kept_until() > now {
                    list.push(x);
                }
            }
            if list.len() > p.limit as usize || read < (want + 1) as usize {
                break;
            }
            after = last;
        }
        Ok(Page::of(list, p.limit, |x| x.id.to_string()))
    }

    async fn mark_read(&self, user: &UserId, id: &NotificationId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let (pk, sk) = (keys::user(user), keys::notification(id));
        let Some(item) = self.get(&pk, &sk).await? else { return Ok(false) };
        let mut x = notification_from(&item)?;
        if x.kept_until() <= now {
            return Ok(false);
        }
        x.read = true;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(notification_item(&x)))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        held(result)
    }

    async fn delete_old_notifications(
        &self,
        read_before: DateTime<Utc>,
        unread_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        // TTL deletes them within a day or two anyway (and reads already hide them): this only
        // hurries it, a bounded page at a time, 25 deletes per request.
        let mut deleted = 0;
        for (group, before) in
            [(keys::notifications_by_age("read"), read_before), (keys::notifications_by_age("unread"), unread_before)]
        {
            let left = limit - deleted as u32;
            if left == 0 {
                break;
            }
            let items = self
                .query(
                    Query::on(
                        Some("gsi2"),
                        "gsi2pk = :p AND gsi2sk < :b",
                        vec![(":p", s(group)), (":b", s(ts(before)))],
                    )
                    .oldest_first()
                    .limit(left),
                )
                .await?;
            let keys: Vec<(String, String)> = items
                .iter()
                .take(left as usize)
                .map(|i| Ok((get_s(i, "pk")?, get_s(i, "sk")?)))
                .collect::<Result<_, StoreError>>()?;
            for chunk in keys.chunks(25) {
                self.delete_batch(chunk).await?;
                deleted += chunk.len() as u64;
            }
        }
        Ok(deleted)
    }
}

impl DynamoStore {
    /// Deletes up to 25 items in one `BatchWriteItem`.
    async fn delete_batch(&self, keys: &[(String, String)]) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(keys.len());
        for (pk, sk) in keys {
            let delete = DeleteRequest::builder().key("pk", s(pk)).key("sk", s(sk)).build().map_err(fault)?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        self.write_batch(requests).await
    }
}

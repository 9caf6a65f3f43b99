//! In-app notifications (`USER#` / `NOTIF#`) and their clean-up.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::codec::*;
use super::{DynamoStore, Query, fault, is_condition, keys};
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

    async fn notifications(&self, user: &UserId, p: &PageRequest) -> Result<Page<Notification>, StoreError> {
        let mut values = vec![(":p", s(keys::user(user)))];
        let condition = match &p.after {
            Some(after) => {
                values.push((":lo", s(keys::NOTIFICATION_PREFIX)));
                values.push((":c", s(keys::notification(after))));
                "pk = :p AND sk BETWEEN :lo AND :c"
            }
            None => {
                values.push((":lo", s(keys::NOTIFICATION_PREFIX)));
                "pk = :p AND begins_with(sk, :lo)"
            }
        };
        let items = self.query(Query::on(None, condition, values).limit(p.limit + 2)).await?;
        let now = Utc::now();
        let list = items
            .iter()
            .filter(|i| alive(i, now))
            .map(notification_from)
            .filter(|x| x.as_ref().map_or(true, |x| p.after.as_deref() != Some(x.id.as_str())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::of(list, p.limit, |x| x.id.to_string()))
    }

    async fn mark_read(&self, user: &UserId, id: &NotificationId) -> Result<bool, StoreError> {
        let (pk, sk) = (keys::user(user), keys::notification(id));
        let Some(item) = self.get(&pk, &sk).await? else { return Ok(false) };
        let mut x = notification_from(&item)?;
        if !alive(&item, Utc::now()) {
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
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition(&e) => Ok(false),
            Err(e) => Err(fault(e)),
        }
    }

    async fn delete_old_notifications(
        &self,
        read_before: DateTime<Utc>,
        unread_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for (group, before) in
            [(keys::notifications_by_age("read"), read_before), (keys::notifications_by_age("unread"), unread_before)]
        {
            let items = self
                .query(
                    Query::on(
                        Some("gsi2"),
                        "gsi2pk = :p AND gsi2sk < :b",
                        vec![(":p", s(group)), (":b", s(ts(before)))],
                    )
                    .oldest_first(),
                )
                .await?;
            for item in &items {
                let (pk, sk) = (get_s(item, "pk")?, get_s(item, "sk")?);
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", s(pk))
                    .key("sk", s(sk))
                    .send()
                    .await
                    .map_err(fault)?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

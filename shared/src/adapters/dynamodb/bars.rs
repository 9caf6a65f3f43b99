//! Accounts barred by a channel administrator's removal (`BAR#`), and support's way back.

use std::collections::HashMap;

use async_trait::async_trait;

use super::codec::*;
use super::{Cancelled, DynamoStore, keys};
use crate::adapters::stored::ts;
use crate::domain::{AccountBar, MembershipStatus, PaymentId, TelegramUserId, TokenStatus};
use crate::ports::*;

#[async_trait]
impl AccountBars for DynamoStore {
    async fn bar_account(&self, bar: &AccountBar) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(keys::bar(bar.telegram_user_id))),
            ("sk".to_owned(), s("BAR")),
            ("reason".to_owned(), s(&bar.reason)),
            ("by".to_owned(), s(&bar.by)),
            ("at".to_owned(), s(ts(bar.at))),
        ]);
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map(drop).map_err(super::fault)
    }

    async fn account_bar(&self, account: TelegramUserId) -> Result<Option<AccountBar>, StoreError> {
        let Some(item) = self.get(&keys::bar(account), "BAR").await? else { return Ok(None) };
        Ok(Some(AccountBar {
            telegram_user_id: account,
            reason: get_s(&item, "reason")?,
            by: get_s(&item, "by")?,
            at: time(&item, "at")?,
        }))
    }

    async fn lift_bar(&self, account: TelegramUserId) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::bar(account)))
            .key("sk", s("BAR"))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(super::fault)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn reopen_payment(&self, payment: &PaymentId) -> Result<u64, StoreError> {
        // Only the payment's current token can be bound or used: issuing replaces the others.
        let Some(token) = self.current_token_of(payment).await? else { return Ok(0) };
        if !matches!(token.status, TokenStatus::Bound | TokenStatus::Used) {
            return Ok(0);
        }
        if let Some(m) = &token.membership_id
            && let Some(m) = self.membership_record(m.as_str()).await?
            && matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active)
        {
            return Err(StoreError::Conflict("access_still_open"));
        }
        let mut items = vec![self.update(
            (&keys::token(token.hash.as_str()), "TOKEN"),
            "SET #status = :revoked REMOVE gsi2pk, gsi2sk",
            Some("#status = :was"),
            vec![(":revoked", s("revoked")), (":was", s(token.status.as_str()))],
        )?];
        if token.status == TokenStatus::Bound {
            items.push(self.bump("tokens.pending", -1, None)?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(1),
            Err(Cancelled::Condition(_)) => Err(StoreError::Unavailable("the token changed; try again".into())),
            Err(Cancelled::Fault(e)) => Err(e),
        }
    }
}

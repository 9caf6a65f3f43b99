//! What happens in the channel: join requests, joins and departures.

use super::{App, AppError};
use crate::domain::{
    ChatJoinRequest, ChatMemberUpdated, Lang, MembershipStatus, Notification, NotificationId,
    NotificationKind, TelegramUserId, texts,
};
use crate::ports::{Effect, Email};

impl App {
    /// Approves only an account that redeemed a token (pending or active membership); declines
    /// anyone else and, when the link was one of ours, names the member it was issued to.
    pub(crate) async fn on_join_request(&self, request: &ChatJoinRequest) -> Result<(), AppError> {
        let Ok(account) = TelegramUserId::parse(request.from.id) else {
            return Ok(());
        };
        let now = self.clock.now();
        let link = request.invite_link.as_ref().map(|l| l.invite_link.as_str());
        let link_owner = match link {
            Some(link) => self.store.membership_by_invite(link).await?,
            None => None,
        };
        let current = self.store.current_membership(account).await?;
        let entitled = current
            .as_ref()
            .is_some_and(|m| m.status == MembershipStatus::Pending || m.is_active(now));
        let key = format!("join-request:{account}:{}", request.date);
        if entitled {
            tracing::info!(telegram_user = %account, "join request approved");
            return self
                .enqueue(vec![(
                    key,
                    Effect::ApproveJoinRequest {
                        telegram_user_id: account,
                    },
                )])
                .await;
        }
        match &link_owner {
            Some(owner) => tracing::warn!(
                telegram_user = %account,
                link_of_membership = %owner.id,
                link_of_telegram_user = %owner.telegram_user_id,
                "join request with another member's invite link declined"
            ),
            None => {
                tracing::info!(telegram_user = %account, "join request without a membership declined")
            }
        }
        self.enqueue(vec![(
            key,
            Effect::DeclineJoinRequest {
                telegram_user_id: account,
            },
        )])
        .await
    }

    pub(crate) async fn on_chat_member(&self, update: &ChatMemberUpdated) -> Result<(), AppError> {
        let user = &update.new_chat_member.user;
        let Ok(account) = TelegramUserId::parse(user.id) else {
            return Ok(());
        };
        let (before, after) = (
            update.old_chat_member.status(),
            update.new_chat_member.status(),
        );
        // Administrators and the owner are never touched, nor bots the admins add.
        if before.is_staff() || after.is_staff() || user.is_bot {
            return Ok(());
        }
        match (before.is_in_chat(), after.is_in_chat()) {
            (false, true) => self.on_join(update, account).await,
            (true, false) => self.on_leave(account).await,
            _ => Ok(()),
        }
    }

    async fn on_join(
        &self,
        update: &ChatMemberUpdated,
        account: TelegramUserId,
    ) -> Result<(), AppError> {
        let now = self.clock.now();
        let user = &update.new_chat_member.user;
        let current = self.store.current_membership(account).await?;
        match current {
            Some(m) if m.status == MembershipStatus::Pending => {
                let Some(active) = self
                    .store
                    .activate_membership(&m.id, now, user.username.as_deref())
                    .await?
                else {
                    // Activated by a concurrent delivery of the same join.
                    return Ok(());
                };
                let end = active.expires_at.unwrap_or(now);
                tracing::info!(membership = %active.id, telegram_user = %account, end = %end, "member joined");
                let lang = Lang::from_code(user.language_code.as_deref());
                let text = texts::joined(lang, &self.settings.channel_name, end);
                self.store
                    .add_notification(&Notification {
                        id: NotificationId::generate(now)?,
                        user_id: active.user_id.clone(),
                        kind: NotificationKind::AccessGranted,
                        title: text.title.clone(),
                        message: text.body.clone(),
                        action_url: None,
                        created_at: now,
                        read: false,
                    })
                    .await?;
                let mut effects = vec![(
                    format!("joined-msg:{}", active.id),
                    Effect::SendMessage {
                        chat_id: account.get(),
                        text: text.body.clone(),
                    },
                )];
                if let Some(link) = &active.invite_link {
                    effects.push((
                        format!("revoke:{link}"),
                        Effect::RevokeInvite { link: link.clone() },
                    ));
                }
                if let Some(to) = self
                    .store
                    .payment(&active.payment_id)
                    .await?
                    .and_then(|p| p.email)
                {
                    let email = Email {
                        to,
                        subject: text.title.clone(),
                        html: texts::to_html(&text.title, &text.body),
                        text: text.body,
                    };
                    effects.push((
                        format!("joined-mail:{}", active.id),
                        Effect::SendEmail { email },
                    ));
                }
                self.enqueue(effects).await
            }
            Some(m) if m.is_active(now) => {
                tracing::info!(membership = %m.id, telegram_user = %account, "member back in the channel");
                self.store.set_in_channel(&m.id, true, now).await?;
                Ok(())
            }
            _ => {
                // Not paid for: out, but not banned, so that paying later lets them in.
                tracing::warn!(telegram_user = %account, "join without an active membership: removing");
                self.enqueue(vec![(
                    format!("remove-stranger:{account}:{}", update.date),
                    Effect::RemoveMember {
                        telegram_user_id: account,
                        keep_banned: false,
                    },
                )])
                .await
            }
        }
    }

    async fn on_leave(&self, account: TelegramUserId) -> Result<(), AppError> {
        if let Some(m) = self.store.current_membership(account).await?
            && m.status == MembershipStatus::Active
        {
            tracing::info!(membership = %m.id, telegram_user = %account, "member left the channel");
            self.store
                .set_in_channel(&m.id, false, self.clock.now())
                .await?;
        }
        Ok(())
    }
}

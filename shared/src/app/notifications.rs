use std::sync::Arc;

use super::AppError;
use crate::auth::Caller;
use crate::domain::{Notification, NotificationId};
use crate::ports::{Clock, NotificationStore, Page, PageRequest};

/// A web user's in-app notifications.
#[derive(Clone)]
pub struct Inbox {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) notifications: Arc<dyn NotificationStore>,
}

impl Inbox {
    pub async fn notifications(&self, caller: &Caller, page: &PageRequest) -> Result<Page<Notification>, AppError> {
        Ok(self.notifications.notifications(&caller.user_id, page, self.clock.now()).await?)
    }

    pub async fn mark_notification_read(&self, caller: &Caller, id: &NotificationId) -> Result<(), AppError> {
        if self.notifications.mark_read(&caller.user_id, id, self.clock.now()).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("no such notification"))
        }
    }
}

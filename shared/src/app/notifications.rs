use super::{App, AppError};
use crate::auth::Caller;
use crate::domain::{Notification, NotificationId};
use crate::ports::{Page, PageRequest};

impl App {
    pub async fn notifications(&self, caller: &Caller, page: &PageRequest) -> Result<Page<Notification>, AppError> {
        Ok(self.store.notifications(&caller.user_id, page, self.clock.now()).await?)
    }

    pub async fn mark_notification_read(&self, caller: &Caller, id: &NotificationId) -> Result<(), AppError> {
        if self.store.mark_read(&caller.user_id, id, self.clock.now()).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("no such notification"))
        }
    }
}

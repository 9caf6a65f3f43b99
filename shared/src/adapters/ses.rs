//! Email through SES (v2): text and HTML bodies, from the configured sender. SES's refusals that
//! no retry changes (a rejected message, an unverified sender or recipient in the sandbox, a
//! suppressed address) are permanent; throttling and faults are tried again.

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use crate::ports::{Email, MailError, Mailer};

pub struct SesMailer {
    client: Client,
    from: String,
    configuration_set: Option<String>,
}

impl SesMailer {
    pub fn new(client: Client, from: impl Into<String>) -> Self {
        Self { client, from: from.into(), configuration_set: None }
    }

    /// Sends with this SES configuration set (the template's: bounces and complaints suppress the
    /// address).
    pub fn with_configuration_set(mut self, name: Option<String>) -> Self {
        self.configuration_set = name;
        self
    }
}

fn content(text: &str) -> Result<Content, MailError> {
    Content::builder().data(text).charset("UTF-8").build().map_err(|e| MailError::Refused(crate::ports::Cause::new(e)))
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let message = Message::builder()
            .subject(content(&email.subject)?)
            .body(Body::builder().text(content(&email.text)?).html(content(&email.html)?).build())
            .build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                let why = format!("SES: {}", aws_sdk_sesv2::error::DisplayErrorContext(&e));
                match e.as_service_error() {
                    Some(
                        SendEmailError::MessageRejected(_)
                        | SendEmailError::MailFromDomainNotVerifiedException(_)
                        | SendEmailError::AccountSuspendedException(_)
                        | SendEmailError::SendingPausedException(_)
                        | SendEmailError::BadRequestException(_)
                        | SendEmailError::NotFoundException(_),
                    ) => MailError::Refused(why.into()),
                    _ => MailError::Unavailable(why.into()),
                }
            })
    }
}

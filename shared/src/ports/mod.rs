//! The ports: what the use cases need from the outside world, named by role. Adapters implement
//! them (SQLite and DynamoDB stores, Telegram via teloxide-core, SES or the local outbox, SQS or the
//! local queue); the use cases see only these traits.

mod clock;
mod events;
mod mailer;
mod pace;
mod page;
mod queue;
mod stats;
mod store;
mod telegram;

/// What made a port fail: the error itself, its chain kept (`source()`), or a message where there
/// is no error to keep. Shown as one line, the chain joined by `: `, as a log wants it.
#[derive(Clone, Debug)]
pub struct Cause(std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(e))
    }

    /// `e`, said to have happened while doing `context` ("SQS send", "DynamoDB").
    pub fn with(context: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::new(Context { context, source: Box::new(e) })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{context}")]
struct Context {
    context: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

impl From<String> for Cause {
    fn from(m: String) -> Self {
        Self::new(Message(m))
    }
}

impl From<&str> for Cause {
    fn from(m: &str) -> Self {
        Self::new(Message(m.to_owned()))
    }
}

pub use clock::*;
pub use events::*;
pub use mailer::*;
pub use pace::*;
pub use page::*;
pub use queue::*;
pub use stats::*;
pub use store::*;
pub use telegram::*;

#[cfg(test)]
mod tests {
    use super::{Cause, StoreError};
    use std::error::Error;

    #[test]
    fn a_cause_keeps_its_chain_and_shows_it_on_one_line() {
        let e = StoreError::Unavailable(Cause::with("SQLite write", std::io::Error::other("disk full")));
        assert_eq!(e.to_string(), "store unavailable: SQLite write: disk full");
        let cause = e.source().expect("the cause");
        assert_eq!(cause.to_string(), "SQLite write: disk full");
        assert_eq!(cause.source().expect("the original error").to_string(), "disk full");
        assert_eq!(StoreError::Unavailable("gone".into()).to_string(), "store unavailable: gone");
    }
}

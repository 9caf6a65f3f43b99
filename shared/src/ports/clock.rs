//! Time: the only source of "now" for the use cases (the local test clock replaces it).

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

use crate::ports::Clock;

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock plus an offset that only moves forward (`TELEGATE_TEST_CLOCK=1`).
#[derive(Default)]
pub struct TestClock {
    offset_seconds: AtomicI64,
}

impl TestClock {
    pub fn advance(&self, seconds: i64) {
        self.offset_seconds.fetch_add(seconds.max(0), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::seconds(self.offset_seconds.load(Ordering::SeqCst))
    }
}

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

/// How far the test clock may be moved in all: more than any test needs, far from the limits of
/// the time types (a huge offset would make every later reading of the clock overflow).
pub const MAX_OFFSET_SECONDS: i64 = 100 * 366 * 86_400;

impl TestClock {
    /// Moves the clock forward; refused (nothing moves) past `MAX_OFFSET_SECONDS` in all.
    pub fn advance(&self, seconds: i64) -> Result<(), &'static str> {
        self.offset_seconds
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |offset| {
                offset.checked_add(seconds.max(0)).filter(|total| *total <= MAX_OFFSET_SECONDS)
            })
            .map(drop)
            .map_err(|_| "the test clock moves at most 100 years in all")
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::seconds(self.offset_seconds.load(Ordering::SeqCst))
    }
}

//! The one clock. Every "now" netvantage records (a check's timestamp, a window's end, a ban's
//! expiry) comes from a [`Clock`], so tests can run a minute of history in a microsecond with a
//! [`ManualClock`] and the pure rules never read time themselves.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time as UTC milliseconds since the Unix epoch (the unit of every record).
pub trait Clock: Send + Sync {
    fn now_unix_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> i64 {
        unix_ms_now()
    }
}

/// The system clock's time, for code that has no [`Clock`] handed to it (the edges: a CLI
/// computing `--since`, a probe stamping its result).
pub fn unix_ms_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(elapsed) => i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
        // A clock set before 1970: report it as negative rather than pretending it is 1970.
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// A clock a test sets and advances by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(unix_ms: i64) -> ManualClock {
        ManualClock(AtomicI64::new(unix_ms))
    }

    pub fn set(&self, unix_ms: i64) {
        self.0.store(unix_ms, Ordering::SeqCst);
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_unix_ms(), 1_000);
        clock.advance_ms(500);
        assert_eq!(clock.now_unix_ms(), 1_500);
        clock.set(7);
        assert_eq!(clock.now_unix_ms(), 7);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_unix_ms() > 1_577_836_800_000);
    }
}

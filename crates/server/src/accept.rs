//! What the accept loop does when `accept(2)` fails: how long to wait and whether to log.
//!
//! At the open-file limit `accept` fails with `EMFILE` while the pending connection stays in the
//! kernel's queue, so the listener is readable again at once: retrying immediately spins a core
//! and writes a log line per attempt (hundreds of thousands a second, issue 15 item 7). Instead
//! each failure in a row doubles the wait (1 ms → 1 s by default) and only some failures are
//! logged: the 1st, 2nd, 4th, 8th … of an episode, and at least one a minute while it lasts,
//! each line with the count. A success resets the wait; the episode (and its log count) ends
//! only after a second without failures — near the limit, successes and failures alternate as
//! connections come and go, and a line per alternation would be a flood again.
//!
//! This module is pure — time is passed in — so the rules are tested without sockets.

use std::io;
use std::time::{Duration, Instant};

/// How the accept loop treats one `accept` error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptErrorKind {
    /// Out of file descriptors or kernel memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`):
    /// expected under load; it heals when connections close, so wait and retry.
    Exhausted,
    /// The pending connection failed before we took it (`ECONNABORTED`, `EPROTO`, network
    /// errors Linux reports through `accept`): that connection is gone from the queue, so
    /// retrying at once cannot spin.
    ConnectionGone,
    /// Anything else: not expected; wait like [`AcceptErrorKind::Exhausted`] so a persistent
    /// error cannot spin either.
    Unexpected,
}

impl AcceptErrorKind {
    pub fn of(err: &io::Error) -> AcceptErrorKind {
        match err.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                AcceptErrorKind::Exhausted
            }
            // accept(2): "Linux accept() passes already-pending network errors on the new
            // socket as an error code from accept() … the application should treat them like
            // EAGAIN by retrying".
            Some(
                libc::ECONNABORTED
                | libc::ECONNRESET
                | libc::EPROTO
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::ENETDOWN
                | libc::EPERM
                | libc::EINTR
                | libc::EAGAIN,
            ) => AcceptErrorKind::ConnectionGone,
            _ => AcceptErrorKind::Unexpected,
        }
    }
}

/// What to do after one failed `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptDecision {
    /// Sleep this long before the next `accept` (zero: retry at once).
    pub wait: Duration,
    /// `Some(n)`: write a log line saying this is the `n`th failure of the episode.
    pub log_failures: Option<u64>,
}

/// The back-off and log rate limit of one listener.
#[derive(Debug, Clone)]
pub struct AcceptBackoff {
    min: Duration,
    max: Duration,
    next: Duration,
    /// Failures in the current episode.
    failures: u64,
    /// The first success after the episode's latest failure.
    healthy_since: Option<Instant>,
    last_logged: Option<Instant>,
}

/// While an episode lasts, at least one line this often, so a long outage stays visible.
const LOG_AT_LEAST_EVERY: Duration = Duration::from_secs(60);

/// An episode ends with a success this long after the first success that followed its last
/// failure (measured from a success, not from the failure: after a failure the loop sleeps, and
/// a sleep is no evidence of health).
pub const EPISODE_QUIET: Duration = Duration::from_secs(1);

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff::new(Duration::from_millis(1), Duration::from_secs(1))
    }
}

impl AcceptBackoff {
    /// Waits start at `min` and double up to `max`.
    pub fn new(min: Duration, max: Duration) -> AcceptBackoff {
        let min = min.max(Duration::from_micros(1));
        AcceptBackoff {
            min,
            max: max.max(min),
            next: min,
            failures: 0,
            healthy_since: None,
            last_logged: None,
        }
    }

    /// Failures in the current episode.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// One `accept` failed at `now`.
    pub fn on_error(&mut self, kind: AcceptErrorKind, now: Instant) -> AcceptDecision {
        self.failures += 1;
        self.healthy_since = None;
        let wait = match kind {
            AcceptErrorKind::ConnectionGone => Duration::ZERO,
            AcceptErrorKind::Exhausted | AcceptErrorKind::Unexpected => {
                let wait = self.next;
                self.next = (self.next * 2).min(self.max);
                wait
            }
        };
        let due = self
            .last_logged
            .is_none_or(|at| now.saturating_duration_since(at) >= LOG_AT_LEAST_EVERY);
        let log = self.failures.is_power_of_two() || due;
        if log {
            self.last_logged = Some(now);
        }
        AcceptDecision {
            wait,
            log_failures: log.then_some(self.failures),
        }
    }

    /// One `accept` succeeded at `now`: the wait resets. Returns `Some(failures)` when this
    /// success ends an episode ([`EPISODE_QUIET`] of successes only), so the caller can say the
    /// listener recovered.
    pub fn on_success(&mut self, now: Instant) -> Option<u64> {
        self.next = self.min;
        if self.failures == 0 {
            return None;
        }
        let since = *self.healthy_since.get_or_insert(now);
        if now.saturating_duration_since(since) < EPISODE_QUIET {
            return None;
        }
        let ended = self.failures;
        self.failures = 0;
        self.healthy_since = None;
        self.last_logged = None;
        Some(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        io::Error::from_raw_os_error(libc::EMFILE)
    }

    #[test]
    fn file_and_memory_exhaustion_are_expected_errors() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            let err = io::Error::from_raw_os_error(errno);
            assert_eq!(
                AcceptErrorKind::of(&err),
                AcceptErrorKind::Exhausted,
                "{err}"
            );
        }
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(
            AcceptErrorKind::of(&aborted),
            AcceptErrorKind::ConnectionGone
        );
        let bad = io::Error::from_raw_os_error(libc::EBADF);
        assert_eq!(AcceptErrorKind::of(&bad), AcceptErrorKind::Unexpected);
    }

    #[test]
    fn waits_double_from_one_millisecond_up_to_one_second() {
        let mut backoff = AcceptBackoff::default();
        let now = Instant::now();
        let kind = AcceptErrorKind::of(&emfile());
        let waits: Vec<u64> = (0..14)
            .map(|_| backoff.on_error(kind, now).wait.as_millis() as u64)
            .collect();
        assert_eq!(
            waits,
            [
                1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000, 1000, 1000
            ]
        );
    }

    #[test]
    fn a_success_resets_the_wait_and_a_quiet_second_ends_the_episode() {
        let mut backoff = AcceptBackoff::default();
        let now = Instant::now();
        for _ in 0..5 {
            backoff.on_error(AcceptErrorKind::Exhausted, now);
        }
        assert_eq!(
            backoff.on_success(now),
            None,
            "too soon to call it recovered"
        );
        let next = backoff.on_error(AcceptErrorKind::Exhausted, now);
        assert_eq!(next.wait, Duration::from_millis(1), "the wait resets");
        assert_eq!(next.log_failures, None, "the 6th failure of the episode");
        // A second after the failure, but the first success since: not yet.
        let later = now + EPISODE_QUIET;
        assert_eq!(backoff.on_success(later), None);
        let later = later + EPISODE_QUIET;
        assert_eq!(backoff.on_success(later), Some(6));
        assert_eq!(backoff.on_success(later), None);
        let fresh = backoff.on_error(AcceptErrorKind::Exhausted, later);
        assert_eq!(
            fresh.log_failures,
            Some(1),
            "a new episode logs its first failure"
        );
    }

    #[test]
    fn alternating_successes_and_failures_near_the_limit_log_a_few_lines() {
        let mut backoff = AcceptBackoff::default();
        let start = Instant::now();
        let mut lines = 0;
        for i in 0..10_000 {
            let now = start + Duration::from_micros(100 * i);
            backoff.on_success(now);
            lines += backoff
                .on_error(AcceptErrorKind::Exhausted, now)
                .log_failures
                .is_some() as u32;
        }
        assert_eq!(lines, 14, "powers of two up to 8192");
    }

    #[test]
    fn logs_powers_of_two_of_a_streak_and_at_least_once_a_minute() {
        let mut backoff = AcceptBackoff::default();
        let start = Instant::now();
        // 1,000 failures within one second: 10 lines (1, 2, 4 … 512), not 1,000.
        let logged: Vec<u64> = (0..1000)
            .filter_map(|i| {
                backoff
                    .on_error(AcceptErrorKind::Exhausted, start + Duration::from_millis(i))
                    .log_failures
            })
            .collect();
        assert_eq!(logged, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]);
        // A minute after the last line, the next failure is logged although 1001 is no power
        // of two.
        let later = start + Duration::from_millis(511) + LOG_AT_LEAST_EVERY;
        assert_eq!(
            backoff
                .on_error(AcceptErrorKind::Exhausted, later)
                .log_failures,
            Some(1001)
        );
        assert_eq!(
            backoff
                .on_error(AcceptErrorKind::Exhausted, later + Duration::from_secs(1))
                .log_failures,
            None
        );
    }

    #[test]
    fn a_connection_that_failed_in_the_queue_is_retried_at_once() {
        let mut backoff = AcceptBackoff::default();
        let decision = backoff.on_error(AcceptErrorKind::ConnectionGone, Instant::now());
        assert_eq!(decision.wait, Duration::ZERO);
        // …and it does not grow the wait for a later exhaustion.
        let next = backoff.on_error(AcceptErrorKind::Exhausted, Instant::now());
        assert_eq!(next.wait, Duration::from_millis(1));
    }
}

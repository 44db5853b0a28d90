//! Every default and every cross-field rule, once. The command line (`ports`, `http`) and the
//! agent's YAML build the same validated values here, so "a timeout shorter than the interval"
//! means the same thing for `ports --timeout` and for an agent TCP group's `timeout:`, and a
//! default changes in one place.

use netvantage_core::verdict::FlapRule;
use std::time::Duration;

/// Defaults, with the text clap shows for each (a test checks the two agree).
pub mod defaults {
    use std::time::Duration;

    pub const TCP_INTERVAL: Duration = Duration::from_secs(10);
    pub const TCP_INTERVAL_TEXT: &str = "10s";
    pub const TCP_TIMEOUT: Duration = Duration::from_secs(2);
    pub const TCP_TIMEOUT_TEXT: &str = "2s";
    /// 12 rounds reach the 5 a down verdict needs, leave room to see a flap, and finish in
    /// about 2 minutes at the default interval.
    pub const TCP_ROUNDS: u64 = 12;
    pub const DOWN_AFTER: u32 = 5;
    pub const DNS_TIMEOUT: Duration = Duration::from_secs(2);
    pub const DNS_TIMEOUT_TEXT: &str = "2s";
    /// `--watch`'s flap window: old trouble ages out after ten minutes.
    pub const WATCH_FLAP_WINDOW: Duration = Duration::from_secs(600);
    /// Nagios Core's sample `nagios.cfg` thresholds.
    pub const FLAP_LOW: f64 = 5.0;
    pub const FLAP_HIGH: f64 = 20.0;

    pub const HTTP_CYCLE: Duration = Duration::from_secs(15);
    pub const HTTP_CYCLE_TEXT: &str = "15s";
    pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
    pub const HTTP_TIMEOUT_TEXT: &str = "10s";
    pub const LATENCY_THRESHOLD: Duration = Duration::from_millis(500);
    pub const LATENCY_THRESHOLD_TEXT: &str = "500ms";
    pub const HTTP_CONCURRENCY: u32 = 256;

    pub const SQLITE_PATH: &str = "netvantage.db";
    pub const KAFKA_TOPIC: &str = "netvantage.results";
    pub const KAFKA_PARTITIONS: i32 = 6;
    pub const KAFKA_REPLICATION: i32 = 1;
    pub const KAFKA_MEMORY_RECORDS: usize = 100_000;
    pub const SPOOL_DIR: &str = "netvantage-spool";
    pub const SPOOL_MAX_BYTES: u64 = 1 << 30;

    /// Checks started per second: below one a minute is a typo, above ten million no host can.
    pub const RATE_MIN: f64 = 1.0 / 60.0;
    pub const RATE_MAX: f64 = 10_000_000.0;
}

/// A rule a set of values breaks. The caller adds where the values came from (a flag, or a
/// YAML field with its `file:line:col`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error(
        "the timeout ({timeout}) must be shorter than the interval ({interval}) so a target's checks never overlap"
    )]
    TimeoutNotBelowInterval { timeout: String, interval: String },
    #[error("the rate must be a number of checks per second from {min} to {max}, not {given}")]
    RateOutOfRange {
        given: String,
        min: String,
        max: String,
    },
    #[error("the flap thresholds are percentages with low <= high (low {low}, high {high})")]
    FlapThresholds { low: f64, high: f64 },
    #[error("the number of rounds must be at least 1")]
    NoRounds,
}

fn text(d: Duration) -> String {
    netvantage_core::duration::format_duration(d)
}

/// When a TCP target is checked: validated once for `ports` and for every agent TCP group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpTiming {
    pub interval: Duration,
    pub timeout: Duration,
    /// `None`: until stopped (`--watch`, the agent).
    pub rounds: Option<u64>,
}

impl TcpTiming {
    /// A single round has no next check to overlap with, so only then may the timeout reach the
    /// interval.
    pub fn new(
        interval: Duration,
        timeout: Duration,
        rounds: Option<u64>,
    ) -> Result<TcpTiming, RuleError> {
        if rounds == Some(0) {
            return Err(RuleError::NoRounds);
        }
        if rounds != Some(1) && timeout >= interval {
            return Err(RuleError::TimeoutNotBelowInterval {
                timeout: text(timeout),
                interval: text(interval),
            });
        }
        Ok(TcpTiming {
            interval,
            timeout,
            rounds,
        })
    }

    /// `--duration` turned into rounds: enough rounds to cover it, at least one.
    pub fn rounds_for(duration: Duration, interval: Duration) -> u64 {
        (duration.as_secs_f64() / interval.as_secs_f64())
            .ceil()
            .max(1.0) as u64
    }
}

/// A `--rate`: finite, and neither absurdly small (a check a century) nor absurdly large.
pub fn check_rate(rate: f64) -> Result<f64, RuleError> {
    if rate.is_finite() && (defaults::RATE_MIN..=defaults::RATE_MAX).contains(&rate) {
        Ok(rate)
    } else {
        Err(RuleError::RateOutOfRange {
            // `{:?}` writes 1e-300, where `{}` writes three hundred digits.
            given: format!("{rate:?}"),
            min: format!("{:.4}", defaults::RATE_MIN),
            max: format!("{}", defaults::RATE_MAX),
        })
    }
}

/// Nagios' low and high flap thresholds.
pub fn check_flap_thresholds(low: f64, high: f64) -> Result<(f64, f64), RuleError> {
    if (0.0..=100.0).contains(&low) && (0.0..=100.0).contains(&high) && low <= high {
        Ok((low, high))
    } else {
        Err(RuleError::FlapThresholds { low, high })
    }
}

/// The flap rule's window when none is given: the whole run, or ten minutes when watching.
pub fn default_flap_window(watch: bool, given: Option<Duration>) -> FlapRule {
    FlapRule::Window(given.or(watch.then_some(defaults::WATCH_FLAP_WINDOW)))
}

/// What an HTTP check's result is judged by, and how long it may take: validated once for
/// `http` and for the agent's `http` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTiming {
    /// Time between cycle starts.
    pub cycle: Duration,
    /// Per-check timeout unless an endpoint sets its own; never past the next cycle's start.
    pub timeout: Duration,
    /// Slower than this is DEGRADED, unless an endpoint sets its own.
    pub latency_threshold: Duration,
}

impl Default for HttpTiming {
    fn default() -> Self {
        HttpTiming {
            cycle: defaults::HTTP_CYCLE,
            timeout: defaults::HTTP_TIMEOUT,
            latency_threshold: defaults::LATENCY_THRESHOLD,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvantage_core::parse_duration;

    #[test]
    fn the_texts_clap_shows_are_the_defaults() {
        for (text, value) in [
            (defaults::TCP_INTERVAL_TEXT, defaults::TCP_INTERVAL),
            (defaults::TCP_TIMEOUT_TEXT, defaults::TCP_TIMEOUT),
            (defaults::DNS_TIMEOUT_TEXT, defaults::DNS_TIMEOUT),
            (defaults::HTTP_CYCLE_TEXT, defaults::HTTP_CYCLE),
            (defaults::HTTP_TIMEOUT_TEXT, defaults::HTTP_TIMEOUT),
            (
                defaults::LATENCY_THRESHOLD_TEXT,
                defaults::LATENCY_THRESHOLD,
            ),
        ] {
            assert_eq!(parse_duration(text).unwrap(), value, "{text}");
        }
    }

    #[test]
    fn a_timeout_must_be_shorter_than_the_interval_except_for_one_round() {
        let s = Duration::from_secs;
        assert!(TcpTiming::new(s(10), s(2), None).is_ok());
        let err = TcpTiming::new(s(10), s(30), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the timeout (30s) must be shorter than the interval (10s) so a target's checks never overlap"
        );
        assert!(TcpTiming::new(s(10), s(10), Some(12)).is_err());
        assert!(TcpTiming::new(s(10), s(30), Some(1)).is_ok());
        assert_eq!(
            TcpTiming::new(s(10), s(1), Some(0)),
            Err(RuleError::NoRounds)
        );
    }

    #[test]
    fn rates_are_finite_and_in_range() {
        assert_eq!(check_rate(1000.0), Ok(1000.0));
        for bad in [1e-300, 0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            assert!(check_rate(bad).is_err(), "{bad}");
        }
        let said = check_rate(1e-300).unwrap_err().to_string();
        assert!(said.ends_with("not 1e-300"), "{said}");
    }

    #[test]
    fn flap_thresholds_are_ordered_percentages() {
        assert!(check_flap_thresholds(5.0, 20.0).is_ok());
        assert!(check_flap_thresholds(30.0, 20.0).is_err());
        assert!(check_flap_thresholds(5.0, 120.0).is_err());
    }

    #[test]
    fn a_duration_becomes_enough_rounds_to_cover_it() {
        let s = Duration::from_secs;
        assert_eq!(TcpTiming::rounds_for(s(300), s(10)), 30);
        assert_eq!(TcpTiming::rounds_for(s(15), s(10)), 2);
        assert_eq!(TcpTiming::rounds_for(s(1), s(10)), 1);
    }
}

//! One response (or one failure) → UP / DEGRADED / DOWN. Pure, so the rules the issue states
//! are pinned by tests: UP when the status is expected, the body rule holds and the latency is
//! under the threshold; DEGRADED when only the latency is over; DOWN otherwise.

use netvantage_config::StatusSet;
use netvantage_core::{Outcome, Reason};
use std::time::Duration;

/// The default latency budget: a response slower than this is DEGRADED.
pub const DEFAULT_LATENCY_THRESHOLD: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct Rules {
    pub expect_status: StatusSet,
    pub latency_threshold: Duration,
    /// A latency equal to the threshold is still UP (the default; `--latency-exclusive`
    /// makes it DEGRADED).
    pub inclusive: bool,
}

/// The decision on one check, with the reason and the text for a person when not UP.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub outcome: Outcome,
    pub reason: Option<Reason>,
    pub error: Option<String>,
}

impl Classified {
    pub fn down(reason: Reason, error: impl Into<String>) -> Self {
        Classified {
            outcome: Outcome::Down,
            reason: Some(reason),
            error: Some(error.into()),
        }
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms.fract() == 0.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{ms:.1}ms")
    }
}

/// Classifies a response that arrived. `body_matched` is `None` when there is no body rule.
pub fn classify_response(
    rules: &Rules,
    status: u16,
    body_matched: Option<bool>,
    latency: Duration,
) -> Classified {
    if !rules.expect_status.contains(status) {
        return Classified::down(
            Reason::Status,
            format!("HTTP {status} (expected {})", rules.expect_status),
        );
    }
    if body_matched == Some(false) {
        return Classified::down(Reason::Body, "body does not match body_regex");
    }
    let slow = if rules.inclusive {
        latency > rules.latency_threshold
    } else {
        latency >= rules.latency_threshold
    };
    if slow {
        let relation = if latency == rules.latency_threshold {
            "reached"
        } else {
            "over"
        };
        return Classified {
            outcome: Outcome::Degraded,
            reason: None,
            error: Some(format!(
                "slow: {} {relation} the {} threshold",
                ms(latency),
                ms(rules.latency_threshold)
            )),
        };
    }
    Classified {
        outcome: Outcome::Up,
        reason: None,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(inclusive: bool) -> Rules {
        Rules {
            expect_status: StatusSet::default(),
            latency_threshold: DEFAULT_LATENCY_THRESHOLD,
            inclusive,
        }
    }
    const FAST: Duration = Duration::from_millis(100);

    #[test]
    fn fast_2xx_is_up() {
        for status in [200, 201, 204, 299] {
            assert_eq!(
                classify_response(&rules(false), status, None, FAST).outcome,
                Outcome::Up
            );
        }
    }

    #[test]
    fn non_2xx_is_down_with_status_reason_however_fast() {
        for status in [100, 199, 301, 404, 500, 503] {
            let c = classify_response(&rules(false), status, None, FAST);
            assert_eq!(
                (c.outcome, c.reason),
                (Outcome::Down, Some(Reason::Status)),
                "{status}"
            );
            assert_eq!(
                c.error.unwrap(),
                format!("HTTP {status} (expected 200-299)")
            );
        }
    }

    #[test]
    fn slow_but_otherwise_fine_is_degraded() {
        let c = classify_response(&rules(false), 200, Some(true), Duration::from_millis(600));
        assert_eq!((c.outcome, c.reason), (Outcome::Degraded, None));
        assert_eq!(c.error.unwrap(), "slow: 600ms over the 500ms threshold");
    }

    #[test]
    fn slow_and_failing_is_down_not_degraded() {
        let slow = Duration::from_millis(900);
        assert_eq!(
            classify_response(&rules(false), 500, None, slow).outcome,
            Outcome::Down
        );
        assert_eq!(
            classify_response(&rules(false), 200, Some(false), slow).reason,
            Some(Reason::Body)
        );
    }

    #[test]
    fn threshold_is_exclusive_unless_inclusive() {
        let at = DEFAULT_LATENCY_THRESHOLD;
        assert_eq!(
            classify_response(&rules(false), 200, None, at).outcome,
            Outcome::Degraded
        );
        assert_eq!(
            classify_response(&rules(true), 200, None, at).outcome,
            Outcome::Up
        );
        let just_under = at - Duration::from_micros(1);
        assert_eq!(
            classify_response(&rules(false), 200, None, just_under).outcome,
            Outcome::Up
        );
        let just_over = at + Duration::from_micros(1);
        assert_eq!(
            classify_response(&rules(true), 200, None, just_over).outcome,
            Outcome::Degraded
        );
    }

    #[test]
    fn body_rule_must_hold() {
        let c = classify_response(&rules(false), 200, Some(false), FAST);
        assert_eq!((c.outcome, c.reason), (Outcome::Down, Some(Reason::Body)));
        assert_eq!(
            classify_response(&rules(false), 200, Some(true), FAST).outcome,
            Outcome::Up
        );
    }

    #[test]
    fn expected_status_overrides_2xx() {
        let rules = Rules {
            expect_status: StatusSet::new(vec![(301, 302)]),
            ..rules(false)
        };
        assert_eq!(
            classify_response(&rules, 301, None, FAST).outcome,
            Outcome::Up
        );
        let c = classify_response(&rules, 200, None, FAST);
        assert_eq!(c.error.unwrap(), "HTTP 200 (expected 301-302)");
    }
}

//! The HTTP probe: the engine's [`Probe`] for HTTP(S) endpoints. `http` and the agent's HTTP
//! endpoints run it under the one scheduler, in bursts at each cycle's start with deadlines
//! that never pass the next cycle (`DeadlineRule::WithinRound`).

use crate::classify::{Classified, Rules};
use crate::client::{Checker, ConnSlot, details};
use crate::config::Endpoint;
use netvantage_config::plan::HttpTiming;
use netvantage_core::clock::unix_ms_now;
use netvantage_core::{CheckResult, HttpObservation, Reason};
use netvantage_engine::Probe;
use netvantage_engine::scheduler::rounds_between;
use std::time::Duration;

/// One endpoint as the scheduler runs it: what to ask, how to judge the answer, its own
/// timeout and interval, and its kept-alive connection.
pub struct HttpTarget {
    pub endpoint: Endpoint,
    pub rules: Rules,
    pub timeout: Duration,
    /// Checked every this many cycles.
    pub every: u64,
    conn: ConnSlot,
}

/// What an endpoint that leaves a field out gets: the run's timing (an endpoint's own
/// `interval` is rounded up to whole cycles) and the latency boundary rule.
#[derive(Debug, Clone, Copy)]
pub struct EndpointDefaults {
    pub timing: HttpTiming,
    /// A latency equal to the threshold is still UP.
    pub latency_inclusive: bool,
}

impl HttpTarget {
    pub fn new(endpoint: Endpoint, defaults: &EndpointDefaults) -> HttpTarget {
        HttpTarget {
            rules: Rules {
                expect_status: endpoint.expect_status.clone(),
                latency_threshold: endpoint
                    .latency_threshold
                    .unwrap_or(defaults.timing.latency_threshold),
                inclusive: defaults.latency_inclusive,
            },
            timeout: endpoint.timeout.unwrap_or(defaults.timing.timeout),
            every: rounds_between(endpoint.interval, defaults.timing.cycle),
            conn: ConnSlot::default(),
            endpoint,
        }
    }
}

pub struct HttpProbe {
    checker: Checker,
}

impl HttpProbe {
    pub fn new(checker: Checker) -> HttpProbe {
        HttpProbe { checker }
    }
}

impl Probe for HttpProbe {
    type Target = HttpTarget;

    async fn check(&self, target: &HttpTarget, deadline: tokio::time::Instant) -> Vec<CheckResult> {
        vec![
            self.checker
                .check(&target.endpoint, &target.rules, &target.conn, deadline)
                .await,
        ]
    }

    fn timeout(&self, target: &HttpTarget) -> Duration {
        target.timeout
    }

    fn rounds_between(&self, target: &HttpTarget) -> u64 {
        target.every
    }

    fn not_started(&self, target: &HttpTarget, why: &str) -> Vec<CheckResult> {
        let failed = Classified::down(Reason::Timeout, why);
        vec![CheckResult::http(
            target.endpoint.url.clone(),
            unix_ms_now(),
            Duration::ZERO,
            HttpObservation {
                outcome: Some(failed.outcome),
                reason: failed.reason,
                error: failed.error,
                ..HttpObservation::default()
            },
            details(&target.endpoint),
        )]
    }
}

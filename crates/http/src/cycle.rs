//! Fixed-rate cycles: cycle n starts at t0 + n·frequency however slow the endpoints are. Every
//! due endpoint of a cycle is checked concurrently (at most `concurrency` at once), each with its own
//! deadline that never passes the next cycle's start, so one hung endpoint cannot delay the
//! report nor push the schedule.
//!
//! The arithmetic (which endpoint is due, when a cycle ends) is pure and tested; the loop that
//! sleeps and spawns is the only I/O here.
// TODO(probe): the lead's `probe` crate owns the round scheduler for `ports`; fold this loop
// into it once its API settles, keeping the fixed-rate and per-cycle-deadline rules.

use crate::classify::{Classified, Rules};
use crate::client::{Checker, ConnSlot};
use crate::config::Endpoint;
use netvantage_core::check::SCHEMA_VERSION;
use netvantage_core::{CheckKind, CheckResult, HttpDetails, Reason};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How many cycles apart an endpoint with its own `interval` is checked: the interval rounded
/// up to whole cycles, at least every cycle.
pub fn cycles_between(interval: Option<Duration>, frequency: Duration) -> u64 {
    match interval {
        None => 1,
        Some(interval) => {
            let f = frequency.as_nanos().max(1);
            interval.as_nanos().div_ceil(f).max(1) as u64
        }
    }
}

/// Whether an endpoint checked every `every` cycles is due in cycle `n` (all are due in 0).
pub fn is_due(every: u64, n: u64) -> bool {
    n.is_multiple_of(every.max(1))
}

/// Start and hard end of cycle `n`, or `None` if the run is over before it starts.
pub fn cycle_window(
    t0: Instant,
    n: u64,
    frequency: Duration,
    run_duration: Option<Duration>,
) -> Option<(Instant, Instant)> {
    let offset = frequency.checked_mul(u32::try_from(n).ok()?)?;
    if run_duration.is_some_and(|r| offset >= r) {
        return None;
    }
    let start = t0 + offset;
    let mut end = start + frequency;
    if let Some(r) = run_duration {
        end = end.min(t0 + r);
    }
    Some((start, end))
}

#[derive(Debug, Clone)]
pub struct CycleOptions {
    pub frequency: Duration,
    pub run_duration: Option<Duration>,
    /// Most checks in flight at once (each holds one socket).
    pub concurrency: usize,
    /// Per-check timeout unless the endpoint sets `timeout`.
    pub default_timeout: Duration,
    pub default_latency_threshold: Duration,
    pub latency_inclusive: bool,
}

/// What the runner reports, in order: the results of a cycle as they arrive, then its end.
#[derive(Debug)]
pub enum Event {
    Result {
        cycle: u64,
        index: usize,
        result: Box<CheckResult>,
    },
    CycleEnd {
        cycle: u64,
        elapsed: Duration,
    },
}

/// Why the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `run_duration` elapsed.
    RunDuration,
    /// `shutdown` completed (SIGINT/SIGTERM); the cycle in flight was abandoned.
    Shutdown,
}

struct Shared {
    endpoints: Vec<Endpoint>,
    rules: Vec<Rules>,
    slots: Vec<ConnSlot>,
    timeouts: Vec<Duration>,
    checker: Checker,
}

/// Runs cycles until `run_duration` passes or `shutdown` completes, handing every event to
/// `sink` from this task (so the sink needs no locking). Returns why it ended and how many
/// cycles completed.
pub async fn run(
    endpoints: Vec<Endpoint>,
    checker: Checker,
    options: CycleOptions,
    shutdown: impl Future<Output = ()>,
    mut sink: impl FnMut(Event),
) -> (Ended, u64) {
    let every: Vec<u64> = endpoints
        .iter()
        .map(|e| cycles_between(e.interval, options.frequency))
        .collect();
    let shared = Arc::new(Shared {
        rules: endpoints
            .iter()
            .map(|e| Rules {
                expect_status: e.expect_status.clone(),
                latency_threshold: e
                    .latency_threshold
                    .unwrap_or(options.default_latency_threshold),
                inclusive: options.latency_inclusive,
            })
            .collect(),
        slots: endpoints.iter().map(|_| ConnSlot::default()).collect(),
        timeouts: endpoints
            .iter()
            .map(|e| e.timeout.unwrap_or(options.default_timeout))
            .collect(),
        endpoints,
        checker,
    });
    tokio::pin!(shutdown);
    let t0 = Instant::now();
    let mut completed = 0;
    for n in 0u64.. {
        let Some((start, end)) = cycle_window(t0, n, options.frequency, options.run_duration)
        else {
            return (Ended::RunDuration, completed);
        };
        tokio::select! {
            _ = tokio::time::sleep_until(start) => {}
            _ = &mut shutdown => return (Ended::Shutdown, completed),
        }
        // Tasks are spawned only as slots free up, so at most `concurrency` check futures
        // exist at once: 10,000 endpoints must not mean 10,000 parked futures in memory.
        let mut pending: VecDeque<usize> =
            (0..every.len()).filter(|&i| is_due(every[i], n)).collect();
        let mut tasks = JoinSet::new();
        loop {
            while tasks.len() < options.concurrency.max(1) && Instant::now() < end {
                let Some(index) = pending.pop_front() else {
                    break;
                };
                tasks.spawn(check_one(Arc::clone(&shared), index, end));
            }
            if tasks.is_empty() {
                // Whatever is still pending could not start before the cycle ended.
                for index in pending.drain(..) {
                    let c = Classified::down(
                        Reason::Timeout,
                        "not started before the cycle ended (too many endpoints for --concurrency)",
                    );
                    sink(Event::Result {
                        cycle: n,
                        index,
                        result: Box::new(not_started(&shared.endpoints[index], c)),
                    });
                }
                break;
            }
            tokio::select! {
                biased;
                _ = &mut shutdown => {
                    tasks.abort_all();
                    return (Ended::Shutdown, completed);
                }
                joined = tasks.join_next() => match joined {
                    Some(Ok((index, result))) => sink(Event::Result { cycle: n, index, result: Box::new(result) }),
                    Some(Err(e)) => tracing::error!("a check task failed: {e}"),
                    None => {}
                },
            }
        }
        let elapsed = start.elapsed();
        if elapsed > options.frequency {
            tracing::warn!(cycle = n, ?elapsed, "cycle overran its period");
        }
        completed += 1;
        sink(Event::CycleEnd { cycle: n, elapsed });
    }
    (Ended::RunDuration, completed)
}

async fn check_one(shared: Arc<Shared>, index: usize, cycle_end: Instant) -> (usize, CheckResult) {
    let endpoint = &shared.endpoints[index];
    let deadline = (Instant::now() + shared.timeouts[index]).min(cycle_end);
    let result = shared
        .checker
        .check(
            endpoint,
            &shared.rules[index],
            &shared.slots[index],
            deadline,
        )
        .await;
    (index, result)
}

fn not_started(endpoint: &Endpoint, c: Classified) -> CheckResult {
    CheckResult {
        schema: SCHEMA_VERSION,
        kind: CheckKind::Http,
        target: endpoint.url.clone(),
        address: None,
        ts_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default(),
        outcome: c.outcome,
        reason: c.reason,
        latency_ms: 0.0,
        error: c.error,
        status: None,
        phases: None,
        body_matched: None,
        http: Some(HttpDetails {
            name: endpoint.name.clone(),
            method: endpoint.method.to_string(),
            domain: endpoint.domain.clone(),
            tls_cert_not_after_unix_ms: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn interval_rounds_up_to_whole_cycles() {
        let f = Duration::from_secs(15);
        assert_eq!(cycles_between(None, f), 1);
        assert_eq!(cycles_between(Some(Duration::from_secs(5)), f), 1);
        assert_eq!(cycles_between(Some(Duration::from_secs(15)), f), 1);
        assert_eq!(cycles_between(Some(Duration::from_secs(16)), f), 2);
        assert_eq!(cycles_between(Some(Duration::from_secs(60)), f), 4);
    }

    #[test]
    fn every_endpoint_is_due_in_the_first_cycle() {
        for every in 1..10 {
            assert!(is_due(every, 0));
        }
        let due: Vec<u64> = (0..9).filter(|&n| is_due(4, n)).collect();
        assert_eq!(due, [0, 4, 8]);
        assert!(is_due(0, 3));
    }

    #[test]
    fn cycles_are_at_fixed_rate_and_end_at_the_next_start() {
        let t0 = Instant::now();
        let f = 15 * S;
        for n in 0..5 {
            let (start, end) = cycle_window(t0, n, f, None).unwrap();
            assert_eq!(start - t0, f * n as u32);
            assert_eq!(end - start, f);
        }
    }

    #[test]
    fn run_duration_bounds_the_last_cycle() {
        let t0 = Instant::now();
        // -f 1 -r 2: cycles at 0 s and 1 s, none at 2 s.
        assert!(cycle_window(t0, 1, S, Some(2 * S)).is_some());
        assert!(cycle_window(t0, 2, S, Some(2 * S)).is_none());
        // -f 1 -r 1.5: the second cycle is cut at 1.5 s.
        let (start, end) = cycle_window(t0, 1, S, Some(Duration::from_millis(1500))).unwrap();
        assert_eq!((start - t0, end - t0), (S, Duration::from_millis(1500)));
    }
}

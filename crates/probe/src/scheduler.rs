//! Rounds of probes at a fixed interval, each round's probes spread evenly across it.
//!
//! Round `r` starts at `t0 + r·interval` however long earlier probes take (a fixed rate, not a
//! fixed delay). Target `i` of `n` is probed at `round start + i·spacing`, where spacing is
//! `interval / n` when spreading (a steady trickle instead of a burst, so neither the targets,
//! their firewalls nor our NAT see a spike) and the `--rate` cap's `1/rate` when that is larger.
//! A single round has no next round to spread towards: it sweeps as fast as the caps allow.
//!
//! In-flight probes are capped by a semaphore; a probe that does not fit waits, which delays the
//! rest of the round rather than dropping anything.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundPlan {
    pub interval: Duration,
    /// `None`: until cancelled (`--watch`).
    pub rounds: Option<u64>,
    /// Spread each round's probes over the interval.
    pub spread: bool,
    /// Connects (probes) per second at most.
    pub rate: Option<f64>,
    /// Probes in flight at most.
    pub in_flight: usize,
}

impl RoundPlan {
    /// Time between two consecutive probes of one round.
    pub fn spacing(&self, targets: usize) -> Duration {
        let spread = if self.spread && self.rounds != Some(1) && targets > 0 {
            self.interval / targets.min(u32::MAX as usize) as u32
        } else {
            Duration::ZERO
        };
        let rate = match self.rate {
            Some(rate) if rate > 0.0 => Duration::from_secs_f64(1.0 / rate),
            _ => Duration::ZERO,
        };
        spread.max(rate)
    }

    /// When target `index` of round `round` is due, relative to the start of the run.
    pub fn due(&self, round: u64, index: usize, targets: usize) -> Duration {
        self.interval * round as u32 + self.spacing(targets) * index as u32
    }
}

/// Probes started between two yields to the runtime.
const YIELD_EVERY: usize = 64;

/// One scheduled probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub target: usize,
    pub round: u64,
    /// When the probe actually started, relative to the start of the run.
    pub started: Duration,
}

/// Runs the plan over `targets` targets, calling `probe` for each slot and sending each result
/// with its slot to `results`. Returns when every round has been scheduled (probes may still be
/// in flight; `results` closes when the last one finishes) or when `stop` is cancelled.
pub async fn run<P, Fut, T>(
    plan: RoundPlan,
    targets: usize,
    probe: P,
    results: mpsc::UnboundedSender<(Slot, T)>,
    stop: CancellationToken,
) where
    P: Fn(Slot) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    if targets == 0 {
        return;
    }
    let t0 = Instant::now();
    let in_flight = Arc::new(Semaphore::new(plan.in_flight.max(1)));
    let probe = Arc::new(probe);
    let mut round = 0u64;
    while plan.rounds.is_none_or(|rounds| round < rounds) {
        for index in 0..targets {
            let due = t0 + plan.due(round, index, targets);
            if due > Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = stop.cancelled() => return,
                }
            }
            let permit = tokio::select! {
                permit = in_flight.clone().acquire_owned() => permit.expect("never closed"),
                _ = stop.cancelled() => return,
            };
            let slot = Slot {
                target: index,
                round,
                started: t0.elapsed(),
            };
            let probe = probe.clone();
            let results = results.clone();
            tokio::spawn(async move {
                let output = probe(slot).await;
                drop(permit);
                let _ = results.send((slot, output));
            });
            // On a single-threaded runtime a free-running loop would start every permitted
            // probe before any result is consumed; yielding now and then lets finished probes
            // report and be recorded as the sweep goes.
            if index % YIELD_EVERY == YIELD_EVERY - 1 {
                tokio::task::yield_now().await;
            }
        }
        round += 1;
        let next_round = t0 + plan.interval * round as u32;
        if Instant::now() > next_round + plan.interval / 10 && plan.rounds.is_none_or(|r| round < r)
        {
            tracing::warn!(
                round,
                "round overran its interval: too many targets for --rate / --concurrency"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(interval_s: u64, rounds: Option<u64>, spread: bool, rate: Option<f64>) -> RoundPlan {
        RoundPlan {
            interval: Duration::from_secs(interval_s),
            rounds,
            spread,
            rate,
            in_flight: 100,
        }
    }

    #[test]
    fn probes_are_spread_evenly_over_the_interval() {
        let p = plan(10, Some(12), true, None);
        assert_eq!(p.spacing(1000), Duration::from_millis(10));
        assert_eq!(p.due(0, 0, 1000), Duration::ZERO);
        assert_eq!(p.due(0, 999, 1000), Duration::from_millis(9990));
        assert_eq!(p.due(3, 500, 1000), Duration::from_millis(35_000));
    }

    #[test]
    fn a_single_round_sweeps_without_spreading() {
        assert_eq!(plan(10, Some(1), true, None).spacing(1000), Duration::ZERO);
        assert_eq!(plan(10, Some(5), false, None).spacing(1000), Duration::ZERO);
    }

    #[test]
    fn rate_cap_wins_when_slower_than_the_spread() {
        assert_eq!(
            plan(10, Some(1), true, Some(100.0)).spacing(10),
            Duration::from_millis(10)
        );
        assert_eq!(
            plan(10, Some(3), true, Some(1000.0)).spacing(10),
            Duration::from_secs(1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_slot_runs_once_per_round_at_its_time() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let p = plan(10, Some(3), true, None);
        run(
            p,
            4,
            |slot: Slot| async move { slot },
            tx,
            CancellationToken::new(),
        )
        .await;
        let mut seen = Vec::new();
        while let Some((slot, echoed)) = rx.recv().await {
            assert_eq!(slot, echoed);
            seen.push(slot);
        }
        assert_eq!(seen.len(), 12);
        for slot in &seen {
            let due = p.due(slot.round, slot.target, 4);
            assert!(
                slot.started >= due && slot.started < due + Duration::from_millis(5),
                "{slot:?} due {due:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_stops_scheduling() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let p = plan(10, None, true, None);
        let runner = tokio::spawn(run(p, 2, |_slot: Slot| async {}, tx, stop.clone()));
        tokio::time::sleep(Duration::from_secs(22)).await;
        stop.cancel();
        runner.await.unwrap();
        let mut count = 0;
        while rx.recv().await.is_some() {
            count += 1;
        }
        assert_eq!(
            count, 5,
            "slots at 0, 5, 10, 15 and 20 s; the one due at 25 s never starts"
        );
    }
}

//! The one scheduler: rounds of checks at a fixed rate, for every probe.
//!
//! - Round `r` starts at `t0 + r·interval` however long earlier checks take (a fixed rate, not a
//!   fixed delay). No round starts once `run_for` has passed.
//! - [`Spread::Even`] (`ports`): the `i`-th due target of `n` starts at `round start + i·spacing`,
//!   spacing `interval / n` — a steady trickle, so neither the targets, their firewalls nor our
//!   NAT see a spike. A single round has no next round to spread towards: it sweeps as fast as
//!   the caps allow. [`Spread::Burst`] (`http`): every due target starts at the round's start.
//!   `rate` (checks per second) stretches the spacing when it is the slower of the two.
//! - A target with [`Probe::rounds_between`] `k` is due in rounds 0, k, 2k, … (an HTTP endpoint
//!   with a longer `interval` than the cycle).
//! - Deadlines: [`DeadlineRule::Timeout`] gives each check its timeout (`ports`, whose plan
//!   keeps the timeout shorter than the interval); [`DeadlineRule::WithinRound`] also cuts it at
//!   the next round's start (`http`), so one hung endpoint can neither delay a round's report
//!   nor push the schedule. Under `WithinRound`, a check that cannot get a socket before its
//!   round ends is recorded as not started ([`Probe::not_started`]), never silently skipped.
//! - At most `in_flight` checks run at once; under `Timeout` a check that does not fit waits,
//!   which delays the rest of the round rather than dropping anything.
//!
//! Stopping ([`Shutdown::stop`]): nothing new starts; the checks in flight finish and report
//! (each holds a sender, so the events channel closes when the last one is done).
//!
//! The arithmetic ([`Schedule`]'s methods, [`RoundTracker`]) is pure and tested without
//! sockets; [`run`] is the only part that sleeps and spawns.

use crate::probe::Probe;
use netvantage_core::CheckResult;
use netvantage_runtime::Shutdown;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

/// How a round's checks are placed within its interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Evenly across the interval (`ports`).
    Even,
    /// All at the round's start (`http`'s cycles).
    Burst,
}

/// How long a check may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineRule {
    /// Its timeout.
    Timeout,
    /// Its timeout, but never past the next round's start (nor the end of the run).
    WithinRound,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub interval: Duration,
    /// `None`: until stopped.
    pub rounds: Option<u64>,
    /// No round starts at or after this time since the start, and under `WithinRound` no check
    /// runs past it.
    pub run_for: Option<Duration>,
    pub spread: Spread,
    /// Checks started per second at most.
    pub rate: Option<f64>,
    /// Checks in flight at most.
    pub in_flight: usize,
    pub deadline: DeadlineRule,
}

impl Schedule {
    /// Time between two consecutive checks of one round with `due` targets due.
    pub fn spacing(&self, due: usize) -> Duration {
        let spread = if self.spread == Spread::Even && self.rounds != Some(1) && due > 0 {
            self.interval / due.min(u32::MAX as usize) as u32
        } else {
            Duration::ZERO
        };
        let rate = match self.rate {
            Some(rate) if rate > 0.0 && rate.is_finite() => {
                Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::MAX)
            }
            _ => Duration::ZERO,
        };
        spread.max(rate)
    }

    /// When round `round` starts, relative to the start of the run; `None` when the run is over
    /// by then (the rounds are done, or `run_for` has passed).
    pub fn round_start(&self, round: u64) -> Option<Duration> {
        if self.rounds.is_some_and(|rounds| round >= rounds) {
            return None;
        }
        let start = self.interval.checked_mul(u32::try_from(round).ok()?)?;
        match self.run_for {
            Some(run_for) if start >= run_for => None,
            _ => Some(start),
        }
    }

    /// When round `round` ends: the next round's start, or the end of the run if sooner.
    pub fn round_end(&self, round: u64) -> Duration {
        let next = self
            .round_start(round)
            .map_or(Duration::MAX, |start| start.saturating_add(self.interval));
        self.run_for.map_or(next, |run_for| next.min(run_for))
    }

    /// When the check at `position` among `due` due targets of `round` is due.
    pub fn due_at(&self, round: u64, position: usize, due: usize) -> Duration {
        let start = self.round_start(round).unwrap_or(Duration::MAX);
        start.saturating_add(
            self.spacing(due)
                .saturating_mul(u32::try_from(position).unwrap_or(u32::MAX)),
        )
    }
}

/// Whether a target checked every `every` rounds is due in round `round` (all are due in 0).
pub fn is_due(every: u64, round: u64) -> bool {
    round.is_multiple_of(every.max(1))
}

/// How many rounds apart a target with its own `interval` is checked: the interval rounded up
/// to whole rounds of `round_interval`, at least every round.
pub fn rounds_between(interval: Option<Duration>, round_interval: Duration) -> u64 {
    match interval {
        None => 1,
        Some(interval) => {
            let round = round_interval.as_nanos().max(1);
            u64::try_from(interval.as_nanos().div_ceil(round))
                .unwrap_or(u64::MAX)
                .max(1)
        }
    }
}

/// One scheduled check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Index of the target in the run's target list.
    pub target: usize,
    pub round: u64,
    /// When the check started, relative to the start of the run.
    pub started: Duration,
}

/// What the scheduler reports, on one channel.
#[derive(Debug)]
pub enum Event {
    /// A check finished (or could not start): its results.
    Checked {
        slot: Slot,
        results: Vec<CheckResult>,
    },
    /// Every check of `round` has been started (or recorded as not started): `checks` of them.
    /// `complete` is false when the run stopped before the whole round was scheduled.
    RoundScheduled {
        round: u64,
        checks: usize,
        complete: bool,
    },
}

/// Checks started between two yields to the runtime.
const YIELD_EVERY: usize = 64;

/// Runs `schedule` over `targets` until its rounds are done or `shutdown` stops it. Returns once
/// nothing more will be started; checks in flight report afterwards, and `events` closes when
/// the last of them has.
pub async fn run<P: Probe>(
    schedule: Schedule,
    probe: Arc<P>,
    targets: Arc<[P::Target]>,
    events: mpsc::UnboundedSender<Event>,
    shutdown: Shutdown,
) {
    if targets.is_empty() {
        return;
    }
    let t0 = Instant::now();
    let in_flight = Arc::new(Semaphore::new(schedule.in_flight.max(1)));
    let every: Vec<u64> = targets.iter().map(|t| probe.rounds_between(t)).collect();
    let every_round = every.iter().all(|&e| e <= 1);
    let mut round = 0u64;
    while let Some(start) = schedule.round_start(round) {
        let due = if every_round {
            targets.len()
        } else {
            every.iter().filter(|&&e| is_due(e, round)).count()
        };
        let spacing = schedule.spacing(due);
        let round_end = t0 + schedule.round_end(round);
        let mut position = 0usize;
        let mut scheduled = 0usize;
        let mut indices = (0..targets.len()).filter(|&i| every_round || is_due(every[i], round));
        let stopped_early = loop {
            let Some(index) = indices.next() else {
                break false;
            };
            let due_at =
                t0 + start + spacing.saturating_mul(position.min(u32::MAX as usize) as u32);
            position += 1;
            if due_at > Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due_at) => {}
                    _ = shutdown.stopped() => break true,
                }
            }
            let permit = match schedule.deadline {
                DeadlineRule::Timeout => tokio::select! {
                    permit = in_flight.clone().acquire_owned() => permit.expect("never closed"),
                    _ = shutdown.stopped() => break true,
                },
                DeadlineRule::WithinRound => {
                    let acquired = tokio::select! {
                        biased;
                        permit = in_flight.clone().acquire_owned() => Some(permit.expect("never closed")),
                        _ = tokio::time::sleep_until(round_end) => None,
                        _ = shutdown.stopped() => break true,
                    };
                    // A permit freed at the round's very end (its check cut by the same
                    // deadline) is no use: the check would start with no time left.
                    match acquired {
                        Some(permit) if Instant::now() < round_end => permit,
                        _ => {
                            // The round is over before this check (and the ones after it)
                            // could start: record them as such rather than skipping them.
                            for index in std::iter::once(index).chain(indices.by_ref()) {
                                let slot = Slot {
                                    target: index,
                                    round,
                                    started: t0.elapsed(),
                                };
                                let results = probe.not_started(
                                    &targets[index],
                                    "not started before the cycle ended (too many checks for --concurrency)",
                                );
                                let _ = events.send(Event::Checked { slot, results });
                                scheduled += 1;
                            }
                            break false;
                        }
                    }
                }
            };
            let started = Instant::now();
            let slot = Slot {
                target: index,
                round,
                started: started - t0,
            };
            let mut deadline = started + probe.timeout(&targets[index]);
            if schedule.deadline == DeadlineRule::WithinRound {
                deadline = deadline.min(round_end);
            }
            let probe = probe.clone();
            let targets = targets.clone();
            let events = events.clone();
            tokio::spawn(async move {
                let results = probe.check(&targets[index], deadline).await;
                drop(permit);
                let _ = events.send(Event::Checked { slot, results });
            });
            scheduled += 1;
            // On a single-threaded runtime a free-running loop would start every permitted
            // check before any result is consumed; yielding now and then lets finished checks
            // report and be recorded as the sweep goes.
            if scheduled.is_multiple_of(YIELD_EVERY) {
                tokio::task::yield_now().await;
            }
        };
        let _ = events.send(Event::RoundScheduled {
            round,
            checks: scheduled,
            complete: !stopped_early,
        });
        if stopped_early {
            return;
        }
        round += 1;
        let next_round = t0
            + schedule
                .interval
                .saturating_mul(round.min(u32::MAX as u64) as u32);
        if schedule.round_start(round).is_some()
            && Instant::now() > next_round + schedule.interval / 10
        {
            tracing::warn!(
                round,
                "round overran its interval: too many targets for the rate or concurrency"
            );
        }
    }
}

/// A round whose every check has reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundDone {
    pub round: u64,
    pub checks: usize,
    /// False when the run stopped before the whole round was scheduled.
    pub complete: bool,
}

/// Tells, from the scheduler's events, when a round is done: all its checks scheduled and all
/// of them reported (in either order).
#[derive(Debug, Default)]
pub struct RoundTracker {
    rounds: BTreeMap<u64, (usize, Option<(usize, bool)>)>,
}

impl RoundTracker {
    /// Follows one event; returns the round it finished, if any.
    pub fn observe(&mut self, event: &Event) -> Option<RoundDone> {
        let round = match *event {
            Event::Checked { slot, .. } => {
                self.rounds.entry(slot.round).or_default().0 += 1;
                slot.round
            }
            Event::RoundScheduled {
                round,
                checks,
                complete,
            } => {
                self.rounds.entry(round).or_default().1 = Some((checks, complete));
                round
            }
        };
        match self.rounds.get(&round) {
            Some(&(reported, Some((checks, complete)))) if reported >= checks => {
                self.rounds.remove(&round);
                Some(RoundDone {
                    round,
                    checks,
                    complete,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvantage_core::Reason;
    use std::sync::Mutex;

    const S: Duration = Duration::from_secs(1);

    fn schedule(
        interval_s: u64,
        rounds: Option<u64>,
        spread: Spread,
        rate: Option<f64>,
    ) -> Schedule {
        Schedule {
            interval: Duration::from_secs(interval_s),
            rounds,
            run_for: None,
            spread,
            rate,
            in_flight: 100,
            deadline: DeadlineRule::Timeout,
        }
    }

    #[test]
    fn checks_are_spread_evenly_over_the_interval() {
        let s = schedule(10, Some(12), Spread::Even, None);
        assert_eq!(s.spacing(1000), Duration::from_millis(10));
        assert_eq!(s.due_at(0, 0, 1000), Duration::ZERO);
        assert_eq!(s.due_at(0, 999, 1000), Duration::from_millis(9990));
        assert_eq!(s.due_at(3, 500, 1000), Duration::from_millis(35_000));
    }

    #[test]
    fn a_single_round_sweeps_without_spreading_and_bursts_never_spread() {
        assert_eq!(
            schedule(10, Some(1), Spread::Even, None).spacing(1000),
            Duration::ZERO
        );
        assert_eq!(
            schedule(10, Some(5), Spread::Burst, None).spacing(1000),
            Duration::ZERO
        );
    }

    #[test]
    fn rate_cap_wins_when_slower_than_the_spread() {
        assert_eq!(
            schedule(10, Some(1), Spread::Even, Some(100.0)).spacing(10),
            Duration::from_millis(10)
        );
        assert_eq!(
            schedule(10, Some(3), Spread::Even, Some(1000.0)).spacing(10),
            Duration::from_secs(1)
        );
        // Absurd rates are refused by the plan; here they only must not panic.
        assert_eq!(
            schedule(10, Some(1), Spread::Even, Some(1e-300)).spacing(10),
            Duration::MAX
        );
    }

    #[test]
    fn an_interval_rounds_up_to_whole_rounds() {
        let f = Duration::from_secs(15);
        assert_eq!(rounds_between(None, f), 1);
        assert_eq!(rounds_between(Some(Duration::from_secs(5)), f), 1);
        assert_eq!(rounds_between(Some(Duration::from_secs(15)), f), 1);
        assert_eq!(rounds_between(Some(Duration::from_secs(16)), f), 2);
        assert_eq!(rounds_between(Some(Duration::from_secs(60)), f), 4);
    }

    #[test]
    fn every_target_is_due_in_the_first_round() {
        for every in 1..10 {
            assert!(is_due(every, 0));
        }
        let due: Vec<u64> = (0..9).filter(|&n| is_due(4, n)).collect();
        assert_eq!(due, [0, 4, 8]);
        assert!(is_due(0, 3));
    }

    #[test]
    fn rounds_are_at_a_fixed_rate_and_end_at_the_next_start() {
        let s = schedule(15, None, Spread::Burst, None);
        for n in 0..5 {
            assert_eq!(s.round_start(n), Some(15 * S * n as u32));
            assert_eq!(s.round_end(n), 15 * S * (n as u32 + 1));
        }
    }

    #[test]
    fn run_for_bounds_the_last_round() {
        let mut s = schedule(1, None, Spread::Burst, None);
        // -f 1 -r 2: rounds at 0 s and 1 s, none at 2 s.
        s.run_for = Some(2 * S);
        assert!(s.round_start(1).is_some());
        assert!(s.round_start(2).is_none());
        // -f 1 -r 1.5: the second round is cut at 1.5 s.
        s.run_for = Some(Duration::from_millis(1500));
        assert_eq!(s.round_start(1), Some(S));
        assert_eq!(s.round_end(1), Duration::from_millis(1500));
    }

    /// A probe whose checks take `busy` and record when they ran and under which deadline.
    struct Recorder {
        busy: Duration,
        timeout: Duration,
        every: Vec<u64>,
        t0: Instant,
        seen: Mutex<Vec<(usize, Duration, Duration)>>,
    }

    impl Recorder {
        fn new(busy: Duration, timeout: Duration, every: Vec<u64>) -> Arc<Recorder> {
            Arc::new(Recorder {
                busy,
                timeout,
                every,
                t0: Instant::now(),
                seen: Mutex::new(Vec::new()),
            })
        }
    }

    impl Probe for Recorder {
        type Target = usize;

        async fn check(&self, target: &usize, deadline: Instant) -> Vec<CheckResult> {
            let started = self.t0.elapsed();
            tokio::select! {
                _ = tokio::time::sleep(self.busy) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
            self.seen
                .lock()
                .unwrap()
                .push((*target, started, deadline - self.t0));
            vec![CheckResult::tcp(
                format!("t{target}"),
                None,
                0,
                Duration::ZERO,
                None,
            )]
        }

        fn timeout(&self, _: &usize) -> Duration {
            self.timeout
        }

        fn rounds_between(&self, target: &usize) -> u64 {
            self.every.get(*target).copied().unwrap_or(1)
        }

        fn not_started(&self, target: &usize, why: &str) -> Vec<CheckResult> {
            vec![CheckResult::tcp(
                format!("t{target}"),
                None,
                0,
                Duration::ZERO,
                Some((Reason::Timeout, why.to_string())),
            )]
        }
    }

    async fn collect(
        mut rx: mpsc::UnboundedReceiver<Event>,
    ) -> (Vec<(Slot, bool)>, Vec<RoundDone>) {
        let mut checked = Vec::new();
        let mut done = Vec::new();
        let mut tracker = RoundTracker::default();
        while let Some(event) = rx.recv().await {
            if let Some(d) = tracker.observe(&event) {
                done.push(d);
            }
            if let Event::Checked { slot, results } = event {
                checked.push((slot, results[0].outcome.is_up()));
            }
        }
        (checked, done)
    }

    #[tokio::test(start_paused = true)]
    async fn every_target_runs_once_per_round_at_its_time() {
        let (tx, rx) = mpsc::unbounded_channel();
        let s = schedule(10, Some(3), Spread::Even, None);
        let probe = Recorder::new(Duration::from_millis(1), S, vec![]);
        let targets: Arc<[usize]> = (0..4).collect();
        run(s, probe, targets, tx, Shutdown::new()).await;
        let (checked, done) = collect(rx).await;
        assert_eq!(checked.len(), 12);
        for (slot, _) in &checked {
            let due = s.due_at(slot.round, slot.target, 4);
            assert!(
                slot.started >= due && slot.started < due + Duration::from_millis(5),
                "{slot:?} due {due:?}"
            );
        }
        let rounds: Vec<_> = done
            .iter()
            .map(|d| (d.round, d.checks, d.complete))
            .collect();
        assert_eq!(rounds, [(0, 4, true), (1, 4, true), (2, 4, true)]);
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_starts_nothing_new_and_lets_checks_in_flight_finish() {
        let (tx, rx) = mpsc::unbounded_channel();
        let shutdown = Shutdown::new();
        let s = schedule(10, None, Spread::Even, None);
        // Checks take 3 s: the one started at 20 s is still running when the stop comes.
        let probe = Recorder::new(3 * S, 4 * S, vec![]);
        let runner = tokio::spawn(run(
            s,
            probe.clone(),
            (0..2).collect(),
            tx,
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(22)).await;
        shutdown.stop(netvantage_runtime::StopReason::Signal("test"));
        runner.await.unwrap();
        let (checked, done) = collect(rx).await;
        assert_eq!(
            checked.len(),
            5,
            "checks at 0, 5, 10, 15 and 20 s, the last finishing after the stop; none at 25 s"
        );
        assert_eq!(done.last().map(|d| (d.round, d.complete)), Some((2, false)));
    }

    #[tokio::test(start_paused = true)]
    async fn within_round_deadlines_never_pass_the_next_round_start() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut s = schedule(2, Some(2), Spread::Burst, None);
        s.deadline = DeadlineRule::WithinRound;
        // A 10 s timeout and checks that hang: cut at each round's end.
        let probe = Recorder::new(Duration::from_secs(60), 10 * S, vec![]);
        run(s, probe.clone(), (0..3).collect(), tx, Shutdown::new()).await;
        let (checked, done) = collect(rx).await;
        assert_eq!(checked.len(), 6);
        for (target, started, deadline) in probe.seen.lock().unwrap().iter() {
            let round_end = if *started < 2 * S { 2 * S } else { 4 * S };
            assert_eq!(*deadline, round_end, "target {target} started {started:?}");
        }
        assert_eq!(done.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_cannot_start_before_its_round_ends_is_recorded_as_not_started() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut s = schedule(1, Some(1), Spread::Burst, None);
        s.deadline = DeadlineRule::WithinRound;
        s.in_flight = 1;
        // One socket, three endpoints that each hang for the whole round.
        let probe = Recorder::new(Duration::from_secs(60), 10 * S, vec![]);
        run(s, probe, (0..3).collect(), tx, Shutdown::new()).await;
        let (checked, done) = collect(rx).await;
        let up: Vec<bool> = checked.iter().map(|(_, up)| *up).collect();
        assert_eq!(up.iter().filter(|u| !**u).count(), 2, "two never started");
        assert_eq!(
            done,
            [RoundDone {
                round: 0,
                checks: 3,
                complete: true
            }]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_with_a_longer_interval_is_checked_every_kth_round() {
        let (tx, rx) = mpsc::unbounded_channel();
        let s = schedule(1, Some(6), Spread::Burst, None);
        let probe = Recorder::new(Duration::from_millis(1), S / 2, vec![1, 3]);
        run(s, probe, (0..2).collect(), tx, Shutdown::new()).await;
        let (checked, _) = collect(rx).await;
        let rounds_of = |t: usize| -> Vec<u64> {
            let mut r: Vec<u64> = checked
                .iter()
                .filter(|(s, _)| s.target == t)
                .map(|(s, _)| s.round)
                .collect();
            r.sort();
            r
        };
        assert_eq!(rounds_of(0), [0, 1, 2, 3, 4, 5]);
        assert_eq!(rounds_of(1), [0, 3]);
    }

    #[test]
    fn the_tracker_closes_a_round_whichever_event_comes_last() {
        let mut tracker = RoundTracker::default();
        let checked = |round| Event::Checked {
            slot: Slot {
                target: 0,
                round,
                started: Duration::ZERO,
            },
            results: Vec::new(),
        };
        assert_eq!(tracker.observe(&checked(0)), None);
        assert_eq!(
            tracker.observe(&Event::RoundScheduled {
                round: 0,
                checks: 1,
                complete: true
            }),
            Some(RoundDone {
                round: 0,
                checks: 1,
                complete: true
            })
        );
        assert_eq!(
            tracker.observe(&Event::RoundScheduled {
                round: 1,
                checks: 1,
                complete: true
            }),
            None
        );
        assert_eq!(tracker.observe(&checked(1)).map(|d| d.round), Some(1));
        assert_eq!(
            tracker
                .observe(&Event::RoundScheduled {
                    round: 2,
                    checks: 0,
                    complete: true
                })
                .map(|d| d.checks),
            Some(0)
        );
    }
}

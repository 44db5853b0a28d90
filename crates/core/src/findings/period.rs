//! Period detection: do one series' outages recur with a stable period?
//!
//! The evidence is sampled: an outage is seen at the first failed check, which comes up to one
//! check interval after it really began. So each outage's true start is only known to lie in
//! `(last ok check, first failed check]`, and the gap between two starts in an interval built
//! from both. A period is consistent when one value lies in every gap's interval (widened by a
//! small jitter allowance for scheduling delays). That test adapts to the sampling by itself: a
//! host checked every 10 s can show "every 60 s ± 10 s", one checked every 2 s "± 2 s".
//!
//! Regular-looking gaps also come from chance, mostly when the period spans few checks. Three
//! guards keep a flaky host from reading as periodic:
//! - at least [`MIN_OCCURRENCES`] outages whose start was seen (an outage already under way
//!   when the run began has no known start and is left out);
//! - the period spans at least [`MIN_CHECKS_PER_PERIOD`] checks;
//! - the pattern is unlikely under chance: if outages started at random with the observed rate
//!   `q` per check, every gap would fall in a window `w` checks wide with probability at most
//!   `(1 - (1 - q)^w)^(gaps)`; that must not exceed the caller's `alpha`.
//!
//! Outage durations must roughly agree too (a cron job or a restart loop is down about as long
//! each time: within one check and half the longest). Pure: times are values in milliseconds.

/// One outage of a series: consecutive failed rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    /// The first failed check.
    pub start_ms: i64,
    /// The check before it, which answered; `None` when the outage was under way at the start.
    pub prev_ok_ms: Option<i64>,
    /// Failed rounds in a row.
    pub failed_rounds: u32,
}

/// A stable period, as a person reads it: "every 60 s ± 2 s".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Period {
    pub period_ms: i64,
    /// The largest difference between a measured gap and the period.
    pub tolerance_ms: i64,
    /// Outages that take part (those with a known start).
    pub occurrences: usize,
    /// The chance bound of the module docs, for the record.
    pub chance: f64,
}

/// Fewest outages with a known start that can show a period (three gaps).
pub const MIN_OCCURRENCES: usize = 4;
/// Fewest checks a period must span: below it, sampling alone makes gaps look regular.
pub const MIN_CHECKS_PER_PERIOD: i64 = 4;
/// Scheduling jitter allowed on top of the sampling uncertainty: 2 % of the period, at least
/// 50 ms (a busy prober starts its checks that late, and the job itself drifts).
fn jitter_ms(period_ms: i64) -> i64 {
    (period_ms / 50).max(50)
}

/// Looks for a stable period in `occurrences` (in time order). `step_ms` is the series' check
/// interval, `checks` how many rounds it had, `alpha` the largest chance bound accepted.
pub fn detect(occurrences: &[Occurrence], step_ms: i64, checks: u32, alpha: f64) -> Option<Period> {
    if step_ms <= 0 || checks == 0 {
        return None;
    }
    // Only outages whose start was seen; they are consecutive in the sequence, because only the
    // first can lack a previous ok check.
    let seen: Vec<&Occurrence> = occurrences
        .iter()
        .filter(|o| o.prev_ok_ms.is_some())
        .collect();
    if seen.len() < MIN_OCCURRENCES {
        return None;
    }
    let mut measured: Vec<i64> = seen
        .windows(2)
        .map(|w| w[1].start_ms - w[0].start_ms)
        .collect();
    let (mut lowest, mut highest) = (i64::MIN, i64::MAX);
    for w in seen.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (a_prev, b_prev) = (a.prev_ok_ms?, b.prev_ok_ms?);
        // True starts: a in (a_prev, a.start], b in (b_prev, b.start].
        lowest = lowest.max(b_prev - a.start_ms);
        highest = highest.min(b.start_ms - a_prev);
    }
    measured.sort_unstable();
    let median = measured[measured.len() / 2];
    let jitter = jitter_ms(median);
    let (lowest, highest) = (lowest - jitter, highest + jitter);
    if lowest > highest {
        return None;
    }
    let period_ms = median.clamp(lowest, highest);
    if period_ms < MIN_CHECKS_PER_PERIOD * step_ms {
        return None;
    }
    let durations = seen.iter().map(|o| o.failed_rounds);
    let (shortest, longest) = durations.fold((u32::MAX, 0), |(lo, hi), d| (lo.min(d), hi.max(d)));
    if longest - shortest > 1 + longest / 2 {
        return None;
    }
    let window_checks = ((highest - lowest) as f64 / step_ms as f64).ceil().max(1.0);
    let rate = (occurrences.len() as f64 / f64::from(checks)).min(1.0);
    let per_gap = 1.0 - (1.0 - rate).powf(window_checks);
    let chance = per_gap.powi(measured.len() as i32);
    if chance > alpha {
        return None;
    }
    let tolerance_ms = measured
        .iter()
        .map(|g| (g - period_ms).abs())
        .max()
        .unwrap_or(0);
    Some(Period {
        period_ms,
        tolerance_ms,
        occurrences: seen.len(),
        chance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Samples a periodic outage (down `down_ms` every `period_ms`, first at `phase_ms`) with a
    /// check every `step_ms` for `checks` rounds, the way a run sees it.
    fn sample(
        period_ms: i64,
        down_ms: i64,
        phase_ms: i64,
        step_ms: i64,
        checks: i64,
    ) -> Vec<Occurrence> {
        let down = |t: i64| t >= phase_ms && (t - phase_ms) % period_ms < down_ms;
        let mut out: Vec<Occurrence> = Vec::new();
        let mut previous: Option<(i64, bool)> = None;
        for k in 0..checks {
            let t = k * step_ms;
            let failed = down(t);
            match (failed, previous) {
                (true, Some((_, true))) => out.last_mut().unwrap().failed_rounds += 1,
                (true, prev) => out.push(Occurrence {
                    start_ms: t,
                    prev_ok_ms: prev.map(|(p, _)| p),
                    failed_rounds: 1,
                }),
                _ => {}
            }
            previous = Some((t, failed));
        }
        out
    }

    #[test]
    fn a_restart_every_60_s_checked_every_2_s_is_every_60_s_within_2_s() {
        let occurrences = sample(60_000, 5_000, 7_000, 2_000, 300);
        let period = detect(&occurrences, 2_000, 300, 1e-3).expect("periodic");
        assert_eq!(period.period_ms, 60_000);
        assert!(period.tolerance_ms <= 2_000, "{period:?}");
        assert_eq!(period.occurrences, 10);
    }

    #[test]
    fn three_outages_are_not_enough_to_call_a_period() {
        let occurrences = sample(60_000, 5_000, 7_000, 2_000, 90);
        assert_eq!(occurrences.len(), 3);
        assert_eq!(detect(&occurrences, 2_000, 90, 1e-3), None);
    }

    #[test]
    fn an_outage_under_way_at_the_start_has_no_known_start_and_is_left_out() {
        let mut occurrences = sample(60_000, 5_000, 7_000, 2_000, 300);
        occurrences[0].prev_ok_ms = None;
        let period = detect(&occurrences, 2_000, 300, 1e-3).expect("periodic");
        assert_eq!(period.occurrences, 9);
    }

    #[test]
    fn alternating_every_other_check_is_too_fast_to_be_a_period() {
        // fail, ok, fail, ok: gaps of 2 checks are what a coin does too.
        let occurrences = sample(2_000, 1_000, 0, 1_000, 40);
        assert_eq!(detect(&occurrences, 1_000, 40, 1e-3), None);
    }

    #[test]
    fn gaps_of_one_and_two_periods_are_not_one_period() {
        let starts = [10_000, 70_000, 190_000, 250_000, 370_000, 430_000];
        let occurrences: Vec<Occurrence> = starts
            .iter()
            .map(|&s| Occurrence {
                start_ms: s,
                prev_ok_ms: Some(s - 2_000),
                failed_rounds: 2,
            })
            .collect();
        assert_eq!(detect(&occurrences, 2_000, 250, 1e-3), None);
    }

    #[test]
    fn outages_of_very_different_lengths_are_not_one_job() {
        let mut occurrences = sample(60_000, 5_000, 7_000, 2_000, 300);
        occurrences[3].failed_rounds = 12;
        assert_eq!(detect(&occurrences, 2_000, 300, 1e-3), None);
    }

    proptest! {
        /// Any stable period of at least 10 checks, seen at least 7 times, is found, and the
        /// true period lies within the reported tolerance plus one check.
        #[test]
        fn a_sampled_periodic_outage_is_found_with_its_period(
            step_ms in 100i64..5_000,
            checks_per_period in 10i64..60,
            down_checks in 1i64..4,
            phase_checks in 1i64..10,
            repeats in 7i64..15,
        ) {
            let period_ms = checks_per_period * step_ms;
            let checks = phase_checks + repeats * checks_per_period;
            let occurrences = sample(period_ms, down_checks * step_ms, phase_checks * step_ms, step_ms, checks);
            let found = detect(&occurrences, step_ms, checks as u32, 1e-3);
            let found = found.expect("periodic outage found");
            prop_assert!((found.period_ms - period_ms).abs() <= found.tolerance_ms + step_ms,
                "{found:?} vs {period_ms}");
        }

        /// Outages at independent random times are not called periodic unless their gaps
        /// happen to agree within the sampling uncertainty, which the chance bound makes rare:
        /// here gaps differ by at least four checks, so never.
        #[test]
        fn irregular_gaps_are_never_periodic(
            step_ms in 100i64..5_000,
            gaps in proptest::collection::vec(4i64..20, 4..12),
        ) {
            let spread = gaps.iter().max().unwrap() - gaps.iter().min().unwrap();
            prop_assume!(spread >= 4);
            let mut t = 5 * step_ms;
            let mut occurrences = Vec::new();
            for gap in std::iter::once(0).chain(gaps.iter().copied()) {
                t += gap * step_ms;
                occurrences.push(Occurrence { start_ms: t, prev_ok_ms: Some(t - step_ms), failed_rounds: 1 });
            }
            let checks = (t / step_ms + 5) as u32;
            prop_assert_eq!(detect(&occurrences, step_ms, checks, 1e-3), None);
        }
    }
}

//! Roll-ups: what the store keeps of its results once the raw rows are gone (issue 13).
//!
//! Per series (target × vantage point) and per minute, hour and day bucket: checks, up,
//! degraded, down, failures by reason, latency min / max / sum over the checks that answered,
//! and a fixed log-bucket latency histogram ([`bucket_of`]), enough for p50 / p95 / p99 within
//! one bucket ([`Rollup::quantile_ms`]). Everything here is pure: the backends turn a batch of
//! fresh records into [`RollupRow`]s with [`roll_up`] and add them to the stored rows inside
//! the insert's transaction, so merging is addition (and min / max), which is what makes it
//! exact under any split of the writes into batches.
//!
//! Availability windows come from [`cover`]: a window is cut into whole days, then whole
//! hours, then whole minutes at its edges, so a 365-day window reads about 365 + 48 + 120
//! rows per series whatever the history holds, and is exact to the minute.

use netvantage_core::{Outcome, Reason, ResultRecord};
use std::collections::BTreeMap;

/// A roll-up tier: the bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Minute,
    Hour,
    Day,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Minute, Tier::Hour, Tier::Day];

    pub fn millis(self) -> i64 {
        match self {
            Tier::Minute => 60_000,
            Tier::Hour => 3_600_000,
            Tier::Day => 86_400_000,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Minute => "minute",
            Tier::Hour => "hour",
            Tier::Day => "day",
        }
    }

    /// The tier this one is rolled from (`None`: minutes come from the raw rows).
    pub fn finer(self) -> Option<Tier> {
        match self {
            Tier::Minute => None,
            Tier::Hour => Some(Tier::Minute),
            Tier::Day => Some(Tier::Hour),
        }
    }

    /// The tier rolled from this one.
    pub fn coarser(self) -> Option<Tier> {
        match self {
            Tier::Minute => Some(Tier::Hour),
            Tier::Hour => Some(Tier::Day),
            Tier::Day => None,
        }
    }

    pub fn parse(name: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The table that holds this tier.
    pub fn table(self) -> &'static str {
        match self {
            Tier::Minute => "rollups_minute",
            Tier::Hour => "rollups_hour",
            Tier::Day => "rollups_day",
        }
    }

    /// The start of the bucket holding `ts_unix_ms` (UTC).
    pub fn bucket_start(self, ts_unix_ms: i64) -> i64 {
        ts_unix_ms - ts_unix_ms.rem_euclid(self.millis())
    }
}

/// How many latency buckets a histogram has.
pub const BUCKETS: usize = 28;

/// Bucket 0 is `[0, 1 ms)`; bucket `k` in `1..=26` is `[2^((k-1)/2), 2^(k/2))` ms (each a
/// factor √2 wider than the last, so a quantile read from it is within ±41 %); bucket 27 is
/// 8192 ms and more.
pub fn bucket_lower_ms(bucket: usize) -> f64 {
    match bucket {
        0 => 0.0,
        k => 2f64.powf((k as f64 - 1.0) / 2.0),
    }
}

/// The bucket's exclusive upper bound (infinite for the last).
pub fn bucket_upper_ms(bucket: usize) -> f64 {
    if bucket + 1 >= BUCKETS {
        f64::INFINITY
    } else {
        bucket_lower_ms(bucket + 1)
    }
}

/// The bucket a latency falls in. Negative or NaN latencies (never produced by a probe) count
/// in bucket 0.
pub fn bucket_of(latency_ms: f64) -> usize {
    if latency_ms.is_nan() || latency_ms < 1.0 {
        return 0;
    }
    let mut k =
        ((2.0 * latency_ms.log2()).floor() as i64 + 1).clamp(1, BUCKETS as i64 - 1) as usize;
    // `log2` can land a hair off at the exact powers; the bounds are the definition.
    while k > 1 && latency_ms < bucket_lower_ms(k) {
        k -= 1;
    }
    while k + 1 < BUCKETS && latency_ms >= bucket_upper_ms(k) {
        k += 1;
    }
    k
}

/// The figures of one series over one bucket (or, summed, over any span).
#[derive(Debug, Clone, PartialEq)]
pub struct Rollup {
    pub checks: u64,
    pub up: u64,
    pub degraded: u64,
    pub down: u64,
    /// Down checks by reason, in [`Reason::ALL`] order (a down check without a reason counts
    /// as `other`), so they add up to `down`.
    pub failures: [u64; Reason::ALL.len()],
    /// Over the checks that answered (up or degraded): a down check's latency is its timeout.
    pub latency_min_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    pub latency_sum_ms: f64,
    /// Answered checks by latency bucket ([`bucket_of`]).
    pub histogram: [u64; BUCKETS],
}

impl Default for Rollup {
    fn default() -> Self {
        Rollup {
            checks: 0,
            up: 0,
            degraded: 0,
            down: 0,
            failures: [0; Reason::ALL.len()],
            latency_min_ms: None,
            latency_max_ms: None,
            latency_sum_ms: 0.0,
            histogram: [0; BUCKETS],
        }
    }
}

fn reason_index(reason: Reason) -> usize {
    Reason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or(Reason::ALL.len() - 1)
}

fn min_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl Rollup {
    /// Counts one check.
    pub fn add(&mut self, outcome: Outcome, reason: Option<Reason>, latency_ms: f64) {
        self.checks += 1;
        match outcome {
            Outcome::Up => self.up += 1,
            Outcome::Degraded => self.degraded += 1,
            Outcome::Down => {
                self.down += 1;
                self.failures[reason_index(reason.unwrap_or(Reason::Other))] += 1;
                return;
            }
        }
        self.latency_min_ms = min_of(self.latency_min_ms, Some(latency_ms));
        self.latency_max_ms = max_of(self.latency_max_ms, Some(latency_ms));
        self.latency_sum_ms += latency_ms;
        self.histogram[bucket_of(latency_ms)] += 1;
    }

    /// Adds another roll-up's figures (of the same series): what the stores' upsert does.
    pub fn merge(&mut self, other: &Rollup) {
        self.checks += other.checks;
        self.up += other.up;
        self.degraded += other.degraded;
        self.down += other.down;
        for (mine, theirs) in self.failures.iter_mut().zip(other.failures) {
            *mine += theirs;
        }
        self.latency_min_ms = min_of(self.latency_min_ms, other.latency_min_ms);
        self.latency_max_ms = max_of(self.latency_max_ms, other.latency_max_ms);
        self.latency_sum_ms += other.latency_sum_ms;
        for (mine, theirs) in self.histogram.iter_mut().zip(other.histogram) {
            *mine += theirs;
        }
    }

    /// Checks that answered (up or degraded): what availability counts as available.
    pub fn answered(&self) -> u64 {
        self.up + self.degraded
    }

    /// Answered checks over all checks; `None` without checks.
    pub fn availability(&self) -> Option<f64> {
        (self.checks > 0).then(|| self.answered() as f64 / self.checks as f64)
    }

    pub fn failures_of(&self, reason: Reason) -> u64 {
        self.failures[reason_index(reason)]
    }

    pub fn latency_mean_ms(&self) -> Option<f64> {
        let answered = self.histogram.iter().sum::<u64>();
        (answered > 0).then(|| self.latency_sum_ms / answered as f64)
    }

    /// The `q` quantile (0 < q ≤ 1) of the answered checks' latency: the upper bound of the
    /// bucket that holds it, kept within the observed min and max (so the true quantile is in
    /// the same bucket, at most a factor √2 below). `None` when nothing answered.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.histogram.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        let bucket = self
            .histogram
            .iter()
            .position(|count| {
                seen += count;
                seen >= rank
            })
            .unwrap_or(BUCKETS - 1);
        let estimate = bucket_upper_ms(bucket);
        let (min, max) = (
            self.latency_min_ms.unwrap_or(0.0),
            self.latency_max_ms.unwrap_or(estimate),
        );
        Some(estimate.min(max).max(min))
    }
}

/// One stored roll-up row: a series' figures over the bucket starting at `start_unix_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupRow {
    pub target: String,
    pub vantage: String,
    pub start_unix_ms: i64,
    pub rollup: Rollup,
}

/// The roll-up rows of a batch, per tier, one row per (series, bucket).
pub fn roll_up<'r>(
    records: impl IntoIterator<Item = &'r ResultRecord>,
) -> Vec<(Tier, Vec<RollupRow>)> {
    let mut tiers: [BTreeMap<(&str, &str, i64), Rollup>; 3] = Default::default();
    for record in records {
        let check = &record.check;
        for (tier, rows) in Tier::ALL.iter().zip(tiers.iter_mut()) {
            let key = (
                check.target.as_str(),
                record.vantage.as_str(),
                tier.bucket_start(check.ts_unix_ms),
            );
            rows.entry(key)
                .or_default()
                .add(check.outcome, check.reason, check.latency_ms);
        }
    }
    Tier::ALL
        .into_iter()
        .zip(tiers)
        .map(|(tier, rows)| (tier, rows_of(rows)))
        .collect()
}

/// Rows from roll-ups keyed by (target, vantage, start), in key order.
fn rows_of(rollups: BTreeMap<(&str, &str, i64), Rollup>) -> Vec<RollupRow> {
    rollups
        .into_iter()
        .map(|((target, vantage, start), rollup)| RollupRow {
            target: target.to_string(),
            vantage: vantage.to_string(),
            start_unix_ms: start,
            rollup,
        })
        .collect()
}

/// Coarser-tier rows from finer ones (e.g. day rows from hour rows), merged per bucket: for
/// seeding a history or re-deriving a tier.
pub fn coarsen(rows: &[RollupRow], tier: Tier) -> Vec<RollupRow> {
    let mut merged: BTreeMap<(&str, &str, i64), Rollup> = BTreeMap::new();
    for row in rows {
        let key = (
            row.target.as_str(),
            row.vantage.as_str(),
            tier.bucket_start(row.start_unix_ms),
        );
        merged.entry(key).or_default().merge(&row.rollup);
    }
    rows_of(merged)
}

/// `[from, until)` cut into bucket-aligned spans of the coarsest tier that fits: minutes up
/// to the first whole hour, hours up to the first whole day, whole days, then hours and
/// minutes again at the end. The bucket starts of each span are what a query reads; a partial
/// minute at either edge is left out (the windows start and end on minutes).
pub fn cover(from_unix_ms: i64, until_unix_ms: i64) -> Vec<(Tier, i64, i64)> {
    let up =
        |ts: i64, tier: Tier| ts + (tier.millis() - ts.rem_euclid(tier.millis())) % tier.millis();
    let down = |ts: i64, tier: Tier| tier.bucket_start(ts);
    let (from, until) = (
        up(from_unix_ms, Tier::Minute),
        down(until_unix_ms, Tier::Minute),
    );
    if from >= until {
        return Vec::new();
    }
    let mut spans = Vec::new();
    let mut push = |tier, a: i64, b: i64| {
        if a < b {
            spans.push((tier, a, b));
        }
    };
    let (hour_from, hour_until) = (up(from, Tier::Hour), down(until, Tier::Hour));
    if hour_from >= hour_until {
        push(Tier::Minute, from, until);
        return spans;
    }
    let (day_from, day_until) = (up(hour_from, Tier::Day), down(hour_until, Tier::Day));
    push(Tier::Minute, from, hour_from);
    if day_from >= day_until {
        push(Tier::Hour, hour_from, hour_until);
    } else {
        push(Tier::Hour, hour_from, day_from);
        push(Tier::Day, day_from, day_until);
        push(Tier::Hour, day_until, hour_until);
    }
    push(Tier::Minute, hour_until, until);
    spans
}

/// How long each tier (and the raw rows) is kept; `None`: forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw_ms: Option<i64>,
    pub minute_ms: Option<i64>,
    pub hour_ms: Option<i64>,
    pub day_ms: Option<i64>,
}

impl Default for Retention {
    /// Raw 7 days, minute 30 days, hour 400 days, day forever.
    fn default() -> Self {
        const DAY: i64 = 86_400_000;
        Retention {
            raw_ms: Some(7 * DAY),
            minute_ms: Some(30 * DAY),
            hour_ms: Some(400 * DAY),
            day_ms: None,
        }
    }
}

impl Retention {
    pub fn of(&self, tier: Tier) -> Option<i64> {
        match tier {
            Tier::Minute => self.minute_ms,
            Tier::Hour => self.hour_ms,
            Tier::Day => self.day_ms,
        }
    }
}

/// What a retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Raw rows deleted (SQLite) or in the day partitions dropped (PostgreSQL: their names in
    /// `partitions`).
    pub raw_rows: u64,
    pub partitions: Vec<String>,
    /// Roll-up rows deleted, per tier in [`Tier::ALL`] order (a packed hour counts as a row).
    pub rollup_rows: [u64; 3],
    /// Spans of final buckets packed ([`crate::pack`]), per tier in [`Tier::ALL`] order: hours
    /// of minutes, days of hours.
    pub packed_spans: [u64; 3],
}

/// Rows deleted per statement (and transaction) by a retention pass: never one long `DELETE`.
pub const PRUNE_BATCH: i64 = 5_000;

#[cfg(test)]
mod tests {
    use super::*;
    use netvantage_core::CheckResult;
    use std::time::Duration;

    #[test]
    fn buckets_are_log_spaced_by_root_two_and_cover_everything() {
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(0.999), 0);
        assert_eq!(bucket_of(1.0), 1);
        assert_eq!(bucket_of(1.41), 1);
        assert_eq!(bucket_of(1.415), 2);
        assert_eq!(bucket_of(2.0), 3);
        assert_eq!(bucket_of(100.0), 14, "[90.5, 128)");
        assert_eq!(bucket_of(8191.0), 26);
        assert_eq!(bucket_of(8192.0), 27);
        assert_eq!(bucket_of(1e9), 27);
        assert_eq!(bucket_of(-5.0), 0);
        assert_eq!(bucket_of(f64::NAN), 0);
        for k in 0..BUCKETS {
            let (lo, hi) = (bucket_lower_ms(k), bucket_upper_ms(k));
            assert!(lo < hi);
            assert_eq!(bucket_of(lo), k, "the lower bound is inside bucket {k}");
            if hi.is_finite() {
                assert_eq!(bucket_of(hi), k + 1, "the upper bound is the next bucket's");
                assert!(hi / lo.max(1.0) <= 2f64.sqrt() + 1e-9 || k == 0);
            }
        }
    }

    fn rollup_of(latencies: &[f64]) -> Rollup {
        let mut r = Rollup::default();
        for l in latencies {
            r.add(Outcome::Up, None, *l);
        }
        r
    }

    #[test]
    fn quantiles_fall_in_the_true_quantiles_bucket() {
        let latencies: Vec<f64> = (1..=1000).map(|i| i as f64 * 0.7).collect();
        let r = rollup_of(&latencies);
        for (q, truth) in [(0.5, 350.0), (0.95, 665.0), (0.99, 693.0)] {
            let estimate = r.quantile_ms(q).unwrap();
            assert_eq!(bucket_of(truth), bucket_of(estimate - 1e-9), "q{q}");
            assert!(
                estimate >= truth && estimate <= truth * 2f64.sqrt(),
                "q{q}: {estimate}"
            );
        }
        assert_eq!(
            r.quantile_ms(1.0),
            Some(700.0),
            "the max, not the bucket's bound"
        );
        assert_eq!(rollup_of(&[5.0]).quantile_ms(0.5), Some(5.0));
        assert_eq!(Rollup::default().quantile_ms(0.5), None);
    }

    #[test]
    fn a_rollup_counts_outcomes_reasons_and_only_answered_latency() {
        let mut r = Rollup::default();
        r.add(Outcome::Up, None, 10.0);
        r.add(Outcome::Degraded, Some(Reason::Status), 900.0);
        r.add(Outcome::Down, Some(Reason::Timeout), 5000.0);
        r.add(Outcome::Down, None, 1.0);
        assert_eq!((r.checks, r.up, r.degraded, r.down), (4, 1, 1, 2));
        assert_eq!(r.failures_of(Reason::Timeout), 1);
        assert_eq!(r.failures_of(Reason::Other), 1);
        assert_eq!(r.failures.iter().sum::<u64>(), r.down);
        assert_eq!(
            (r.latency_min_ms, r.latency_max_ms),
            (Some(10.0), Some(900.0))
        );
        assert_eq!(r.latency_sum_ms, 910.0);
        assert_eq!(r.histogram.iter().sum::<u64>(), 2);
        assert_eq!(r.availability(), Some(0.5));
        assert_eq!(Rollup::default().availability(), None);
    }

    #[test]
    fn merging_equals_counting_everything_at_once() {
        let all = rollup_of(&[3.0, 40.0, 7.5, 0.2, 12_000.0]);
        let mut split = rollup_of(&[3.0, 40.0]);
        split.merge(&rollup_of(&[7.5, 0.2, 12_000.0]));
        assert_eq!(split, all);
        let mut empty = Rollup::default();
        empty.merge(&all);
        assert_eq!(empty, all);
    }

    fn record(target: &str, ts: i64, outcome: Outcome) -> ResultRecord {
        let mut check = CheckResult::tcp(target.into(), None, ts, Duration::from_millis(4), None);
        check.outcome = outcome;
        ResultRecord {
            id: uuid::Uuid::now_v7(),
            agent: "a".into(),
            vantage: "v".into(),
            check,
        }
    }

    #[test]
    fn a_batch_rolls_up_into_one_row_per_series_and_bucket_of_each_tier() {
        let day = 86_400_000i64;
        let records = [
            record("a:1", day + 1_000, Outcome::Up),
            record("a:1", day + 59_000, Outcome::Down),
            record("a:1", day + 61_000, Outcome::Up),
            record("b:1", day + 3_600_000, Outcome::Up),
        ];
        let tiers = roll_up(&records);
        let rows = |tier: Tier| &tiers.iter().find(|(t, _)| *t == tier).unwrap().1;
        let minute = rows(Tier::Minute);
        assert_eq!(minute.len(), 3);
        assert_eq!(minute[0].start_unix_ms, day);
        assert_eq!((minute[0].rollup.checks, minute[0].rollup.down), (2, 1));
        assert_eq!(rows(Tier::Hour).len(), 2);
        let daily = rows(Tier::Day);
        assert_eq!(daily.len(), 2);
        assert_eq!(daily[0].rollup.checks, 3);
        assert_eq!(coarsen(minute, Tier::Day), *daily);
    }

    #[test]
    fn a_window_is_covered_by_the_coarsest_aligned_buckets() {
        let (m, h, d) = (60_000i64, 3_600_000i64, 86_400_000i64);
        assert_eq!(cover(0, 0), vec![]);
        assert_eq!(cover(0, 30 * m), vec![(Tier::Minute, 0, 30 * m)]);
        assert_eq!(cover(0, 3 * h), vec![(Tier::Hour, 0, 3 * h)]);
        let from = 10 * d + 22 * h + 30 * m;
        let until = 13 * d + 2 * h + 15 * m + 10_000;
        assert_eq!(
            cover(from, until),
            vec![
                (Tier::Minute, from, 10 * d + 23 * h),
                (Tier::Hour, 10 * d + 23 * h, 11 * d),
                (Tier::Day, 11 * d, 13 * d),
                (Tier::Hour, 13 * d, 13 * d + 2 * h),
                (Tier::Minute, 13 * d + 2 * h, 13 * d + 2 * h + 15 * m),
            ]
        );
        // Spans tile the minute-aligned window exactly.
        for (from, until) in [(5 * m + 1, 9 * d + 7), (0, 365 * d), (h - m, h + m)] {
            let spans = cover(from, until);
            let start = (from + m - 1).div_euclid(m) * m;
            assert_eq!(spans.first().unwrap().1, start);
            assert_eq!(spans.last().unwrap().2, until / m * m);
            assert!(spans.windows(2).all(|w| w[0].2 == w[1].1));
            assert!(
                spans
                    .iter()
                    .all(|(t, a, b)| a % t.millis() == 0 && b % t.millis() == 0)
            );
        }
    }
}

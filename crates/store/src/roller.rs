//! The roller: the roll-up tiers kept off the write path (issue 11's write rate, issue 13's
//! roll-ups).
//!
//! A write stores the raw rows and marks the minutes they fall in *pending* (one row per minute
//! a batch touches, in `rollup_pending`); it touches no roll-up, so ingest writes at the rate of
//! a plain `COPY`. The roller — run by the writer every few seconds (ingest, the SQLite sink)
//! and before every retention pass — takes each pending bucket that has ended: a minute is
//! recomputed whole from its raw rows, an hour from its minutes, a day from its hours, and the
//! stored figures are *replaced*. So a bucket rolled twice counts its records once, and so does
//! a record delivered twice (the raw rows hold it once). Rolling a bucket marks the next coarser
//! one pending. Each step is one transaction; a bucket that a write marked again after the
//! roller read it keeps its mark (the mark's version changed), so nothing written while the
//! roller works is left out.
//!
//! Readers never wait for the roller: a bucket that is pending, or holds a pending bucket of a
//! finer tier, is *stale* and is derived on read from the finer tier (from the raw rows for a
//! minute) — so reads are as fresh as the writes, at a bounded cost: the stale buckets are the
//! last minute or two, the open hour and the open day ([`plan_read`]).
//!
//! A pending bucket whose source retention has already dropped in part (a record older than the
//! raw retention arriving late, say) can't be recomputed whole: it is discarded and counted,
//! and the record stays raw until retention takes it ([`plan_rolls`]).

use crate::rollup::{RollupRow, Tier, coarsen, roll_up};
use crate::{RollupQuery, Series, StoreError, TimeRange};
use netvantage_core::ResultRecord;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

/// A bucket whose stored figures don't yet hold every record written into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingBucket {
    pub tier: Tier,
    pub start_unix_ms: i64,
    /// Bumped by every write that marks the bucket again.
    pub version: i64,
}

/// How far retention has dropped each tier's source: a bucket that starts before its source's
/// mark can't be recomputed whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunedUntil {
    pub raw: i64,
    pub minute: i64,
    pub hour: i64,
}

impl Default for PrunedUntil {
    fn default() -> Self {
        PrunedUntil {
            raw: i64::MIN,
            minute: i64::MIN,
            hour: i64::MIN,
        }
    }
}

impl PrunedUntil {
    /// The mark of the source `tier` is rolled from.
    fn of_source(&self, tier: Tier) -> i64 {
        match tier {
            Tier::Minute => self.raw,
            Tier::Hour => self.minute,
            Tier::Day => self.hour,
        }
    }

    /// Takes in a `(source, until)` row of `rollup_pruned`.
    pub(crate) fn set(&mut self, source: &str, until_unix_ms: i64) {
        match source {
            "raw" => self.raw = self.raw.max(until_unix_ms),
            "minute" => self.minute = self.minute.max(until_unix_ms),
            "hour" => self.hour = self.hour.max(until_unix_ms),
            _ => {}
        }
    }
}

/// One thing the roller does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Recompute the bucket from its source and replace what is stored.
    Roll(PendingBucket),
    /// Drop the mark: the source is no longer whole.
    Discard(PendingBucket),
}

/// What one roller pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rolled {
    /// Buckets recomputed, per tier in [`Tier::ALL`] order.
    pub rolled: [u64; 3],
    /// Pending buckets dropped because their source was pruned in part.
    pub discarded: u64,
    /// Buckets still pending afterwards (the open ones, and any beyond the pass's budget).
    pub left: u64,
}

impl Rolled {
    pub fn total(&self) -> u64 {
        self.rolled.iter().sum()
    }
}

/// The steps for the pending buckets that have ended by `now`, finest tier first and oldest
/// first within a tier (so an hour is rolled after its minutes), at most `budget` of them.
pub fn plan_rolls(
    pending: &[PendingBucket],
    now_unix_ms: i64,
    pruned: &PrunedUntil,
    budget: usize,
) -> Vec<Step> {
    let mut ended: Vec<&PendingBucket> = pending
        .iter()
        .filter(|b| b.start_unix_ms.saturating_add(b.tier.millis()) <= now_unix_ms)
        .collect();
    ended.sort_by_key(|b| (b.tier, b.start_unix_ms));
    ended
        .into_iter()
        .take(budget)
        .map(|b| {
            if b.start_unix_ms < pruned.of_source(b.tier) {
                Step::Discard(*b)
            } else {
                Step::Roll(*b)
            }
        })
        .collect()
}

/// Where a read of roll-ups takes its rows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The tier's stored rows whose bucket starts in the range.
    Stored(Tier),
    /// The raw rows whose time is in the range, rolled up on read.
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    pub source: Source,
    pub from_unix_ms: i64,
    pub until_unix_ms: i64,
}

/// The reads that give every bucket of `tier` starting in `[from, until)` with all its records:
/// the stored rows, except for stale buckets (pending themselves, or holding a pending bucket
/// of a finer tier), which come from the finer tier, recursively, down to the raw rows.
pub fn plan_read(
    tier: Tier,
    from_unix_ms: i64,
    until_unix_ms: i64,
    pending: &[PendingBucket],
) -> Vec<Read> {
    coalesce(stale_reads(tier, from_unix_ms, until_unix_ms, pending))
}

/// Adjacent reads of the same source as one (a day of pending minutes is one raw read).
fn coalesce(reads: Vec<Read>) -> Vec<Read> {
    let mut merged: Vec<Read> = Vec::with_capacity(reads.len());
    for read in reads {
        match merged.last_mut() {
            Some(last) if last.source == read.source && last.until_unix_ms == read.from_unix_ms => {
                last.until_unix_ms = read.until_unix_ms;
            }
            _ => merged.push(read),
        }
    }
    merged
}

fn stale_reads(
    tier: Tier,
    from_unix_ms: i64,
    until_unix_ms: i64,
    pending: &[PendingBucket],
) -> Vec<Read> {
    let stale: BTreeSet<i64> = pending
        .iter()
        .filter(|b| b.tier <= tier)
        .map(|b| tier.bucket_start(b.start_unix_ms))
        .filter(|start| (from_unix_ms..until_unix_ms).contains(start))
        .collect();
    let mut reads = Vec::new();
    let mut cursor = from_unix_ms;
    for start in stale {
        if cursor < start {
            reads.push(Read {
                source: Source::Stored(tier),
                from_unix_ms: cursor,
                until_unix_ms: start,
            });
        }
        let end = start + tier.millis();
        match tier.finer() {
            None => reads.push(Read {
                source: Source::Raw,
                from_unix_ms: start,
                until_unix_ms: end,
            }),
            Some(finer) => reads.extend(stale_reads(finer, start, end, pending)),
        }
        cursor = end;
    }
    if cursor < until_unix_ms {
        reads.push(Read {
            source: Source::Stored(tier),
            from_unix_ms: cursor,
            until_unix_ms,
        });
    }
    reads
}

/// What a backend gives the reads: its pending marks, its stored rows, its raw rows.
pub(crate) trait Parts: Sync {
    fn pending(&self) -> impl Future<Output = Result<Vec<PendingBucket>, StoreError>> + Send;

    /// The tier's rows as stored ([`RollupQuery`] as [`crate::Store::rollups`] takes it).
    fn stored(
        &self,
        query: &RollupQuery,
    ) -> impl Future<Output = Result<Vec<RollupRow>, StoreError>> + Send;

    fn raw(
        &self,
        range: TimeRange,
        target: Option<&str>,
    ) -> impl Future<Output = Result<Vec<ResultRecord>, StoreError>> + Send;

    fn stored_series(&self) -> impl Future<Output = Result<Vec<Series>, StoreError>> + Send;
}

/// [`crate::Store::rollups`] as fresh as the writes: [`plan_read`]'s reads, merged.
pub(crate) async fn fresh_rollups<P: Parts>(
    parts: &P,
    query: &RollupQuery,
) -> Result<Vec<RollupRow>, StoreError> {
    let pending = parts.pending().await?;
    let range = query.range;
    let reads = plan_read(
        query.tier,
        range.from_unix_ms,
        range.until_unix_ms,
        &pending,
    );
    let target = query.target.as_deref();
    let mut rows = Vec::new();
    let mut finer = Vec::new();
    for read in reads {
        let span = TimeRange {
            from_unix_ms: read.from_unix_ms,
            until_unix_ms: read.until_unix_ms,
        };
        match read.source {
            Source::Stored(tier) => {
                let stored = parts
                    .stored(&RollupQuery {
                        tier,
                        range: span,
                        target: query.target.clone(),
                        summed: query.summed && tier == query.tier,
                    })
                    .await?;
                if tier == query.tier {
                    rows.extend(stored);
                } else {
                    finer.extend(stored);
                }
            }
            Source::Raw => {
                let records = parts.raw(span, target).await?;
                if let Some((_, minutes)) = roll_up(&records)
                    .into_iter()
                    .find(|(tier, _)| *tier == Tier::Minute)
                {
                    finer.extend(minutes);
                }
            }
        }
    }
    rows.extend(coarsen(&finer, query.tier));
    if query.summed {
        Ok(summed_per_series(rows))
    } else {
        rows.sort_by(|a, b| {
            (&a.target, &a.vantage, a.start_unix_ms).cmp(&(&b.target, &b.vantage, b.start_unix_ms))
        });
        Ok(rows)
    }
}

/// One row per series, its figures added up, dated by its first bucket.
fn summed_per_series(rows: Vec<RollupRow>) -> Vec<RollupRow> {
    let mut sums: BTreeMap<(String, String), RollupRow> = BTreeMap::new();
    for row in rows {
        match sums.entry((row.target.clone(), row.vantage.clone())) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(row);
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                let sum = slot.get_mut();
                sum.start_unix_ms = sum.start_unix_ms.min(row.start_unix_ms);
                sum.rollup.merge(&row.rollup);
            }
        }
    }
    sums.into_values().collect()
}

/// [`crate::Store::series`] as fresh as the writes: the stored latest checks, updated by the
/// records of the minutes the roller hasn't taken yet.
pub(crate) async fn fresh_series<P: Parts>(parts: &P) -> Result<Vec<Series>, StoreError> {
    let pending = parts.pending().await?;
    let mut series: BTreeMap<(String, String), Series> = parts
        .stored_series()
        .await?
        .into_iter()
        .map(|s| ((s.target.clone(), s.vantage.clone()), s))
        .collect();
    let minutes = pending
        .iter()
        .filter(|b| b.tier == Tier::Minute)
        .map(|b| Read {
            source: Source::Raw,
            from_unix_ms: b.start_unix_ms,
            until_unix_ms: b.start_unix_ms + Tier::Minute.millis(),
        });
    let mut minutes: Vec<Read> = minutes.collect();
    minutes.sort_by_key(|r| r.from_unix_ms);
    for read in coalesce(minutes) {
        let span = TimeRange {
            from_unix_ms: read.from_unix_ms,
            until_unix_ms: read.until_unix_ms,
        };
        let records = parts.raw(span, None).await?;
        for r in crate::rollup_sql::latest_per_series(&records) {
            let key = (r.check.target.clone(), r.vantage.clone());
            if series
                .get(&key)
                .is_none_or(|s| s.last_unix_ms <= r.check.ts_unix_ms)
            {
                series.insert(key, series_of_record(r));
            }
        }
    }
    Ok(series.into_values().collect())
}

fn series_of_record(r: &ResultRecord) -> Series {
    let http = r.check.http.as_ref();
    Series {
        target: r.check.target.clone(),
        vantage: r.vantage.clone(),
        kind: r.check.kind,
        domain: http.map(|h| h.domain.clone()),
        endpoint: http.map(|h| h.name.clone()),
        last_unix_ms: r.check.ts_unix_ms,
        last_outcome: r.check.outcome,
        last_reason: r.check.reason,
    }
}

/// What a backend does for the roller, each step in a transaction of its own.
pub(crate) trait Steps: Send {
    fn pending(&self) -> impl Future<Output = Result<Vec<PendingBucket>, StoreError>> + Send;

    fn pruned_until(&self) -> impl Future<Output = Result<PrunedUntil, StoreError>> + Send;

    /// Recomputes the bucket from its source, replaces the stored figures (and, for a minute,
    /// the series' latest checks), unmarks it unless marked again, marks the coarser bucket.
    fn roll(
        &mut self,
        bucket: PendingBucket,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Unmarks the bucket unless marked again.
    fn unmark(
        &mut self,
        bucket: PendingBucket,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How many buckets one pass of [`roll_pending`] takes at most: a writer that was away for
/// hours catches up over several passes instead of stopping its writes for long.
pub const ROLL_BUDGET: usize = 120;

/// Rolls the pending buckets that ended by `now`, at most `budget`: minutes first, then the
/// hours and days that rolling them marked.
pub(crate) async fn roll_pending<S: Steps>(
    steps: &mut S,
    now_unix_ms: i64,
    budget: usize,
) -> Result<Rolled, StoreError> {
    let pruned = steps.pruned_until().await?;
    let mut rolled = Rolled::default();
    let mut left = budget;
    // Minutes mark hours, hours mark days: three rounds see a minute through to its day.
    for _ in 0..Tier::ALL.len() {
        let pending = steps.pending().await?;
        let plan = plan_rolls(&pending, now_unix_ms, &pruned, left);
        if plan.is_empty() {
            break;
        }
        for step in plan {
            left -= 1;
            match step {
                Step::Roll(bucket) => {
                    steps.roll(bucket).await?;
                    rolled.rolled[tier_index(bucket.tier)] += 1;
                }
                Step::Discard(bucket) => {
                    tracing::warn!(
                        tier = bucket.tier.as_str(),
                        start_unix_ms = bucket.start_unix_ms,
                        "records arrived after retention dropped the rest of their bucket; \
                         they stay raw and are not rolled up"
                    );
                    steps.unmark(bucket).await?;
                    rolled.discarded += 1;
                }
            }
        }
        if left == 0 {
            break;
        }
    }
    rolled.left = steps.pending().await?.len() as u64;
    Ok(rolled)
}

fn tier_index(tier: Tier) -> usize {
    Tier::ALL.iter().position(|t| *t == tier).unwrap_or(0)
}

/// The distinct minutes `records` fall in: what a write marks pending.
pub(crate) fn minutes_of<'r>(records: impl IntoIterator<Item = &'r ResultRecord>) -> Vec<i64> {
    let minutes: BTreeSet<i64> = records
        .into_iter()
        .map(|r| Tier::Minute.bucket_start(r.check.ts_unix_ms))
        .collect();
    minutes.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;
    const H: i64 = 3_600_000;
    const D: i64 = 86_400_000;

    fn pending(tier: Tier, start: i64) -> PendingBucket {
        PendingBucket {
            tier,
            start_unix_ms: start,
            version: 1,
        }
    }

    fn stored(tier: Tier, from: i64, until: i64) -> Read {
        Read {
            source: Source::Stored(tier),
            from_unix_ms: from,
            until_unix_ms: until,
        }
    }

    fn raw(from: i64, until: i64) -> Read {
        Read {
            source: Source::Raw,
            from_unix_ms: from,
            until_unix_ms: until,
        }
    }

    #[test]
    fn without_pending_buckets_a_read_is_the_stored_rows() {
        assert_eq!(
            plan_read(Tier::Day, 0, 90 * D, &[]),
            vec![stored(Tier::Day, 0, 90 * D)]
        );
    }

    #[test]
    fn a_pending_minute_makes_its_hour_and_day_come_from_finer_tiers() {
        // Day 3, hour 5, minute 7 is pending: the day is read from its hours, that hour from
        // its minutes, and that minute from the raw rows.
        let at = 3 * D + 5 * H + 7 * M;
        let reads = plan_read(Tier::Day, 0, 10 * D, &[pending(Tier::Minute, at)]);
        assert_eq!(
            reads,
            vec![
                stored(Tier::Day, 0, 3 * D),
                stored(Tier::Hour, 3 * D, 3 * D + 5 * H),
                stored(Tier::Minute, 3 * D + 5 * H, at),
                raw(at, at + M),
                stored(Tier::Minute, at + M, 3 * D + 6 * H),
                stored(Tier::Hour, 3 * D + 6 * H, 4 * D),
                stored(Tier::Day, 4 * D, 10 * D),
            ]
        );
    }

    #[test]
    fn a_pending_hour_is_read_from_its_minutes_and_leaves_finer_reads_alone() {
        let reads = plan_read(Tier::Hour, 0, 3 * H, &[pending(Tier::Hour, H)]);
        assert_eq!(
            reads,
            vec![
                stored(Tier::Hour, 0, H),
                stored(Tier::Minute, H, 2 * H),
                stored(Tier::Hour, 2 * H, 3 * H),
            ]
        );
        // A pending day doesn't make its hours stale.
        assert_eq!(
            plan_read(Tier::Hour, 0, 3 * H, &[pending(Tier::Day, 0)]),
            vec![stored(Tier::Hour, 0, 3 * H)]
        );
    }

    #[test]
    fn neighbouring_pending_minutes_are_one_raw_read() {
        let marks: Vec<_> = (0..3).map(|i| pending(Tier::Minute, H + i * M)).collect();
        assert_eq!(
            plan_read(Tier::Hour, 0, 2 * H, &marks),
            vec![
                stored(Tier::Hour, 0, H),
                raw(H, H + 3 * M),
                stored(Tier::Minute, H + 3 * M, 2 * H),
            ]
        );
    }

    #[test]
    fn pending_buckets_outside_the_range_change_nothing() {
        let marks = [pending(Tier::Minute, 50 * D), pending(Tier::Hour, 2 * D)];
        assert_eq!(
            plan_read(Tier::Hour, 0, D, &marks),
            vec![stored(Tier::Hour, 0, D)]
        );
    }

    #[test]
    fn the_roller_takes_ended_buckets_finest_and_oldest_first_within_its_budget() {
        let marks = [
            pending(Tier::Hour, 0),
            pending(Tier::Minute, 2 * M),
            pending(Tier::Minute, M),
            // Still open at `now`.
            pending(Tier::Minute, 2 * H),
            pending(Tier::Day, 0),
        ];
        let now = 2 * H + 30_000;
        let rolls = |budget| plan_rolls(&marks, now, &PrunedUntil::default(), budget);
        assert_eq!(
            rolls(10),
            vec![
                Step::Roll(marks[2]),
                Step::Roll(marks[1]),
                Step::Roll(marks[0]),
            ],
            "the day has not ended"
        );
        assert_eq!(rolls(1), vec![Step::Roll(marks[2])]);
    }

    #[test]
    fn a_bucket_whose_source_was_pruned_is_discarded_not_rolled() {
        let marks = [pending(Tier::Minute, 5 * M), pending(Tier::Hour, H)];
        let pruned = PrunedUntil {
            raw: 10 * M,
            ..PrunedUntil::default()
        };
        assert_eq!(
            plan_rolls(&marks, 3 * H, &pruned, 10),
            vec![Step::Discard(marks[0]), Step::Roll(marks[1])]
        );
    }
}

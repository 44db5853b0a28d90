//! The roller: the roll-up tiers kept off the write path (issue 11's write rate, issue 13's
//! roll-ups).
//!
//! A write stores the raw rows, and marks the hours they fall in *pending* (one row per hour a
//! batch touches, in `rollup_pending`); it writes no roll-up, so ingest keeps the rate of a
//! plain `COPY`. The roller — run by the writer every few seconds (ingest, the SQLite sink) and
//! before every retention pass — takes each pending bucket that has ended: an hour is
//! recomputed whole from its raw rows (one `INSERT … SELECT … GROUP BY` in the database), a day
//! from its hours, and the stored figures are *replaced*. So a bucket rolled twice counts its
//! records once, and so does a record delivered twice (the raw rows hold it once). Rolling an
//! hour marks its day pending. Each step is one transaction; a bucket that a write marked again
//! after the roller read it keeps its mark (the mark's version changed), so nothing written
//! while the roller works is left out.
//!
//! Minutes are the raw rows' own detail: while the raw rows last, a minute is read from them;
//! the minute tier is written by retention, from the raw rows it is about to drop, and keeps
//! them for its own, longer retention ([`PrunedUntil::raw`] says where the raw rows begin).
//!
//! Readers never wait for the roller: a bucket that is pending, or holds a pending bucket of a
//! finer tier, is *stale* and is derived on read from the finer tier (an hour from its raw
//! rows) — so reads are as fresh as the writes, at a bounded cost: the open hour and day, and
//! whatever the roller hasn't reached ([`plan_read`]).
//!
//! A pending bucket whose source retention has already dropped in part (a record older than the
//! raw retention arriving late, say) can't be recomputed whole: it is discarded and counted,
//! and the record stays raw until retention takes it ([`plan_rolls`]).

use crate::rollup::{RollupRow, Tier, coarsen, roll_up};
use crate::{RollupQuery, StoreError, TimeRange};
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
    /// The mark of the source `tier` is rolled from: hours from the raw rows, days from the
    /// hours. (A minute mark, left by an earlier build, only passes its mark on to its hour.)
    fn of_source(&self, tier: Tier) -> i64 {
        match tier {
            Tier::Minute => i64::MIN,
            Tier::Hour => self.raw,
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

/// Where the raw rows are, for [`plan_read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawExtent {
    /// Retention dropped the raw rows before this ([`PrunedUntil::raw`]): an hour that starts
    /// earlier can't be derived from them.
    pub pruned_until: i64,
    /// The first raw row's minute (`i64::MAX` without any): minutes before it, or before
    /// `pruned_until`, are read from the minute tier.
    pub first_minute: i64,
}

impl RawExtent {
    /// Raw rows everywhere: nothing pruned, the first one at the beginning of time.
    pub const EVERYWHERE: RawExtent = RawExtent {
        pruned_until: i64::MIN,
        first_minute: i64::MIN,
    };

    fn minutes_from(self) -> i64 {
        self.pruned_until.max(self.first_minute)
    }
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

/// The reads that give every bucket of `tier` starting in `[from, until)` with all its records.
/// Minutes come from the raw rows from `raw_from` on (where retention hasn't dropped them) and
/// from the stored minute tier before. An hour or day comes from its stored row, unless it is
/// stale (pending itself, or holding a pending bucket of a finer tier): then an hour comes from
/// its raw rows, a day from its hours, recursively.
pub fn plan_read(
    tier: Tier,
    from_unix_ms: i64,
    until_unix_ms: i64,
    pending: &[PendingBucket],
    raw: RawExtent,
) -> Vec<Read> {
    coalesce(stale_reads(tier, from_unix_ms, until_unix_ms, pending, raw))
}

/// Adjacent reads of the same source as one (a day of stale hours is one raw read).
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

fn read(source: Source, from_unix_ms: i64, until_unix_ms: i64) -> Option<Read> {
    (from_unix_ms < until_unix_ms).then_some(Read {
        source,
        from_unix_ms,
        until_unix_ms,
    })
}

fn stale_reads(
    tier: Tier,
    from_unix_ms: i64,
    until_unix_ms: i64,
    pending: &[PendingBucket],
    raw: RawExtent,
) -> Vec<Read> {
    if tier == Tier::Minute {
        let split = raw
            .minutes_from()
            .clamp(from_unix_ms, until_unix_ms.max(from_unix_ms));
        return [
            read(Source::Stored(Tier::Minute), from_unix_ms, split),
            read(Source::Raw, split, until_unix_ms),
        ]
        .into_iter()
        .flatten()
        .collect();
    }
    let stale: BTreeSet<i64> = pending
        .iter()
        .filter(|b| b.tier <= tier)
        .map(|b| tier.bucket_start(b.start_unix_ms))
        .filter(|start| (from_unix_ms..until_unix_ms).contains(start))
        // An hour whose raw rows are gone can't be derived: its stored row is all there is.
        .filter(|start| tier != Tier::Hour || *start >= raw.pruned_until)
        .collect();
    let mut reads = Vec::new();
    let mut cursor = from_unix_ms;
    for start in stale {
        reads.extend(read(Source::Stored(tier), cursor, start));
        let end = start + tier.millis();
        match tier {
            Tier::Hour => reads.extend(read(Source::Raw, start, end)),
            _ => reads.extend(stale_reads(Tier::Hour, start, end, pending, raw)),
        }
        cursor = end;
    }
    reads.extend(read(Source::Stored(tier), cursor, until_unix_ms));
    reads
}

/// What a backend gives the reads: its pending marks, its stored rows, its raw rows.
pub(crate) trait Parts: Sync {
    fn pending(&self) -> impl Future<Output = Result<Vec<PendingBucket>, StoreError>> + Send;

    /// Where the raw rows are.
    fn raw_extent(&self) -> impl Future<Output = Result<RawExtent, StoreError>> + Send;

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
}

/// [`crate::Store::rollups`] as fresh as the writes: [`plan_read`]'s reads, merged.
pub(crate) async fn fresh_rollups<P: Parts>(
    parts: &P,
    query: &RollupQuery,
) -> Result<Vec<RollupRow>, StoreError> {
    let pending = parts.pending().await?;
    let raw = parts.raw_extent().await?;
    let range = query.range;
    let reads = plan_read(
        query.tier,
        range.from_unix_ms,
        range.until_unix_ms,
        &pending,
        raw,
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

/// What a backend does for the roller, each step in a transaction of its own.
pub(crate) trait Steps: Parts + Send {
    fn pruned_until(&self) -> impl Future<Output = Result<PrunedUntil, StoreError>> + Send;

    /// Recomputes the bucket from its source, replaces the stored figures, unmarks it unless
    /// marked again, marks the coarser bucket.
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
    // Hours mark days: rounds until a pass has nothing ended left (three at most).
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

/// The raw rows whose minutes retention writes to the minute tier as it drops the raw rows
/// before `below`: those not dropped by an earlier pass (`raw_pruned_until`), as far back as
/// the minute tier itself keeps (`retention`). `None`: nothing to keep.
pub(crate) fn minutes_to_keep(
    raw_pruned_until: i64,
    retention: &crate::Retention,
    now_unix_ms: i64,
    below: i64,
) -> Option<TimeRange> {
    let kept = retention.minute_ms.map_or(i64::MIN, |keep| {
        crate::rollup_sql::first_kept_start(Tier::Minute, now_unix_ms, keep)
    });
    let from = raw_pruned_until.max(kept).max(0);
    (from < below).then_some(TimeRange {
        from_unix_ms: from,
        until_unix_ms: below,
    })
}

/// The distinct hours `records` fall in: what a write marks pending.
pub(crate) fn hours_of<'r>(records: impl IntoIterator<Item = &'r ResultRecord>) -> Vec<i64> {
    let hours: BTreeSet<i64> = records
        .into_iter()
        .map(|r| Tier::Hour.bucket_start(r.check.ts_unix_ms))
        .collect();
    hours.into_iter().collect()
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

    const NONE_PRUNED: RawExtent = RawExtent::EVERYWHERE;

    fn pruned_at(at: i64) -> RawExtent {
        RawExtent {
            pruned_until: at,
            first_minute: i64::MIN,
        }
    }

    #[test]
    fn without_pending_buckets_a_read_is_the_stored_rows() {
        assert_eq!(
            plan_read(Tier::Day, 0, 90 * D, &[], NONE_PRUNED),
            vec![stored(Tier::Day, 0, 90 * D)]
        );
    }

    #[test]
    fn minutes_come_from_the_raw_rows_where_retention_left_them() {
        assert_eq!(
            plan_read(Tier::Minute, 0, 2 * D, &[], pruned_at(D)),
            vec![stored(Tier::Minute, 0, D), raw(D, 2 * D)]
        );
        assert_eq!(
            plan_read(Tier::Minute, 0, H, &[], NONE_PRUNED),
            vec![raw(0, H)]
        );
        assert_eq!(
            plan_read(Tier::Minute, 0, H, &[], pruned_at(5 * D)),
            vec![stored(Tier::Minute, 0, H)]
        );
        // Minutes before the first raw row ever written (seeded ones) are the stored ones.
        let first = RawExtent {
            pruned_until: i64::MIN,
            first_minute: 30 * M,
        };
        assert_eq!(
            plan_read(Tier::Minute, 0, H, &[], first),
            vec![stored(Tier::Minute, 0, 30 * M), raw(30 * M, H)]
        );
    }

    #[test]
    fn a_pending_hour_comes_from_its_raw_rows_and_its_day_from_its_hours() {
        let at = 3 * D + 5 * H;
        let reads = plan_read(
            Tier::Day,
            0,
            10 * D,
            &[pending(Tier::Hour, at)],
            NONE_PRUNED,
        );
        assert_eq!(
            reads,
            vec![
                stored(Tier::Day, 0, 3 * D),
                stored(Tier::Hour, 3 * D, at),
                raw(at, at + H),
                stored(Tier::Hour, at + H, 4 * D),
                stored(Tier::Day, 4 * D, 10 * D),
            ]
        );
    }

    #[test]
    fn a_pending_day_is_read_from_its_hours_and_leaves_hour_reads_alone() {
        assert_eq!(
            plan_read(Tier::Day, 0, 2 * D, &[pending(Tier::Day, D)], NONE_PRUNED),
            vec![stored(Tier::Day, 0, D), stored(Tier::Hour, D, 2 * D)]
        );
        assert_eq!(
            plan_read(Tier::Hour, 0, 3 * H, &[pending(Tier::Day, 0)], NONE_PRUNED),
            vec![stored(Tier::Hour, 0, 3 * H)]
        );
    }

    #[test]
    fn neighbouring_pending_hours_are_one_raw_read() {
        let marks: Vec<_> = (0..3).map(|i| pending(Tier::Hour, D + i * H)).collect();
        assert_eq!(
            plan_read(Tier::Day, 0, 2 * D, &marks, NONE_PRUNED),
            vec![
                stored(Tier::Day, 0, D),
                raw(D, D + 3 * H),
                stored(Tier::Hour, D + 3 * H, 2 * D),
            ]
        );
    }

    #[test]
    fn an_hour_whose_raw_rows_are_gone_is_read_as_stored() {
        assert_eq!(
            plan_read(
                Tier::Hour,
                0,
                3 * H,
                &[pending(Tier::Hour, H)],
                pruned_at(2 * H)
            ),
            vec![stored(Tier::Hour, 0, 3 * H)]
        );
    }

    #[test]
    fn pending_buckets_outside_the_range_change_nothing() {
        let marks = [pending(Tier::Hour, 50 * D), pending(Tier::Day, 2 * D)];
        assert_eq!(
            plan_read(Tier::Hour, 0, D, &marks, NONE_PRUNED),
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
    fn retention_keeps_the_minutes_of_what_it_drops_once_and_only_as_far_back_as_minutes_last() {
        let retention = crate::Retention::default();
        let now = 100 * D;
        // First pass: from as far back as the minute tier keeps (30 days).
        let first = minutes_to_keep(i64::MIN, &retention, now, now - 7 * D).unwrap();
        assert_eq!(first.from_unix_ms, now - 30 * D - M + 1);
        assert_eq!(first.until_unix_ms, now - 7 * D);
        // A later pass starts where the earlier one stopped.
        let next = minutes_to_keep(now - 7 * D, &retention, now + H, now + H - 7 * D).unwrap();
        assert_eq!(next.from_unix_ms, now - 7 * D);
        // Nothing new to drop.
        assert_eq!(
            minutes_to_keep(now - 7 * D, &retention, now, now - 7 * D),
            None
        );
    }

    #[test]
    fn a_bucket_whose_source_was_pruned_is_discarded_not_rolled() {
        let marks = [pending(Tier::Hour, 0), pending(Tier::Hour, 2 * H)];
        let pruned = PrunedUntil {
            raw: H + 10 * M,
            ..PrunedUntil::default()
        };
        assert_eq!(
            plan_rolls(&marks, 4 * H, &pruned, 10),
            vec![Step::Discard(marks[0]), Step::Roll(marks[1])]
        );
    }
}

//! The steps that keep final hours packed ([`crate::pack`]), written once over what each
//! backend gives ([`PackParts`]), as the roller's are ([`crate::roller::Parts`]).
//!
//! - [`pack_final`]: retention packs, one span at a time, the live buckets of every span (a day
//!   of hours, an hour of minutes) that ended before the raw rows' pruned mark, replacing them
//!   with one row per series in the span's transaction.
//! - [`add`]: buckets written for such spans (seeding a history) go packed at once.
//! - [`stored`]: a read of the tier merges the packed buckets in its range with the live rows.
//! - [`prune`]: the tier's retention drops the packed rows before its cutoff, and trims the day
//!   the cutoff falls in, so it drops exactly what the live tier's retention drops.
//!
//! The day tier's roll from the hours (`rollup_sql::roll_from_finer`) reads the live hours
//! only: a day is rolled when it ends, long before its hours are final, and never again after
//! (a record older than the raw retention is refused, so nothing marks it pending).

use crate::pack::{self, PackedRow};
use crate::rollup::{RollupRow, Tier};
use crate::{RollupQuery, StoreError, TimeRange};
use std::collections::BTreeSet;

/// At most this many spans packed per retention pass and tier (each in its own transaction):
/// more than a month of hours of minutes and a year and a month of days of hours, so one pass
/// catches up any backlog a default retention leaves.
pub const PACK_SPANS_PER_PASS: usize = 1_000;

/// What a backend gives the packing steps.
pub(crate) trait PackParts: Sync {
    /// The live rows `query` asks for (the backend's `SELECT` of the live tier, without the
    /// packed rows).
    fn live(
        &self,
        query: &RollupQuery,
    ) -> impl Future<Output = Result<Vec<RollupRow>, StoreError>> + Send;

    /// The packed rows of `tier` whose span starts in `spans`, of one target or all.
    fn packed_rows(
        &self,
        tier: Tier,
        spans: TimeRange,
        target: Option<&str>,
    ) -> impl Future<Output = Result<Vec<PackedRow>, StoreError>> + Send;

    /// The start of the oldest live bucket of `tier`.
    fn oldest_live(
        &self,
        tier: Tier,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// The start of the oldest packed span of `tier`.
    fn oldest_packed(
        &self,
        tier: Tier,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// In one transaction: writes `rows` (each replacing the stored row of its key; one with
    /// empty `data` deletes it) and deletes the live rows of `tier` in `clear`.
    fn write_packed(
        &mut self,
        tier: Tier,
        rows: Vec<PackedRow>,
        clear: Option<TimeRange>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

fn decode_error(e: pack::PackError) -> StoreError {
    StoreError::BadRow {
        location: "the packed roll-ups".into(),
        row: "a packed row".into(),
        why: e.to_string(),
    }
}

/// Packs the live rows of `tier` of the spans that ended by `until_unix_ms`, oldest first, at
/// most [`PACK_SPANS_PER_PASS`] spans. Returns the spans packed.
pub(crate) async fn pack_final<P: PackParts>(
    parts: &mut P,
    tier: Tier,
    until_unix_ms: i64,
) -> Result<usize, StoreError> {
    let Some(span) = pack::span_of(tier) else {
        return Ok(0);
    };
    let mut spans = 0;
    while spans < PACK_SPANS_PER_PASS {
        let Some(oldest) = parts.oldest_live(tier).await? else {
            break;
        };
        let start = span.bucket_start(oldest);
        let day = TimeRange {
            from_unix_ms: start,
            until_unix_ms: start + span.millis(),
        };
        if day.until_unix_ms > until_unix_ms {
            break;
        }
        let live = parts
            .live(&RollupQuery {
                tier,
                range: day,
                target: None,
                summed: false,
            })
            .await?;
        let first_span = TimeRange {
            from_unix_ms: start,
            until_unix_ms: start + 1,
        };
        let existing = parts.packed_rows(tier, first_span, None).await?;
        let packed = pack::pack(tier, &live, &existing).map_err(decode_error)?;
        parts.write_packed(tier, packed, Some(day)).await?;
        spans += 1;
    }
    Ok(spans)
}

/// Whether `rows` of `tier` go packed: their day ended by `final_until_unix_ms` (the raw rows'
/// pruned mark). The rest go to the live tier.
pub(crate) fn split_final(
    tier: Tier,
    rows: &[RollupRow],
    final_until_unix_ms: i64,
) -> (Vec<RollupRow>, Vec<RollupRow>) {
    let Some(span) = pack::span_of(tier) else {
        return (Vec::new(), rows.to_vec());
    };
    rows.iter()
        .cloned()
        .partition(|r| span.bucket_start(r.start_unix_ms) + span.millis() <= final_until_unix_ms)
}

/// Adds `rows` (final, see [`split_final`]) to the packed rows of their spans.
pub(crate) async fn add<P: PackParts>(
    parts: &mut P,
    tier: Tier,
    rows: &[RollupRow],
) -> Result<(), StoreError> {
    let Some(span) = pack::span_of(tier) else {
        return Ok(());
    };
    if rows.is_empty() {
        return Ok(());
    }
    let targets: BTreeSet<&str> = rows.iter().map(|r| r.target.as_str()).collect();
    let spans = TimeRange {
        from_unix_ms: rows
            .iter()
            .map(|r| span.bucket_start(r.start_unix_ms))
            .min()
            .unwrap_or(0),
        until_unix_ms: rows.iter().map(|r| r.start_unix_ms).max().unwrap_or(0) + 1,
    };
    let mut existing = Vec::new();
    for target in targets {
        existing.extend(parts.packed_rows(tier, spans, Some(target)).await?);
    }
    let packed = pack::pack(tier, rows, &existing).map_err(decode_error)?;
    parts.write_packed(tier, packed, None).await
}

/// A read of the stored rows (`live`: what the backend's `SELECT` of the live tier gave),
/// with the packed buckets in its range merged in.
pub(crate) async fn stored<P: PackParts>(
    parts: &P,
    query: &RollupQuery,
    live: Vec<RollupRow>,
) -> Result<Vec<RollupRow>, StoreError> {
    if pack::span_of(query.tier).is_none() {
        return Ok(live);
    }
    let spans = pack::spans_touched(query.tier, query.range);
    let packed = parts
        .packed_rows(query.tier, spans, query.target.as_deref())
        .await?;
    pack::combine(query.tier, live, &packed, query.range, query.summed).map_err(decode_error)
}

/// The tier's retention over its packed rows: every bucket before `below` goes. Returns the
/// buckets dropped.
pub(crate) async fn prune<P: PackParts>(
    parts: &mut P,
    tier: Tier,
    below: i64,
) -> Result<u64, StoreError> {
    let Some(span) = pack::span_of(tier) else {
        return Ok(0);
    };
    let mut dropped = 0;
    // Day by day from the oldest: each day's rows in one transaction (never one long DELETE).
    // Bounded: each pass drops the oldest day whole, or trims the day `below` falls in, last.
    while let Some(first) = parts.oldest_packed(tier).await? {
        if first >= below {
            break;
        }
        let day = TimeRange {
            from_unix_ms: first,
            until_unix_ms: first + 1,
        };
        let mut changed = Vec::new();
        for row in parts.packed_rows(tier, day, None).await? {
            let buckets = pack::unpack(tier, &row).map_err(decode_error)?;
            let (gone, kept): (Vec<RollupRow>, Vec<RollupRow>) =
                buckets.into_iter().partition(|b| b.start_unix_ms < below);
            if gone.is_empty() {
                continue;
            }
            dropped += gone.len() as u64;
            let data = match pack::pack(tier, &kept, &[]).map_err(decode_error)?.pop() {
                Some(packed) => packed.data,
                None => Vec::new(),
            };
            changed.push(PackedRow { data, ..row });
        }
        parts.write_packed(tier, changed, None).await?;
        if first + span.millis() > below {
            break;
        }
    }
    Ok(dropped)
}

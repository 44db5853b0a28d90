//! Final roll-ups kept packed: one row per series and span (a day of hours, an hour of
//! minutes) holding the span's buckets in a compact binary value, instead of one row per
//! bucket.
//!
//! Why: a year of hours is 8,760 rows per series. As rows of 46 figures, that cost SQLite about
//! 1.2 MB and PostgreSQL about 4.5 MB per series-year (PostgreSQL stores every figure in 8
//! bytes, plus a 24-byte tuple header and two index entries per row). Packed, a day of hours is
//! one row of about a kilobyte: under 1 MB per series-year in both (bench/RESULTS.md).
//!
//! When: an hour is final once the raw rows it was rolled from are gone (retention), because
//! the roller only ever recomputes a bucket from its raw rows and a record older than the raw
//! retention is refused; a minute is written by retention from the raw rows it drops, final
//! from the start. So retention packs the hours of every day, and the minutes of every hour,
//! before the raw rows' pruned mark, and writes of such buckets (seeding) go packed at once. Reads merge the
//! packed buckets with the live rows ([`combine`]); a bucket in both (an hour seeded again) is
//! added up, as the live tier's own upsert adds.
//!
//! Everything here is pure: the codec and the merge. The backends read and write the bytes.

use crate::TimeRange;
use crate::rollup::{BUCKETS, Rollup, RollupRow, Tier};
use netvantage_core::Reason;
use std::collections::BTreeMap;

/// The codec's version, the value's first byte: a store written by a later build with another
/// layout is an error on read, not a misreading.
const VERSION: u8 = 1;

/// One packed row: a series' buckets of `tier` within the span starting at `span_start_unix_ms`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PackedRow {
    pub target: String,
    pub vantage: String,
    pub span_start_unix_ms: i64,
    pub data: Vec<u8>,
}

/// A packed value that doesn't decode: a damaged store or a foreign writer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a packed roll-up value doesn't decode: {0}")]
pub struct PackError(pub &'static str);

/// The tiers kept packed, and the tier of their spans: hours a day a row, minutes an hour a
/// row. (Days are 365 rows a year and stay rows.)
pub(crate) fn span_of(tier: Tier) -> Option<Tier> {
    match tier {
        Tier::Minute => Some(Tier::Hour),
        Tier::Hour => Some(Tier::Day),
        Tier::Day => None,
    }
}

/// The table of `tier`'s packed rows.
pub(crate) fn table(tier: Tier) -> Option<&'static str> {
    match tier {
        Tier::Minute => Some("rollups_minute_packed"),
        Tier::Hour => Some("rollups_hour_packed"),
        Tier::Day => None,
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, PackError> {
        let (&b, rest) = self.bytes.split_first().ok_or(PackError("truncated"))?;
        self.bytes = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, PackError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(PackError("a number longer than 64 bits"))
    }

    fn float(&mut self) -> Result<f64, PackError> {
        if self.bytes.len() < 8 {
            return Err(PackError("truncated"));
        }
        let (head, rest) = self.bytes.split_at(8);
        self.bytes = rest;
        Ok(f64::from_le_bytes(head.try_into().expect("8 bytes")))
    }
}

/// Counts with a bit mask of the non-zero ones first, then those: most of a bucket's reasons
/// and histogram slots are zero.
fn put_sparse(out: &mut Vec<u8>, counts: &[u64]) {
    let mask = counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .fold(0u64, |mask, (i, _)| mask | 1 << i);
    put_varint(out, mask);
    for n in counts.iter().filter(|n| **n > 0) {
        put_varint(out, *n);
    }
}

fn read_sparse(reader: &mut Reader<'_>, counts: &mut [u64]) -> Result<(), PackError> {
    let mask = reader.varint()?;
    if counts.len() < 64 && mask >> counts.len() != 0 {
        return Err(PackError("a count beyond the known slots"));
    }
    for (i, slot) in counts.iter_mut().enumerate() {
        if mask & (1 << i) != 0 {
            *slot = reader.varint()?;
        }
    }
    Ok(())
}

/// The latency flags of a bucket whose one answered check's latency is its min, max and sum,
/// written once: a minute of a one-a-minute check, the minute tier's usual bucket (17 bytes
/// instead of 33).
const ONE_LATENCY: u8 = 8;

fn single_latency(r: &Rollup) -> Option<f64> {
    let latency = r.latency_min_ms?;
    let same = |x: f64| x.to_bits() == latency.to_bits();
    (r.histogram.iter().sum::<u64>() == 1
        && r.latency_max_ms.is_some_and(same)
        && same(r.latency_sum_ms))
    .then_some(latency)
}

/// The buckets of one span, by their index in it (0 = the span's first bucket).
pub(crate) fn encode(buckets: &BTreeMap<u32, Rollup>) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + buckets.len() * 40);
    out.push(VERSION);
    put_varint(&mut out, buckets.len() as u64);
    let mut previous = 0u32;
    for (&index, r) in buckets {
        put_varint(&mut out, u64::from(index - previous));
        previous = index;
        for n in [r.checks, r.up, r.degraded, r.down] {
            put_varint(&mut out, n);
        }
        put_sparse(&mut out, &r.failures);
        if let Some(latency) = single_latency(r) {
            out.push(ONE_LATENCY);
            out.extend_from_slice(&latency.to_le_bytes());
        } else {
            let flags = u8::from(r.latency_min_ms.is_some())
                | u8::from(r.latency_max_ms.is_some()) << 1
                | u8::from(r.latency_sum_ms != 0.0) << 2;
            out.push(flags);
            for x in [r.latency_min_ms, r.latency_max_ms].into_iter().flatten() {
                out.extend_from_slice(&x.to_le_bytes());
            }
            if r.latency_sum_ms != 0.0 {
                out.extend_from_slice(&r.latency_sum_ms.to_le_bytes());
            }
        }
        put_sparse(&mut out, &r.histogram);
    }
    out
}

/// The inverse of [`encode`].
pub(crate) fn decode(bytes: &[u8]) -> Result<BTreeMap<u32, Rollup>, PackError> {
    let mut reader = Reader { bytes };
    if reader.byte()? != VERSION {
        return Err(PackError("an unknown layout version"));
    }
    let count = reader.varint()?;
    let mut buckets = BTreeMap::new();
    let mut index = 0u64;
    for k in 0..count {
        let step = reader.varint()?;
        if k > 0 && step == 0 {
            return Err(PackError("a bucket twice"));
        }
        index += step;
        let index = u32::try_from(index).map_err(|_| PackError("a bucket index out of range"))?;
        let mut r = Rollup {
            checks: reader.varint()?,
            up: reader.varint()?,
            degraded: reader.varint()?,
            down: reader.varint()?,
            ..Rollup::default()
        };
        read_sparse(&mut reader, &mut r.failures)?;
        let flags = reader.byte()?;
        if flags == ONE_LATENCY {
            let latency = reader.float()?;
            r.latency_min_ms = Some(latency);
            r.latency_max_ms = Some(latency);
            r.latency_sum_ms = latency;
        } else if flags >> 3 != 0 {
            return Err(PackError("unknown latency flags"));
        }
        if flags & 1 != 0 {
            r.latency_min_ms = Some(reader.float()?);
        }
        if flags & 2 != 0 {
            r.latency_max_ms = Some(reader.float()?);
        }
        if flags & 4 != 0 {
            r.latency_sum_ms = reader.float()?;
        }
        read_sparse(&mut reader, &mut r.histogram)?;
        buckets.insert(index, r);
    }
    if !reader.bytes.is_empty() {
        return Err(PackError("bytes after the last bucket"));
    }
    Ok(buckets)
}

/// A packed row's buckets as rows of `tier`.
pub(crate) fn unpack(tier: Tier, row: &PackedRow) -> Result<Vec<RollupRow>, PackError> {
    Ok(decode(&row.data)?
        .into_iter()
        .map(|(index, rollup)| RollupRow {
            target: row.target.clone(),
            vantage: row.vantage.clone(),
            start_unix_ms: row.span_start_unix_ms + i64::from(index) * tier.millis(),
            rollup,
        })
        .collect())
}

/// Rows of `tier` packed per series and span, each span's buckets added to what `existing`
/// (packed rows of the same spans) held.
pub(crate) fn pack(
    tier: Tier,
    rows: &[RollupRow],
    existing: &[PackedRow],
) -> Result<Vec<PackedRow>, PackError> {
    let span = span_of(tier).expect("a packed tier");
    let mut spans: BTreeMap<(&str, &str, i64), BTreeMap<u32, Rollup>> = BTreeMap::new();
    for row in existing {
        let key = (
            row.target.as_str(),
            row.vantage.as_str(),
            row.span_start_unix_ms,
        );
        spans.insert(key, decode(&row.data)?);
    }
    for row in rows {
        let span_start = span.bucket_start(row.start_unix_ms);
        let index = ((row.start_unix_ms - span_start) / tier.millis()) as u32;
        spans
            .entry((row.target.as_str(), row.vantage.as_str(), span_start))
            .or_default()
            .entry(index)
            .or_default()
            .merge(&row.rollup);
    }
    Ok(spans
        .into_iter()
        .map(|((target, vantage, span_start), buckets)| PackedRow {
            target: target.to_string(),
            vantage: vantage.to_string(),
            span_start_unix_ms: span_start,
            data: encode(&buckets),
        })
        .collect())
}

/// Of packed rows, the buckets that start in `range`, as rows of `tier`.
fn buckets_in(
    tier: Tier,
    packed: &[PackedRow],
    range: TimeRange,
) -> Result<Vec<RollupRow>, PackError> {
    let mut rows = Vec::new();
    for row in packed {
        rows.extend(unpack(tier, row)?.into_iter().filter(|r| {
            r.start_unix_ms >= range.from_unix_ms && r.start_unix_ms < range.until_unix_ms
        }));
    }
    Ok(rows)
}

/// What a read of `tier` over `range` answers from the live rows (as the backend's `SELECT`
/// gave them: per bucket, or `summed` per series) and the packed rows of the spans it touches.
/// Without packed buckets in the range the live rows come back as they were.
pub(crate) fn combine(
    tier: Tier,
    live: Vec<RollupRow>,
    packed: &[PackedRow],
    range: TimeRange,
    summed: bool,
) -> Result<Vec<RollupRow>, PackError> {
    let unpacked = buckets_in(tier, packed, range)?;
    if unpacked.is_empty() {
        return Ok(live);
    }
    let mut merged: BTreeMap<(String, String, i64), Rollup> = BTreeMap::new();
    let mut firsts: BTreeMap<(String, String), i64> = BTreeMap::new();
    for row in live.into_iter().chain(unpacked) {
        let series = (row.target, row.vantage);
        let first = firsts.entry(series.clone()).or_insert(row.start_unix_ms);
        *first = (*first).min(row.start_unix_ms);
        let start = if summed { 0 } else { row.start_unix_ms };
        merged
            .entry((series.0, series.1, start))
            .or_default()
            .merge(&row.rollup);
    }
    Ok(merged
        .into_iter()
        .map(|((target, vantage, start), rollup)| {
            let start_unix_ms = if summed {
                firsts[&(target.clone(), vantage.clone())]
            } else {
                start
            };
            RollupRow {
                target,
                vantage,
                start_unix_ms,
                rollup,
            }
        })
        .collect())
}

/// The spans a read of `range` touches: packed rows whose span starts in this range.
pub(crate) fn spans_touched(tier: Tier, range: TimeRange) -> TimeRange {
    let span = span_of(tier).expect("a packed tier");
    let from = range.from_unix_ms;
    TimeRange {
        // A read from the start of time (`i64::MIN`) has no span start below it.
        from_unix_ms: from
            .checked_sub(from.rem_euclid(span.millis()))
            .unwrap_or(i64::MIN),
        until_unix_ms: range.until_unix_ms,
    }
}

/// Whether a reason list change would break the codec: its masks hold at most 64 slots.
const _: () = assert!(Reason::ALL.len() <= 64 && BUCKETS <= 64);

#[cfg(test)]
mod tests {
    use super::*;
    use netvantage_core::Outcome;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 86_400_000;

    fn rollup(seed: u64) -> Rollup {
        let mut r = Rollup::default();
        for k in 0..(seed % 7 + 1) {
            let latency = 0.25 + (seed * 7919 + k * 104_729) as f64 % 90_000.0 / 3.0;
            match (seed + k) % 5 {
                0 => r.add(
                    Outcome::Down,
                    Some(Reason::ALL[(k as usize) % Reason::ALL.len()]),
                    0.0,
                ),
                1 => r.add(Outcome::Degraded, None, latency),
                _ => r.add(Outcome::Up, None, latency),
            }
        }
        r
    }

    fn row(target: &str, start_unix_ms: i64, seed: u64) -> RollupRow {
        RollupRow {
            target: target.into(),
            vantage: "v".into(),
            start_unix_ms,
            rollup: rollup(seed),
        }
    }

    #[test]
    fn buckets_round_trip_through_the_codec() {
        for seed in 0..200u64 {
            let buckets: BTreeMap<u32, Rollup> = (0..24u32)
                .filter(|i| (seed >> (i % 8)) & 1 == 1 || *i == 23)
                .map(|i| (i, rollup(seed * 31 + u64::from(i))))
                .collect();
            let bytes = encode(&buckets);
            assert_eq!(decode(&bytes).unwrap(), buckets, "seed {seed}");
        }
        // Large counts and extreme floats survive too.
        let mut r = Rollup {
            checks: u64::MAX,
            up: 1 << 40,
            latency_min_ms: Some(f64::MIN_POSITIVE),
            latency_max_ms: Some(f64::MAX),
            latency_sum_ms: -0.5,
            ..Rollup::default()
        };
        r.histogram[BUCKETS - 1] = 3;
        let one = BTreeMap::from([(7u32, r)]);
        assert_eq!(decode(&encode(&one)).unwrap(), one);
        assert_eq!(decode(&encode(&BTreeMap::new())).unwrap(), BTreeMap::new());
    }

    #[test]
    fn a_day_of_hourly_checks_packs_into_about_a_kilobyte() {
        let buckets: BTreeMap<u32, Rollup> = (0..24u32)
            .map(|i| {
                let mut r = Rollup::default();
                for m in 0..60u64 {
                    r.add(Outcome::Up, None, 3.0 + (m * 37 % 50) as f64 / 7.0);
                }
                (i, r)
            })
            .collect();
        let bytes = encode(&buckets).len();
        assert!(
            (400..1200).contains(&bytes),
            "{bytes} bytes for a day of hours"
        );
    }

    #[test]
    fn an_hour_of_one_check_a_minute_packs_into_about_a_kilobyte() {
        let buckets: BTreeMap<u32, Rollup> = (0..60u32)
            .map(|i| {
                let mut r = Rollup::default();
                r.add(Outcome::Up, None, 3.0 + f64::from(i % 9) / 7.0);
                (i, r)
            })
            .collect();
        let bytes = encode(&buckets);
        assert!(
            bytes.len() <= 60 * 17 + 2,
            "{} bytes for an hour of minutes",
            bytes.len()
        );
        assert_eq!(decode(&bytes).unwrap(), buckets);
        // A lone down check has no latency, a lone check with a zero latency still round-trips.
        let mut down = Rollup::default();
        down.add(Outcome::Down, Some(Reason::Refused), 5000.0);
        let mut zero = Rollup::default();
        zero.add(Outcome::Up, None, 0.0);
        let odd = BTreeMap::from([(0u32, down), (1, zero)]);
        assert_eq!(decode(&encode(&odd)).unwrap(), odd);
    }

    #[test]
    fn damaged_values_are_errors_not_panics_or_misreadings() {
        let buckets = BTreeMap::from([(0u32, rollup(3)), (5, rollup(4))]);
        let bytes = encode(&buckets);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode(&longer),
            Err(PackError("bytes after the last bucket"))
        );
        let mut other_version = bytes.clone();
        other_version[0] = 2;
        assert_eq!(
            decode(&other_version),
            Err(PackError("an unknown layout version"))
        );
        // Every single-byte change decodes to something else or fails: never the same buckets.
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 0x5a;
            assert_ne!(decode(&changed).ok(), Some(buckets.clone()), "byte {i}");
        }
    }

    #[test]
    fn packing_groups_hours_by_series_and_day_and_adds_to_what_was_packed() {
        let day = 20_000 * DAY;
        let rows = vec![
            row("a", day, 1),
            row("a", day + 5 * HOUR, 2),
            row("a", day + DAY, 3),
            row("b", day + 23 * HOUR, 4),
        ];
        let packed = pack(Tier::Hour, &rows, &[]).unwrap();
        let keys: Vec<(&str, i64)> = packed
            .iter()
            .map(|p| (p.target.as_str(), p.span_start_unix_ms))
            .collect();
        assert_eq!(keys, [("a", day), ("a", day + DAY), ("b", day)]);
        let back: Vec<RollupRow> = packed
            .iter()
            .flat_map(|p| unpack(Tier::Hour, p).unwrap())
            .collect();
        let mut expected = rows.clone();
        expected.sort_by(|x, y| (&x.target, x.start_unix_ms).cmp(&(&y.target, y.start_unix_ms)));
        assert_eq!(back, expected);
        // The same hour again adds up; a new hour joins its day.
        let again = pack(
            Tier::Hour,
            &[row("a", day, 1), row("a", day + HOUR, 9)],
            &packed[..1],
        )
        .unwrap();
        let hours = unpack(Tier::Hour, &again[0]).unwrap();
        let mut doubled = rollup(1);
        doubled.merge(&rollup(1));
        assert_eq!(hours[0].rollup, doubled);
        assert_eq!(hours[1].start_unix_ms, day + HOUR);
        assert_eq!(hours[2].start_unix_ms, day + 5 * HOUR);
    }

    #[test]
    fn reads_merge_packed_buckets_with_live_rows_in_range() {
        let day = 20_000 * DAY;
        let packed = pack(
            Tier::Hour,
            &[
                row("a", day + HOUR, 1),
                row("a", day + 3 * HOUR, 2),
                row("b", day, 3),
            ],
            &[],
        )
        .unwrap();
        let live = vec![row("a", day + 3 * HOUR, 5), row("a", day + DAY, 6)];
        let range = TimeRange {
            from_unix_ms: day + 2 * HOUR,
            until_unix_ms: day + 2 * DAY,
        };
        let rows = combine(Tier::Hour, live.clone(), &packed, range, false).unwrap();
        let mut three = rollup(2);
        three.merge(&rollup(5));
        assert_eq!(
            rows,
            vec![
                RollupRow {
                    rollup: three.clone(),
                    ..row("a", day + 3 * HOUR, 0)
                },
                row("a", day + DAY, 6),
            ],
            "hour 1 and b's hour 0 are before the range"
        );
        let summed_live = {
            let mut r = rollup(5);
            r.merge(&rollup(6));
            vec![RollupRow {
                rollup: r,
                ..row("a", day + 3 * HOUR, 0)
            }]
        };
        let summed = combine(Tier::Hour, summed_live, &packed, range, true).unwrap();
        let mut total = three;
        total.merge(&rollup(6));
        assert_eq!(
            summed,
            vec![RollupRow {
                rollup: total,
                ..row("a", day + 3 * HOUR, 0)
            }]
        );
        // Nothing packed in range: the live rows as they came.
        let early = TimeRange {
            from_unix_ms: day + DAY,
            until_unix_ms: day + 2 * DAY,
        };
        assert_eq!(
            combine(Tier::Hour, live.clone(), &packed, early, false).unwrap(),
            live
        );
    }
}

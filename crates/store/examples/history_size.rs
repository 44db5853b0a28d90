//! Seeds issue 13's benchmark history straight into a fresh store and measures it: SERIES
//! series (target × vantage point, two vantage points a target; a tenth of the targets HTTP,
//! spread over 20 domains, the rest TCP) with DAYS of hourly roll-ups (and the day roll-ups
//! they make), then RAW_HOURS of raw one-minute records through `insert`, then the roller until
//! a pass rolls nothing — the state `netvantage serve` reads. Prints how long each step took
//! and the bytes the roll-up tables take per series-year.
//!
//!   history_size sqlite PATH [SERIES] [DAYS] [RAW_HOURS]
//!   history_size postgres URL [SERIES] [DAYS] [RAW_HOURS]
//!
//! Defaults: 100 series, 365 days, 24 raw hours. PATH must not exist yet; URL names an empty
//! database. The page's "now" is printed last (`the page's now: …`), for `serve --as-of`.
//! Written in batches across series (a transaction per batch), the bulk path a seed can take.
//!
//! The store's retention keeps raw rows RAW_HOURS (rounded up to whole days on PostgreSQL,
//! whose raw rows go by day partitions): its mark is set before seeding, so the hours of the
//! days before it are final and go packed at once (`netvantage_store::pack`), as retention
//! would pack them; a retention pass after the roller packs what is left.

use netvantage_core::Reason;
use netvantage_store::seed::{KnownHistory, SeededSeries};
use netvantage_store::{AnyStore, Location, Retention, RollupRow, Store, Tier};
use std::time::Instant;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// Vantage points per target.
const VANTAGES: [&str; 2] = ["fra1", "iad1"];
/// Roll-up rows or raw records written in one transaction.
const BATCH: usize = 20_000;

/// Series `i`: targets take consecutive pairs of series; every tenth target is HTTP.
fn series_of(i: usize) -> SeededSeries {
    let target = i / VANTAGES.len();
    let vantage = VANTAGES[i % VANTAGES.len()].to_string();
    if target % 10 == 9 {
        let domain = format!("shop-{:02}.test", target % 20);
        SeededSeries {
            target: format!("https://api-{target:05}.{domain}/health"),
            vantage,
            domain: Some(domain),
        }
    } else {
        SeededSeries {
            target: format!("host-{target:05}.fleet.test:443"),
            vantage,
            domain: None,
        }
    }
}

/// Series `i`'s history alone (outage lookups stay per series, not per fleet): one 90-minute
/// outage somewhere in its span, so the rows aren't all alike.
fn history_of(i: usize, now: i64, days: i64, raw_hours: i64) -> KnownHistory {
    let from = now - ((i as i64 * 7919) % days.max(1) + 1) * DAY - 2 * HOUR;
    KnownHistory::new(now, days, vec![series_of(i)])
        .with_raw_hours(raw_hours)
        .outage(0, from, 90, Reason::Timeout)
}

/// A record id unique per series and minute, stable across runs. A custom UUID keeps the
/// high nibble of byte 6 for its version, so the series' low 12 bits go in bytes 6–7 and the
/// rest in bytes 0–5 (beyond 4,096 series the plain big-endian number would collide).
fn record_id(series: usize, ts_unix_ms: i64) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&((series as u64) >> 12).to_be_bytes()[2..]);
    bytes[6..8].copy_from_slice(&((series & 0xfff) as u16).to_be_bytes());
    bytes[8..].copy_from_slice(&ts_unix_ms.to_be_bytes());
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> Result<T, String> {
    args.get(i).map_or(Ok(default), |v| {
        v.parse().map_err(|_| format!("bad argument {v:?}"))
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (backend, place) = match (args.first(), args.get(1)) {
        (Some(b), Some(p)) => (b.as_str(), p.clone()),
        _ => {
            return Err(
                "usage: history_size sqlite PATH | postgres URL [SERIES] [DAYS] [RAW_HOURS]".into(),
            );
        }
    };
    let series: usize = arg(&args, 2, 100)?;
    let days: i64 = arg(&args, 3, 365)?;
    let raw_hours: i64 = arg(&args, 4, 24)?;
    let location = match backend {
        "sqlite" => Location::Sqlite(place.clone().into()),
        "postgres" => Location::Postgres(place.clone()),
        other => return Err(format!("unknown backend {other}").into()),
    };
    let now = 20_500 * DAY + 12 * HOUR;
    let mut store = AnyStore::open_writer(&location).await?;
    // Raw rows kept RAW_HOURS, every roll-up tier kept (the history is a year at most).
    let retention = Retention {
        raw_ms: Some(raw_hours * HOUR),
        minute_ms: None,
        hour_ms: None,
        day_ms: None,
    };
    store.prune(&retention, now).await?;

    let started = Instant::now();
    let mut rows = 0u64;
    let mut pending: [Vec<RollupRow>; 2] = [Vec::new(), Vec::new()];
    for i in 0..series {
        for (tier, tier_rows) in history_of(i, now, days, raw_hours).rollup_rows(0) {
            let slot = usize::from(tier == Tier::Day);
            pending[slot].extend(tier_rows);
            if pending[slot].len() >= BATCH || i + 1 == series {
                rows += store.add_rollups(tier, &pending[slot]).await?;
                pending[slot].clear();
            }
        }
    }
    let seeded = started.elapsed();
    println!(
        "{backend}: {series} series ({} targets), {rows} roll-up rows ({days} days of hours and their days) written in {:.1} s ({:.0} rows/s)",
        series.div_ceil(VANTAGES.len()),
        seeded.as_secs_f64(),
        rows as f64 / seeded.as_secs_f64()
    );

    let started = Instant::now();
    let mut records = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..series {
        // Each history holds one series, numbered 0: its record ids get the fleet's number.
        batch.extend(
            history_of(i, now, days, raw_hours)
                .raw_records(0)
                .into_iter()
                .map(|mut r| {
                    r.id = record_id(i, r.check.ts_unix_ms);
                    r
                }),
        );
        if batch.len() >= BATCH || i + 1 == series {
            records += store.insert(&batch).await?.inserted;
            batch.clear();
        }
    }
    let inserted = started.elapsed();
    println!(
        "{backend}: {raw_hours} h of raw records, {records} inserted in {:.1} s ({:.0} records/s)",
        inserted.as_secs_f64(),
        records as f64 / inserted.as_secs_f64()
    );

    let started = Instant::now();
    let (mut passes, mut buckets) = (0u64, 0u64);
    // Bounded: a pass rolls up to the roller's budget, and the history has a few thousand
    // pending buckets at most.
    for _ in 0..10_000 {
        let rolled = store.roll_up(now).await?;
        passes += 1;
        buckets += rolled.total();
        if rolled.total() == 0 {
            break;
        }
    }
    let rolled = started.elapsed();
    println!(
        "{backend}: rolled {buckets} buckets in {passes} passes, {:.1} s",
        rolled.as_secs_f64()
    );
    let started = Instant::now();
    let pruned = store.prune(&retention, now).await?;
    println!(
        "{backend}: retention packed {} more days of final hours in {:.1} s",
        pruned.packed_spans[1],
        started.elapsed().as_secs_f64()
    );
    drop(store);

    let bytes = table_bytes(&location).await?;
    // Only the hours beyond the raw span are a "series-year" of roll-ups: scale to 365 days.
    let per_series_year = bytes as f64 / series as f64 * 365.0 / days.max(1) as f64;
    println!(
        "{backend}: roll-up tables {:.1} MB, {:.0} KB per series-year; the page's now: {now}",
        bytes as f64 / 1e6,
        per_series_year / 1e3
    );
    Ok(())
}

/// The bytes of the roll-up tables (live and packed) and their indexes, after a `VACUUM`.
async fn table_bytes(location: &Location) -> Result<u64, Box<dyn std::error::Error>> {
    Ok(match location {
        Location::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path)?;
            conn.execute_batch("VACUUM")?;
            let mut statement = conn.prepare(
                "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'rollups_%' OR name LIKE 'sqlite_autoindex_rollups_%'",
            )?;
            statement
                .query_row([], |r| r.get::<_, i64>(0))
                .unwrap_or_else(|_| std::fs::metadata(path).map_or(0, |m| m.len() as i64))
                as u64
        }
        Location::Postgres(url) => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client.batch_execute("VACUUM ANALYZE").await?;
            let row = client
                .query_one(
                    "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c
                     WHERE c.relname IN ('rollups_minute', 'rollups_hour', 'rollups_day', 'rollups_hour_packed')",
                    &[],
                )
                .await?;
            row.get::<_, i64>(0) as u64
        }
    })
}

//! The minute tier's size: SERIES series × DAYS days of one-a-minute checks (latencies that
//! vary from check to check, one check in 50 down), written as minute roll-ups into a fresh
//! store, packed (the raw retention's mark set first, so every minute is final and goes packed
//! an hour a row, as retention packs them) or live (one row per minute, as before packing).
//! Prints the minute tables' bytes per series for the DAYS days, after a `VACUUM`.
//!
//!   minute_size sqlite PATH [SERIES] [DAYS] [packed|live]
//!   minute_size postgres URL [SERIES] [DAYS] [packed|live]
//!
//! Defaults: 100 series, 30 days (the minute tier's default retention), packed.

use netvantage_core::{Outcome, Reason};
use netvantage_store::{AnyStore, Location, Retention, Rollup, RollupRow, Store, Tier};
use std::time::Instant;

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;
const BATCH: usize = 20_000;

fn minute(series: usize, start: i64) -> RollupRow {
    let k = (start / MINUTE) as u64 ^ (series as u64).wrapping_mul(0x9e37_79b9);
    let mut rollup = Rollup::default();
    if k % 50 == 7 {
        rollup.add(Outcome::Down, Some(Reason::Timeout), 5000.0);
    } else {
        // 2 to 42 ms, in microseconds, as a TCP connect's latency would vary.
        rollup.add(
            Outcome::Up,
            None,
            2.0 + (k.wrapping_mul(7919) % 40_000) as f64 / 1000.0,
        );
    }
    RollupRow {
        target: format!("host-{series:05}.fleet.test:443"),
        vantage: "fra1".into(),
        start_unix_ms: start,
        rollup,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(backend), Some(place)) = (args.first(), args.get(1)) else {
        return Err(
            "usage: minute_size sqlite PATH | postgres URL [SERIES] [DAYS] [packed|live]".into(),
        );
    };
    let series: usize = args.get(2).map_or(Ok(100), |v| v.parse())?;
    let days: i64 = args.get(3).map_or(Ok(30), |v| v.parse())?;
    let packed = args.get(4).is_none_or(|v| v == "packed");
    let location = match backend.as_str() {
        "sqlite" => Location::Sqlite(place.into()),
        "postgres" => Location::Postgres(place.clone()),
        other => return Err(format!("unknown backend {other}").into()),
    };
    let now = 20_500 * DAY;
    let from = now - days * DAY;
    let mut store = AnyStore::open_writer(&location).await?;
    if packed {
        // Raw rows kept for none of these days: every minute of them is final.
        let retention = Retention {
            raw_ms: Some(0),
            minute_ms: None,
            hour_ms: None,
            day_ms: None,
        };
        store.prune(&retention, now).await?;
    }
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    let mut rows = 0u64;
    for s in 0..series {
        for m in 0..days * 1440 {
            batch.push(minute(s, from + m * MINUTE));
            if batch.len() == BATCH {
                rows += store.add_rollups(Tier::Minute, &batch).await?;
                batch.clear();
            }
        }
    }
    rows += store.add_rollups(Tier::Minute, &batch).await?;
    println!(
        "{backend}: {rows} minute roll-ups ({series} series × {days} days, {}) in {:.1} s",
        if packed { "packed" } else { "live" },
        started.elapsed().as_secs_f64()
    );
    drop(store);
    let bytes = match &location {
        Location::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path)?;
            conn.execute_batch("VACUUM")?;
            conn.query_row(
                "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'rollups_minute%' OR name LIKE 'sqlite_autoindex_rollups_minute%'",
                [],
                |r| r.get::<_, i64>(0),
            )? as u64
        }
        Location::Postgres(url) => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client.batch_execute("VACUUM ANALYZE").await?;
            client
                .query_one(
                    "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c
                     WHERE c.relname IN ('rollups_minute', 'rollups_minute_packed')",
                    &[],
                )
                .await?
                .get::<_, i64>(0) as u64
        }
    };
    println!(
        "{backend}: minute tables {:.1} MB, {:.0} KB per series for {days} days",
        bytes as f64 / 1e6,
        bytes as f64 / series as f64 / 1e3
    );
    Ok(())
}

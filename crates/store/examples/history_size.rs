//! The store's size per series-year of roll-ups (issue 13's benchmark, the size row): writes a
//! year of hourly roll-ups (and the day roll-ups they make) for N series straight into a fresh
//! store, then reports how long that took and the bytes the roll-up tables take per series.
//!
//!   cargo run --release -p netvantage-store --example history_size -- sqlite PATH [SERIES]
//!   cargo run --release -p netvantage-store --example history_size -- postgres URL [SERIES]
//!
//! PATH must not exist yet; URL names an empty database. Prints one line of figures, then
//! writes each series' last day as raw one-minute records through `insert` (rolled up as a
//! sink's writes are) and prints that rate: the store is then ready for `netvantage serve
//! --as-of 20500d+12h` (1771243200000).

use netvantage_core::Reason;
use netvantage_store::seed::{KnownHistory, SeededSeries};
use netvantage_store::{AnyStore, Location, Store};
use std::time::Instant;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (backend, place) = match (args.first(), args.get(1)) {
        (Some(b), Some(p)) => (b.as_str(), p.clone()),
        _ => return Err("usage: history_size sqlite PATH [SERIES] | postgres URL [SERIES]".into()),
    };
    let series: usize = args.get(2).map_or(Ok(100), |n| n.parse())?;
    let location = match backend {
        "sqlite" => Location::Sqlite(place.clone().into()),
        "postgres" => Location::Postgres(place.clone()),
        other => return Err(format!("unknown backend {other}").into()),
    };
    let now = 20_500 * DAY + 12 * HOUR;
    let list = (0..series)
        .map(|i| SeededSeries {
            target: format!("host-{i:05}.fleet.test:443"),
            vantage: ["fra1", "iad1", "sin1"][i % 3].to_string(),
            domain: None,
        })
        .collect();
    let mut history = KnownHistory::new(now, 365, list);
    for i in 0..series {
        // An outage a series, somewhere in the year, so the rows aren't all alike.
        history = history.outage(
            i,
            now - ((i as i64 * 7919) % 360 + 2) * DAY,
            90,
            Reason::Timeout,
        );
    }
    let mut store = AnyStore::open_writer(&location).await?;
    let started = Instant::now();
    let mut rows = 0u64;
    for i in 0..series {
        for (tier, tier_rows) in history.rollup_rows(i) {
            rows += store.add_rollups(tier, &tier_rows).await?;
        }
    }
    let took = started.elapsed();
    drop(store);
    let bytes = match &location {
        Location::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path)?;
            conn.execute_batch("VACUUM")?;
            // Every page of the roll-up tables and their indexes.
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
                     WHERE c.relname IN ('rollups_minute', 'rollups_hour', 'rollups_day')",
                    &[],
                )
                .await?;
            row.get::<_, i64>(0) as u64
        }
    };
    println!(
        "{backend}: {series} series, {rows} roll-up rows (a year of hours and days) written in {:.1} s ({:.0} rows/s); roll-up tables {:.1} MB, {:.0} KB per series-year",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / 1e3 / series as f64
    );
    let mut store = AnyStore::open_writer(&location).await?;
    let started = Instant::now();
    let mut records = 0u64;
    for i in 0..series {
        for chunk in history.raw_records(i).chunks(1000) {
            records += store.insert(chunk).await?.inserted;
        }
    }
    let took = started.elapsed();
    println!(
        "{backend}: a raw day of {records} records inserted with roll-ups in {:.1} s ({:.0} records/s); the page's now: {now}",
        took.as_secs_f64(),
        records as f64 / took.as_secs_f64()
    );
    Ok(())
}

//! The store contract: every test here runs against each backend (as gatus' `store_test.go`
//! runs each test against each store). `contract!` (in `support.rs`) instantiates each one as
//! `sqlite::NAME` and `postgres::NAME`; a PostgreSQL run gets a database of its own. The
//! connection log's part of the contract is `conns_contract.rs`.

#[macro_use]
mod support;

use netvantage_core::{Outcome, Reason};
use netvantage_store::migrations::{LATEST, MIGRATIONS};
use netvantage_store::rollup::{RollupRow, Tier, roll_up};
use netvantage_store::seed::{KnownHistory, SeededSeries};
use netvantage_store::{
    AnyStore, ResultsQuery, Retention, RollupQuery, Store, StoreError, TimeRange, Written, totals,
};
use support::{Backend, Fixture, all_results, https, tcp};

contract!(
    inserts_are_idempotent_and_read_back_as_observations,
    a_redelivered_batch_is_skipped_and_only_new_records_count,
    records_read_back_exactly_as_written,
    a_time_range_includes_its_start_and_excludes_its_end,
    pages_walk_a_range_in_time_then_id_order_without_gaps_or_repeats,
    results_are_the_asked_target_only,
    observations_are_every_check_in_the_window,
    a_store_made_by_an_earlier_release_is_adopted_and_migrated_forward,
    a_reader_reads_an_earlier_release_s_store_without_migrating_it,
    writers_starting_together_apply_each_migration_once,
    a_migrated_store_has_nothing_left_to_migrate,
    a_reader_refuses_to_write_or_migrate,
    a_reader_refuses_a_store_nothing_was_written_to,
    a_store_from_a_newer_release_is_readable_but_not_writable,
    writers_racing_on_one_batch_store_it_once,
    rollups_equal_an_aggregate_of_the_raw_rows,
    a_redelivered_batch_leaves_the_rollups_as_they_were,
    retention_drops_what_each_tier_no_longer_keeps_and_nothing_else,
    availability_is_exact_over_every_window_of_a_seeded_history,
    availability_stays_exact_once_retention_packed_the_final_hours,
    the_series_keep_their_latest_check,
    the_roller_stores_what_reads_derived_and_leaves_nothing_pending,
    a_record_arriving_after_its_minute_was_rolled_is_rolled_in_once,
    records_arriving_after_retention_dropped_their_minute_stay_raw_and_are_not_rolled,
    only_ended_buckets_are_rolled_and_a_pass_stays_within_its_budget,
);

const EVERYTHING: TimeRange = TimeRange {
    from_unix_ms: i64::MIN,
    until_unix_ms: i64::MAX,
};

/// 2026-11-23T23:59:59.999Z: the last millisecond of a day (a partition boundary follows).
const LAST_MS_OF_A_DAY: i64 = 1_795_478_399_999;

fn ids(records: &[netvantage_core::ResultRecord]) -> Vec<uuid::Uuid> {
    records.iter().map(|r| r.id).collect()
}

async fn inserts_are_idempotent_and_read_back_as_observations(f: Fixture) {
    let mut store = f.writer().await;
    let batch = vec![
        tcp("db:5432", 1_000, None),
        tcp("db:5432", 2_000, Some(Reason::Refused)),
    ];
    assert_eq!(store.insert(&batch).await.unwrap().inserted, 2);
    assert_eq!(
        store.insert(&batch).await.unwrap().inserted,
        0,
        "same ids again"
    );
    drop(store);
    let store = f.reader().await;
    assert_eq!(
        all_results(&store, "db:5432", EVERYTHING, 10).await.len(),
        2
    );
    let mut seen = store.observations(TimeRange::since(1_500)).await.unwrap();
    assert_eq!(seen.len(), 1);
    let o = seen.pop().unwrap();
    assert_eq!(
        (o.target.as_str(), o.up, o.reason),
        ("db:5432", false, Some(Reason::Refused))
    );
}

async fn a_redelivered_batch_is_skipped_and_only_new_records_count(f: Fixture) {
    let mut store = f.writer().await;
    let first: Vec<_> = (0..3).map(|i| tcp("a:1", 1_000 + i, None)).collect();
    assert_eq!(
        store.insert(&first).await.unwrap(),
        Written {
            inserted: 3,
            duplicates: 0,
            fresh: vec![0, 1, 2]
        }
    );
    assert_eq!(
        store.insert(&first).await.unwrap(),
        Written {
            inserted: 0,
            duplicates: 3,
            fresh: vec![]
        },
        "the same batch redelivered"
    );
    // A redelivered batch merged with new records: only the new ones are stored and counted.
    let (new_a, new_b) = (tcp("a:1", 2_000, None), tcp("a:1", 2_001, None));
    let mixed = vec![
        first[0].clone(),
        new_a.clone(),
        first[2].clone(),
        new_b.clone(),
    ];
    assert_eq!(
        store.insert(&mixed).await.unwrap(),
        Written {
            inserted: 2,
            duplicates: 2,
            fresh: vec![1, 3]
        }
    );
    // A record repeated within one batch is stored once, counted new at its first place.
    let repeated = tcp("a:1", 3_000, None);
    let twice = vec![repeated.clone(), repeated.clone()];
    assert_eq!(
        store.insert(&twice).await.unwrap(),
        Written {
            inserted: 1,
            duplicates: 1,
            fresh: vec![0]
        }
    );
    assert_eq!(store.insert(&[]).await.unwrap(), Written::default());
    let stored = all_results(&store, "a:1", EVERYTHING, 100).await;
    let mut expected = ids(&first);
    expected.extend([new_a.id, new_b.id, repeated.id]);
    assert_eq!(ids(&stored), expected);
}

async fn records_read_back_exactly_as_written(f: Fixture) {
    let mut store = f.writer().await;
    let records = vec![
        tcp("db:5432", 1_000, None),
        tcp("db:5432", 2_000, Some(Reason::Timeout)),
        https("https://example.test/health", 3_000, Outcome::Up),
        https("https://example.test/health", 4_000, Outcome::Degraded),
        https("https://example.test/health", 5_000, Outcome::Down),
    ];
    store.insert(&records).await.unwrap();
    for reopened in [store, f.reader().await] {
        let mut back = all_results(&reopened, "db:5432", EVERYTHING, 10).await;
        back.extend(all_results(&reopened, "https://example.test/health", EVERYTHING, 10).await);
        assert_eq!(back, records);
    }
}

async fn a_time_range_includes_its_start_and_excludes_its_end(f: Fixture) {
    let mut store = f.writer().await;
    let at = [
        -5_000,
        1_000,
        2_000,
        3_000,
        LAST_MS_OF_A_DAY,
        LAST_MS_OF_A_DAY + 1,
    ];
    let records: Vec<_> = at.iter().map(|ts| tcp("a:1", *ts, None)).collect();
    store.insert(&records).await.unwrap();
    let times = |from_unix_ms, until_unix_ms| {
        let store = &store;
        async move {
            let range = TimeRange {
                from_unix_ms,
                until_unix_ms,
            };
            let got = all_results(store, "a:1", range, 100).await;
            got.iter().map(|r| r.check.ts_unix_ms).collect::<Vec<_>>()
        }
    };
    assert_eq!(times(1_000, 3_000).await, vec![1_000, 2_000]);
    assert_eq!(times(1_001, 3_001).await, vec![2_000, 3_000]);
    assert_eq!(times(2_000, 2_000).await, Vec::<i64>::new(), "empty range");
    assert_eq!(times(2_000, 2_001).await, vec![2_000]);
    assert_eq!(times(-5_000, 0).await, vec![-5_000], "before 1970");
    assert_eq!(
        times(LAST_MS_OF_A_DAY, LAST_MS_OF_A_DAY + 2).await,
        vec![LAST_MS_OF_A_DAY, LAST_MS_OF_A_DAY + 1],
        "across midnight (a partition boundary in PostgreSQL)"
    );
    assert_eq!(times(i64::MIN, i64::MAX).await, at.to_vec(), "unbounded");
    assert_eq!(
        times(LAST_MS_OF_A_DAY + 1, i64::MAX).await,
        vec![LAST_MS_OF_A_DAY + 1]
    );
}

async fn pages_walk_a_range_in_time_then_id_order_without_gaps_or_repeats(f: Fixture) {
    let mut store = f.writer().await;
    // 21 records over 7 timestamps: three share each time (three addresses of one name).
    let records: Vec<_> = (0..21)
        .map(|i| tcp("rr:80", 10_000 * (i / 3), None))
        .collect();
    store.insert(&records).await.unwrap();
    let mut expected = records.clone();
    expected.sort_by_key(|r| (r.check.ts_unix_ms, r.id));
    for page in [1, 4, 7, 20, 21, 22, 10_000_000] {
        let got = all_results(&store, "rr:80", EVERYTHING, page).await;
        assert_eq!(ids(&got), ids(&expected), "pages of {page}");
    }
    // An exact multiple: the last full page says there is nothing after it.
    let mut query = ResultsQuery::new("rr:80", EVERYTHING, 7);
    for _ in 0..2 {
        let page = store.results(&query).await.unwrap();
        assert_eq!(page.records.len(), 7);
        query.after = Some(page.next.expect("more follow"));
    }
    let last = store.results(&query).await.unwrap();
    assert_eq!((last.records.len(), last.next), (7, None));
}

async fn results_are_the_asked_target_only(f: Fixture) {
    let mut store = f.writer().await;
    let records = vec![
        tcp("a:1", 1_000, None),
        tcp("b:1", 1_000, None),
        tcp("a:10", 1_000, None),
    ];
    store.insert(&records).await.unwrap();
    let got = all_results(&store, "a:1", EVERYTHING, 10).await;
    assert_eq!(ids(&got), vec![records[0].id]);
    assert!(all_results(&store, "c:1", EVERYTHING, 10).await.is_empty());
}

async fn observations_are_every_check_in_the_window(f: Fixture) {
    let mut store = f.writer().await;
    let records = vec![
        tcp("a:1", 999, Some(Reason::Refused)),
        tcp("a:1", 1_000, Some(Reason::Refused)),
        tcp("b:1", 1_500, None),
        https("https://x.test/", 1_600, Outcome::Degraded),
        https("https://x.test/", 1_700, Outcome::Down),
        tcp("a:1", 2_000, None),
    ];
    store.insert(&records).await.unwrap();
    let window = TimeRange {
        from_unix_ms: 1_000,
        until_unix_ms: 2_000,
    };
    let mut seen: Vec<_> = store
        .observations(window)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.ts_unix_ms, o.target, o.vantage, o.up, o.reason))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (
                1_000,
                "a:1".into(),
                "lab".into(),
                false,
                Some(Reason::Refused)
            ),
            (1_500, "b:1".into(), "lab".into(), true, None),
            // Degraded answered: up for a verdict.
            (1_600, "https://x.test/".into(), "fra1".into(), true, None),
            (
                1_700,
                "https://x.test/".into(),
                "fra1".into(),
                false,
                Some(Reason::Status)
            ),
        ]
    );
    assert_eq!(store.observations(EVERYTHING).await.unwrap().len(), 6);
}

async fn a_store_made_by_an_earlier_release_is_adopted_and_migrated_forward(f: Fixture) {
    let old = tcp("db:5432", LAST_MS_OF_A_DAY, None);
    f.lay_out_legacy_version_1(&old).await;
    let mut store = f.writer().await;
    let recorded = f.migrations_recorded().await;
    let expected: Vec<String> = MIGRATIONS
        .iter()
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    assert_eq!(recorded, expected, "version 1 adopted, the rest applied");
    // The earlier release's row reads back with its fields, and the new columns' defaults.
    let back = all_results(&store, "db:5432", EVERYTHING, 10).await;
    assert_eq!(back.len(), 1);
    let (id, check) = (back[0].id, &back[0].check);
    assert_eq!(
        (id, check.ts_unix_ms, check.schema),
        (old.id, old.check.ts_unix_ms, 1)
    );
    assert_eq!((back[0].agent.as_str(), check.latency_ms), ("a", 1.5));
    assert_eq!((check.address, &check.http), (None, &None));
    // New records go in beside it; the old one redelivered is skipped.
    let new = https("https://x.test/", LAST_MS_OF_A_DAY + 1, Outcome::Up);
    let written = store.insert(&[old.clone(), new.clone()]).await.unwrap();
    assert_eq!((written.inserted, written.fresh), (1, vec![1]));
    let back = all_results(&store, "https://x.test/", EVERYTHING, 10).await;
    assert_eq!(back, vec![new]);
}

async fn a_reader_reads_an_earlier_release_s_store_without_migrating_it(f: Fixture) {
    let old = tcp("db:5432", 5_000, None);
    f.lay_out_legacy_version_1(&old).await;
    let before = f.column("SELECT count(*) FROM results").await;
    let reader = f.reader().await;
    let back = all_results(&reader, "db:5432", EVERYTHING, 10).await;
    assert_eq!(ids(&back), vec![old.id]);
    assert_eq!(reader.observations(EVERYTHING).await.unwrap().len(), 1);
    drop(reader);
    assert_eq!(f.column("SELECT count(*) FROM results").await, before);
    match f.backend {
        Backend::Sqlite => {
            let tables = f
                .column("SELECT name FROM sqlite_schema WHERE name = 'netvantage_migrations'")
                .await;
            assert!(tables.is_empty(), "a reader created {tables:?}");
            assert_eq!(f.column("PRAGMA user_version").await, vec!["1"]);
        }
        Backend::Postgres => {
            let recorded = f.migrations_recorded().await;
            assert_eq!(recorded.len(), 1, "a reader migrated: {recorded:?}");
        }
    }
}

async fn writers_starting_together_apply_each_migration_once(f: Fixture) {
    let location = f.location.clone();
    let writers: Vec<_> = (0..6)
        .map(|_| {
            let location = location.clone();
            tokio::spawn(async move { AnyStore::open_writer(&location).await })
        })
        .collect();
    for writer in writers {
        if let Err(e) = writer.await.unwrap() {
            panic!("a writer failed: {e}");
        }
    }
    let versions = f
        .column("SELECT version FROM netvantage_migrations ORDER BY version")
        .await;
    let expected: Vec<String> = (1..=LATEST).map(|v| v.to_string()).collect();
    assert_eq!(versions, expected);
}

async fn a_migrated_store_has_nothing_left_to_migrate(f: Fixture) {
    let mut store = f.writer().await;
    assert_eq!(store.migrate().await.unwrap(), Vec::<i32>::new());
    drop(store);
    let mut again = f.writer().await;
    assert_eq!(again.migrate().await.unwrap(), Vec::<i32>::new());
    assert_eq!(f.migrations_recorded().await.len(), MIGRATIONS.len());
}

async fn a_reader_refuses_to_write_or_migrate(f: Fixture) {
    let mut store = f.writer().await;
    store.insert(&[tcp("a:1", 1, None)]).await.unwrap();
    let mut reader = f.reader().await;
    let refused = reader.insert(&[tcp("a:1", 2, None)]).await.unwrap_err();
    assert!(matches!(refused, StoreError::ReadOnly { .. }), "{refused}");
    let refused = reader.migrate().await.unwrap_err();
    assert!(matches!(refused, StoreError::ReadOnly { .. }), "{refused}");
    assert_eq!(all_results(&store, "a:1", EVERYTHING, 10).await.len(), 1);
}

async fn a_reader_refuses_a_store_nothing_was_written_to(f: Fixture) {
    if f.backend == Backend::Sqlite {
        std::fs::write(f.sqlite_path(), b"").unwrap();
    }
    let refused = AnyStore::open_reader(&f.location)
        .await
        .err()
        .expect("refused");
    assert!(matches!(refused, StoreError::NotAStore { .. }), "{refused}");
    assert!(refused.is_usage() && !refused.heals());
    match f.backend {
        Backend::Sqlite => {
            assert_eq!(std::fs::metadata(f.sqlite_path()).unwrap().len(), 0);
        }
        Backend::Postgres => {
            let tables = f
                .column("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                .await;
            assert!(tables.is_empty(), "a reader created {tables:?}");
        }
    }
}

async fn a_store_from_a_newer_release_is_readable_but_not_writable(f: Fixture) {
    let mut store = f.writer().await;
    store.insert(&[tcp("a:1", 1, None)]).await.unwrap();
    drop(store);
    f.execute(&format!(
        "INSERT INTO netvantage_migrations (version, description) VALUES ({}, 'from the future')",
        LATEST + 1
    ))
    .await;
    let refused = AnyStore::open_writer(&f.location)
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(refused, StoreError::TooNew { found, .. } if found == LATEST + 1),
        "{refused}"
    );
    assert!(refused.is_usage());
    let reader = f.reader().await;
    assert_eq!(all_results(&reader, "a:1", EVERYTHING, 10).await.len(), 1);
}

async fn writers_racing_on_one_batch_store_it_once(f: Fixture) {
    drop(f.writer().await);
    let batch: Vec<_> = (0..500).map(|i| tcp("race:1", 1_000 + i, None)).collect();
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let (location, batch) = (f.location.clone(), batch.clone());
            tokio::spawn(async move {
                let mut store = AnyStore::open_writer(&location).await?;
                store.insert(&batch).await
            })
        })
        .collect();
    let mut inserted = 0;
    for racer in racers {
        let written = racer.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written.inserted + written.duplicates, 500);
        inserted += written.inserted;
    }
    assert_eq!(inserted, 500);
    let store = f.reader().await;
    assert_eq!(
        all_results(&store, "race:1", EVERYTHING, 1_000).await.len(),
        500
    );
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// Every roll-up row of a tier, of every series.
async fn tier_rows(store: &impl Store, tier: Tier) -> Vec<RollupRow> {
    let query = RollupQuery {
        tier,
        range: EVERYTHING,
        target: None,
        summed: false,
    };
    store.rollups(&query).await.unwrap()
}

/// Checks of two targets from two vantage points over minutes, hours and days: up, degraded
/// and down for several reasons, latencies that add up exactly in any order.
fn mixed_records() -> Vec<netvantage_core::ResultRecord> {
    let mut records = Vec::new();
    let start = 20_000 * DAY + 23 * HOUR + 58 * MINUTE;
    for i in 0..120i64 {
        let failure = match i % 7 {
            3 => Some(Reason::Timeout),
            5 => Some(Reason::Refused),
            _ => None,
        };
        let mut r = tcp(
            if i % 2 == 0 { "a:1" } else { "b:2" },
            start + i * 20_000,
            failure,
        );
        r.check.latency_ms = 0.25 * (i % 40) as f64 + 0.5;
        if i % 3 == 0 {
            r.vantage = "fra1".into();
        }
        records.push(r);
        let outcome = [Outcome::Up, Outcome::Degraded, Outcome::Down][(i % 3) as usize];
        let mut h = https("https://shop.test/", start + i * 45_000, outcome);
        h.check.latency_ms = 2.0 * i as f64;
        records.push(h);
    }
    records
}

async fn rollups_equal_an_aggregate_of_the_raw_rows(f: Fixture) {
    let mut store = f.writer().await;
    let records = mixed_records();
    // Written in uneven batches, as a sink or ingest would.
    for chunk in records.chunks(37) {
        store.insert(chunk).await.unwrap();
    }
    drop(store);
    let store = f.reader().await;
    // Recomputed from the raw rows as stored.
    let mut raw = Vec::new();
    for target in ["a:1", "b:2", "https://shop.test/"] {
        raw.extend(all_results(&store, target, EVERYTHING, 1000).await);
    }
    assert_eq!(raw.len(), records.len());
    for (tier, expected) in roll_up(&raw) {
        let stored = tier_rows(&store, tier).await;
        assert_eq!(stored, expected, "{tier:?} roll-ups");
        let checks: u64 = stored.iter().map(|r| r.rollup.checks).sum();
        assert_eq!(checks, records.len() as u64);
    }
    // The records span midnight: the day tier has two days for each of the five series.
    assert_eq!(tier_rows(&store, Tier::Day).await.len(), 2 * 5);
}

async fn a_redelivered_batch_leaves_the_rollups_as_they_were(f: Fixture) {
    let mut store = f.writer().await;
    let records = mixed_records();
    let (first, rest) = records.split_at(100);
    store.insert(first).await.unwrap();
    store.insert(first).await.unwrap();
    // A redelivery mixed with new records: only the new ones count.
    let mut mixed: Vec<_> = first[..50].to_vec();
    mixed.extend_from_slice(rest);
    mixed.extend_from_slice(&rest[..10]);
    let written = store.insert(&mixed).await.unwrap();
    assert_eq!(written.inserted, rest.len() as u64);
    for (tier, expected) in roll_up(&records) {
        assert_eq!(tier_rows(&store, tier).await, expected, "{tier:?}");
    }
}

async fn retention_drops_what_each_tier_no_longer_keeps_and_nothing_else(f: Fixture) {
    let mut store = f.writer().await;
    let now = 20_100 * DAY + 12 * HOUR;
    let raw = [
        tcp("a:1", now - 8 * DAY, None),
        tcp("a:1", now - 6 * DAY, None),
        tcp("a:1", now - MINUTE, None),
    ];
    store.insert(&raw).await.unwrap();
    let row = |start: i64| {
        let mut rollup = netvantage_store::Rollup::default();
        rollup.add(Outcome::Up, None, 1.0);
        RollupRow {
            target: "seeded:1".into(),
            vantage: "lab".into(),
            start_unix_ms: start,
            rollup,
        }
    };
    let minute = [
        now - 31 * DAY,
        now - 30 * DAY - MINUTE,
        now - 30 * DAY,
        now - 29 * DAY,
    ];
    let hour = [
        now - 401 * DAY,
        now - 400 * DAY - HOUR,
        now - 400 * DAY,
        now - 399 * DAY,
    ];
    let day = [now - 3000 * DAY, now - 500 * DAY];
    for (tier, starts) in [
        (Tier::Minute, &minute[..]),
        (Tier::Hour, &hour[..]),
        (Tier::Day, &day[..]),
    ] {
        let starts: Vec<i64> = starts.iter().map(|s| tier.bucket_start(*s)).collect();
        let rows: Vec<_> = starts.iter().map(|s| row(*s)).collect();
        store.add_rollups(tier, &rows).await.unwrap();
    }
    let before = rows_per_tier(&store).await;
    let pruned = store.prune(&Retention::default(), now).await.unwrap();
    let aligned = |tier: Tier, starts: &[i64]| -> Vec<i64> {
        starts.iter().map(|s| tier.bucket_start(*s)).collect()
    };
    let kept = |rows: Vec<RollupRow>| -> Vec<i64> {
        rows.iter()
            .filter(|r| r.target == "seeded:1")
            .map(|r| r.start_unix_ms)
            .collect()
    };
    // A bucket goes once it ended at or before the cutoff.
    assert_eq!(
        kept(tier_rows(&store, Tier::Minute).await),
        aligned(Tier::Minute, &minute[2..])
    );
    assert_eq!(
        kept(tier_rows(&store, Tier::Hour).await),
        aligned(Tier::Hour, &hour[2..])
    );
    assert_eq!(
        kept(tier_rows(&store, Tier::Day).await),
        aligned(Tier::Day, &day),
        "days stay forever"
    );
    // The raw records' own roll-ups are recent enough for every tier to keep.
    let after = rows_per_tier(&store).await;
    assert_eq!(
        [
            before[0] - after[0],
            before[1] - after[1],
            before[2] - after[2]
        ],
        [2, 2, 0]
    );
    assert_eq!(pruned.rollup_rows, [2, 2, 0]);
    // Before the dropping, the final buckets went packed: the seeded minutes' 4 hours and the
    // dropped raw record's minute's hour; the seeded hours' 3 days and the raw record's day.
    assert_eq!(pruned.packed_spans, [5, 4, 0]);
    let left: Vec<i64> = all_results(&store, "a:1", EVERYTHING, 10)
        .await
        .iter()
        .map(|r| r.check.ts_unix_ms)
        .collect();
    assert_eq!(left, vec![now - 6 * DAY, now - MINUTE], "raw: 7 days");
    match f.backend {
        support::Backend::Sqlite => assert_eq!(pruned.raw_rows, 1),
        support::Backend::Postgres => assert_eq!(pruned.partitions.len(), 1, "one day partition"),
    }
    // Again: nothing more to drop.
    let again = store.prune(&Retention::default(), now).await.unwrap();
    assert_eq!(again.rollup_rows, [0, 0, 0]);
}

/// Rows per tier, in `Tier::ALL` order.
async fn rows_per_tier(store: &impl Store) -> Vec<usize> {
    let mut lens = Vec::new();
    for tier in Tier::ALL {
        lens.push(tier_rows(store, tier).await.len());
    }
    lens
}

/// A year of two series at one check a minute, with outages at known times.
fn seeded_history(now: i64) -> KnownHistory {
    let series = vec![
        SeededSeries {
            target: "db:5432".into(),
            vantage: "lab".into(),
            domain: None,
        },
        SeededSeries {
            target: "https://shop.test/".into(),
            vantage: "fra1".into(),
            domain: Some("shop.test".into()),
        },
    ];
    KnownHistory::new(now, 365, series)
        // Inside the last hour, earlier in the raw day, at the raw day's first minute, across
        // the raw day's start, in the last week, the last month, and the year.
        .outage(0, now - 20 * MINUTE, 7, Reason::Refused)
        .outage(0, now - 5 * HOUR, 30, Reason::Timeout)
        .outage(0, now - DAY - 10 * MINUTE, 25, Reason::Timeout)
        .outage(0, now - 3 * DAY - 17 * MINUTE, 95, Reason::Unreachable)
        .outage(0, now - 20 * DAY, 600, Reason::Timeout)
        .outage(0, now - 200 * DAY + 13 * MINUTE, 2000, Reason::Refused)
        .outage(1, now - 40 * MINUTE, 3, Reason::Status)
}

/// Every window's availability, per series and across every series, as the history says.
async fn assert_windows_exact(store: &impl Store, history: &KnownHistory, now: i64) {
    for (i, s) in history.series.iter().enumerate() {
        for window in [
            HOUR,
            DAY,
            7 * DAY,
            30 * DAY,
            200 * DAY + 3 * HOUR,
            365 * DAY,
        ] {
            let got = totals(store, now - window, now, Some(&s.target))
                .await
                .unwrap();
            let got = &got[&(s.target.clone(), s.vantage.clone())];
            let expected = history.expected(i, now - window, now);
            assert_eq!(
                (got.checks, got.answered()),
                expected,
                "{} over the last {} h",
                s.target,
                window / HOUR
            );
        }
    }
    let last_hour = history.expected(0, now - HOUR, now);
    assert_eq!(last_hour, (60, 53));
    assert_eq!(
        history.expected(0, now - 365 * DAY, now).1,
        365 * 1440 - 7 - 30 - 25 - 95 - 600 - 2000
    );
    // Every series at once, over windows ending off the hour (in the raw day, where the
    // minute tier has rows) and starting off the hour in the year.
    for from in [now - 7 * DAY, now - 300 * DAY - 5 * HOUR] {
        let all = totals(store, from, now - 30 * MINUTE, None).await.unwrap();
        assert_eq!(all.len(), 2);
        for (i, s) in history.series.iter().enumerate() {
            let got = &all[&(s.target.clone(), s.vantage.clone())];
            let expected = history.expected(i, from, now - 30 * MINUTE);
            assert_eq!((got.checks, got.answered()), expected, "{}", s.target);
        }
    }
}

async fn availability_is_exact_over_every_window_of_a_seeded_history(f: Fixture) {
    let now = 20_500 * DAY + 15 * HOUR;
    let history = seeded_history(now);
    let mut store = f.writer().await;
    history.write_into(&mut store).await.unwrap();
    // Written twice: a redelivery of the raw day changes nothing.
    for chunk in history.raw_records(0).chunks(700) {
        assert_eq!(store.insert(chunk).await.unwrap().inserted, 0);
    }
    drop(store);
    let store = f.reader().await;
    assert_windows_exact(&store, &history, now).await;
}

async fn availability_stays_exact_once_retention_packed_the_final_hours(f: Fixture) {
    let now = 20_500 * DAY + 15 * HOUR;
    let history = seeded_history(now);
    let mut store = f.writer().await;
    history.write_into(&mut store).await.unwrap();
    let live_hours = tier_rows(&store, Tier::Hour).await;
    // Raw rows kept 7 days: every hour of the days before is final, and goes packed.
    let retention = Retention::default();
    let pruned = store.prune(&retention, now).await.unwrap();
    let final_days: std::collections::BTreeSet<i64> = live_hours
        .iter()
        .map(|r| Tier::Day.bucket_start(r.start_unix_ms))
        .filter(|day| day + DAY <= now - 7 * DAY)
        .collect();
    assert!(final_days.len() > 350);
    assert_eq!(pruned.packed_spans[1] as usize, final_days.len());
    assert_eq!(
        pruned.rollup_rows,
        [0, 0, 0],
        "the history is younger than each tier's retention"
    );
    assert_eq!(
        tier_rows(&store, Tier::Hour).await,
        live_hours,
        "the packed hours read back as they were"
    );
    assert_eq!(
        store.prune(&retention, now).await.unwrap().packed_spans,
        [0, 0, 0]
    );
    drop(store);
    let store = f.reader().await;
    assert_windows_exact(&store, &history, now).await;
    drop(store);
    // Hours written for a packed day add up as the live tier's do.
    let mut store = f.writer().await;
    let hour = Tier::Hour.bucket_start(now - 100 * DAY);
    let seeded: Vec<RollupRow> = live_hours
        .iter()
        .filter(|r| r.start_unix_ms == hour)
        .cloned()
        .collect();
    assert_eq!(seeded.len(), 2);
    store.add_rollups(Tier::Hour, &seeded[..1]).await.unwrap();
    let doubled = store
        .rollups(&RollupQuery {
            tier: Tier::Hour,
            range: TimeRange {
                from_unix_ms: hour,
                until_unix_ms: hour + HOUR,
            },
            target: None,
            summed: false,
        })
        .await
        .unwrap();
    assert_eq!(doubled.len(), 2);
    assert_eq!(doubled[0].target, seeded[0].target);
    assert_eq!(doubled[0].rollup.checks, 2 * seeded[0].rollup.checks);
    assert_eq!(
        doubled[1].rollup, seeded[1].rollup,
        "the other series' hour as it was"
    );
    // The hour tier's retention drops the packed hours that ended by its cutoff, exactly as
    // it would drop live ones: the day the cutoff falls in is trimmed, not dropped whole.
    let keep = 300 * DAY + 5 * HOUR + 17 * MINUTE;
    let short = Retention {
        hour_ms: Some(keep),
        ..retention
    };
    let cut = store.prune(&short, now).await.unwrap();
    let expected: Vec<i64> = live_hours
        .iter()
        .filter(|r| r.start_unix_ms + HOUR > now - keep)
        .map(|r| r.start_unix_ms)
        .collect();
    let kept: Vec<i64> = tier_rows(&store, Tier::Hour)
        .await
        .iter()
        .map(|r| r.start_unix_ms)
        .collect();
    assert_eq!(kept, expected);
    assert_eq!(
        cut.rollup_rows[1] as usize,
        live_hours.len() - expected.len()
    );
    assert_eq!(
        store.prune(&short, now).await.unwrap().rollup_rows,
        [0, 0, 0]
    );
}

async fn the_series_keep_their_latest_check(f: Fixture) {
    let mut store = f.writer().await;
    let late = tcp("a:1", 5_000, Some(Reason::Refused));
    store
        .insert(&[tcp("a:1", 1_000, None), late.clone()])
        .await
        .unwrap();
    // An older record arriving later doesn't replace the latest.
    store.insert(&[tcp("a:1", 3_000, None)]).await.unwrap();
    store
        .insert(&[https("https://shop.test/", 2_000, Outcome::Degraded)])
        .await
        .unwrap();
    drop(store);
    let store = f.reader().await;
    let series = store.series().await.unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(
        (
            series[0].target.as_str(),
            series[0].last_unix_ms,
            series[0].last_outcome,
            series[0].last_reason
        ),
        ("a:1", 5_000, Outcome::Down, Some(Reason::Refused))
    );
    assert_eq!(series[1].domain.as_deref(), Some("example.test"));
    assert_eq!(series[1].endpoint.as_deref(), Some("api"));
    assert_eq!(series[1].kind, netvantage_core::CheckKind::Http);
}

/// Rolls every bucket that ended by `now` (passes until one does nothing).
async fn roll_all(store: &mut impl Store, now: i64) -> netvantage_store::Rolled {
    let mut total = netvantage_store::Rolled::default();
    for _ in 0..100 {
        let pass = store.roll_up(now).await.unwrap();
        for (sum, n) in total.rolled.iter_mut().zip(pass.rolled) {
            *sum += n;
        }
        total.discarded += pass.discarded;
        total.left = pass.left;
        if pass.total() == 0 && pass.discarded == 0 {
            return total;
        }
    }
    panic!("the roller never caught up");
}

/// Distinct buckets per tier the records fall in, in `Tier::ALL` order.
fn buckets_of(records: &[netvantage_core::ResultRecord]) -> [u64; 3] {
    let mut counts = [0; 3];
    for (i, tier) in Tier::ALL.into_iter().enumerate() {
        let starts: std::collections::BTreeSet<i64> = records
            .iter()
            .map(|r| tier.bucket_start(r.check.ts_unix_ms))
            .collect();
        counts[i] = starts.len() as u64;
    }
    counts
}

async fn the_roller_stores_what_reads_derived_and_leaves_nothing_pending(f: Fixture) {
    let mut store = f.writer().await;
    let records = mixed_records();
    for chunk in records.chunks(37) {
        store.insert(chunk).await.unwrap();
    }
    let expected = roll_up(&records);
    // Before the roller: every tier is derived on read, exactly.
    for (tier, rows) in &expected {
        assert_eq!(
            &tier_rows(&store, *tier).await,
            rows,
            "{tier:?} before rolling"
        );
    }
    let end = records.iter().map(|r| r.check.ts_unix_ms).max().unwrap();
    let rolled = roll_all(&mut store, end + 2 * DAY).await;
    let [_, hours, days] = buckets_of(&records);
    assert_eq!(
        rolled.rolled,
        [0, hours, days],
        "each hour and day rolled once; minutes are the raw rows' until retention"
    );
    assert_eq!((rolled.discarded, rolled.left), (0, 0));
    // Nothing is pending now, so these are the stored rows alone.
    drop(store);
    let store = f.reader().await;
    for (tier, rows) in &expected {
        assert_eq!(&tier_rows(&store, *tier).await, rows, "{tier:?} as rolled");
    }
    let series = store.series().await.unwrap();
    assert_eq!(series.len(), 5, "every series' latest check is stored");
    // Another pass finds nothing to do.
    let mut store = f.writer().await;
    assert_eq!(store.roll_up(end + 2 * DAY).await.unwrap().total(), 0);
}

async fn a_record_arriving_after_its_minute_was_rolled_is_rolled_in_once(f: Fixture) {
    let mut store = f.writer().await;
    let mut records = mixed_records();
    store.insert(&records).await.unwrap();
    let end = records.iter().map(|r| r.check.ts_unix_ms).max().unwrap();
    roll_all(&mut store, end + 2 * DAY).await;
    // A late record in a minute already rolled, and a redelivery of one stored before.
    let mut late = tcp("a:1", records[10].check.ts_unix_ms + 1, Some(Reason::Dns));
    late.check.latency_ms = 0.0;
    let written = store
        .insert(&[late.clone(), records[3].clone()])
        .await
        .unwrap();
    assert_eq!((written.inserted, written.duplicates), (1, 1));
    records.push(late);
    let expected = roll_up(&records);
    for (tier, rows) in &expected {
        assert_eq!(&tier_rows(&store, *tier).await, rows, "{tier:?} derived");
    }
    let rolled = roll_all(&mut store, end + 2 * DAY).await;
    assert_eq!(rolled.rolled, [0, 1, 1], "its hour and day again");
    for (tier, rows) in &expected {
        assert_eq!(
            &tier_rows(&store, *tier).await,
            rows,
            "{tier:?} rolled again"
        );
    }
}

async fn records_arriving_after_retention_dropped_their_minute_stay_raw_and_are_not_rolled(
    f: Fixture,
) {
    let mut store = f.writer().await;
    let now = 20_100 * DAY + 12 * HOUR;
    let old = tcp("a:1", now - 9 * DAY, None);
    store.insert(std::slice::from_ref(&old)).await.unwrap();
    store.prune(&Retention::default(), now).await.unwrap();
    // The minute was rolled up as its raw row went, and is kept (30 days of minutes).
    let minutes = tier_rows(&store, Tier::Minute).await;
    assert_eq!(minutes.len(), 1);
    assert_eq!(minutes[0].rollup.checks, 1);
    // A record of that minute arriving now can't be counted with the one retention dropped.
    let late = tcp("a:1", old.check.ts_unix_ms + 10, Some(Reason::Refused));
    assert_eq!(store.insert(&[late]).await.unwrap().inserted, 1);
    let rolled = roll_all(&mut store, now).await;
    assert_eq!(
        (rolled.rolled, rolled.discarded),
        ([0, 0, 0], 1),
        "its hour is discarded"
    );
    let minutes = tier_rows(&store, Tier::Minute).await;
    assert_eq!(
        (
            minutes.len(),
            minutes[0].rollup.checks,
            minutes[0].rollup.down
        ),
        (1, 1, 0),
        "the minute keeps what it counted"
    );
}

async fn only_ended_buckets_are_rolled_and_a_pass_stays_within_its_budget(f: Fixture) {
    let mut store = f.writer().await;
    let start = 20_200 * DAY;
    let budget = netvantage_store::roller::ROLL_BUDGET as i64;
    // A check an hour for more hours than one pass takes.
    let hours = budget + 30;
    let records: Vec<_> = (0..hours)
        .map(|i| tcp("a:1", start + i * HOUR, None))
        .collect();
    store.insert(&records).await.unwrap();
    let now = start + (hours - 1) * HOUR + 30 * MINUTE;
    let first = store.roll_up(now).await.unwrap();
    assert_eq!(
        first.total(),
        budget as u64,
        "one pass takes at most its budget"
    );
    let rest = roll_all(&mut store, now).await;
    // The last hour is still open at `now`, and so is its day.
    assert_eq!(first.rolled[1] + rest.rolled[1], hours as u64 - 1);
    let ended_days = (now - start) / DAY;
    assert_eq!(first.rolled[2] + rest.rolled[2], ended_days as u64);
    assert_eq!(rest.left, 2, "the open hour and day stay pending: {rest:?}");
    let days = tier_rows(&store, Tier::Day).await;
    assert_eq!(
        days.iter().map(|r| r.rollup.checks).sum::<u64>(),
        hours as u64,
        "the open buckets are derived on read"
    );
}

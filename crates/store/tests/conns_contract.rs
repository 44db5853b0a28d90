//! The connection log's part of the store contract ([`ConnsLog`]): every test runs against
//! each backend, as `sqlite::NAME` and `postgres::NAME` (the `contract!` of `support.rs`).

#[macro_use]
mod support;

use netvantage_core::{ConnsEvent, ConnsRecord};
use netvantage_store::conns_log::{self, summed};
use netvantage_store::conns_rollup::{self, ConnsRollupRow};
use netvantage_store::rollup::{PRUNE_BATCH, Tier};
use netvantage_store::{
    ConnectionCounts, ConnsKind, ConnsLog, ConnsQuery, ConnsRetention, TimeRange, Written,
};
use support::{Backend, Fixture};

contract!(
    scans_and_blocks_read_back_newest_first_in_their_window_and_by_host,
    pages_of_the_connection_log_walk_a_window_without_gaps_or_repeats,
    a_redelivered_connection_log_batch_is_stored_and_rolled_up_once,
    connection_log_retention_deletes_in_batches_what_it_no_longer_keeps,
);

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// 2026-11-23T15:00:00Z.
const NOW: i64 = 1_795_446_000_000;

const EVERYTHING: TimeRange = TimeRange {
    from_unix_ms: i64::MIN,
    until_unix_ms: i64::MAX,
};

fn record(host: &str, ts: i64, event: ConnsEvent) -> ConnsRecord {
    ConnsRecord::new(uuid::Uuid::now_v7(), host, ts, event)
}

fn connection(host: &str, ts: i64, destination: &str, direction: &str) -> ConnsRecord {
    record(
        host,
        ts,
        ConnsEvent::Connection {
            source: "[2001:db8::9]:40000".parse().unwrap(),
            destination: destination.parse().unwrap(),
            direction: direction.into(),
        },
    )
}

fn scan(host: &str, ts: i64, source: &str, ports: &[u16], closed: Option<u32>) -> ConnsRecord {
    record(
        host,
        ts,
        ConnsEvent::Scan {
            source: source.parse().unwrap(),
            destinations: vec!["10.0.0.5".parse().unwrap(), "2001:db8::5".parse().unwrap()],
            ports: ports.to_vec(),
            closed,
        },
    )
}

fn block(host: &str, ts: i64, target: &str, offenses: u32) -> ConnsRecord {
    record(
        host,
        ts,
        ConnsEvent::Block {
            target: target.into(),
            until_unix_ms: ts + 600_000,
            offenses,
        },
    )
}

fn range(from_unix_ms: i64, until_unix_ms: i64) -> TimeRange {
    TimeRange {
        from_unix_ms,
        until_unix_ms,
    }
}

async fn scans_and_blocks_read_back_newest_first_in_their_window_and_by_host(f: Fixture) {
    let mut store = f.writer().await;
    let scans = vec![
        scan(
            "web-1",
            NOW - 2 * HOUR,
            "192.0.2.7",
            &[22, 80, 443],
            Some(2),
        ),
        scan("web-2", NOW - HOUR, "2001:db8:1::7", &[1, 2, 3, 4, 5], None),
        scan("web-1", NOW - 30 * DAY, "192.0.2.8", &[25], Some(0)),
        // The window's end is excluded, its start included.
        scan("web-1", NOW, "192.0.2.9", &[8080], None),
    ];
    let blocks = vec![
        block("web-1", NOW - 2 * HOUR + 1, "192.0.2.7/32", 1),
        block("web-2", NOW - HOUR + 1, "2001:db8:1::/64", 3),
    ];
    let mut batch = scans.clone();
    batch.extend(blocks.clone());
    batch.push(connection("web-1", NOW - HOUR, "10.0.0.5:22", "inbound"));
    assert_eq!(store.insert_conns(&batch).await.unwrap().inserted, 7);
    drop(store);
    let store = f.reader().await;
    let day = range(NOW - DAY, NOW);
    let got = conns_log::scans(&store, &ConnsQuery::newest(day, 20))
        .await
        .unwrap();
    assert_eq!(got.total, 2);
    assert_eq!(
        got.records,
        vec![scans[1].clone(), scans[0].clone()],
        "newest first, exactly as written"
    );
    let got = conns_log::blocks(&store, &ConnsQuery::newest(day, 20))
        .await
        .unwrap();
    assert_eq!(got.records, vec![blocks[1].clone(), blocks[0].clone()]);
    // One host's.
    let web_1 = ConnsQuery {
        host: Some("web-1".into()),
        ..ConnsQuery::newest(EVERYTHING, 20)
    };
    let got = conns_log::scans(&store, &web_1).await.unwrap();
    assert_eq!(
        got.records,
        vec![scans[3].clone(), scans[0].clone(), scans[2].clone()]
    );
    assert_eq!(got.total, 3);
    let nobody = ConnsQuery {
        host: Some("db-1".into()),
        ..ConnsQuery::newest(EVERYTHING, 20)
    };
    assert_eq!(
        conns_log::blocks(&store, &nobody).await.unwrap().records,
        vec![]
    );
    // Each kind reads its own table only.
    let connections = store
        .recent(ConnsKind::Connection, &ConnsQuery::newest(EVERYTHING, 20))
        .await
        .unwrap();
    assert_eq!(connections.records, vec![batch[6].clone()]);
    assert_eq!(
        store.connection_counts(day, None).await.unwrap(),
        ConnectionCounts {
            inbound: 1,
            outbound: 0
        }
    );
}

async fn pages_of_the_connection_log_walk_a_window_without_gaps_or_repeats(f: Fixture) {
    let mut store = f.writer().await;
    // Ties in time are ordered by id, newest id first.
    let batch: Vec<_> = (0..23)
        .map(|i| scan("web-1", NOW - (i / 3) * 1_000, "192.0.2.1", &[22], None))
        .collect();
    store.insert_conns(&batch).await.unwrap();
    let mut expected = batch.clone();
    expected.sort_by_key(|r| std::cmp::Reverse((r.ts_unix_ms, r.id)));
    let mut walked = Vec::new();
    for page in 0..5u64 {
        let got = conns_log::scans(
            &store,
            &ConnsQuery {
                offset: page * 5,
                ..ConnsQuery::newest(EVERYTHING, 5)
            },
        )
        .await
        .unwrap();
        assert_eq!(got.total, 23);
        assert!(got.records.len() <= 5);
        walked.extend(got.records);
    }
    assert_eq!(walked, expected);
    // A limit past the maximum is clamped, not an error.
    let all = conns_log::scans(&store, &ConnsQuery::newest(EVERYTHING, u32::MAX))
        .await
        .unwrap();
    assert_eq!(all.records.len(), 23);
}

async fn a_redelivered_connection_log_batch_is_stored_and_rolled_up_once(f: Fixture) {
    let mut store = f.writer().await;
    let hour = Tier::Hour.bucket_start(NOW);
    let first = vec![
        connection("web-1", hour + 1, "10.0.0.5:22", "inbound"),
        connection("web-1", hour + 2, "10.0.0.5:22", "inbound"),
        connection("web-1", hour + 3, "203.0.113.9:443", "outbound"),
        scan("web-1", hour + 4, "192.0.2.7", &[22, 23], None),
    ];
    assert_eq!(
        store.insert_conns(&first).await.unwrap(),
        Written {
            inserted: 4,
            duplicates: 0,
            fresh: vec![0, 1, 2, 3]
        }
    );
    assert_eq!(
        store.insert_conns(&first).await.unwrap().duplicates,
        4,
        "the same batch redelivered"
    );
    // Redelivered records mixed with new ones, and a record twice in one batch.
    let (later, again) = (
        connection("web-1", hour + HOUR + 5, "10.0.0.5:22", "inbound"),
        connection("db-1", hour + 6, "10.0.0.6:5432", "inbound"),
    );
    let mixed = vec![
        first[0].clone(),
        later.clone(),
        again.clone(),
        again.clone(),
    ];
    let written = store.insert_conns(&mixed).await.unwrap();
    assert_eq!((written.inserted, written.duplicates), (2, 2));
    drop(store);
    let store = f.reader().await;
    let stored = store
        .recent(ConnsKind::Connection, &ConnsQuery::newest(EVERYTHING, 100))
        .await
        .unwrap();
    assert_eq!(stored.total, 5, "each connection once");
    // The roll-ups count each stored connection once: equal to rolling up the stored rows.
    let mut unique = first.clone();
    unique.extend([later, again]);
    for (tier, expected) in conns_rollup::roll_up(&unique) {
        let got = store.conns_rollups(tier, EVERYTHING, None).await.unwrap();
        assert_eq!(got, expected, "{tier:?}");
    }
    let row = |host: &str, port, start, inbound, outbound| ConnsRollupRow {
        host: host.into(),
        port,
        start_unix_ms: start,
        inbound,
        outbound,
    };
    let hours = store
        .conns_rollups(Tier::Hour, range(hour, hour + 2 * HOUR), Some("web-1"))
        .await
        .unwrap();
    assert_eq!(
        hours,
        vec![
            row("web-1", 22, hour, 2, 0),
            row("web-1", 22, hour + HOUR, 1, 0),
            row("web-1", 443, hour, 0, 1),
        ]
    );
    assert_eq!(
        summed(&hours),
        vec![row("web-1", 22, hour, 3, 0), row("web-1", 443, hour, 0, 1)]
    );
    assert_eq!(
        store
            .connection_counts(EVERYTHING, Some("web-1"))
            .await
            .unwrap(),
        ConnectionCounts {
            inbound: 3,
            outbound: 1
        }
    );
    // The window bounds the raw count: the later hour's connection only.
    assert_eq!(
        store
            .connection_counts(range(hour + HOUR, hour + 2 * HOUR), None)
            .await
            .unwrap()
            .total(),
        1
    );
}

async fn connection_log_retention_deletes_in_batches_what_it_no_longer_keeps(f: Fixture) {
    let mut store = f.writer().await;
    let retention = ConnsRetention::default();
    let keep = retention.connections_ms.unwrap();
    // More expired connections than one batch deletes, so it takes several statements.
    let expired = PRUNE_BATCH as usize + 7;
    let mut old: Vec<_> = (0..expired)
        .map(|i| connection("web-1", NOW - keep - 1 - i as i64, "10.0.0.5:22", "inbound"))
        .collect();
    old.push(scan("web-1", NOW - keep - 1, "192.0.2.7", &[22], None));
    old.push(block("web-1", NOW - keep - 1, "192.0.2.7/32", 1));
    for chunk in old.chunks(2_000) {
        store.insert_conns(chunk).await.unwrap();
    }
    let kept = vec![
        connection("web-1", NOW - keep, "10.0.0.5:22", "inbound"),
        scan("web-1", NOW - keep + 1, "192.0.2.7", &[22], None),
        block("web-1", NOW - 1, "192.0.2.7/32", 2),
    ];
    store.insert_conns(&kept).await.unwrap();
    let hours_before = hour_rows(&store).await.len();
    let pruned = store.prune_conns(&retention, NOW).await.unwrap();
    assert_eq!(pruned.records, [expired as u64, 1, 1]);
    assert_eq!(
        pruned.rollup_rows,
        [0, 0],
        "30-day-old hours are kept 400 days"
    );
    for (kind, left) in [
        (ConnsKind::Connection, &kept[0]),
        (ConnsKind::Scan, &kept[1]),
        (ConnsKind::Block, &kept[2]),
    ] {
        let got = store
            .recent(kind, &ConnsQuery::newest(EVERYTHING, 100))
            .await
            .unwrap();
        assert_eq!(got.records, vec![left.clone()], "{kind:?}");
    }
    // What lasts of the expired connections is their roll-ups.
    assert_eq!(hour_rows(&store).await.len(), hours_before);
    let total: u64 = summed(&hour_rows(&store).await)
        .iter()
        .map(|r| r.inbound)
        .sum();
    assert_eq!(total, expired as u64 + 1);
    // An hour goes once it ended 400 days ago; days stay.
    let pruned = store
        .prune_conns(&retention, NOW + 400 * DAY)
        .await
        .unwrap();
    assert_eq!(pruned.records, [1, 1, 1]);
    assert_eq!(pruned.rollup_rows[0], hours_before as u64);
    assert_eq!(pruned.rollup_rows[1], 0, "day roll-ups are kept forever");
    assert!(hour_rows(&store).await.is_empty());
    let days = store
        .conns_rollups(Tier::Day, EVERYTHING, None)
        .await
        .unwrap();
    assert_eq!(
        days.iter().map(|r| r.inbound).sum::<u64>(),
        expired as u64 + 1
    );
    // Nothing left to drop.
    let again = store
        .prune_conns(&retention, NOW + 400 * DAY)
        .await
        .unwrap();
    assert!(!again.any(), "{again:?}");
    // A reader never prunes.
    drop(store);
    let mut reader = f.reader().await;
    assert!(reader.prune_conns(&retention, NOW).await.is_err());
}

async fn hour_rows(store: &impl ConnsLog) -> Vec<ConnsRollupRow> {
    store
        .conns_rollups(Tier::Hour, EVERYTHING, None)
        .await
        .unwrap()
}

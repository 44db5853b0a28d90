//! Roll-ups of the connection log: per host, port and hour (and day), how many new connections
//! were inbound and how many outbound — what lasts of the `connections` table once its rows
//! are gone, and what the status page counts instead of reading raw rows.
//!
//! The port is the accepting end's (the record's `destination`): for an inbound connection the
//! local port that accepted it, for an outbound one the remote service's port. An outbound
//! connection's local port is ephemeral, so keying by it would make about one row per
//! connection; the service port is what a person asks about ("who connects to 22?", "how much
//! do we call out to 443?").
//!
//! Unlike the check results' roll-ups, which the roller ([`crate::roller`]) recomputes off the
//! write path, these are added in the insert's transaction: the connection log is inserted a
//! statement per record anyway, and its roll-up is one counter upsert per (host, port, bucket) of
//! the batch. Only what the insert actually stored ([`crate::Written::fresh`]) is counted, so a
//! redelivered record counts once, and merging is addition, so the figures don't depend on how
//! the writes were batched.

use crate::columns::Dialect;
use crate::rollup::Tier;
use netvantage_core::{ConnsEvent, ConnsRecord};
use std::collections::BTreeMap;

/// The tiers the connection log is rolled up into.
pub const TIERS: [Tier; 2] = [Tier::Hour, Tier::Day];

/// One host's new connections through one port over one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnsRollupRow {
    pub host: String,
    pub port: u16,
    pub start_unix_ms: i64,
    pub inbound: u64,
    pub outbound: u64,
}

/// The table of a tier.
pub fn table(tier: Tier) -> &'static str {
    match tier {
        Tier::Hour => "conns_rollups_hour",
        Tier::Day => "conns_rollups_day",
        Tier::Minute => panic!("the connection log has no minute roll-ups"),
    }
}

/// The rows of a batch of records, per tier in [`TIERS`] order, one per (host, port, bucket).
/// Records other than connections, and directions other than `inbound` / `outbound`, count
/// nowhere.
pub fn roll_up<'r>(
    records: impl IntoIterator<Item = &'r ConnsRecord>,
) -> Vec<(Tier, Vec<ConnsRollupRow>)> {
    // Per tier: (host, port, bucket start) → (inbound, outbound).
    type Counts<'a> = BTreeMap<(&'a str, u16, i64), (u64, u64)>;
    let mut tiers: [Counts<'_>; 2] = Default::default();
    for record in records {
        let ConnsEvent::Connection {
            destination,
            direction,
            ..
        } = &record.event
        else {
            continue;
        };
        let (inbound, outbound) = match direction.as_str() {
            "inbound" => (1, 0),
            "outbound" => (0, 1),
            _ => continue,
        };
        for (tier, rows) in TIERS.iter().zip(tiers.iter_mut()) {
            let key = (
                record.host.as_str(),
                destination.port(),
                tier.bucket_start(record.ts_unix_ms),
            );
            let counts = rows.entry(key).or_default();
            counts.0 += inbound;
            counts.1 += outbound;
        }
    }
    TIERS
        .into_iter()
        .zip(tiers)
        .map(|(tier, rows)| {
            let rows = rows
                .into_iter()
                .map(
                    |((host, port, start), (inbound, outbound))| ConnsRollupRow {
                        host: host.to_string(),
                        port,
                        start_unix_ms: start,
                        inbound,
                        outbound,
                    },
                )
                .collect();
            (tier, rows)
        })
        .collect()
}

fn placeholder(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("?{n}"),
        Dialect::Postgres => format!("${n}"),
    }
}

/// Migration 6's tables: one per tier, keyed by (host, port, start), with an index on the
/// start for windows across hosts and for retention.
pub fn create_tables(dialect: Dialect) -> Vec<String> {
    let (int, text, clustered) = match dialect {
        Dialect::Sqlite => ("INTEGER", "TEXT", " WITHOUT ROWID"),
        Dialect::Postgres => ("bigint", "text", ""),
    };
    TIERS
        .into_iter()
        .flat_map(|tier| {
            let table = table(tier);
            [
                format!(
                    "CREATE TABLE {table} (
    host {text} NOT NULL,
    port integer NOT NULL,
    start_unix_ms {int} NOT NULL,
    inbound {int} NOT NULL DEFAULT 0,
    outbound {int} NOT NULL DEFAULT 0,
    PRIMARY KEY (host, port, start_unix_ms)
){clustered}"
                ),
                format!("CREATE INDEX {table}_start ON {table} (start_unix_ms)"),
            ]
        })
        .collect()
}

/// Adds one row to a tier: a new bucket is inserted, a stored one adds the counts.
/// Parameters: host, port, start, inbound, outbound.
pub fn upsert(dialect: Dialect, tier: Tier) -> String {
    let table = table(tier);
    let p: Vec<String> = (1..=5).map(|n| placeholder(dialect, n)).collect();
    format!(
        "INSERT INTO {table} (host, port, start_unix_ms, inbound, outbound) VALUES ({})
         ON CONFLICT (host, port, start_unix_ms) DO UPDATE SET
           inbound = {table}.inbound + excluded.inbound,
           outbound = {table}.outbound + excluded.outbound",
        p.join(", ")
    )
}

/// A tier's rows whose start is in `[p1, p2)`, of one host (`p3`) or all, ordered by host,
/// port and start.
pub fn select(dialect: Dialect, tier: Tier, one_host: bool) -> String {
    let host = if one_host {
        format!(" AND host = {}", placeholder(dialect, 3))
    } else {
        String::new()
    };
    format!(
        "SELECT host, port, start_unix_ms, inbound, outbound FROM {}
         WHERE start_unix_ms >= {} AND start_unix_ms < {}{host}
         ORDER BY host, port, start_unix_ms",
        table(tier),
        placeholder(dialect, 1),
        placeholder(dialect, 2),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(host: &str, ts: i64, destination: &str, direction: &str) -> ConnsRecord {
        ConnsRecord::new(
            uuid::Uuid::now_v7(),
            host,
            ts,
            ConnsEvent::Connection {
                source: "192.0.2.1:40000".parse().unwrap(),
                destination: destination.parse().unwrap(),
                direction: direction.into(),
            },
        )
    }

    #[test]
    fn connections_count_per_host_service_port_and_bucket() {
        let hour = 3_600_000;
        let day = 24 * hour;
        let records = [
            connection("web-1", day + 5, "10.0.0.5:22", "inbound"),
            connection("web-1", day + 6, "10.0.0.5:22", "inbound"),
            connection("web-1", day + hour, "10.0.0.5:22", "inbound"),
            connection("web-1", day + 7, "203.0.113.9:443", "outbound"),
            connection("db-1", day + 8, "10.0.0.6:22", "inbound"),
            connection("web-1", day + 9, "10.0.0.5:22", "sideways"),
            ConnsRecord::new(
                uuid::Uuid::now_v7(),
                "web-1",
                day,
                ConnsEvent::Block {
                    target: "192.0.2.1/32".into(),
                    until_unix_ms: 0,
                    offenses: 1,
                },
            ),
        ];
        let tiers = roll_up(&records);
        let (tier, hourly) = &tiers[0];
        assert_eq!(*tier, Tier::Hour);
        let row = |host: &str, port: u16, start: i64| ConnsRollupRow {
            host: host.into(),
            port,
            start_unix_ms: start,
            inbound: 0,
            outbound: 0,
        };
        assert_eq!(
            *hourly,
            vec![
                ConnsRollupRow {
                    inbound: 1,
                    ..row("db-1", 22, day)
                },
                ConnsRollupRow {
                    inbound: 2,
                    ..row("web-1", 22, day)
                },
                ConnsRollupRow {
                    inbound: 1,
                    ..row("web-1", 22, day + hour)
                },
                ConnsRollupRow {
                    outbound: 1,
                    ..row("web-1", 443, day)
                },
            ]
        );
        let (tier, daily) = &tiers[1];
        assert_eq!(*tier, Tier::Day);
        assert_eq!(daily.len(), 3);
        assert_eq!(daily[1].inbound, 3, "both hours of web-1:22");
    }

    #[test]
    fn statements_name_each_tier_and_add_counts() {
        let sqlite = upsert(Dialect::Sqlite, Tier::Hour);
        assert!(sqlite.contains("VALUES (?1, ?2, ?3, ?4, ?5)"), "{sqlite}");
        assert!(sqlite.contains("inbound = conns_rollups_hour.inbound + excluded.inbound"));
        let pg = select(Dialect::Postgres, Tier::Day, true);
        assert!(pg.contains("FROM conns_rollups_day"), "{pg}");
        assert!(pg.contains("AND host = $3"), "{pg}");
        assert!(create_tables(Dialect::Sqlite)[0].ends_with("WITHOUT ROWID"));
    }
}

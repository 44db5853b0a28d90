//! One migrations design for both backends.
//!
//! The schema is an ordered list of [`Migration`]s. A store records each one it applied in
//! `netvantage_migrations (version, description, applied_at)` — the same table in SQLite and
//! PostgreSQL — and a writer applies the ones missing, in order, each in its own transaction:
//! PostgreSQL's under an advisory lock, SQLite's under the database's write lock
//! (`BEGIN IMMEDIATE`), so writers starting together apply each migration exactly once.
//! Readers never migrate.
//!
//! Never edit a migration that has shipped: add the next. The steps render per dialect, and
//! the `results` columns come from [`crate::columns::COLUMNS`] by their `since` version, so a
//! new record field is a column entry plus `Step::AddColumns` here.
//!
//! Stores made before this design are adopted: a SQLite file at `PRAGMA user_version = 1` has
//! its version 1 recorded in `netvantage_migrations` (PostgreSQL already had that table).

use crate::columns::{COLUMNS, Dialect, columns_at};

pub struct Migration {
    pub version: i32,
    pub description: &'static str,
    pub steps: &'static [Step],
}

pub enum Step {
    /// `results`, with the columns of this migration's version, its key and its indexes.
    /// PostgreSQL's is partitioned by day on `ts`, with key `(id, ts)` (a partitioned table's key
    /// must hold the partition column; `ts` never changes, so the key is as unique as the id)
    /// and `ingested_at`, the time of the insert.
    CreateResults,
    /// Adds the `results` columns whose `since` is this migration's version.
    AddColumns,
    /// The roll-up tiers and the `series` table ([`crate::rollup_sql::create_tables`]).
    CreateRollups,
    /// The connection log's tables (`connections`, `scans`, `blocks`) from
    /// [`crate::conns_tables::TABLES`].
    CreateConnsTables,
    /// The roller's marks and retention's marks ([`crate::rollup_sql::create_pending_tables`]).
    CreatePending,
    /// The connection log's roll-ups ([`crate::conns_rollup::create_tables`]) and its tables'
    /// `(host, ts)` indexes.
    CreateConnsRollups,
    /// The packed tiers' tables ([`crate::pack`]).
    CreatePacked,
    /// Anything else, spelled per dialect (`""`: nothing in that dialect).
    Sql {
        sqlite: &'static str,
        postgres: &'static str,
    },
}

/// The schema, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "results partitioned by day, rejected messages",
        steps: &[
            Step::CreateResults,
            Step::Sql {
                sqlite: "",
                postgres: "CREATE TABLE rejected_messages (
                    topic text NOT NULL,
                    kafka_partition integer NOT NULL,
                    kafka_offset bigint NOT NULL,
                    payload bytea,
                    error text NOT NULL,
                    received_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (topic, kafka_partition, kafka_offset)
                )",
            },
        ],
    },
    Migration {
        version: 2,
        description: "the record's schema version and its HTTP method, domain and certificate expiry",
        steps: &[Step::AddColumns],
    },
    Migration {
        version: 3,
        description: "roll-ups per minute, hour and day; the latest check per series",
        steps: &[Step::CreateRollups],
    },
    Migration {
        version: 4,
        description: "the connection log: connections, scans and blocks",
        steps: &[Step::CreateConnsTables],
    },
    Migration {
        version: 5,
        description: "roll-ups off the write path: pending buckets, what retention dropped",
        steps: &[Step::CreatePending],
    },
    Migration {
        version: 6,
        description: "the connection log's roll-ups per host, port, hour and day; its host indexes",
        steps: &[Step::CreateConnsRollups],
    },
    Migration {
        version: 7,
        description: "final hours packed a series-day a row",
        steps: &[Step::CreatePacked],
    },
];

/// The version a store is at once every migration is applied.
pub const LATEST: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The bookkeeping table, created before anything else.
pub(crate) fn bookkeeping(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => {
            "CREATE TABLE IF NOT EXISTS netvantage_migrations (
                version integer PRIMARY KEY,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())"
        }
        Dialect::Sqlite => {
            "CREATE TABLE IF NOT EXISTS netvantage_migrations (
                version INTEGER PRIMARY KEY,
                description TEXT NOT NULL,
                applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
        }
    }
}

impl Migration {
    /// The statements of this migration in `dialect`, as one batch.
    pub fn sql(&self, dialect: Dialect) -> String {
        let mut statements: Vec<String> = Vec::new();
        for step in self.steps {
            match step {
                Step::CreateResults => statements.extend(create_results(self.version, dialect)),
                Step::AddColumns => {
                    statements.extend(COLUMNS.iter().filter(|c| c.since == self.version).map(|c| {
                        format!("ALTER TABLE results ADD COLUMN {}", c.definition(dialect))
                    }))
                }
                Step::CreateRollups => statements.extend(crate::rollup_sql::create_tables(dialect)),
                Step::CreateConnsTables => {
                    statements.extend(crate::conns_tables::create_all(dialect))
                }
                Step::CreatePending => {
                    statements.extend(crate::rollup_sql::create_pending_tables(dialect))
                }
                Step::CreateConnsRollups => {
                    statements.extend(crate::conns_rollup::create_tables(dialect));
                    statements.extend(crate::conns_tables::host_indexes(dialect));
                }
                Step::CreatePacked => {
                    statements.extend(crate::rollup_sql::create_packed_tables(dialect))
                }
                Step::Sql { sqlite, postgres } => {
                    let sql = match dialect {
                        Dialect::Sqlite => sqlite,
                        Dialect::Postgres => postgres,
                    };
                    if !sql.is_empty() {
                        statements.push(sql.to_string());
                    }
                }
            }
        }
        statements.join(";\n")
    }
}

fn create_results(version: i32, dialect: Dialect) -> Vec<String> {
    let mut definitions: Vec<String> = columns_at(version).map(|c| c.definition(dialect)).collect();
    match dialect {
        Dialect::Postgres => {
            definitions.push("ingested_at timestamptz NOT NULL DEFAULT clock_timestamp()".into());
            definitions.push("PRIMARY KEY (id, ts)".into());
            vec![
                format!(
                    "CREATE TABLE results (\n    {}\n) PARTITION BY RANGE (ts)",
                    definitions.join(",\n    ")
                ),
                "CREATE INDEX results_target_ts ON results (target, ts)".into(),
            ]
        }
        Dialect::Sqlite => {
            definitions.push("PRIMARY KEY (id)".into());
            vec![
                format!(
                    "CREATE TABLE results (\n    {}\n)",
                    definitions.join(",\n    ")
                ),
                // Without partitions, the observations window is a range scan on `ts`.
                "CREATE INDEX results_target_ts ON results (target, ts_unix_ms)".into(),
                "CREATE INDEX results_ts ON results (ts_unix_ms)".into(),
            ]
        }
    }
}

/// The migrations a store that applied `applied` still needs, in order. A version this build
/// doesn't know means a newer netvantage has written the store: `Err` with that version.
pub fn pending(applied: &[i32]) -> Result<Vec<&'static Migration>, i32> {
    if let Some(unknown) = applied
        .iter()
        .find(|v| !MIGRATIONS.iter().any(|m| m.version == **v))
    {
        return Err(*unknown);
    }
    Ok(MIGRATIONS
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1);
        }
        assert_eq!(LATEST, MIGRATIONS.len() as i32);
    }

    #[test]
    fn every_column_is_created_by_exactly_one_migration() {
        for column in COLUMNS {
            let creating = MIGRATIONS.iter().filter(|m| m.version == column.since);
            let steps: Vec<_> = creating.flat_map(|m| m.steps).collect();
            let creates = steps.iter().any(|s| {
                matches!(s, Step::CreateResults) && column.since == 1
                    || matches!(s, Step::AddColumns) && column.since > 1
            });
            assert!(creates, "no migration creates column {}", column.name);
        }
    }

    #[test]
    fn pending_is_what_is_missing_in_order_and_refuses_unknown_versions() {
        let versions = |ms: Vec<&Migration>| ms.iter().map(|m| m.version).collect::<Vec<_>>();
        assert_eq!(
            versions(pending(&[]).unwrap()),
            (1..=LATEST).collect::<Vec<_>>()
        );
        assert_eq!(
            versions(pending(&[1]).unwrap()),
            (2..=LATEST).collect::<Vec<_>>()
        );
        assert!(
            pending(&(1..=LATEST).collect::<Vec<_>>())
                .unwrap()
                .is_empty()
        );
        assert_eq!(pending(&[1, LATEST + 1]).err(), Some(LATEST + 1));
    }

    #[test]
    fn version_one_is_the_layout_earlier_releases_made() {
        let postgres = MIGRATIONS[0].sql(Dialect::Postgres);
        assert!(postgres.contains("id uuid NOT NULL,\n    ts timestamptz NOT NULL,"));
        assert!(postgres.contains("endpoint text,\n    ingested_at timestamptz"));
        assert!(postgres.contains("PARTITION BY RANGE (ts)"));
        assert!(postgres.contains("CREATE TABLE rejected_messages"));
        let sqlite = MIGRATIONS[0].sql(Dialect::Sqlite);
        assert!(sqlite.contains("ts_unix_ms INTEGER NOT NULL"));
        assert!(sqlite.contains("body_matched INTEGER,\n    endpoint TEXT,\n    PRIMARY KEY (id)"));
        assert!(!sqlite.contains("rejected_messages"));
    }
}

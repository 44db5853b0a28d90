//! The embedded store: one SQLite file, the default sink when no cluster is configured, and a
//! source for `netvantage report`. Writes are batched in one transaction and idempotent on the
//! record id, like the PostgreSQL writer.

use crate::report::Observation;
use netvantage_core::ResultRecord;
use rusqlite::{Connection, params};
use std::path::Path;

/// Schema versions, applied in order; `PRAGMA user_version` records the last one applied.
const MIGRATIONS: &[&str] = &["CREATE TABLE results (
        id TEXT PRIMARY KEY,
        ts_unix_ms INTEGER NOT NULL,
        agent TEXT NOT NULL,
        vantage TEXT NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        address TEXT,
        outcome TEXT NOT NULL,
        reason TEXT,
        latency_ms REAL NOT NULL,
        error TEXT,
        status INTEGER,
        dns_ms REAL,
        connect_ms REAL,
        tls_ms REAL,
        first_byte_ms REAL,
        total_ms REAL,
        body_matched INTEGER,
        endpoint TEXT
    );
    CREATE INDEX results_target_ts ON results (target, ts_unix_ms);
    CREATE INDEX results_ts ON results (ts_unix_ms);"];

pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    pub fn open(path: &Path) -> rusqlite::Result<SqliteStore> {
        let mut conn = Connection::open(path)?;
        // WAL: `report` can read while the agent writes.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < MIGRATIONS.len() {
            let tx = conn.transaction()?;
            for migration in &MIGRATIONS[version..] {
                tx.execute_batch(migration)?;
            }
            tx.pragma_update(None, "user_version", MIGRATIONS.len())?;
            tx.commit()?;
        }
        Ok(SqliteStore { conn })
    }

    /// Inserts records in one transaction; a record already stored (same id) is skipped.
    /// Returns how many were new.
    pub fn insert(&mut self, records: &[ResultRecord]) -> rusqlite::Result<usize> {
        let tx = self.conn.transaction()?;
        let mut inserted = 0;
        {
            let mut statement = tx.prepare_cached(
                "INSERT OR IGNORE INTO results (id, ts_unix_ms, agent, vantage, kind, target,
                 address, outcome, reason, latency_ms, error, status, dns_ms, connect_ms, tls_ms,
                 first_byte_ms, total_ms, body_matched, endpoint)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17, ?18, ?19)",
            )?;
            for r in records {
                let c = &r.check;
                let phases = c.phases.clone().unwrap_or_default();
                inserted += statement.execute(params![
                    r.id.to_string(),
                    c.ts_unix_ms,
                    r.agent,
                    r.vantage,
                    c.kind.as_str(),
                    c.target,
                    c.address.map(|a| a.to_string()),
                    c.outcome.as_str(),
                    c.reason.map(|r| r.as_str()),
                    c.latency_ms,
                    c.error,
                    c.status,
                    phases.dns_ms,
                    phases.connect_ms,
                    phases.tls_ms,
                    phases.first_byte_ms,
                    phases.total_ms,
                    c.body_matched,
                    c.http.as_ref().map(|h| h.name.as_str()),
                ])?;
            }
        }
        tx.commit()?;
        Ok(inserted)
    }

    pub fn count(&self) -> rusqlite::Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM results", [], |r| r.get(0))
    }

    /// Every check at or after `since_unix_ms`, for `report`.
    pub fn observations(&self, since_unix_ms: i64) -> rusqlite::Result<Vec<Observation>> {
        let mut statement = self.conn.prepare(
            "SELECT target, vantage, ts_unix_ms, outcome, reason FROM results
             WHERE ts_unix_ms >= ?1",
        )?;
        let rows = statement.query_map([since_unix_ms], |row| {
            let outcome: String = row.get(3)?;
            let reason: Option<String> = row.get(4)?;
            Ok(Observation {
                target: row.get(0)?,
                vantage: row.get(1)?,
                ts_unix_ms: row.get(2)?,
                up: outcome != "down",
                reason: reason.as_deref().and_then(|r| r.parse().ok()),
            })
        })?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvantage_core::{CheckResult, Reason};
    use std::time::Duration;

    fn record(target: &str, ts: i64, failure: Option<Reason>) -> ResultRecord {
        ResultRecord {
            id: uuid::Uuid::now_v7(),
            agent: "a".into(),
            vantage: "lab".into(),
            check: CheckResult::tcp(
                target.into(),
                None,
                ts,
                Duration::from_millis(1),
                failure.map(|r| (r, r.to_string())),
            ),
        }
    }

    #[test]
    fn inserts_are_idempotent_and_read_back_as_observations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nv.db");
        let mut store = SqliteStore::open(&path).unwrap();
        let batch = vec![
            record("db:5432", 1_000, None),
            record("db:5432", 2_000, Some(Reason::Refused)),
        ];
        assert_eq!(store.insert(&batch).unwrap(), 2);
        assert_eq!(store.insert(&batch).unwrap(), 0, "same ids again");
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.count().unwrap(), 2);
        let mut seen = store.observations(1_500).unwrap();
        assert_eq!(seen.len(), 1);
        let o = seen.pop().unwrap();
        assert_eq!(
            (o.target.as_str(), o.up, o.reason),
            ("db:5432", false, Some(Reason::Refused))
        );
    }
}

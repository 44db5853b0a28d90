//! The connection log in SQLite: [`ConnsLog`] for [`SqliteStore`], and the roll-ups its insert
//! adds. Synchronous like the rest of the SQLite store; the trait's methods run in place.

use super::{SqliteStore, value_of};
use crate::columns::{Dialect, Value};
use crate::conns_log::{
    self, CONNS_ROLLUPS_SINCE, CONNS_SINCE, ConnectionCounts, ConnsKind, ConnsLog, ConnsPage,
    ConnsPruned, ConnsQuery, ConnsRetention,
};
use crate::conns_rollup::{self, ConnsRollupRow};
use crate::rollup::{PRUNE_BATCH, Tier};
use crate::{StoreError, TimeRange, Written, conns_tables};
use netvantage_core::ConnsRecord;
use rusqlite::params_from_iter;
use rusqlite::types::Value as Owned;
use std::sync::PoisonError;

/// Adds the connections this transaction stored (`fresh`: indexes into `records`) to the
/// roll-ups: a redelivered record, skipped by the insert, counts nowhere.
pub(super) fn roll_up_added(
    tx: &rusqlite::Transaction<'_>,
    records: &[ConnsRecord],
    fresh: &[usize],
) -> rusqlite::Result<()> {
    for (tier, rows) in conns_rollup::roll_up(fresh.iter().map(|&i| &records[i])) {
        let mut statement = tx.prepare_cached(&conns_rollup::upsert(Dialect::Sqlite, tier))?;
        for row in rows {
            statement.execute((
                &row.host,
                row.port,
                row.start_unix_ms,
                row.inbound as i64,
                row.outbound as i64,
            ))?;
        }
    }
    Ok(())
}

/// `from, until[, host]` as bound parameters.
fn window(range: TimeRange, host: Option<&str>) -> Vec<Owned> {
    let mut params = vec![
        Owned::Integer(range.from_unix_ms),
        Owned::Integer(range.until_unix_ms),
    ];
    if let Some(host) = host {
        params.push(Owned::Text(host.to_string()));
    }
    params
}

impl SqliteStore {
    fn recent_conns(&self, kind: ConnsKind, query: &ConnsQuery) -> Result<ConnsPage, StoreError> {
        if self.version < CONNS_SINCE {
            return Ok(ConnsPage::default());
        }
        let table = kind.table();
        let types: Vec<_> = table.types().collect();
        let host = query.host.as_deref();
        let conn = self.lock();
        let sqlite = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let total: i64 = conn
            .prepare_cached(&conns_log::count(Dialect::Sqlite, kind, host.is_some()))
            .and_then(|mut s| {
                s.query_row(params_from_iter(window(query.range, host)), |r| r.get(0))
            })
            .map_err(sqlite)?;
        let mut params = window(query.range, host);
        params.push(Owned::Integer(query.limit()));
        params.push(Owned::Integer(query.offset()));
        let text = conns_log::select_page(Dialect::Sqlite, kind, host.is_some());
        let mut statement = conn.prepare_cached(&text).map_err(sqlite)?;
        let mut rows = statement.query(params_from_iter(params)).map_err(sqlite)?;
        let mut records = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite)? {
            let record = types
                .iter()
                .enumerate()
                .map(|(i, ty)| {
                    let value = row.get_ref(i).map_err(|e| e.to_string())?;
                    value_of(*ty, value)
                })
                .collect::<Result<Vec<Value<'_>>, String>>()
                .and_then(|values| conns_tables::record_of(table, &values))
                .map_err(|why| StoreError::BadRow {
                    location: self.location(),
                    row: format!(
                        "{} {}",
                        table.name,
                        row.get::<_, String>(0).unwrap_or_else(|_| "?".into())
                    ),
                    why,
                })?;
            records.push(record);
        }
        Ok(ConnsPage {
            records,
            total: total.max(0) as u64,
        })
    }

    fn count_connections(
        &self,
        range: TimeRange,
        host: Option<&str>,
    ) -> Result<ConnectionCounts, StoreError> {
        let mut counts = ConnectionCounts::default();
        if self.version < CONNS_SINCE {
            return Ok(counts);
        }
        let conn = self.lock();
        let text = conns_log::count_by_direction(Dialect::Sqlite, host.is_some());
        let rows = conn
            .prepare_cached(&text)
            .and_then(|mut s| {
                s.query_map(params_from_iter(window(range, host)), |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sqlite(&self.path))?;
        for (direction, n) in rows {
            conns_log::add_direction(&mut counts, &direction, n);
        }
        Ok(counts)
    }

    fn read_conns_rollups(
        &self,
        tier: Tier,
        range: TimeRange,
        host: Option<&str>,
    ) -> Result<Vec<ConnsRollupRow>, StoreError> {
        if self.version < CONNS_ROLLUPS_SINCE {
            return Ok(Vec::new());
        }
        let conn = self.lock();
        let text = conns_rollup::select(Dialect::Sqlite, tier, host.is_some());
        conn.prepare_cached(&text)
            .and_then(|mut s| {
                s.query_map(params_from_iter(window(range, host)), |r| {
                    Ok(ConnsRollupRow {
                        host: r.get(0)?,
                        port: r.get(1)?,
                        start_unix_ms: r.get(2)?,
                        inbound: r.get::<_, i64>(3)?.max(0) as u64,
                        outbound: r.get::<_, i64>(4)?.max(0) as u64,
                    })
                })?
                .collect()
            })
            .map_err(StoreError::sqlite(&self.path))
    }

    /// See [`ConnsLog::prune_conns`]: each statement deletes at most [`PRUNE_BATCH`] rows in
    /// its own transaction, so the sink's writes go on between them. Synchronous, for the
    /// sink's thread.
    pub fn prune_conns(
        &mut self,
        retention: &ConnsRetention,
        now_unix_ms: i64,
    ) -> Result<ConnsPruned, StoreError> {
        self.writable()?;
        let mut pruned = ConnsPruned::default();
        for (i, kind) in ConnsKind::ALL.into_iter().enumerate() {
            if let Some(keep) = retention.of(kind) {
                let text = conns_log::delete_records(Dialect::Sqlite, kind);
                pruned.records[i] = self.delete_in_batches(&text, now_unix_ms - keep)?;
            }
        }
        for (i, tier) in conns_rollup::TIERS.into_iter().enumerate() {
            if let Some(keep) = retention.of_tier(tier) {
                let below = conns_log::first_kept_start(tier, now_unix_ms, keep);
                let text = conns_log::delete_rollups(Dialect::Sqlite, tier);
                pruned.rollup_rows[i] = self.delete_in_batches(&text, below)?;
            }
        }
        Ok(pruned)
    }

    /// Runs `text` (a delete of at most `?2` rows below `?1`) until a batch comes back short.
    fn delete_in_batches(&mut self, text: &str, below: i64) -> Result<u64, StoreError> {
        let path = self.path.clone();
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut deleted = 0u64;
        loop {
            let n = conn
                .prepare_cached(text)
                .and_then(|mut s| s.execute((below, PRUNE_BATCH)))
                .map_err(StoreError::sqlite(&path))?;
            deleted += n as u64;
            if (n as i64) < PRUNE_BATCH {
                return Ok(deleted);
            }
        }
    }
}

impl ConnsLog for SqliteStore {
    async fn insert_conns(&mut self, records: &[ConnsRecord]) -> Result<Written, StoreError> {
        SqliteStore::insert_conns(self, records)
    }

    async fn recent(&self, kind: ConnsKind, query: &ConnsQuery) -> Result<ConnsPage, StoreError> {
        self.recent_conns(kind, query)
    }

    async fn connection_counts(
        &self,
        range: TimeRange,
        host: Option<&str>,
    ) -> Result<ConnectionCounts, StoreError> {
        self.count_connections(range, host)
    }

    async fn conns_rollups(
        &self,
        tier: Tier,
        range: TimeRange,
        host: Option<&str>,
    ) -> Result<Vec<ConnsRollupRow>, StoreError> {
        self.read_conns_rollups(tier, range, host)
    }

    async fn prune_conns(
        &mut self,
        retention: &ConnsRetention,
        now_unix_ms: i64,
    ) -> Result<ConnsPruned, StoreError> {
        SqliteStore::prune_conns(self, retention, now_unix_ms)
    }
}

//! The connection log in PostgreSQL: [`ConnsLog`] for [`PgStore`], and the insert (with its
//! roll-ups) that `write_with_conns` runs in the batch's transaction.

use super::{PgStore, PgTime, pg, value_of};
use crate::columns::Dialect;
use crate::conns_log::{
    self, CONNS_ROLLUPS_SINCE, CONNS_SINCE, ConnectionCounts, ConnsKind, ConnsLog, ConnsPage,
    ConnsPruned, ConnsQuery, ConnsRetention,
};
use crate::conns_rollup::{self, ConnsRollupRow};
use crate::rollup::{PRUNE_BATCH, Tier};
use crate::{StoreError, TimeRange, Written, conns_tables};
use netvantage_core::ConnsRecord;
use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;

/// Inserts each record into its kind's table inside `tx`, skipping ids stored before, and
/// rolls up the connections it added (`version`: the store's schema, which says whether it has
/// roll-ups). A redelivered record is a duplicate and counts nowhere.
pub(super) async fn write(
    tx: &Transaction<'_>,
    records: &[ConnsRecord],
    version: i32,
) -> Result<Written, StoreError> {
    let mut fresh = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let table = conns_tables::table_of(record);
        let values = conns_tables::values(record);
        let params: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let inserted = tx
            .execute(&table.insert(Dialect::Postgres), &params)
            .await
            .map_err(pg("writing a connection-log record"))?;
        if inserted == 1 {
            fresh.push(i);
        }
    }
    if version >= CONNS_ROLLUPS_SINCE && !fresh.is_empty() {
        for (tier, rows) in conns_rollup::roll_up(fresh.iter().map(|&i| &records[i])) {
            let text = conns_rollup::upsert(Dialect::Postgres, tier);
            for row in rows {
                let (port, inbound, outbound) =
                    (i32::from(row.port), row.inbound as i64, row.outbound as i64);
                tx.execute(
                    &text,
                    &[&row.host, &port, &row.start_unix_ms, &inbound, &outbound],
                )
                .await
                .map_err(pg("adding to the connection roll-ups"))?;
            }
        }
    }
    Ok(Written::from_fresh(records.len(), fresh))
}

impl PgStore {
    async fn recent_conns(
        &self,
        kind: ConnsKind,
        query: &ConnsQuery,
    ) -> Result<ConnsPage, StoreError> {
        if self.version < CONNS_SINCE {
            return Ok(ConnsPage::default());
        }
        let table = kind.table();
        let types: Vec<_> = table.types().collect();
        let (from, until) = (
            PgTime(query.range.from_unix_ms),
            PgTime(query.range.until_unix_ms),
        );
        let (limit, offset) = (query.limit(), query.offset());
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from, &until];
        if let Some(host) = &query.host {
            params.push(host);
        }
        let one_host = query.host.is_some();
        let total: i64 = self
            .client
            .query_one(
                &conns_log::count(Dialect::Postgres, kind, one_host),
                &params,
            )
            .await
            .map_err(pg("counting connection-log records"))?
            .get(0);
        params.push(&limit);
        params.push(&offset);
        let rows = self
            .client
            .query(
                &conns_log::select_page(Dialect::Postgres, kind, one_host),
                &params,
            )
            .await
            .map_err(pg("reading connection-log records"))?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let record = types
                .iter()
                .enumerate()
                .map(|(i, ty)| value_of(row, i, *ty).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, String>>()
                .and_then(|values| conns_tables::record_of(table, &values))
                .map_err(|why| StoreError::BadRow {
                    location: self.location.clone(),
                    row: format!(
                        "{} {}",
                        table.name,
                        row.try_get::<_, uuid::Uuid>(0)
                            .map_or_else(|_| "?".into(), |id| id.to_string())
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

    async fn count_connections(
        &self,
        range: TimeRange,
        host: Option<&str>,
    ) -> Result<ConnectionCounts, StoreError> {
        let mut counts = ConnectionCounts::default();
        if self.version < CONNS_SINCE {
            return Ok(counts);
        }
        let (from, until) = (PgTime(range.from_unix_ms), PgTime(range.until_unix_ms));
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from, &until];
        if let Some(host) = &host {
            params.push(host);
        }
        let rows = self
            .client
            .query(
                &conns_log::count_by_direction(Dialect::Postgres, host.is_some()),
                &params,
            )
            .await
            .map_err(pg("counting connections"))?;
        for row in &rows {
            conns_log::add_direction(&mut counts, row.get(0), row.get(1));
        }
        Ok(counts)
    }

    async fn read_conns_rollups(
        &self,
        tier: Tier,
        range: TimeRange,
        host: Option<&str>,
    ) -> Result<Vec<ConnsRollupRow>, StoreError> {
        if self.version < CONNS_ROLLUPS_SINCE {
            return Ok(Vec::new());
        }
        let (from, until) = (range.from_unix_ms, range.until_unix_ms);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from, &until];
        if let Some(host) = &host {
            params.push(host);
        }
        let rows = self
            .client
            .query(
                &conns_rollup::select(Dialect::Postgres, tier, host.is_some()),
                &params,
            )
            .await
            .map_err(pg("reading the connection roll-ups"))?;
        Ok(rows
            .iter()
            .map(|r| ConnsRollupRow {
                host: r.get(0),
                port: u16::try_from(r.get::<_, i32>(1)).unwrap_or(0),
                start_unix_ms: r.get(2),
                inbound: r.get::<_, i64>(3).max(0) as u64,
                outbound: r.get::<_, i64>(4).max(0) as u64,
            })
            .collect())
    }

    /// Runs `text` (a delete of at most `$2` rows below `$1`) until a batch comes back short;
    /// each statement is its own transaction.
    async fn delete_in_batches(
        &self,
        text: &str,
        below: &(dyn ToSql + Sync),
    ) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            let n = self
                .client
                .execute(text, &[below, &PRUNE_BATCH])
                .await
                .map_err(pg("dropping what the connection log no longer keeps"))?;
            deleted += n;
            if (n as i64) < PRUNE_BATCH {
                return Ok(deleted);
            }
        }
    }

    async fn prune_conns_now(
        &mut self,
        retention: &ConnsRetention,
        now_unix_ms: i64,
    ) -> Result<ConnsPruned, StoreError> {
        self.writable()?;
        let mut pruned = ConnsPruned::default();
        for (i, kind) in ConnsKind::ALL.into_iter().enumerate() {
            if let Some(keep) = retention.of(kind) {
                let text = conns_log::delete_records(Dialect::Postgres, kind);
                pruned.records[i] = self
                    .delete_in_batches(&text, &PgTime(now_unix_ms - keep))
                    .await?;
            }
        }
        for (i, tier) in conns_rollup::TIERS.into_iter().enumerate() {
            if let Some(keep) = retention.of_tier(tier) {
                let below = conns_log::first_kept_start(tier, now_unix_ms, keep);
                let text = conns_log::delete_rollups(Dialect::Postgres, tier);
                pruned.rollup_rows[i] = self.delete_in_batches(&text, &below).await?;
            }
        }
        Ok(pruned)
    }
}

impl ConnsLog for PgStore {
    async fn insert_conns(&mut self, records: &[ConnsRecord]) -> Result<Written, StoreError> {
        self.writable()?;
        let tx = self
            .client
            .transaction()
            .await
            .map_err(pg("writing connection-log records"))?;
        let written = write(&tx, records, self.version).await?;
        tx.commit()
            .await
            .map_err(pg("committing connection-log records"))?;
        Ok(written)
    }

    async fn recent(&self, kind: ConnsKind, query: &ConnsQuery) -> Result<ConnsPage, StoreError> {
        self.recent_conns(kind, query).await
    }

    async fn connection_counts(
        &self,
        range: TimeRange,
        host: Option<&str>,
    ) -> Result<ConnectionCounts, StoreError> {
        self.count_connections(range, host).await
    }

    async fn conns_rollups(
        &self,
        tier: Tier,
        range: TimeRange,
        host: Option<&str>,
    ) -> Result<Vec<ConnsRollupRow>, StoreError> {
        self.read_conns_rollups(tier, range, host).await
    }

    async fn prune_conns(
        &mut self,
        retention: &ConnsRetention,
        now_unix_ms: i64,
    ) -> Result<ConnsPruned, StoreError> {
        self.prune_conns_now(retention, now_unix_ms).await
    }
}

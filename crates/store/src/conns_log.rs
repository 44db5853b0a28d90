//! Reading, rolling up and pruning the connection log (`connections`, `scans`, `blocks`): the
//! [`ConnsLog`] trait both backends implement, and the statements they share, spelled per
//! dialect from [`crate::conns_tables`].
//!
//! A trait of its own beside [`crate::Store`]: the connection log is a second kind of record
//! with its own reads (newest first, by host) and its own retention, and a command that reads
//! only check results (`report`) needn't know it. The contract tests run it on both backends.
//!
//! Every read is bounded: a time window on the indexed `ts` (and `host`), a `LIMIT`, and the
//! count of the same window. Retention deletes in batches of [`crate::rollup::PRUNE_BATCH`]
//! rows, each its own statement (and transaction), never one long `DELETE`.

use crate::columns::Dialect;
use crate::conns_rollup::{self, ConnsRollupRow};
use crate::conns_tables::{ConnsTable, table_named};
use crate::rollup::Tier;
use crate::{AnyStore, StoreError, TimeRange, Written};
use netvantage_core::ConnsRecord;
use std::future::Future;

/// The schema version that has the connection log's tables: a reader of an older store finds
/// no records.
pub const CONNS_SINCE: i32 = 4;

/// The schema version that has their roll-ups and host indexes.
pub const CONNS_ROLLUPS_SINCE: i32 = 6;

/// Which records a list reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnsKind {
    Connection,
    Scan,
    Block,
}

impl ConnsKind {
    pub const ALL: [ConnsKind; 3] = [ConnsKind::Connection, ConnsKind::Scan, ConnsKind::Block];

    /// The record's `record` tag.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnsKind::Connection => "connection",
            ConnsKind::Scan => "scan",
            ConnsKind::Block => "block",
        }
    }

    pub fn table(self) -> &'static ConnsTable {
        table_named(self.as_str())
    }
}

/// Records of one kind in a time range, newest first (ties by id, descending), a page at a
/// time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnsQuery {
    pub range: TimeRange,
    /// One host's records, or every host's.
    pub host: Option<String>,
    /// At most this many (1 to [`ConnsQuery::MAX_LIMIT`]; clamped).
    pub limit: u32,
    /// Skip this many first (a page's offset).
    pub offset: u64,
}

impl ConnsQuery {
    pub const MAX_LIMIT: u32 = 1_000;

    /// The newest `limit` records in `range`, of every host.
    pub fn newest(range: TimeRange, limit: u32) -> ConnsQuery {
        ConnsQuery {
            range,
            host: None,
            limit,
            offset: 0,
        }
    }

    pub(crate) fn limit(&self) -> i64 {
        i64::from(self.limit.clamp(1, Self::MAX_LIMIT))
    }

    pub(crate) fn offset(&self) -> i64 {
        i64::try_from(self.offset).unwrap_or(i64::MAX)
    }
}

/// A page of records and how many the whole range holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnsPage {
    pub records: Vec<ConnsRecord>,
    pub total: u64,
}

/// New connections by direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    pub inbound: u64,
    pub outbound: u64,
}

impl ConnectionCounts {
    pub fn total(&self) -> u64 {
        self.inbound + self.outbound
    }
}

/// How long the connection log is kept; `None`: forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnsRetention {
    /// `connections`: the bulk of the log.
    pub connections_ms: Option<i64>,
    pub scans_ms: Option<i64>,
    pub blocks_ms: Option<i64>,
    pub hour_ms: Option<i64>,
    pub day_ms: Option<i64>,
}

impl Default for ConnsRetention {
    /// Records 30 days (they hold remote addresses, personal data in many places), hour
    /// roll-ups 400 days and day roll-ups forever (host and port only), as the check results'.
    fn default() -> Self {
        const DAY: i64 = 86_400_000;
        ConnsRetention {
            connections_ms: Some(30 * DAY),
            scans_ms: Some(30 * DAY),
            blocks_ms: Some(30 * DAY),
            hour_ms: Some(400 * DAY),
            day_ms: None,
        }
    }
}

impl ConnsRetention {
    pub fn of(&self, kind: ConnsKind) -> Option<i64> {
        match kind {
            ConnsKind::Connection => self.connections_ms,
            ConnsKind::Scan => self.scans_ms,
            ConnsKind::Block => self.blocks_ms,
        }
    }

    pub fn of_tier(&self, tier: Tier) -> Option<i64> {
        match tier {
            Tier::Hour => self.hour_ms,
            Tier::Day => self.day_ms,
            Tier::Minute => None,
        }
    }
}

/// What a retention pass of the connection log removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnsPruned {
    /// Records deleted, per kind in [`ConnsKind::ALL`] order.
    pub records: [u64; 3],
    /// Roll-up rows deleted, per tier in [`conns_rollup::TIERS`] order.
    pub rollup_rows: [u64; 2],
}

impl ConnsPruned {
    pub fn any(&self) -> bool {
        self.records.iter().chain(&self.rollup_rows).any(|n| *n > 0)
    }
}

/// The connection log of a store. Implemented by [`crate::SqliteStore`], [`crate::PgStore`]
/// and [`AnyStore`]; `tests/contract.rs` runs every test against each backend.
pub trait ConnsLog: Send + Sync {
    /// Stores a batch in one transaction, each record in its kind's table, a record whose id
    /// is stored already skipped; the connections it added are rolled up in the same
    /// transaction.
    fn insert_conns(
        &mut self,
        records: &[ConnsRecord],
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// A page of one kind's records in a time range, newest first, and the range's count.
    fn recent(
        &self,
        kind: ConnsKind,
        query: &ConnsQuery,
    ) -> impl Future<Output = Result<ConnsPage, StoreError>> + Send;

    /// New connections in a time range by direction, counted from the raw rows (for a window
    /// longer than the raw retention, or cheaper, sum [`ConnsLog::conns_rollups`]).
    fn connection_counts(
        &self,
        range: TimeRange,
        host: Option<&str>,
    ) -> impl Future<Output = Result<ConnectionCounts, StoreError>> + Send;

    /// A tier's roll-up rows whose bucket starts in `range`, ordered by host, port, start.
    fn conns_rollups(
        &self,
        tier: Tier,
        range: TimeRange,
        host: Option<&str>,
    ) -> impl Future<Output = Result<Vec<ConnsRollupRow>, StoreError>> + Send;

    /// Drops what `retention` no longer keeps as of `now_unix_ms`, in bounded batches.
    fn prune_conns(
        &mut self,
        retention: &ConnsRetention,
        now_unix_ms: i64,
    ) -> impl Future<Output = Result<ConnsPruned, StoreError>> + Send;
}

/// The newest scans in `query`'s range.
pub async fn scans<S: ConnsLog>(store: &S, query: &ConnsQuery) -> Result<ConnsPage, StoreError> {
    store.recent(ConnsKind::Scan, query).await
}

/// The newest blocks in `query`'s range.
pub async fn blocks<S: ConnsLog>(store: &S, query: &ConnsQuery) -> Result<ConnsPage, StoreError> {
    store.recent(ConnsKind::Block, query).await
}

/// Each (host, port)'s roll-up rows of a tier added up over `range`: one row per pair, its
/// start the first bucket's.
pub fn summed(rows: &[ConnsRollupRow]) -> Vec<ConnsRollupRow> {
    let mut sums: std::collections::BTreeMap<(&str, u16), ConnsRollupRow> = Default::default();
    for row in rows {
        let sum = sums
            .entry((row.host.as_str(), row.port))
            .or_insert_with(|| ConnsRollupRow {
                inbound: 0,
                outbound: 0,
                ..row.clone()
            });
        sum.inbound += row.inbound;
        sum.outbound += row.outbound;
        sum.start_unix_ms = sum.start_unix_ms.min(row.start_unix_ms);
    }
    sums.into_values().collect()
}

fn placeholder(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("?{n}"),
        Dialect::Postgres => format!("${n}"),
    }
}

/// `WHERE ts >= p1 AND ts < p2 [AND host = p3]`.
fn window(dialect: Dialect, one_host: bool) -> String {
    let ts = ConnsTable::ts(dialect);
    let host = if one_host {
        format!(" AND host = {}", placeholder(dialect, 3))
    } else {
        String::new()
    };
    format!(
        "WHERE {ts} >= {} AND {ts} < {}{host}",
        placeholder(dialect, 1),
        placeholder(dialect, 2)
    )
}

/// A page of a table's records: parameters from, until, [host,] limit, offset.
pub(crate) fn select_page(dialect: Dialect, kind: ConnsKind, one_host: bool) -> String {
    let table = kind.table();
    let ts = ConnsTable::ts(dialect);
    let next = if one_host { 4 } else { 3 };
    format!(
        "SELECT {} FROM {} {} ORDER BY {ts} DESC, id DESC LIMIT {} OFFSET {}",
        table.select_list(dialect),
        table.name,
        window(dialect, one_host),
        placeholder(dialect, next),
        placeholder(dialect, next + 1)
    )
}

/// How many records of a table the window holds: parameters from, until, [host].
pub(crate) fn count(dialect: Dialect, kind: ConnsKind, one_host: bool) -> String {
    format!(
        "SELECT count(*) FROM {} {}",
        kind.table().name,
        window(dialect, one_host)
    )
}

/// Connections per direction in a window: parameters from, until, [host].
pub(crate) fn count_by_direction(dialect: Dialect, one_host: bool) -> String {
    format!(
        "SELECT direction, count(*) FROM connections {} GROUP BY direction",
        window(dialect, one_host)
    )
}

/// Deletes at most `LIMIT` (parameter 2) rows of a record table older than parameter 1.
pub(crate) fn delete_records(dialect: Dialect, kind: ConnsKind) -> String {
    let table = kind.table().name;
    let ts = ConnsTable::ts(dialect);
    match dialect {
        Dialect::Sqlite => format!(
            "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {ts} < ?1 LIMIT ?2)"
        ),
        Dialect::Postgres => format!(
            "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {ts} < $1 LIMIT $2))"
        ),
    }
}

/// Deletes at most `LIMIT` (parameter 2) roll-up rows of a tier that start below parameter 1.
pub(crate) fn delete_rollups(dialect: Dialect, tier: Tier) -> String {
    let table = conns_rollup::table(tier);
    match dialect {
        // WITHOUT ROWID: the key picks the rows.
        Dialect::Sqlite => format!(
            "DELETE FROM {table} WHERE (host, port, start_unix_ms) IN
             (SELECT host, port, start_unix_ms FROM {table} WHERE start_unix_ms < ?1 LIMIT ?2)"
        ),
        Dialect::Postgres => format!(
            "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE start_unix_ms < $1 LIMIT $2))"
        ),
    }
}

/// Adds a direction's count (as read from [`count_by_direction`]) to `counts`.
pub(crate) fn add_direction(counts: &mut ConnectionCounts, direction: &str, n: i64) {
    let n = n.max(0) as u64;
    match direction {
        "inbound" => counts.inbound += n,
        "outbound" => counts.outbound += n,
        _ => {}
    }
}

/// A record's bucket is gone once it ended at or before `now - keep`.
pub(crate) fn first_kept_start(tier: Tier, now_unix_ms: i64, keep_ms: i64) -> i64 {
    now_unix_ms - keep_ms - tier.millis() + 1
}

impl ConnsLog for AnyStore {
    async fn insert_conns(&mut self, records: &[ConnsRecord]) -> Result<Written, StoreError> {
        match self {
            AnyStore::Sqlite(s) => ConnsLog::insert_conns(s, records).await,
            AnyStore::Postgres(s) => ConnsLog::insert_conns(s, records).await,
        }
    }

    async fn recent(&self, kind: ConnsKind, query: &ConnsQuery) -> Result<ConnsPage, StoreError> {
        match self {
            AnyStore::Sqlite(s) => ConnsLog::recent(s, kind, query).await,
            AnyStore::Postgres(s) => ConnsLog::recent(s, kind, query).await,
        }
    }

    async fn connection_counts(
        &self,
        range: TimeRange,
        host: Option<&str>,
    ) -> Result<ConnectionCounts, StoreError> {
        match self {
            AnyStore::Sqlite(s) => ConnsLog::connection_counts(s, range, host).await,
            AnyStore::Postgres(s) => ConnsLog::connection_counts(s, range, host).await,
        }
    }

    async fn conns_rollups(
        &self,
        tier: Tier,
        range: TimeRange,
        host: Option<&str>,
    ) -> Result<Vec<ConnsRollupRow>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => ConnsLog::conns_rollups(s, tier, range, host).await,
            AnyStore::Postgres(s) => ConnsLog::conns_rollups(s, tier, range, host).await,
        }
    }

    async fn prune_conns(
        &mut self,
        retention: &ConnsRetention,
        now_unix_ms: i64,
    ) -> Result<ConnsPruned, StoreError> {
        match self {
            AnyStore::Sqlite(s) => ConnsLog::prune_conns(s, retention, now_unix_ms).await,
            AnyStore::Postgres(s) => ConnsLog::prune_conns(s, retention, now_unix_ms).await,
        }
    }
}

// Compile-time checks that each backend keeps the connection log.
const _: () = {
    const fn is_log<S: ConnsLog>() {}
    is_log::<crate::SqliteStore>();
    is_log::<crate::PgStore>();
    is_log::<AnyStore>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_read_newest_first_in_each_dialect() {
        let sqlite = select_page(Dialect::Sqlite, ConnsKind::Scan, false);
        assert!(sqlite.starts_with("SELECT id, ts_unix_ms, host, schema, source,"));
        assert!(
            sqlite.ends_with(
                "FROM scans WHERE ts_unix_ms >= ?1 AND ts_unix_ms < ?2 ORDER BY ts_unix_ms DESC, id DESC LIMIT ?3 OFFSET ?4"
            ),
            "{sqlite}"
        );
        let pg = select_page(Dialect::Postgres, ConnsKind::Block, true);
        assert!(
            pg.ends_with("AND host = $3 ORDER BY ts DESC, id DESC LIMIT $4 OFFSET $5"),
            "{pg}"
        );
        assert!(pg.contains("expires"), "{pg}");
        assert_eq!(
            count(Dialect::Postgres, ConnsKind::Connection, false),
            "SELECT count(*) FROM connections WHERE ts >= $1 AND ts < $2"
        );
    }

    #[test]
    fn sums_add_up_each_host_and_port() {
        let row = |host: &str, port, start, inbound, outbound| ConnsRollupRow {
            host: String::from(host),
            port,
            start_unix_ms: start,
            inbound,
            outbound,
        };
        let rows = [
            row("a", 22, 7, 1, 0),
            row("a", 22, 3, 2, 1),
            row("a", 80, 5, 0, 4),
        ];
        assert_eq!(
            summed(&rows),
            vec![row("a", 22, 3, 3, 1), row("a", 80, 5, 0, 4)]
        );
    }
}

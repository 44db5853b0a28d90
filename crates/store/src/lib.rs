//! netvantage's result store: every [`ResultRecord`] the agents produce, kept in the embedded
//! SQLite file (the default) or in PostgreSQL (what `ingest` writes), behind one [`Store`] trait.
//!
//! - [`columns`]: the one description of a stored record's columns; the DDL, the inserts, the
//!   `COPY` and the row mappers of both backends are generated from it.
//! - [`conns_tables`]: the connection log's tables (`connections`, `scans`, `blocks`), one
//!   description each, keyed by record id like `results`; [`conns_log`]: the [`ConnsLog`]
//!   trait that reads (newest first), rolls up ([`conns_rollup`]) and prunes them.
//! - [`migrations`]: one ordered list of migrations and one bookkeeping table
//!   (`netvantage_migrations`) for both backends; stores made by earlier releases are adopted.
//! - [`sqlite`] and [`postgres`]: the two backends. SQLite is blocking and also offers a plain
//!   synchronous API for the agent's sink thread; PostgreSQL keeps `results` in day partitions
//!   and writes batches by binary `COPY`, exactly once per record id.
//! - [`AnyStore`]: the backend chosen at run time (`--postgres URL`, else the SQLite file).
//!
//! - [`rollup`] and [`roller`]: the minute, hour and day roll-ups. A write only stores raw
//!   rows and marks their minutes pending; the roller ([`Store::roll_up`], run by the writer
//!   every few seconds and before retention) recomputes ended buckets from the finer tier, and
//!   reads derive the buckets it hasn't reached yet, so reads are as fresh as the writes.
//!
//! Extending it: a new record field is one entry in [`columns::COLUMNS`] and one migration;
//! anything derived from the rows (issue 13's roll-ups) is another migration, recomputed from
//! the raw rows off the write path, so that a redelivered record (stored once) counts once.
//!
//! What it must not do: judge (that is `netvantage_core::vantage`, which reads the
//! [`Observation`]s this crate returns), know about Kafka (ingest hands it records and the
//! messages it rejected), print, or decide exit codes ([`StoreError::is_usage`] says which
//! errors are the user's). A reader never writes: it opens read-only, never migrates, and
//! refuses a file or database that isn't a netvantage store without changing it.

pub mod columns;
pub mod conns_log;
pub mod conns_rollup;
pub mod conns_tables;
pub mod error;
pub mod migrations;
mod pack;
mod packer;
pub mod pgpass;
pub mod postgres;
pub mod roller;
pub mod rollup;
mod rollup_sql;
pub mod seed;
mod sql;
pub mod sqlite;

pub use conns_log::{
    ConnectionCounts, ConnsKind, ConnsLog, ConnsPage, ConnsPruned, ConnsQuery, ConnsRetention,
};
pub use conns_rollup::ConnsRollupRow;
pub use error::{PgError, PgErrorKind, StoreError};
pub use netvantage_core::vantage::Observation;
pub use pack::PackError;
pub use postgres::{PgStore, Rejected};
pub use roller::Rolled;
pub use rollup::{Pruned, Retention, Rollup, RollupRow, Tier};
pub use sqlite::SqliteStore;

use netvantage_core::{CheckKind, Outcome, Reason, ResultRecord};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

/// What a batch insert did. Records are keyed by their id: one stored before (a redelivery) is
/// skipped, never stored twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows that were new.
    pub inserted: u64,
    /// Records already stored (or repeated within the batch): skipped.
    pub duplicates: u64,
    /// Which records of the batch were new (their indices, ascending): what anything derived
    /// from the rows (roll-ups) must count, so a redelivered record is counted once.
    pub fresh: Vec<usize>,
}

impl Written {
    fn all_new(n: usize) -> Written {
        Written {
            inserted: n as u64,
            duplicates: 0,
            fresh: (0..n).collect(),
        }
    }

    fn from_fresh(n: usize, fresh: Vec<usize>) -> Written {
        Written {
            inserted: fresh.len() as u64,
            duplicates: (n - fresh.len()) as u64,
            fresh,
        }
    }
}

/// Check times from `from_unix_ms` (included) to `until_unix_ms` (excluded), in milliseconds
/// since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from_unix_ms: i64,
    pub until_unix_ms: i64,
}

impl TimeRange {
    /// Everything at or after `from_unix_ms`.
    pub fn since(from_unix_ms: i64) -> TimeRange {
        TimeRange {
            from_unix_ms,
            until_unix_ms: i64::MAX,
        }
    }
}

/// Where a page of results ended: the next page starts after this (time, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub ts_unix_ms: i64,
    pub id: uuid::Uuid,
}

/// Results of one target over a time range, oldest first, a page at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsQuery {
    pub target: String,
    pub range: TimeRange,
    /// At most this many records (1 to [`ResultsQuery::MAX_LIMIT`]; clamped).
    pub limit: u32,
    /// Continue after the previous page's [`ResultsPage::next`].
    pub after: Option<Cursor>,
}

impl ResultsQuery {
    pub const MAX_LIMIT: u32 = 10_000;

    pub fn new(target: impl Into<String>, range: TimeRange, limit: u32) -> ResultsQuery {
        ResultsQuery {
            target: target.into(),
            range,
            limit,
            after: None,
        }
    }

    fn limit(&self) -> usize {
        self.limit.clamp(1, Self::MAX_LIMIT) as usize
    }

    /// Turns the rows read (one more than the limit asks for, to know whether more follow)
    /// into a page.
    fn page(&self, mut records: Vec<ResultRecord>) -> ResultsPage {
        let more = records.len() > self.limit();
        records.truncate(self.limit());
        let next = match records.last() {
            Some(last) if more => Some(Cursor {
                ts_unix_ms: last.check.ts_unix_ms,
                id: last.id,
            }),
            _ => None,
        };
        ResultsPage { records, next }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResultsPage {
    pub records: Vec<ResultRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// Which roll-up rows to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupQuery {
    pub tier: Tier,
    /// Buckets whose start is in this range.
    pub range: TimeRange,
    /// One target's series, or every series.
    pub target: Option<String>,
    /// One row per series with the figures added up (its `start_unix_ms` is the first
    /// bucket's), instead of every bucket.
    pub summed: bool,
}

/// One series (target × vantage point) and its latest check, kept as results are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub target: String,
    pub vantage: String,
    pub kind: CheckKind,
    /// The HTTP target's domain.
    pub domain: Option<String>,
    /// The HTTP endpoint's name in the config.
    pub endpoint: Option<String>,
    pub last_unix_ms: i64,
    pub last_outcome: Outcome,
    pub last_reason: Option<Reason>,
}

/// The schema version that has roll-ups: a reader of an older store finds none.
pub const ROLLUPS_SINCE: i32 = 3;

/// The schema version whose writes leave the roll-ups to the roller ([`roller`]).
pub const PENDING_SINCE: i32 = 5;

/// The first schema version with the packed hours ([`pack`]).
pub const PACKED_SINCE: i32 = 7;

/// A store of result records. Implemented by [`SqliteStore`], [`PgStore`] and [`AnyStore`];
/// the contract tests in `tests/contract.rs` run every test against each backend.
pub trait Store: Send + Sync {
    /// Applies the migrations this store lacks; returns their versions. A reader refuses.
    fn migrate(&mut self) -> impl Future<Output = Result<Vec<i32>, StoreError>> + Send;

    /// Stores a batch in one transaction; a record whose id is stored already is skipped.
    fn insert(
        &mut self,
        records: &[ResultRecord],
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// A page of one target's records in a time range, oldest first (ties by id).
    fn results(
        &self,
        query: &ResultsQuery,
    ) -> impl Future<Output = Result<ResultsPage, StoreError>> + Send;

    /// Every check in `window`, as much of each as a verdict needs, in no particular order.
    fn observations(
        &self,
        window: TimeRange,
    ) -> impl Future<Output = Result<Vec<Observation>, StoreError>> + Send;

    /// Adds roll-up rows to a tier (new buckets inserted, stored ones take the figures in),
    /// in one transaction: for seeding a history (the roller derives the roll-ups of inserted
    /// records itself). Returns the rows written.
    fn add_rollups(
        &mut self,
        tier: Tier,
        rows: &[RollupRow],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Roll-up rows of a tier, ordered by target, vantage and start; buckets the roller hasn't
    /// reached yet are derived from the finer tier, so they hold every inserted record.
    fn rollups(
        &self,
        query: &RollupQuery,
    ) -> impl Future<Output = Result<Vec<RollupRow>, StoreError>> + Send;

    /// Every series and its latest check, ordered by target and vantage.
    fn series(&self) -> impl Future<Output = Result<Vec<Series>, StoreError>> + Send;

    /// One pass of the roller ([`roller`]): recomputes the pending buckets that ended by
    /// `now_unix_ms`, at most [`roller::ROLL_BUDGET`] of them, each in its own transaction.
    fn roll_up(
        &mut self,
        now_unix_ms: i64,
    ) -> impl Future<Output = Result<Rolled, StoreError>> + Send;

    /// Drops what `retention` no longer keeps as of `now_unix_ms`, in bounded batches (or
    /// whole partitions), never one long `DELETE`. Rolls every ended bucket up first, so no
    /// raw row goes before it is counted in its minute.
    fn prune(
        &mut self,
        retention: &Retention,
        now_unix_ms: i64,
    ) -> impl Future<Output = Result<Pruned, StoreError>> + Send;
}

/// Each series' figures over `[from, until)` (whole minutes), summed from the coarsest tiers
/// that cover it ([`rollup::cover`]): availability over any window at a cost that doesn't grow
/// with the history. `target` limits it to one target's series.
pub async fn totals<S: Store>(
    store: &S,
    from_unix_ms: i64,
    until_unix_ms: i64,
    target: Option<&str>,
) -> Result<BTreeMap<(String, String), Rollup>, StoreError> {
    let mut totals: BTreeMap<(String, String), Rollup> = BTreeMap::new();
    for (tier, from, until) in rollup::cover(from_unix_ms, until_unix_ms) {
        let query = RollupQuery {
            tier,
            range: TimeRange {
                from_unix_ms: from,
                until_unix_ms: until,
            },
            target: target.map(str::to_string),
            summed: true,
        };
        for row in store.rollups(&query).await? {
            totals
                .entry((row.target, row.vantage))
                .or_default()
                .merge(&row.rollup);
        }
    }
    Ok(totals)
}

// Compile-time checks that each backend is a store (as gatus' `var _ Store = (*sql.Store)(nil)`).
const _: () = {
    const fn is_store<S: Store>() {}
    is_store::<SqliteStore>();
    is_store::<PgStore>();
    is_store::<AnyStore>();
};

/// Where results are kept.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// The embedded store: a SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (URL or `key=value` form).
    Postgres(String),
}

impl std::fmt::Debug for Location {
    /// Without the connection string, which may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Location::Postgres(_) => f.write_str("Postgres(…)"),
        }
    }
}

/// The backend chosen at run time.
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens for reading only: never migrates, never writes, refuses a foreign store.
    pub async fn open_reader(location: &Location) -> Result<AnyStore, StoreError> {
        Ok(match location {
            Location::Sqlite(path) => AnyStore::Sqlite(SqliteStore::open_reader(path)?),
            Location::Postgres(url) => AnyStore::Postgres(PgStore::connect_reader(url).await?),
        })
    }

    /// Opens for writing, applying the migrations the store lacks.
    pub async fn open_writer(location: &Location) -> Result<AnyStore, StoreError> {
        Ok(match location {
            Location::Sqlite(path) => AnyStore::Sqlite(SqliteStore::open_writer(path)?),
            Location::Postgres(url) => AnyStore::Postgres(PgStore::connect_writer(url).await?),
        })
    }
}

impl Store for AnyStore {
    async fn migrate(&mut self) -> Result<Vec<i32>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => Store::migrate(s).await,
            AnyStore::Postgres(s) => Store::migrate(s).await,
        }
    }

    async fn insert(&mut self, records: &[ResultRecord]) -> Result<Written, StoreError> {
        match self {
            AnyStore::Sqlite(s) => Store::insert(s, records).await,
            AnyStore::Postgres(s) => Store::insert(s, records).await,
        }
    }

    async fn results(&self, query: &ResultsQuery) -> Result<ResultsPage, StoreError> {
        match self {
            AnyStore::Sqlite(s) => Store::results(s, query).await,
            AnyStore::Postgres(s) => Store::results(s, query).await,
        }
    }

    async fn observations(&self, window: TimeRange) -> Result<Vec<Observation>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => Store::observations(s, window).await,
            AnyStore::Postgres(s) => Store::observations(s, window).await,
        }
    }

    async fn add_rollups(&mut self, tier: Tier, rows: &[RollupRow]) -> Result<u64, StoreError> {
        match self {
            AnyStore::Sqlite(s) => Store::add_rollups(s, tier, rows).await,
            AnyStore::Postgres(s) => Store::add_rollups(s, tier, rows).await,
        }
    }

    async fn rollups(&self, query: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => Store::rollups(s, query).await,
            AnyStore::Postgres(s) => Store::rollups(s, query).await,
        }
    }

    async fn roll_up(&mut self, now_unix_ms: i64) -> Result<Rolled, StoreError> {
        match self {
            AnyStore::Sqlite(s) => Store::roll_up(s, now_unix_ms).await,
            AnyStore::Postgres(s) => Store::roll_up(s, now_unix_ms).await,
        }
    }

    async fn series(&self) -> Result<Vec<Series>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => Store::series(s).await,
            AnyStore::Postgres(s) => Store::series(s).await,
        }
    }

    async fn prune(
        &mut self,
        retention: &Retention,
        now_unix_ms: i64,
    ) -> Result<Pruned, StoreError> {
        match self {
            AnyStore::Sqlite(s) => Store::prune(s, retention, now_unix_ms).await,
            AnyStore::Postgres(s) => Store::prune(s, retention, now_unix_ms).await,
        }
    }
}

/// A `series` row as read: target, vantage, kind, domain, endpoint, last time, outcome, reason.
pub(crate) type SeriesFields = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    String,
    Option<String>,
);

/// A series row from its stored text; a kind or outcome this build doesn't know is an error
/// naming the row.
/// Pending buckets from `(tier, start, version)` rows; a tier this build doesn't know is left
/// out (a newer netvantage's, which this one can't roll).
pub(crate) fn pending_of(rows: Vec<(String, i64, i64)>) -> Vec<roller::PendingBucket> {
    rows.into_iter()
        .filter_map(|(tier, start_unix_ms, version)| {
            Some(roller::PendingBucket {
                tier: Tier::parse(&tier)?,
                start_unix_ms,
                version,
            })
        })
        .collect()
}

pub(crate) fn series_of(location: &str, fields: SeriesFields) -> Result<Series, StoreError> {
    let (target, vantage, kind, domain, endpoint, last_unix_ms, outcome, reason) = fields;
    let bad = |why: String| StoreError::BadRow {
        location: location.to_string(),
        row: format!("series {target:?} {vantage:?}"),
        why,
    };
    let kind = kind.parse().map_err(|e| bad(format!("kind: {e}")))?;
    let last_outcome = outcome.parse().map_err(|e| bad(format!("outcome: {e}")))?;
    Ok(Series {
        kind,
        domain,
        endpoint,
        last_unix_ms,
        last_outcome,
        last_reason: reason.map(|r| r.parse().unwrap_or(Reason::Other)),
        target,
        vantage,
    })
}

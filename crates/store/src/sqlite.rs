//! The embedded store: one SQLite file, the agent's default sink and what `report` reads when
//! no `--postgres` is given.
//!
//! A writer ([`SqliteStore::open_writer`]) creates the file owner-only (0600; SQLite gives the
//! `-wal` and `-shm` files the same mode), refuses a file that isn't a netvantage store before
//! changing anything in it, then switches to WAL (so readers read while the agent writes) and
//! migrates. It never creates a directory: a path in a missing one is the user's mistake.
//!
//! A reader ([`SqliteStore::open_reader`]) opens read-only and never migrates, so a file owned
//! by another user (0644) or on a read-only mount can be read. A WAL file needs its `-shm`
//! index; when the writer is gone (no `-wal`) and the directory doesn't let this user create
//! one, the file is read as `immutable`: a snapshot, which is what it is while nobody writes.
//! A `-wal` left by a writer that was killed holds committed rows only a writer can apply; then
//! the reader says so ([`StoreError::UnreadableLog`]) instead of reading without them.
//!
//! SQLite is blocking. The synchronous methods (`insert`, `results`, `observations`) are for a
//! thread of its own, like the agent's sink; the [`Store`] methods call them in place.

mod conns;

use crate::columns::{Column, Dialect, SqlType, Value, columns_at, list, record_from};
use crate::conns_tables;
use crate::migrations::{self, LATEST, MIGRATIONS};
use crate::pack::{self, PackedRow};
use crate::packer;
use crate::roller::{self, PendingBucket, PrunedUntil, Rolled};
use crate::rollup::{self, Pruned, Retention, RollupRow, Tier};
use crate::rollup_sql::{self, Num, Param};
use crate::{
    Observation, PACKED_SINCE, PENDING_SINCE, ROLLUPS_SINCE, ResultsPage, ResultsQuery,
    RollupQuery, Series, Store, StoreError, TimeRange, Written, sql,
};
use netvantage_core::{ConnsRecord, ResultRecord};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params_from_iter};
use std::borrow::Cow;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// `PRAGMA application_id` of a netvantage store ("NVST"), so a file says what it is.
pub const APPLICATION_ID: i32 = 0x4e56_5354;

/// How long a writer waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    /// Behind a mutex so the store is `Sync` (a [`Store`] can be shared by tasks); each call
    /// holds it for one statement or transaction.
    conn: Mutex<Connection>,
    path: PathBuf,
    writer: bool,
    /// The schema version of the file: which columns it has.
    version: i32,
}

/// What a file holds, found before anything in it is changed.
enum Found {
    /// A new (or zero-length) file: nothing in it yet.
    Empty,
    /// A netvantage store that applied these migrations.
    Applied(Vec<i32>),
    /// A store made before `netvantage_migrations`: `PRAGMA user_version = 1`.
    LegacyVersion1,
}

impl SqliteStore {
    /// Opens (creating it, 0600, when missing) the file for writing and applies the migrations
    /// it lacks. For the agent's sink thread: [`SqliteStore::insert`] is synchronous.
    pub fn open_writer(path: &Path) -> Result<SqliteStore, StoreError> {
        let directory = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !directory.is_dir() {
            return Err(StoreError::MissingDirectory {
                path: directory.to_path_buf(),
            });
        }
        create_owner_only(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(StoreError::sqlite(path))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(StoreError::sqlite(path))?;
        // Refuse a foreign file before the first change (WAL is one).
        inspect(&conn, path)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(StoreError::sqlite(path))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(StoreError::sqlite(path))?;
        let mut store = SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            writer: true,
            version: 0,
        };
        let applied = store.migrate()?;
        if !applied.is_empty() {
            tracing::info!(path = %path.display(), ?applied, "sqlite: applied migrations");
        }
        Ok(store)
    }

    /// Opens an existing store for reading only: no migration, no WAL switch, no write. A file
    /// that isn't a netvantage store is refused.
    pub fn open_reader(path: &Path) -> Result<SqliteStore, StoreError> {
        match path.try_exists() {
            Ok(true) => {}
            Ok(false) => {
                return Err(StoreError::NotFound {
                    path: path.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn =
            Connection::open_with_flags(path, flags).map_err(StoreError::sqlite(path))?;
        let found = match inspect(&conn, path) {
            Err(StoreError::Sqlite { source, .. }) if needs_shm_it_cannot_create(&source) => {
                // Without a writer's log the file is all there is, and reading it as it stands
                // is exact. A log left behind (a writer that was killed) holds committed rows
                // only a writer can fold back in: say so rather than read without them.
                if has_wal(path) {
                    return Err(StoreError::UnreadableLog {
                        path: path.to_path_buf(),
                    });
                }
                tracing::debug!(path = %path.display(), "sqlite: no -shm and none can be made; reading as immutable");
                conn = Connection::open_with_flags(
                    immutable_uri(path),
                    flags | OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(StoreError::sqlite(path))?;
                inspect(&conn, path)?
            }
            other => other?,
        };
        let version = match found {
            Found::Empty => {
                return Err(StoreError::NotAStore {
                    location: path.display().to_string(),
                    why: "it is empty: no agent has written to it".into(),
                });
            }
            Found::LegacyVersion1 => 1,
            Found::Applied(applied) => applied.iter().copied().max().unwrap_or(0),
        };
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            writer: false,
            version: version.min(LATEST),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half-done transaction: rusqlite rolls it
        // back on drop, so the connection is as good as before.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn writable(&self) -> Result<(), StoreError> {
        if self.writer {
            Ok(())
        } else {
            Err(StoreError::ReadOnly {
                location: self.location(),
            })
        }
    }

    /// Applies the migrations the file lacks, all in one transaction under the database's
    /// write lock (so writers starting together apply each once). Adopts a file made before
    /// `netvantage_migrations` (`user_version = 1`) by recording its version 1.
    pub fn migrate(&mut self) -> Result<Vec<i32>, StoreError> {
        self.writable()?;
        let path = self.path.clone();
        let sqlite = StoreError::sqlite;
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite(&path))?;
        let found = inspect(&tx, &path)?;
        tx.execute_batch(migrations::bookkeeping(Dialect::Sqlite))
            .map_err(sqlite(&path))?;
        let record = sql::record_migration(Dialect::Sqlite);
        let adopted = matches!(found, Found::LegacyVersion1);
        let applied = match found {
            Found::Empty => Vec::new(),
            Found::Applied(applied) => applied,
            Found::LegacyVersion1 => {
                tx.execute(&record, (1, MIGRATIONS[0].description))
                    .map_err(sqlite(&path))?;
                vec![1]
            }
        };
        let pending = migrations::pending(&applied).map_err(|found| StoreError::TooNew {
            location: path.display().to_string(),
            found,
            known: LATEST,
        })?;
        let mut applied_now = Vec::new();
        for migration in pending {
            tx.execute_batch(&migration.sql(Dialect::Sqlite))
                .map_err(sqlite(&path))?;
            tx.execute(&record, (migration.version, migration.description))
                .map_err(sqlite(&path))?;
            applied_now.push(migration.version);
        }
        if adopted || !applied_now.is_empty() {
            // Earlier releases read `user_version`; the id tells anyone what the file is.
            tx.pragma_update(None, "user_version", LATEST)
                .map_err(sqlite(&path))?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(sqlite(&path))?;
            tx.commit().map_err(sqlite(&path))?;
        }
        self.version = LATEST;
        Ok(applied_now)
    }

    /// Inserts records in one transaction; a record already stored (same id) is skipped.
    pub fn insert(&mut self, records: &[ResultRecord]) -> Result<Written, StoreError> {
        let version = self.version;
        let insert = insert_statement(version);
        self.insert_each(
            records,
            |tx, record| {
                let values = columns_at(version).map(|c| (c.get)(record));
                tx.prepare_cached(&insert)?
                    .execute(params_from_iter(values))
            },
            |tx, fresh| {
                if version >= PENDING_SINCE {
                    let added: Vec<&ResultRecord> = fresh.iter().map(|&i| &records[i]).collect();
                    mark_pending(tx, Tier::Hour, &roller::hours_of(added.iter().copied()))?;
                    upsert_series(tx, added)?;
                }
                Ok(())
            },
        )
    }

    /// Inserts connection-log records (each into its kind's table) in one transaction; a
    /// record already stored (same id) is skipped, and the connections added are rolled up
    /// in the same transaction.
    pub fn insert_conns(&mut self, records: &[ConnsRecord]) -> Result<Written, StoreError> {
        let version = self.version;
        self.insert_each(
            records,
            |tx, record| {
                let table = conns_tables::table_of(record);
                tx.prepare_cached(&table.insert(Dialect::Sqlite))?
                    .execute(params_from_iter(conns_tables::values(record)))
            },
            |tx, fresh| {
                if version >= crate::conns_log::CONNS_ROLLUPS_SINCE {
                    conns::roll_up_added(tx, records, fresh)?;
                }
                Ok(())
            },
        )
    }

    /// Runs `insert` (which returns the rows it changed: 1 new, 0 skipped) for each record in
    /// one write transaction, then `after` with the indexes of the records it added.
    fn insert_each<R>(
        &mut self,
        records: &[R],
        insert: impl Fn(&rusqlite::Transaction<'_>, &R) -> rusqlite::Result<usize>,
        after: impl FnOnce(&rusqlite::Transaction<'_>, &[usize]) -> rusqlite::Result<()>,
    ) -> Result<Written, StoreError> {
        self.writable()?;
        let sqlite = StoreError::sqlite(&self.path);
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut fresh = Vec::new();
            for (i, record) in records.iter().enumerate() {
                if insert(&tx, record)? == 1 {
                    fresh.push(i);
                }
            }
            after(&tx, &fresh)?;
            tx.commit()?;
            Ok(Written::from_fresh(records.len(), fresh))
        })();
        result.map_err(sqlite)
    }

    /// A page of one target's records in a time range, oldest first.
    pub fn results(&self, query: &ResultsQuery) -> Result<ResultsPage, StoreError> {
        let conn = self.lock();
        let text = sql::results(Dialect::Sqlite, self.version, query.after.is_some());
        let limit = query.limit() as i64 + 1;
        let (from, until) = (query.range.from_unix_ms, query.range.until_unix_ms);
        let mut params: Vec<rusqlite::types::Value> =
            vec![query.target.clone().into(), from.into(), until.into()];
        if let Some(after) = query.after {
            params.push(after.ts_unix_ms.into());
            params.push(after.id.to_string().into());
        }
        params.push(limit.into());
        let records = self.read_records(&conn, &text, params)?;
        Ok(query.page(records))
    }

    /// Every record in `range` (of one target), in no particular order.
    pub fn records_between(
        &self,
        range: TimeRange,
        target: Option<&str>,
    ) -> Result<Vec<ResultRecord>, StoreError> {
        let conn = self.lock();
        let text = sql::records_between(Dialect::Sqlite, self.version, target.is_some());
        let mut params: Vec<rusqlite::types::Value> =
            vec![range.from_unix_ms.into(), range.until_unix_ms.into()];
        if let Some(target) = target {
            params.push(target.to_string().into());
        }
        self.read_records(&conn, &text, params)
    }

    /// Runs a query that selects the record columns ([`sql::results`] and its kin).
    fn read_records(
        &self,
        conn: &Connection,
        text: &str,
        params: Vec<rusqlite::types::Value>,
    ) -> Result<Vec<ResultRecord>, StoreError> {
        let columns: Vec<&'static Column> = columns_at(self.version).collect();
        let mut records = Vec::new();
        let sqlite = |e| StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        };
        let mut statement = conn.prepare_cached(text).map_err(sqlite)?;
        let mut rows = statement.query(params_from_iter(params)).map_err(sqlite)?;
        while let Some(row) = rows.next().map_err(sqlite)? {
            let values = columns.iter().enumerate().map(|(i, c)| {
                let value = row.get_ref(i).map_err(|e| e.to_string())?;
                Ok((*c, value_of(c.ty, value)?))
            });
            let record = values
                .collect::<Result<Vec<_>, String>>()
                .and_then(record_from)
                .map_err(|why| StoreError::BadRow {
                    location: self.location(),
                    row: row_id(row),
                    why,
                })?;
            records.push(record);
        }
        Ok(records)
    }

    /// Every check in `window`, for `report`.
    pub fn observations(&self, window: TimeRange) -> Result<Vec<Observation>, StoreError> {
        let conn = self.lock();
        let sqlite = |e| StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        };
        let mut statement = conn
            .prepare_cached(&sql::observations(Dialect::Sqlite))
            .map_err(sqlite)?;
        let rows = statement
            .query_map((window.from_unix_ms, window.until_unix_ms), |row| {
                let outcome: String = row.get(3)?;
                let reason: Option<String> = row.get(4)?;
                let address: Option<String> = row.get(5)?;
                Ok(sql::observation(sql::ObservationRow {
                    target: row.get(0)?,
                    vantage: row.get(1)?,
                    ts_unix_ms: row.get(2)?,
                    outcome: &outcome,
                    reason: reason.as_deref(),
                    address: address.as_deref(),
                    error: row.get(6)?,
                }))
            })
            .map_err(sqlite)?;
        rows.collect::<Result<_, _>>().map_err(sqlite)
    }
}

impl SqliteStore {
    /// See [`Store::add_rollups`].
    pub fn add_rollups(&mut self, tier: Tier, rows: &[RollupRow]) -> Result<u64, StoreError> {
        self.writable()?;
        let (final_rows, live) = if self.version >= PACKED_SINCE {
            packer::split_final(tier, rows, self.pruned_until()?.raw)
        } else {
            (Vec::new(), rows.to_vec())
        };
        let sqlite = StoreError::sqlite(&self.path);
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            upsert_rollups(&tx, tier, &live)?;
            tx.commit()
        })();
        result.map_err(sqlite)?;
        futures::executor::block_on(packer::add(self, tier, &final_rows))?;
        Ok(rows.len() as u64)
    }

    /// A tier's rows as stored (see [`Store::rollups`] for what a reader gets).
    fn stored_rollups(&self, query: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        let live = self.live_rollups(query)?;
        if self.version < PACKED_SINCE {
            return Ok(live);
        }
        futures::executor::block_on(packer::stored(self, query, live))
    }

    /// A tier's live rows (not the packed ones).
    fn live_rollups(&self, query: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        if self.version < ROLLUPS_SINCE {
            return Ok(Vec::new());
        }
        let conn = self.lock();
        let sqlite = StoreError::sqlite(&self.path);
        let text = rollup_sql::select(
            Dialect::Sqlite,
            query.tier,
            query.summed,
            query.target.is_some(),
            rollup_sql::reads_in_key_order(query),
        );
        let figures = rollup_sql::figures();
        let result = (|| {
            let mut statement = conn.prepare_cached(&text)?;
            let mut params: Vec<rusqlite::types::Value> = vec![
                query.range.from_unix_ms.into(),
                query.range.until_unix_ms.into(),
            ];
            if let Some(target) = &query.target {
                params.push(target.clone().into());
            }
            let rows = statement.query_map(params_from_iter(params), |row| {
                let mut values = Vec::with_capacity(figures.len());
                for (i, figure) in figures.iter().enumerate() {
                    values.push(if figure.float {
                        Num::Float(row.get::<_, Option<f64>>(3 + i)?)
                    } else {
                        Num::Int(row.get::<_, Option<i64>>(3 + i)?.unwrap_or(0))
                    });
                }
                Ok(RollupRow {
                    target: row.get(0)?,
                    vantage: row.get(1)?,
                    start_unix_ms: row.get(2)?,
                    rollup: rollup_sql::rollup_of(&values),
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        result.map_err(sqlite)
    }

    /// See [`Store::series`].
    fn stored_series(&self) -> Result<Vec<Series>, StoreError> {
        if self.version < ROLLUPS_SINCE {
            return Ok(Vec::new());
        }
        let conn = self.lock();
        let sqlite = StoreError::sqlite(&self.path);
        let fields = (|| {
            let mut statement = conn.prepare_cached(rollup_sql::SELECT_SERIES)?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(sqlite)?;
        let location = self.location();
        fields
            .into_iter()
            .map(|f| crate::series_of(&location, f))
            .collect()
    }

    /// See [`Store::prune`]: raw rows and each tier's expired buckets, [`rollup::PRUNE_BATCH`]
    /// rows per statement, each statement its own transaction (so the agent's writes go on
    /// between them).
    pub fn prune(&mut self, retention: &Retention, now_unix_ms: i64) -> Result<Pruned, StoreError> {
        self.writable()?;
        // Every ended bucket is counted before its source goes.
        while self.roll_up(now_unix_ms)?.total() > 0 {}
        let mut pruned = Pruned::default();
        if let Some(keep) = retention.raw_ms {
            let ts = crate::columns::column("ts").name_in(Dialect::Sqlite);
            // Whole minutes go, so a minute is kept whole or rolled up whole.
            let below = Tier::Minute.bucket_start(now_unix_ms - keep);
            self.keep_minutes_of_raw_rows_before(below, retention, now_unix_ms)?;
            pruned.raw_rows = self.delete_batched("results", &ts, below)?;
            self.record_pruned("raw", below)?;
        }
        if self.version >= PACKED_SINCE {
            let final_until = self.pruned_until()?.raw;
            for (i, tier) in Tier::ALL.into_iter().enumerate() {
                pruned.packed_spans[i] =
                    futures::executor::block_on(packer::pack_final(self, tier, final_until))?
                        as u64;
            }
        }
        if self.version >= ROLLUPS_SINCE {
            for (i, tier) in Tier::ALL.into_iter().enumerate() {
                if let Some(keep) = retention.of(tier) {
                    let below = rollup_sql::first_kept_start(tier, now_unix_ms, keep);
                    pruned.rollup_rows[i] =
                        self.delete_batched(tier.table(), "start_unix_ms", below)?;
                    if self.version >= PACKED_SINCE {
                        pruned.rollup_rows[i] +=
                            futures::executor::block_on(packer::prune(self, tier, below))?;
                    }
                    self.record_pruned(tier.as_str(), below)?;
                }
            }
        }
        Ok(pruned)
    }

    /// One pass of the roller (see [`Store::roll_up`]).
    pub fn roll_up(&mut self, now_unix_ms: i64) -> Result<Rolled, StoreError> {
        self.writable()?;
        if self.version < PENDING_SINCE {
            return Ok(Rolled::default());
        }
        // Every step of the SQLite store is synchronous: the future is ready when polled.
        futures::executor::block_on(roller::roll_pending(self, now_unix_ms, roller::ROLL_BUDGET))
    }

    /// Writes the minute roll-ups of the raw rows retention is about to drop (those before
    /// `below` not dropped before, as far back as the minute tier keeps): minutes are read from
    /// the raw rows while those last, and from the minute tier after.
    fn keep_minutes_of_raw_rows_before(
        &mut self,
        below: i64,
        retention: &Retention,
        now_unix_ms: i64,
    ) -> Result<(), StoreError> {
        if self.version < PENDING_SINCE {
            return Ok(());
        }
        let already = self.pruned_until()?.raw;
        let Some(span) = roller::minutes_to_keep(already, retention, now_unix_ms, below) else {
            return Ok(());
        };
        let sqlite = StoreError::sqlite(&self.path);
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        conn.execute(
            &rollup_sql::roll_minutes_from_raw(Dialect::Sqlite),
            (span.from_unix_ms, span.until_unix_ms),
        )
        .map_err(sqlite)?;
        Ok(())
    }

    fn record_pruned(&mut self, source: &str, below: i64) -> Result<(), StoreError> {
        if self.version < PENDING_SINCE {
            return Ok(());
        }
        let sqlite = StoreError::sqlite(&self.path);
        self.lock()
            .execute(&rollup_sql::record_pruned(Dialect::Sqlite), (source, below))
            .map_err(sqlite)?;
        Ok(())
    }

    fn pending(&self) -> Result<Vec<PendingBucket>, StoreError> {
        if self.version < PENDING_SINCE {
            return Ok(Vec::new());
        }
        let conn = self.lock();
        let read = || -> rusqlite::Result<Vec<(String, i64, i64)>> {
            let mut statement = conn.prepare_cached(rollup_sql::SELECT_PENDING)?;
            let rows =
                statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
            rows.collect()
        };
        let rows = read().map_err(StoreError::sqlite(&self.path))?;
        Ok(crate::pending_of(rows))
    }

    fn pruned_until(&self) -> Result<PrunedUntil, StoreError> {
        let mut pruned = PrunedUntil::default();
        if self.version < PENDING_SINCE {
            return Ok(pruned);
        }
        let conn = self.lock();
        let read = || -> rusqlite::Result<Vec<(String, i64)>> {
            let mut statement = conn.prepare_cached(rollup_sql::SELECT_PRUNED)?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        };
        for (source, until) in read().map_err(StoreError::sqlite(&self.path))? {
            pruned.set(&source, until);
        }
        Ok(pruned)
    }

    /// A roller step in one write transaction: see [`roller::Steps::roll`].
    fn roll_bucket(&mut self, bucket: PendingBucket) -> Result<(), StoreError> {
        let sqlite = StoreError::sqlite(&self.path);
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (start, end) = (
                bucket.start_unix_ms,
                bucket.start_unix_ms + bucket.tier.millis(),
            );
            match bucket.tier {
                // A mark an earlier build left: its hour is what gets rolled.
                Tier::Minute => {}
                Tier::Hour => {
                    tx.prepare_cached(&rollup_sql::roll_from_raw(Dialect::Sqlite, Tier::Hour))?
                        .execute((start, start, end))?;
                }
                Tier::Day => {
                    tx.prepare_cached(&rollup_sql::roll_from_finer(Dialect::Sqlite, Tier::Day))?
                        .execute((start, end))?;
                }
            }
            tx.prepare_cached(&rollup_sql::unmark_pending(Dialect::Sqlite))?
                .execute((bucket.tier.as_str(), start, bucket.version))?;
            if let Some(coarser) = bucket.tier.coarser() {
                mark_pending(&tx, coarser, &[coarser.bucket_start(start)])?;
            }
            tx.commit()
        })();
        result.map_err(sqlite)
    }

    fn unmark_bucket(&mut self, bucket: PendingBucket) -> Result<(), StoreError> {
        let sqlite = StoreError::sqlite(&self.path);
        self.lock()
            .execute(
                &rollup_sql::unmark_pending(Dialect::Sqlite),
                (bucket.tier.as_str(), bucket.start_unix_ms, bucket.version),
            )
            .map_err(sqlite)?;
        Ok(())
    }

    fn delete_batched(&mut self, table: &str, column: &str, below: i64) -> Result<u64, StoreError> {
        let path = self.path.clone();
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        let text = rollup_sql::delete_batch(Dialect::Sqlite, table, column);
        let mut deleted = 0u64;
        loop {
            let n = conn
                .prepare_cached(&text)
                .and_then(|mut s| s.execute((below, rollup::PRUNE_BATCH)))
                .map_err(StoreError::sqlite(&path))?;
            deleted += n as u64;
            if (n as i64) < rollup::PRUNE_BATCH {
                return Ok(deleted);
            }
        }
    }
}

/// Adds roll-up rows to a tier inside the caller's transaction.
fn upsert_rollups(
    tx: &rusqlite::Transaction<'_>,
    tier: Tier,
    rows: &[RollupRow],
) -> rusqlite::Result<()> {
    let mut statement = tx.prepare_cached(&rollup_sql::upsert(Dialect::Sqlite, tier, 1))?;
    for row in rows {
        let params = rollup_sql::upsert_params(std::slice::from_ref(row));
        statement.execute(params_from_iter(params.iter().map(sqlite_param)))?;
    }
    Ok(())
}

fn sqlite_param(param: &Param<'_>) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match *param {
        Param::Text(t) => V::Text(t.to_string()),
        Param::Num(Num::Int(n)) => V::Integer(n),
        Param::Num(Num::Float(x)) => x.map_or(V::Null, V::Real),
    }
}

impl packer::PackParts for SqliteStore {
    async fn live(&self, query: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        self.live_rollups(query)
    }

    async fn packed_rows(
        &self,
        tier: Tier,
        spans: TimeRange,
        target: Option<&str>,
    ) -> Result<Vec<PackedRow>, StoreError> {
        let Some(table) = pack::table(tier) else {
            return Ok(Vec::new());
        };
        let conn = self.lock();
        let text = rollup_sql::select_packed(Dialect::Sqlite, table, target.is_some());
        let read = || -> rusqlite::Result<Vec<PackedRow>> {
            let mut statement = conn.prepare_cached(&text)?;
            let mut params: Vec<rusqlite::types::Value> =
                vec![spans.from_unix_ms.into(), spans.until_unix_ms.into()];
            if let Some(target) = target {
                params.push(target.to_string().into());
            }
            let rows = statement.query_map(params_from_iter(params), |row| {
                Ok(PackedRow {
                    target: row.get(0)?,
                    vantage: row.get(1)?,
                    span_start_unix_ms: row.get(2)?,
                    data: row.get(3)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(StoreError::sqlite(&self.path))
    }

    async fn oldest_live(&self, tier: Tier) -> Result<Option<i64>, StoreError> {
        self.lock()
            .query_row(
                &format!("SELECT min(start_unix_ms) FROM {}", tier.table()),
                [],
                |row| row.get(0),
            )
            .map_err(StoreError::sqlite(&self.path))
    }

    async fn oldest_packed(&self, tier: Tier) -> Result<Option<i64>, StoreError> {
        let Some(table) = pack::table(tier) else {
            return Ok(None);
        };
        self.lock()
            .query_row(
                &format!("SELECT min(span_start_unix_ms) FROM {table}"),
                [],
                |row| row.get(0),
            )
            .map_err(StoreError::sqlite(&self.path))
    }

    async fn write_packed(
        &mut self,
        tier: Tier,
        rows: Vec<PackedRow>,
        clear: Option<TimeRange>,
    ) -> Result<(), StoreError> {
        let Some(table) = pack::table(tier) else {
            return Ok(());
        };
        let sqlite = StoreError::sqlite(&self.path);
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut upsert =
                    tx.prepare_cached(&rollup_sql::upsert_packed(Dialect::Sqlite, table))?;
                let mut delete = tx.prepare_cached(&format!(
                    "DELETE FROM {table} WHERE target = ?1 AND vantage = ?2 AND span_start_unix_ms = ?3"
                ))?;
                for row in &rows {
                    let key = (&row.target, &row.vantage, row.span_start_unix_ms);
                    if row.data.is_empty() {
                        delete.execute(key)?;
                    } else {
                        upsert.execute((key.0, key.1, key.2, &row.data))?;
                    }
                }
            }
            if let Some(span) = clear {
                tx.execute(
                    &format!(
                        "DELETE FROM {} WHERE start_unix_ms >= ?1 AND start_unix_ms < ?2",
                        tier.table()
                    ),
                    (span.from_unix_ms, span.until_unix_ms),
                )?;
            }
            tx.commit()
        })();
        result.map_err(sqlite)
    }
}

impl roller::Parts for SqliteStore {
    async fn pending(&self) -> Result<Vec<PendingBucket>, StoreError> {
        SqliteStore::pending(self)
    }

    async fn stored(&self, query: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        self.stored_rollups(query)
    }

    async fn raw_extent(&self) -> Result<roller::RawExtent, StoreError> {
        let pruned = SqliteStore::pruned_until(self)?.raw;
        let first: Option<i64> = self
            .lock()
            .query_row("SELECT min(ts_unix_ms) FROM results", [], |row| row.get(0))
            .map_err(StoreError::sqlite(&self.path))?;
        Ok(roller::RawExtent {
            pruned_until: pruned,
            first_minute: first.map_or(i64::MAX, |ts| Tier::Minute.bucket_start(ts)),
        })
    }

    async fn raw(
        &self,
        range: TimeRange,
        target: Option<&str>,
    ) -> Result<Vec<ResultRecord>, StoreError> {
        self.records_between(range, target)
    }
}

impl roller::Steps for SqliteStore {
    async fn pruned_until(&self) -> Result<PrunedUntil, StoreError> {
        SqliteStore::pruned_until(self)
    }

    async fn roll(&mut self, bucket: PendingBucket) -> Result<(), StoreError> {
        self.roll_bucket(bucket)
    }

    async fn unmark(&mut self, bucket: PendingBucket) -> Result<(), StoreError> {
        self.unmark_bucket(bucket)
    }
}

impl Store for SqliteStore {
    async fn migrate(&mut self) -> Result<Vec<i32>, StoreError> {
        SqliteStore::migrate(self)
    }

    async fn insert(&mut self, records: &[ResultRecord]) -> Result<Written, StoreError> {
        SqliteStore::insert(self, records)
    }

    async fn results(&self, query: &ResultsQuery) -> Result<ResultsPage, StoreError> {
        SqliteStore::results(self, query)
    }

    async fn observations(&self, window: TimeRange) -> Result<Vec<Observation>, StoreError> {
        SqliteStore::observations(self, window)
    }

    async fn add_rollups(&mut self, tier: Tier, rows: &[RollupRow]) -> Result<u64, StoreError> {
        SqliteStore::add_rollups(self, tier, rows)
    }

    async fn rollups(&self, query: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        roller::fresh_rollups(self, query).await
    }

    async fn series(&self) -> Result<Vec<Series>, StoreError> {
        SqliteStore::stored_series(self)
    }

    async fn roll_up(&mut self, now_unix_ms: i64) -> Result<Rolled, StoreError> {
        SqliteStore::roll_up(self, now_unix_ms)
    }

    async fn prune(
        &mut self,
        retention: &Retention,
        now_unix_ms: i64,
    ) -> Result<Pruned, StoreError> {
        SqliteStore::prune(self, retention, now_unix_ms)
    }
}

/// Marks buckets of `tier` pending inside the caller's transaction.
fn mark_pending(
    tx: &rusqlite::Transaction<'_>,
    tier: Tier,
    starts: &[i64],
) -> rusqlite::Result<()> {
    let mut statement = tx.prepare_cached(&rollup_sql::mark_pending(Dialect::Sqlite, 1))?;
    for start in starts {
        statement.execute((tier.as_str(), start))?;
    }
    Ok(())
}

/// Keeps the latest check of each series of `records` (a newer stored one stays).
fn upsert_series(
    tx: &rusqlite::Transaction<'_>,
    records: Vec<&ResultRecord>,
) -> rusqlite::Result<()> {
    let mut statement = tx.prepare_cached(&rollup_sql::upsert_series())?;
    for r in rollup_sql::latest_per_series(records) {
        let http = r.check.http.as_ref();
        statement.execute((
            &r.check.target,
            &r.vantage,
            r.check.kind.as_str(),
            http.map(|h| h.domain.as_str()),
            http.map(|h| h.name.as_str()),
            r.check.ts_unix_ms,
            r.check.outcome.as_str(),
            r.check.reason.map(|reason| reason.as_str()),
        ))?;
    }
    Ok(())
}

fn insert_statement(version: i32) -> String {
    let placeholders: Vec<String> = (1..=columns_at(version).count())
        .map(|n| format!("?{n}"))
        .collect();
    // Only the key conflict is skipped (`OR IGNORE` would hide a NOT NULL violation too).
    format!(
        "INSERT INTO results ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING",
        list(Dialect::Sqlite, version),
        placeholders.join(", ")
    )
}

/// Creates the file owner-only when it doesn't exist. An existing file keeps its mode: its
/// owner chose it (e.g. 0644 so `report` can run as another user).
fn create_owner_only(path: &Path) -> Result<(), StoreError> {
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// What the file holds. Reading `sqlite_schema` is also where a file that isn't SQLite at all
/// shows itself.
fn inspect(conn: &Connection, path: &Path) -> Result<Found, StoreError> {
    let foreign = |why: String| StoreError::NotAStore {
        location: path.display().to_string(),
        why,
    };
    let tables: Vec<String> = match read_tables(conn) {
        Ok(tables) => tables,
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
            return Err(foreign("not a SQLite database".into()));
        }
        Err(e) => return Err(StoreError::sqlite(path)(e)),
    };
    let pragma = |name: &str| -> Result<i32, StoreError> {
        conn.pragma_query_value(None, name, |r| r.get(0))
            .map_err(StoreError::sqlite(path))
    };
    let (user_version, application_id) = (pragma("user_version")?, pragma("application_id")?);
    let has = |name: &str| tables.iter().any(|t| t == name);
    if has("netvantage_migrations") && has("results") {
        let mut statement = conn
            .prepare(sql::MIGRATIONS_APPLIED)
            .map_err(StoreError::sqlite(path))?;
        let applied = statement
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<i32>, _>>())
            .map_err(StoreError::sqlite(path))?;
        return Ok(Found::Applied(applied));
    }
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(foreign(format!(
            "its application_id is {application_id:#x}, another program's"
        )));
    }
    if tables.is_empty() && user_version == 0 {
        return Ok(Found::Empty);
    }
    if user_version == 1 && has("results") {
        let mut statement = conn
            .prepare("SELECT name FROM pragma_table_info('results')")
            .map_err(StoreError::sqlite(path))?;
        let names = statement
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(StoreError::sqlite(path))?;
        let missing: Vec<_> = columns_at(1)
            .map(|c| c.name_in(Dialect::Sqlite))
            .filter(|name| !names.iter().any(|n| n == name))
            .collect();
        if missing.is_empty() {
            return Ok(Found::LegacyVersion1);
        }
        return Err(foreign(format!(
            "its results table lacks {}",
            missing.join(", ")
        )));
    }
    let tables = if tables.is_empty() {
        "no tables".to_string()
    } else {
        format!("tables {}", tables.join(", "))
    };
    Err(foreign(format!(
        "{tables}, user_version {user_version}, and none of netvantage's"
    )))
}

fn read_tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY name",
    )?;
    let rows = statement.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// A WAL file read by a user who can't create its `-shm` (and no writer left one).
fn needs_shm_it_cannot_create(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
    )
}

/// The file has a write-ahead log with something in it.
fn has_wal(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 0)
}

/// `file:/path?mode=ro&immutable=1`, the path percent-encoded as SQLite's URIs want.
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    uri
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as Owned;
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Uuid(u) => ToSqlOutput::Owned(Owned::Text(u.to_string())),
            Value::Timestamp(ms) => ToSqlOutput::Owned(Owned::Integer(*ms)),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::Integer(i) => ToSqlOutput::Owned(Owned::Integer(i64::from(*i))),
            Value::Float(x) => ToSqlOutput::Owned(Owned::Real(*x)),
            Value::Bool(b) => ToSqlOutput::Owned(Owned::Integer(i64::from(*b))),
        })
    }
}

/// A stored value as the column's type says it is.
fn value_of(ty: SqlType, value: ValueRef<'_>) -> Result<Value<'_>, String> {
    let text = |bytes| std::str::from_utf8(bytes).map_err(|e| e.to_string());
    Ok(match (ty, value) {
        (_, ValueRef::Null) => Value::Null,
        (SqlType::Uuid, ValueRef::Text(t)) => {
            Value::Uuid(uuid::Uuid::try_parse_ascii(t).map_err(|e| e.to_string())?)
        }
        (SqlType::Timestamp, ValueRef::Integer(ms)) => Value::Timestamp(ms),
        (SqlType::Text, ValueRef::Text(t)) => Value::Text(Cow::Borrowed(text(t)?)),
        (SqlType::Integer, ValueRef::Integer(i)) => {
            Value::Integer(i32::try_from(i).map_err(|_| format!("{i} is out of range"))?)
        }
        (SqlType::Float, ValueRef::Real(x)) => Value::Float(x),
        (SqlType::Float, ValueRef::Integer(i)) => Value::Float(i as f64),
        (SqlType::Bool, ValueRef::Integer(i)) => Value::Bool(i != 0),
        (ty, other) => return Err(format!("expected {ty:?}, found {:?}", other.data_type())),
    })
}

fn row_id(row: &rusqlite::Row<'_>) -> String {
    row.get::<_, String>(0).unwrap_or_else(|_| "?".into())
}

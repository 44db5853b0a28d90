//! The PostgreSQL store: what `ingest` writes and `report --postgres` reads.
//!
//! `results` is partitioned by day on `ts` (`results_YYYYMMDD`, created as records for a new
//! day arrive, under the schema's advisory lock), so retention is `DROP TABLE` of whole days:
//! no bulk `DELETE`, no vacuum debt. Its key is `(id, ts)`; a record's `ts` never changes, so
//! the key is as unique as the id.
//!
//! A batch is written exactly once per record id, as fast as a plain `COPY`: one binary `COPY`
//! straight into `results`, inside a savepoint. A batch holding a record stored before (a
//! redelivery after a crash between the database commit and the Kafka offset commit, or two
//! consumers racing through a rebalance) fails that `COPY` on the key; then the savepoint is
//! rolled back and the batch goes through a staging table (`COPY` into a temporary table, then
//! `INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING id`), which skips what is stored and
//! says which records were new. Redeliveries are rare, so batches almost always take the first
//! path; `bench/pipeline` measures both.
//!
//! A reader ([`PgStore::connect_reader`]) runs its session read-only and never migrates.

mod conns;

use crate::columns::{COLUMNS, Column, Dialect, SqlType, Value, columns_at, list, record_from};
use crate::error::PgError;
use crate::migrations::{self, LATEST};
use crate::pack::{self, PackedRow};
use crate::packer;
use crate::roller::{self, PendingBucket, PrunedUntil, Rolled};
use crate::rollup::{self, Pruned, Retention, RollupRow, Tier};
use crate::rollup_sql::{self, Num, Param, SeriesRow};
use crate::{
    Observation, PACKED_SINCE, PENDING_SINCE, ROLLUPS_SINCE, ResultsPage, ResultsQuery,
    RollupQuery, Series, Store, StoreError, TimeRange, Written, sql,
};
use bytes::{BufMut, BytesMut};
use netvantage_core::{ConnsRecord, ResultRecord};
use std::collections::BTreeSet;
use std::collections::HashSet;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, GenericClient, NoTls, Transaction};

/// Any two processes running migrations or creating partitions take this lock first.
const SCHEMA_LOCK: i64 = 0x6e76_7363_6865_6d61; // "nvschema"

const DAY_MS: i64 = 86_400_000;

/// How long a connection attempt may take when the connection string doesn't say
/// (`connect_timeout`).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A message that could not be read as a record: kept, with why, instead of dropped.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub payload: Option<Vec<u8>>,
    pub error: String,
}

pub struct PgStore {
    client: Client,
    location: String,
    writer: bool,
    /// The schema version of the database: which columns it has.
    version: i32,
    /// Day partitions known to exist (created or seen by this process).
    known_days: HashSet<i64>,
    /// The series' latest checks this writer wrote.
    series_memo: rollup_sql::SeriesMemo,
}

fn pg(doing: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::Postgres(PgError::new(doing)(e))
}

/// Connects; the connection's driver runs on a task of its own. The password never comes
/// from the connection string (see [`crate::pgpass`]): `password` is one the caller read
/// from a file it was given, else libpq's environment and password file are used.
async fn connect(url: &str, password: Option<&str>) -> Result<(Client, String), StoreError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        StoreError::BadConnectionString(crate::error::describe(&e))
    })?;
    let login = login_of(&config);
    let env = |name: &str| std::env::var(name).ok();
    if let Some(password) =
        crate::pgpass::resolve(config.get_password().is_some(), password, &login, &env)?
    {
        config.password(password);
    }
    // A server that never answers (a black-holed address) is a failure to retry, not a hang.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let location = match config.get_dbname() {
        Some(name) => format!("postgres database {name:?}"),
        None => "postgres".to_string(),
    };
    let (client, connection) = config.connect(NoTls).await.map_err(pg("connecting"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("{}", PgError::new("connection closed")(e));
        }
    });
    Ok((client, location))
}

/// Who logs in where, with libpq's defaults, to find the password file's line.
fn login_of(config: &tokio_postgres::Config) -> crate::pgpass::Login {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        // libpq matches a Unix-domain socket as `localhost`.
        _ => "localhost".to_string(),
    };
    let user = config
        .get_user()
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    crate::pgpass::Login {
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        database: config
            .get_dbname()
            .map_or_else(|| user.clone(), str::to_string),
        user,
    }
}

/// Whether a connection string holds a password (which a command line must not).
pub fn has_password(url: &str) -> bool {
    url.parse::<tokio_postgres::Config>()
        .is_ok_and(|c| c.get_password().is_some())
}

impl PgStore {
    /// Connects and applies the migrations the database lacks. Authentication failures, a
    /// missing database and missing privileges are errors for which
    /// [`StoreError::is_usage`] is true; a caller retries only what [`StoreError::heals`].
    pub async fn connect_writer(url: &str) -> Result<PgStore, StoreError> {
        Self::connect_writer_with_password(url, None).await
    }

    /// [`PgStore::connect_writer`] with a password the caller read from a file it was given
    /// (it wins over `PGPASSWORD` and the password file).
    pub async fn connect_writer_with_password(
        url: &str,
        password: Option<&str>,
    ) -> Result<PgStore, StoreError> {
        let (client, location) = connect(url, password).await?;
        let mut store = PgStore {
            client,
            location,
            writer: true,
            version: 0,
            known_days: HashSet::new(),
            series_memo: Default::default(),
        };
        let applied = store.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "postgres: applied migrations");
        }
        Ok(store)
    }

    /// Connects for reading only: the session is read-only and nothing is migrated. A
    /// database without netvantage's schema is refused.
    pub async fn connect_reader(url: &str) -> Result<PgStore, StoreError> {
        let (client, location) = connect(url, None).await?;
        client
            .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            .await
            .map_err(pg("making the session read-only"))?;
        let applied = match client.query(sql::MIGRATIONS_APPLIED, &[]).await {
            Ok(rows) => rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Vec::new(),
            Err(e) => return Err(pg("reading the schema version")(e)),
        };
        let Some(version) = applied.iter().copied().max() else {
            return Err(StoreError::NotAStore {
                location,
                why: "no netvantage schema in it: run `netvantage ingest` (or `ingest --migrate-only`) first".into(),
            });
        };
        Ok(PgStore {
            client,
            location,
            writer: false,
            version: version.min(LATEST),
            known_days: HashSet::new(),
            series_memo: Default::default(),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The connection is gone: make a new store to go on.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    fn writable(&self) -> Result<(), StoreError> {
        if self.writer {
            Ok(())
        } else {
            Err(StoreError::ReadOnly {
                location: self.location.clone(),
            })
        }
    }

    /// Applies the migrations not applied yet, each in its own transaction under the schema
    /// lock, so several processes starting together apply each exactly once. Returns the
    /// versions applied now.
    pub async fn migrate(&mut self) -> Result<Vec<i32>, StoreError> {
        self.writable()?;
        let tx = self.client.transaction().await.map_err(pg("migrating"))?;
        lock_schema(&tx).await?;
        tx.batch_execute(migrations::bookkeeping(Dialect::Postgres))
            .await
            .map_err(pg("creating netvantage_migrations"))?;
        let applied: Vec<i32> = tx
            .query(sql::MIGRATIONS_APPLIED, &[])
            .await
            .map_err(pg("reading the schema version"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.commit().await.map_err(pg("migrating"))?;
        let pending = migrations::pending(&applied).map_err(|found| StoreError::TooNew {
            location: self.location.clone(),
            found,
            known: LATEST,
        })?;
        let record = sql::record_migration(Dialect::Postgres);
        let mut applied_now = Vec::new();
        for migration in pending {
            let tx = self.client.transaction().await.map_err(pg("migrating"))?;
            lock_schema(&tx).await?;
            // Another process may have applied it while this one waited for the lock.
            let done = tx
                .query_opt(
                    "SELECT 1 FROM netvantage_migrations WHERE version = $1",
                    &[&migration.version],
                )
                .await
                .map_err(pg("reading the schema version"))?
                .is_some();
            if !done {
                tx.batch_execute(&migration.sql(Dialect::Postgres))
                    .await
                    .map_err(pg("applying a migration"))?;
                tx.execute(&record, &[&migration.version, &migration.description])
                    .await
                    .map_err(pg("recording a migration"))?;
                applied_now.push(migration.version);
            }
            tx.commit().await.map_err(pg("applying a migration"))?;
        }
        self.version = LATEST;
        Ok(applied_now)
    }

    /// Creates the day partitions these records need (once per day per process; `write` does
    /// it before each batch).
    pub async fn ensure_partitions(&mut self, records: &[ResultRecord]) -> Result<(), StoreError> {
        let mut days: Vec<(i64, uuid::Uuid)> = Vec::new();
        for r in records {
            let day = r.check.ts_unix_ms.div_euclid(DAY_MS);
            if !self.known_days.contains(&day) && !days.iter().any(|(d, _)| *d == day) {
                days.push((day, r.id));
            }
        }
        for (day, id) in days {
            let (Some(from), Some(name)) = (day_start(day), partition_name(day)) else {
                return Err(StoreError::Unstorable {
                    id,
                    why: format!("its time is out of range (day {day} since 1970)"),
                });
            };
            let to = from.next_day().unwrap_or(from);
            let tx = self
                .client
                .transaction()
                .await
                .map_err(pg("creating a partition"))?;
            lock_schema(&tx).await?;
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF results
                 FOR VALUES FROM ('{from} 00:00:00+00') TO ('{to} 00:00:00+00')"
            ))
            .await
            .map_err(pg("creating a partition"))?;
            tx.commit().await.map_err(pg("creating a partition"))?;
            self.known_days.insert(day);
        }
        Ok(())
    }

    /// Writes records and rejected messages in one transaction; a record stored before is
    /// skipped.
    pub async fn write(
        &mut self,
        records: &[ResultRecord],
        rejected: &[Rejected],
    ) -> Result<Written, StoreError> {
        self.write_with_conns(records, &[], rejected).await
    }

    /// [`PgStore::write`] with connection-log records too, all in one transaction. Each conns
    /// record goes to its kind's table, skipped when its id is stored (exactly once). The
    /// returned counts add both kinds.
    pub async fn write_with_conns(
        &mut self,
        records: &[ResultRecord],
        conns: &[ConnsRecord],
        rejected: &[Rejected],
    ) -> Result<Written, StoreError> {
        self.writable()?;
        self.ensure_partitions(records).await?;
        // A batch of new records (the usual case) is one `COPY` straight into `results`; one
        // holding a stored record fails that `COPY` on the key, and the batch is written again
        // in a new transaction through the staging table. (A savepoint around the `COPY` would
        // spare that redo but cost every batch two round trips and a subtransaction.)
        let version = self.version;
        let (client, memo) = (&mut self.client, &mut self.series_memo);
        if !records.is_empty() {
            let tx = client.transaction().await.map_err(pg("writing a batch"))?;
            match copy_rows(&tx, "results", records).await {
                Ok(_) => {
                    let written = Written::all_new(records.len());
                    let batch = Batch {
                        records,
                        conns,
                        rejected,
                        version,
                    };
                    return finish_batch(tx, written, batch, memo).await;
                }
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    tx.rollback().await.map_err(pg("writing a batch"))?;
                }
                Err(e) => return Err(pg("copying a batch into results")(e)),
            }
        }
        let tx = client.transaction().await.map_err(pg("writing a batch"))?;
        let written = if records.is_empty() {
            Written::default()
        } else {
            copy_skipping_stored(&tx, records).await?
        };
        let batch = Batch {
            records,
            conns,
            rejected,
            version,
        };
        finish_batch(tx, written, batch, memo).await
    }

    /// Drops the day partitions that ended at or before `cutoff_unix_ms` (retention). Returns
    /// their names.
    pub async fn drop_partitions_before(
        &mut self,
        cutoff_unix_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.writable()?;
        let rows = self
            .client
            .query(
                "SELECT c.relname FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent
                 WHERE p.relname = 'results' AND c.relname ~ '^results_[0-9]{8}$'",
                &[],
            )
            .await
            .map_err(pg("listing partitions"))?;
        let mut dropped = Vec::new();
        for row in rows {
            let name: String = row.get(0);
            let Some(day) = partition_day(&name) else {
                continue;
            };
            if (day + 1) * DAY_MS <= cutoff_unix_ms {
                self.client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                    .await
                    .map_err(pg("dropping a partition"))?;
                self.known_days.remove(&day);
                dropped.push(name);
            }
        }
        dropped.sort();
        Ok(dropped)
    }

    pub async fn results(&self, query: &ResultsQuery) -> Result<ResultsPage, StoreError> {
        let text = sql::results(Dialect::Postgres, self.version, query.after.is_some());
        let (from, until) = (
            PgTime(query.range.from_unix_ms),
            PgTime(query.range.until_unix_ms),
        );
        let limit = query.limit() as i64 + 1;
        let after = query.after.map(|a| (PgTime(a.ts_unix_ms), a.id));
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&query.target, &from, &until];
        if let Some((ts, id)) = &after {
            params.push(ts);
            params.push(id);
        }
        params.push(&limit);
        let records = self.read_records(&text, &params).await?;
        Ok(query.page(records))
    }

    /// Every record in `range` (of one target), in no particular order.
    pub async fn records_between(
        &self,
        range: TimeRange,
        target: Option<&str>,
    ) -> Result<Vec<ResultRecord>, StoreError> {
        let text = sql::records_between(Dialect::Postgres, self.version, target.is_some());
        let (from, until) = (PgTime(range.from_unix_ms), PgTime(range.until_unix_ms));
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from, &until];
        if let Some(target) = &target {
            params.push(target);
        }
        self.read_records(&text, &params).await
    }

    /// Runs a query that selects the record columns ([`sql::results`] and its kin).
    async fn read_records(
        &self,
        text: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<ResultRecord>, StoreError> {
        let rows = self
            .client
            .query(text, params)
            .await
            .map_err(pg("reading results"))?;
        let columns: Vec<&'static Column> = columns_at(self.version).collect();
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let values = columns
                .iter()
                .enumerate()
                .map(|(i, c)| Ok((*c, value_of(row, i, c.ty).map_err(|e| e.to_string())?)));
            let record = values
                .collect::<Result<Vec<_>, String>>()
                .and_then(record_from)
                .map_err(|why| StoreError::BadRow {
                    location: self.location.clone(),
                    row: row
                        .try_get::<_, uuid::Uuid>(0)
                        .map_or_else(|_| "?".into(), |id| id.to_string()),
                    why,
                })?;
            records.push(record);
        }
        Ok(records)
    }

    pub async fn observations(&self, window: TimeRange) -> Result<Vec<Observation>, StoreError> {
        let (from, until) = (PgTime(window.from_unix_ms), PgTime(window.until_unix_ms));
        let rows = self
            .client
            .query(&sql::observations(Dialect::Postgres), &[&from, &until])
            .await
            .map_err(pg("reading observations"))?;
        Ok(rows
            .iter()
            .map(|row| {
                let ts: PgTime = row.get(2);
                sql::observation(sql::ObservationRow {
                    target: row.get(0),
                    vantage: row.get(1),
                    ts_unix_ms: ts.0,
                    outcome: row.get(3),
                    reason: row.get(4),
                    address: row.get(5),
                    error: row.get(6),
                })
            })
            .collect())
    }
}

/// Rows per multi-row upsert: well under PostgreSQL's 65,535 parameters a statement.
const UPSERT_ROWS: usize = 500;

/// Past this many rows a tier's roll-ups go through a staging table: one binary `COPY` and one
/// `INSERT … SELECT … ON CONFLICT`, instead of statements of thousands of parameters that the
/// server parses one by one.
const STAGED_ROLLUPS: usize = 64;

async fn upsert_rollups_staged(
    tx: &Transaction<'_>,
    tier: Tier,
    rows: &[RollupRow],
) -> Result<(), StoreError> {
    let staging = format!("netvantage_staging_{}", tier.as_str());
    tx.batch_execute(&format!(
        "CREATE TEMPORARY TABLE {staging} (LIKE {}) ON COMMIT DROP",
        tier.table()
    ))
    .await
    .map_err(pg("creating the roll-up staging table"))?;
    let mut types = vec![Type::TEXT, Type::TEXT, Type::INT8];
    types.extend(rollup_sql::figures().iter().map(
        |f| {
            if f.float { Type::FLOAT8 } else { Type::INT8 }
        },
    ));
    let copy = async {
        let sink = tx
            .copy_in(&format!(
                "COPY {staging} ({}) FROM STDIN (FORMAT binary)",
                rollup_sql::all_columns()
            ))
            .await?;
        let writer = BinaryCopyInWriter::new(sink, &types);
        let mut writer = std::pin::pin!(writer);
        for row in rows {
            let values = rollup_sql::upsert_params(std::slice::from_ref(row));
            writer.as_mut().write_raw(values).await?;
        }
        writer.as_mut().finish().await
    };
    copy.await
        .map_err(pg("copying roll-ups into the staging table"))?;
    tx.batch_execute(&rollup_sql::upsert_from(Dialect::Postgres, tier, &staging))
        .await
        .map_err(pg("adding to the roll-ups"))?;
    Ok(())
}

async fn upsert_rollups(
    tx: &Transaction<'_>,
    tier: Tier,
    rows: &[RollupRow],
) -> Result<(), StoreError> {
    if rows.len() > STAGED_ROLLUPS {
        return upsert_rollups_staged(tx, tier, rows).await;
    }
    for chunk in rows.chunks(UPSERT_ROWS) {
        let text = rollup_sql::upsert(Dialect::Postgres, tier, chunk.len());
        let params = rollup_sql::upsert_params(chunk);
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        tx.execute(&text, &params)
            .await
            .map_err(pg("adding to the roll-ups"))?;
    }
    Ok(())
}

async fn upsert_series(client: &impl GenericClient, rows: &[SeriesRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let column =
        |f: fn(&SeriesRow) -> Option<&str>| -> Vec<Option<&str>> { rows.iter().map(f).collect() };
    let targets = column(|r| Some(r.target.as_str()));
    let vantages = column(|r| Some(r.vantage.as_str()));
    let kinds = column(|r| Some(r.kind));
    let domains = column(|r| r.domain.as_deref());
    let endpoints = column(|r| r.endpoint.as_deref());
    let outcomes = column(|r| Some(r.outcome.as_str()));
    let reasons = column(|r| r.reason.map(|reason| reason.as_str()));
    let times: Vec<i64> = rows.iter().map(|r| r.ts_unix_ms).collect();
    client
        .execute(
            rollup_sql::UPSERT_SERIES_UNNEST,
            &[
                &targets, &vantages, &kinds, &domains, &endpoints, &times, &outcomes, &reasons,
            ],
        )
        .await
        .map_err(pg("keeping the latest check"))?;
    Ok(())
}

impl PgStore {
    /// See [`Store::add_rollups`].
    pub async fn add_rollups(&mut self, tier: Tier, rows: &[RollupRow]) -> Result<u64, StoreError> {
        self.writable()?;
        let (final_rows, live) = if self.version >= PACKED_SINCE {
            let final_until = roller::Steps::pruned_until(self).await?.raw;
            packer::split_final(tier, rows, final_until)
        } else {
            (Vec::new(), rows.to_vec())
        };
        let tx = self
            .client
            .transaction()
            .await
            .map_err(pg("adding to the roll-ups"))?;
        upsert_rollups(&tx, tier, &live).await?;
        tx.commit().await.map_err(pg("adding to the roll-ups"))?;
        packer::add(self, tier, &final_rows).await?;
        Ok(rows.len() as u64)
    }

    /// A tier's rows as stored (see [`Store::rollups`] for what a reader gets).
    async fn stored_rollups(&self, query: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        let live = self.live_rollups(query).await?;
        if self.version < PACKED_SINCE {
            return Ok(live);
        }
        packer::stored(self, query, live).await
    }

    /// A tier's live rows (not the packed ones).
    async fn live_rollups(&self, query: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        if self.version < ROLLUPS_SINCE {
            return Ok(Vec::new());
        }
        // PostgreSQL's planner picks the scan itself from the table's statistics.
        let text = rollup_sql::select(
            Dialect::Postgres,
            query.tier,
            query.summed,
            query.target.is_some(),
            false,
        );
        let (from, until) = (query.range.from_unix_ms, query.range.until_unix_ms);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from, &until];
        if let Some(target) = &query.target {
            params.push(target);
        }
        let rows = self
            .client
            .query(&text, &params)
            .await
            .map_err(pg("reading roll-ups"))?;
        let figures = rollup_sql::figures();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut values = Vec::with_capacity(figures.len());
            for (i, figure) in figures.iter().enumerate() {
                values.push(if figure.float {
                    Num::Float(row.try_get(3 + i).map_err(pg("reading roll-ups"))?)
                } else {
                    Num::Int(
                        row.try_get::<_, Option<i64>>(3 + i)
                            .map_err(pg("reading roll-ups"))?
                            .unwrap_or(0),
                    )
                });
            }
            out.push(RollupRow {
                target: row.get(0),
                vantage: row.get(1),
                start_unix_ms: row.get(2),
                rollup: rollup_sql::rollup_of(&values),
            });
        }
        Ok(out)
    }

    /// See [`Store::series`].
    async fn stored_series(&self) -> Result<Vec<Series>, StoreError> {
        if self.version < ROLLUPS_SINCE {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(rollup_sql::SELECT_SERIES, &[])
            .await
            .map_err(pg("reading the series"))?;
        rows.iter()
            .map(|row| {
                crate::series_of(
                    &self.location,
                    (
                        row.get(0),
                        row.get(1),
                        row.get(2),
                        row.get(3),
                        row.get(4),
                        row.get(5),
                        row.get(6),
                        row.get(7),
                    ),
                )
            })
            .collect()
    }

    /// See [`Store::prune`]: raw rows go by whole day partitions (a day is dropped once all of
    /// it is older than the raw retention), roll-ups in batches of [`rollup::PRUNE_BATCH`]
    /// rows, each its own transaction.
    pub async fn prune(
        &mut self,
        retention: &Retention,
        now_unix_ms: i64,
    ) -> Result<Pruned, StoreError> {
        self.writable()?;
        // Every ended bucket is counted before its source goes.
        while self.roll_up(now_unix_ms).await?.total() > 0 {}
        let mut pruned = Pruned::default();
        if let Some(keep) = retention.raw_ms {
            let cutoff = now_unix_ms - keep;
            // Whole days go: what is left starts at the cutoff's day.
            let below = cutoff - cutoff.rem_euclid(DAY_MS);
            self.keep_minutes_of_raw_rows_before(below, retention, now_unix_ms)
                .await?;
            pruned.partitions = self.drop_partitions_before(cutoff).await?;
            self.record_pruned("raw", below).await?;
        }
        if self.version >= PACKED_SINCE {
            let final_until = roller::Steps::pruned_until(self).await?.raw;
            for (i, tier) in Tier::ALL.into_iter().enumerate() {
                pruned.packed_spans[i] = packer::pack_final(self, tier, final_until).await? as u64;
            }
        }
        if self.version >= ROLLUPS_SINCE {
            for (i, tier) in Tier::ALL.into_iter().enumerate() {
                let Some(keep) = retention.of(tier) else {
                    continue;
                };
                let below = rollup_sql::first_kept_start(tier, now_unix_ms, keep);
                let text =
                    rollup_sql::delete_batch(Dialect::Postgres, tier.table(), "start_unix_ms");
                loop {
                    let n = self
                        .client
                        .execute(&text, &[&below, &rollup::PRUNE_BATCH])
                        .await
                        .map_err(pg("dropping expired roll-ups"))?;
                    pruned.rollup_rows[i] += n;
                    if (n as i64) < rollup::PRUNE_BATCH {
                        break;
                    }
                }
                if self.version >= PACKED_SINCE {
                    pruned.rollup_rows[i] += packer::prune(self, tier, below).await?;
                }
                self.record_pruned(tier.as_str(), below).await?;
            }
        }
        Ok(pruned)
    }

    /// One pass of the roller (see [`Store::roll_up`]).
    pub async fn roll_up(&mut self, now_unix_ms: i64) -> Result<Rolled, StoreError> {
        self.writable()?;
        if self.version < PENDING_SINCE {
            return Ok(Rolled::default());
        }
        self.flush_series(false).await?;
        self.prepare_raw_reads().await?;
        roller::roll_pending(self, now_unix_ms, roller::ROLL_BUDGET).await
    }

    /// Writes the latest checks of series whose check only moved on in time, when a minute of
    /// wall time passed since the last such write or when `force`d (before shutdown); see
    /// [`rollup_sql::SeriesMemo`]. The roller's pass calls it.
    pub async fn flush_series(&mut self, force: bool) -> Result<(), StoreError> {
        let rows = self
            .series_memo
            .take_waiting(std::time::Instant::now(), force);
        if rows.is_empty() {
            return Ok(());
        }
        match upsert_series(&self.client, &rows).await {
            Ok(()) => {
                self.series_memo.wrote(&rows);
                Ok(())
            }
            Err(e) => {
                self.series_memo.put_back(rows);
                Err(e)
            }
        }
    }

    /// Makes a minute's raw rows cheap to find in the day partitions the pending minutes are
    /// in: the block-range index summarizes the pages written since the last pass (autovacuum
    /// would, a minute or so later), and a partition never analyzed gets its statistics, without
    /// which the planner scans the whole day for one minute.
    async fn prepare_raw_reads(&mut self) -> Result<(), StoreError> {
        let days: BTreeSet<i64> = PgStore::pending(self)
            .await?
            .iter()
            .filter(|b| b.tier == Tier::Hour)
            .map(|b| b.start_unix_ms.div_euclid(DAY_MS))
            .collect();
        for day in days {
            let Some(partition) = partition_name(day) else {
                continue;
            };
            let found = self
                .client
                .query_opt(
                    "SELECT c.reltuples, (SELECT i.indexrelid::regclass::text FROM pg_index i
                         JOIN pg_class ic ON ic.oid = i.indexrelid
                         JOIN pg_am a ON a.oid = ic.relam
                       WHERE i.indrelid = c.oid AND a.amname = 'brin' LIMIT 1)
                     FROM pg_class c WHERE c.relname = $1",
                    &[&partition],
                )
                .await
                .map_err(pg("preparing the roll-up reads"))?;
            let Some(row) = found else { continue };
            let (tuples, brin): (f32, Option<String>) = (row.get(0), row.get(1));
            if let Some(brin) = brin {
                self.client
                    .execute(
                        "SELECT brin_summarize_new_values($1::text::regclass)",
                        &[&brin],
                    )
                    .await
                    .map_err(pg("preparing the roll-up reads"))?;
            }
            if tuples < 0.0 {
                // The time column's statistics are what the roller's range reads need, and a
                // small sample is plenty for them: a tenth of a full ANALYZE's time (autovacuum
                // analyzes the whole partition later, as it would anyway).
                self.client
                    .batch_execute(&format!(
                        "BEGIN; SET LOCAL default_statistics_target = 10; ANALYZE {partition} (ts); COMMIT"
                    ))
                    .await
                    .map_err(pg("preparing the roll-up reads"))?;
            }
        }
        Ok(())
    }

    /// Writes the minute roll-ups of the raw rows retention is about to drop (see
    /// `SqliteStore::keep_minutes_of_raw_rows_before`).
    async fn keep_minutes_of_raw_rows_before(
        &mut self,
        below: i64,
        retention: &Retention,
        now_unix_ms: i64,
    ) -> Result<(), StoreError> {
        if self.version < PENDING_SINCE {
            return Ok(());
        }
        let already = self.pruned_until().await?.raw;
        let Some(span) = roller::minutes_to_keep(already, retention, now_unix_ms, below) else {
            return Ok(());
        };
        self.client
            .execute(
                &rollup_sql::roll_minutes_from_raw(Dialect::Postgres),
                &[&PgTime(span.from_unix_ms), &PgTime(span.until_unix_ms)],
            )
            .await
            .map_err(pg("keeping the minutes of the raw rows retention drops"))?;
        Ok(())
    }

    async fn record_pruned(&mut self, source: &str, below: i64) -> Result<(), StoreError> {
        if self.version < PENDING_SINCE {
            return Ok(());
        }
        self.client
            .execute(
                &rollup_sql::record_pruned(Dialect::Postgres),
                &[&source, &below],
            )
            .await
            .map_err(pg("recording what retention dropped"))?;
        Ok(())
    }

    async fn pending(&self) -> Result<Vec<PendingBucket>, StoreError> {
        if self.version < PENDING_SINCE {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(rollup_sql::SELECT_PENDING, &[])
            .await
            .map_err(pg("reading the pending roll-ups"))?;
        Ok(crate::pending_of(
            rows.iter()
                .map(|row| (row.get(0), row.get(1), row.get(2)))
                .collect(),
        ))
    }

    async fn pruned_until(&self) -> Result<PrunedUntil, StoreError> {
        let mut pruned = PrunedUntil::default();
        if self.version < PENDING_SINCE {
            return Ok(pruned);
        }
        let rows = self
            .client
            .query(rollup_sql::SELECT_PRUNED, &[])
            .await
            .map_err(pg("reading what retention dropped"))?;
        for row in rows {
            pruned.set(row.get(0), row.get(1));
        }
        Ok(pruned)
    }

    /// A roller step in one transaction: see [`roller::Steps::roll`].
    async fn roll_bucket(&mut self, bucket: PendingBucket) -> Result<(), StoreError> {
        let (start, end) = (
            bucket.start_unix_ms,
            bucket.start_unix_ms + bucket.tier.millis(),
        );
        let tx = self.client.transaction().await.map_err(pg("rolling up"))?;
        match bucket.tier {
            // A mark an earlier build left: its hour is what gets rolled.
            Tier::Minute => {}
            Tier::Hour => {
                tx.execute(
                    &rollup_sql::roll_from_raw(Dialect::Postgres, Tier::Hour),
                    &[&start, &PgTime(start), &PgTime(end)],
                )
                .await
                .map_err(pg("rolling up an hour"))?;
            }
            Tier::Day => {
                tx.execute(
                    &rollup_sql::roll_from_finer(Dialect::Postgres, Tier::Day),
                    &[&start, &end],
                )
                .await
                .map_err(pg("rolling up a day"))?;
            }
        }
        tx.execute(
            &rollup_sql::unmark_pending(Dialect::Postgres),
            &[&bucket.tier.as_str(), &start, &bucket.version],
        )
        .await
        .map_err(pg("rolling up"))?;
        if let Some(coarser) = bucket.tier.coarser() {
            mark_pending(&tx, coarser, &[coarser.bucket_start(start)]).await?;
        }
        tx.commit().await.map_err(pg("rolling up"))?;
        Ok(())
    }

    async fn unmark_bucket(&mut self, bucket: PendingBucket) -> Result<(), StoreError> {
        self.client
            .execute(
                &rollup_sql::unmark_pending(Dialect::Postgres),
                &[
                    &bucket.tier.as_str(),
                    &bucket.start_unix_ms,
                    &bucket.version,
                ],
            )
            .await
            .map_err(pg("rolling up"))?;
        Ok(())
    }
}

/// Marks buckets of `tier` pending inside the caller's transaction, in one statement.
async fn mark_pending(tx: &Transaction<'_>, tier: Tier, starts: &[i64]) -> Result<(), StoreError> {
    for chunk in starts.chunks(UPSERT_ROWS) {
        let tier_name = tier.as_str();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(2 * chunk.len());
        for start in chunk {
            params.push(&tier_name);
            params.push(start);
        }
        tx.execute(
            &rollup_sql::mark_pending(Dialect::Postgres, chunk.len()),
            &params,
        )
        .await
        .map_err(pg("marking roll-ups pending"))?;
    }
    Ok(())
}

impl packer::PackParts for PgStore {
    async fn live(&self, query: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        self.live_rollups(query).await
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
        let text = rollup_sql::select_packed(Dialect::Postgres, table, target.is_some());
        let (from, until) = (spans.from_unix_ms, spans.until_unix_ms);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from, &until];
        if let Some(target) = &target {
            params.push(target);
        }
        let rows = self
            .client
            .query(&text, &params)
            .await
            .map_err(pg("reading packed roll-ups"))?;
        Ok(rows
            .iter()
            .map(|row| PackedRow {
                target: row.get(0),
                vantage: row.get(1),
                span_start_unix_ms: row.get(2),
                data: row.get(3),
            })
            .collect())
    }

    async fn oldest_live(&self, tier: Tier) -> Result<Option<i64>, StoreError> {
        let row = self
            .client
            .query_one(
                &format!("SELECT min(start_unix_ms) FROM {}", tier.table()),
                &[],
            )
            .await
            .map_err(pg("reading packed roll-ups"))?;
        Ok(row.get(0))
    }

    async fn oldest_packed(&self, tier: Tier) -> Result<Option<i64>, StoreError> {
        let Some(table) = pack::table(tier) else {
            return Ok(None);
        };
        let row = self
            .client
            .query_one(&format!("SELECT min(span_start_unix_ms) FROM {table}"), &[])
            .await
            .map_err(pg("reading packed roll-ups"))?;
        Ok(row.get(0))
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
        let doing = "writing packed roll-ups";
        let tx = self.client.transaction().await.map_err(pg(doing))?;
        let (kept, gone): (Vec<&PackedRow>, Vec<&PackedRow>) =
            rows.iter().partition(|r| !r.data.is_empty());
        if !kept.is_empty() {
            let targets: Vec<&str> = kept.iter().map(|r| r.target.as_str()).collect();
            let vantages: Vec<&str> = kept.iter().map(|r| r.vantage.as_str()).collect();
            let starts: Vec<i64> = kept.iter().map(|r| r.span_start_unix_ms).collect();
            let data: Vec<&[u8]> = kept.iter().map(|r| r.data.as_slice()).collect();
            tx.execute(
                &format!(
                    "INSERT INTO {table} (target, vantage, span_start_unix_ms, data)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bytea[])
                     ON CONFLICT (target, vantage, span_start_unix_ms) DO UPDATE SET data = excluded.data"
                ),
                &[&targets, &vantages, &starts, &data],
            )
            .await
            .map_err(pg(doing))?;
        }
        if !gone.is_empty() {
            let targets: Vec<&str> = gone.iter().map(|r| r.target.as_str()).collect();
            let vantages: Vec<&str> = gone.iter().map(|r| r.vantage.as_str()).collect();
            let starts: Vec<i64> = gone.iter().map(|r| r.span_start_unix_ms).collect();
            tx.execute(
                &format!(
                    "DELETE FROM {table} p USING unnest($1::text[], $2::text[], $3::bigint[]) AS k(t, v, s)
                     WHERE p.target = k.t AND p.vantage = k.v AND p.span_start_unix_ms = k.s"
                ),
                &[&targets, &vantages, &starts],
            )
            .await
            .map_err(pg(doing))?;
        }
        if let Some(span) = clear {
            tx.execute(
                &format!(
                    "DELETE FROM {} WHERE start_unix_ms >= $1 AND start_unix_ms < $2",
                    tier.table()
                ),
                &[&span.from_unix_ms, &span.until_unix_ms],
            )
            .await
            .map_err(pg(doing))?;
        }
        tx.commit().await.map_err(pg(doing))
    }
}

impl roller::Parts for PgStore {
    async fn pending(&self) -> Result<Vec<PendingBucket>, StoreError> {
        PgStore::pending(self).await
    }

    async fn stored(&self, query: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        self.stored_rollups(query).await
    }

    async fn raw_extent(&self) -> Result<roller::RawExtent, StoreError> {
        let pruned = PgStore::pruned_until(self).await?.raw;
        // The first day partition: a day is the partitions' grain, and reading the catalog
        // costs nothing where `min(ts)` would scan that day.
        let partitions = self
            .client
            .query(
                "SELECT c.relname FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent
                 WHERE p.relname = 'results'",
                &[],
            )
            .await
            .map_err(pg("listing partitions"))?;
        let first = partitions
            .iter()
            .filter_map(|row| partition_day(row.get(0)))
            .min();
        Ok(roller::RawExtent {
            pruned_until: pruned,
            first_minute: first.map_or(i64::MAX, |day| day * DAY_MS),
        })
    }

    async fn raw(
        &self,
        range: TimeRange,
        target: Option<&str>,
    ) -> Result<Vec<ResultRecord>, StoreError> {
        self.records_between(range, target).await
    }
}

impl roller::Steps for PgStore {
    async fn pruned_until(&self) -> Result<PrunedUntil, StoreError> {
        PgStore::pruned_until(self).await
    }

    async fn roll(&mut self, bucket: PendingBucket) -> Result<(), StoreError> {
        self.roll_bucket(bucket).await
    }

    async fn unmark(&mut self, bucket: PendingBucket) -> Result<(), StoreError> {
        self.unmark_bucket(bucket).await
    }
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Text(t) => t.to_sql_checked(ty, out),
            Param::Num(Num::Int(n)) => n.to_sql_checked(ty, out),
            Param::Num(Num::Float(x)) => x.to_sql_checked(ty, out),
        }
    }

    /// Each value checks the column's type itself.
    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

impl Store for PgStore {
    async fn migrate(&mut self) -> Result<Vec<i32>, StoreError> {
        PgStore::migrate(self).await
    }

    async fn insert(&mut self, records: &[ResultRecord]) -> Result<Written, StoreError> {
        self.write(records, &[]).await
    }

    async fn results(&self, query: &ResultsQuery) -> Result<ResultsPage, StoreError> {
        PgStore::results(self, query).await
    }

    async fn observations(&self, window: TimeRange) -> Result<Vec<Observation>, StoreError> {
        PgStore::observations(self, window).await
    }

    async fn add_rollups(&mut self, tier: Tier, rows: &[RollupRow]) -> Result<u64, StoreError> {
        PgStore::add_rollups(self, tier, rows).await
    }

    async fn rollups(&self, query: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        roller::fresh_rollups(self, query).await
    }

    async fn roll_up(&mut self, now_unix_ms: i64) -> Result<Rolled, StoreError> {
        PgStore::roll_up(self, now_unix_ms).await
    }

    async fn series(&self) -> Result<Vec<Series>, StoreError> {
        PgStore::stored_series(self).await
    }

    async fn prune(
        &mut self,
        retention: &Retention,
        now_unix_ms: i64,
    ) -> Result<Pruned, StoreError> {
        PgStore::prune(self, retention, now_unix_ms).await
    }
}

async fn lock_schema(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await
        .map_err(pg("taking the schema lock"))?;
    Ok(())
}

/// The common case: one `COPY` into `results`, in a savepoint. `false` when a record was
/// stored before (the key refused it): the savepoint is rolled back, nothing of the batch is
/// written, and the caller takes the path that skips stored records.
/// What a batch writes besides its results.
struct Batch<'a> {
    records: &'a [ResultRecord],
    conns: &'a [ConnsRecord],
    rejected: &'a [Rejected],
    version: i32,
}

/// The rest of a batch's transaction once its results are in (`written` says which records
/// were new): the connection log's records, the rejected messages, the pending marks and the
/// series' latest checks; then the commit.
async fn finish_batch(
    tx: Transaction<'_>,
    mut written: Written,
    batch: Batch<'_>,
    memo: &mut rollup_sql::SeriesMemo,
) -> Result<Written, StoreError> {
    if !batch.conns.is_empty() {
        let logged = conns::write(&tx, batch.conns, batch.version).await?;
        written.inserted += logged.inserted;
        written.duplicates += logged.duplicates;
    }
    for r in batch.rejected {
        tx.execute(
            "INSERT INTO rejected_messages (topic, kafka_partition, kafka_offset, payload, error)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[&r.topic, &r.partition, &r.offset, &r.payload, &r.error],
        )
        .await
        .map_err(pg("keeping a rejected message"))?;
    }
    // The roll-ups are the roller's: the batch only marks its hours and keeps each series'
    // latest check (a redelivered record, skipped above, does neither). Last, so concurrent
    // writers, which all mark the current hour, hold that row's lock only until their commit.
    let mut series = Vec::new();
    if batch.version >= PENDING_SINCE && !written.fresh.is_empty() {
        let added = || written.fresh.iter().map(|&i| &batch.records[i]);
        series = memo.take_batch(rollup_sql::latest_per_series(added()));
        upsert_series(&tx, &series).await?;
        mark_pending(&tx, Tier::Hour, &roller::hours_of(added())).await?;
    }
    tx.commit().await.map_err(pg("committing a batch"))?;
    memo.wrote(&series);
    Ok(written)
}

/// A batch holding stored records: `COPY` into a staging table dropped at commit, then insert
/// what isn't stored, returning which records were new.
async fn copy_skipping_stored(
    tx: &Transaction<'_>,
    records: &[ResultRecord],
) -> Result<Written, StoreError> {
    let definitions: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("{} {}", c.name, c.ty.sql(Dialect::Postgres)))
        .collect();
    tx.batch_execute(&format!(
        "CREATE TEMPORARY TABLE netvantage_staging ({}) ON COMMIT DROP",
        definitions.join(", ")
    ))
    .await
    .map_err(pg("creating the staging table"))?;
    copy_rows(tx, "netvantage_staging", records)
        .await
        .map_err(pg("copying a batch into the staging table"))?;
    let columns = list(Dialect::Postgres, LATEST);
    let rows = tx
        .query(
            &format!(
                "INSERT INTO results ({columns}) SELECT {columns} FROM netvantage_staging
                 ON CONFLICT DO NOTHING RETURNING id"
            ),
            &[],
        )
        .await
        .map_err(pg("inserting a batch from the staging table"))?;
    let mut new: HashSet<uuid::Uuid> = rows.iter().map(|r| r.get(0)).collect();
    // A record repeated within the batch counts as new once, at its first place.
    let fresh = records
        .iter()
        .enumerate()
        .filter(|(_, r)| new.remove(&r.id))
        .map(|(i, _)| i)
        .collect();
    Ok(Written::from_fresh(records.len(), fresh))
}

/// Binary `COPY` of every column of `records` into `table`.
async fn copy_rows(
    tx: &Transaction<'_>,
    table: &str,
    records: &[ResultRecord],
) -> Result<u64, tokio_postgres::Error> {
    let types: Vec<Type> = COLUMNS.iter().map(|c| c.ty.postgres_type()).collect();
    let sink = tx
        .copy_in(&format!(
            "COPY {table} ({}) FROM STDIN (FORMAT binary)",
            list(Dialect::Postgres, LATEST)
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for record in records {
        writer
            .as_mut()
            .write_raw(RowValues { record, next: 0 })
            .await?;
    }
    writer.as_mut().finish().await
}

/// A record's values in [`COLUMNS`] order, for `COPY`. (An iterator type of its own rather
/// than `map` with a closure: the future holding it must be `Send`, which the compiler can't
/// prove for the closure's higher-ranked lifetime.)
struct RowValues<'r> {
    record: &'r ResultRecord,
    next: usize,
}

impl<'r> Iterator for RowValues<'r> {
    type Item = Value<'r>;

    fn next(&mut self) -> Option<Value<'r>> {
        let column = COLUMNS.get(self.next)?;
        self.next += 1;
        Some((column.get)(self.record))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = COLUMNS.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for RowValues<'_> {}

/// The date of `day` (days since the Unix epoch), `None` outside the years 1 to 9999.
fn day_start(day: i64) -> Option<time::Date> {
    let seconds = day.checked_mul(86_400)?;
    let date = time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()?
        .date();
    (date.year() >= 1).then_some(date)
}

/// `results_20261123` for the day holding `day` (days since the Unix epoch).
pub fn partition_name(day: i64) -> Option<String> {
    let date = day_start(day)?;
    Some(format!(
        "results_{:04}{:02}{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    ))
}

/// The inverse of [`partition_name`].
fn partition_day(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("results_")?;
    let number = |range: std::ops::Range<usize>| digits.get(range)?.parse::<i32>().ok();
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()?;
    let midnight = date.midnight().assume_utc().unix_timestamp();
    Some(midnight.div_euclid(86_400))
}

/// 2000-01-01, PostgreSQL's epoch, in milliseconds since the Unix epoch.
const PG_EPOCH_UNIX_MS: i64 = 946_684_800_000;

/// A `timestamptz` as milliseconds since the Unix epoch (PostgreSQL keeps microseconds since
/// 2000; netvantage's times are whole milliseconds, so nothing is lost either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PgTime(i64);

impl PgTime {
    fn micros(self) -> Option<i64> {
        self.0.checked_sub(PG_EPOCH_UNIX_MS)?.checked_mul(1000)
    }
}

impl ToSql for PgTime {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // A query bound past what PostgreSQL can hold is ±infinity (i64::MAX and i64::MIN
        // microseconds), which it can; a record's time is checked before (`Value::to_sql`).
        let micros = self
            .micros()
            .unwrap_or(if self.0 > 0 { i64::MAX } else { i64::MIN });
        out.put_i64(micros);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for PgTime {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let micros = i64::from_be_bytes(raw.try_into()?);
        Ok(PgTime(micros.div_euclid(1000) + PG_EPOCH_UNIX_MS))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Uuid(u) => u.to_sql_checked(ty, out),
            Value::Timestamp(ms) => {
                if PgTime(*ms).micros().is_none() {
                    return Err(format!("time {ms} ms since 1970 is out of range").into());
                }
                PgTime(*ms).to_sql_checked(ty, out)
            }
            Value::Text(text) => text.as_ref().to_sql_checked(ty, out),
            Value::Integer(i) => i.to_sql_checked(ty, out),
            Value::Float(x) => x.to_sql_checked(ty, out),
            Value::Bool(b) => b.to_sql_checked(ty, out),
        }
    }

    /// Each value checks the column's type itself ([`ToSql::to_sql_checked`] above).
    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Column `i` of `row` as its type says it is.
fn value_of(
    row: &tokio_postgres::Row,
    i: usize,
    ty: SqlType,
) -> Result<Value<'_>, tokio_postgres::Error> {
    let value = match ty {
        SqlType::Uuid => row.try_get::<_, Option<uuid::Uuid>>(i)?.map(Value::Uuid),
        SqlType::Timestamp => row
            .try_get::<_, Option<PgTime>>(i)?
            .map(|t| Value::Timestamp(t.0)),
        SqlType::Text => row
            .try_get::<_, Option<&str>>(i)?
            .map(|t| Value::Text(t.into())),
        SqlType::Integer => row.try_get::<_, Option<i32>>(i)?.map(Value::Integer),
        SqlType::Float => row.try_get::<_, Option<f64>>(i)?.map(Value::Float),
        SqlType::Bool => row.try_get::<_, Option<bool>>(i)?.map(Value::Bool),
    };
    Ok(value.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_by_utc_day() {
        assert_eq!(partition_name(0).as_deref(), Some("results_19700101"));
        // 2026-11-23T23:59:59.999Z and the next millisecond.
        let last_ms = 1_795_478_399_999i64;
        let day = last_ms.div_euclid(DAY_MS);
        assert_eq!(partition_name(day).as_deref(), Some("results_20261123"));
        assert_eq!(
            partition_name((last_ms + 1).div_euclid(DAY_MS)).as_deref(),
            Some("results_20261124")
        );
        assert_eq!(partition_day("results_20261123"), Some(day));
        assert_eq!(partition_day("results_2026112x"), None);
        assert_eq!(partition_name(i64::MAX / DAY_MS), None, "past year 9999");
    }

    #[test]
    fn postgres_times_are_microseconds_since_2000() {
        assert_eq!(PgTime(PG_EPOCH_UNIX_MS).micros(), Some(0));
        assert_eq!(PgTime(PG_EPOCH_UNIX_MS + 1).micros(), Some(1000));
        assert_eq!(PgTime(i64::MAX).micros(), None);
        let mut out = BytesMut::new();
        PgTime(i64::MAX)
            .to_sql(&Type::TIMESTAMPTZ, &mut out)
            .unwrap();
        assert_eq!(&out[..], &i64::MAX.to_be_bytes(), "+infinity");
        let back = PgTime::from_sql(&Type::TIMESTAMPTZ, &(-1000i64).to_be_bytes()).unwrap();
        assert_eq!(back, PgTime(PG_EPOCH_UNIX_MS - 1));
    }
}

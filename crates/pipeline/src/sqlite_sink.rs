//! The SQLite sink: the embedded store as a [`Sink`]. Durable: a batch is one committed
//! transaction, or an error and nothing of it counts. Every error is retryable from the sink's
//! point of view (a full disk, a locked file): the runner keeps the records in bounded memory
//! and retries with backoff, so a disk that fills for a second and is freed again loses nothing.

use netvantage_core::{ConnsRecord, ResultRecord};
use netvantage_sinks::{Envelope, Guarantee, Settle, Settlement, Sink, SinkError, SinkReport};
use netvantage_store::SqliteStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct SqliteSink {
    store: SqliteStore,
    path: PathBuf,
    delivered: u64,
    new: u64,
    /// When retention runs next (hourly, after a batch).
    next_prune: std::time::Instant,
    /// When the roller runs next (every few seconds, after a batch).
    next_roll: std::time::Instant,
    retention: netvantage_store::Retention,
    conns_retention: netvantage_store::ConnsRetention,
}

/// How often the sink rolls up the minutes, hours and days that ended
/// ([`netvantage_store::roller`]); reads derive what it hasn't reached yet.
const ROLL_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How often the sink drops what retention no longer keeps.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The SQLite file cannot be opened as a store.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct SqliteSinkError {
    pub path: PathBuf,
    pub message: String,
}

impl SqliteSink {
    pub fn open(path: &Path) -> Result<SqliteSink, SqliteSinkError> {
        let fail = |message: String| SqliteSinkError {
            path: path.to_path_buf(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(fail(format!(
                "the directory {} does not exist",
                dir.display()
            )));
        }
        let store = SqliteStore::open_writer(path).map_err(|e| fail(e.to_string()))?;
        Ok(SqliteSink {
            store,
            path: path.to_path_buf(),
            delivered: 0,
            new: 0,
            next_prune: std::time::Instant::now(),
            next_roll: std::time::Instant::now() + ROLL_EVERY,
            retention: netvantage_store::Retention::default(),
            conns_retention: netvantage_store::ConnsRetention::default(),
        })
    }

    /// Keeps each tier as `retention` says instead of the defaults.
    pub fn with_retention(mut self, retention: netvantage_store::Retention) -> SqliteSink {
        self.retention = retention;
        self
    }

    /// Keeps the connection log as `retention` says instead of the defaults.
    pub fn with_conns_retention(
        mut self,
        retention: netvantage_store::ConnsRetention,
    ) -> SqliteSink {
        self.conns_retention = retention;
        self
    }
}

impl SqliteSink {
    /// Drops what the retention (by default raw rows 7 days, minute roll-ups 30, hour
    /// roll-ups 400, day roll-ups forever; the connection log's records 30 days) no longer
    /// keeps, in bounded batches between the agent's writes. A failure is logged and
    /// tried again at the next hour: retention never holds up the results.
    fn prune_when_due(&mut self) {
        if std::time::Instant::now() < self.next_prune {
            return;
        }
        self.next_prune = std::time::Instant::now() + PRUNE_EVERY;
        let now = netvantage_core::clock::unix_ms_now();
        match self.store.prune(&self.retention, now) {
            Ok(pruned) if pruned.raw_rows > 0 || pruned.rollup_rows.iter().any(|n| *n > 0) => {
                tracing::info!(raw_rows = pruned.raw_rows, rollup_rows = ?pruned.rollup_rows, "sqlite: dropped what retention no longer keeps")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("{}: retention: {e}", self.path.display()),
        }
        match self.store.prune_conns(&self.conns_retention, now) {
            Ok(pruned) if pruned.any() => {
                tracing::info!(records = ?pruned.records, rollup_rows = ?pruned.rollup_rows, "sqlite: dropped what the connection log's retention no longer keeps")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("{}: connection log retention: {e}", self.path.display()),
        }
    }
}

impl SqliteSink {
    /// One roller pass when due; a failure is logged and the next pass tries again.
    fn roll_when_due(&mut self, force: bool) {
        if !force && std::time::Instant::now() < self.next_roll {
            return;
        }
        self.next_roll = std::time::Instant::now() + ROLL_EVERY;
        match self.store.roll_up(netvantage_core::clock::unix_ms_now()) {
            Ok(rolled) => tracing::debug!(?rolled, "sqlite: rolled up"),
            Err(e) => tracing::warn!("{}: roll-ups: {e}", self.path.display()),
        }
    }
}

impl Sink for SqliteSink {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn guarantee(&self) -> Guarantee {
        Guarantee::Durable
    }

    fn send(&mut self, batch: &[Envelope], settle: &Arc<dyn Settle>) -> Result<(), SinkError> {
        let records: Vec<ResultRecord> =
            batch.iter().filter_map(|e| e.as_check().cloned()).collect();
        let conns: Vec<ConnsRecord> = batch.iter().filter_map(|e| e.as_conns().cloned()).collect();
        // Two transactions when a batch mixes kinds (no producer does today); a failure of the
        // second retries the whole batch, and the first's rows are then skipped by id.
        let written = self.store.insert(&records).and_then(|checks| {
            let conns = if conns.is_empty() {
                Default::default()
            } else {
                self.store.insert_conns(&conns)?
            };
            Ok(checks.inserted + conns.inserted)
        });
        match written {
            Ok(written) => {
                for envelope in batch {
                    settle.settle(envelope, Settlement::Delivered);
                }
                self.delivered += batch.len() as u64;
                self.new += written;
                self.roll_when_due(false);
                self.prune_when_due();
                Ok(())
            }
            Err(e) => Err(SinkError::retryable(format!(
                "{}: {e}",
                self.path.display()
            ))),
        }
    }

    fn close(mut self: Box<Self>, _grace: std::time::Duration) -> SinkReport {
        self.roll_when_due(true);
        SinkReport {
            name: "sqlite",
            delivered: self.delivered,
            new: self.new,
            ..SinkReport::default()
        }
    }
}

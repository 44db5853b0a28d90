//! `ingest`: a Kafka consumer group member that writes result records into PostgreSQL.
//!
//! The order of things is what makes it safe:
//! 1. read up to `batch_max` messages (or what arrives within `batch_wait`);
//! 2. write them in one transaction ([`PgStore::write`]: a record seen before, by this process
//!    or a dead one, is skipped by its id);
//! 3. only then commit the batch's offsets to Kafka.
//!
//! A crash between 2 and 3 redelivers the batch, which step 2 skips; a crash before 2 loses
//! nothing because nothing was committed. While PostgreSQL is unavailable the same batch is
//! retried with backoff and no offset moves. Only what can heal is retried (no connection, the
//! server shutting down, a serialization failure: [`StoreError::heals`]); a missing database,
//! a refused role or a missing privilege stops ingest at once with the server's message, and
//! a batch left unwritten is redelivered to the next consumer. Messages that are not records are kept in
//! `rejected_messages` with the reason, in the same transaction, and their offsets committed.

use crate::metrics::{IngestMetrics, PartitionLabel};
use netvantage_core::{ConnsRecord, ResultRecord};
use netvantage_sinks::{Envelope, Record};
use netvantage_store::{PgStore, Rejected, StoreError, Written};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why ingest can't start or can't go on.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// librdkafka refused the consumer's settings or the subscription.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The store failed in a way retrying won't heal (see [`StoreError::heals`]).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    /// The user must fix something (a missing database, a refused role): exit 3, not 4.
    pub fn is_usage(&self) -> bool {
        matches!(self, IngestError::Store(e) if e.is_usage())
    }
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub topic: String,
    pub postgres_url: String,
    /// Read from `--postgres-password-file`; else libpq's `PGPASSWORD` / `PGPASSFILE`.
    pub postgres_password: Option<String>,
    pub batch_max: usize,
    pub batch_wait: Duration,
    /// Drop day partitions older than this (checked hourly).
    pub retention: Option<Duration>,
    /// How long the roll-up tiers are kept (a tier not given: its default).
    pub rollup_retention: netvantage_config::agent::RetentionConfig,
    /// How long the connection log (records and roll-ups) is kept.
    pub conns_retention: netvantage_store::ConnsRetention,
}

/// Logs assignments (which partitions this member owns) and feeds consumer lag to the metrics.
pub struct IngestContext {
    metrics: IngestMetrics,
}

impl IngestContext {
    pub fn new(metrics: IngestMetrics) -> Self {
        IngestContext { metrics }
    }
}

impl ClientContext for IngestContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                self.metrics
                    .consumer_lag
                    .get_or_create(&PartitionLabel {
                        topic: topic.clone(),
                        partition: *partition,
                    })
                    .set(p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for IngestContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let partitions: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(?partitions, "ingest: assigned partitions");
            }
            Rebalance::Revoke(list) => {
                let partitions: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(?partitions, "ingest: partitions revoked");
            }
            Rebalance::Error(e) => tracing::warn!("ingest: rebalance failed: {e}"),
        }
    }
}

/// The consumer settings ingest relies on; `config` brings brokers, TLS and SASL, and the
/// caller's own properties (applied by the caller afterwards) may override the rest.
pub fn consumer(
    mut config: ClientConfig,
    group: &str,
    topic: &str,
    metrics: IngestMetrics,
) -> Result<StreamConsumer<IngestContext>, IngestError> {
    for (key, value) in [
        ("group.id", group),
        // Offsets move only after the database commit (see the module docs).
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", "earliest"),
        ("statistics.interval.ms", "5000"),
    ] {
        if config.get(key).is_none() {
            config.set(key, value);
        }
    }
    let consumer: StreamConsumer<IngestContext> = config
        .create_with_context(IngestContext::new(metrics))
        .map_err(|e| IngestError::Kafka(format!("cannot create the consumer: {e}")))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| IngestError::Kafka(format!("cannot subscribe to {topic}: {e}")))?;
    Ok(consumer)
}

/// What one process did, for its exit line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestSummary {
    pub rows_written: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub batches: u64,
}

struct Batch {
    records: Vec<ResultRecord>,
    /// Connection-log records (`conns --sink kafka:…`), stored in their own tables.
    conns: Vec<ConnsRecord>,
    rejected: Vec<Rejected>,
    /// Next offset to consume, per (topic, partition): what gets committed.
    next_offsets: BTreeMap<(String, i32), i64>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            records: Vec::new(),
            conns: Vec::new(),
            rejected: Vec::new(),
            next_offsets: BTreeMap::new(),
        }
    }

    fn len(&self) -> usize {
        self.records.len() + self.conns.len() + self.rejected.len()
    }

    fn add(&mut self, topic: &str, partition: i32, offset: i64, payload: Option<&[u8]>) {
        self.next_offsets
            .insert((topic.to_string(), partition), offset + 1);
        let parsed = match payload {
            None => Err("empty message".to_string()),
            Some(bytes) => Envelope::from_json(bytes).map_err(|e| e.to_string()),
        };
        match parsed {
            Ok(envelope) => match &*envelope.record {
                Record::Check(record) => self.records.push(record.clone()),
                Record::Conns(record) => self.conns.push(record.clone()),
            },
            Err(error) => {
                tracing::warn!(topic, partition, offset, %error, "ingest: not a result record; kept in rejected_messages");
                self.rejected.push(Rejected {
                    topic: topic.to_string(),
                    partition,
                    offset,
                    payload: payload.map(<[u8]>::to_vec),
                    error,
                });
            }
        }
    }
}

/// Connects and applies migrations, retrying what can heal until `stop` (then `Ok(None)`).
/// What can't heal (a missing database, a refused role, a missing privilege) is the error.
pub async fn connect_writer(
    url: &str,
    password: Option<&str>,
    stop: &CancellationToken,
) -> Result<Option<PgStore>, StoreError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match PgStore::connect_writer_with_password(url, password).await {
            Ok(writer) => return Ok(Some(writer)),
            Err(e) if e.heals() => tracing::warn!("{e}; retrying in {delay:?}"),
            Err(e) => return Err(e),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return Ok(None),
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Runs until `stop` is cancelled: then finishes the batch in hand (write and commit) and
/// returns. If PostgreSQL is down at that moment the batch is left uncommitted (it will be
/// redelivered to whoever consumes next) after one last try.
pub async fn run(
    consumer: &StreamConsumer<IngestContext>,
    options: &IngestOptions,
    metrics: &IngestMetrics,
    stop: CancellationToken,
) -> Result<IngestSummary, IngestError> {
    let mut summary = IngestSummary::default();
    let Some(mut writer) = connect_writer(
        &options.postgres_url,
        options.postgres_password.as_deref(),
        &stop,
    )
    .await?
    else {
        return Ok(summary);
    };
    let mut next_retention = Instant::now();
    let mut next_roll = Instant::now() + ROLL_EVERY;
    loop {
        let batch = collect(consumer, options, &stop).await;
        let stopping = stop.is_cancelled();
        if batch.len() > 0 {
            let Some(written) =
                write_with_retry(&mut writer, &batch, options, metrics, &stop).await?
            else {
                tracing::warn!(
                    records = batch.len(),
                    "ingest: stopping with a batch not written; it will be redelivered"
                );
                break;
            };
            summary.rows_written += written.inserted;
            summary.duplicates += written.duplicates;
            summary.rejected += batch.rejected.len() as u64;
            summary.batches += 1;
            commit(consumer, &batch, metrics);
        }
        if Instant::now() >= next_roll || stopping {
            next_roll = Instant::now() + ROLL_EVERY;
            roll_up(&mut writer).await;
        }
        if Instant::now() >= next_retention {
            next_retention = Instant::now() + Duration::from_secs(3600);
            // Raw rows as --retention says (all kept without it), roll-ups as configured.
            let retention = netvantage_store::Retention {
                raw_ms: options.retention.map(|r| r.as_millis() as i64),
                ..crate::sinks::retention_of(&options.rollup_retention)
            };
            prune(&mut writer, &retention).await;
            prune_conns(&mut writer, &options.conns_retention).await;
        }
        if stopping {
            // The series' latest checks still waiting for their minute (see
            // `PgStore::flush_series`); the raw rows hold them anyway.
            if let Err(e) = writer.flush_series(true).await {
                tracing::warn!("postgres: keeping the series' latest checks: {e}");
            }
            break;
        }
    }
    Ok(summary)
}

async fn collect(
    consumer: &StreamConsumer<IngestContext>,
    options: &IngestOptions,
    stop: &CancellationToken,
) -> Batch {
    let mut batch = Batch::new();
    // The wait starts at the first message: an idle topic costs nothing.
    let mut deadline: Option<Instant> = None;
    while batch.len() < options.batch_max {
        let until = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(until), if deadline.is_some() => break,
            // Idle: back to the loop now and then, so the roller keeps up with what ended.
            _ = tokio::time::sleep(ROLL_EVERY), if deadline.is_none() => break,
            message = consumer.recv() => match message {
                Ok(m) => {
                    batch.add(m.topic(), m.partition(), m.offset(), m.payload());
                    deadline.get_or_insert_with(|| Instant::now() + options.batch_wait);
                }
                Err(e) => {
                    tracing::warn!("kafka: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    batch
}

/// Most records per transaction by default (`ingest --batch`). Each transaction ends in one
/// WAL flush: about 7 ms on the project's machine, which at 5,000 records a batch cost a third
/// of a plain `COPY`'s time for the same rows (bench/RESULTS.md, pipeline row 2). A full batch
/// exists only while a backlog is read; otherwise `--batch-wait` ends it first.
pub const DEFAULT_BATCH: u32 = 20_000;

/// How often ingest rolls up the minutes, hours and days that ended ([`netvantage_store::roller`]):
/// the roll-ups stay off the write path, and reads derive what the roller hasn't reached yet.
pub const ROLL_EVERY: Duration = Duration::from_secs(5);

/// One roller pass; a failure is logged and the next pass tries again (reads stay exact).
async fn roll_up(writer: &mut PgStore) {
    match writer.roll_up(netvantage_core::clock::unix_ms_now()).await {
        Ok(rolled) => tracing::debug!(?rolled, "postgres: rolled up"),
        Err(e) => tracing::warn!("roll-ups: {e}; trying again in {ROLL_EVERY:?}"),
    }
}

/// Drops what `retention` no longer keeps; a failure is logged and tried again next hour.
async fn prune(writer: &mut PgStore, retention: &netvantage_store::Retention) {
    match writer
        .prune(retention, netvantage_core::clock::unix_ms_now())
        .await
    {
        Ok(pruned)
            if !pruned.partitions.is_empty() || pruned.rollup_rows.iter().any(|n| *n > 0) =>
        {
            tracing::info!(partitions = ?pruned.partitions, rollup_rows = ?pruned.rollup_rows, "postgres: dropped what retention no longer keeps")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("retention: {e}"),
    }
}

/// Drops what the connection log's retention no longer keeps, in bounded batches; a failure
/// is logged and tried again next hour.
async fn prune_conns(writer: &mut PgStore, retention: &netvantage_store::ConnsRetention) {
    use netvantage_store::ConnsLog;
    match writer
        .prune_conns(retention, netvantage_core::clock::unix_ms_now())
        .await
    {
        Ok(pruned) if pruned.any() => {
            tracing::info!(records = ?pruned.records, rollup_rows = ?pruned.rollup_rows, "postgres: dropped what the connection log's retention no longer keeps")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("connection log retention: {e}"),
    }
}

/// Writes the batch, retrying what can heal (with a reconnect when the connection is gone).
/// `Ok(None)`: stopping with the batch unwritten; `Err`: it can't be written, retrying won't
/// help, and its offsets stay uncommitted.
async fn write_with_retry(
    writer: &mut PgStore,
    batch: &Batch,
    options: &IngestOptions,
    metrics: &IngestMetrics,
    stop: &CancellationToken,
) -> Result<Option<Written>, StoreError> {
    let mut delay = Duration::from_millis(200);
    let mut last_try = false;
    loop {
        let started = std::time::Instant::now();
        match writer
            .write_with_conns(&batch.records, &batch.conns, &batch.rejected)
            .await
        {
            Ok(written) => {
                metrics
                    .batch_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics.rows_written.inc_by(written.inserted);
                metrics.duplicates_skipped.inc_by(written.duplicates);
                metrics
                    .rejected_messages
                    .inc_by(batch.rejected.len() as u64);
                metrics.batches.inc();
                return Ok(Some(written));
            }
            Err(e) if e.heals() => {
                metrics.database_errors.inc();
                tracing::warn!(
                    records = batch.len(),
                    "batch not written ({e}); offsets stay uncommitted, retrying in {delay:?}"
                );
            }
            Err(e) => {
                metrics.database_errors.inc();
                return Err(e);
            }
        }
        if last_try {
            return Ok(None);
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => last_try = true,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
        if writer.is_closed() {
            // Retries until PostgreSQL answers; once stopping (`stop` is cancelled, which is
            // what set `last_try`) it makes a single attempt.
            match connect_writer(
                &options.postgres_url,
                options.postgres_password.as_deref(),
                stop,
            )
            .await?
            {
                Some(new) => *writer = new,
                None => return Ok(None),
            }
        }
    }
}

fn commit(consumer: &StreamConsumer<IngestContext>, batch: &Batch, metrics: &IngestMetrics) {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), next) in &batch.next_offsets {
        if let Err(e) = list.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
            tracing::error!("kafka: bad offset {topic}/{partition}@{next}: {e}");
        }
    }
    // A synchronous commit: when it returns, the group's offsets are where the database is.
    let result = tokio::task::block_in_place(|| consumer.commit(&list, CommitMode::Sync));
    match result {
        Ok(()) => {
            metrics.offset_commits.inc();
        }
        Err(e) => {
            metrics.offset_commit_errors.inc();
            tracing::warn!(
                "kafka: offset commit failed ({e}); the batch is stored and will be skipped if redelivered"
            );
        }
    }
}

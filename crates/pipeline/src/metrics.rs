//! `ingest`'s Prometheus metrics. The registry is served on `/metrics` by the same small server
//! as `conns`' (wired in the CLI).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Debug)]
pub struct IngestMetrics {
    pub rows_written: Counter,
    pub duplicates_skipped: Counter,
    pub rejected_messages: Counter,
    pub batches: Counter,
    pub database_errors: Counter,
    pub offset_commits: Counter,
    pub offset_commit_errors: Counter,
    pub consumer_lag: Family<PartitionLabel, Gauge>,
    pub batch_seconds: Histogram,
    registry: Arc<Registry>,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        IngestMetrics::new()
    }
}

impl IngestMetrics {
    pub fn new() -> IngestMetrics {
        let mut registry = Registry::default();
        let metrics = IngestMetrics {
            rows_written: Counter::default(),
            duplicates_skipped: Counter::default(),
            rejected_messages: Counter::default(),
            batches: Counter::default(),
            database_errors: Counter::default(),
            offset_commits: Counter::default(),
            offset_commit_errors: Counter::default(),
            consumer_lag: Family::default(),
            // 1 ms … ~33 s per batch write.
            batch_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            registry: Arc::new(Registry::default()),
        };
        registry.register(
            "netvantage_ingest_rows_written",
            "Result rows inserted into PostgreSQL",
            metrics.rows_written.clone(),
        );
        registry.register(
            "netvantage_ingest_duplicates_skipped",
            "Redelivered records already stored (skipped by id)",
            metrics.duplicates_skipped.clone(),
        );
        registry.register(
            "netvantage_ingest_rejected_messages",
            "Messages that were not result records (kept in rejected_messages)",
            metrics.rejected_messages.clone(),
        );
        registry.register(
            "netvantage_ingest_batches",
            "Batches committed to PostgreSQL",
            metrics.batches.clone(),
        );
        registry.register(
            "netvantage_ingest_database_errors",
            "Failed batch writes (retried)",
            metrics.database_errors.clone(),
        );
        registry.register(
            "netvantage_ingest_offset_commits",
            "Kafka offset commits after a database commit",
            metrics.offset_commits.clone(),
        );
        registry.register(
            "netvantage_ingest_offset_commit_errors",
            "Kafka offset commits that failed (the batch is redelivered and skipped)",
            metrics.offset_commit_errors.clone(),
        );
        registry.register(
            "netvantage_ingest_consumer_lag",
            "Messages in the partition not yet consumed, per librdkafka's statistics",
            metrics.consumer_lag.clone(),
        );
        registry.register(
            "netvantage_ingest_batch_duration_seconds",
            "Time to write and commit one batch",
            metrics.batch_seconds.clone(),
        );
        IngestMetrics {
            registry: Arc::new(registry),
            ..metrics
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }
}

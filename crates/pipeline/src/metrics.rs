//! The pipeline's Prometheus metrics: `ingest`'s and the agent's. Served on `/metrics` by the
//! one small server of `netvantage-server`.

use netvantage_core::verdict::Verdict;
use netvantage_core::{CheckKind, CheckResult, Outcome};
use netvantage_sinks::{SinkStats, Spool};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::Ordering;

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
            "Rows inserted into PostgreSQL (results and the connection log)",
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

/// `agent --metrics-listen`'s metrics: checks run, targets by verdict, reloads, and what every
/// sink and the spool did (read from their own counters at each scrape).
#[derive(Clone, Debug)]
pub struct AgentMetrics {
    checks: Family<CheckLabels, Counter>,
    targets: Family<VerdictLabel, Gauge>,
    pub reloads: Counter,
    registry: Arc<Registry>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabel {
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: &'static str,
    fate: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabel {
    sink: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpoolLabel {
    event: &'static str,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        AgentMetrics::new(Vec::new(), None)
    }
}

impl AgentMetrics {
    /// The agent's metrics; `sinks` and `spool` are read at each scrape.
    pub fn new(
        sinks: Vec<(&'static str, Arc<SinkStats>)>,
        spool: Option<Arc<Spool>>,
    ) -> AgentMetrics {
        let mut registry = Registry::default();
        let checks = Family::<CheckLabels, Counter>::default();
        let targets = Family::<VerdictLabel, Gauge>::default();
        let reloads = Counter::default();
        // Every series exists from the start, so `rate()` and alerts have a zero to start from.
        for kind in [CheckKind::Tcp, CheckKind::Http] {
            for outcome in [Outcome::Up, Outcome::Degraded, Outcome::Down] {
                let _ = checks.get_or_create(&CheckLabels {
                    kind: kind.as_str(),
                    outcome: outcome.as_str(),
                });
            }
        }
        for verdict in [Verdict::Ok, Verdict::Flappy, Verdict::Down] {
            let _ = targets.get_or_create(&VerdictLabel {
                verdict: verdict_name(verdict),
            });
        }
        registry.register(
            "netvantage_agent_checks",
            "Checks run, by kind and outcome",
            checks.clone(),
        );
        registry.register(
            "netvantage_agent_targets",
            "Targets by their current verdict",
            targets.clone(),
        );
        registry.register(
            "netvantage_agent_reloads",
            "Config reloads applied (SIGHUP)",
            reloads.clone(),
        );
        registry.register_collector(Box::new(SinkCollector { sinks, spool }));
        AgentMetrics {
            checks,
            targets,
            reloads,
            registry: Arc::new(registry),
        }
    }

    pub fn checked(&self, check: &CheckResult) {
        self.checks
            .get_or_create(&CheckLabels {
                kind: check.kind.as_str(),
                outcome: check.outcome.as_str(),
            })
            .inc();
    }

    /// A target's verdict went from `before` (none: its first) to `after`.
    pub fn verdict_changed(&self, before: Option<Verdict>, after: Verdict) {
        if let Some(before) = before {
            self.targets
                .get_or_create(&VerdictLabel {
                    verdict: verdict_name(before),
                })
                .dec();
        }
        self.targets
            .get_or_create(&VerdictLabel {
                verdict: verdict_name(after),
            })
            .inc();
    }

    /// A target left the config: it is no longer counted under its verdict.
    pub fn target_removed(&self, verdict: Verdict) {
        self.targets
            .get_or_create(&VerdictLabel {
                verdict: verdict_name(verdict),
            })
            .dec();
    }

    /// The registry to serve on `/metrics`.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }
}

fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Ok => "ok",
        Verdict::Flappy => "flappy",
        Verdict::Down => "down",
    }
}

#[derive(Debug)]
struct SinkCollector {
    sinks: Vec<(&'static str, Arc<SinkStats>)>,
    spool: Option<Arc<Spool>>,
}

impl Collector for SinkCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
        let mut records = encoder.encode_descriptor(
            "netvantage_agent_sink_records",
            "Records per sink, by fate: received, delivered, failed (a spool may still hold them), dropped",
            None,
            MetricType::Counter,
        )?;
        for (sink, stats) in &self.sinks {
            for (fate, value) in [
                ("received", load(&stats.received)),
                ("delivered", load(&stats.delivered)),
                ("failed", load(&stats.failed)),
                ("dropped", load(&stats.dropped)),
            ] {
                ConstCounter::new(value)
                    .encode(records.encode_family(&SinkLabels { sink, fate })?)?;
            }
        }
        let mut retries = encoder.encode_descriptor(
            "netvantage_agent_sink_retries",
            "Writes a sink could not make and retried (a full disk, a locked file)",
            None,
            MetricType::Counter,
        )?;
        for (sink, stats) in &self.sinks {
            ConstCounter::new(load(&stats.retries))
                .encode(retries.encode_family(&SinkLabel { sink })?)?;
        }
        let mut up = encoder.encode_descriptor(
            "netvantage_agent_sink_up",
            "1 while the sink takes records, 0 once it failed for good",
            None,
            MetricType::Gauge,
        )?;
        for (sink, stats) in &self.sinks {
            let broken = stats.broken.load(Ordering::Relaxed);
            ConstGauge::new(i64::from(!broken)).encode(up.encode_family(&SinkLabel { sink })?)?;
        }
        if let Some((_, kafka)) = self.sinks.iter().find(|(name, _)| *name == "kafka") {
            let errors = encoder.encode_descriptor(
                "netvantage_agent_kafka_delivery_errors",
                "Records Kafka did not acknowledge (they go to the spool)",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(load(&kafka.failed)).encode(errors)?;
        }
        if let Some(spool) = &self.spool {
            let mut events = encoder.encode_descriptor(
                "netvantage_agent_spool_records",
                "Spool records by event: spooled (written, each once), replayed (handed back), dropped (full or unwritable)",
                None,
                MetricType::Counter,
            )?;
            for (event, value) in [
                ("spooled", spool.spooled()),
                ("replayed", spool.replayed()),
                ("dropped", spool.dropped()),
            ] {
                ConstCounter::new(value).encode(events.encode_family(&SpoolLabel { event })?)?;
            }
            let waiting = encoder.encode_descriptor(
                "netvantage_agent_spool_waiting_records",
                "Records on disk in the spool now",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::try_from(spool.records_on_disk()).unwrap_or(i64::MAX))
                .encode(waiting)?;
            let bytes = encoder.encode_descriptor(
                "netvantage_agent_spool_bytes",
                "Bytes on disk in the spool now",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::try_from(spool.bytes()).unwrap_or(i64::MAX)).encode(bytes)?;
        }
        Ok(())
    }
}

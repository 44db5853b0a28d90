//! `netvantage ingest --kafka … --postgres …`: a consumer group member that stores result
//! records in PostgreSQL, exactly once per record id. Wiring only: see
//! `netvantage_pipeline::ingest` for the write-then-commit order that makes it safe.

use crate::exit;
use netvantage_config::agent::{
    Keep, RetentionConfig, Secret, is_secret_property, secret_property_refusal,
};
use netvantage_pipeline::config::parse_agent_config;
use netvantage_pipeline::ingest::{self, IngestOptions};
use netvantage_pipeline::metrics::IngestMetrics;
use netvantage_sinks::kafka::client_config;
use netvantage_store::{PgStore, migrations::LATEST};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const EXAMPLE: &str = "\
Example:
  netvantage ingest --kafka 127.0.0.1:9092 --postgres 'host=127.0.0.1 user=postgres dbname=netvantage'
  netvantage ingest --config netvantage.yaml --postgres postgres://nv@db/netvantage \\
      --postgres-password-file /run/secrets/pg --metrics-listen 127.0.0.1:9466 --retention 30d \\
      --retention-hour 730d

Run several with the same --group to share the topic's partitions. Offsets are committed only
after the batch's database transaction commits; a redelivered record is skipped by its id.
SIGINT/SIGTERM finish the batch in hand, commit, and exit 0. Passwords never go on the
command line (every user sees it in `ps`): a password in --postgres or a secret
--kafka-property (sasl.password, ssl.key.password, …) is refused. See docs/pipeline.md.";

#[derive(clap::Args, Debug)]
#[command(
    about = "Consume result records from Kafka and store them in PostgreSQL",
    after_help = EXAMPLE
)]
pub struct IngestArgs {
    /// Kafka bootstrap servers, `host:port,host:port` (or take them from --config).
    #[arg(long, value_name = "BROKERS")]
    pub kafka: Option<String>,
    /// An agent config whose `sinks.kafka` gives brokers, topic, TLS and SASL settings.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// PostgreSQL connection string (URL or `key=value` form), without a password: that
    /// comes from --postgres-password-file, PGPASSWORD or PGPASSFILE (~/.pgpass).
    #[arg(long, value_name = "URL")]
    pub postgres: String,
    /// A file holding the PostgreSQL password (a trailing newline is not part of it).
    #[arg(long, value_name = "FILE")]
    pub postgres_password_file: Option<PathBuf>,
    /// Topic to consume (default: the config's, else netvantage.results).
    #[arg(long)]
    pub topic: Option<String>,
    /// Consumer group: processes with the same group share the partitions.
    #[arg(long, default_value = "netvantage-ingest")]
    pub group: String,
    /// Most records per database transaction.
    #[arg(long, default_value_t = netvantage_pipeline::ingest::DEFAULT_BATCH, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    /// Longest wait for a batch to fill once its first record arrived.
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = crate::args::positive_duration)]
    pub batch_wait: Duration,
    /// Extra librdkafka consumer property, KEY=VALUE (repeatable), e.g. session.timeout.ms=6000.
    #[arg(long = "kafka-property", value_name = "KEY=VALUE")]
    pub kafka_properties: Vec<String>,
    /// Serve Prometheus metrics (rows written, consumer lag, …) on ADDR's /metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Drop day partitions older than this (checked hourly), e.g. 30d; default: keep all.
    #[arg(long, value_name = "DURATION", value_parser = crate::args::positive_duration)]
    pub retention: Option<Duration>,
    /// Keep minute roll-ups this long (`30d`, or `forever`).
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = keep)]
    pub retention_minute: Keep,
    /// Keep hour roll-ups this long.
    #[arg(long, value_name = "DURATION", default_value = "400d", value_parser = keep)]
    pub retention_hour: Keep,
    /// Keep day roll-ups this long.
    #[arg(long, value_name = "DURATION", default_value = "forever", value_parser = keep)]
    pub retention_day: Keep,
    /// Keep the connection log's records (connections, scans, blocks) this long; its hour and
    /// day roll-ups follow --retention-hour and --retention-day.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = keep)]
    pub retention_conns: Keep,
    /// Apply the database migrations and exit.
    #[arg(long)]
    pub migrate_only: bool,
}

fn keep(text: &str) -> Result<Keep, String> {
    text.parse()
}

pub async fn run(args: IngestArgs) -> anyhow::Result<i32> {
    let postgres_password = match &args.postgres_password_file {
        Some(path) => Some(
            netvantage_sinks::secrets::resolve(&Secret::File(path.clone()))
                .map_err(|e| exit::usage(format!("--postgres-password-file: {e}")))?,
        ),
        None => None,
    };
    if args.migrate_only {
        // Connecting as a writer applies what is missing (and logs it).
        PgStore::connect_writer_with_password(&args.postgres, postgres_password.as_deref()).await?;
        eprintln!("ingest: the database is at schema version {LATEST}");
        return Ok(0);
    }
    let settings = match &args.config {
        Some(path) => {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| exit::usage(format!("{file}: cannot read: {e}")))?;
            let config =
                parse_agent_config(&text, &file).map_err(|e| exit::usage(e.to_string()))?;
            config.sinks.kafka
        }
        None => None,
    };
    let mut settings = match (settings, &args.kafka) {
        (Some(mut s), Some(brokers)) => {
            s.brokers = brokers.clone();
            s
        }
        (Some(s), None) => s,
        (None, Some(brokers)) => netvantage_pipeline::config::KafkaSettings {
            brokers: brokers.clone(),
            topic: "netvantage.results".into(),
            partitions: 6,
            replication: 1,
            tls: None,
            sasl: None,
            memory_records: 1,
            spool_dir: PathBuf::new(),
            spool_max_bytes: 0,
            properties: Vec::new(),
        },
        (None, None) => {
            return Err(exit::usage(
                "give --kafka BROKERS, or --config with a `sinks.kafka` section",
            ));
        }
    };
    if let Some(topic) = &args.topic {
        settings.topic = topic.clone();
    }
    for property in &args.kafka_properties {
        let Some((key, value)) = property.split_once('=') else {
            return Err(exit::usage(format!(
                "--kafka-property {property:?}: expected KEY=VALUE"
            )));
        };
        if is_secret_property(key) {
            return Err(exit::usage(secret_property_refusal(
                key,
                "--kafka-property",
            )));
        }
        settings.properties.push((key.into(), value.into()));
    }
    let shutdown = netvantage_runtime::Shutdown::new();
    shutdown.stop_on_signals()?;
    let metrics = IngestMetrics::new();
    if let Some(addr) = args.metrics_listen {
        let bound = crate::serve::metrics(addr, metrics.registry(), &shutdown)
            .await
            .map_err(|e| exit::usage(format!("--metrics-listen {addr}: {e}")))?;
        tracing::info!(%bound, "serving /metrics");
    }
    let config = client_config(&settings, &[]).map_err(exit::usage)?;
    let consumer = ingest::consumer(config, &args.group, &settings.topic, metrics.clone())
        .map_err(|e| exit::usage(format!("{e:#}")))?;
    let stop = shutdown.token();
    let options = IngestOptions {
        topic: settings.topic.clone(),
        postgres_url: args.postgres.clone(),
        postgres_password,
        batch_max: args.batch as usize,
        batch_wait: args.batch_wait,
        retention: args.retention,
        rollup_retention: RetentionConfig {
            raw: None,
            minute: Some(args.retention_minute),
            hour: Some(args.retention_hour),
            day: Some(args.retention_day),
            conns: Some(args.retention_conns),
        },
        conns_retention: netvantage_pipeline::sinks::conns_retention_of(&RetentionConfig {
            hour: Some(args.retention_hour),
            day: Some(args.retention_day),
            conns: Some(args.retention_conns),
            ..RetentionConfig::default()
        }),
    };
    tracing::info!(topic = %options.topic, group = %args.group, "ingest started");
    let summary = ingest::run(&consumer, &options, &metrics, stop).await?;
    let line = format!(
        "ingest: {} rows written, {} duplicates skipped, {} rejected, {} batches",
        summary.rows_written, summary.duplicates, summary.rejected, summary.batches
    );
    tracing::info!("{line}");
    eprintln!("{line}");
    Ok(0)
}

//! `netvantage agent --config netvantage.yaml`: checks TCP groups and HTTP endpoints forever
//! and sends every result to the configured sinks (SQLite by default, Kafka, stdout).
//! Wiring only: the engine and the sinks live in `netvantage-pipeline`.

use crate::exit;
use netvantage_pipeline::agent::{self, AgentPlan, KAFKA_CLOSE_GRACE, ReadyGroup, SinkSet};
use netvantage_pipeline::config::{AgentConfig, default_agent_name, parse_agent_config};
use netvantage_pipeline::kafka::{self, KafkaSink};
use netvantage_runtime::{Shutdown, limits};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const EXAMPLE: &str = "\
Example:
  netvantage agent --config examples/agent.yaml
  netvantage report --sqlite netvantage.db

netvantage.yaml:
  vantage: fra1                  # where these checks come from
  tcp:
    - name: ssh
      port: 22
      hosts: [127.0.0.1]
      interval: 10s
  http:
    endpoints:
      - name: home
        url: http://127.0.0.1:8080/
  sinks:                         # default: sqlite netvantage.db
    sqlite: {path: netvantage.db}
    kafka: {brokers: 127.0.0.1:9092, topic: netvantage.results}

Relative paths in the config are relative to the current directory. Kafka passwords come
from `password_env` or `password_file`, never from the command line. SIGINT/SIGTERM stop
the checks, flush every sink (undelivered Kafka records go to the spool) and exit 0.
See docs/pipeline.md.";

#[derive(clap::Args, Debug)]
#[command(
    about = "Run checks continuously and publish every result (SQLite, Kafka, stdout)",
    after_help = EXAMPLE
)]
pub struct AgentArgs {
    /// The agent's YAML config.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Stop after this long, as on SIGTERM (default: run until signalled).
    #[arg(long, value_name = "DURATION", value_parser = crate::args::positive_duration)]
    pub run_for: Option<Duration>,
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
}

/// Reads each group's `hosts_file` (bad lines are reported and skipped, as in `ports`).
fn ready_groups(config: &AgentConfig) -> anyhow::Result<Vec<ReadyGroup>> {
    let mut ready = Vec::new();
    for group in &config.tcp {
        let mut targets = group.hosts.clone();
        if let Some(path) = &group.hosts_file {
            let name = path.display().to_string();
            let bytes = std::fs::read(path)
                .map_err(|e| exit::usage(format!("{name}: cannot read: {e}")))?;
            let parsed = netvantage_core::target::parse_targets(&bytes, group.port, &name);
            for error in &parsed.errors {
                tracing::warn!("{error}; line skipped");
            }
            targets.extend(parsed.targets);
        }
        if targets.is_empty() {
            return Err(exit::usage(format!(
                "tcp group {}: no valid hosts",
                group.name
            )));
        }
        ready.push(ReadyGroup::new(group.clone(), targets));
    }
    Ok(ready)
}

pub async fn run(args: AgentArgs) -> anyhow::Result<i32> {
    let file = args.config.display().to_string();
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| exit::usage(format!("{file}: cannot read: {e}")))?;
    let config = parse_agent_config(&text, &file).map_err(|e| exit::usage(e.to_string()))?;
    let groups = ready_groups(&config)?;
    let stop = Shutdown::new();
    stop.stop_on_signals()?;
    if let Some(run_for) = args.run_for {
        stop.stop_after(run_for);
    }

    let background = CancellationToken::new();
    let kafka = match &config.sinks.kafka {
        None => None,
        Some(settings) => {
            let sink =
                Arc::new(KafkaSink::new(settings).map_err(|e| exit::usage(format!("{e:#}")))?);
            tokio::spawn(kafka::ensure_topic_eventually(
                settings.clone(),
                background.clone(),
            ));
            tokio::spawn(
                sink.clone()
                    .replay_until(Duration::from_secs(1), background.clone()),
            );
            if !sink.spool().is_empty() {
                tracing::info!(
                    bytes = sink.spool().bytes(),
                    "kafka: records spooled by an earlier run will be delivered"
                );
            }
            Some(sink)
        }
    };
    let budget = limits::socket_budget(
        limits::ensure_enough_files().map_err(|e| exit::usage(e.to_string()))?,
    );
    let plan = AgentPlan {
        agent: config
            .agent
            .clone()
            .unwrap_or_else(|| default_agent_name(hostname())),
        vantage: config.vantage.clone(),
        groups,
        http: config.http.clone(),
        socket_budget: budget,
    };
    tracing::info!(agent = %plan.agent, vantage = %plan.vantage, "agent started");
    let sinks = SinkSet {
        sqlite: config.sinks.sqlite.clone(),
        stdout: config.sinks.stdout,
        kafka: kafka.clone(),
    };
    let summary = agent::run(plan, sinks, stop).await?;
    background.cancel();
    let mut line = format!("agent: {} results", summary.records);
    if config.sinks.sqlite.is_some() {
        line += &format!("; sqlite: {} stored", summary.sqlite_written);
    }
    if let Some(kafka) = kafka {
        let sink = kafka.clone();
        tokio::task::spawn_blocking(move || sink.close(KAFKA_CLOSE_GRACE)).await?;
        // Records spooled earlier and not replayed yet are still on disk for the next run.
        let counts = kafka.counts();
        line += &format!(
            "; kafka: {} delivered, {} spooled, {} dropped, {} bytes left in the spool",
            counts.delivered.load(Ordering::Relaxed),
            kafka.spool().spooled(),
            kafka.spool().dropped(),
            kafka.spool().bytes()
        );
    }
    tracing::info!("{line}");
    eprintln!("{line}");
    Ok(0)
}

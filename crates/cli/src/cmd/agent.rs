//! `netvantage agent --config netvantage.yaml`: checks TCP groups and HTTP endpoints forever
//! and sends every result to the configured sinks (SQLite by default, Kafka, stdout).
//! Wiring only: the engine and the sinks live in `netvantage-pipeline`.

use crate::exit;
use netvantage_config::agent::default_agent_name;
use netvantage_pipeline::agent::{self, AgentError, AgentRun, load_config};
use netvantage_pipeline::metrics::AgentMetrics;
use netvantage_pipeline::sinks::open_sinks;
use netvantage_runtime::{Reloads, Shutdown, limits};
use netvantage_sinks::{Fanout, RunnerOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const EXAMPLE: &str = "\
Example:
  netvantage agent --config examples/agent.yaml
  netvantage agent --config examples/agent.yaml --listen 127.0.0.1:8080   # and its status page
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
from `password_env` or `password_file`, never from the command line. SIGHUP reloads the
config (validated first; a bad file is logged and the running config stays). SIGINT/SIGTERM
stop the checks, flush every sink (undelivered Kafka records go to the spool) and exit 0, or
4 if a sink failed or records were lost. See docs/pipeline.md.";

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
    /// Serve Prometheus metrics on ADDR's /metrics (checks, verdicts, sinks, the spool).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the status page over the agent's SQLite store on ADDR (as `netvantage serve`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub page: crate::cmd::serve::PageArgs,
}

pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
}

fn config_error(error: AgentError) -> anyhow::Error {
    match error {
        AgentError::Config(message) => exit::usage(message),
        other => anyhow::Error::new(other),
    }
}

pub async fn run(args: AgentArgs) -> anyhow::Result<i32> {
    let loaded = load_config(&args.config).map_err(config_error)?;
    let shutdown = Shutdown::new();
    shutdown.stop_on_signals()?;
    let reloads = Reloads::install()?;
    if let Some(run_for) = args.run_for {
        shutdown.stop_after(run_for);
    }
    let opened = open_sinks(&loaded.config.sinks).map_err(config_error)?;
    let sinks = Fanout::start(opened.sinks, RunnerOptions::default())?;
    let metrics = AgentMetrics::new(
        sinks
            .handles()
            .iter()
            .map(|h| (h.name, h.stats.clone()))
            .collect(),
        opened.spool,
    );
    if let Some(addr) = args.metrics_listen {
        let bound = crate::serve::metrics(addr, metrics.registry(), &shutdown)
            .await
            .map_err(|e| exit::usage(format!("--metrics-listen {addr}: {e}")))?;
        tracing::info!(%bound, "serving /metrics");
    }
    if let Some(addr) = args.listen {
        let Some(path) = loaded.config.sinks.sqlite.clone() else {
            return Err(exit::usage(
                "--listen serves the agent's SQLite store: add `sinks: {sqlite: {path: …}}` to the config",
            ));
        };
        // The sink opened (and migrated) the file above, so the reader finds a store.
        let clock = std::sync::Arc::new(netvantage_core::clock::SystemClock);
        let page = crate::cmd::serve::start_page(
            netvantage_store::Location::Sqlite(path),
            addr,
            &args.page,
            clock,
            &shutdown,
        )
        .await?;
        tracing::info!(bound = %page.local_addr(), "serving the status page");
        tokio::spawn(page.stopped());
    }
    let budget = limits::socket_budget(
        limits::ensure_enough_files().map_err(|e| exit::usage(e.to_string()))?,
    );
    let run = AgentRun {
        agent: loaded
            .config
            .agent
            .clone()
            .unwrap_or_else(|| default_agent_name(hostname())),
        vantage: loaded.config.vantage.clone(),
        config_path: args.config.clone(),
        initial: loaded,
        socket_budget: budget,
    };
    tracing::info!(agent = %run.agent, vantage = %run.vantage, "agent started");
    let summary = agent::run(run, sinks, shutdown.clone(), Some(reloads), metrics).await;
    let line = summary.line();
    tracing::info!("{line}");
    eprintln!("{line}");
    if let Some(netvantage_runtime::StopReason::Failed(why)) = shutdown.reason() {
        eprintln!("netvantage: {why}");
        return Ok(exit::INTERNAL);
    }
    Ok(if summary.lost_anything() {
        exit::INTERNAL
    } else {
        0
    })
}

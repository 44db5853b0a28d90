//! The agent: the `ports` engine (probe scheduler + `check_target`) for each TCP group and the
//! `http` engine (its cycle runner) for the endpoints, all feeding one stream of results that
//! becomes [`ResultRecord`]s for the sinks.
//!
//! Stopping (`stop` cancelled): the schedulers start nothing new, the checks in flight finish
//! and are recorded, every sink is flushed (Kafka: delivered, or spooled to disk), then `run`
//! returns.

use crate::config::{HttpSection, TcpGroup, describe};
use crate::kafka::KafkaSink;
use crate::sqlite::SqliteStore;
use netvantage_core::target::Target;
use netvantage_core::{CheckResult, ResultRecord};
use netvantage_engine::Probe;
use netvantage_engine::dns::{DnsConfig, Resolver};
use netvantage_engine::scheduler::{self, DeadlineRule, Event, Schedule, Spread};
use netvantage_engine::tcp::TcpProber;
use netvantage_engine::tcp_probe::TcpProbe;
use netvantage_http::client::{Checker, ClientOptions};
use netvantage_http::probe::{EndpointDefaults, HttpProbe, HttpTarget};
use netvantage_runtime::Shutdown;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A TCP group with its hosts read from `hosts` and `hosts_file`.
#[derive(Debug, Clone)]
pub struct ReadyGroup {
    pub group: TcpGroup,
    pub targets: Vec<Target>,
}

impl ReadyGroup {
    /// Every target is labelled `host:port`: two groups may check the same host on different
    /// ports, and the stores and reports tell targets apart by this label.
    pub fn new(group: TcpGroup, mut targets: Vec<Target>) -> ReadyGroup {
        for target in &mut targets {
            target.label = describe(&target.host, target.port);
        }
        ReadyGroup { group, targets }
    }
}

pub struct AgentPlan {
    pub agent: String,
    pub vantage: String,
    pub groups: Vec<ReadyGroup>,
    pub http: Option<HttpSection>,
    /// Sockets the agent may hold at once (from the open-file limit).
    pub socket_budget: usize,
}

pub struct SinkSet {
    pub sqlite: Option<PathBuf>,
    pub stdout: bool,
    pub kafka: Option<Arc<KafkaSink>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AgentSummary {
    pub records: u64,
    pub sqlite_written: u64,
}

/// Records written to SQLite per transaction at most.
const SQLITE_BATCH: usize = 2048;

pub async fn run(plan: AgentPlan, sinks: SinkSet, stop: Shutdown) -> anyhow::Result<AgentSummary> {
    let (results, mut incoming) = mpsc::unbounded_channel::<CheckResult>();
    let per_group_budget = (plan.socket_budget / (plan.groups.len() + 1)).max(16);
    let mut engines = tokio::task::JoinSet::new();
    for ready in plan.groups {
        engines.spawn(run_tcp_group(
            ready,
            per_group_budget,
            results.clone(),
            stop.clone(),
        ));
    }
    if let Some(http) = plan.http {
        engines.spawn(run_http(
            http,
            per_group_budget,
            results.clone(),
            stop.clone(),
        ));
    }
    drop(results);

    let sqlite = match &sinks.sqlite {
        Some(path) => Some(SqliteWriter::start(path.clone())?),
        None => None,
    };
    let mut summary = AgentSummary::default();
    let mut chunk = Vec::with_capacity(1024);
    let stdout = std::io::stdout();
    // Ends when every engine has stopped and dropped its sender.
    while incoming.recv_many(&mut chunk, 1024).await > 0 {
        let mut records = Vec::with_capacity(chunk.len());
        let mut out = sinks.stdout.then(|| stdout.lock());
        for check in chunk.drain(..) {
            let record = ResultRecord {
                id: uuid::Uuid::now_v7(),
                agent: plan.agent.clone(),
                vantage: plan.vantage.clone(),
                check,
            };
            if out.is_some() || sinks.kafka.is_some() {
                let payload = serde_json::to_vec(&record)?;
                if let Some(out) = out.as_mut() {
                    out.write_all(&payload)?;
                    out.write_all(b"\n")?;
                }
                if let Some(kafka) = &sinks.kafka {
                    kafka.send(record.key(), &payload);
                }
            }
            records.push(record);
        }
        if let Some(mut out) = out {
            out.flush()?;
        }
        summary.records += records.len() as u64;
        if let Some(sqlite) = &sqlite {
            sqlite.send(records);
        }
    }
    while let Some(joined) = engines.join_next().await {
        if let Err(e) = joined {
            tracing::error!("an engine task failed: {e}");
        }
    }
    if let Some(sqlite) = sqlite {
        summary.sqlite_written = sqlite.finish()?;
    }
    Ok(summary)
}

async fn run_tcp_group(
    ready: ReadyGroup,
    socket_budget: usize,
    results: mpsc::UnboundedSender<CheckResult>,
    stop: Shutdown,
) {
    let ReadyGroup { group, targets } = ready;
    let dns = DnsConfig {
        names: targets.len(),
        ..DnsConfig::default()
    };
    let needs_dns = targets
        .iter()
        .any(|t| Resolver::needs_dns(&dns.pins, &t.host, t.port));
    let resolver = match Resolver::new(dns, needs_dns) {
        Ok(resolver) => Arc::new(resolver),
        Err(e) => {
            tracing::error!(group = %group.name, "cannot set up DNS: {e}");
            return;
        }
    };
    let probe = TcpProbe::new(
        resolver,
        TcpProber::new(socket_budget, group.timing.timeout),
    );
    let schedule = Schedule {
        interval: group.timing.interval,
        rounds: None,
        run_for: None,
        spread: Spread::Even,
        rate: None,
        in_flight: socket_budget,
        deadline: DeadlineRule::Timeout,
    };
    tracing::info!(group = %group.name, targets = targets.len(), interval = ?group.timing.interval, "tcp group started");
    run_engine(schedule, probe, targets.into(), results, stop).await;
}

async fn run_http(
    http: HttpSection,
    concurrency: usize,
    results: mpsc::UnboundedSender<CheckResult>,
    stop: Shutdown,
) {
    let needs_dns = http.endpoints.iter().any(|e| {
        netvantage_core::target::Host::parse(&e.host)
            .is_ok_and(|host| matches!(host, netvantage_core::target::Host::Name(_)))
    });
    let resolver = match Resolver::new(DnsConfig::default(), needs_dns) {
        Ok(resolver) => Arc::new(resolver),
        Err(e) => {
            tracing::error!("cannot set up DNS for the HTTP checks: {e}");
            return;
        }
    };
    let checker = match Checker::new(
        ClientOptions {
            ca_file: None,
            keep_alive: false,
            user_agent: format!("netvantage-agent/{}", env!("CARGO_PKG_VERSION")),
        },
        resolver,
    ) {
        Ok(checker) => checker,
        Err(e) => {
            tracing::error!("cannot set up the HTTP client: {e}");
            return;
        }
    };
    let defaults = EndpointDefaults {
        timing: http.timing,
        latency_inclusive: false,
    };
    let schedule = Schedule {
        interval: http.timing.cycle,
        rounds: None,
        run_for: None,
        spread: Spread::Burst,
        rate: None,
        in_flight: concurrency.min(256),
        deadline: DeadlineRule::WithinRound,
    };
    tracing::info!(endpoints = http.endpoints.len(), interval = ?http.timing.cycle, "http checks started");
    let targets: Arc<[HttpTarget]> = http
        .endpoints
        .into_iter()
        .map(|endpoint| HttpTarget::new(endpoint, &defaults))
        .collect();
    run_engine(schedule, HttpProbe::new(checker), targets, results, stop).await;
}

/// Runs one probe under the scheduler and forwards every result; returns when the scheduler
/// has stopped and the last check in flight has reported.
async fn run_engine<P: Probe>(
    schedule: Schedule,
    probe: P,
    targets: Arc<[P::Target]>,
    results: mpsc::UnboundedSender<CheckResult>,
    stop: Shutdown,
) {
    let (events, mut incoming) = mpsc::unbounded_channel();
    let forward = tokio::spawn(async move {
        while let Some(event) = incoming.recv().await {
            if let Event::Checked {
                results: checks, ..
            } = event
            {
                for check in checks {
                    let _ = results.send(check);
                }
            }
        }
    });
    scheduler::run(schedule, Arc::new(probe), targets, events, stop).await;
    let _ = forward.await;
}

/// SQLite writes happen on their own thread (rusqlite is blocking), in batches.
struct SqliteWriter {
    batches: std::sync::mpsc::Sender<Vec<ResultRecord>>,
    thread: std::thread::JoinHandle<rusqlite::Result<u64>>,
}

impl SqliteWriter {
    fn start(path: PathBuf) -> anyhow::Result<SqliteWriter> {
        let mut store = SqliteStore::open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        let (batches, incoming) = std::sync::mpsc::channel::<Vec<ResultRecord>>();
        let thread = std::thread::Builder::new()
            .name("sqlite-sink".into())
            .spawn(move || {
                let mut written = 0u64;
                while let Ok(mut batch) = incoming.recv() {
                    // Coalesce whatever else is waiting into one transaction.
                    while batch.len() < SQLITE_BATCH {
                        match incoming.try_recv() {
                            Ok(more) => batch.extend(more),
                            Err(_) => break,
                        }
                    }
                    written += store.insert(&batch)? as u64;
                }
                Ok(written)
            })?;
        Ok(SqliteWriter { batches, thread })
    }

    fn send(&self, records: Vec<ResultRecord>) {
        if self.batches.send(records).is_err() {
            tracing::error!("the SQLite writer has stopped; results are not stored");
        }
    }

    fn finish(self) -> anyhow::Result<u64> {
        drop(self.batches);
        match self.thread.join() {
            Ok(result) => Ok(result.map_err(|e| anyhow::anyhow!("SQLite: {e}"))?),
            Err(_) => anyhow::bail!("the SQLite writer panicked"),
        }
    }
}

/// How long the Kafka sink waits at exit for the broker to take queued records before it
/// spools the rest to disk.
pub const KAFKA_CLOSE_GRACE: Duration = Duration::from_secs(10);

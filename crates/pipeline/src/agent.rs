//! The agent: every TCP group and the HTTP endpoints of its config, each a probe under the one
//! scheduler, all feeding one stream of results that becomes records for the sinks.
//!
//! - **Verdicts**: the agent keeps each target's verdict state (the `ports` rules, with the
//!   `--watch` flap window) and logs every change, so its log says when a target went down.
//! - **Reload** (SIGHUP): the file is read and validated first — an error is logged with its
//!   `file:line:col` and the running config stays. Then groups are compared: a removed group
//!   stops, an added one starts, a changed one restarts with its new targets; unchanged groups
//!   run on untouched. Verdict state is kept per target, so a target that stays keeps its
//!   history and verdict whatever happened to its group. Sinks, `agent` and `vantage` need a
//!   restart (a reload that changes them says so).
//! - **Stopping** (the run's [`Shutdown`]): the schedulers start nothing new, the checks in
//!   flight finish and are recorded, then every sink is closed (Kafka: delivered, or spooled).

use crate::metrics::AgentMetrics;
use netvantage_config::agent::{AgentConfig, HttpSection, TcpGroup, describe, parse_agent_config};
use netvantage_config::plan::defaults;
use netvantage_core::fleet::HostState;
use netvantage_core::target::{Host, Target};
use netvantage_core::verdict::{FlapRule, VerdictRules};
use netvantage_core::{CheckResult, ResultRecord};
use netvantage_engine::Probe;
use netvantage_engine::dns::{DnsConfig, Resolver};
use netvantage_engine::scheduler::{self, DeadlineRule, Event, Schedule, Spread};
use netvantage_engine::tcp::TcpProber;
use netvantage_engine::tcp_probe::TcpProbe;
use netvantage_http::client::{Checker, ClientOptions};
use netvantage_http::probe::{EndpointDefaults, HttpProbe, HttpTarget};
use netvantage_runtime::{Reloads, Shutdown, StopReason};
use netvantage_sinks::{Envelope, Fanout, SinkReport};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The config (or a hosts file it names) is wrong: the user must fix it (exit 3).
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A TCP group with its hosts read from `hosts` and `hosts_file`.
#[derive(Debug, Clone, PartialEq)]
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

/// A config as the agent runs it: validated, with every hosts file read.
pub struct LoadedConfig {
    pub config: AgentConfig,
    pub groups: Vec<ReadyGroup>,
}

/// Reads and validates the agent's config and the hosts files it names. Bad host lines are
/// logged and skipped, as in `ports`; a group left with no host is a config error.
pub fn load_config(path: &Path) -> Result<LoadedConfig, AgentError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| AgentError::Config(format!("{file}: cannot read: {e}")))?;
    let config = parse_agent_config(&text, &file).map_err(|e| AgentError::Config(e.to_string()))?;
    let mut groups = Vec::new();
    for group in &config.tcp {
        let mut targets = group.hosts.clone();
        if let Some(hosts) = &group.hosts_file {
            let name = hosts.display().to_string();
            let bytes = std::fs::read(hosts)
                .map_err(|e| AgentError::Config(format!("{name}: cannot read: {e}")))?;
            let parsed = netvantage_core::target::parse_targets(&bytes, group.port, &name);
            for error in &parsed.errors {
                tracing::warn!("{error}; line skipped");
            }
            targets.extend(parsed.targets);
        }
        if targets.is_empty() {
            return Err(AgentError::Config(format!(
                "{file}: tcp group {}: no valid hosts",
                group.name
            )));
        }
        groups.push(ReadyGroup::new(group.clone(), targets));
    }
    Ok(LoadedConfig { config, groups })
}

pub struct AgentRun {
    pub agent: String,
    pub vantage: String,
    /// The config file, read again on SIGHUP.
    pub config_path: PathBuf,
    pub initial: LoadedConfig,
    /// Sockets the agent may hold at once (from the open-file limit).
    pub socket_budget: usize,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AgentSummary {
    pub records: u64,
    pub reloads: u64,
    pub sinks: Vec<SinkReport>,
}

impl AgentSummary {
    /// `agent: N results; sqlite: N stored; kafka: N delivered, N spooled, N dropped, N bytes
    /// left in the spool` — one line on stderr at exit.
    pub fn line(&self) -> String {
        let mut line = format!("agent: {} results", self.records);
        for sink in &self.sinks {
            line += &match sink.name {
                "sqlite" => format!("; sqlite: {} stored", sink.new),
                "kafka" => format!(
                    "; kafka: {} delivered, {} spooled, {} dropped, {} bytes left in the spool",
                    sink.delivered, sink.spooled, sink.dropped, sink.spool_bytes
                ),
                name => format!("; {name}: {} written", sink.delivered),
            };
            if sink.name != "kafka" && sink.dropped > 0 {
                line += &format!(", {} dropped", sink.dropped);
            }
            if let Some(failure) = &sink.failure {
                line += &format!(" (failed: {failure})");
            }
        }
        line
    }

    /// Whether a record was lost or a sink broke (other than a reader of stdout that left).
    pub fn lost_anything(&self) -> bool {
        self.sinks.iter().any(|s| {
            s.dropped > 0
                || s.failure
                    .as_deref()
                    .is_some_and(|f| f != netvantage_sinks::stdout::READER_GONE)
        })
    }
}

/// One round's results of one target, as the engines hand them to the agent.
type Round = Vec<CheckResult>;

/// What identifies a running engine, and what it runs.
#[derive(PartialEq)]
enum EngineSpec {
    Tcp(ReadyGroup),
    /// HTTP sections are compared by their config text (`Debug`): endpoints hold compiled
    /// regexes, which have no equality of their own.
    Http(String),
}

struct Running {
    spec: EngineSpec,
    stop: Shutdown,
    /// Dropping it detaches the engine; it ends on its own `stop`.
    _task: JoinHandle<()>,
}

/// Runs until `shutdown` stops it, reloading on `reloads`; then closes `sinks`.
pub async fn run(
    run: AgentRun,
    sinks: Fanout,
    shutdown: Shutdown,
    mut reloads: Option<Reloads>,
    metrics: AgentMetrics,
) -> AgentSummary {
    let (sender, mut incoming) = mpsc::unbounded_channel::<Round>();
    let mut engines: HashMap<String, Running> = HashMap::new();
    let mut current = run.initial;
    start_engines(
        &current,
        &mut engines,
        run.socket_budget,
        &sender,
        &shutdown,
    );
    // Ours is kept for engines a reload starts; dropped at the stop, so the channel closes
    // once the last engine (and its last check in flight) has reported.
    let mut sender = Some(sender);
    let rules = VerdictRules {
        down_after: defaults::DOWN_AFTER,
        flap: FlapRule::Window(Some(defaults::WATCH_FLAP_WINDOW)),
    };
    let t0 = Instant::now();
    let mut verdicts: HashMap<String, HostState> = HashMap::new();
    let mut summary = AgentSummary::default();
    let mut batch = Vec::with_capacity(256);
    loop {
        tokio::select! {
            received = incoming.recv_many(&mut batch, 256) => {
                if received == 0 {
                    break;
                }
                let mut envelopes = Vec::new();
                for round in batch.drain(..) {
                    record_round(&round, t0.elapsed(), &rules, &mut verdicts, &metrics);
                    for check in round {
                        envelopes.push(Envelope::check(ResultRecord {
                            id: uuid::Uuid::now_v7(),
                            agent: run.agent.clone(),
                            vantage: run.vantage.clone(),
                            check,
                        }));
                    }
                }
                summary.records += envelopes.len() as u64;
                sinks.send(envelopes);
                if sinks.all_broken() {
                    shutdown.stop(StopReason::Failed("every sink has failed: nothing records results".into()));
                }
            }
            Some(()) = async { reloads.as_mut()?.next().await }, if sender.is_some() => {
                match load_config(&run.config_path) {
                    Err(e) => tracing::error!("reload refused, the running config stays: {e}"),
                    Ok(loaded) => {
                        warn_about_restart_only_changes(&current.config, &loaded.config);
                        current = loaded;
                        if let Some(sender) = &sender {
                            start_engines(&current, &mut engines, run.socket_budget, sender, &shutdown);
                        }
                        summary.reloads += 1;
                        metrics.reloads.inc();
                        tracing::info!(engines = engines.len(), "config reloaded");
                    }
                }
            }
            _ = shutdown.stopped(), if sender.is_some() => {
                // The engines stop on the same shutdown (theirs are its children).
                sender = None;
                engines.clear();
            }
            _ = shutdown.forced() => break,
        }
    }
    summary.sinks = tokio::task::spawn_blocking(move || sinks.close(KAFKA_CLOSE_GRACE))
        .await
        .unwrap_or_default();
    summary
}

fn record_round(
    round: &[CheckResult],
    at: Duration,
    rules: &VerdictRules,
    verdicts: &mut HashMap<String, HostState>,
    metrics: &AgentMetrics,
) {
    let Some(first) = round.first() else {
        return;
    };
    for check in round {
        metrics.checked(check);
    }
    let key = match &first.http {
        Some(http) => format!("http {} {}", http.name, first.target),
        None => format!("tcp {}", first.target),
    };
    let state = verdicts.entry(key).or_default();
    let before = state.rounds.checked_sub(1).map(|_| state.verdict());
    if let Some(transition) = state.observe_round(at, round, rules) {
        tracing::info!(
            target = %first.target,
            from = transition.from.map_or("unknown", |v| v.phrase()),
            to = transition.to.phrase(),
            reason = transition.reason.map(|r| r.as_str()),
            "verdict changed"
        );
        metrics.verdict_changed(before, transition.to);
    }
}

fn warn_about_restart_only_changes(old: &AgentConfig, new: &AgentConfig) {
    if old.agent != new.agent || old.vantage != new.vantage {
        tracing::warn!("`agent` and `vantage` changes take effect at the next restart");
    }
    if format!("{:?}", old.sinks) != format!("{:?}", new.sinks) {
        tracing::warn!("`sinks` changes take effect at the next restart");
    }
}

/// Brings the running engines in line with `loaded`: stops removed and changed ones, starts
/// added and changed ones, leaves the rest alone.
fn start_engines(
    loaded: &LoadedConfig,
    engines: &mut HashMap<String, Running>,
    socket_budget: usize,
    rounds: &mpsc::UnboundedSender<Round>,
    shutdown: &Shutdown,
) {
    let mut wanted: Vec<(String, EngineSpec)> = loaded
        .groups
        .iter()
        .map(|g| (format!("tcp {}", g.group.name), EngineSpec::Tcp(g.clone())))
        .collect();
    if let Some(http) = &loaded.config.http {
        wanted.push(("http".into(), EngineSpec::Http(format!("{http:?}"))));
    }
    let per_engine = (socket_budget / (wanted.len() + 1)).max(16);
    let keep: Vec<&String> = wanted.iter().map(|(k, _)| k).collect();
    engines.retain(|key, engine| {
        let unchanged = keep.contains(&key)
            && wanted
                .iter()
                .any(|(k, spec)| k == key && *spec == engine.spec);
        if !unchanged {
            tracing::info!(engine = %key, "stopping");
            engine.stop.stop(StopReason::Finished);
        }
        unchanged
    });
    for (key, spec) in wanted {
        if engines.contains_key(&key) {
            continue;
        }
        let stop = shutdown.child();
        let task = match &spec {
            EngineSpec::Tcp(group) => tokio::spawn(run_tcp_group(
                group.clone(),
                per_engine,
                rounds.clone(),
                stop.clone(),
            )),
            EngineSpec::Http(_) => match loaded.config.http.clone() {
                Some(http) => {
                    tokio::spawn(run_http(http, per_engine, rounds.clone(), stop.clone()))
                }
                None => continue,
            },
        };
        tracing::info!(engine = %key, "started");
        engines.insert(
            key,
            Running {
                spec,
                stop,
                _task: task,
            },
        );
    }
}

async fn run_tcp_group(
    ready: ReadyGroup,
    socket_budget: usize,
    rounds: mpsc::UnboundedSender<Round>,
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
    run_engine(schedule, probe, targets.into(), rounds, stop).await;
}

async fn run_http(
    http: HttpSection,
    concurrency: usize,
    rounds: mpsc::UnboundedSender<Round>,
    stop: Shutdown,
) {
    let needs_dns = http
        .endpoints
        .iter()
        .any(|e| Host::parse(&e.host).is_ok_and(|host| matches!(host, Host::Name(_))));
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
        // The rule `http` applies by default: 500 ms or less is UP.
        latency_inclusive: true,
    };
    let schedule = Schedule {
        interval: http.timing.cycle,
        rounds: None,
        run_for: None,
        spread: Spread::Burst,
        rate: None,
        in_flight: concurrency.min(defaults::HTTP_CONCURRENCY as usize),
        deadline: DeadlineRule::WithinRound,
    };
    tracing::info!(endpoints = http.endpoints.len(), interval = ?http.timing.cycle, "http checks started");
    let targets: Arc<[HttpTarget]> = http
        .endpoints
        .into_iter()
        .map(|endpoint| HttpTarget::new(endpoint, &defaults))
        .collect();
    run_engine(schedule, HttpProbe::new(checker), targets, rounds, stop).await;
}

/// Runs one probe under the scheduler and forwards every round's results; returns when the
/// scheduler has stopped and the last check in flight has reported.
async fn run_engine<P: Probe>(
    schedule: Schedule,
    probe: P,
    targets: Arc<[P::Target]>,
    rounds: mpsc::UnboundedSender<Round>,
    stop: Shutdown,
) {
    let (events, mut incoming) = mpsc::unbounded_channel();
    let forward = tokio::spawn(async move {
        while let Some(event) = incoming.recv().await {
            if let Event::Checked { results, .. } = event {
                let _ = rounds.send(results);
            }
        }
    });
    scheduler::run(schedule, Arc::new(probe), targets, events, stop).await;
    let _ = forward.await;
}

/// How long the sinks get at exit to write what they hold (Kafka: for the broker to take
/// queued records) before the rest is spooled.
pub const KAFKA_CLOSE_GRACE: Duration = Duration::from_secs(10);

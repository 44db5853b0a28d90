//! `netvantage ports PORT`: TCP checks of a host list, with down / flappy / ok verdicts.
//!
//! Wiring only: parse the input, build resolver, prober and round plan, feed every round's
//! results to the pure verdict engine, print. See `netvantage-core` for the rules.

mod report;

use crate::args;
use crate::exit::usage;
use clap::{Args, ValueEnum};
use netvantage_config::plan::{self, RuleError, TcpTiming, defaults};
use netvantage_core::CheckResult;
use netvantage_core::diagnosis::Diagnosis;
use netvantage_core::findings::{Evidence, FindingsEngine};
use netvantage_core::flap::NagiosThresholds;
use netvantage_core::fleet::HostState;
use netvantage_core::target::{self, Target};
use netvantage_core::verdict::{self, FlapRule, VerdictRules};
use netvantage_engine::dns::{DnsConfig, IpFamily, Pin, Resolver};
use netvantage_engine::scheduler::{self, DeadlineRule, Event, Schedule, Slot, Spread};
use netvantage_engine::tcp::TcpProber;
use netvantage_engine::tcp_probe::TcpProbe;
use netvantage_runtime::{Shutdown, StopReason, limits};
use std::io::{IsTerminal as _, Read, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const EXAMPLES: &str = "\
Examples:
  # 12 rounds, 10 s apart (about 2 minutes), verdict per host at the end:
  netvantage ports 443 < hosts.txt
  # one fast sweep with a short timeout, JSON per host:
  netvantage ports 22 --rounds 1 --timeout 300ms --format json --input hosts.txt
  # run until Ctrl-C, printing every state change, with a diagnosis at the end:
  netvantage ports 80 --watch --explain < hosts.txt

Input: one host per line — name, IPv4, IPv6, host:port or [v6]:port (a port on the line
overrides PORT). Blank lines and # comments are ignored; bad lines are reported and skipped.
Exit status: 0 all ok, 1 some flappy and none down, 2 some down, 3 usage or input error.";

#[derive(Args, Debug)]
#[command(
    about = "TCP checks of many hosts: which are down, which are flappy, and why",
    after_help = EXAMPLES
)]
pub struct PortsArgs {
    /// TCP port to check (1-65535); a `host:port` line overrides it.
    #[arg(value_name = "PORT")]
    port: String,

    /// Read hosts from FILE instead of stdin.
    #[arg(long, short = 'i', value_name = "FILE")]
    input: Option<PathBuf>,

    /// Time between two checks of the same host; each round's checks are spread across it.
    #[arg(long, default_value = defaults::TCP_INTERVAL_TEXT, value_parser = args::positive_duration)]
    interval: Duration,

    /// Number of rounds (checks per host). Default 12: the 5 a down verdict needs, plus room
    /// to see flapping, in about 2 minutes.
    #[arg(long, conflicts_with_all = ["duration", "watch"])]
    rounds: Option<u64>,

    /// Run for this long instead of a number of rounds (rounds = duration / interval).
    #[arg(long, value_parser = args::positive_duration, conflicts_with = "watch")]
    duration: Option<Duration>,

    /// Run until stopped, printing each state change as it happens.
    #[arg(long)]
    watch: bool,

    /// Connect timeout per check.
    #[arg(long, default_value = defaults::TCP_TIMEOUT_TEXT, value_parser = args::positive_duration)]
    timeout: Duration,

    /// Consecutive failed checks that make a host down.
    #[arg(long, default_value_t = defaults::DOWN_AFTER, value_parser = clap::value_parser!(u32).range(1..=1000))]
    down_after: u32,

    /// Flap rule: `window` (a success and a failure within the window) or `nagios` (weighted
    /// percent state change over the last 21 checks, with hysteresis).
    #[arg(long, value_enum, default_value_t = FlapMode::Window)]
    flap_detection: FlapMode,

    /// Window for the `window` flap rule. Default: the whole run, or 10m with --watch.
    #[arg(long, value_parser = args::positive_duration)]
    flap_window: Option<Duration>,

    /// Nagios low flap threshold, percent (stop flapping below it).
    #[arg(long, default_value_t = defaults::FLAP_LOW)]
    flap_low: f64,

    /// Nagios high flap threshold, percent (start flapping at or above it).
    #[arg(long, default_value_t = defaults::FLAP_HIGH)]
    flap_high: f64,

    /// Connects per second at most (default: as fast as the spread and concurrency allow).
    #[arg(long)]
    rate: Option<f64>,

    /// Sockets open at once at most. Default: the open-file limit (raised to its hard limit)
    /// minus a reserve.
    #[arg(long)]
    concurrency: Option<usize>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Add a diagnosis: the findings (the cause: a subnet outage, a fleet-wide burst, a periodic
    /// outage, DNS, a dead round-robin address, a service down or a host unreachable), then
    /// failures by reason, by subnet (/24, /64) and by minute.
    #[arg(long)]
    explain: bool,

    /// Pin a name to an address, like curl: HOST:ADDR (every port) or HOST:PORT:ADDR[,ADDR...]
    /// (that port only). Repeatable; several addresses for one name make a round-robin set.
    #[arg(long, value_name = "HOST:[PORT:]ADDR")]
    resolve: Vec<Pin>,

    /// DNS server to ask instead of /etc/resolv.conf's: ADDR or ADDR:PORT (repeatable).
    #[arg(long, value_name = "ADDR[:PORT]")]
    dns_server: Vec<String>,

    /// Timeout of one DNS query.
    #[arg(long, default_value = defaults::DNS_TIMEOUT_TEXT, value_parser = args::positive_duration)]
    dns_timeout: Duration,

    /// Address families to check for a name.
    #[arg(long, value_enum, default_value_t = Family::Auto)]
    ip_family: Family,

    /// Progress bar on stderr: auto shows it when stderr is a terminal.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FlapMode {
    Window,
    Nagios,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Family {
    /// A records, AAAA only when there are none.
    Auto,
    #[value(name = "4")]
    V4,
    #[value(name = "6")]
    V6,
    /// Every A and AAAA record.
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Progress {
    Auto,
    Always,
    Never,
}

/// Results taken from the probes' channel at a time.
const RECEIVE_BATCH: usize = 256;

/// Everything decided from the arguments before any packet is sent.
struct Plan {
    targets: Vec<Target>,
    rounds: Option<u64>,
    rules: VerdictRules,
    resolver: Resolver,
    prober: TcpProber,
    schedule: Schedule,
}

pub async fn run(args: PortsArgs) -> anyhow::Result<i32> {
    let plan = prepare(&args)?;
    let shutdown = Shutdown::new();
    shutdown.stop_on_signals()?;

    let targets: Arc<[Target]> = plan.targets.into();
    let probe = Arc::new(TcpProbe::new(Arc::new(plan.resolver), plan.prober));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(scheduler::run(
        plan.schedule,
        probe,
        targets.clone(),
        tx,
        shutdown.clone(),
    ));

    let mut collector = Collector::new(&targets, plan.rules, &args, plan.rounds);
    collector.collect(rx, &shutdown).await;
    collector.finish(&shutdown)
}

fn prepare(args: &PortsArgs) -> anyhow::Result<Plan> {
    let default_port = target::parse_port(&args.port).map_err(|e| usage(format!("PORT: {e}")))?;
    let (input, source_name) = read_input(args)?;
    let parsed = target::parse_targets(&input, default_port, &source_name);
    for error in &parsed.errors {
        eprintln!("{}", crate::output::escape_line(&error.to_string()));
    }
    if parsed.duplicates > 0 {
        tracing::info!(
            duplicates = parsed.duplicates,
            "duplicate hosts are checked once"
        );
    }
    if parsed.targets.is_empty() {
        return Err(usage(format!(
            "no valid host in {source_name} ({} invalid lines)",
            parsed.errors.len()
        )));
    }

    let rounds = match (args.watch, args.rounds, args.duration) {
        (true, _, _) => None,
        (false, Some(rounds), _) => Some(rounds),
        (false, None, Some(duration)) => Some(TcpTiming::rounds_for(duration, args.interval)),
        (false, None, None) => Some(defaults::TCP_ROUNDS),
    };
    let timing = TcpTiming::new(args.interval, args.timeout, rounds).map_err(|rule| {
        usage(match rule {
            RuleError::NoRounds => "--rounds must be at least 1".to_string(),
            RuleError::TimeoutNotBelowInterval { timeout, interval } => format!(
                "--timeout ({timeout}) must be shorter than --interval ({interval}) so a host's checks never overlap"
            ),
            other => other.to_string(),
        })
    })?;
    if let Some(rounds) = rounds.filter(|&r| r < u64::from(args.down_after)) {
        tracing::info!(
            "{rounds} rounds are fewer than --down-after {}: a host is down only if every round fails",
            args.down_after
        );
    }
    if let Some(rate) = args.rate {
        plan::check_rate(rate).map_err(|rule| usage(format!("--rate: {rule}")))?;
    }
    let (flap_low, flap_high) = plan::check_flap_thresholds(args.flap_low, args.flap_high)
        .map_err(|rule| usage(format!("--flap-low/--flap-high: {rule}")))?;
    let flap = match args.flap_detection {
        FlapMode::Nagios => FlapRule::Nagios(NagiosThresholds {
            low: flap_low,
            high: flap_high,
        }),
        FlapMode::Window => plan::default_flap_window(args.watch, args.flap_window),
    };
    let rules = VerdictRules {
        down_after: args.down_after,
        flap,
    };

    let mut dns_config = DnsConfig {
        family: match args.ip_family {
            Family::Auto => IpFamily::Auto,
            Family::V4 => IpFamily::V4,
            Family::V6 => IpFamily::V6,
            Family::Both => IpFamily::Both,
        },
        timeout: args.dns_timeout,
        ..Default::default()
    };
    dns_config.pins = args.resolve.iter().cloned().collect();
    for server in &args.dns_server {
        let addr = server
            .parse::<SocketAddr>()
            .or_else(|_| {
                server
                    .parse::<std::net::IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 53))
            })
            .map_err(|_| {
                usage(format!(
                    "invalid --dns-server {server:?}: expected ADDR or ADDR:PORT"
                ))
            })?;
        dns_config.nameservers.push(addr);
    }
    let names = parsed
        .targets
        .iter()
        .filter(|t| Resolver::needs_dns(&dns_config.pins, &t.host, t.port))
        .count();
    dns_config.names = names;
    let resolver = Resolver::new(dns_config, names > 0).map_err(|e| usage(e.to_string()))?;

    let nofile = limits::ensure_enough_files().map_err(|e| usage(e.to_string()))?;
    let budget = limits::socket_budget(nofile);
    let sockets = match args.concurrency {
        Some(0) => return Err(usage("--concurrency must be at least 1")),
        Some(n) if n > budget => {
            tracing::warn!(
                "--concurrency {n} exceeds the open-file budget {budget} (limit {nofile}); using {budget}"
            );
            budget
        }
        Some(n) => n,
        None => budget,
    };
    tracing::info!(targets = parsed.targets.len(), nofile, sockets, "starting");
    Ok(Plan {
        rounds,
        rules,
        resolver,
        prober: TcpProber::new(sockets, timing.timeout),
        schedule: Schedule {
            interval: timing.interval,
            rounds: timing.rounds,
            run_for: None,
            spread: Spread::Even,
            rate: args.rate,
            in_flight: sockets,
            deadline: DeadlineRule::Timeout,
        },
        targets: parsed.targets,
    })
}

/// Largest host list read (millions of lines): `/dev/zero` or an endless pipe as the input is
/// refused once past it instead of eating memory.
const MAX_INPUT_BYTES: u64 = 64 << 20;

fn read_input(args: &PortsArgs) -> anyhow::Result<(Vec<u8>, String)> {
    let (reader, name): (Box<dyn Read>, String) = match &args.input {
        // A FIFO is fine (`--input <(make-hosts)`); SIGINT still ends a read that waits, as
        // signal handling starts only after the input is read.
        Some(path) => (
            Box::new(
                std::fs::File::open(path)
                    .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?,
            ),
            path.display().to_string(),
        ),
        None => (Box::new(std::io::stdin()), "stdin".to_string()),
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| usage(format!("cannot read {name}: {e}")))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(usage(format!(
            "{name}: more than {} MiB of hosts; split the list",
            MAX_INPUT_BYTES >> 20
        )));
    }
    Ok((bytes, name))
}

/// Receives every round's results and keeps the per-host state.
struct Collector<'a> {
    targets: &'a [Target],
    hosts: Vec<HostState>,
    rules: VerdictRules,
    diagnosis: Option<Diagnosis>,
    findings: Option<FindingsEngine>,
    watch: bool,
    json: bool,
    progress: Option<indicatif::ProgressBar>,
}

impl<'a> Collector<'a> {
    fn new(
        targets: &'a [Target],
        rules: VerdictRules,
        args: &PortsArgs,
        rounds: Option<u64>,
    ) -> Self {
        let show_progress = match args.progress {
            Progress::Always => true,
            Progress::Never => false,
            Progress::Auto => std::io::stderr().is_terminal(),
        };
        let progress = show_progress.then(|| {
            let total = targets.len() as u64 * rounds.unwrap_or(1);
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} checks {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Collector {
            targets,
            hosts: vec![HostState::default(); targets.len()],
            rules,
            diagnosis: args.explain.then(Diagnosis::default),
            findings: args
                .explain
                .then(|| FindingsEngine::with_series(targets.len())),
            watch: args.watch,
            json: args.format == Format::Json,
            progress,
        }
    }

    async fn collect(&mut self, mut rx: mpsc::UnboundedReceiver<Event>, shutdown: &Shutdown) {
        // Taking whatever has arrived in one go keeps the per-result cost of the loop itself
        // (the select and its wakers) off a 10k-checks-per-second sweep.
        let mut batch = Vec::with_capacity(RECEIVE_BATCH);
        loop {
            tokio::select! {
                biased;
                received = rx.recv_many(&mut batch, RECEIVE_BATCH) => {
                    if received == 0 {
                        break;
                    }
                    for event in batch.drain(..) {
                        if let Event::Checked { slot, results } = event {
                            self.record(slot, &results, shutdown);
                        }
                    }
                }
                _ = shutdown.stopped() => {
                    // Keep everything already observed; in-flight checks have observed nothing.
                    while let Ok(event) = rx.try_recv() {
                        if let Event::Checked { slot, results } = event {
                            self.record(slot, &results, shutdown);
                        }
                    }
                    break;
                }
            }
        }
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
    }

    fn record(&mut self, slot: Slot, results: &[CheckResult], shutdown: &Shutdown) {
        if let Some(diagnosis) = &mut self.diagnosis {
            results.iter().for_each(|r| diagnosis.observe(r));
        }
        if let Some(findings) = &mut self.findings {
            let is_name = matches!(self.targets[slot.target].host, target::Host::Name(_));
            for result in results {
                findings.observe(&Evidence::of_result(slot.target as u32, is_name, result));
            }
        }
        let host = &mut self.hosts[slot.target];
        let transition = host.observe_round(slot.started, results, &self.rules);
        if let Some(bar) = &self.progress {
            if self.watch && bar.position() + 1 >= bar.length().unwrap_or(0) {
                bar.set_position(0);
                bar.set_message(format!("round {}", slot.round + 1));
            } else {
                bar.inc(1);
            }
        }
        if let (true, Some(transition)) = (self.watch, transition) {
            // The first verdict of a host is news only when it is not "ok".
            if transition.from.is_none() && transition.to == verdict::Verdict::Ok {
                return;
            }
            let target = &self.targets[slot.target];
            let line = if self.json {
                report::transition_event(target, &transition).to_string()
            } else {
                crate::output::escape_line(&report::transition_line(target, &transition))
                    .into_owned()
            };
            let mut out = std::io::stdout().lock();
            let written = writeln!(out, "{line}").and_then(|()| out.flush());
            if let Err(err) = written {
                // A reader that left (`| head`) ends the watch quietly; anything else ends it
                // with the error.
                let reason = if err.kind() == std::io::ErrorKind::BrokenPipe {
                    StopReason::OutputClosed
                } else {
                    StopReason::Failed(format!("cannot write results to stdout: {err}"))
                };
                shutdown.stop(reason);
            }
        }
    }

    fn finish(mut self, shutdown: &Shutdown) -> anyhow::Result<i32> {
        if let Some(StopReason::Failed(why)) = shutdown.reason() {
            return Err(anyhow::anyhow!(why));
        }
        let checked: Vec<_> = self
            .hosts
            .iter()
            .filter(|h| h.rounds > 0)
            .map(|h| h.verdict())
            .collect();
        let code = netvantage_core::status::exit_code(&checked);
        // The reader left (`| head -1`): what it read was all it wanted; exit 0 quietly, as
        // Unix tools do.
        if shutdown.reason() == Some(StopReason::OutputClosed) {
            return Ok(0);
        }
        match self.write_report() {
            Ok(()) => {}
            Err(err) if crate::output::reader_gone(&err) => return Ok(0),
            Err(err) => return Err(err.context("cannot write results to stdout")),
        }
        if checked.len() < self.hosts.len() {
            eprintln!(
                "netvantage: stopped before {} hosts were checked",
                self.hosts.len() - checked.len()
            );
        }
        Ok(code)
    }

    fn write_report(&mut self) -> anyhow::Result<()> {
        let stdout = std::io::stdout();
        // 100k hosts are about 40 MB of JSON: large writes, not 8 KiB ones.
        let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        for (target, host) in self.targets.iter().zip(&self.hosts) {
            if self.json {
                serde_json::to_writer(
                    &mut out,
                    &report::host_report(target, host, &self.rules.flap),
                )?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{}",
                    crate::output::escape_line(&report::verdict_line(target, host))
                )?;
            }
        }
        if let Some(engine) = self.findings.take() {
            let findings = engine.finish(&report::PortsNames(self.targets));
            if self.json {
                report::write_finding_events(&mut std::io::stderr().lock(), &findings)?;
            } else {
                writeln!(out)?;
                write!(
                    out,
                    "{}",
                    crate::output::escape_text(&report::findings_text(&findings))
                )?;
            }
        }
        if let Some(diagnosis) = &self.diagnosis {
            let text = crate::output::escape_text(&diagnosis.render(20));
            if self.json {
                eprint!("{text}");
            } else {
                writeln!(out)?;
                write!(out, "{text}")?;
            }
        }
        out.flush()?;
        Ok(())
    }
}

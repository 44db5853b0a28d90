//! `netvantage conns`: reports every new TCP connection on this host, detects port scans and,
//! with `--block`, keeps scanners out through nftables. The rules live in `netvantage-conns`;
//! this module only wires the command line, the clock, stdout and the firewall together.

use crate::args;
use anyhow::Context;
use ipnet::IpNet;
use netvantage_conns::scan::{ScanConfig, ScanDetector};
use netvantage_conns::{
    Direction, Monitor, NetlinkSource, ProcSource, Source, SourceError, clock, format, hostaddrs,
    metrics::{self, Metrics},
    nft::{self, Firewall},
    policy::{self, BlockPolicy},
};
use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};

const AFTER_HELP: &str = "\
Output (stdout, one line per event; UTC unless --local-time):
  2021-04-28 15:28:05: New connection: 192.0.2.56:5973 -> 10.0.0.5:80
  2021-04-28 15:28:05: Port scan detected: 192.0.2.56 -> 10.0.0.5 on ports 80,81,82,83
  2021-04-28 15:28:05: Blocked 192.0.2.56 for 3600s

Examples:
  netvantage conns
  netvantage conns --source netlink --interval 1s --metrics-addr 127.0.0.1:9101
  netvantage conns --block --block-ttl 10m --allow 10.0.0.0/8 --allow 2001:db8::/32
  netvantage conns --proc-root /host/proc --include-existing --count 1

See docs/conns.md for when each source can miss a connection.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// Parse <proc-root>/net/tcp and tcp6.
    Proc,
    /// Dump the table through NETLINK_SOCK_DIAG (like `ss`); faster at scale.
    Netlink,
}

/// Report new TCP connections, detect port scans, optionally block scanners.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct ConnsArgs {
    /// Time between two reads of the socket table (500ms, 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = args::positive_duration)]
    interval: Duration,
    /// Where the socket table is read from.
    #[arg(long, value_enum, default_value_t = SourceKind::Proc)]
    source: SourceKind,
    /// The /proc to read (e.g. the host's /proc mounted into a container). Proc source only.
    #[arg(long, value_name = "DIR")]
    proc_root: Option<PathBuf>,
    /// Also print the connections already open at the first poll.
    #[arg(long)]
    include_existing: bool,
    /// Timestamps in the local time zone instead of UTC.
    #[arg(long)]
    local_time: bool,
    /// A source connecting to more than this many distinct local ports is a scanner.
    #[arg(long, value_name = "N", default_value_t = 3)]
    scan_ports: usize,
    /// The sliding window for --scan-ports.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = args::positive_duration)]
    scan_window: Duration,
    /// At most this many sources are remembered for scan detection (least recent evicted).
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    scan_max_sources: usize,
    /// Add scanners to the nftables table `inet netvantage` (needs CAP_NET_ADMIN).
    #[arg(long)]
    block: bool,
    /// How long a scanner stays blocked (whole seconds, rounded up).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = args::positive_duration)]
    block_ttl: Duration,
    /// Never block addresses in this network (CIDR or address; repeatable).
    #[arg(long = "allow", value_name = "CIDR", value_parser = policy::parse_allow)]
    allow: Vec<IpNet>,
    /// Leave the nftables table in place on exit.
    #[arg(long, requires = "block")]
    keep_rules: bool,
    /// Log what --block would do without touching nftables.
    #[arg(long, requires = "block")]
    dry_run: bool,
    /// Serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9101).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Stop after this many polls (default: run until SIGINT/SIGTERM).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
}

pub async fn run(args: ConnsArgs) -> anyhow::Result<i32> {
    if args.proc_root.is_some() && args.source == SourceKind::Netlink {
        return Err(crate::exit::usage(
            "--proc-root only applies to --source proc (netlink reads this process's network namespace)",
        ));
    }
    if args.scan_ports == 0 || args.scan_max_sources == 0 {
        return Err(crate::exit::usage(
            "--scan-ports and --scan-max-sources must be at least 1",
        ));
    }
    let source: Box<dyn Source> = match args.source {
        SourceKind::Proc => Box::new(ProcSource::new(
            args.proc_root
                .clone()
                .unwrap_or_else(|| PathBuf::from("/proc")),
        )),
        SourceKind::Netlink => {
            Box::new(NetlinkSource::open().context("cannot open a NETLINK_SOCK_DIAG socket")?)
        }
    };

    let metrics = Metrics::new();
    if let Some(addr) = args.metrics_addr {
        let bound = metrics::serve(addr, metrics.clone())
            .await
            .map_err(|err| crate::exit::usage(format!("--metrics-addr {addr}: {err}")))?;
        tracing::info!("metrics on http://{bound}/metrics");
    }

    let firewall = if args.block && !args.dry_run {
        let firewall = Firewall::default();
        let setup = firewall.clone();
        tokio::task::spawn_blocking(move || setup.setup())
            .await?
            .context("cannot create the nftables table inet netvantage")?;
        tracing::info!("nftables table inet {} ready", nft::TABLE);
        Some(firewall)
    } else {
        None
    };

    let mut watcher = Watcher {
        monitor: Monitor::new(source),
        detector: ScanDetector::new(ScanConfig {
            max_ports: args.scan_ports,
            window: args.scan_window,
            max_sources: args.scan_max_sources,
            ..ScanConfig::default()
        }),
        policy: BlockPolicy::new(args.allow.clone()),
        block: args.block,
        firewall: firewall.clone(),
        ttl: args.block_ttl,
        blocked: HashMap::new(),
        metrics,
        include_existing: args.include_existing,
        local_time: args.local_time,
    };

    let outcome = watch(&mut watcher, &args).await;

    if let Some(firewall) = firewall {
        if args.keep_rules {
            tracing::info!(
                "leaving nftables table inet {} in place (--keep-rules)",
                nft::TABLE
            );
        } else {
            let removed = tokio::task::spawn_blocking(move || firewall.teardown()).await?;
            removed.context("cannot remove the nftables table inet netvantage")?;
            tracing::info!("nftables table inet {} removed", nft::TABLE);
        }
    }
    outcome
}

async fn watch(watcher: &mut Watcher, args: &ConnsArgs) -> anyhow::Result<i32> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut ticker = tokio::time::interval(args.interval);
    // A slow poll delays the next one instead of bunching them up.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut polls = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
        let first = polls == 0;
        match run_blocking(|| watcher.cycle()) {
            Ok(Cycle::Continue) => {}
            Ok(Cycle::OutputClosed) => break,
            Err(err) if first => return Err(err),
            // A later failure (a transient read error) costs one poll, not the monitor.
            Err(err) => tracing::error!("poll failed: {err:#}"),
        }
        polls += 1;
        if args.count.is_some_and(|count| polls >= count) {
            break;
        }
    }
    Ok(0)
}

/// A poll is synchronous work (reading the table, nft): off the reactor's worker when the
/// runtime has others, inline on a current-thread runtime (where `block_in_place` panics).
fn run_blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::current().runtime_flavor() {
        RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

enum Cycle {
    Continue,
    /// stdout's reader went away: nothing left to report to.
    OutputClosed,
}

struct Watcher {
    monitor: Monitor<Box<dyn Source>>,
    detector: ScanDetector,
    policy: BlockPolicy,
    block: bool,
    /// None with --dry-run.
    firewall: Option<Firewall>,
    ttl: Duration,
    /// What we blocked and until when, for the gauge and to avoid re-adding live entries.
    blocked: HashMap<IpAddr, Instant>,
    metrics: Metrics,
    include_existing: bool,
    local_time: bool,
}

impl Watcher {
    fn cycle(&mut self) -> anyhow::Result<Cycle> {
        let started = Instant::now();
        let unix = clock::unix_now();
        let report = match self.monitor.poll() {
            Ok(report) => report,
            Err(err @ SourceError::Read { .. }) => return Err(crate::exit::usage(err.to_string())),
            Err(err) => return Err(err.into()),
        };
        self.metrics
            .poll_duration
            .observe(started.elapsed().as_secs_f64());
        self.metrics.malformed_lines.inc_by(report.stats.malformed);
        if let Some((path, line, err)) = &report.stats.first_malformed {
            tracing::warn!(
                "skipped {} malformed line(s); first: {}:{line}: {err}",
                report.stats.malformed,
                path.display()
            );
        }
        let offset = if self.local_time {
            clock::local_offset(unix)
        } else {
            0
        };
        let ts = format::timestamp(unix, offset);
        let mut lines = Vec::new();
        if report.baseline {
            tracing::info!(connections = report.connections, "baseline taken");
        }
        if !report.baseline || self.include_existing {
            for conn in report.new {
                lines.push(format::new_connection(&ts, conn));
                self.metrics.new_connection(conn.direction);
            }
        }
        // The baseline holds connections of unknown age: they never count towards a scan.
        let inbound: Vec<_> = if report.baseline {
            Vec::new()
        } else {
            report
                .new
                .iter()
                .filter(|c| c.direction == Direction::Inbound)
                .map(|c| (c.source.ip(), c.destination.ip(), c.destination.port()))
                .collect()
        };
        tracing::debug!(
            connections = report.connections,
            new = report.new.len(),
            "poll done"
        );
        let now = Instant::now();
        let alerts = self.detector.observe(now, inbound);
        if !alerts.is_empty() && self.block {
            match hostaddrs::own_addresses() {
                Ok(own) => self.policy.set_own_addresses(own),
                Err(err) => tracing::error!(
                    "cannot list this host's addresses, so nothing is blocked: {err}"
                ),
            }
        }
        for alert in &alerts {
            lines.push(format::port_scan(&ts, alert));
            self.metrics.port_scans.inc();
            if self.block
                && let Some(line) = self.block_source(alert.source, now, &ts)
            {
                lines.push(line);
            }
        }
        self.blocked.retain(|_, until| *until > now);
        self.metrics
            .blocked_sources
            .set(i64::try_from(self.blocked.len()).unwrap_or(i64::MAX));
        Ok(print(&lines))
    }

    /// Blocks `source` if policy allows; returns the line to print when it was blocked.
    fn block_source(&mut self, source: IpAddr, now: Instant, ts: &str) -> Option<String> {
        let address = match self.policy.check(source) {
            Ok(address) => address,
            Err(refusal) => {
                tracing::warn!("not blocking {source}: {refusal}");
                return None;
            }
        };
        if self.blocked.get(&address).is_some_and(|until| *until > now) {
            return None;
        }
        let seconds = nft::ttl_seconds(self.ttl);
        let Some(firewall) = &self.firewall else {
            tracing::warn!("dry run: would block {address} for {seconds}s");
            return None;
        };
        match firewall.block(address, self.ttl) {
            Ok(()) => {
                self.blocked
                    .insert(address, now + Duration::from_secs(seconds));
                Some(format::blocked(ts, address, seconds))
            }
            Err(err) => {
                tracing::error!("cannot block {address}: {err}");
                None
            }
        }
    }
}

fn print(lines: &[String]) -> Cycle {
    let mut out = std::io::stdout().lock();
    for line in lines {
        if let Err(err) = writeln!(out, "{}", crate::output::escape_line(line)) {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                return Cycle::OutputClosed;
            }
            tracing::error!("cannot write to stdout: {err}");
        }
    }
    let _ = out.flush();
    Cycle::Continue
}

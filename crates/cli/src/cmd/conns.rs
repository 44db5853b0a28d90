//! `netvantage conns`: reports every new TCP connection on this host, detects port scans and,
//! with `--block`, keeps scanners out through nftables. The rules and the watcher loop live in
//! `netvantage-conns`; this module only parses the command line and wires the source, stdout,
//! the firewall, `/metrics` and the shutdown together.

use crate::args;
use anyhow::Context;
use ipnet::IpNet;
use netvantage_config::agent::{KafkaSettings, Keep, RetentionConfig, Sinks};
use netvantage_config::plan::defaults;
use netvantage_conns::NewConnection;
use netvantage_conns::conntrack::{self, ConntrackError, ConntrackSource};
use netvantage_conns::scan::ScanAlert;
use netvantage_conns::scan::ScanConfig;
use netvantage_conns::shared::SharedBan;
use netvantage_conns::watch::{
    BlockPlan, Blocker, ConntrackFeed, EventLog, LineSink, WatchError, WatchPlan,
};
use netvantage_conns::{
    Feed, Monitor, NetlinkSource, ProcSource, Source, SourceError, Watcher, hostaddrs,
    metrics::Metrics,
    nft::{self, Firewall},
    policy::{self, BanSchedule},
};
use netvantage_core::{ConnsEvent, ConnsRecord};
use netvantage_pipeline::shared_bans;
use netvantage_pipeline::sinks::open_sinks;
use netvantage_runtime::Shutdown;
use netvantage_sinks::kafka::client_config;
use netvantage_sinks::{Envelope, Fanout, RunnerOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

const AFTER_HELP: &str = "\
Output (stdout, one line per event; UTC unless --local-time):
  2021-04-28 15:28:05: New connection: 192.0.2.56:5973 -> 10.0.0.5:80
  2021-04-28 15:28:05: Port scan detected: 192.0.2.56 -> 10.0.0.5 on ports 80,81,82,83
  2021-04-28 15:28:05: Blocked 192.0.2.56 for 3600s

Examples:
  netvantage conns
  netvantage conns --source netlink --interval 1s --metrics-addr 127.0.0.1:9101
  netvantage conns --source conntrack --interval 1s --block --block-prefix6 64
  netvantage conns --block --block-ttl 10m --allow 10.0.0.0/8 --allow 2001:db8::/32
  netvantage conns --proc-root /host/proc --include-existing --count 1
  netvantage conns --source conntrack --block --sink sqlite:/var/lib/netvantage/conns.db
  netvantage conns --source conntrack --block --shared --sink kafka:kafka-1:9092 --allow 10.0.0.0/8

See docs/conns.md for when each source can miss a connection.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// Parse <proc-root>/net/tcp and tcp6.
    Proc,
    /// Dump the table through NETLINK_SOCK_DIAG (like `ss`); faster at scale.
    Netlink,
    /// Conntrack netlink events (needs CAP_NET_ADMIN): sees connections that live a
    /// millisecond and SYNs to closed ports. Switches conntrack on in this network namespace
    /// with a rule in the table `inet netvantage`.
    Conntrack,
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
    /// How long a scanner stays blocked the first time (whole seconds, rounded up).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = args::positive_duration)]
    block_ttl: Duration,
    /// Each repeat ban of the same target lasts this many times the previous one (1: no growth).
    #[arg(long, value_name = "FACTOR", default_value_t = 2.0, value_parser = ban_factor)]
    ban_factor: f64,
    /// The longest a repeat ban may last.
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = args::positive_duration)]
    ban_max: Duration,
    /// IPv6 scanners are banned by this prefix length (128: the address alone).
    #[arg(long, value_name = "LEN", default_value_t = 64, value_parser = clap::value_parser!(u8).range(1..=128))]
    block_prefix6: u8,
    /// Never block addresses in this network (CIDR or address; repeatable).
    #[arg(long = "allow", value_name = "CIDR", value_parser = policy::parse_allow)]
    allow: Vec<IpNet>,
    /// Leave the nftables table in place on exit.
    #[arg(long)]
    keep_rules: bool,
    /// Also apply the bans other hosts publish to the `--sink kafka:…` topic (each host reads
    /// in a consumer group of its own), through this host's own rules: its --allow list,
    /// loopback and its own addresses always win, and a ban ends when it ends on the host that
    /// decided it.
    #[arg(long, requires = "block")]
    shared: bool,
    /// Log what --block would do without touching nftables.
    #[arg(long, requires = "block")]
    dry_run: bool,
    /// Serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9101).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// The conntrack event socket's kernel receive buffer in bytes: a burst larger than this
    /// between two reads is an overrun (counted, logged, re-synced from a dump).
    #[arg(long, value_name = "BYTES", default_value_t = conntrack::DEFAULT_BUFFER, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1 << 30))]
    conntrack_buffer: usize,
    /// Also write each new connection, scan and block as a record (docs/pipeline.md) to a
    /// sink: `stdout` (JSON lines instead of the text lines), `sqlite:PATH` (tables
    /// connections, scans, blocks) or `kafka:BROKERS` (behind a disk spool; `ingest` stores
    /// them in PostgreSQL). Repeatable.
    #[arg(long = "sink", value_name = "SINK", value_parser = parse_sink)]
    sinks: Vec<SinkSpec>,
    /// The Kafka topic of `--sink kafka:…` (created when missing).
    #[arg(long, value_name = "TOPIC", default_value = "netvantage.conns")]
    kafka_topic: String,
    /// Where `--sink kafka:…` spools records while the broker is away.
    #[arg(long, value_name = "DIR", default_value = "netvantage-conns-spool")]
    spool_dir: PathBuf,
    /// How long `--sink sqlite:…` keeps the records (`30d`, or `forever`); their hourly
    /// roll-ups are kept 400 days, daily ones forever. Pruned hourly, in batches.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = keep)]
    retention: Keep,
    /// The host name in the records (default: this host's name).
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    /// Stop after this many polls (default: run until SIGINT/SIGTERM).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkSpec {
    Stdout,
    Sqlite(PathBuf),
    /// Brokers, `host:port[,host:port]`.
    Kafka(String),
}

fn parse_sink(text: &str) -> Result<SinkSpec, String> {
    match text.split_once(':') {
        None if text == "stdout" => Ok(SinkSpec::Stdout),
        Some(("sqlite", path)) if !path.is_empty() => Ok(SinkSpec::Sqlite(PathBuf::from(path))),
        Some(("kafka", brokers)) if !brokers.is_empty() => Ok(SinkSpec::Kafka(brokers.into())),
        _ => Err(format!(
            "{text:?} is not a sink: use stdout, sqlite:PATH or kafka:HOST:PORT[,HOST:PORT] (e.g. sqlite:conns.db)"
        )),
    }
}

fn ban_factor(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(factor) if factor.is_finite() && factor >= 1.0 => Ok(factor),
        _ => Err(format!("{text:?} is not a factor of at least 1 (e.g. 2)")),
    }
}

pub async fn run(args: ConnsArgs) -> anyhow::Result<i32> {
    if args.proc_root.is_some() && args.source != SourceKind::Proc {
        return Err(crate::exit::usage(
            "--proc-root only applies to --source proc (netlink and conntrack read this process's network namespace)",
        ));
    }
    if args.scan_ports == 0 || args.scan_max_sources == 0 {
        return Err(crate::exit::usage(
            "--scan-ports and --scan-max-sources must be at least 1",
        ));
    }
    let shared_brokers = args.sinks.iter().find_map(|s| match s {
        SinkSpec::Kafka(brokers) => Some(brokers.clone()),
        _ => None,
    });
    if args.shared && shared_brokers.is_none() {
        return Err(crate::exit::usage(
            "--shared reads the bans other hosts publish: it needs --sink kafka:BROKERS",
        ));
    }
    let shutdown = Shutdown::new();
    shutdown.stop_on_signals()?;
    // Sinks first: a path that cannot be written is said before any table is touched.
    let records = open_records(&args)?;

    // The table holds our drop chain (--block) and the rule that switches conntrack on
    // (--source conntrack); it exists while either needs it.
    let firewall = Firewall::default();
    let owns_table = (args.block && !args.dry_run) || args.source == SourceKind::Conntrack;
    if args.block && !args.dry_run {
        let setup = firewall.clone();
        tokio::task::spawn_blocking(move || setup.setup())
            .await?
            .context("cannot create the nftables table inet netvantage")?;
        tracing::info!("nftables table inet {} ready", nft::TABLE);
    }
    let feed = match open_feed(&args, &firewall).await {
        Ok(feed) => feed,
        Err(err) => {
            if owns_table {
                remove_table(&firewall, false).await;
            }
            return Err(err);
        }
    };

    let metrics = Metrics::new();
    if let Some(addr) = args.metrics_addr {
        let bound = crate::serve::metrics(addr, metrics.registry(), &shutdown)
            .await
            .map_err(|err| crate::exit::usage(format!("--metrics-addr {addr}: {err}")))?;
        tracing::info!("metrics on http://{bound}/metrics");
    }

    let plan = WatchPlan {
        interval: args.interval,
        count: args.count,
        include_existing: args.include_existing,
        local_time: args.local_time,
        scan: ScanConfig {
            max_ports: args.scan_ports,
            window: args.scan_window,
            max_sources: args.scan_max_sources,
            ..ScanConfig::default()
        },
        block: args.block.then(|| BlockPlan {
            allow: args.allow.clone(),
            schedule: BanSchedule {
                base: args.block_ttl,
                factor: args.ban_factor,
                max: args.ban_max,
            },
            prefix6: args.block_prefix6,
            dry_run: args.dry_run,
        }),
    };
    let blocker: Option<Box<dyn Blocker>> =
        (args.block && !args.dry_run).then(|| Box::new(firewall.clone()) as Box<dyn Blocker>);
    // With the stdout sink the records are the output: the text lines would garble them.
    let lines: Box<dyn LineSink> = if args.sinks.contains(&SinkSpec::Stdout) {
        Box::new(Discard)
    } else {
        Box::new(Stdout)
    };
    let mut watcher = Watcher::new(
        plan,
        feed,
        metrics,
        lines,
        blocker,
        Box::new(hostaddrs::own_addresses),
    );
    if args.shared
        && let Some(brokers) = &shared_brokers
    {
        let host = host_name(&args);
        let bans = read_shared_bans(&args, brokers, &host, &shutdown)?;
        watcher = watcher.with_shared_bans(bans, host);
    }
    let fanout = records.as_ref().map(|r| r.fanout.clone());
    if let Some(records) = records {
        watcher = watcher.with_event_log(Box::new(records));
    }
    let outcome = watcher.run(&shutdown).await;
    // The conntrack reader thread stops before the table that feeds it goes away.
    drop(watcher);
    if let Some(fanout) = fanout {
        close_sinks(fanout).await;
    }
    if owns_table {
        remove_table(&firewall, args.keep_rules).await;
    }
    match outcome {
        Ok(()) => Ok(0),
        Err(WatchError::Source(err @ SourceError::Read { .. })) => {
            Err(crate::exit::usage(err.to_string()))
        }
        Err(err) => Err(err.into()),
    }
}

async fn open_feed(args: &ConnsArgs, firewall: &Firewall) -> anyhow::Result<Feed> {
    let source: Box<dyn Source> = match args.source {
        SourceKind::Proc => Box::new(ProcSource::new(
            args.proc_root
                .clone()
                .unwrap_or_else(|| PathBuf::from("/proc")),
        )),
        SourceKind::Netlink => {
            Box::new(NetlinkSource::open().context("cannot open a NETLINK_SOCK_DIAG socket")?)
        }
        SourceKind::Conntrack => {
            let buffer = args.conntrack_buffer;
            // Subscribe first: a missing privilege or kernel feature is then said before any
            // table is touched.
            let source = ConntrackSource::open(buffer).map_err(conntrack_error)?;
            let track = firewall.clone();
            tokio::task::spawn_blocking(move || track.track_connections())
                .await?
                .map_err(|err| {
                    crate::exit::usage(format!(
                        "--source conntrack switches conntrack on with a rule in the nftables table inet {}, which failed: {err}",
                        nft::TABLE
                    ))
                })?;
            tracing::info!(
                buffer,
                "conntrack events subscribed; conntrack switched on by table inet {}",
                nft::TABLE
            );
            return Ok(Feed::Conntrack(ConntrackFeed::new(source, buffer)));
        }
    };
    Ok(Feed::Table(Monitor::new(source)))
}

/// A missing privilege or kernel feature is the user's to fix (exit 3), with the way out.
fn conntrack_error(err: ConntrackError) -> anyhow::Error {
    match err {
        ConntrackError::Permission(_) | ConntrackError::Unsupported(_) => {
            crate::exit::usage(format!("--source conntrack: {err}"))
        }
        other => anyhow::Error::new(other).context("--source conntrack"),
    }
}

async fn remove_table(firewall: &Firewall, keep: bool) {
    if keep {
        tracing::info!(
            "leaving nftables table inet {} in place (--keep-rules)",
            nft::TABLE
        );
        return;
    }
    let teardown = firewall.clone();
    match tokio::task::spawn_blocking(move || teardown.teardown()).await {
        Ok(Ok(())) => tracing::info!("nftables table inet {} removed", nft::TABLE),
        Ok(Err(err)) => tracing::error!("cannot remove the nftables table inet netvantage: {err}"),
        Err(err) => tracing::error!("cannot remove the nftables table inet netvantage: {err}"),
    }
}

fn keep(text: &str) -> Result<Keep, String> {
    text.parse()
}

/// The connection log's records, batched per poll, to the sinks.
struct Records {
    host: String,
    fanout: Arc<Mutex<Option<Fanout>>>,
    batch: Vec<Envelope>,
}

fn open_records(args: &ConnsArgs) -> anyhow::Result<Option<Records>> {
    if args.sinks.is_empty() {
        return Ok(None);
    }
    let config = Sinks {
        sqlite: args.sinks.iter().find_map(|s| match s {
            SinkSpec::Sqlite(path) => Some(path.clone()),
            _ => None,
        }),
        stdout: args.sinks.contains(&SinkSpec::Stdout),
        kafka: args.sinks.iter().find_map(|s| match s {
            SinkSpec::Kafka(brokers) => Some(kafka_settings(args, brokers)),
            _ => None,
        }),
        // The check results' tiers keep their defaults: this store's writer holds none.
        sqlite_retention: RetentionConfig {
            conns: Some(args.retention),
            ..RetentionConfig::default()
        },
    };
    if let Some(kafka) = &config.kafka
        && let Err(err) = std::fs::create_dir_all(&kafka.spool_dir)
    {
        return Err(crate::exit::usage(format!(
            "--spool-dir {}: {err}",
            kafka.spool_dir.display()
        )));
    }
    let opened = open_sinks(&config).map_err(|err| crate::exit::usage(format!("--sink: {err}")))?;
    let fanout = Fanout::start(opened.sinks, RunnerOptions::default())?;
    Ok(Some(Records {
        host: host_name(args),
        fanout: Arc::new(Mutex::new(Some(fanout))),
        batch: Vec::new(),
    }))
}

/// The host name in the records: `--host`, else this host's name.
fn host_name(args: &ConnsArgs) -> String {
    args.host
        .clone()
        .or_else(crate::cmd::agent::hostname)
        .unwrap_or_else(|| "localhost".into())
}

/// Starts the reader of other hosts' bans (`--shared`); the watcher takes them at each poll.
fn read_shared_bans(
    args: &ConnsArgs,
    brokers: &str,
    host: &str,
    shutdown: &Shutdown,
) -> anyhow::Result<Receiver<SharedBan>> {
    let config = client_config(&kafka_settings(args, brokers), &[]).map_err(crate::exit::usage)?;
    let consumer = shared_bans::subscribe(config, host, &args.kafka_topic)
        .map_err(|err| crate::exit::usage(format!("--shared: {err}")))?;
    tracing::info!(
        group = shared_bans::group(host),
        topic = args.kafka_topic,
        "reading the bans other hosts publish"
    );
    let (send, receive) = std::sync::mpsc::channel();
    let stop = shutdown.token();
    tokio::spawn(async move {
        let read = shared_bans::read_blocks(&consumer, |record| {
            if let ConnsEvent::Block {
                target,
                until_unix_ms,
                ..
            } = record.event
            {
                let _ = send.send(SharedBan {
                    host: record.host,
                    target,
                    until_unix_ms,
                });
            }
        });
        tokio::select! {
            _ = read => {}
            _ = stop.cancelled() => {}
        }
    });
    Ok(receive)
}

/// The agent's Kafka defaults, with this command's brokers, topic and spool.
fn kafka_settings(args: &ConnsArgs, brokers: &str) -> KafkaSettings {
    KafkaSettings {
        brokers: brokers.to_string(),
        topic: args.kafka_topic.clone(),
        partitions: defaults::KAFKA_PARTITIONS,
        replication: defaults::KAFKA_REPLICATION,
        tls: None,
        sasl: None,
        memory_records: defaults::KAFKA_MEMORY_RECORDS,
        spool_dir: args.spool_dir.clone(),
        spool_max_bytes: defaults::SPOOL_MAX_BYTES,
        properties: Vec::new(),
    }
}

impl Records {
    fn push(&mut self, unix: i64, event: ConnsEvent) {
        let ts = unix.saturating_mul(1000);
        let record = ConnsRecord::new(uuid::Uuid::now_v7(), &self.host, ts, event);
        self.batch.push(Envelope::conns(record));
    }
}

impl EventLog for Records {
    fn connection(&mut self, unix: i64, connection: &NewConnection) {
        self.push(
            unix,
            ConnsEvent::Connection {
                source: connection.source,
                destination: connection.destination,
                direction: connection.direction.as_str().into(),
            },
        );
    }

    fn scan(&mut self, unix: i64, alert: &ScanAlert) {
        self.push(
            unix,
            ConnsEvent::Scan {
                source: alert.source,
                destinations: alert.destinations.clone(),
                ports: alert.ports.clone(),
                closed: alert.closed.and_then(|n| u32::try_from(n).ok()),
            },
        );
    }

    fn block(&mut self, unix: i64, target: IpNet, until_unix: i64, offenses: u32) {
        self.push(
            unix,
            ConnsEvent::Block {
                target: target.to_string(),
                until_unix_ms: until_unix.saturating_mul(1000),
                offenses,
            },
        );
    }

    fn end_of_poll(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        if let Some(fanout) = &*self.fanout.lock().unwrap_or_else(PoisonError::into_inner) {
            fanout.send(batch);
        }
    }
}

/// Waits for the sinks to take what is queued, then logs what each did.
async fn close_sinks(fanout: Arc<Mutex<Option<Fanout>>>) {
    let taken = fanout.lock().unwrap_or_else(PoisonError::into_inner).take();
    let Some(fanout) = taken else { return };
    let reports = tokio::task::spawn_blocking(move || fanout.close(SINK_GRACE)).await;
    for report in reports.into_iter().flatten() {
        let failure = report.failure.as_deref().unwrap_or("none");
        tracing::info!(
            sink = report.name,
            delivered = report.delivered,
            new = report.new,
            spooled = report.spooled,
            dropped = report.dropped,
            failure,
            "sink closed"
        );
        if report.dropped > 0 {
            tracing::error!(
                sink = report.name,
                dropped = report.dropped,
                "records were lost"
            );
        }
    }
}

/// How long the sinks get at exit to take what is queued.
const SINK_GRACE: Duration = Duration::from_secs(10);

/// Text lines nobody reads (the stdout sink writes records instead).
struct Discard;

impl LineSink for Discard {
    fn write_lines(&mut self, _: &[String]) -> std::io::Result<()> {
        Ok(())
    }
}

/// The watcher's lines go to stdout, flushed per poll.
struct Stdout;

impl LineSink for Stdout {
    fn write_lines(&mut self, lines: &[String]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        for line in lines {
            writeln!(out, "{}", crate::output::escape_line(line))?;
        }
        out.flush()
    }
}

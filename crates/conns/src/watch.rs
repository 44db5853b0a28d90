//! The `conns` watcher: at every tick it takes what the feed saw since the last one (a diff of
//! two socket-table polls, or the conntrack events), prints new connections, runs the scan
//! rule and, with blocking on, bans scanners. It stops on the one [`Shutdown`] every engine
//! gets (signals, `--count`, a closed stdout).
//!
//! The parts that touch the world are handed in, so the rules here are tested without a
//! kernel or a firewall: the feed, where lines go ([`LineSink`]), what bans ([`Blocker`]) and
//! how this host's addresses are listed ([`AddressLister`]).

use crate::conntrack::{ConntrackSource, Item};
use crate::flows::{Batch, FlowTracker};
use crate::metrics::Metrics;
use crate::nft::{self, Firewall, NftError};
use crate::policy::{BanSchedule, BlockPolicy};
use crate::scan::{ScanAlert, ScanConfig, ScanDetector};
use crate::shared::{self, SharedBan, SharedDecision};
use crate::source::{ReadStats, Source, SourceError};
use crate::table::{Direction, NewConnection};
use crate::{Monitor, clock, format};
use ipnet::IpNet;
use netvantage_runtime::{Shutdown, StopReason};
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// Where the watcher's connections come from.
pub enum Feed {
    /// Polls of the socket table (`proc` or `netlink`), diffed.
    Table(Monitor<Box<dyn Source>>),
    /// Conntrack events, read as they happen.
    Conntrack(ConntrackFeed),
}

/// The conntrack source with the flow tracker that turns its events into connections.
pub struct ConntrackFeed {
    source: ConntrackSource,
    tracker: FlowTracker,
    items: Vec<Item>,
    /// The connections that existed when the source started (its first dump).
    existing: Batch,
    batch: Batch,
    baseline_pending: bool,
    buffer: usize,
}

impl ConntrackFeed {
    /// `buffer` is the event socket's receive buffer, named in the overrun log.
    pub fn new(source: ConntrackSource, buffer: usize) -> ConntrackFeed {
        ConntrackFeed {
            source,
            tracker: FlowTracker::default(),
            items: Vec::new(),
            existing: Batch::default(),
            batch: Batch::default(),
            baseline_pending: true,
            buffer,
        }
    }

    fn poll(&mut self, metrics: &Metrics) -> Result<(), WatchError> {
        self.source.drain(&mut self.items);
        self.existing.clear();
        self.batch.clear();
        for item in self.items.drain(..) {
            match item {
                Item::Message(message) => self.tracker.apply(message, &mut self.batch),
                Item::Resync(flows) if self.baseline_pending => {
                    self.baseline_pending = false;
                    self.tracker.resync(&flows, &mut self.existing);
                }
                Item::Resync(flows) => {
                    let before = self.batch.new.len();
                    self.tracker.resync(&flows, &mut self.batch);
                    tracing::warn!(
                        dumped = flows.len(),
                        recovered = self.batch.new.len() - before,
                        "conntrack re-sync done: connections that started while events were lost are reported now; those that also ended then are lost"
                    );
                }
                Item::Overrun => {
                    metrics.conntrack_overruns.inc();
                    tracing::warn!(
                        "conntrack events were lost (ENOBUFS: the event socket's {} byte receive buffer was full); re-reading the table",
                        self.buffer
                    );
                }
                Item::Failed(reason) => return Err(WatchError::Conntrack(reason)),
            }
        }
        if self.batch.duplicates > 0 {
            tracing::debug!(
                duplicates = self.batch.duplicates,
                "ignored NEW events of flows already reported"
            );
        }
        Ok(())
    }
}

/// Where output lines go (the CLI's stdout). A `BrokenPipe` ends the run quietly.
pub trait LineSink: Send {
    fn write_lines(&mut self, lines: &[String]) -> io::Result<()>;
}

/// Where each event goes as a record (`--sink`: the CLI turns them into the connection log's
/// records for the agent's sinks). Called in the poll that saw the event; `unix` is that
/// poll's wall clock in seconds.
pub trait EventLog: Send {
    fn connection(&mut self, unix: i64, connection: &NewConnection);
    fn scan(&mut self, unix: i64, alert: &ScanAlert);
    /// A ban put in place until `until_unix` (absolute, seconds); `offenses` counts from 1.
    fn block(&mut self, unix: i64, target: IpNet, until_unix: i64, offenses: u32);
    /// The poll is done: hand over what it logged (one batch per poll).
    fn end_of_poll(&mut self) {}
}

/// What bans a target (nftables in production).
pub trait Blocker: Send {
    fn block(&mut self, target: IpNet, ttl: Duration) -> Result<(), NftError>;
}

impl Blocker for Firewall {
    fn block(&mut self, target: IpNet, ttl: Duration) -> Result<(), NftError> {
        Firewall::block(self, target, ttl)
    }
}

/// Lists this host's addresses (`hostaddrs::own_addresses` in production).
pub type AddressLister = Box<dyn FnMut() -> io::Result<Vec<IpAddr>> + Send>;

/// How scanners are banned.
#[derive(Clone, Debug)]
pub struct BlockPlan {
    pub allow: Vec<IpNet>,
    pub schedule: BanSchedule,
    /// IPv6 scanners are banned by this prefix length.
    pub prefix6: u8,
    /// Log what would be banned, ban nothing.
    pub dry_run: bool,
}

#[derive(Clone, Debug)]
pub struct WatchPlan {
    pub interval: Duration,
    /// Stop after this many polls.
    pub count: Option<u64>,
    pub include_existing: bool,
    pub local_time: bool,
    pub scan: ScanConfig,
    pub block: Option<BlockPlan>,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The conntrack reader stopped: nothing more would be seen.
    #[error("conntrack source stopped: {0}")]
    Conntrack(String),
}

impl WatchError {
    /// A transient read error costs one poll; these end the run.
    fn is_fatal(&self) -> bool {
        matches!(self, WatchError::Conntrack(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cycle {
    Continue,
    /// The reader of the output went away: nothing left to report to.
    OutputClosed,
}

/// One banned target: until when, and how often it was banned (for escalation).
#[derive(Debug, Clone, Copy)]
struct Ban {
    until: Instant,
    offenses: u32,
}

pub struct Watcher {
    plan: WatchPlan,
    feed: Feed,
    detector: ScanDetector,
    policy: BlockPolicy,
    /// None without --block and with --dry-run.
    blocker: Option<Box<dyn Blocker>>,
    own_addresses: AddressLister,
    /// Every target banned (also expired ones, to escalate repeat offenders), bounded by
    /// `scan.max_sources`.
    bans: HashMap<IpNet, Ban>,
    metrics: Metrics,
    out: Box<dyn LineSink>,
    events: Option<Box<dyn EventLog>>,
    /// Bans decided by other hosts (`--shared`), and this host's name in their records.
    shared: Option<(Receiver<SharedBan>, String)>,
}

impl Watcher {
    pub fn new(
        plan: WatchPlan,
        feed: Feed,
        metrics: Metrics,
        out: Box<dyn LineSink>,
        blocker: Option<Box<dyn Blocker>>,
        own_addresses: AddressLister,
    ) -> Watcher {
        let allow = plan
            .block
            .as_ref()
            .map(|b| b.allow.clone())
            .unwrap_or_default();
        Watcher {
            detector: ScanDetector::new(plan.scan),
            policy: BlockPolicy::new(allow),
            plan,
            feed,
            blocker,
            own_addresses,
            bans: HashMap::new(),
            metrics,
            out,
            events: None,
            shared: None,
        }
    }

    /// Also applies the bans other hosts decided (`--shared`), read from `bans` at every poll;
    /// records of `this_host` are its own and skipped.
    pub fn with_shared_bans(mut self, bans: Receiver<SharedBan>, this_host: String) -> Watcher {
        self.shared = Some((bans, this_host));
        self
    }

    /// Also hands every new connection, scan and block to `events`.
    pub fn with_event_log(mut self, events: Box<dyn EventLog>) -> Watcher {
        self.events = Some(events);
        self
    }

    /// Polls at every interval until `shutdown` (or `--count` polls, or a closed output). The
    /// first poll's failure is returned (a wrong path or a missing privilege); a later one
    /// costs that poll only, unless the source cannot go on.
    pub async fn run(&mut self, shutdown: &Shutdown) -> Result<(), WatchError> {
        if self.plan.block.is_some()
            && let Err(err) = (self.own_addresses)()
        {
            tracing::error!(
                "cannot list this host's addresses ({err}): blocking stays off until they can be listed"
            );
        }
        let mut ticker = tokio::time::interval(self.plan.interval);
        // A slow poll delays the next one instead of bunching them up.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut polls = 0u64;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.stopped() => {
                    // Events that arrived since the last tick are already the kernel's word:
                    // report them before exiting. A table poll has nothing pending.
                    if matches!(self.feed, Feed::Conntrack(_))
                        && let Err(err) = run_blocking(|| self.cycle(Instant::now(), clock::unix_now()))
                    {
                        tracing::error!("last poll failed: {err}");
                    }
                    break;
                }
            }
            match run_blocking(|| self.cycle(Instant::now(), clock::unix_now())) {
                Ok(Cycle::Continue) => {}
                Ok(Cycle::OutputClosed) => {
                    shutdown.stop(StopReason::OutputClosed);
                    break;
                }
                Err(err) if polls == 0 || err.is_fatal() => return Err(err),
                Err(err) => tracing::error!("poll failed: {err}"),
            }
            polls += 1;
            if self.plan.count.is_some_and(|count| polls >= count) {
                shutdown.stop(StopReason::Finished);
                break;
            }
        }
        Ok(())
    }

    /// One poll at `now` (`unix`: the wall clock for the timestamps).
    pub fn cycle(&mut self, now: Instant, unix: i64) -> Result<Cycle, WatchError> {
        let started = Instant::now();
        // Conntrack needs this host's addresses at every poll to orient flows; the table
        // feeds only when there is someone to block.
        let mut own: Option<io::Result<Vec<IpAddr>>> = None;
        let knows_refusals = matches!(self.feed, Feed::Conntrack(_));
        if let Feed::Conntrack(feed) = &mut self.feed {
            let listed = (self.own_addresses)();
            match &listed {
                Ok(addrs) => feed.tracker.set_own_addresses(addrs.iter().copied()),
                Err(err) => tracing::warn!(
                    "cannot list this host's addresses ({err}): flows are oriented by the previous list"
                ),
            }
            own = Some(listed);
        }
        let (existing, new, refused, connections, stats, baseline) = match &mut self.feed {
            Feed::Table(monitor) => {
                let report = monitor.poll()?;
                let (existing, new) = if report.baseline {
                    (report.new, &[][..])
                } else {
                    (&[][..], report.new)
                };
                let (connections, stats, baseline) =
                    (report.connections, report.stats, report.baseline);
                (existing, new, &[][..], connections, stats, baseline)
            }
            Feed::Conntrack(feed) => {
                let baseline = feed.baseline_pending;
                feed.poll(&self.metrics)?;
                let connections = feed.tracker.alive();
                (
                    &feed.existing.new[..],
                    &feed.batch.new[..],
                    &feed.batch.refused[..],
                    connections,
                    ReadStats::default(),
                    baseline,
                )
            }
        };
        self.metrics
            .poll_duration
            .observe(started.elapsed().as_secs_f64());
        self.metrics.malformed_lines.inc_by(stats.malformed);
        self.metrics
            .refused_connections
            .inc_by(refused.len() as u64);
        if let Some((path, line, err)) = &stats.first_malformed {
            tracing::warn!(
                "skipped {} malformed line(s); first: {}:{line}: {err}",
                stats.malformed,
                path.display()
            );
        }
        let offset = if self.plan.local_time {
            clock::local_offset(unix)
        } else {
            0
        };
        let ts = format::timestamp(unix, offset);
        let mut lines = Vec::new();
        if baseline {
            tracing::info!(connections, "baseline taken");
        }
        let shown_existing = if self.plan.include_existing {
            existing
        } else {
            &[]
        };
        for conn in shown_existing.iter().chain(new) {
            lines.push(format::new_connection(&ts, conn));
            self.metrics.new_connection(conn.direction);
            if let Some(events) = &mut self.events {
                events.connection(unix, conn);
            }
        }
        // Connections of the baseline are of unknown age: they never count towards a scan.
        let inbound = new
            .iter()
            .filter(|c| c.direction == Direction::Inbound)
            .map(|c: &NewConnection| (c.source.ip(), c.destination.ip(), c.destination.port()));
        tracing::debug!(connections, new = new.len(), "poll done");
        let alerts =
            self.detector
                .observe_attempts(now, inbound, refused.iter().copied(), knows_refusals);
        let blocking = self.plan.block.is_some() && !alerts.is_empty();
        let own_listed = if blocking {
            match own.unwrap_or_else(|| (self.own_addresses)()) {
                Ok(addrs) => {
                    self.policy.set_own_addresses(addrs);
                    true
                }
                Err(err) => {
                    // Fail closed: without this host's own addresses a ban could lock it out
                    // of itself.
                    tracing::error!(
                        "cannot list this host's addresses ({err}), so nothing is blocked: blocking stays off until they can be listed"
                    );
                    false
                }
            }
        } else {
            false
        };
        for alert in &alerts {
            lines.push(format::port_scan(&ts, alert));
            self.metrics.port_scans.inc();
            if let Some(events) = &mut self.events {
                events.scan(unix, alert);
            }
            if own_listed && let Some(line) = self.block_source(alert.source, now, unix, &ts) {
                lines.push(line);
            }
        }
        self.apply_shared_bans(now, unix, &ts, &mut lines);
        if let Some(events) = &mut self.events {
            events.end_of_poll();
        }
        let active = self.bans.values().filter(|ban| ban.until > now).count();
        self.metrics
            .blocked_sources
            .set(i64::try_from(active).unwrap_or(i64::MAX));
        if lines.is_empty() {
            return Ok(Cycle::Continue);
        }
        match self.out.write_lines(&lines) {
            Ok(()) => Ok(Cycle::Continue),
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(Cycle::OutputClosed),
            Err(err) => {
                tracing::error!("cannot write the output: {err}");
                Ok(Cycle::Continue)
            }
        }
    }

    /// Bans `source` (its prefix, for IPv6) if policy allows; returns the line to print.
    fn block_source(
        &mut self,
        source: IpAddr,
        now: Instant,
        unix: i64,
        ts: &str,
    ) -> Option<String> {
        let plan = self.plan.block.as_ref()?;
        let address = match self.policy.check(source) {
            Ok(address) => address,
            Err(refusal) => {
                tracing::warn!("not blocking {source}: {refusal}");
                return None;
            }
        };
        let target = self.policy.ban_target(address, plan.prefix6);
        let previous = self.bans.get(&target).copied();
        if previous.is_some_and(|ban| ban.until > now) {
            return None;
        }
        let offenses = previous.map_or(1, |ban| ban.offenses.saturating_add(1));
        let seconds = nft::ttl_seconds(plan.schedule.ttl(offenses));
        let ttl = Duration::from_secs(seconds);
        let shown = format::ban_target(target);
        let line = match &mut self.blocker {
            None => {
                tracing::warn!("dry run: would block {shown} for {seconds}s (ban {offenses})");
                None
            }
            Some(blocker) => match blocker.block(target, ttl) {
                Ok(()) => {
                    if offenses > 1 {
                        tracing::info!("{shown} banned again (ban {offenses}): {seconds}s");
                    }
                    if let Some(events) = &mut self.events {
                        let until = unix.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX));
                        events.block(unix, target, until, offenses);
                    }
                    Some(format::blocked(ts, target, seconds))
                }
                Err(err) => {
                    tracing::error!("cannot block {shown}: {err}");
                    return None;
                }
            },
        };
        self.remember_ban(target, now + ttl, offenses);
        line
    }

    /// Applies what other hosts banned since the last poll, through this host's own rules.
    /// They are not logged as events again: the deciding host published them already.
    fn apply_shared_bans(&mut self, now: Instant, unix: i64, ts: &str, lines: &mut Vec<String>) {
        let Some((bans, this_host)) = &self.shared else {
            return;
        };
        let pending: Vec<SharedBan> = bans.try_iter().collect();
        if pending.is_empty() || self.plan.block.is_none() {
            return;
        }
        let this_host = this_host.clone();
        match (self.own_addresses)() {
            Ok(addrs) => self.policy.set_own_addresses(addrs),
            Err(err) => {
                // Fail closed, as for local bans.
                tracing::error!(
                    "cannot list this host's addresses ({err}), so {} shared ban(s) are not applied",
                    pending.len()
                );
                return;
            }
        }
        let now_ms = unix.saturating_mul(1000);
        for ban in pending {
            let from = &ban.host;
            let (target, seconds) = match shared::decide(&ban, &this_host, &self.policy, now_ms) {
                SharedDecision::Apply {
                    target,
                    ttl_seconds,
                } => (target, ttl_seconds),
                SharedDecision::OwnDecision => continue,
                SharedDecision::Expired => {
                    tracing::info!(
                        "shared ban of {} from {from} has expired: skipped",
                        ban.target
                    );
                    self.metrics.shared_ban("expired");
                    continue;
                }
                SharedDecision::Invalid => {
                    tracing::warn!(
                        "shared ban from {from}: {:?} is not a network: skipped",
                        ban.target
                    );
                    self.metrics.shared_ban("invalid");
                    continue;
                }
                SharedDecision::Refused(refusal) => {
                    tracing::warn!(
                        "not applying the shared ban of {} from {from}: {refusal}",
                        ban.target
                    );
                    let outcome = match refusal {
                        crate::policy::Refusal::Allowed(_) => "allow_list",
                        _ => "refused",
                    };
                    self.metrics.shared_ban(outcome);
                    continue;
                }
            };
            let ttl = Duration::from_secs(seconds);
            let previous = self.bans.get(&target).copied();
            if previous.is_some_and(|ban| ban.until >= now + ttl) {
                continue;
            }
            let shown = format::ban_target(target);
            match &mut self.blocker {
                None => {
                    tracing::warn!(
                        "dry run: would apply the shared ban of {shown} from {from} for {seconds}s"
                    );
                    continue;
                }
                Some(blocker) => match blocker.block(target, ttl) {
                    Ok(()) => {
                        tracing::info!(
                            "applied the shared ban of {shown} from {from}: {seconds}s left"
                        );
                        lines.push(format!(
                            "{} (shared by {from})",
                            format::blocked(ts, target, seconds)
                        ));
                    }
                    Err(err) => {
                        tracing::error!(
                            "cannot apply the shared ban of {shown} from {from}: {err}"
                        );
                        continue;
                    }
                },
            }
            self.metrics.shared_ban("applied");
            self.remember_ban(target, now + ttl, previous.map_or(1, |ban| ban.offenses));
        }
    }

    fn remember_ban(&mut self, target: IpNet, until: Instant, offenses: u32) {
        if !self.bans.contains_key(&target)
            && self.bans.len() >= self.plan.scan.max_sources
            && let Some(oldest) = self
                .bans
                .iter()
                .min_by_key(|(_, ban)| ban.until)
                .map(|(target, _)| *target)
        {
            self.bans.remove(&oldest);
        }
        self.bans.insert(target, Ban { until, offenses });
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{SocketEntry, TcpState};
    use std::sync::{Arc, Mutex};

    /// A socket table that changes by script: each poll returns the next table.
    struct Script(Vec<Vec<SocketEntry>>);

    impl Source for Script {
        fn read(&mut self, sink: &mut dyn FnMut(SocketEntry)) -> Result<ReadStats, SourceError> {
            let entries = if self.0.len() > 1 {
                self.0.remove(0)
            } else {
                self.0[0].clone()
            };
            entries.iter().for_each(|e| sink(*e));
            Ok(ReadStats::default())
        }
    }

    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<String>>>);

    impl LineSink for Recorded {
        fn write_lines(&mut self, lines: &[String]) -> io::Result<()> {
            self.0.lock().unwrap().extend(lines.iter().cloned());
            Ok(())
        }
    }

    impl Blocker for Recorded {
        fn block(&mut self, target: IpNet, ttl: Duration) -> Result<(), NftError> {
            self.0
                .lock()
                .unwrap()
                .push(format!("{target} {}", ttl.as_secs()));
            Ok(())
        }
    }

    fn entry(local: &str, remote: &str, state: TcpState) -> SocketEntry {
        SocketEntry {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            state,
        }
    }

    /// A listener on 10.0.0.5 ports 1-5 and, after the baseline, `scanners` each connecting
    /// to all five (a new source port per round).
    fn scans(scanners: &[&str], rounds: u16) -> Script {
        let listeners: Vec<SocketEntry> = (1..=5)
            .map(|p| entry(&format!("10.0.0.5:{p}"), "0.0.0.0:0", TcpState::Listen))
            .collect();
        let mut tables = vec![listeners.clone()];
        for round in 0..rounds {
            let mut table = listeners.clone();
            for scanner in scanners {
                for p in 1..=5u16 {
                    let remote = std::net::SocketAddr::new(
                        scanner.parse().unwrap(),
                        40_000 + round * 10 + p,
                    );
                    table.push(entry(
                        &format!("10.0.0.5:{p}"),
                        &remote.to_string(),
                        TcpState::Established,
                    ));
                }
            }
            tables.push(table);
        }
        Script(tables)
    }

    fn watcher(
        script: Script,
        block: Option<BlockPlan>,
        lister: AddressLister,
    ) -> (Watcher, Recorded, Recorded) {
        let out = Recorded::default();
        let bans = Recorded::default();
        let dry_run = block.as_ref().is_some_and(|b| b.dry_run);
        let blocker: Option<Box<dyn Blocker>> = match &block {
            Some(_) if !dry_run => Some(Box::new(bans.clone())),
            _ => None,
        };
        let plan = WatchPlan {
            interval: Duration::from_secs(1),
            count: None,
            include_existing: false,
            local_time: false,
            scan: ScanConfig {
                window: Duration::from_secs(10),
                ..ScanConfig::default()
            },
            block,
        };
        let feed = Feed::Table(Monitor::new(Box::new(script) as Box<dyn Source>));
        let w = Watcher::new(
            plan,
            feed,
            Metrics::new(),
            Box::new(out.clone()),
            blocker,
            lister,
        );
        (w, out, bans)
    }

    fn plan(dry_run: bool) -> BlockPlan {
        BlockPlan {
            allow: Vec::new(),
            schedule: BanSchedule {
                base: Duration::from_secs(60),
                factor: 2.0,
                max: Duration::from_secs(200),
            },
            prefix6: 64,
            dry_run,
        }
    }

    fn own_ok() -> AddressLister {
        Box::new(|| Ok(vec!["10.0.0.5".parse().unwrap()]))
    }

    #[test]
    fn when_this_hosts_addresses_cannot_be_listed_nothing_is_blocked() {
        let failing: AddressLister = Box::new(|| Err(io::Error::other("getifaddrs failed")));
        let (mut w, out, bans) = watcher(scans(&["192.0.2.9"], 1), Some(plan(false)), failing);
        let t = Instant::now();
        w.cycle(t, 0).unwrap();
        w.cycle(t + Duration::from_secs(1), 1).unwrap();
        let lines = out.0.lock().unwrap().clone();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("Port scan detected: 192.0.2.9")),
            "{lines:#?}"
        );
        assert!(!lines.iter().any(|l| l.contains("Blocked")), "{lines:#?}");
        assert!(bans.0.lock().unwrap().is_empty(), "fail closed");
    }

    #[test]
    fn repeat_offenders_are_banned_longer_and_ipv6_by_prefix() {
        let (mut w, out, bans) = watcher(
            scans(&["192.0.2.9", "2001:db8:1::9"], 3),
            Some(plan(false)),
            own_ok(),
        );
        let t = Instant::now();
        w.cycle(t, 0).unwrap();
        w.cycle(t + Duration::from_secs(1), 1).unwrap();
        // Still banned: the same episode's ports add nothing.
        w.cycle(t + Duration::from_secs(2), 2).unwrap();
        assert_eq!(
            *bans.0.lock().unwrap(),
            vec!["192.0.2.9/32 60", "2001:db8:1::/64 60"]
        );
        // Quiet for longer than the window and the ban: a second episode, a second ban.
        let later = t + Duration::from_secs(100);
        w.cycle(later, 100).unwrap();
        assert_eq!(
            bans.0.lock().unwrap()[2..],
            ["192.0.2.9/32 120", "2001:db8:1::/64 120"]
        );
        let lines = out.0.lock().unwrap().clone();
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with("Blocked 2001:db8:1::/64 for 120s")),
            "{lines:#?}"
        );
    }

    #[test]
    fn shared_bans_are_applied_for_the_time_left_and_this_hosts_rules_win() {
        let mut block = plan(false);
        block.allow = vec!["198.18.6.0/24".parse().unwrap()];
        let (w, out, bans) = watcher(scans(&[], 1), Some(block), own_ok());
        let (send, receive) = std::sync::mpsc::channel();
        let mut w = w.with_shared_bans(receive, "web-2".into());
        let shared = |host: &str, target: &str, until_unix: i64| SharedBan {
            host: host.into(),
            target: target.into(),
            until_unix_ms: until_unix * 1000,
        };
        for ban in [
            shared("web-1", "198.18.5.9/32", 1600),
            shared("web-1", "198.18.6.9/32", 1600),
            shared("web-1", "10.0.0.5/32", 1600),
            shared("web-1", "2001:db8:1::/64", 999),
            shared("web-2", "198.18.7.9/32", 1600),
        ] {
            send.send(ban).unwrap();
        }
        let t = Instant::now();
        w.cycle(t, 1000).unwrap();
        // Read again in the next poll: already in place, not applied twice.
        send.send(shared("web-1", "198.18.5.9/32", 1600)).unwrap();
        w.cycle(t + Duration::from_secs(1), 1001).unwrap();
        assert_eq!(*bans.0.lock().unwrap(), vec!["198.18.5.9/32 600"]);
        let lines = out.0.lock().unwrap().clone();
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with("Blocked 198.18.5.9 for 600s (shared by web-1)")),
            "{lines:#?}"
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &w.metrics.registry()).unwrap();
        for line in [
            "netvantage_shared_bans_total{outcome=\"applied\"} 1",
            "netvantage_shared_bans_total{outcome=\"allow_list\"} 1",
            "netvantage_shared_bans_total{outcome=\"refused\"} 1",
            "netvantage_shared_bans_total{outcome=\"expired\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn dry_run_bans_nothing_but_remembers_the_offense() {
        let (mut w, out, bans) = watcher(scans(&["192.0.2.9"], 1), Some(plan(true)), own_ok());
        let t = Instant::now();
        w.cycle(t, 0).unwrap();
        w.cycle(t + Duration::from_secs(1), 1).unwrap();
        assert!(bans.0.lock().unwrap().is_empty());
        assert!(!out.0.lock().unwrap().iter().any(|l| l.contains("Blocked")));
        assert_eq!(w.bans.len(), 1);
    }

    impl EventLog for Recorded {
        fn connection(&mut self, unix: i64, c: &NewConnection) {
            let line = format!("{unix} connection {} {}", c.source, c.destination);
            self.0.lock().unwrap().push(line);
        }
        fn scan(&mut self, unix: i64, alert: &ScanAlert) {
            let line = format!("{unix} scan {} {:?}", alert.source, alert.ports);
            self.0.lock().unwrap().push(line);
        }
        fn block(&mut self, unix: i64, target: IpNet, until: i64, offenses: u32) {
            let line = format!("{unix} block {target} until {until} ban {offenses}");
            self.0.lock().unwrap().push(line);
        }
    }

    #[test]
    fn the_event_log_gets_each_connection_scan_and_block_once() {
        let (w, _out, _bans) = watcher(scans(&["192.0.2.9"], 2), Some(plan(false)), own_ok());
        let events = Recorded::default();
        let mut w = w.with_event_log(Box::new(events.clone()));
        let t = Instant::now();
        w.cycle(t, 1000).unwrap();
        w.cycle(t + Duration::from_secs(1), 1001).unwrap();
        w.cycle(t + Duration::from_secs(2), 1002).unwrap();
        let events = events.0.lock().unwrap().clone();
        let count = |kind: &str| events.iter().filter(|e| e.contains(kind)).count();
        assert_eq!(count(" connection "), 10, "{events:#?}");
        assert_eq!(count(" scan "), 1, "{events:#?}");
        assert!(
            events.contains(&"1001 block 192.0.2.9/32 until 1061 ban 1".to_string()),
            "{events:#?}"
        );
    }
}

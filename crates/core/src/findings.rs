//! Findings: the *cause* of a run's failures, stated as a person would, with the figures behind
//! it — "127.20.1.0/24: all 256 addresses timed out 05:48:03–05:48:08 UTC and nothing else
//! failed: a network path or firewall for that subnet, not the hosts".
//!
//! Input: the per-check evidence of a run or of a stored window ([`Evidence`]: which series —
//! one target seen from one vantage point —, the address, the time, up or down, the reason and
//! the error text). Output: [`Finding`]s of these kinds ([`FindingKind`]):
//!
//! - `prober_limited`: checks that failed on the prober itself (no free local port, no file
//!   descriptor); they are set aside and blame no target;
//! - `subnet_outage`: the addresses of one prefix failed together in one window while addresses
//!   outside it answered; the prefix is *found* (see [`prefix`]), IPv4 /8–/32, IPv6 /32–/128;
//! - `fleet_burst`: failures starting together across many subnets — a shared dependency or the
//!   prober's own network;
//! - `path_problem`: a target down from some vantage points while others reach it;
//! - `periodic`: one series' outages recur with a stable period (see [`period`]);
//! - `dns`: a name that fails to resolve (some or all of the time), or whose answers change
//!   between rounds;
//! - `round_robin`: some addresses of a name are dead while others answer;
//! - `service_down` (refusals: the host answers, nothing listens) and `host_unreachable`
//!   (timeouts, ICMP unreachables), for a host that fails alone.
//!
//! A failure explained by a group finding (subnet, burst, path) gives no per-host finding too,
//! and a host gets one per-host finding at most (periodic before down or unreachable).
//!
//! **One pass, bounded memory.** [`FindingsEngine::observe`] takes one check at a time and
//! keeps compact accumulators: ~40 bytes per series, 8 (IPv4) or 20 (IPv6) bytes per address,
//! fixed-size time buckets, and details (counts, the last [`MAX_EPISODES`] outages, per-address
//! counts of names) only for series that failed at least once and for names. Nothing keeps a
//! list of checks. [`FindingsEngine::finish`] does the searches over those accumulators.
//!
//! Pure: no I/O and no clock; times are the evidence's own (UTC milliseconds).

pub mod period;
pub mod prefix;

use crate::check::{CheckResult, Outcome, Reason};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Outages kept per series (the oldest are dropped; a long `--watch` keeps the recent ones).
pub const MAX_EPISODES: usize = 64;
/// Addresses tracked per name.
pub const MAX_NAME_ADDRESSES: usize = 32;
/// Time bucket width to start with; it doubles whenever the run outgrows [`MAX_BUCKETS`].
pub const BUCKET_MS: i64 = 250;
pub const MAX_BUCKETS: usize = 4096;
/// Fewest failed checks in a burst window (whose buckets each had at least half failing).
const BURST_MIN_FAILURES: u32 = 8;
/// A burst's failure share must be this many times the rest of the run's.
const BURST_OVER_BASELINE: f64 = 3.0;
/// Distinct subnets (/24, /64; a name that did not resolve counts alone) a burst must span.
const BURST_MIN_SUBNETS: usize = 4;
/// At most this many burst windows are examined (the ones with most failures).
const MAX_BURSTS: usize = 32;

/// One check, as the findings need it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence<'a> {
    /// Dense id of the series (one target from one vantage point): an index into the
    /// engine's per-series table. Each series' checks must come in time order.
    pub series: u32,
    /// Dense id of the target, the same for every vantage point ([`Names::host`] names it).
    pub host: u32,
    pub vantage: u16,
    /// The target is a DNS name (not an address): `dns` and `round_robin` apply.
    pub is_name: bool,
    /// The address tried; `None` when the name did not resolve.
    pub address: Option<IpAddr>,
    pub ts_unix_ms: i64,
    pub up: bool,
    pub reason: Option<Reason>,
    pub error: Option<&'a str>,
}

impl<'a> Evidence<'a> {
    /// A check of `ports`: one vantage point, so the series is the target.
    pub fn of_result(host: u32, is_name: bool, result: &'a CheckResult) -> Evidence<'a> {
        Evidence {
            series: host,
            host,
            vantage: 0,
            is_name,
            address: result.address.map(|a| a.ip()),
            ts_unix_ms: result.ts_unix_ms,
            up: result.outcome.is_up(),
            reason: result.reason,
            error: result.error.as_deref(),
        }
    }
}

/// Names for the ids in [`Evidence`], asked only for the hosts and vantage points that end up
/// in a finding.
pub trait Names {
    /// The host as written (without a port: `web.test`, `10.0.0.7`, `::1`) and its port.
    fn host(&self, host: u32) -> (String, u16);
    fn vantage(&self, vantage: u16) -> String;
}

/// Whether a failure happened on the prober's side: the TCP probe reports local shortages it
/// could not retry away as `other` with a `local error:` text, and the scheduler a check it
/// could not start before its round ended as `other`, "not started before ...".
pub fn is_prober_error(reason: Option<Reason>, error: Option<&str>) -> bool {
    if reason != Some(Reason::Other) {
        return false;
    }
    let Some(error) = error else {
        return false;
    };
    error.starts_with("local error:")
        || error.starts_with("not started before")
        || [
            "Too many open files",
            "Cannot assign requested address",
            "No buffer space available",
        ]
        .iter()
        .any(|needle| error.contains(needle))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    ProberLimited,
    FleetBurst,
    SubnetOutage,
    PathProblem,
    Periodic,
    Dns,
    RoundRobin,
    ServiceDown,
    HostUnreachable,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::ProberLimited => "prober_limited",
            FindingKind::FleetBurst => "fleet_burst",
            FindingKind::SubnetOutage => "subnet_outage",
            FindingKind::PathProblem => "path_problem",
            FindingKind::Periodic => "periodic",
            FindingKind::Dns => "dns",
            FindingKind::RoundRobin => "round_robin",
            FindingKind::ServiceDown => "service_down",
            FindingKind::HostUnreachable => "host_unreachable",
        }
    }
}

/// A stable period of a `periodic` finding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeriodFigures {
    pub period_ms: i64,
    pub tolerance_ms: i64,
    pub occurrences: usize,
}

/// One finding: what failed, when, how much, and what it means.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: FindingKind,
    /// A CIDR (`subnet_outage`, `fleet_burst`; `*` for a burst over both families), a name
    /// (`dns`, `round_robin`), `host:port` (per-host kinds) or a vantage point
    /// (`prober_limited`).
    pub scope: String,
    /// The most frequent failure reason.
    pub reason: Option<Reason>,
    pub from_unix_ms: i64,
    pub to_unix_ms: i64,
    /// Addresses (`subnet_outage`, `round_robin`), hosts (`fleet_burst`, `prober_limited`),
    /// vantage points (`path_problem`), outages (`periodic`) or rounds (`dns`, per-host kinds)
    /// that failed ...
    pub affected: u64,
    /// ... of this many checked.
    pub total: u64,
    pub failed_checks: u64,
    pub checks: u64,
    /// How many hosts' verdict lines this finding accounts for.
    pub explains: u64,
    pub period: Option<PeriodFigures>,
    /// The dead addresses of a `round_robin` name; the answers of a `dns` name that changed.
    pub addresses: Vec<IpAddr>,
    pub failing_vantages: Vec<String>,
    pub answering_vantages: Vec<String>,
    /// The sentence a person acts on; it starts with the scope.
    pub sentence: String,
}

impl Finding {
    /// A finding of `kind` about one host, with nothing else filled in yet (the constructors
    /// below fill the rest with struct-update syntax).
    fn blank(kind: FindingKind) -> Finding {
        Finding {
            kind,
            scope: String::new(),
            reason: None,
            from_unix_ms: 0,
            to_unix_ms: 0,
            affected: 0,
            total: 0,
            failed_checks: 0,
            checks: 0,
            explains: 1,
            period: None,
            addresses: Vec::new(),
            failing_vantages: Vec::new(),
            answering_vantages: Vec::new(),
            sentence: String::new(),
        }
    }

    /// The JSON event (`"event":"finding"`), as `ports --format json` writes it on stderr.
    pub fn event(&self) -> FindingEvent<'_> {
        FindingEvent {
            event: "finding",
            kind: self.kind,
            scope: &self.scope,
            reason: self.reason,
            from: rfc3339(self.from_unix_ms),
            to: rfc3339(self.to_unix_ms),
            from_unix_ms: self.from_unix_ms,
            to_unix_ms: self.to_unix_ms,
            affected: self.affected,
            total: self.total,
            failed_checks: self.failed_checks,
            checks: self.checks,
            explains: self.explains,
            period_s: self.period.map(|p| p.period_ms as f64 / 1e3),
            tolerance_s: self.period.map(|p| p.tolerance_ms as f64 / 1e3),
            occurrences: self.period.map(|p| p.occurrences),
            addresses: &self.addresses,
            failing_vantages: &self.failing_vantages,
            answering_vantages: &self.answering_vantages,
            sentence: &self.sentence,
        }
    }

    /// One paragraph of `--explain`'s text.
    pub fn paragraph(&self) -> String {
        format!("[{}] {}", self.kind.as_str(), self.sentence)
    }
}

/// The JSON form of a [`Finding`] (schema in the README).
#[derive(Debug, Serialize)]
pub struct FindingEvent<'a> {
    event: &'static str,
    kind: FindingKind,
    scope: &'a str,
    reason: Option<Reason>,
    from: String,
    to: String,
    from_unix_ms: i64,
    to_unix_ms: i64,
    affected: u64,
    total: u64,
    failed_checks: u64,
    checks: u64,
    explains: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    period_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tolerance_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    occurrences: Option<usize>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    addresses: &'a [IpAddr],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    failing_vantages: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    answering_vantages: &'a [String],
    sentence: &'a str,
}

/// `--explain`'s findings section: a header, then one paragraph per finding (at most
/// `max_paragraphs`, the rest counted by kind).
pub fn render_text(findings: &[Finding], max_paragraphs: usize) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        let _ = writeln!(out, "== Findings: none ==");
        return out;
    }
    let _ = writeln!(out, "== Findings: {} ==", findings.len());
    for (i, finding) in findings.iter().take(max_paragraphs).enumerate() {
        if i > 0 {
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "{}", finding.paragraph());
    }
    if findings.len() > max_paragraphs {
        let mut rest: Vec<(FindingKind, usize)> = Vec::new();
        for finding in &findings[max_paragraphs..] {
            match rest.iter_mut().find(|(k, _)| *k == finding.kind) {
                Some((_, n)) => *n += 1,
                None => rest.push((finding.kind, 1)),
            }
        }
        let counts: Vec<String> = rest
            .iter()
            .map(|(k, n)| format!("{n} {}", k.as_str()))
            .collect();
        let _ = writeln!(
            out,
            "\n... and {} more findings ({}); --format json lists them all",
            findings.len() - max_paragraphs,
            counts.join(", ")
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Time as text (UTC), without a calendar crate.

/// `2026-11-23T05:48:03Z` (seconds, rounded down).
pub fn rfc3339(ts_unix_ms: i64) -> String {
    // Written digit by digit: `ports` formats one per host, and `format!` made this the
    // largest cost of a 10,000-host sweep's output after the JSON itself (callgrind).
    let civil = Civil::of(ts_unix_ms);
    let mut out = String::with_capacity(20);
    civil.push_date(&mut out);
    out.push('T');
    civil.push_time(&mut out);
    out.push('Z');
    out
}

/// A UTC time split into its calendar and clock fields.
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    second_of_day: i64,
}

impl Civil {
    fn of(ts_unix_ms: i64) -> Civil {
        let secs = ts_unix_ms.div_euclid(1000);
        let (days, second_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            second_of_day,
        }
    }

    /// `2026-11-23`.
    fn push_date(&self, out: &mut String) {
        if (0..=9999).contains(&self.year) {
            push_digits(out, self.year / 100);
            push_digits(out, self.year % 100);
        } else {
            use std::fmt::Write;
            let _ = write!(out, "{:04}", self.year);
        }
        out.push('-');
        push_digits(out, self.month);
        out.push('-');
        push_digits(out, self.day);
    }

    /// `05:48:03`.
    fn push_time(&self, out: &mut String) {
        push_digits(out, self.second_of_day / 3600);
        out.push(':');
        push_digits(out, self.second_of_day / 60 % 60);
        out.push(':');
        push_digits(out, self.second_of_day % 60);
    }
}

/// Two decimal digits of `n` (0–99).
fn push_digits(out: &mut String, n: i64) {
    out.push(char::from(b'0' + (n / 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// (`2026-11-23`, `05:48:03`).
fn utc_parts(ts_unix_ms: i64) -> (String, String) {
    let civil = Civil::of(ts_unix_ms);
    let (mut date, mut time) = (String::with_capacity(10), String::with_capacity(8));
    civil.push_date(&mut date);
    civil.push_time(&mut time);
    (date, time)
}

/// "05:48:03–05:48:08 UTC", "at 05:48:03 UTC", with dates when the window spans days.
pub fn window_text(from_ms: i64, to_ms: i64) -> String {
    let (from_date, from_time) = utc_parts(from_ms);
    let (to_date, to_time) = utc_parts(to_ms);
    if from_date != to_date {
        format!("{from_date} {from_time}–{to_date} {to_time} UTC")
    } else if from_time == to_time {
        format!("at {from_time} UTC")
    } else {
        format!("{from_time}–{to_time} UTC")
    }
}

/// The same per-host finding seen from several vantage points, as one: the counts added up, the
/// window spanning them all, the vantage points listed. Group findings are left alone.
fn merge_vantage_points(findings: Vec<Finding>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    let mut seen: HashMap<(FindingKind, String), usize> = HashMap::new();
    for f in findings {
        let per_host = !matches!(
            f.kind,
            FindingKind::SubnetOutage | FindingKind::FleetBurst | FindingKind::PathProblem
        );
        let key = (f.kind, f.scope.clone());
        match seen.get(&key) {
            Some(&i) if per_host && !f.failing_vantages.is_empty() => {
                let into = &mut out[i];
                into.affected += f.affected;
                into.total += f.total;
                into.failed_checks += f.failed_checks;
                into.checks += f.checks;
                into.from_unix_ms = into.from_unix_ms.min(f.from_unix_ms);
                into.to_unix_ms = into.to_unix_ms.max(f.to_unix_ms);
                into.failing_vantages.extend(f.failing_vantages);
            }
            _ => {
                seen.insert(key, out.len());
                out.push(f);
            }
        }
    }
    for f in &mut out {
        if f.failing_vantages.len() > 1 {
            f.sentence = format!(
                "{} (seen from {})",
                f.sentence,
                f.failing_vantages.join(", ")
            );
        }
    }
    out
}

/// "1 address", "3 addresses".
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn seconds_text(ms: i64) -> String {
    let s = ms as f64 / 1e3;
    if s >= 10.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

// ---------------------------------------------------------------------------------------------
// Accumulators.

const NO_TIME: i64 = i64::MIN;
const NO_REASON: u8 = u8::MAX;

const SEEN: u8 = 1;
const NAME: u8 = 2;
const OPEN: u8 = 4;
const PUSHED: u8 = 8;
const PROBER: u8 = 16;

/// Per series: ~40 bytes for every series of the run.
#[derive(Debug, Clone, Copy)]
struct Tally {
    first_ms: i64,
    /// The open round's time, then the last round's.
    round_ms: i64,
    rounds: u32,
    /// 1 + index into `details`, 0 for none.
    detail: u32,
    host: u32,
    vantage: u16,
    round_checks: u16,
    round_failed: u16,
    round_reason: u8,
    flags: u8,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            first_ms: NO_TIME,
            round_ms: NO_TIME,
            rounds: 0,
            detail: 0,
            host: 0,
            vantage: 0,
            round_checks: 0,
            round_failed: 0,
            round_reason: NO_REASON,
            flags: 0,
        }
    }
}

impl Tally {
    fn schedule(&self) -> Schedule {
        Schedule {
            first_ms: self.first_ms,
            last_ms: self.round_ms,
            checks: self.rounds,
        }
    }

    /// The check interval, from the first and last rounds.
    fn step_ms(&self) -> i64 {
        self.schedule().step_ms()
    }

    fn checks_between(&self, from_ms: i64, to_ms: i64) -> u64 {
        self.schedule().checks_between(from_ms, to_ms)
    }
}

/// One outage of a series: consecutive failed rounds (32 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Episode {
    start_ms: i64,
    end_ms: i64,
    /// The round before, which answered ([`NO_TIME`]: the outage was under way at the start).
    prev_ok_ms: i64,
    failed_rounds: u32,
    reason: u8,
}

impl Episode {
    fn prev_ok(&self) -> Option<i64> {
        (self.prev_ok_ms != NO_TIME).then_some(self.prev_ok_ms)
    }
}

/// One address of a name. It has its own schedule: the name's answers decide which rounds
/// check it.
#[derive(Debug, Clone)]
struct AddressStat {
    ip: IpAddr,
    checks: u32,
    failures: u32,
    last_reason: u8,
    first_ms: i64,
    last_ms: i64,
}

impl AddressStat {
    fn schedule(&self) -> Schedule {
        Schedule {
            first_ms: self.first_ms,
            last_ms: self.last_ms,
            checks: self.checks,
        }
    }
}

/// Regular checks: `checks` of them from `first_ms` to `last_ms`. Which checks fell in a window
/// is arithmetic, not a list of times.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    first_ms: i64,
    last_ms: i64,
    checks: u32,
}

impl Schedule {
    fn step_ms(&self) -> i64 {
        if self.checks < 2 {
            0
        } else {
            (self.last_ms - self.first_ms) / i64::from(self.checks - 1)
        }
    }

    /// Checks due within `[from, to]`.
    fn checks_between(&self, from_ms: i64, to_ms: i64) -> u64 {
        if self.checks == 0 || from_ms > to_ms {
            return 0;
        }
        let step = self.step_ms();
        if step <= 0 {
            return u64::from(self.first_ms >= from_ms && self.first_ms <= to_ms);
        }
        let first_k = ((from_ms - self.first_ms).max(0) + step - 1) / step;
        let last_k = (to_ms - self.first_ms)
            .div_euclid(step)
            .min(i64::from(self.checks) - 1);
        (last_k - first_k + 1).max(0) as u64
    }
}

/// DNS failures by kind, from the resolver's error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DnsError {
    NxDomain,
    NoRecords,
    Timeout,
    ServFail,
    Other,
}

impl DnsError {
    const ALL: [DnsError; 5] = [
        DnsError::NxDomain,
        DnsError::NoRecords,
        DnsError::Timeout,
        DnsError::ServFail,
        DnsError::Other,
    ];

    fn of(error: Option<&str>) -> DnsError {
        let text = error.unwrap_or_default();
        let lower = text.to_ascii_lowercase();
        if text.contains("NXDOMAIN") || lower.contains("nxdomain") {
            DnsError::NxDomain
        } else if lower.contains("no address") || lower.contains("no record") {
            DnsError::NoRecords
        } else if lower.contains("timed out") || lower.contains("timeout") {
            DnsError::Timeout
        } else if lower.contains("servfail") || lower.contains("server failure") {
            DnsError::ServFail
        } else {
            DnsError::Other
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            DnsError::NxDomain => "NXDOMAIN",
            DnsError::NoRecords => "no address records",
            DnsError::Timeout => "resolver timeouts",
            DnsError::ServFail => "SERVFAIL",
            DnsError::Other => "resolver errors",
        }
    }
}

/// Per series that failed at least once, and per name (~130 bytes plus its outages).
#[derive(Debug, Clone)]
struct Detail {
    series: u32,
    checks: u32,
    failures: u32,
    failed_rounds: u32,
    reasons: [u32; Reason::ALL.len()],
    prev_round_ms: i64,
    in_episode: bool,
    whole_run_explained: bool,
    episodes: Vec<Episode>,
    /// Windows a group finding explains.
    explained: Vec<(i64, i64)>,
    name: Option<Box<NameDetail>>,
}

/// What only names need: DNS errors, the answer set, per-address counts.
#[derive(Debug, Clone, Default)]
struct NameDetail {
    dns_errors: [u32; DnsError::ALL.len()],
    dns_failed_rounds: u32,
    resolved_rounds: u32,
    answer_changes: u32,
    answer_fp: u64,
    round_fp: u64,
    round_resolved: bool,
    addresses: Vec<AddressStat>,
}

impl Detail {
    fn new(series: u32, is_name: bool) -> Detail {
        Detail {
            series,
            checks: 0,
            failures: 0,
            failed_rounds: 0,
            reasons: [0; Reason::ALL.len()],
            prev_round_ms: NO_TIME,
            in_episode: false,
            whole_run_explained: false,
            episodes: Vec::new(),
            explained: Vec::new(),
            name: is_name.then(Box::default),
        }
    }

    fn addresses(&self) -> &[AddressStat] {
        self.name.as_deref().map_or(&[], |n| &n.addresses)
    }

    /// Whether a group finding accounts for this outage: it lies within one of the group's
    /// windows, give or take one check interval (a host already failing before a subnet went
    /// dark, or still failing after, keeps its own finding).
    fn is_explained(&self, episode: &Episode, step_ms: i64) -> bool {
        self.whole_run_explained
            || self.explained.iter().any(|&(from, to)| {
                episode.start_ms >= from - step_ms && episode.end_ms <= to + step_ms
            })
    }
}

fn top_of(counts: &[u32; Reason::ALL.len()]) -> Option<Reason> {
    (0..counts.len())
        .filter(|&i| counts[i] > 0)
        .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))
        .map(|i| Reason::ALL[i])
}

fn reason_index(reason: Option<Reason>) -> u8 {
    reason.map_or(Reason::Other as u8, |r| r as u8)
}

/// Reasons that are grouped together when looking for an outage: a dark path shows as
/// timeouts or as ICMP unreachables, depending on the router.
fn outage_class(reason: u8) -> u8 {
    if reason == Reason::Unreachable as u8 {
        Reason::Timeout as u8
    } else {
        reason
    }
}

/// The reason an outage class is named by (see [`outage_class`]).
fn reason_of_class(class: u8) -> Reason {
    Reason::ALL
        .get(class as usize)
        .copied()
        .unwrap_or(Reason::Other)
}

fn fingerprint(ip: IpAddr) -> u64 {
    let bits: u128 = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) | (1 << 127),
        IpAddr::V6(v6) => u128::from(v6),
    };
    // splitmix64 over both halves: an order-free set fingerprint is the XOR of these.
    let mut x = (bits as u64) ^ ((bits >> 64) as u64).rotate_left(29);
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    checks: u32,
    failures: u32,
    by_reason: [u32; Reason::ALL.len()],
}

/// Checks and failures per time bucket, for bursts. Bounded: when the run outgrows
/// [`MAX_BUCKETS`], buckets merge pairwise and the width doubles.
#[derive(Debug)]
struct Buckets {
    width_ms: i64,
    first: i64,
    slots: VecDeque<Bucket>,
}

impl Buckets {
    fn new() -> Buckets {
        Buckets {
            width_ms: BUCKET_MS,
            first: 0,
            slots: VecDeque::new(),
        }
    }

    #[inline]
    fn add(&mut self, ts_ms: i64, failure: Option<u8>) {
        loop {
            let index = ts_ms.div_euclid(self.width_ms);
            if self.slots.is_empty() {
                self.first = index;
                self.slots.push_back(Bucket::default());
            }
            let last = self.first + self.slots.len() as i64 - 1;
            let (low, high) = (self.first.min(index), last.max(index));
            if high - low >= MAX_BUCKETS as i64 {
                self.coarsen();
                continue;
            }
            while index < self.first {
                self.slots.push_front(Bucket::default());
                self.first -= 1;
            }
            while index >= self.first + self.slots.len() as i64 {
                self.slots.push_back(Bucket::default());
            }
            let slot = &mut self.slots[(index - self.first) as usize];
            slot.checks += 1;
            if let Some(reason) = failure {
                slot.failures += 1;
                slot.by_reason[reason as usize] += 1;
            }
            return;
        }
    }

    fn coarsen(&mut self) {
        let first = self.first.div_euclid(2);
        let mut merged: VecDeque<Bucket> = VecDeque::with_capacity(self.slots.len() / 2 + 1);
        for (i, slot) in self.slots.iter().enumerate() {
            let at = (self.first + i as i64).div_euclid(2) - first;
            while merged.len() as i64 <= at {
                merged.push_back(Bucket::default());
            }
            let into = &mut merged[at as usize];
            into.checks += slot.checks;
            into.failures += slot.failures;
            for (a, b) in into.by_reason.iter_mut().zip(slot.by_reason) {
                *a += b;
            }
        }
        self.first = first;
        self.slots = merged;
        self.width_ms *= 2;
    }

    fn start_ms(&self, slot: usize) -> i64 {
        (self.first + slot as i64) * self.width_ms
    }
}

#[derive(Debug, Default, Clone)]
struct ProberTally {
    checks: u64,
    series: u64,
    first_ms: Option<i64>,
    last_ms: i64,
    example: Option<String>,
}

/// The findings engine: feed every check with [`observe`](Self::observe), then
/// [`finish`](Self::finish).
#[derive(Debug)]
pub struct FindingsEngine {
    tallies: Vec<Tally>,
    details: Vec<Detail>,
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u32)>,
    buckets: Buckets,
    prober: Vec<ProberTally>,
    vantages: u16,
    checks: u64,
    latest_ms: i64,
}

impl Default for FindingsEngine {
    fn default() -> Self {
        FindingsEngine::with_series(0)
    }
}

impl FindingsEngine {
    /// An engine sized for `series` series (it grows if more come).
    pub fn with_series(series: usize) -> FindingsEngine {
        FindingsEngine {
            tallies: vec![Tally::default(); series],
            details: Vec::new(),
            v4: Vec::with_capacity(series),
            v6: Vec::new(),
            buckets: Buckets::new(),
            prober: Vec::new(),
            vantages: 0,
            checks: 0,
            latest_ms: NO_TIME,
        }
    }

    /// Takes one check. A series' checks must come in time order; the checks of one round
    /// share its time (that is how rounds are told apart).
    pub fn observe(&mut self, e: &Evidence<'_>) {
        let s = e.series as usize;
        if s >= self.tallies.len() {
            self.tallies.resize(s + 1, Tally::default());
        }
        if self.tallies[s].flags & SEEN == 0 {
            let t = &mut self.tallies[s];
            t.flags |= SEEN | if e.is_name { NAME } else { 0 };
            t.host = e.host;
            t.vantage = e.vantage;
            self.vantages = self.vantages.max(e.vantage + 1);
            if e.is_name {
                push_growing_slowly(&mut self.details, Detail::new(e.series, true));
                self.tallies[s].detail = self.details.len() as u32;
            }
        }
        // Rounds are told apart by their time, prober-side checks included: a round whose
        // checks all failed on the prober still keeps the schedule regular.
        let t = &mut self.tallies[s];
        if t.flags & OPEN != 0 && t.round_ms != e.ts_unix_ms {
            self.close_round(s);
        }
        let t = &mut self.tallies[s];
        if t.flags & OPEN == 0 {
            t.flags |= OPEN;
            t.round_ms = e.ts_unix_ms;
            if t.first_ms == NO_TIME {
                t.first_ms = e.ts_unix_ms;
            }
            t.round_checks = 0;
            t.round_failed = 0;
            t.round_reason = NO_REASON;
        }
        if !e.up && is_prober_error(e.reason, e.error) {
            self.observe_prober_side(e);
            return;
        }
        self.checks += 1;
        self.latest_ms = self.latest_ms.max(e.ts_unix_ms);
        let failure = (!e.up).then(|| reason_index(e.reason));
        self.buckets.add(e.ts_unix_ms, failure);
        let t = &mut self.tallies[s];
        t.round_checks = t.round_checks.saturating_add(1);
        if let Some(reason) = failure {
            t.round_failed = t.round_failed.saturating_add(1);
            t.round_reason = reason;
        }
        if t.flags & NAME == 0 {
            if t.flags & PUSHED == 0 {
                t.flags |= PUSHED;
                if let Some(ip) = e.address {
                    self.push_address(ip, e.series);
                }
            }
            return;
        }
        // Names keep per-check detail: addresses, DNS errors, the answer set.
        let detail_index = t.detail as usize - 1;
        let d = &mut self.details[detail_index];
        d.checks += 1;
        if let Some(reason) = failure {
            d.failures += 1;
            d.reasons[reason as usize] += 1;
        }
        let Some(n) = d.name.as_deref_mut() else {
            return;
        };
        if failure == Some(Reason::Dns as u8) {
            n.dns_errors[DnsError::of(e.error) as usize] += 1;
        }
        // Past DNS: an address was tried, or the failure was not the name's (a stored row may
        // carry no address).
        if e.address.is_some() || failure != Some(Reason::Dns as u8) {
            n.round_resolved = true;
        }
        let Some(ip) = e.address else {
            return;
        };
        n.round_fp ^= fingerprint(ip);
        let slot = match n.addresses.iter().position(|a| a.ip == ip) {
            Some(i) => i,
            None if n.addresses.len() < MAX_NAME_ADDRESSES => {
                n.addresses.push(AddressStat {
                    ip,
                    checks: 0,
                    failures: 0,
                    last_reason: NO_REASON,
                    first_ms: e.ts_unix_ms,
                    last_ms: e.ts_unix_ms,
                });
                let slot = n.addresses.len() - 1;
                self.push_address(ip, e.series);
                slot
            }
            None => return,
        };
        let Some(n) = self.details[detail_index].name.as_deref_mut() else {
            return;
        };
        let stat = &mut n.addresses[slot];
        if stat.last_ms != e.ts_unix_ms || stat.checks == 0 {
            stat.checks += 1;
        }
        stat.last_ms = e.ts_unix_ms;
        if let Some(reason) = failure {
            stat.failures += 1;
            stat.last_reason = reason;
        }
    }

    fn push_address(&mut self, ip: IpAddr, series: u32) {
        match ip {
            IpAddr::V4(v4) => push_growing_slowly(&mut self.v4, (u32::from(v4), series)),
            IpAddr::V6(v6) => push_growing_slowly(&mut self.v6, (u128::from(v6), series)),
        }
    }

    fn observe_prober_side(&mut self, e: &Evidence<'_>) {
        let v = e.vantage as usize;
        if self.prober.len() <= v {
            self.prober.resize(v + 1, ProberTally::default());
        }
        let p = &mut self.prober[v];
        p.checks += 1;
        p.first_ms = Some(p.first_ms.map_or(e.ts_unix_ms, |f| f.min(e.ts_unix_ms)));
        p.last_ms = p.last_ms.max(e.ts_unix_ms);
        if p.example.is_none() {
            p.example = e.error.map(str::to_string);
        }
        let t = &mut self.tallies[e.series as usize];
        if t.flags & PROBER == 0 {
            t.flags |= PROBER;
            p.series += 1;
        }
    }

    fn close_round(&mut self, s: usize) {
        let t = &mut self.tallies[s];
        t.flags &= !OPEN;
        let rounds_before = t.rounds;
        t.rounds += 1;
        if t.round_checks == 0 {
            return;
        }
        let down = t.round_failed == t.round_checks;
        let is_name = t.flags & NAME != 0;
        if t.detail == 0 && t.round_failed > 0 {
            push_growing_slowly(&mut self.details, Detail::new(s as u32, false));
            t.detail = self.details.len() as u32;
        }
        if t.detail == 0 {
            return;
        }
        let (round_ms, first_ms) = (t.round_ms, t.first_ms);
        let (checks, failed, reason) = (t.round_checks, t.round_failed, t.round_reason);
        let d = &mut self.details[t.detail as usize - 1];
        if !is_name {
            d.checks += u32::from(checks);
            d.failures += u32::from(failed);
            if failed > 0 {
                d.reasons[reason as usize] += u32::from(failed);
            }
        } else if let Some(n) = d.name.as_deref_mut() {
            if n.round_resolved {
                if n.resolved_rounds > 0 && n.round_fp != n.answer_fp {
                    n.answer_changes += 1;
                }
                n.answer_fp = n.round_fp;
                n.resolved_rounds += 1;
            } else if failed > 0 && reason == Reason::Dns as u8 {
                n.dns_failed_rounds += 1;
            }
            n.round_fp = 0;
            n.round_resolved = false;
        }
        // The round before this one: known for series with a detail, estimated from the
        // regular rounds for the first failure of an address.
        let previous = if d.prev_round_ms != NO_TIME {
            d.prev_round_ms
        } else if rounds_before > 0 {
            round_ms - (round_ms - first_ms) / i64::from(rounds_before)
        } else {
            NO_TIME
        };
        if down {
            d.failed_rounds += 1;
            match (d.in_episode, d.episodes.last_mut()) {
                (true, Some(episode)) => {
                    episode.end_ms = round_ms;
                    episode.failed_rounds += 1;
                }
                _ => {
                    if d.episodes.len() == MAX_EPISODES {
                        d.episodes.remove(0);
                    }
                    crate::push_compact(
                        &mut d.episodes,
                        Episode {
                            start_ms: round_ms,
                            end_ms: round_ms,
                            prev_ok_ms: previous,
                            failed_rounds: 1,
                            reason,
                        },
                    );
                    d.in_episode = true;
                }
            }
        } else {
            d.in_episode = false;
        }
        d.prev_round_ms = round_ms;
    }

    /// The findings, most general first (prober, bursts, subnets, paths), then per host.
    pub fn finish(mut self, names: &dyn Names) -> Vec<Finding> {
        for s in 0..self.tallies.len() {
            if self.tallies[s].flags & OPEN != 0 {
                self.close_round(s);
            }
        }
        self.v4.sort_unstable();
        self.v4.dedup();
        self.v6.sort_unstable();
        self.v6.dedup();

        let mut findings = self.prober_findings(names);
        let mut outages = self.subnet_findings();
        findings.append(&mut self.burst_findings());
        findings.append(&mut outages);
        findings.append(&mut self.path_findings(names));
        findings.append(&mut self.host_findings(names));
        let mut findings = merge_vantage_points(findings);
        findings.sort_by(|a, b| {
            a.kind
                .cmp(&b.kind)
                .then(b.explains.cmp(&a.explains))
                .then(a.from_unix_ms.cmp(&b.from_unix_ms))
                .then(a.scope.cmp(&b.scope))
        });
        findings
    }

    /// The distinct hosts (targets) of some series: the verdict lines a finding explains.
    fn hosts_of(&self, series: &[u32]) -> Vec<u32> {
        let mut hosts: Vec<u32> = series
            .iter()
            .map(|&s| self.tallies[s as usize].host)
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        hosts
    }

    fn host_port(&self, names: &dyn Names, series: u32) -> String {
        let (host, port) = names.host(self.tallies[series as usize].host);
        host_port_text(&host, port)
    }

    fn prober_findings(&self, names: &dyn Names) -> Vec<Finding> {
        let series_total = self.tallies.iter().filter(|t| t.flags & SEEN != 0).count() as u64;
        let mut out = Vec::new();
        for (v, p) in self.prober.iter().enumerate() {
            let Some(first_ms) = p.first_ms else {
                continue;
            };
            let vantage = names.vantage(v as u16);
            let scope = if vantage.is_empty() {
                "this prober".to_string()
            } else {
                vantage
            };
            let example = p.example.as_deref().unwrap_or("local error");
            out.push(Finding {
                sentence: format!(
                    "{scope}: {} checks of {} hosts failed on the prober itself, not on the targets \
                     ({example}) {}: raise the open-file limit (ulimit -n), lower --concurrency or \
                     --rate, or widen net.ipv4.ip_local_port_range; those hosts are not blamed for it.",
                    p.checks,
                    p.series,
                    window_text(first_ms, p.last_ms)
                ),
                scope,
                reason: Some(Reason::Other),
                from_unix_ms: first_ms,
                to_unix_ms: p.last_ms,
                affected: p.series,
                total: series_total,
                failed_checks: p.checks,
                checks: p.checks + self.checks,
                explains: 0,
                ..Finding::blank(FindingKind::ProberLimited)
            });
        }
        out
    }

    /// Failures of every address of every series with outages, for the prefix search.
    fn address_failures<A: Copy + Ord>(&self, table: &[(A, u32)]) -> Vec<prefix::Failure> {
        let mut failures = Vec::new();
        for (entry, &(_, series)) in table.iter().enumerate() {
            let t = &self.tallies[series as usize];
            if t.detail == 0 {
                continue;
            }
            let d = &self.details[t.detail as usize - 1];
            let step = t.step_ms();
            for episode in &d.episodes {
                if episode.reason == Reason::Dns as u8 {
                    continue;
                }
                // Addresses that went dark together began failing within one check interval of
                // each other (each at its own next check); a single sweep is one window.
                let onset_until = if step > 0 {
                    episode.start_ms + step
                } else {
                    self.latest_ms
                };
                failures.push(prefix::Failure {
                    entry: entry as u32,
                    start_ms: episode.start_ms,
                    end_ms: episode.end_ms,
                    until_ms: onset_until,
                    failed_checks: episode.failed_rounds,
                    class: outage_class(episode.reason),
                });
            }
        }
        failures
    }

    fn subnet_findings(&mut self) -> Vec<Finding> {
        let mut found = self.family_outages(&self.v4, 32);
        found.append(&mut self.family_outages(&self.v6, 128));
        // One prefix dark again and again: one periodic finding for the group.
        let mut scopes: Vec<&str> = found.iter().map(|f| f.1.as_str()).collect();
        scopes.sort_unstable();
        let repeated: Vec<String> = scopes
            .chunk_by(|a, b| a == b)
            .filter(|group| group.len() >= period::MIN_OCCURRENCES)
            .map(|group| group[0].to_string())
            .collect();
        let mut out = Vec::new();
        for scope in repeated {
            let group: Vec<usize> = (0..found.len()).filter(|&i| found[i].1 == scope).collect();
            let outages: Vec<&prefix::Outage> = group.iter().map(|&i| &found[i].0).collect();
            if let Some(finding) = self.periodic_group(&scope, &outages, &found[group[0]].2) {
                out.push(finding);
                for &i in group.iter().rev() {
                    let (outage, scope, series) = found.remove(i);
                    // Still accounts for its hosts' failures.
                    let _ = self.outage_finding(&outage, scope, &series);
                }
            }
        }
        out.extend(
            found
                .into_iter()
                .map(|(outage, scope, series)| self.outage_finding(&outage, scope, &series)),
        );
        out
    }

    /// A prefix's outages recurring with a stable period, as one `periodic` finding.
    fn periodic_group(
        &self,
        scope: &str,
        outages: &[&prefix::Outage],
        series: &[u32],
    ) -> Option<Finding> {
        let t = self.tallies[*series.first()? as usize];
        let step = t.step_ms();
        let occurrences: Vec<period::Occurrence> = outages
            .iter()
            .map(|o| period::Occurrence {
                start_ms: o.from_ms,
                prev_ok_ms: Some(o.from_ms - step),
                failed_rounds: (o.failed_checks / o.members.len().max(1) as u64).max(1) as u32,
            })
            .collect();
        let found = period::detect(&occurrences, step, t.rounds, 1e-3)?;
        let first = outages.first()?;
        let last = outages.last()?;
        let reason = reason_of_class(first.class);
        let failing = outages.iter().map(|o| o.members.len()).max().unwrap_or(0);
        let checked = outages.iter().map(|o| o.checked).max().unwrap_or(0);
        let hosts = self.hosts_of(series);
        Some(Finding {
            sentence: format!(
                "{scope}: its addresses ({failing} of {checked}) {} together every {} ± {} ({} times, {}): a scheduled job on the path (a firewall reload, a backup filling a link) or a restart loop of the whole group, not the hosts one by one. Explains {} of the verdict lines.",
                reason_verb(Some(reason)),
                seconds_text(found.period_ms),
                seconds_text(found.tolerance_ms),
                found.occurrences,
                window_text(first.from_ms, last.to_ms),
                hosts.len(),
            ),
            scope: scope.to_string(),
            reason: Some(reason),
            from_unix_ms: first.from_ms,
            to_unix_ms: last.to_ms,
            affected: found.occurrences as u64,
            total: u64::from(t.rounds),
            failed_checks: outages.iter().map(|o| o.failed_checks).sum(),
            checks: outages.iter().map(|o| o.checks).sum(),
            explains: hosts.len() as u64,
            period: Some(PeriodFigures {
                period_ms: found.period_ms,
                tolerance_ms: found.tolerance_ms,
                occurrences: found.occurrences,
            }),
            ..Finding::blank(FindingKind::Periodic)
        })
    }

    /// The outages of one address family: each with its CIDR and its failing series.
    fn family_outages<A: Copy + Ord + Into<u128>>(
        &self,
        entries: &[(A, u32)],
        bits: u32,
    ) -> Vec<(prefix::Outage, String, Vec<u32>)> {
        let failures = self.address_failures(entries);
        let table = Table {
            entries,
            tallies: &self.tallies,
            details: &self.details,
            bits,
        };
        prefix::find_outages(&table, &failures, &prefix::Rules::for_bits(bits))
            .into_iter()
            .map(|outage| {
                let scope = cidr_text(bits, outage.network, outage.prefix_len);
                let series = outage
                    .members
                    .iter()
                    .map(|&m| entries[m as usize].1)
                    .collect();
                (outage, scope, series)
            })
            .collect()
    }

    fn outage_finding(
        &mut self,
        outage: &prefix::Outage,
        scope: String,
        member_series: &[u32],
    ) -> Finding {
        let (from, to) = (outage.from_ms, outage.to_ms);
        let mut reasons = [0u32; Reason::ALL.len()];
        for &s in member_series {
            let t = self.tallies[s as usize];
            let d = &mut self.details[t.detail as usize - 1];
            for episode in d.episodes.iter() {
                if episode.start_ms <= to && episode.end_ms >= from {
                    reasons[episode.reason as usize] += episode.failed_rounds;
                }
            }
            d.explained.push((from, to));
        }
        let hosts = self.hosts_of(member_series);
        let reason = top_of(&reasons);
        let failing = outage.members.len() as u64;
        let share = if failing == u64::from(outage.checked) {
            format!("all {failing} addresses")
        } else {
            format!("{failing} of {} addresses", outage.checked)
        };
        let others = if outage.outside_failed == 0 {
            "and nothing else failed".to_string()
        } else {
            format!(
                "while its neighbours answered ({} elsewhere failed too)",
                plural(u64::from(outage.outside_failed), "address", "addresses")
            )
        };
        let meaning = match reason {
            Some(Reason::Refused) => {
                "a firewall rejecting that subnet, or the service stopped on all of them at once (a deploy)"
            }
            Some(Reason::Timeout) | Some(Reason::Unreachable) => {
                "a network path or firewall for that subnet, not the hosts"
            }
            _ => "a change that hit that subnet as a whole, not the hosts one by one",
        };
        Finding {
            sentence: format!(
                "{scope}: {share} {} {} {others}: {meaning}. Explains {} of the verdict lines ({} failed checks).",
                reason_verb(reason),
                window_text(from, to),
                hosts.len(),
                outage.failed_checks
            ),
            scope,
            reason,
            from_unix_ms: from,
            to_unix_ms: to,
            affected: failing,
            total: u64::from(outage.checked),
            failed_checks: outage.failed_checks,
            checks: outage.checks,
            explains: hosts.len() as u64,
            ..Finding::blank(FindingKind::SubnetOutage)
        }
    }

    fn burst_findings(&mut self) -> Vec<Finding> {
        let slots = &self.buckets.slots;
        // Hot: at least half of the bucket's checks failed. Empty buckets (a small fleet's
        // checks are sparse) neither start nor break a window.
        let hot = |b: &Bucket| b.failures > 0 && b.failures * 2 >= b.checks;
        let mut windows: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < slots.len() {
            if !hot(&slots[i]) {
                i += 1;
                continue;
            }
            let start = i;
            let mut end = i + 1;
            while i < slots.len() && (hot(&slots[i]) || slots[i].checks == 0) {
                if hot(&slots[i]) {
                    end = i + 1;
                }
                i += 1;
            }
            windows.push((start, end));
            i = end;
        }
        if windows.is_empty() {
            return Vec::new();
        }
        let sum = |range: std::ops::Range<usize>| {
            slots.range(range).fold((0u64, 0u64), |(c, f), b| {
                (c + u64::from(b.checks), f + u64::from(b.failures))
            })
        };
        let (all_checks, all_failures) = sum(0..slots.len());
        let (hot_checks, hot_failures) = windows
            .iter()
            .map(|&(a, b)| sum(a..b))
            .fold((0, 0), |(c, f), (c2, f2)| (c + c2, f + f2));
        let rest_checks = all_checks - hot_checks;
        let baseline = if rest_checks == 0 {
            None
        } else {
            Some((all_failures - hot_failures) as f64 / rest_checks as f64)
        };
        windows.sort_by_key(|&(a, b)| std::cmp::Reverse(sum(a..b).1));
        windows.truncate(MAX_BURSTS);
        let mut candidates = Vec::new();
        for (a, b) in windows {
            let (checks, failures) = sum(a..b);
            if failures < u64::from(BURST_MIN_FAILURES) {
                continue;
            }
            let share = failures as f64 / checks as f64;
            let enough = match baseline {
                Some(baseline) => share >= BURST_OVER_BASELINE * baseline,
                None => share >= 0.9,
            };
            if !enough {
                continue;
            }
            let mut reasons = [0u32; Reason::ALL.len()];
            for bucket in slots.range(a..b) {
                for (r, n) in reasons.iter_mut().zip(bucket.by_reason) {
                    *r += n;
                }
            }
            let window = (self.buckets.start_ms(a), self.buckets.start_ms(b) - 1);
            candidates.push((window, checks, failures, reasons));
        }
        candidates
            .into_iter()
            .filter_map(|((from, to), checks, failures, reasons)| {
                self.burst(from, to, checks, failures, &reasons)
            })
            .collect()
    }

    /// A burst in `[w_from, w_to]` (its hot buckets) when the outages starting in it (and not
    /// explained by a subnet outage) span enough subnets.
    fn burst(
        &mut self,
        w_from: i64,
        w_to: i64,
        checks: u64,
        failures: u64,
        reasons: &[u32; Reason::ALL.len()],
    ) -> Option<Finding> {
        // Outages starting in the window, by series; each series' address groups.
        let mut starting: Vec<(u32, i64, i64)> = Vec::new();
        let width = self.buckets.width_ms;
        for d in &self.details {
            let step = self.tallies[d.series as usize].step_ms();
            for episode in &d.episodes {
                // Began in the window, or in the bucket just before it (a burst rarely starts
                // on a bucket boundary, so its first bucket may be under half failing).
                let began = episode.start_ms >= w_from - width && episode.start_ms <= w_to;
                if began && episode.end_ms >= w_from && !d.is_explained(episode, step) {
                    starting.push((d.series, episode.start_ms, episode.end_ms));
                }
            }
        }
        let addresses_of_details = self.detail_addresses();
        let mut groups: Vec<u128> = Vec::new();
        let mut v4_span: Option<(u32, u32)> = None;
        let mut v6_span: Option<(u128, u128)> = None;
        let subnets_of = |series: u32,
                          groups: &mut Vec<u128>,
                          v4: &mut Option<(u32, u32)>,
                          v6: &mut Option<(u128, u128)>| {
            let t = &self.tallies[series as usize];
            let mut any = false;
            let addresses: Vec<IpAddr> = if t.flags & NAME != 0 {
                self.details[t.detail as usize - 1]
                    .addresses()
                    .iter()
                    .map(|a| a.ip)
                    .collect()
            } else {
                addresses_of_details[t.detail as usize - 1]
                    .into_iter()
                    .collect()
            };
            for ip in addresses {
                any = true;
                match ip {
                    IpAddr::V4(ip) => {
                        let bits = u32::from(ip);
                        groups.push(u128::from(bits >> 8));
                        *v4 =
                            Some(v4.map_or((bits, bits), |(lo, hi)| (lo.min(bits), hi.max(bits))));
                    }
                    IpAddr::V6(ip) => {
                        let bits = u128::from(ip);
                        groups.push((bits >> 64) | (1 << 100));
                        *v6 =
                            Some(v6.map_or((bits, bits), |(lo, hi)| (lo.min(bits), hi.max(bits))));
                    }
                }
            }
            if !any {
                // A name that did not resolve: its own group.
                groups.push((1u128 << 120) | u128::from(series));
            }
        };
        let mut series: Vec<u32> = starting.iter().map(|s| s.0).collect();
        series.sort_unstable();
        series.dedup();
        for &s in &series {
            subnets_of(s, &mut groups, &mut v4_span, &mut v6_span);
        }
        groups.sort_unstable();
        groups.dedup();
        if groups.len() < BURST_MIN_SUBNETS {
            return None;
        }
        let from = starting.iter().map(|s| s.1).min()?;
        let to = starting.iter().map(|s| s.2.min(w_to).max(s.1)).max()?;
        let hosts = self.hosts_of(&series);
        // The burst accounts for each of these outages, however long it went on.
        for &(s, start, end) in &starting {
            let detail = self.tallies[s as usize].detail as usize - 1;
            self.details[detail].explained.push((start, end));
        }
        let total = self
            .tallies
            .iter()
            .filter(|t| t.checks_between(from, to.max(from)) > 0)
            .count() as u64;
        let covering = |bits: u32, low: u128, high: u128| {
            let len = prefix::common_prefix_len(bits, low, high);
            cidr_text(bits, low & prefix::mask(bits, len), len)
        };
        let scope = match (v4_span, v6_span) {
            (Some((lo, hi)), None) => covering(32, u128::from(lo), u128::from(hi)),
            (None, Some((lo, hi))) => covering(128, lo, hi),
            _ => "*".to_string(),
        };
        let reason = top_of(reasons);
        Some(Finding {
            sentence: format!(
                "{scope}: {} of {} hosts, across {} subnets, started failing together {} ({}; {} of {} checks in those seconds failed): a shared dependency or the prober's own network, not the hosts. Explains {} of the verdict lines.",
                series.len(),
                total.max(series.len() as u64),
                groups.len(),
                window_text(from, to),
                reason.map_or("failed", Reason::as_str),
                failures,
                checks,
                hosts.len()
            ),
            scope,
            reason,
            from_unix_ms: from,
            to_unix_ms: to,
            affected: series.len() as u64,
            total: total.max(series.len() as u64),
            failed_checks: failures,
            checks,
            explains: hosts.len() as u64,
            ..Finding::blank(FindingKind::FleetBurst)
        })
    }

    /// The address of each address target with a detail, from the sorted tables (names keep
    /// theirs in the detail).
    fn detail_addresses(&self) -> Vec<Option<IpAddr>> {
        let mut out = vec![None; self.details.len()];
        for &(ip, series) in &self.v4 {
            if let Some(d) = self.tallies[series as usize].detail.checked_sub(1) {
                out[d as usize] = Some(IpAddr::V4(Ipv4Addr::from(ip)));
            }
        }
        for &(ip, series) in &self.v6 {
            if let Some(d) = self.tallies[series as usize].detail.checked_sub(1) {
                out[d as usize] = Some(IpAddr::V6(Ipv6Addr::from(ip)));
            }
        }
        out
    }

    fn path_findings(&mut self, names: &dyn Names) -> Vec<Finding> {
        if self.vantages < 2 {
            return Vec::new();
        }
        let mut by_host: Vec<(u32, u32)> = self
            .tallies
            .iter()
            .enumerate()
            .filter(|(_, t)| t.flags & SEEN != 0 && t.rounds > 0)
            .map(|(s, t)| (t.host, s as u32))
            .collect();
        by_host.sort_unstable();
        let mut out = Vec::new();
        for group in by_host.chunk_by(|a, b| a.0 == b.0) {
            if group.len() < 2 {
                continue;
            }
            let failed_rounds = |s: u32| {
                let t = &self.tallies[s as usize];
                match t.detail {
                    0 => 0,
                    d => self.details[d as usize - 1].failed_rounds,
                }
            };
            let failing: Vec<u32> = group
                .iter()
                .map(|g| g.1)
                .filter(|&s| {
                    let f = failed_rounds(s);
                    f > 0 && f * 2 >= self.tallies[s as usize].rounds
                })
                .collect();
            let answering: Vec<u32> = group
                .iter()
                .map(|g| g.1)
                .filter(|&s| failed_rounds(s) == 0)
                .collect();
            if failing.is_empty() || answering.is_empty() {
                continue;
            }
            let mut reasons = [0u32; Reason::ALL.len()];
            let (mut failed_checks, mut checks) = (0u64, 0u64);
            let (mut from, mut to) = (i64::MAX, i64::MIN);
            for &s in &failing {
                let d = &mut self.details[self.tallies[s as usize].detail as usize - 1];
                for (r, n) in reasons.iter_mut().zip(d.reasons) {
                    *r += n;
                }
                failed_checks += u64::from(d.failures);
                checks += u64::from(d.checks);
                for episode in &d.episodes {
                    from = from.min(episode.start_ms);
                    to = to.max(episode.end_ms);
                }
                d.whole_run_explained = true;
            }
            let answered_checks: u64 = answering
                .iter()
                .map(|&s| u64::from(self.tallies[s as usize].rounds))
                .sum();
            let vantage_names = |list: &[u32]| -> Vec<String> {
                list.iter()
                    .map(|&s| names.vantage(self.tallies[s as usize].vantage))
                    .collect()
            };
            let failing_vantages = vantage_names(&failing);
            let answering_vantages = vantage_names(&answering);
            let scope = self.host_port(names, failing[0]);
            let reason = top_of(&reasons);
            out.push(Finding {
                sentence: format!(
                    "{scope}: down from {} ({failed_checks} of {checks} checks failed, {}, {}) while {} reached it in all {answered_checks} checks: a path problem (routing, a firewall, a data center's uplink), not the host.",
                    failing_vantages.join(", "),
                    reason.map_or("failed", Reason::as_str),
                    window_text(from, to),
                    answering_vantages.join(", "),
                ),
                scope,
                reason,
                from_unix_ms: from,
                to_unix_ms: to,
                affected: failing.len() as u64,
                total: group.len() as u64,
                failed_checks,
                checks: checks + answered_checks,
                failing_vantages,
                answering_vantages,
                ..Finding::blank(FindingKind::PathProblem)
            });
        }
        out
    }

    fn host_findings(&self, names: &dyn Names) -> Vec<Finding> {
        let candidates = self
            .details
            .iter()
            .filter(|d| d.episodes.len() >= period::MIN_OCCURRENCES)
            .count();
        // At most about 5 % chance of one false periodic finding in the whole run.
        let alpha = (0.05 / candidates.max(1) as f64).min(1e-3);
        let mut out = Vec::new();
        for d in &self.details {
            let first = out.len();
            self.series_findings(names, d, alpha, &mut out);
            if self.vantages > 1 {
                // Say which vantage point saw it: the same finding from several is merged.
                let vantage = names.vantage(self.tallies[d.series as usize].vantage);
                for f in &mut out[first..] {
                    f.failing_vantages = vec![vantage.clone()];
                }
            }
        }
        out
    }

    /// One series' own findings: `dns` and `round_robin` for a name, then `periodic`, or else
    /// `service_down` / `host_unreachable` for what no group finding explains.
    fn series_findings(&self, names: &dyn Names, d: &Detail, alpha: f64, out: &mut Vec<Finding>) {
        let t = &self.tallies[d.series as usize];
        let mut has_finding = false;
        if t.flags & NAME != 0 {
            if let Some(f) = self.dns_finding(names, d) {
                out.push(f);
                has_finding = true;
            }
            if let Some(f) = self.round_robin_finding(names, d) {
                out.push(f);
                has_finding = true;
            }
        }
        if d.whole_run_explained {
            return;
        }
        let alone: Vec<&Episode> = d
            .episodes
            .iter()
            .filter(|e| e.reason != Reason::Dns as u8 && !d.is_explained(e, t.step_ms()))
            .collect();
        if alone.is_empty() {
            return;
        }
        if let Some(f) = self.periodic_finding(names, d, &alone, alpha) {
            out.push(f);
        } else if !has_finding {
            out.extend(self.alone_finding(names, d, &alone));
        }
    }

    fn periodic_finding(
        &self,
        names: &dyn Names,
        d: &Detail,
        episodes: &[&Episode],
        alpha: f64,
    ) -> Option<Finding> {
        let t = &self.tallies[d.series as usize];
        let occurrences: Vec<period::Occurrence> = episodes
            .iter()
            .map(|e| period::Occurrence {
                start_ms: e.start_ms,
                prev_ok_ms: e.prev_ok(),
                failed_rounds: e.failed_rounds,
            })
            .collect();
        let found = period::detect(&occurrences, t.step_ms(), t.rounds, alpha)?;
        let scope = self.host_port(names, d.series);
        let mut reasons = [0u32; Reason::ALL.len()];
        for e in episodes {
            reasons[e.reason as usize] += e.failed_rounds;
        }
        let reason = top_of(&reasons);
        let from = episodes.first()?.start_ms;
        let to = episodes.last()?.end_ms;
        let failed: u32 = episodes.iter().map(|e| e.failed_rounds).sum();
        Some(Finding {
            sentence: format!(
                "{scope}: fails every {} ± {} ({} times, {}, {} failed checks each, {}): a cron job, a restart loop or a health-check timeout.",
                seconds_text(found.period_ms),
                seconds_text(found.tolerance_ms),
                found.occurrences,
                reason.map_or("failed", Reason::as_str),
                per_outage(episodes),
                window_text(from, to),
            ),
            scope,
            reason,
            from_unix_ms: from,
            to_unix_ms: to,
            affected: found.occurrences as u64,
            total: u64::from(t.rounds),
            failed_checks: u64::from(failed),
            checks: u64::from(t.rounds),
            period: Some(PeriodFigures {
                period_ms: found.period_ms,
                tolerance_ms: found.tolerance_ms,
                occurrences: found.occurrences,
            }),
            ..Finding::blank(FindingKind::Periodic)
        })
    }

    fn alone_finding(
        &self,
        names: &dyn Names,
        d: &Detail,
        episodes: &[&Episode],
    ) -> Option<Finding> {
        let t = &self.tallies[d.series as usize];
        let mut reasons = [0u32; Reason::ALL.len()];
        for e in episodes {
            reasons[e.reason as usize] += e.failed_rounds;
        }
        let reason = top_of(&reasons)?;
        let (kind, meaning) = match reason {
            Reason::Refused => (
                FindingKind::ServiceDown,
                "the host answers but nothing listens on the port: a process down or restarting, or a full backlog",
            ),
            Reason::Timeout => (
                FindingKind::HostUnreachable,
                "no answer at all: the host is off, a firewall drops the packets, or the path to it is dead",
            ),
            Reason::Unreachable => (
                FindingKind::HostUnreachable,
                "ICMP unreachable: no route to the host, or a router or firewall rejects it",
            ),
            _ => return None,
        };
        let failed: u32 = episodes.iter().map(|e| e.failed_rounds).sum();
        let from = episodes.first()?.start_ms;
        let to = episodes.last()?.end_ms;
        let scope = self.host_port(names, d.series);
        let how = match episodes.len() {
            1 => String::new(),
            n => format!(" in {n} outages"),
        };
        Some(Finding {
            sentence: format!(
                "{scope}: {} in {failed} of {} rounds{how} {}: {meaning}.",
                reason_verb(Some(reason)),
                t.rounds,
                window_text(from, to)
            ),
            scope,
            reason: Some(reason),
            from_unix_ms: from,
            to_unix_ms: to,
            affected: u64::from(failed),
            total: u64::from(t.rounds),
            failed_checks: u64::from(d.failures),
            checks: u64::from(d.checks),
            ..Finding::blank(kind)
        })
    }

    fn dns_finding(&self, names: &dyn Names, d: &Detail) -> Option<Finding> {
        let n = d.name.as_deref()?;
        let t = &self.tallies[d.series as usize];
        let (host, _) = names.host(t.host);
        let dns_episodes: Vec<&Episode> = d
            .episodes
            .iter()
            .filter(|e| e.reason == Reason::Dns as u8 && !d.is_explained(e, t.step_ms()))
            .collect();
        let tcp_failures = d.failures - d.reasons[Reason::Dns as usize];
        let answered = if tcp_failures == 0 {
            "while every address answered"
        } else {
            "(some addresses failed too)"
        };
        let addresses: Vec<IpAddr> = n.addresses.iter().map(|a| a.ip).collect();
        if !dns_episodes.is_empty() {
            let failed = n.dns_failed_rounds;
            let from = dns_episodes.first()?.start_ms;
            let to = dns_episodes.last()?.end_ms;
            let errors: Vec<String> = DnsError::ALL
                .iter()
                .filter(|&&e| n.dns_errors[e as usize] > 0)
                .map(|&e| format!("{} {}", n.dns_errors[e as usize], e.as_str()))
                .collect();
            let sentence = if n.resolved_rounds == 0 {
                format!(
                    "{host}: did not resolve in any of its {} rounds ({}) {}: the name is missing from DNS or its resolver fails — the port was never tried.",
                    t.rounds,
                    errors.join(", "),
                    window_text(from, to)
                )
            } else {
                format!(
                    "{host}: failed to resolve in {failed} of {} rounds ({}) {}, and resolved in the other {} {answered}: the name flaps, not the port.",
                    t.rounds,
                    errors.join(", "),
                    window_text(from, to),
                    n.resolved_rounds
                )
            };
            return Some(Finding {
                sentence,
                scope: host,
                reason: Some(Reason::Dns),
                from_unix_ms: from,
                to_unix_ms: to,
                affected: u64::from(failed),
                total: u64::from(t.rounds),
                failed_checks: u64::from(d.reasons[Reason::Dns as usize]),
                checks: u64::from(d.checks),
                addresses,
                ..Finding::blank(FindingKind::Dns)
            });
        }
        if n.answer_changes >= 2 {
            let shown: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
            return Some(Finding {
                sentence: format!(
                    "{host}: its answers changed in {} of {} rounds ({}) {answered}: the name flaps, not the port.",
                    n.answer_changes,
                    n.resolved_rounds,
                    shown.join(", ")
                ),
                scope: host,
                reason: None,
                from_unix_ms: t.first_ms,
                to_unix_ms: t.round_ms,
                affected: u64::from(n.answer_changes),
                total: u64::from(n.resolved_rounds),
                failed_checks: u64::from(d.failures),
                checks: u64::from(d.checks),
                addresses,
                ..Finding::blank(FindingKind::Dns)
            });
        }
        None
    }

    fn round_robin_finding(&self, names: &dyn Names, d: &Detail) -> Option<Finding> {
        let n = d.name.as_deref()?;
        if n.addresses.len() < 2 {
            return None;
        }
        let dead: Vec<&AddressStat> = n
            .addresses
            .iter()
            .filter(|a| a.failures > 0 && a.failures * 10 >= a.checks * 9)
            .collect();
        let answering = n
            .addresses
            .iter()
            .filter(|a| a.failures * 10 <= a.checks)
            .count();
        if dead.is_empty() || answering == 0 {
            return None;
        }
        let t = &self.tallies[d.series as usize];
        let (host, _) = names.host(t.host);
        let mut reasons = [0u32; Reason::ALL.len()];
        for a in &dead {
            if a.last_reason != NO_REASON {
                reasons[a.last_reason as usize] += a.failures;
            }
        }
        let reason = top_of(&reasons);
        let verb = match reason {
            Some(Reason::Refused) => "refusing",
            Some(Reason::Timeout) => "timing out",
            Some(Reason::Unreachable) => "unreachable",
            _ => "failing",
        };
        let addresses: Vec<IpAddr> = dead.iter().map(|a| a.ip).collect();
        let shown: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
        let failed: u32 = dead.iter().map(|a| a.failures).sum();
        let is = if dead.len() == 1 { "is" } else { "are" };
        Some(Finding {
            sentence: format!(
                "{host}: {} of {} addresses {is} {verb}: {} ({failed} failed checks) while the others answer, so about {} in {} connections fail: take {} out of the name or fix {}.",
                dead.len(),
                n.addresses.len(),
                shown.join(", "),
                dead.len(),
                n.addresses.len(),
                if dead.len() == 1 { "it" } else { "them" },
                if dead.len() == 1 { "it" } else { "them" },
            ),
            scope: host,
            reason,
            from_unix_ms: t.first_ms,
            to_unix_ms: t.round_ms,
            affected: dead.len() as u64,
            total: n.addresses.len() as u64,
            failed_checks: u64::from(failed),
            checks: u64::from(d.checks),
            addresses,
            ..Finding::blank(FindingKind::RoundRobin)
        })
    }
}

fn per_outage(episodes: &[&Episode]) -> String {
    let lo = episodes.iter().map(|e| e.failed_rounds).min().unwrap_or(0);
    let hi = episodes.iter().map(|e| e.failed_rounds).max().unwrap_or(0);
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}

fn reason_verb(reason: Option<Reason>) -> &'static str {
    match reason {
        Some(Reason::Refused) => "refused",
        Some(Reason::Timeout) => "timed out",
        Some(Reason::Unreachable) => "were unreachable",
        Some(Reason::Dns) => "did not resolve",
        _ => "failed",
    }
}

/// `10.0.0.7:80`, `[::1]:80`, `web.test:80`.
pub fn host_port_text(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `10.1.2.0/24`, `2001:db8::/32`.
fn cidr_text(bits: u32, network: u128, len: u32) -> String {
    if bits == 32 {
        format!("{}/{len}", Ipv4Addr::from(network as u32))
    } else {
        format!("{}/{len}", Ipv6Addr::from(network))
    }
}

/// The address as the tables keep it (IPv4 as its 32 bits).
fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Pushes onto a large table growing it by an eighth, not by doubling: the address tables of a
/// 1,000,000-host run would otherwise briefly hold two copies.
fn push_growing_slowly<T>(table: &mut Vec<T>, item: T) {
    if table.len() == table.capacity() {
        table.reserve_exact((table.len() / 8).max(1024));
    }
    table.push(item);
}

/// An address table over the engine's accumulators.
struct Table<'a, A> {
    entries: &'a [(A, u32)],
    tallies: &'a [Tally],
    details: &'a [Detail],
    bits: u32,
}

impl<A: Copy + Into<u128>> prefix::AddressTable for Table<'_, A> {
    fn bits(&self) -> u32 {
        self.bits
    }
    fn len(&self) -> usize {
        self.entries.len()
    }
    fn address(&self, entry: usize) -> u128 {
        self.entries[entry].0.into()
    }
    fn checks_between(&self, entry: usize, from_ms: i64, to_ms: i64) -> u64 {
        let (address, series) = self.entries[entry];
        let t = &self.tallies[series as usize];
        let name = t
            .detail
            .checked_sub(1)
            .and_then(|d| self.details[d as usize].name.as_deref());
        let schedule = match name {
            Some(n) => {
                let address: u128 = address.into();
                n.addresses
                    .iter()
                    .find(|a| ip_bits(a.ip) == address)
                    .map_or(t.schedule(), AddressStat::schedule)
            }
            None => t.schedule(),
        };
        schedule.checks_between(from_ms, to_ms)
    }
}

// ---------------------------------------------------------------------------------------------
// Stored windows (`report --explain`, the status page).

/// One stored check, as the stores return it for a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredCheck<'a> {
    /// The target as stored: `host:port` (TCP) or the URL (HTTP).
    pub target: &'a str,
    pub vantage: &'a str,
    pub address: Option<SocketAddr>,
    pub ts_unix_ms: i64,
    pub outcome: Outcome,
    pub reason: Option<Reason>,
    pub error: Option<&'a str>,
}

/// The findings of a stored window. The checks must come in time order for each target and
/// vantage point (`ORDER BY ts` does it); they are streamed, not kept.
pub fn findings_of_stored<'a>(checks: impl IntoIterator<Item = StoredCheck<'a>>) -> Vec<Finding> {
    let mut names = StoredNames::default();
    let mut series: HashMap<(u32, u16), u32> = HashMap::new();
    let mut engine = FindingsEngine::default();
    for check in checks {
        let host = names.host_id(check.target);
        let vantage = names.vantage_id(check.vantage);
        let next = series.len() as u32;
        let id = *series.entry((host, vantage)).or_insert(next);
        engine.observe(&Evidence {
            series: id,
            host,
            vantage,
            is_name: names.hosts[host as usize].2,
            address: check.address.map(|a| a.ip()),
            ts_unix_ms: check.ts_unix_ms,
            up: check.outcome.is_up(),
            reason: check.reason,
            error: check.error,
        });
    }
    engine.finish(&names)
}

/// The findings of stored observations as `report` reads them today
/// ([`crate::vantage::Observation`]: target, vantage, time, up, reason; any order). Without
/// addresses and error texts it finds `path_problem`, `periodic`, `dns` failures and the
/// per-host kinds, but no `subnet_outage`, `fleet_burst` spread, `round_robin` or
/// `prober_limited`: for those the store must also return each check's address and error
/// ([`StoredCheck`]).
pub fn findings_of_observations(observations: &[crate::vantage::Observation]) -> Vec<Finding> {
    let mut order: Vec<usize> = (0..observations.len()).collect();
    order.sort_by_key(|&i| observations[i].ts_unix_ms);
    findings_of_stored(order.into_iter().map(|i| {
        let o = &observations[i];
        StoredCheck {
            target: &o.target,
            vantage: &o.vantage,
            address: o.address,
            ts_unix_ms: o.ts_unix_ms,
            outcome: if o.up { Outcome::Up } else { Outcome::Down },
            reason: o.reason,
            error: o.error.as_deref(),
        }
    }))
}

#[derive(Default)]
struct StoredNames {
    host_ids: HashMap<String, u32>,
    /// (host, port, is a name)
    hosts: Vec<(String, u16, bool)>,
    vantage_ids: HashMap<String, u16>,
    vantages: Vec<String>,
}

impl StoredNames {
    fn host_id(&mut self, target: &str) -> u32 {
        if let Some(&id) = self.host_ids.get(target) {
            return id;
        }
        let (host, port) = split_target(target);
        let is_name = host.parse::<IpAddr>().is_err();
        let id = self.hosts.len() as u32;
        self.hosts.push((host, port, is_name));
        self.host_ids.insert(target.to_string(), id);
        id
    }

    fn vantage_id(&mut self, vantage: &str) -> u16 {
        if let Some(&id) = self.vantage_ids.get(vantage) {
            return id;
        }
        let id = self.vantages.len().min(u16::MAX as usize) as u16;
        self.vantages.push(vantage.to_string());
        self.vantage_ids.insert(vantage.to_string(), id);
        id
    }
}

impl Names for StoredNames {
    fn host(&self, host: u32) -> (String, u16) {
        let (h, p, _) = &self.hosts[host as usize];
        (h.clone(), *p)
    }
    fn vantage(&self, vantage: u16) -> String {
        self.vantages
            .get(vantage as usize)
            .cloned()
            .unwrap_or_default()
    }
}

/// `host:port`, `[v6]:port` or a URL → (host, port).
fn split_target(target: &str) -> (String, u16) {
    if let Some((scheme, rest)) = target.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let default = if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            80
        };
        return split_host_port(authority, default);
    }
    split_host_port(target, 0)
}

fn split_host_port(text: &str, default_port: u16) -> (String, u16) {
    if let Some((host, after)) = text.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return (host.to_string(), port.unwrap_or(default_port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host.to_string(), port),
            Err(_) => (text.to_string(), default_port),
        },
        _ => (text.to_string(), default_port),
    }
}

#[cfg(test)]
mod tests;

//! The read model of the status page: what it shows ([`Overview`], [`TargetSummary`],
//! [`History`] …) and the one trait a store implements to supply it ([`StatusSource`]).
//!
//! Every method is shaped so that a store answers it from its roll-ups plus at most the last
//! hour of raw rows, so no answer's cost grows with history (issue 13 item 3):
//! - per-target figures ([`TargetSummary`]): a current-status row per target (verdict, since,
//!   reason, last check) kept as results are written, and availability per window summed from
//!   roll-ups (1 h and 24 h from minute roll-ups, 7 d and 30 d from hour roll-ups, 365 d from day
//!   roll-ups);
//! - [`TargetVisuals`]: 24 hour roll-ups (the sparkline) and 90 day roll-ups (the bar);
//! - [`History`]: the tier the range asks for ([`Tier::for_span`]), or a coarser one where the
//!   finer tier's retention doesn't reach;
//! - [`StateChange`]s: a state-change log written when a target's verdict changes (small: one
//!   row per change, not per check);
//! - [`RawCheck`]s and [`Finding`]s: the last hour of raw rows only;
//! - [`ScanEvent`]s and [`BlockEvent`]s: the connection log's rows of a time window (indexed by
//!   time, a page at a time), and [`ConnectionCounts`] from its hourly roll-ups.
//!
//! Time is passed in (`at`: the page's "now", from a [`netvantage_core::clock::Clock`]), so a
//! test can render a year of history at a fixed instant.

pub use netvantage_core::check::{CheckKind, Outcome, Phases, Reason};
use serde::{Serialize, Serializer};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// UTC milliseconds since the Unix epoch (the unit of every record); JSON writes RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMs(pub i64);

impl UnixMs {
    pub const MINUTE: i64 = 60_000;
    pub const HOUR: i64 = 3_600_000;
    pub const DAY: i64 = 86_400_000;

    pub fn datetime(self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000).ok()
    }

    /// `2025-03-01T12:00:00Z` (milliseconds only when there are some).
    pub fn rfc3339(self) -> String {
        let Some(at) = self.datetime() else {
            return self.0.to_string();
        };
        let ms = self.0.rem_euclid(1000);
        let date = at.date();
        let base = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            date.year(),
            u8::from(date.month()),
            date.day(),
            at.hour(),
            at.minute(),
            at.second()
        );
        if ms == 0 {
            format!("{base}Z")
        } else {
            format!("{base}.{ms:03}Z")
        }
    }

    /// `2025-03-01 12:00 UTC`, for people.
    pub fn human(self) -> String {
        HumanTime(self).to_string()
    }

    /// The day (`2025-03-01`) this instant falls in, UTC.
    pub fn day(self) -> String {
        self.rfc3339().chars().take(10).collect()
    }
}

/// [`UnixMs::human`] written straight into a page (a chart writes one per bucket).
pub struct HumanTime(pub UnixMs);

impl std::fmt::Display for HumanTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(at) = self.0.datetime() else {
            return write!(f, "{}", self.0.0);
        };
        let date = at.date();
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            date.year(),
            u8::from(date.month()),
            date.day(),
            at.hour(),
            at.minute()
        )
    }
}

impl Serialize for UnixMs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.rfc3339())
    }
}

/// What the page says of a target, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No result yet.
    Unknown,
    Ok,
    /// Answering, but slowly or with some failures (HTTP: slow responses, warnings).
    Degraded,
    /// Alternating between success and failure.
    Flappy,
    /// Down from some vantage points only.
    Partial,
    Down,
}

impl Verdict {
    pub const ALL: [Verdict; 6] = [
        Verdict::Ok,
        Verdict::Degraded,
        Verdict::Flappy,
        Verdict::Partial,
        Verdict::Down,
        Verdict::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Unknown => "unknown",
            Verdict::Ok => "ok",
            Verdict::Degraded => "degraded",
            Verdict::Flappy => "flappy",
            Verdict::Partial => "partial",
            Verdict::Down => "down",
        }
    }

    /// How a person reads it.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Unknown => "no data",
            Verdict::Ok => "ok",
            Verdict::Degraded => "degraded",
            Verdict::Flappy => "flappy",
            Verdict::Partial => "partly down",
            Verdict::Down => "down",
        }
    }

    /// The label spelled out, for tooltips.
    pub fn description(self) -> &'static str {
        match self {
            Verdict::Unknown => "no result yet",
            Verdict::Ok => "every check answered",
            Verdict::Degraded => "answering, but slowly or with some failures",
            Verdict::Flappy => "alternating between up and down",
            Verdict::Partial => "down from some vantage points only",
            Verdict::Down => "no check answered",
        }
    }

    pub fn parse(text: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == text)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The windows availability is shown over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Window {
    pub const ALL: [Window; 5] = [
        Window::Hour,
        Window::Day,
        Window::Week,
        Window::Month,
        Window::Year,
    ];

    /// `1h`, `24h`, `7d`, `30d`, `365d`: in URLs, JSON keys and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Week => "7d",
            Window::Month => "30d",
            Window::Year => "365d",
        }
    }

    pub fn parse(text: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.as_str() == text)
    }

    pub fn millis(self) -> i64 {
        match self {
            Window::Hour => UnixMs::HOUR,
            Window::Day => UnixMs::DAY,
            Window::Week => 7 * UnixMs::DAY,
            Window::Month => 30 * UnixMs::DAY,
            Window::Year => 365 * UnixMs::DAY,
        }
    }
}

/// Availability (0.0–1.0) per window; `None` where the window holds no check.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Availability {
    #[serde(rename = "1h")]
    pub hour: Option<f64>,
    #[serde(rename = "24h")]
    pub day: Option<f64>,
    #[serde(rename = "7d")]
    pub week: Option<f64>,
    #[serde(rename = "30d")]
    pub month: Option<f64>,
    #[serde(rename = "365d")]
    pub year: Option<f64>,
}

impl Availability {
    pub fn get(&self, window: Window) -> Option<f64> {
        match window {
            Window::Hour => self.hour,
            Window::Day => self.day,
            Window::Week => self.week,
            Window::Month => self.month,
            Window::Year => self.year,
        }
    }
}

/// One target as every list shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetSummary {
    /// Stable and opaque; used in URLs (percent-encoded).
    pub id: String,
    /// What people call it: `db.internal:5432`, `https://shop.example/health`.
    pub name: String,
    /// The agent config's group (`""` when none).
    pub group: String,
    pub kind: CheckKind,
    /// The HTTP target's domain, for per-domain availability.
    pub domain: Option<String>,
    pub verdict: Verdict,
    /// Why, in a few words: `timeout`, `refused from 2 of 3 vantage points`, `HTTP 503`.
    pub reason: Option<String>,
    /// When the verdict began.
    pub since: Option<UnixMs>,
    pub last_check: Option<UnixMs>,
    pub availability: Availability,
    /// Verdict changes over the last 24 hours (how flappy).
    pub state_changes_24h: u32,
}

/// One point of a latency line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyPoint {
    pub at: UnixMs,
    /// Median latency in the point's bucket; `None` when nothing answered.
    pub p50_ms: Option<f64>,
}

/// One day of the 90-day bar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayBar {
    /// `2025-03-01` (UTC).
    pub day: String,
    pub checks: u64,
    pub up: u64,
    pub degraded: u64,
    pub down: u64,
    /// `None` when the day holds no check.
    pub availability: Option<f64>,
}

/// The pictures of a target in a list: a latency sparkline over the last 24 hours (one point
/// an hour) and 90 daily bars, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetVisuals {
    pub id: String,
    pub latency: Vec<LatencyPoint>,
    pub days: Vec<DayBar>,
}

/// Counts of targets by verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct VerdictCounts {
    pub ok: u64,
    pub degraded: u64,
    pub flappy: u64,
    pub partial: u64,
    pub down: u64,
    pub unknown: u64,
}

impl VerdictCounts {
    pub fn get(&self, verdict: Verdict) -> u64 {
        match verdict {
            Verdict::Ok => self.ok,
            Verdict::Degraded => self.degraded,
            Verdict::Flappy => self.flappy,
            Verdict::Partial => self.partial,
            Verdict::Down => self.down,
            Verdict::Unknown => self.unknown,
        }
    }

    pub fn add(&mut self, verdict: Verdict) {
        let slot = match verdict {
            Verdict::Ok => &mut self.ok,
            Verdict::Degraded => &mut self.degraded,
            Verdict::Flappy => &mut self.flappy,
            Verdict::Partial => &mut self.partial,
            Verdict::Down => &mut self.down,
            Verdict::Unknown => &mut self.unknown,
        };
        *slot += 1;
    }

    pub fn total(&self) -> u64 {
        Verdict::ALL.iter().map(|v| self.get(*v)).sum()
    }

    /// The overall state: the worst verdict any target has (`Unknown` when there are none).
    pub fn worst(&self) -> Verdict {
        [
            Verdict::Down,
            Verdict::Partial,
            Verdict::Flappy,
            Verdict::Degraded,
            Verdict::Ok,
        ]
        .into_iter()
        .find(|v| self.get(*v) > 0)
        .unwrap_or(Verdict::Unknown)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSummary {
    pub name: String,
    pub counts: VerdictCounts,
}

/// A vantage point (an agent) and what it sees.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VantagePoint {
    pub name: String,
    pub last_seen: Option<UnixMs>,
    pub counts: VerdictCounts,
}

/// The top of the overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    pub counts: VerdictCounts,
    pub groups: Vec<GroupSummary>,
    pub vantage_points: Vec<VantagePoint>,
}

/// One HTTP domain's availability over all its targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainAvailability {
    pub domain: String,
    pub targets: u64,
    pub counts: VerdictCounts,
    pub availability: Availability,
}

/// A target's verdict changed (an incident begins or ends).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateChange {
    pub at: UnixMs,
    pub target_id: String,
    pub target_name: String,
    pub from: Verdict,
    pub to: Verdict,
    pub reason: Option<String>,
    /// The vantage point whose view changed, when one did alone.
    pub vantage: Option<String>,
}

/// How one vantage point sees one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VantageStatus {
    pub vantage: String,
    pub verdict: Verdict,
    pub reason: Option<String>,
    pub last_check: Option<UnixMs>,
    pub availability: Availability,
    pub latency_p50_ms: Option<f64>,
}

/// A diagnosis the findings engine states (issue 12), with the figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `subnet_outage`, `periodic`, `dns`, `path_problem` …
    pub kind: String,
    /// A CIDR, a host, a name or `host:port`.
    pub scope: String,
    pub reason: String,
    pub from: UnixMs,
    pub to: UnixMs,
    pub affected: u64,
    pub total: u64,
    /// One sentence a person can act on.
    pub message: String,
}

/// Everything the target page shows but its history and raw checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetDetail {
    pub summary: TargetSummary,
    pub visuals: TargetVisuals,
    pub vantage_points: Vec<VantageStatus>,
    pub findings: Vec<Finding>,
}

/// Roll-up tiers (and raw rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Minute,
    Hour,
    Day,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Minute => "minute",
            Tier::Hour => "hour",
            Tier::Day => "day",
        }
    }

    pub fn parse(text: &str) -> Option<Tier> {
        match text {
            "minute" => Some(Tier::Minute),
            "hour" => Some(Tier::Hour),
            "day" => Some(Tier::Day),
            _ => None,
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            Tier::Minute => UnixMs::MINUTE,
            Tier::Hour => UnixMs::HOUR,
            Tier::Day => UnixMs::DAY,
        }
    }

    /// The finest tier that shows `span_ms` in at most [`MAX_HISTORY_POINTS`] buckets.
    pub fn for_span(span_ms: i64) -> Tier {
        [Tier::Minute, Tier::Hour]
            .into_iter()
            .find(|tier| span_ms / tier.millis() <= MAX_HISTORY_POINTS as i64)
            .unwrap_or(Tier::Day)
    }
}

/// A history answer stays under this many buckets (a chart a phone can draw).
pub const MAX_HISTORY_POINTS: usize = 1_500;

/// A half-open time range `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimeRange {
    pub from: UnixMs,
    pub to: UnixMs,
}

impl TimeRange {
    pub fn span_ms(&self) -> i64 {
        self.to.0 - self.from.0
    }
}

impl TimeRange {
    /// The starts of the `tier` buckets a history of this range shows, the first holding
    /// `from`, at most [`MAX_HISTORY_POINTS`] + 2 of them.
    pub fn bucket_starts(&self, tier: Tier) -> impl Iterator<Item = i64> + use<> {
        let step = tier.millis();
        let first = self.from.0 - self.from.0.rem_euclid(step);
        let to = self.to.0;
        (0..MAX_HISTORY_POINTS as i64 + 2)
            .map(move |i| first + i * step)
            .take_while(move |start| *start < to)
    }
}

/// One bucket of a target's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPoint {
    pub start: UnixMs,
    pub checks: u64,
    pub up: u64,
    pub degraded: u64,
    pub down: u64,
    pub availability: Option<f64>,
    pub latency_min_ms: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    pub target_id: String,
    pub range: TimeRange,
    /// The tier the points come from (coarser than asked where the finer one has expired).
    pub tier: Tier,
    pub points: Vec<HistoryPoint>,
}

/// One raw check from the last hour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawCheck {
    pub at: UnixMs,
    pub vantage: String,
    /// The address checked.
    pub address: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<Reason>,
    /// The error as the probe reported it.
    pub error: Option<String>,
    pub latency_ms: Option<f64>,
    pub status_code: Option<u16>,
    pub phases: Option<Phases>,
}

/// Which targets a list shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetQuery {
    pub group: Option<String>,
    pub kind: Option<CheckKind>,
    pub domain: Option<String>,
    /// Only these verdicts (empty: all).
    pub verdicts: Vec<Verdict>,
    /// A case-insensitive substring of the name.
    pub search: Option<String>,
    pub sort: TargetSort,
    pub page: PageRequest,
}

impl TargetQuery {
    /// Whether `target` passes the query's filters.
    pub fn matches(&self, target: &TargetSummary) -> bool {
        self.group.as_ref().is_none_or(|g| &target.group == g)
            && self.kind.is_none_or(|k| target.kind == k)
            && self
                .domain
                .as_ref()
                .is_none_or(|d| target.domain.as_ref() == Some(d))
            && (self.verdicts.is_empty() || self.verdicts.contains(&target.verdict))
            && self
                .search
                .as_ref()
                .is_none_or(|s| target.name.to_lowercase().contains(&s.to_lowercase()))
    }

    /// The matching targets in the query's order, one page of them: what every source
    /// answers `targets` with.
    pub fn answer<'a>(
        &self,
        targets: impl IntoIterator<Item = &'a TargetSummary>,
    ) -> Page<TargetSummary> {
        let mut matching: Vec<&TargetSummary> =
            targets.into_iter().filter(|t| self.matches(t)).collect();
        match self.sort {
            TargetSort::Group => {
                matching.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)))
            }
            TargetSort::Worst => {
                matching.sort_by(|a, b| b.verdict.cmp(&a.verdict).then(a.name.cmp(&b.name)))
            }
            TargetSort::Changes => matching.sort_by(|a, b| {
                b.state_changes_24h
                    .cmp(&a.state_changes_24h)
                    .then(a.name.cmp(&b.name))
            }),
        }
        Page::of(&matching, self.page).map(|t| (*t).clone())
    }
}

/// The order of a target list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetSort {
    /// By group, then name: the overview's grouping.
    #[default]
    Group,
    /// Worst verdict first, then name.
    Worst,
    /// Most state changes over 24 h first (the flappy list).
    Changes,
}

impl TargetSort {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetSort::Group => "group",
            TargetSort::Worst => "worst",
            TargetSort::Changes => "changes",
        }
    }

    pub fn parse(text: &str) -> Option<TargetSort> {
        [TargetSort::Group, TargetSort::Worst, TargetSort::Changes]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One page of a list: 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub per_page: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            page: 1,
            per_page: 50,
        }
    }
}

impl PageRequest {
    pub fn offset(&self) -> u64 {
        u64::from(self.page.saturating_sub(1)) * u64::from(self.per_page)
    }
}

/// One page of a list and where it sits in the whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

impl<T> Page<T> {
    /// The page `page` asks for of `items`.
    pub fn of(items: &[T], page: PageRequest) -> Page<T>
    where
        T: Clone,
    {
        let start = (page.offset() as usize).min(items.len());
        let end = (start + page.per_page as usize).min(items.len());
        Page {
            items: items[start..end].to_vec(),
            page: page.page,
            per_page: page.per_page,
            total: items.len() as u64,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            page: self.page,
            per_page: self.per_page,
            total: self.total,
        }
    }

    pub fn pages(&self) -> u64 {
        self.total.div_ceil(u64::from(self.per_page.max(1))).max(1)
    }
}

/// Which state changes a list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeQuery {
    pub target: Option<String>,
    pub range: TimeRange,
    pub page: PageRequest,
}

/// A port scan from the connection log (`conns`' scan rule fired).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanEvent {
    /// The record's id.
    pub id: String,
    pub at: UnixMs,
    /// The host whose `conns` saw it.
    pub host: String,
    /// The scanner's address.
    pub source: String,
    /// The addresses it tried.
    pub destinations: Vec<String>,
    /// The ports it tried, ascending.
    pub ports: Vec<u16>,
    /// How many of them refused (closed), when the event source could tell.
    pub closed_ports: Option<u32>,
}

/// A ban from the connection log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockEvent {
    pub id: String,
    pub at: UnixMs,
    pub host: String,
    /// The banned network: `192.0.2.9/32`, `2001:db8::/64`.
    pub target: String,
    /// When the ban ends (the same instant on every host that applies it).
    pub until: UnixMs,
    /// 1 for a first ban, then 2, 3, … for a repeat offender's longer ones.
    pub offenses: u32,
}

/// New connections the connection log counted, by direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConnectionCounts {
    pub inbound: u64,
    pub outbound: u64,
}

impl ConnectionCounts {
    pub fn total(&self) -> u64 {
        self.inbound + self.outbound
    }
}

/// Which scans or blocks a list shows: newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    pub range: TimeRange,
    /// One host's, or every host's.
    pub host: Option<String>,
    pub page: PageRequest,
}

/// The store could not answer (unreachable, failed query): 503 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Where the status page reads from: the store implements it (issue 13), tests use
/// [`crate::status::MemorySource`]. `at` is the page's "now"; windows end there.
pub trait StatusSource: Send + Sync + 'static {
    /// Counts by verdict, per group and per vantage point.
    fn overview(&self, at: UnixMs) -> impl Future<Output = Result<Overview, SourceError>> + Send;

    /// One page of targets, filtered and sorted as asked; `total` counts every match.
    fn targets(
        &self,
        query: &TargetQuery,
        at: UnixMs,
    ) -> impl Future<Output = Result<Page<TargetSummary>, SourceError>> + Send;

    /// Sparklines and 90-day bars of these targets (unknown ids are left out).
    fn visuals(
        &self,
        ids: &[String],
        at: UnixMs,
    ) -> impl Future<Output = Result<Vec<TargetVisuals>, SourceError>> + Send;

    /// One target; `None` when no target has that id.
    fn target(
        &self,
        id: &str,
        at: UnixMs,
    ) -> impl Future<Output = Result<Option<TargetDetail>, SourceError>> + Send;

    /// A target's history over `range` from `tier` (or coarser); `None`: unknown target.
    fn history(
        &self,
        id: &str,
        range: TimeRange,
        tier: Tier,
    ) -> impl Future<Output = Result<Option<History>, SourceError>> + Send;

    /// The latest raw checks of a target (newest first, at most `limit`, within the last hour
    /// before `at`); `None`: unknown target.
    fn recent_checks(
        &self,
        id: &str,
        limit: usize,
        at: UnixMs,
    ) -> impl Future<Output = Result<Option<Vec<RawCheck>>, SourceError>> + Send;

    /// Availability per HTTP domain, by name.
    fn domains(
        &self,
        at: UnixMs,
    ) -> impl Future<Output = Result<Vec<DomainAvailability>, SourceError>> + Send;

    /// State changes, newest first.
    fn state_changes(
        &self,
        query: &ChangeQuery,
    ) -> impl Future<Output = Result<Page<StateChange>, SourceError>> + Send;

    /// Findings over the last hour before `at`.
    fn findings(
        &self,
        at: UnixMs,
    ) -> impl Future<Output = Result<Vec<Finding>, SourceError>> + Send;

    /// Scans from the connection log, newest first; `total` counts the whole range.
    fn scans(
        &self,
        query: &EventQuery,
    ) -> impl Future<Output = Result<Page<ScanEvent>, SourceError>> + Send;

    /// Blocks from the connection log, newest first; `total` counts the whole range.
    fn blocks(
        &self,
        query: &EventQuery,
    ) -> impl Future<Output = Result<Page<BlockEvent>, SourceError>> + Send;

    /// New connections in `range` (a store may count whole hours: those that overlap it).
    fn connection_counts(
        &self,
        range: TimeRange,
    ) -> impl Future<Output = Result<ConnectionCounts, SourceError>> + Send;

    /// Whether the store is reachable (`/readyz`).
    fn ready(&self) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Runs `answer` (one request's reads of this source) and tells what its result was made
    /// from: `Some` when every read it made was of values the source keeps and can tell are
    /// still the ones it would answer ([`Provenance::is_current`]); the page cache then keeps
    /// the rendered answer exactly as long as that holds. `None` (the default: a source that
    /// keeps nothing, or a read it can't vouch for) renders every request anew.
    fn tracked<'a, T: Send + 'a>(
        &'a self,
        answer: impl Future<Output = T> + Send + 'a,
    ) -> impl Future<Output = (T, Option<Arc<dyn Provenance>>)> + Send + 'a {
        async move { (answer.await, None) }
    }
}

/// What an answer was read from, as its [`StatusSource`] tells (see [`StatusSource::tracked`]).
pub trait Provenance: Send + Sync {
    /// Whether a request at page time `at` would read exactly the same values now, without
    /// starting any refresh: a value replaced, dropped, or due for a refresh nobody has
    /// started is `false`, so the next request reads (and refreshes) as if nothing were kept.
    fn is_current(&self, at: UnixMs) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(UnixMs(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            UnixMs(1_740_830_400_123).rfc3339(),
            "2025-03-01T12:00:00.123Z"
        );
        assert_eq!(UnixMs(1_740_830_400_000).human(), "2025-03-01 12:00 UTC");
        assert_eq!(UnixMs(1_740_830_400_000).day(), "2025-03-01");
    }

    #[test]
    fn history_tiers_keep_charts_under_the_point_cap() {
        assert_eq!(Tier::for_span(UnixMs::HOUR), Tier::Minute);
        assert_eq!(Tier::for_span(24 * UnixMs::HOUR), Tier::Minute);
        assert_eq!(Tier::for_span(2 * UnixMs::DAY), Tier::Hour);
        assert_eq!(Tier::for_span(30 * UnixMs::DAY), Tier::Hour);
        assert_eq!(Tier::for_span(90 * UnixMs::DAY), Tier::Day);
        assert_eq!(Tier::for_span(3650 * UnixMs::DAY), Tier::Day);
    }

    #[test]
    fn the_overall_state_is_the_worst_verdict() {
        let mut counts = VerdictCounts::default();
        assert_eq!(counts.worst(), Verdict::Unknown);
        counts.add(Verdict::Ok);
        counts.add(Verdict::Flappy);
        assert_eq!(counts.worst(), Verdict::Flappy);
        counts.add(Verdict::Partial);
        assert_eq!(counts.worst(), Verdict::Partial);
        counts.add(Verdict::Unknown);
        assert_eq!(counts.total(), 4);
    }
}

//! The status page over the real store: a [`StatusSource`] that answers from the roll-ups plus
//! at most the last hour of raw rows (issue 13), so no answer's cost grows with the history.
//!
//! - Per-target figures come from one [`Snapshot`] as of the page's "now": the `series` table
//!   (kind, domain, latest check), the verdicts of `netvantage_core::vantage::judge` over the
//!   last hour's observations (as `report` judges), availability per window from
//!   [`netvantage_store::totals`] (whole days, hours and minutes of roll-ups), and state changes
//!   over 24 hours from the minute roll-ups. A snapshot is kept a few seconds: a page and the
//!   API calls it makes see the same figures, and a burst of requests costs one computation.
//! - Visuals, history and raw checks are read per target, from the tier that fits.
//! - Findings come from `netvantage_core::findings` over the last hour's observations, as
//!   `report --explain` does.
//! - The connection log (scans, blocks, new connections) is read per request ([`conns`]): a
//!   window of its indexed tables and of its hourly roll-ups.
//!
//! It lives in the CLI, the one crate that knows both the server and the store drivers.
//! Decisions where the issue is silent: a target's group is its HTTP domain (`tcp` for TCP
//! targets: the agent config's groups are not stored with the results); a state change is a
//! change between minutes that were all up, all down or mixed (flappy); availability counts
//! degraded checks as available (they answered).

mod conns;

use netvantage_core::findings::findings_of_observations;
use netvantage_core::vantage::{FleetVerdict, TargetReport, judge};
use netvantage_core::verdict::{FlapRule, Verdict as HostVerdict, VerdictRules};
use netvantage_core::{CheckKind, Outcome};
use netvantage_server::status::{
    Availability, BlockEvent, ChangeQuery, ConnectionCounts, DayBar, DomainAvailability,
    EventQuery, Finding, GroupSummary, History, HistoryPoint, LatencyPoint, Overview, Page,
    RawCheck, ScanEvent, SourceError, StateChange, StatusSource, TargetDetail, TargetQuery,
    TargetSummary, TargetVisuals, Tier, TimeRange, UnixMs, VantagePoint, VantageStatus, Verdict,
    VerdictCounts, Window,
};
use netvantage_store::rollup::Tier as StoreTier;
use netvantage_store::{
    AnyStore, Location, ResultsQuery, Retention, Rollup, RollupQuery, RollupRow, Series, Store,
    StoreError, totals,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a snapshot answers before it is computed again.
const SNAPSHOT_TTL: Duration = Duration::from_secs(5);

/// How old a snapshot may be when it answers while the next one is being computed.
const STALE_LIMIT: Duration = Duration::from_secs(15);

/// At most this many targets' pictures are cached (about 5 KB each).
const MAX_CACHED_VISUALS: usize = 20_000;

/// Whether something made at `made` for the page time `when` still answers for `at`: made
/// within the last [`SNAPSHOT_TTL`], for a time within that much of `at`.
fn fresh(when: UnixMs, made: Instant, at: UnixMs) -> bool {
    (when.0 - at.0).abs() < SNAPSHOT_TTL.as_millis() as i64 && made.elapsed() < SNAPSHOT_TTL
}

/// Something computed for the page time (first) at an instant (second).
type Cached<T> = (UnixMs, Instant, Arc<T>);

/// The status page's source: a read-only store and the snapshot of the moment.
pub struct StoreStatus {
    location: Location,
    store: tokio::sync::RwLock<Arc<AnyStore>>,
    snapshot: Mutex<Option<(UnixMs, Instant, Arc<Snapshot>)>>,
    /// One computation at a time: 32 requests arriving as the snapshot expires wait for one
    /// computation instead of each running every query on the store's one reader.
    computing: tokio::sync::Mutex<()>,
    /// Each target's pictures (sparkline, 90-day bars), kept as long as a snapshot: an
    /// overview page asks for 50 of them, each two roll-up queries.
    visuals: Mutex<HashMap<String, Cached<TargetVisuals>>>,
    /// What retention the store is kept under: history asks a coarser tier where a finer one
    /// has expired.
    retention: Retention,
    rules: VerdictRules,
}

fn source_error(e: StoreError) -> SourceError {
    SourceError(e.to_string())
}

/// A target's stable, opaque id for URLs: 16 hex digits of FNV-1a over its name.
pub fn target_id(target: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in target.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Everything per target as of one instant.
struct Snapshot {
    targets: Vec<TargetSummary>,
    /// Per target id: its name, series and per-vantage views.
    details: BTreeMap<String, TargetFacts>,
    vantage_points: Vec<VantagePoint>,
    findings: Vec<Finding>,
    /// Per domain: checks and answered per window, summed over its targets.
    domain_totals: BTreeMap<String, [Rollup; 5]>,
}

struct TargetFacts {
    name: String,
    series: Vec<Series>,
    report: Option<TargetReport>,
    /// Per vantage: availability per window.
    vantage_availability: BTreeMap<String, Availability>,
    vantage_p50: BTreeMap<String, Option<f64>>,
}

fn availability_of(windows: &[Rollup; 5]) -> Availability {
    Availability {
        hour: windows[0].availability(),
        day: windows[1].availability(),
        week: windows[2].availability(),
        month: windows[3].availability(),
        year: windows[4].availability(),
    }
}

fn reason_words(report: &TargetReport, verdict: Verdict) -> Option<String> {
    let failing: Vec<_> = report
        .vantages
        .iter()
        .filter(|v| v.failed > 0 && (verdict != Verdict::Partial || v.verdict == HostVerdict::Down))
        .collect();
    let mut reasons: BTreeMap<netvantage_core::Reason, u32> = BTreeMap::new();
    for view in &failing {
        for (reason, n) in &view.reasons {
            *reasons.entry(*reason).or_default() += n;
        }
    }
    let top = reasons.into_iter().max_by_key(|(_, n)| *n)?.0;
    Some(match verdict {
        Verdict::Partial => format!(
            "{top} from {} of {} vantage points",
            failing.len(),
            report.vantages.len()
        ),
        _ => top.as_str().to_string(),
    })
}

fn verdict_of(report: Option<&TargetReport>, series: &[Series], at: UnixMs) -> Verdict {
    let Some(report) = report else {
        return Verdict::Unknown;
    };
    match report.verdict {
        FleetVerdict::DownEverywhere => Verdict::Down,
        FleetVerdict::DownFromSome => Verdict::Partial,
        FleetVerdict::Flappy => Verdict::Flappy,
        FleetVerdict::Ok => {
            let degraded = series.iter().any(|s| {
                s.last_outcome == Outcome::Degraded && s.last_unix_ms > at.0 - UnixMs::HOUR
            });
            if degraded {
                Verdict::Degraded
            } else {
                Verdict::Ok
            }
        }
    }
}

/// A minute's state for state changes: every check up, every check down, or both.
fn minute_verdict(r: &Rollup) -> Verdict {
    match (r.answered(), r.down) {
        (_, 0) => Verdict::Ok,
        (0, _) => Verdict::Down,
        _ => Verdict::Flappy,
    }
}

/// Changes between consecutive minutes of one target (its vantage points merged), oldest
/// first.
fn changes_of(name: &str, rows: &[RollupRow]) -> Vec<StateChange> {
    let mut minutes: BTreeMap<i64, Rollup> = BTreeMap::new();
    for row in rows {
        minutes
            .entry(row.start_unix_ms)
            .or_default()
            .merge(&row.rollup);
    }
    let mut changes = Vec::new();
    let mut previous: Option<Verdict> = None;
    for (start, rollup) in minutes {
        let now = minute_verdict(&rollup);
        if let Some(before) = previous
            && before != now
        {
            let top = netvantage_core::Reason::ALL
                .into_iter()
                .max_by_key(|r| rollup.failures_of(*r))
                .filter(|r| rollup.failures_of(*r) > 0);
            changes.push(StateChange {
                at: UnixMs(start),
                target_id: target_id(name),
                target_name: name.to_string(),
                from: before,
                to: now,
                reason: top.map(|r| r.as_str().to_string()),
                vantage: None,
            });
        }
        previous = Some(now);
    }
    changes
}

fn point_of(start: i64, r: &Rollup) -> HistoryPoint {
    HistoryPoint {
        start: UnixMs(start),
        checks: r.checks,
        up: r.up,
        degraded: r.degraded,
        down: r.down,
        availability: r.availability(),
        latency_min_ms: r.latency_min_ms,
        latency_p50_ms: r.quantile_ms(0.5),
        latency_p95_ms: r.quantile_ms(0.95),
        latency_p99_ms: r.quantile_ms(0.99),
        latency_max_ms: r.latency_max_ms,
    }
}

fn store_tier(tier: Tier) -> StoreTier {
    match tier {
        Tier::Minute => StoreTier::Minute,
        Tier::Hour => StoreTier::Hour,
        Tier::Day => StoreTier::Day,
    }
}

/// Buckets merged over vantage points, by start.
fn merged(rows: Vec<RollupRow>) -> BTreeMap<i64, Rollup> {
    let mut buckets: BTreeMap<i64, Rollup> = BTreeMap::new();
    for row in rows {
        buckets
            .entry(row.start_unix_ms)
            .or_default()
            .merge(&row.rollup);
    }
    buckets
}

impl StoreStatus {
    /// Opens the store read-only; a missing store, a foreign file or an unreachable database
    /// is the error.
    pub async fn open(location: Location, retention: Retention) -> Result<StoreStatus, StoreError> {
        let store = AnyStore::open_reader(&location).await?;
        Ok(StoreStatus {
            location,
            store: tokio::sync::RwLock::new(Arc::new(store)),
            snapshot: Mutex::new(None),
            computing: tokio::sync::Mutex::new(()),
            visuals: Mutex::new(HashMap::new()),
            retention,
            rules: VerdictRules {
                down_after: 5,
                flap: FlapRule::Window(None),
            },
        })
    }

    /// The store, reconnected when a PostgreSQL connection was lost.
    async fn store(&self) -> Result<Arc<AnyStore>, SourceError> {
        let current = self.store.read().await.clone();
        let closed = matches!(&*current, AnyStore::Postgres(pg) if pg.is_closed());
        if !closed {
            return Ok(current);
        }
        let mut slot = self.store.write().await;
        if matches!(&**slot, AnyStore::Postgres(pg) if pg.is_closed()) {
            let fresh = AnyStore::open_reader(&self.location)
                .await
                .map_err(source_error)?;
            *slot = Arc::new(fresh);
        }
        Ok(slot.clone())
    }

    fn window(at: UnixMs, window: Window) -> (i64, i64) {
        (at.0 - window.millis(), at.0)
    }

    /// The target an id names. Ids don't change with time, so any snapshot answers; without
    /// one (or for a target new since), the series table does.
    async fn name_of(&self, id: &str) -> Result<Option<String>, SourceError> {
        let cached = self.snapshot.lock().ok().and_then(|s| s.clone());
        if let Some((_, _, snapshot)) = cached
            && let Some(facts) = snapshot.details.get(id)
        {
            return Ok(Some(facts.name.clone()));
        }
        let series = self.store().await?.series().await.map_err(source_error)?;
        Ok(series
            .into_iter()
            .map(|s| s.target)
            .find(|target| target_id(target) == id))
    }

    /// The snapshot made for a time close to `at` within the last [`SNAPSHOT_TTL`], if any.
    fn fresh_snapshot(&self, at: UnixMs) -> Option<Arc<Snapshot>> {
        let (when, made, snapshot) = self.snapshot.lock().ok().and_then(|s| s.clone())?;
        fresh(when, made, at).then_some(snapshot)
    }

    /// The previous snapshot, when it was made for a time within [`STALE_LIMIT`] of `at` and
    /// no longer ago than that.
    fn recent_snapshot(&self, at: UnixMs) -> Option<Arc<Snapshot>> {
        let (when, made, snapshot) = self.snapshot.lock().ok().and_then(|s| s.clone())?;
        ((when.0 - at.0).abs() < STALE_LIMIT.as_millis() as i64 && made.elapsed() < STALE_LIMIT)
            .then_some(snapshot)
    }

    async fn snapshot(&self, at: UnixMs) -> Result<Arc<Snapshot>, SourceError> {
        if let Some(snapshot) = self.fresh_snapshot(at) {
            return Ok(snapshot);
        }
        let _one_at_a_time = match self.computing.try_lock() {
            Ok(guard) => guard,
            Err(_busy) => {
                // Another request is computing: answer from the previous snapshot while it is
                // at most a few seconds older (stale-while-revalidate), so no request waits
                // for the computation but the first.
                if let Some(snapshot) = self.recent_snapshot(at) {
                    return Ok(snapshot);
                }
                self.computing.lock().await
            }
        };
        // Another request may have computed it while this one waited.
        if let Some(snapshot) = self.fresh_snapshot(at) {
            return Ok(snapshot);
        }
        let snapshot = Arc::new(self.compute(at).await?);
        if let Ok(mut slot) = self.snapshot.lock() {
            *slot = Some((at, Instant::now(), snapshot.clone()));
        }
        Ok(snapshot)
    }

    async fn compute(&self, at: UnixMs) -> Result<Snapshot, SourceError> {
        let store = self.store().await?;
        let series = store.series().await.map_err(source_error)?;
        let last_hour = netvantage_store::TimeRange {
            from_unix_ms: at.0 - UnixMs::HOUR,
            until_unix_ms: at.0 + 1,
        };
        let observations = store.observations(last_hour).await.map_err(source_error)?;
        let findings = findings_of_observations(&observations)
            .into_iter()
            .map(|f| Finding {
                kind: f.kind.as_str().to_string(),
                scope: f.scope.clone(),
                reason: f
                    .reason
                    .map_or_else(String::new, |r| r.as_str().to_string()),
                from: UnixMs(f.from_unix_ms),
                to: UnixMs(f.to_unix_ms),
                affected: f.affected,
                total: f.total,
                message: f.sentence.clone(),
            })
            .collect();
        let reports: BTreeMap<String, TargetReport> = judge(observations, &self.rules)
            .into_iter()
            .map(|r| (r.target.clone(), r))
            .collect();
        let mut windows: Vec<BTreeMap<(String, String), Rollup>> = Vec::new();
        for window in Window::ALL {
            let (from, until) = Self::window(at, window);
            windows.push(
                totals(&*store, from, until, None)
                    .await
                    .map_err(source_error)?,
            );
        }
        let day = netvantage_store::TimeRange {
            from_unix_ms: at.0 - UnixMs::DAY,
            until_unix_ms: at.0,
        };
        let minutes = store
            .rollups(&RollupQuery {
                tier: StoreTier::Minute,
                range: day,
                target: None,
                summed: false,
            })
            .await
            .map_err(source_error)?;
        let mut minutes_by_target: BTreeMap<String, Vec<RollupRow>> = BTreeMap::new();
        for row in minutes {
            minutes_by_target
                .entry(row.target.clone())
                .or_default()
                .push(row);
        }
        let mut by_target: BTreeMap<String, Vec<Series>> = BTreeMap::new();
        for s in series {
            by_target.entry(s.target.clone()).or_default().push(s);
        }
        let mut targets = Vec::new();
        let mut details = BTreeMap::new();
        let mut domain_totals: BTreeMap<String, [Rollup; 5]> = BTreeMap::new();
        let mut vantages: BTreeMap<String, VantagePoint> = BTreeMap::new();
        for (name, series) in by_target {
            let report = reports.get(&name).cloned();
            let verdict = verdict_of(report.as_ref(), &series, at);
            let mut target_windows: [Rollup; 5] = Default::default();
            let mut vantage_availability = BTreeMap::new();
            for s in &series {
                let key = (s.target.clone(), s.vantage.clone());
                let mut per_vantage: [Rollup; 5] = Default::default();
                for (w, totals) in windows.iter().enumerate() {
                    if let Some(r) = totals.get(&key) {
                        target_windows[w].merge(r);
                        per_vantage[w].merge(r);
                    }
                }
                vantage_availability.insert(s.vantage.clone(), availability_of(&per_vantage));
                let view = report
                    .as_ref()
                    .and_then(|r| r.vantages.iter().find(|v| v.vantage == s.vantage));
                let entry = vantages
                    .entry(s.vantage.clone())
                    .or_insert_with(|| VantagePoint {
                        name: s.vantage.clone(),
                        last_seen: None,
                        counts: VerdictCounts::default(),
                    });
                entry.last_seen = entry.last_seen.max(Some(UnixMs(s.last_unix_ms)));
                entry.counts.add(match view.map(|v| v.verdict) {
                    None => Verdict::Unknown,
                    Some(HostVerdict::Ok) => Verdict::Ok,
                    Some(HostVerdict::Flappy) => Verdict::Flappy,
                    Some(HostVerdict::Down) => Verdict::Down,
                });
            }
            let vantage_p50 = series
                .iter()
                .map(|s| {
                    let key = (s.target.clone(), s.vantage.clone());
                    (
                        s.vantage.clone(),
                        windows[0].get(&key).and_then(|r| r.quantile_ms(0.5)),
                    )
                })
                .collect();
            let domain = series.iter().find_map(|s| s.domain.clone());
            let kind = series.first().map_or(CheckKind::Tcp, |s| s.kind);
            if let Some(domain) = &domain {
                let sums = domain_totals.entry(domain.clone()).or_default();
                for (sum, r) in sums.iter_mut().zip(&target_windows) {
                    sum.merge(r);
                }
            }
            let changes = changes_of(&name, minutes_by_target.get(&name).map_or(&[], |v| v));
            let id = target_id(&name);
            targets.push(TargetSummary {
                id: id.clone(),
                name: name.clone(),
                group: domain.clone().unwrap_or_else(|| kind.as_str().to_string()),
                kind,
                domain,
                verdict,
                reason: report.as_ref().and_then(|r| match verdict {
                    Verdict::Down | Verdict::Partial | Verdict::Flappy => reason_words(r, verdict),
                    _ => None,
                }),
                since: changes.last().map(|c| c.at),
                last_check: series.iter().map(|s| UnixMs(s.last_unix_ms)).max(),
                availability: availability_of(&target_windows),
                state_changes_24h: changes.len() as u32,
            });
            details.insert(
                id,
                TargetFacts {
                    name,
                    series,
                    report,
                    vantage_availability,
                    vantage_p50,
                },
            );
        }
        Ok(Snapshot {
            targets,
            details,
            vantage_points: vantages.into_values().collect(),
            findings,
            domain_totals,
        })
    }

    /// A target's pictures, from the cache while they are fresh.
    async fn pictures(
        &self,
        name: &str,
        id: &str,
        at: UnixMs,
    ) -> Result<TargetVisuals, SourceError> {
        let cached = self.visuals.lock().ok().and_then(|cache| {
            let (when, made, pictures) = cache.get(id)?;
            fresh(*when, *made, at).then(|| pictures.clone())
        });
        if let Some(pictures) = cached {
            return Ok((*pictures).clone());
        }
        let pictures = self.visuals_of(name, id, at).await?;
        if let Ok(mut cache) = self.visuals.lock() {
            // Bounded: a cache as large as the fleet is dropped whole and refilled.
            if cache.len() >= MAX_CACHED_VISUALS {
                cache.clear();
            }
            cache.insert(
                id.to_string(),
                (at, Instant::now(), Arc::new(pictures.clone())),
            );
        }
        Ok(pictures)
    }

    async fn visuals_of(
        &self,
        name: &str,
        id: &str,
        at: UnixMs,
    ) -> Result<TargetVisuals, SourceError> {
        let store = self.store().await?;
        let read = |tier: StoreTier, from: i64, until: i64| RollupQuery {
            tier,
            range: netvantage_store::TimeRange {
                from_unix_ms: from,
                until_unix_ms: until,
            },
            target: Some(name.to_string()),
            summed: false,
        };
        let this_hour = StoreTier::Hour.bucket_start(at.0);
        let hours = store
            .rollups(&read(
                StoreTier::Hour,
                this_hour - 23 * UnixMs::HOUR,
                this_hour + 1,
            ))
            .await
            .map_err(source_error)?;
        let hours = merged(hours);
        let latency = (0..24)
            .map(|i| {
                let start = this_hour - (23 - i) * UnixMs::HOUR;
                LatencyPoint {
                    at: UnixMs(start),
                    p50_ms: hours.get(&start).and_then(|r| r.quantile_ms(0.5)),
                }
            })
            .collect();
        let today = StoreTier::Day.bucket_start(at.0);
        let days = store
            .rollups(&read(StoreTier::Day, today - 89 * UnixMs::DAY, today + 1))
            .await
            .map_err(source_error)?;
        let days = merged(days);
        let days = (0..90)
            .map(|i| {
                let start = today - (89 - i) * UnixMs::DAY;
                let r = days.get(&start).cloned().unwrap_or_default();
                DayBar {
                    day: UnixMs(start).day(),
                    checks: r.checks,
                    up: r.up,
                    degraded: r.degraded,
                    down: r.down,
                    availability: r.availability(),
                }
            })
            .collect();
        Ok(TargetVisuals {
            id: id.to_string(),
            latency,
            days,
        })
    }

    /// The finest tier at or above `asked` whose retention still reaches `from`.
    fn tier_reaching(&self, asked: Tier, from: i64, at: i64) -> Tier {
        [Tier::Minute, Tier::Hour, Tier::Day]
            .into_iter()
            .filter(|t| t.millis() >= asked.millis())
            .find(|t| {
                self.retention
                    .of(store_tier(*t))
                    .is_none_or(|keep| from >= at - keep)
            })
            .unwrap_or(Tier::Day)
    }

    async fn changes_between(
        &self,
        target: Option<&str>,
        from: i64,
        until: i64,
    ) -> Result<Vec<StateChange>, SourceError> {
        let store = self.store().await?;
        // Minutes as far back as the minute tier keeps; the state of a minute is what changes.
        let keep = self.retention.minute_ms.unwrap_or(i64::MAX / 2);
        let from = from.max(until.saturating_sub(keep));
        let rows = store
            .rollups(&RollupQuery {
                tier: StoreTier::Minute,
                range: netvantage_store::TimeRange {
                    from_unix_ms: from,
                    until_unix_ms: until,
                },
                target: target.map(str::to_string),
                summed: false,
            })
            .await
            .map_err(source_error)?;
        let mut by_target: BTreeMap<String, Vec<RollupRow>> = BTreeMap::new();
        for row in rows {
            by_target.entry(row.target.clone()).or_default().push(row);
        }
        let mut changes: Vec<StateChange> = by_target
            .iter()
            .flat_map(|(name, rows)| changes_of(name, rows))
            .collect();
        changes.sort_by(|a, b| b.at.cmp(&a.at).then(a.target_name.cmp(&b.target_name)));
        Ok(changes)
    }
}

impl StatusSource for StoreStatus {
    async fn overview(&self, at: UnixMs) -> Result<Overview, SourceError> {
        let snapshot = self.snapshot(at).await?;
        let mut counts = VerdictCounts::default();
        let mut groups: BTreeMap<String, VerdictCounts> = BTreeMap::new();
        for t in &snapshot.targets {
            counts.add(t.verdict);
            groups.entry(t.group.clone()).or_default().add(t.verdict);
        }
        Ok(Overview {
            counts,
            groups: groups
                .into_iter()
                .map(|(name, counts)| GroupSummary { name, counts })
                .collect(),
            vantage_points: snapshot.vantage_points.clone(),
        })
    }

    async fn targets(
        &self,
        query: &TargetQuery,
        at: UnixMs,
    ) -> Result<Page<TargetSummary>, SourceError> {
        let snapshot = self.snapshot(at).await?;
        Ok(query.answer(&snapshot.targets))
    }

    async fn visuals(&self, ids: &[String], at: UnixMs) -> Result<Vec<TargetVisuals>, SourceError> {
        let snapshot = self.snapshot(at).await?;
        let mut visuals = Vec::new();
        for id in ids {
            if let Some(facts) = snapshot.details.get(id) {
                visuals.push(self.pictures(&facts.name, id, at).await?);
            }
        }
        Ok(visuals)
    }

    async fn target(&self, id: &str, at: UnixMs) -> Result<Option<TargetDetail>, SourceError> {
        let snapshot = self.snapshot(at).await?;
        let (Some(facts), Some(summary)) = (
            snapshot.details.get(id),
            snapshot.targets.iter().find(|t| t.id == id),
        ) else {
            return Ok(None);
        };
        let vantage_points = facts
            .series
            .iter()
            .map(|s| {
                let view = facts
                    .report
                    .as_ref()
                    .and_then(|r| r.vantages.iter().find(|v| v.vantage == s.vantage));
                VantageStatus {
                    vantage: s.vantage.clone(),
                    verdict: match view.map(|v| v.verdict) {
                        None => Verdict::Unknown,
                        Some(HostVerdict::Ok) if s.last_outcome == Outcome::Degraded => {
                            Verdict::Degraded
                        }
                        Some(HostVerdict::Ok) => Verdict::Ok,
                        Some(HostVerdict::Flappy) => Verdict::Flappy,
                        Some(HostVerdict::Down) => Verdict::Down,
                    },
                    reason: s.last_reason.map(|r| r.as_str().to_string()),
                    last_check: Some(UnixMs(s.last_unix_ms)),
                    availability: facts
                        .vantage_availability
                        .get(&s.vantage)
                        .copied()
                        .unwrap_or_default(),
                    latency_p50_ms: facts.vantage_p50.get(&s.vantage).copied().flatten(),
                }
            })
            .collect();
        let findings = snapshot
            .findings
            .iter()
            .filter(|f| f.scope == facts.name || facts.name.starts_with(&format!("{}:", f.scope)))
            .cloned()
            .collect();
        Ok(Some(TargetDetail {
            summary: summary.clone(),
            visuals: self.pictures(&facts.name, id, at).await?,
            vantage_points,
            findings,
        }))
    }

    async fn history(
        &self,
        id: &str,
        range: TimeRange,
        tier: Tier,
    ) -> Result<Option<History>, SourceError> {
        let Some(name) = self.name_of(id).await? else {
            return Ok(None);
        };
        let tier = self.tier_reaching(tier, range.from.0, range.to.0);
        let store = self.store().await?;
        let step = tier.millis();
        let from = range.from.0 - range.from.0.rem_euclid(step);
        let rows = store
            .rollups(&RollupQuery {
                tier: store_tier(tier),
                range: netvantage_store::TimeRange {
                    from_unix_ms: from,
                    until_unix_ms: range.to.0,
                },
                target: Some(name),
                summed: false,
            })
            .await
            .map_err(source_error)?;
        let buckets = merged(rows);
        let points = range
            .bucket_starts(tier)
            .map(|start| point_of(start, &buckets.get(&start).cloned().unwrap_or_default()))
            .collect();
        Ok(Some(History {
            target_id: id.to_string(),
            range,
            tier,
            points,
        }))
    }

    async fn recent_checks(
        &self,
        id: &str,
        limit: usize,
        at: UnixMs,
    ) -> Result<Option<Vec<RawCheck>>, SourceError> {
        let snapshot = self.snapshot(at).await?;
        let Some(facts) = snapshot.details.get(id) else {
            return Ok(None);
        };
        let store = self.store().await?;
        let range = netvantage_store::TimeRange {
            from_unix_ms: at.0 - UnixMs::HOUR,
            until_unix_ms: at.0 + 1,
        };
        let mut query = ResultsQuery::new(facts.name.clone(), range, ResultsQuery::MAX_LIMIT);
        let mut records = Vec::new();
        // An hour of one target is a few pages at most; newest kept.
        for _ in 0..100 {
            let page = store.results(&query).await.map_err(source_error)?;
            records.extend(page.records);
            if records.len() > limit {
                records.drain(..records.len() - limit);
            }
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        records.reverse();
        Ok(Some(
            records
                .into_iter()
                .map(|r| RawCheck {
                    at: UnixMs(r.check.ts_unix_ms),
                    vantage: r.vantage,
                    address: r.check.address.map(|a| a.to_string()),
                    outcome: r.check.outcome,
                    reason: r.check.reason,
                    error: r.check.error,
                    latency_ms: Some(r.check.latency_ms),
                    status_code: r.check.status,
                    phases: r.check.phases,
                })
                .collect(),
        ))
    }

    async fn domains(&self, at: UnixMs) -> Result<Vec<DomainAvailability>, SourceError> {
        let snapshot = self.snapshot(at).await?;
        Ok(snapshot
            .domain_totals
            .iter()
            .map(|(domain, windows)| {
                let mut counts = VerdictCounts::default();
                let mut targets = 0;
                for t in snapshot
                    .targets
                    .iter()
                    .filter(|t| t.domain.as_ref() == Some(domain))
                {
                    counts.add(t.verdict);
                    targets += 1;
                }
                DomainAvailability {
                    domain: domain.clone(),
                    targets,
                    counts,
                    availability: availability_of(windows),
                }
            })
            .collect())
    }

    async fn state_changes(&self, query: &ChangeQuery) -> Result<Page<StateChange>, SourceError> {
        let target = match &query.target {
            Some(id) => match self.name_of(id).await? {
                Some(name) => Some(name),
                None => return Ok(Page::of(&[], query.page)),
            },
            None => None,
        };
        let changes = self
            .changes_between(target.as_deref(), query.range.from.0, query.range.to.0)
            .await?;
        Ok(Page::of(&changes, query.page))
    }

    async fn findings(&self, at: UnixMs) -> Result<Vec<Finding>, SourceError> {
        Ok(self.snapshot(at).await?.findings.clone())
    }

    async fn scans(&self, query: &EventQuery) -> Result<Page<ScanEvent>, SourceError> {
        self.scan_page(query).await
    }

    async fn blocks(&self, query: &EventQuery) -> Result<Page<BlockEvent>, SourceError> {
        self.block_page(query).await
    }

    async fn connection_counts(&self, range: TimeRange) -> Result<ConnectionCounts, SourceError> {
        self.hourly_connection_counts(range).await
    }

    async fn ready(&self) -> Result<(), SourceError> {
        if let Location::Sqlite(path) = &self.location
            && !path.exists()
        {
            return Err(SourceError(format!(
                "{}: the store is gone",
                path.display()
            )));
        }
        let store = self.store().await?;
        let nothing = netvantage_store::TimeRange {
            from_unix_ms: 0,
            until_unix_ms: 0,
        };
        store.observations(nothing).await.map_err(source_error)?;
        Ok(())
    }
}

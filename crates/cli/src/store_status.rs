//! The status page over the real store: a [`StatusSource`] that answers from the roll-ups plus
//! at most the last hour of raw rows (issue 13), so no answer's cost grows with the history.
//!
//! - Per-target figures come from one [`Snapshot`] as of the page's "now": the `series` table
//!   (kind, domain, latest check), the verdicts of `netvantage_core::vantage::judge` over the
//!   last hour's observations (as `report` judges), availability per window from
//!   [`netvantage_store::totals`] (whole days, hours and minutes of roll-ups), and state changes
//!   over 24 hours from the hour roll-ups (the target page reads its own at minute resolution).
//! - Visuals, history, state changes and raw checks are read per target, from the tier that
//!   fits, so a page's cost is bounded by its page size, not by the fleet.
//! - Findings come from `netvantage_core::findings` over the last hour's observations, as
//!   `report --explain` does.
//! - The connection log (scans, blocks, new connections) is read per request ([`conns`]): a
//!   window of its indexed tables and of its hourly roll-ups.
//!
//! Every answer is kept in a [`Memo`]: fresh for [`FRESH`], then served stale (up to
//! [`STALE_LIMIT`]) while one background task computes the next — so under load no request
//! waits for the store but the very first of each key, and 32 requests never compute one thing
//! twice. The reads go to a small pool of read-only connections ([`READERS`]); SQLite's, which
//! block, run on tokio's blocking threads so a long snapshot never stalls the page workers.
//!
//! It lives in the CLI, the one crate that knows both the server and the store drivers.
//! Decisions where the issue is silent: a target's group is its HTTP domain (`tcp` for TCP
//! targets: the agent config's groups are not stored with the results); a state change is a
//! change between buckets that were all up, all down or mixed (flappy); availability counts
//! degraded checks as available (they answered).

mod conns;

use crate::memo::{Freshness, Memo};
use futures::FutureExt;
use netvantage_core::findings::findings_of_observations;
use netvantage_core::vantage::{FleetVerdict, TargetReport, judge};
use netvantage_core::verdict::{FlapRule, Verdict as HostVerdict, VerdictRules};
use netvantage_core::{CheckKind, Outcome};
use netvantage_server::status::{
    Availability, BlockEvent, ChangeQuery, ConnectionCounts, DayBar, DomainAvailability,
    EventQuery, Finding, GroupSummary, History, HistoryPoint, LatencyPoint, Overview, Page,
    Provenance, RawCheck, ScanEvent, SourceError, StateChange, StatusSource, TargetDetail,
    TargetQuery, TargetSummary, TargetVisuals, Tier, TimeRange, UnixMs, VantagePoint,
    VantageStatus, Verdict, VerdictCounts, Window,
};
use netvantage_store::rollup::Tier as StoreTier;
use netvantage_store::{
    AnyStore, Location, ResultsQuery, Retention, Rollup, RollupQuery, RollupRow, Series, Store,
    StoreError, totals,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long an answer (the snapshot, a target's pictures, history, checks) is used as is.
const FRESH: Duration = Duration::from_secs(5);

/// How long after it stops being fresh an answer still answers while the next one is computed
/// in the background: longer than a 10,000-series snapshot takes, so no request waits for one.
const STALE_LIMIT: Duration = Duration::from_secs(60);

/// At most this many keys a cache (about 5 KB a target's pictures).
const MAX_CACHED: usize = 20_000;

/// Read-only connections per store: SQLite readers don't block each other (WAL), a PostgreSQL
/// connection pipelines its queries, so a few suffice for 2 to 8 cores.
const READERS: usize = 4;

const FRESHNESS: Freshness = Freshness {
    fresh: FRESH,
    stale: STALE_LIMIT,
};

/// History is kept per target id, bucket length and range (in buckets).
type HistoryKey = (String, i64, i64, i64);
/// State changes per target (or all) and range (in minutes).
type ChangesKey = (Option<String>, i64, i64);

/// The status page's source: read-only store connections and the answers of the moment.
pub struct StoreStatus {
    location: Location,
    /// The pool, each reconnected when a PostgreSQL connection was lost.
    readers: Vec<tokio::sync::RwLock<Arc<AnyStore>>>,
    next_reader: AtomicUsize,
    snapshot: Memo<(), Snapshot>,
    /// Each target's pictures (sparkline, 90-day bars): an overview page shows 60.
    visuals: Memo<String, TargetVisuals>,
    /// A target's buckets of a history range, its vantage points merged.
    histories: Memo<HistoryKey, BTreeMap<i64, Rollup>>,
    changes: Memo<ChangesKey, Vec<StateChange>>,
    /// The newest raw checks per target id and count.
    checks: Memo<(String, usize), Vec<RawCheck>>,
    /// What retention the store is kept under: history asks a coarser tier where a finer one
    /// has expired.
    retention: Retention,
    rules: VerdictRules,
}

/// Runs `read` on `store` on tokio's blocking threads: a SQLite read blocks, and a snapshot
/// (of either backend) spends seconds of CPU judging and summing, so neither may hold one of
/// the workers that answer pages. (On a current-thread runtime, as in some tests, a PostgreSQL
/// read runs as it is: only that runtime drives its connection.)
async fn on_store<T, F, Fut>(store: Arc<AnyStore>, read: F) -> Result<T, SourceError>
where
    T: Send + 'static,
    F: FnOnce(Arc<AnyStore>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    let blocking = matches!(&*store, AnyStore::Sqlite(_))
        || runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread;
    let result = if blocking {
        tokio::task::spawn_blocking(move || runtime.block_on(read(store)))
            .await
            .map_err(|e| SourceError(format!("a store read failed: {e}")))?
    } else {
        read(store).await
    };
    result.map_err(source_error)
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

/// A bucket's state for state changes: every check up, every check down, or both.
fn bucket_verdict(r: &Rollup) -> Verdict {
    match (r.answered(), r.down) {
        (_, 0) => Verdict::Ok,
        (0, _) => Verdict::Down,
        _ => Verdict::Flappy,
    }
}

/// Changes between consecutive buckets (minutes or hours) of one target (its vantage points
/// merged), oldest first.
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
        let now = bucket_verdict(&rollup);
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

/// The snapshot as of `at` (see [`Snapshot`]), every query on `store`.
async fn compute(
    store: Arc<AnyStore>,
    rules: VerdictRules,
    at: UnixMs,
) -> Result<Snapshot, StoreError> {
    let started = std::time::Instant::now();
    let series = store.series().await?;
    let last_hour = netvantage_store::TimeRange {
        from_unix_ms: at.0 - UnixMs::HOUR,
        until_unix_ms: at.0 + 1,
    };
    let observations = store.observations(last_hour).await?;
    let read = started.elapsed();
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
    let reports: BTreeMap<String, TargetReport> = judge(observations, &rules)
        .into_iter()
        .map(|r| (r.target.clone(), r))
        .collect();
    let judged = started.elapsed();
    let mut windows: Vec<BTreeMap<(String, String), Rollup>> = Vec::new();
    for window in Window::ALL {
        windows.push(totals(&*store, at.0 - window.millis(), at.0, None).await?);
    }
    let summed = started.elapsed();
    // State changes over a day for the whole fleet from the hour tier: 24 rows a series, where
    // minutes would be 1,440 (the target page reads its own minutes).
    let this_hour = StoreTier::Hour.bucket_start(at.0);
    let hours = store
        .rollups(&RollupQuery {
            tier: StoreTier::Hour,
            range: netvantage_store::TimeRange {
                from_unix_ms: this_hour - 24 * UnixMs::HOUR,
                until_unix_ms: at.0,
            },
            target: None,
            summed: false,
        })
        .await?;
    let mut hours_by_target: BTreeMap<String, Vec<RollupRow>> = BTreeMap::new();
    for row in hours {
        hours_by_target
            .entry(row.target.clone())
            .or_default()
            .push(row);
    }
    let changed = started.elapsed();
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
        let changes = changes_of(&name, hours_by_target.get(&name).map_or(&[], |v| v));
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
    // Where a snapshot's time goes, for tuning (RUST_LOG=netvantage=debug).
    tracing::debug!(
        targets = targets.len(),
        read_ms = read.as_millis() as u64,
        judged_ms = (judged - read).as_millis() as u64,
        totals_ms = (summed - judged).as_millis() as u64,
        changes_ms = (changed - summed).as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "status snapshot computed"
    );
    Ok(Snapshot {
        targets,
        details,
        vantage_points: vantages.into_values().collect(),
        findings,
        domain_totals,
    })
}

/// A target's pictures: its last 24 hours' median latency and its last 90 days' bars.
async fn visuals_of(
    store: Arc<AnyStore>,
    name: String,
    id: String,
    at: UnixMs,
) -> Result<TargetVisuals, StoreError> {
    let read = |tier: StoreTier, from: i64, until: i64| RollupQuery {
        tier,
        range: netvantage_store::TimeRange {
            from_unix_ms: from,
            until_unix_ms: until,
        },
        target: Some(name.clone()),
        summed: false,
    };
    let this_hour = StoreTier::Hour.bucket_start(at.0);
    let hours = store
        .rollups(&read(
            StoreTier::Hour,
            this_hour - 23 * UnixMs::HOUR,
            this_hour + 1,
        ))
        .await?;
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
        .await?;
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
    Ok(TargetVisuals { id, latency, days })
}

/// State changes of one target (or all) between `from` and `until`, newest first.
async fn changes_between(
    store: Arc<AnyStore>,
    target: Option<String>,
    from: i64,
    until: i64,
) -> Result<Vec<StateChange>, StoreError> {
    let rows = store
        .rollups(&RollupQuery {
            tier: StoreTier::Minute,
            range: netvantage_store::TimeRange {
                from_unix_ms: from,
                until_unix_ms: until,
            },
            target,
            summed: false,
        })
        .await?;
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

/// The newest `limit` raw checks of a target over the hour before `at`, newest first.
async fn recent_checks_of(
    store: Arc<AnyStore>,
    name: String,
    limit: usize,
    at: UnixMs,
) -> Result<Vec<RawCheck>, StoreError> {
    let range = netvantage_store::TimeRange {
        from_unix_ms: at.0 - UnixMs::HOUR,
        until_unix_ms: at.0 + 1,
    };
    let mut query = ResultsQuery::new(name, range, ResultsQuery::MAX_LIMIT);
    let mut records = Vec::new();
    // An hour of one target is a few pages at most; newest kept.
    for _ in 0..100 {
        let page = store.results(&query).await?;
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
    Ok(records
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
        .collect())
}

/// A target's buckets of `tier` over `[from, until)`, its vantage points merged.
async fn history_of(
    store: Arc<AnyStore>,
    name: String,
    tier: Tier,
    from: i64,
    until: i64,
) -> Result<BTreeMap<i64, Rollup>, StoreError> {
    let rows = store
        .rollups(&RollupQuery {
            tier: store_tier(tier),
            range: netvantage_store::TimeRange {
                from_unix_ms: from,
                until_unix_ms: until,
            },
            target: Some(name),
            summed: false,
        })
        .await?;
    Ok(merged(rows))
}

impl StoreStatus {
    /// Opens the store read-only; a missing store, a foreign file or an unreachable database
    /// is the error.
    pub async fn open(location: Location, retention: Retention) -> Result<StoreStatus, StoreError> {
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let store = AnyStore::open_reader(&location).await?;
            readers.push(tokio::sync::RwLock::new(Arc::new(store)));
        }
        Ok(StoreStatus {
            location,
            readers,
            next_reader: AtomicUsize::new(0),
            snapshot: Memo::new(FRESHNESS, 1),
            visuals: Memo::new(FRESHNESS, MAX_CACHED),
            histories: Memo::new(FRESHNESS, MAX_CACHED),
            changes: Memo::new(FRESHNESS, MAX_CACHED),
            checks: Memo::new(FRESHNESS, MAX_CACHED),
            retention,
            rules: VerdictRules {
                down_after: 5,
                flap: FlapRule::Window(None),
            },
        })
    }

    /// The next connection of the pool (in turn), reconnected when a PostgreSQL connection
    /// was lost.
    async fn store(&self) -> Result<Arc<AnyStore>, SourceError> {
        let slot = &self.readers[self.next_reader.fetch_add(1, Ordering::Relaxed) % READERS];
        let current = slot.read().await.clone();
        let closed = matches!(&*current, AnyStore::Postgres(pg) if pg.is_closed());
        if !closed {
            return Ok(current);
        }
        let mut slot = slot.write().await;
        if matches!(&**slot, AnyStore::Postgres(pg) if pg.is_closed()) {
            let fresh = AnyStore::open_reader(&self.location)
                .await
                .map_err(source_error)?;
            *slot = Arc::new(fresh);
        }
        Ok(slot.clone())
    }

    /// The target an id names. Ids don't change with time, so any snapshot answers; without
    /// one (or for a target new since), the series table does.
    async fn name_of(&self, id: &str) -> Result<Option<String>, SourceError> {
        if let Some(snapshot) = self.snapshot.peek(&())
            && let Some(facts) = snapshot.details.get(id)
        {
            return Ok(Some(facts.name.clone()));
        }
        // A read for this request alone: what it answers may not be kept.
        crate::memo::untracked();
        let series = on_store(self.store().await?, |s| async move { s.series().await }).await?;
        Ok(series
            .into_iter()
            .map(|s| s.target)
            .find(|target| target_id(target) == id))
    }

    async fn snapshot(&self, at: UnixMs) -> Result<Arc<Snapshot>, SourceError> {
        let store = self.store().await?;
        let rules = self.rules;
        self.snapshot
            .get((), at, move || {
                on_store(store, move |s| compute(s, rules, at)).boxed()
            })
            .await
    }

    /// A target's pictures, computed once per [`FRESH`] whoever asks.
    async fn pictures(
        &self,
        name: &str,
        id: &str,
        at: UnixMs,
    ) -> Result<Arc<TargetVisuals>, SourceError> {
        let store = self.store().await?;
        let (name, owned_id) = (name.to_string(), id.to_string());
        self.visuals
            .get(id.to_string(), at, move || {
                on_store(store, move |s| visuals_of(s, name, owned_id, at)).boxed()
            })
            .await
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
        target: Option<String>,
        from: i64,
        until: i64,
    ) -> Result<Arc<Vec<StateChange>>, SourceError> {
        // Minutes as far back as the minute tier keeps; the state of a minute is what changes.
        let keep = self.retention.minute_ms.unwrap_or(i64::MAX / 2);
        let from = from.max(until.saturating_sub(keep));
        // Keyed to the minute: the first request of a minute computes for every other one.
        let key = (
            target.clone(),
            from.div_euclid(UnixMs::MINUTE),
            until.div_euclid(UnixMs::MINUTE),
        );
        let store = self.store().await?;
        self.changes
            .get(key, UnixMs(until), move || {
                on_store(store, move |s| changes_between(s, target, from, until)).boxed()
            })
            .await
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
        // Side by side: the ones not cached are read at once, across the pool.
        let asks = ids.iter().filter_map(|id| {
            let facts = snapshot.details.get(id)?;
            Some(self.pictures(&facts.name, id, at))
        });
        futures::future::try_join_all(asks)
            .await
            .map(|all| all.into_iter().map(|v| (*v).clone()).collect())
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
            visuals: (*self.pictures(&facts.name, id, at).await?).clone(),
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
        let step = tier.millis();
        let from = range.from.0 - range.from.0.rem_euclid(step);
        let until = range.to.0;
        // Keyed to the tier's buckets: requests within one bucket share the read.
        let key = (id.to_string(), step, from, until.div_euclid(step));
        let store = self.store().await?;
        let buckets = self
            .histories
            .get(key, range.to, move || {
                on_store(store, move |s| history_of(s, name, tier, from, until)).boxed()
            })
            .await?;
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
        let name = facts.name.clone();
        let checks = self
            .checks
            .get((id.to_string(), limit), at, move || {
                on_store(store, move |s| recent_checks_of(s, name, limit, at)).boxed()
            })
            .await?;
        Ok(Some((*checks).clone()))
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
            .changes_between(target, query.range.from.0, query.range.to.0)
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

    /// Every answer here is read from the memos but the connection log's and an id's lookup
    /// of a target the snapshot doesn't know: those are marked [`crate::memo::untracked`].
    fn tracked<'a, T: Send + 'a>(
        &'a self,
        answer: impl Future<Output = T> + Send + 'a,
    ) -> impl Future<Output = (T, Option<Arc<dyn Provenance>>)> + Send + 'a {
        crate::memo::tracked(answer)
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

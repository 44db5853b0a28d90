//! [`MemorySource`]: a [`StatusSource`] held in memory — the tests' known history and the
//! fixture's demo fleet, and the reference for what each query means (filters, order, pages)
//! that the store's implementation must match.
//!
//! A target's history is described by its outages: checks run at a fixed rate from
//! `first_seen`, every check inside an outage is down, every other one up. Availability, the
//! 90-day bars and history buckets all follow from that, so a test knows every figure exactly.

use super::model::*;
use std::sync::Mutex;

/// One target and everything the page shows of it.
#[derive(Debug, Clone)]
pub struct MemoryTarget {
    pub summary: TargetSummary,
    pub vantage_points: Vec<VantageStatus>,
    pub findings: Vec<Finding>,
    /// Newest first.
    pub recent: Vec<RawCheck>,
    /// When its checks began.
    pub first_seen: UnixMs,
    pub checks_per_minute: u32,
    /// Down intervals, any order.
    pub outages: Vec<TimeRange>,
    /// The typical answer time, for latency lines.
    pub latency_ms: f64,
}

impl MemoryTarget {
    /// A target checked once a minute since `first_seen`, never down, answering in 20 ms.
    pub fn new(
        id: &str,
        name: &str,
        group: &str,
        kind: CheckKind,
        first_seen: UnixMs,
    ) -> MemoryTarget {
        MemoryTarget {
            summary: TargetSummary {
                id: id.to_string(),
                name: name.to_string(),
                group: group.to_string(),
                kind,
                domain: None,
                verdict: Verdict::Ok,
                reason: None,
                since: Some(first_seen),
                last_check: None,
                availability: Availability::default(),
                state_changes_24h: 0,
            },
            vantage_points: Vec::new(),
            findings: Vec::new(),
            recent: Vec::new(),
            first_seen,
            checks_per_minute: 1,
            outages: Vec::new(),
            latency_ms: 20.0,
        }
    }

    /// Down during `[from, to)`.
    pub fn outage(mut self, from: UnixMs, to: UnixMs) -> MemoryTarget {
        self.outages.push(TimeRange { from, to });
        self
    }

    pub fn verdict(mut self, verdict: Verdict, reason: Option<&str>) -> MemoryTarget {
        self.summary.verdict = verdict;
        self.summary.reason = reason.map(str::to_string);
        self
    }

    pub fn domain(mut self, domain: &str) -> MemoryTarget {
        self.summary.domain = Some(domain.to_string());
        self
    }

    /// Fills the summary's availability windows and last check from the outages, as of `at`.
    pub fn settle(mut self, at: UnixMs) -> MemoryTarget {
        let mut availability = Availability::default();
        for window in Window::ALL {
            let figure = self.bucket(UnixMs(at.0 - window.millis()), at).availability;
            match window {
                Window::Hour => availability.hour = figure,
                Window::Day => availability.day = figure,
                Window::Week => availability.week = figure,
                Window::Month => availability.month = figure,
                Window::Year => availability.year = figure,
            }
        }
        self.summary.availability = availability;
        self.summary.last_check = (at > self.first_seen).then_some(at);
        self
    }

    fn down_ms(&self, from: i64, to: i64) -> i64 {
        self.outages
            .iter()
            .map(|o| (o.to.0.min(to) - o.from.0.max(from)).max(0))
            .sum::<i64>()
            .min(to - from)
    }

    /// The checks of `[from, to)`, as a history bucket.
    pub fn bucket(&self, from: UnixMs, to: UnixMs) -> HistoryPoint {
        let from_ms = from.0.max(self.first_seen.0);
        let to_ms = to.0.max(from_ms);
        let per_minute = u64::from(self.checks_per_minute);
        let checks = (to_ms - from_ms) as u64 * per_minute / UnixMs::MINUTE as u64;
        let down =
            (self.down_ms(from_ms, to_ms) as u64 * per_minute / UnixMs::MINUTE as u64).min(checks);
        let up = checks - down;
        let latency = (up > 0).then(|| self.latency_at(from));
        HistoryPoint {
            start: from,
            checks,
            up,
            degraded: 0,
            down,
            availability: (checks > 0).then(|| up as f64 / checks as f64),
            latency_min_ms: latency.map(|l| l * 0.6),
            latency_p50_ms: latency,
            latency_p95_ms: latency.map(|l| l * 1.8),
            latency_p99_ms: latency.map(|l| l * 2.5),
            latency_max_ms: latency.map(|l| l * 4.0),
        }
    }

    /// A latency that wanders a little with time, so lines aren't flat.
    fn latency_at(&self, at: UnixMs) -> f64 {
        let wobble = ((at.0 / UnixMs::HOUR).wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0;
        self.latency_ms * (0.8 + 0.4 * wobble)
    }

    fn visuals(&self, at: UnixMs) -> TargetVisuals {
        let hour_end = at.0 - at.0.rem_euclid(UnixMs::HOUR) + UnixMs::HOUR;
        let latency = (0..24)
            .rev()
            .map(|i| {
                let start = UnixMs(hour_end - (i + 1) * UnixMs::HOUR);
                let point = self.bucket(start, UnixMs(start.0 + UnixMs::HOUR).min(at));
                LatencyPoint {
                    at: start,
                    p50_ms: point.latency_p50_ms,
                }
            })
            .collect();
        let day_end = at.0 - at.0.rem_euclid(UnixMs::DAY) + UnixMs::DAY;
        let days = (0..90)
            .rev()
            .map(|i| {
                let start = UnixMs(day_end - (i + 1) * UnixMs::DAY);
                let point = self.bucket(start, UnixMs(start.0 + UnixMs::DAY).min(at));
                DayBar {
                    day: start.day(),
                    checks: point.checks,
                    up: point.up,
                    degraded: point.degraded,
                    down: point.down,
                    availability: point.availability,
                }
            })
            .collect();
        TargetVisuals {
            id: self.summary.id.clone(),
            latency,
            days,
        }
    }
}

/// A whole status source in memory.
#[derive(Debug, Default)]
pub struct MemorySource {
    pub targets: Vec<MemoryTarget>,
    pub vantage_points: Vec<VantagePoint>,
    /// Any order; answers sort them newest first.
    pub changes: Vec<StateChange>,
    /// The connection log: any order; answers sort them newest first.
    pub scans: Vec<ScanEvent>,
    pub blocks: Vec<BlockEvent>,
    /// New connections per hour: (the hour's start, its counts).
    pub connections: Vec<(UnixMs, ConnectionCounts)>,
    unready: Mutex<Option<String>>,
}

impl MemorySource {
    pub fn new(targets: Vec<MemoryTarget>) -> MemorySource {
        MemorySource {
            targets,
            ..MemorySource::default()
        }
    }

    /// `/readyz` fails with `reason` (`None`: ready again).
    pub fn set_unready(&self, reason: Option<&str>) {
        if let Ok(mut slot) = self.unready.lock() {
            *slot = reason.map(str::to_string);
        }
    }

    fn find(&self, id: &str) -> Option<&MemoryTarget> {
        self.targets.iter().find(|t| t.summary.id == id)
    }

    /// A deterministic demo fleet of `count` targets as of `at`: groups, a tenth HTTP over
    /// three domains, three vantage points, and every verdict represented.
    pub fn demo(at: UnixMs, count: usize) -> MemorySource {
        let groups = ["edge", "web", "db", "queue", "cache"];
        let domains = ["shop.example", "api.example", "status.example"];
        let vantages = ["fra1", "iad1", "sin1"];
        let year_ago = UnixMs(at.0 - 400 * UnixMs::DAY);
        let mut targets = Vec::with_capacity(count);
        let mut changes = Vec::new();
        for i in 0..count {
            let group = groups[i % groups.len()];
            let http = i % 10 == 3;
            let (kind, name) = if http {
                let domain = domains[(i / 10) % domains.len()];
                (CheckKind::Http, format!("https://{domain}/health/{i}"))
            } else {
                (
                    CheckKind::Tcp,
                    format!("{group}-{i:05}.internal:{}", 5000 + i % 7),
                )
            };
            let id = format!("t{i:05}");
            let mut target = MemoryTarget::new(&id, &name, group, kind, year_ago);
            if http {
                target = target.domain(domains[(i / 10) % domains.len()]);
            }
            target.latency_ms = 5.0 + (i % 17) as f64 * 3.0;
            // An old outage for one target in seven: a red day on the 90-day bar.
            if i % 7 == 2 {
                let start = at.0 - ((i % 80) as i64 + 3) * UnixMs::DAY;
                target = target.outage(UnixMs(start), UnixMs(start + 45 * UnixMs::MINUTE));
            }
            let verdict = match i % 50 {
                7 => Verdict::Down,
                13 | 31 => Verdict::Flappy,
                21 => Verdict::Partial,
                27 | 43 => Verdict::Degraded,
                _ => Verdict::Ok,
            };
            let reason = match verdict {
                Verdict::Down => Some("refused"),
                Verdict::Flappy => Some("timeout"),
                Verdict::Partial => Some("timeout from 1 of 3 vantage points"),
                Verdict::Degraded => Some("slow: p95 above 500 ms"),
                _ => None,
            };
            match verdict {
                Verdict::Partial => {
                    target.summary.since = Some(UnixMs(at.0 - 40 * UnixMs::MINUTE));
                }
                Verdict::Degraded => {
                    target.summary.since = Some(UnixMs(at.0 - 3 * UnixMs::HOUR));
                }
                Verdict::Down => {
                    target = target.outage(UnixMs(at.0 - 2 * UnixMs::HOUR), UnixMs(at.0 + 1));
                    target.summary.since = Some(UnixMs(at.0 - 2 * UnixMs::HOUR));
                }
                Verdict::Flappy => {
                    for k in 0..6 {
                        let start = at.0 - (k * 3 + 1) * UnixMs::HOUR;
                        target = target.outage(UnixMs(start), UnixMs(start + 4 * UnixMs::MINUTE));
                    }
                    target.summary.state_changes_24h = 12;
                    target.summary.since = Some(UnixMs(at.0 - 16 * UnixMs::HOUR));
                }
                _ => {}
            }
            target = target.verdict(verdict, reason).settle(at);
            target.vantage_points = vantages
                .iter()
                .enumerate()
                .map(|(v, vantage)| {
                    let sees_down =
                        verdict == Verdict::Down || (verdict == Verdict::Partial && v == 2);
                    VantageStatus {
                        vantage: vantage.to_string(),
                        verdict: if sees_down {
                            Verdict::Down
                        } else if verdict == Verdict::Partial {
                            Verdict::Ok
                        } else {
                            verdict
                        },
                        reason: sees_down.then(|| "timeout".to_string()),
                        last_check: Some(at),
                        availability: target.summary.availability,
                        latency_p50_ms: (!sees_down).then_some(target.latency_ms),
                    }
                })
                .collect();
            target.recent = (0..10)
                .map(|k| {
                    let when = UnixMs(at.0 - k * UnixMs::MINUTE);
                    let down = target.down_ms(when.0, when.0 + 1) > 0;
                    RawCheck {
                        at: when,
                        vantage: vantages[k as usize % vantages.len()].to_string(),
                        address: Some(format!("10.0.{}.{}", i / 250, i % 250 + 1)),
                        outcome: if down { Outcome::Down } else { Outcome::Up },
                        reason: down.then_some(if verdict == Verdict::Flappy {
                            Reason::Timeout
                        } else {
                            Reason::Refused
                        }),
                        error: down.then(|| "connection refused (os error 111)".to_string()),
                        latency_ms: (!down).then_some(target.latency_ms),
                        status_code: (http && !down).then_some(200),
                        phases: http.then_some(Phases {
                            dns_ms: Some(1.2),
                            connect_ms: Some(target.latency_ms * 0.3),
                            tls_ms: Some(target.latency_ms * 0.4),
                            first_byte_ms: Some(target.latency_ms * 0.9),
                            total_ms: Some(target.latency_ms),
                        }),
                    }
                })
                .collect();
            if verdict == Verdict::Partial {
                target.findings.push(Finding {
                    kind: "path_problem".to_string(),
                    scope: name.clone(),
                    reason: "timeout".to_string(),
                    from: UnixMs(at.0 - 40 * UnixMs::MINUTE),
                    to: at,
                    affected: 1,
                    total: 3,
                    message: format!(
                        "{name} times out from sin1 only while fra1 and iad1 reach it: a network path from sin1, not the target"
                    ),
                });
            }
            if verdict != Verdict::Ok {
                changes.push(StateChange {
                    at: target.summary.since.unwrap_or(at),
                    target_id: id.clone(),
                    target_name: name.clone(),
                    from: Verdict::Ok,
                    to: verdict,
                    reason: reason.map(str::to_string),
                    vantage: (verdict == Verdict::Partial).then(|| "sin1".to_string()),
                });
            }
            targets.push(target);
        }
        let mut source = MemorySource::new(targets);
        source.changes = changes;
        source.demo_connection_log(at);
        source.vantage_points = vantages
            .iter()
            .enumerate()
            .map(|(v, vantage)| {
                let mut counts = VerdictCounts::default();
                for target in &source.targets {
                    counts.add(target.vantage_points[v].verdict);
                }
                VantagePoint {
                    name: vantage.to_string(),
                    last_seen: Some(at),
                    counts,
                }
            })
            .collect();
        source
    }
}

impl MemorySource {
    /// Two edge hosts' connection log as of `at`: a scan every five hours over the last three
    /// days (every other one followed by a block, IPv6 ones by /64), and a day of hourly
    /// connection counts.
    fn demo_connection_log(&mut self, at: UnixMs) {
        for k in 0..15i64 {
            let when = UnixMs(at.0 - (k * 5 + 1) * UnixMs::HOUR + k * 61_000);
            let host = if k % 2 == 0 { "edge-1" } else { "edge-2" };
            let v6 = k % 3 == 1;
            let source = if v6 {
                format!("2001:db8:{k:x}::7")
            } else {
                format!("198.51.100.{}", 10 + k)
            };
            let ports: Vec<u16> = (0..(5 + k as u16 * 3)).map(|p| 20 + p * 7).collect();
            self.scans.push(ScanEvent {
                id: format!("scan-{k:02}"),
                at: when,
                host: host.to_string(),
                source: source.clone(),
                destinations: vec![format!("203.0.113.{}", 1 + k % 2)],
                closed_ports: (k % 4 != 3).then_some(ports.len() as u32 - 1),
                ports,
            });
            if k % 2 == 0 {
                self.blocks.push(BlockEvent {
                    id: format!("block-{k:02}"),
                    at: UnixMs(when.0 + 1_000),
                    host: host.to_string(),
                    target: if v6 {
                        format!("2001:db8:{k:x}::/64")
                    } else {
                        format!("{source}/32")
                    },
                    until: UnixMs(when.0 + 1_000 + 600_000 * (1 + k / 4)),
                    offenses: 1 + (k / 4) as u32,
                });
            }
        }
        let hour = at.0 - at.0.rem_euclid(UnixMs::HOUR);
        self.connections = (0..24)
            .map(|h| {
                (
                    UnixMs(hour - h * UnixMs::HOUR),
                    ConnectionCounts {
                        inbound: 400 + (h as u64 * 37) % 150,
                        outbound: 90 + (h as u64 * 11) % 40,
                    },
                )
            })
            .collect();
    }
}

/// The newest first of `events` in `query`'s range and host, one page of them.
fn event_page<T: Clone>(
    events: &[T],
    query: &EventQuery,
    at_host: impl Fn(&T) -> (UnixMs, &str),
) -> Page<T> {
    let mut matching: Vec<T> = events
        .iter()
        .filter(|e| {
            let (at, host) = at_host(e);
            at >= query.range.from
                && at < query.range.to
                && query.host.as_deref().is_none_or(|h| h == host)
        })
        .cloned()
        .collect();
    matching.sort_by_key(|e| std::cmp::Reverse(at_host(e).0));
    Page::of(&matching, query.page)
}

impl StatusSource for MemorySource {
    async fn overview(&self, _at: UnixMs) -> Result<Overview, SourceError> {
        let mut counts = VerdictCounts::default();
        let mut groups: Vec<GroupSummary> = Vec::new();
        for target in &self.targets {
            counts.add(target.summary.verdict);
            match groups.iter_mut().find(|g| g.name == target.summary.group) {
                Some(group) => group.counts.add(target.summary.verdict),
                None => {
                    let mut group_counts = VerdictCounts::default();
                    group_counts.add(target.summary.verdict);
                    groups.push(GroupSummary {
                        name: target.summary.group.clone(),
                        counts: group_counts,
                    });
                }
            }
        }
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Overview {
            counts,
            groups,
            vantage_points: self.vantage_points.clone(),
        })
    }

    async fn targets(
        &self,
        query: &TargetQuery,
        _at: UnixMs,
    ) -> Result<Page<TargetSummary>, SourceError> {
        Ok(query.answer(self.targets.iter().map(|t| &t.summary)))
    }

    async fn visuals(&self, ids: &[String], at: UnixMs) -> Result<Vec<TargetVisuals>, SourceError> {
        Ok(ids
            .iter()
            .filter_map(|id| self.find(id))
            .map(|t| t.visuals(at))
            .collect())
    }

    async fn target(&self, id: &str, at: UnixMs) -> Result<Option<TargetDetail>, SourceError> {
        Ok(self.find(id).map(|t| TargetDetail {
            summary: t.summary.clone(),
            visuals: t.visuals(at),
            vantage_points: t.vantage_points.clone(),
            findings: t.findings.clone(),
        }))
    }

    async fn history(
        &self,
        id: &str,
        range: TimeRange,
        tier: Tier,
    ) -> Result<Option<History>, SourceError> {
        let Some(target) = self.find(id) else {
            return Ok(None);
        };
        let step = tier.millis();
        let points = range
            .bucket_starts(tier)
            .map(|start| target.bucket(UnixMs(start), UnixMs((start + step).min(range.to.0))))
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
        Ok(self.find(id).map(|t| {
            t.recent
                .iter()
                .filter(|c| c.at.0 > at.0 - UnixMs::HOUR && c.at <= at)
                .take(limit)
                .cloned()
                .collect()
        }))
    }

    async fn domains(&self, _at: UnixMs) -> Result<Vec<DomainAvailability>, SourceError> {
        let mut domains: Vec<DomainAvailability> = Vec::new();
        let mut sums: Vec<[(f64, u32); 5]> = Vec::new();
        for target in &self.targets {
            let Some(domain) = &target.summary.domain else {
                continue;
            };
            let index = match domains.iter().position(|d| &d.domain == domain) {
                Some(index) => index,
                None => {
                    domains.push(DomainAvailability {
                        domain: domain.clone(),
                        targets: 0,
                        counts: VerdictCounts::default(),
                        availability: Availability::default(),
                    });
                    sums.push([(0.0, 0); 5]);
                    domains.len() - 1
                }
            };
            domains[index].targets += 1;
            domains[index].counts.add(target.summary.verdict);
            for (w, window) in Window::ALL.iter().enumerate() {
                if let Some(value) = target.summary.availability.get(*window) {
                    sums[index][w].0 += value;
                    sums[index][w].1 += 1;
                }
            }
        }
        for (domain, sum) in domains.iter_mut().zip(&sums) {
            let mean = |w: usize| (sum[w].1 > 0).then(|| sum[w].0 / f64::from(sum[w].1));
            domain.availability = Availability {
                hour: mean(0),
                day: mean(1),
                week: mean(2),
                month: mean(3),
                year: mean(4),
            };
        }
        domains.sort_by(|a, b| a.domain.cmp(&b.domain));
        Ok(domains)
    }

    async fn state_changes(&self, query: &ChangeQuery) -> Result<Page<StateChange>, SourceError> {
        let mut matching: Vec<StateChange> = self
            .changes
            .iter()
            .filter(|c| query.target.as_ref().is_none_or(|t| &c.target_id == t))
            .filter(|c| c.at >= query.range.from && c.at < query.range.to)
            .cloned()
            .collect();
        matching.sort_by(|a, b| b.at.cmp(&a.at).then(a.target_name.cmp(&b.target_name)));
        Ok(Page::of(&matching, query.page))
    }

    async fn findings(&self, at: UnixMs) -> Result<Vec<Finding>, SourceError> {
        Ok(self
            .targets
            .iter()
            .flat_map(|t| t.findings.iter())
            .filter(|f| f.to.0 > at.0 - UnixMs::HOUR)
            .cloned()
            .collect())
    }

    async fn scans(&self, query: &EventQuery) -> Result<Page<ScanEvent>, SourceError> {
        Ok(event_page(&self.scans, query, |e| (e.at, e.host.as_str())))
    }

    async fn blocks(&self, query: &EventQuery) -> Result<Page<BlockEvent>, SourceError> {
        Ok(event_page(&self.blocks, query, |e| (e.at, e.host.as_str())))
    }

    async fn connection_counts(&self, range: TimeRange) -> Result<ConnectionCounts, SourceError> {
        let mut counts = ConnectionCounts::default();
        for (start, hour) in &self.connections {
            if start.0 + UnixMs::HOUR > range.from.0 && *start < range.to {
                counts.inbound += hour.inbound;
                counts.outbound += hour.outbound;
            }
        }
        Ok(counts)
    }

    async fn ready(&self) -> Result<(), SourceError> {
        match self.unready.lock().ok().and_then(|slot| slot.clone()) {
            Some(reason) => Err(SourceError(reason)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: UnixMs = UnixMs(1_740_830_400_000); // 2025-03-01T12:00:00Z

    #[test]
    fn availability_follows_from_the_outages() {
        // 36 minutes down in the last 30 days, at one check a minute: 43,164 of 43,200 up.
        let target = MemoryTarget::new("a", "a", "", CheckKind::Tcp, UnixMs(0))
            .outage(
                UnixMs(AT.0 - 3 * UnixMs::DAY),
                UnixMs(AT.0 - 3 * UnixMs::DAY + 36 * UnixMs::MINUTE),
            )
            .settle(AT);
        let a = target.summary.availability;
        assert_eq!(a.hour, Some(1.0));
        assert_eq!(a.month, Some(43_164.0 / 43_200.0));
        let bar = target.visuals(AT);
        assert_eq!(bar.days.len(), 90);
        assert_eq!(bar.latency.len(), 24);
        let red: Vec<&DayBar> = bar.days.iter().filter(|d| d.down > 0).collect();
        assert_eq!(red.len(), 1);
        assert_eq!(red[0].day, "2025-02-26");
        assert_eq!(red[0].down, 36);
    }

    #[tokio::test]
    async fn queries_filter_sort_and_page() {
        let source = MemorySource::demo(AT, 120);
        let all = source.targets(&TargetQuery::default(), AT).await.unwrap();
        assert_eq!(all.total, 120);
        assert_eq!(all.items.len(), 50);
        assert!(
            all.items
                .windows(2)
                .all(|w| { (&w[0].group, &w[0].name) <= (&w[1].group, &w[1].name) })
        );
        let down = source
            .targets(
                &TargetQuery {
                    verdicts: vec![Verdict::Down],
                    ..TargetQuery::default()
                },
                AT,
            )
            .await
            .unwrap();
        assert_eq!(down.total, 3, "targets 7, 57, 107");
        let last_page = source
            .targets(
                &TargetQuery {
                    page: PageRequest {
                        page: 3,
                        per_page: 50,
                    },
                    ..TargetQuery::default()
                },
                AT,
            )
            .await
            .unwrap();
        assert_eq!(last_page.items.len(), 20);
        assert_eq!(last_page.pages(), 3);
    }
}

//! Cumulative per-domain availability and the final summary. Pure: it is fed check results
//! and returns the lines to print, so the worked example of the issue is a unit test.

use crate::config::Endpoint;
use netvantage_core::latency::LatencySamples;
use netvantage_core::{CheckResult, Outcome};

/// How a percentage is turned into a whole number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Half up: 66.67 → 67, 12.5 → 13.
    Nearest,
    /// Drop the decimals: 66.67 → 66.
    Down,
}

/// 100 × up / total as a whole percent, in integer arithmetic so 2/3 never becomes 66.99999.
pub fn availability_percent(up: u64, total: u64, rounding: Rounding) -> u64 {
    if total == 0 {
        return 0;
    }
    match rounding {
        Rounding::Nearest => (200 * up + total) / (2 * total),
        Rounding::Down => 100 * up / total,
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub up: u64,
    pub degraded: u64,
    pub down: u64,
}

impl Tally {
    pub fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Up => self.up += 1,
            Outcome::Degraded => self.degraded += 1,
            Outcome::Down => self.down += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.up + self.degraded + self.down
    }
}

#[derive(Debug, Clone)]
struct DomainStats {
    domain: String,
    tally: Tally,
    latency: LatencySamples,
}

#[derive(Debug, Clone)]
struct EndpointStats {
    name: String,
    method: String,
    url: String,
    domain: usize,
    tally: Tally,
    latency: LatencySamples,
    last_outcome: Option<Outcome>,
    last_error: Option<String>,
}

/// Everything observed so far, per domain (in order of first appearance) and per endpoint.
#[derive(Debug, Clone)]
pub struct Report {
    domains: Vec<DomainStats>,
    endpoints: Vec<EndpointStats>,
}

impl Report {
    pub fn new(endpoints: &[Endpoint]) -> Self {
        let mut domains: Vec<DomainStats> = Vec::new();
        let mut stats = Vec::with_capacity(endpoints.len());
        for ep in endpoints {
            let domain = match domains.iter().position(|d| d.domain == ep.domain) {
                Some(i) => i,
                None => {
                    domains.push(DomainStats {
                        domain: ep.domain.clone(),
                        tally: Tally::default(),
                        latency: LatencySamples::default(),
                    });
                    domains.len() - 1
                }
            };
            stats.push(EndpointStats {
                name: ep.name.clone(),
                method: ep.method.to_string(),
                url: ep.url.clone(),
                domain,
                tally: Tally::default(),
                latency: LatencySamples::default(),
                last_outcome: None,
                last_error: None,
            });
        }
        Report {
            domains,
            endpoints: stats,
        }
    }

    /// Records the result of checking endpoint `index` (its position in the config).
    pub fn record(&mut self, index: usize, result: &CheckResult) {
        let ep = &mut self.endpoints[index];
        ep.tally.add(result.outcome);
        ep.last_outcome = Some(result.outcome);
        if let Some(error) = &result.error {
            let text = match result.reason {
                Some(reason) => format!("{reason}: {error}"),
                None => error.clone(),
            };
            ep.last_error = Some(text);
        }
        let domain = &mut self.domains[ep.domain];
        domain.tally.add(result.outcome);
        // Latency percentiles describe responses; a refused connect or a timeout has none.
        if result.status.is_some() {
            ep.latency.add(result.latency());
            domain.latency.add(result.latency());
        }
    }

    /// `DOMAIN has N% availability percentage` for each domain checked so far, in order of
    /// first appearance in the config.
    pub fn availability_lines(&self, rounding: Rounding) -> Vec<String> {
        self.domains
            .iter()
            .filter(|d| d.tally.total() > 0)
            .map(|d| {
                let pct = availability_percent(d.tally.up, d.tally.total(), rounding);
                format!("{} has {pct}% availability percentage", d.domain)
            })
            .collect()
    }

    pub fn total_checks(&self) -> u64 {
        self.domains.iter().map(|d| d.tally.total()).sum()
    }

    /// The summary printed when the run ends: per domain, then its endpoints indented.
    pub fn summary_lines(&self, cycles: u64, rounding: Rounding) -> Vec<String> {
        let mut lines = vec![format!(
            "summary: {cycles} cycles, {} checks",
            self.total_checks()
        )];
        for (di, d) in self.domains.iter().enumerate() {
            let pct = availability_percent(d.tally.up, d.tally.total(), rounding);
            lines.push(format!(
                "{}: {pct}% available, {}, {}",
                d.domain,
                counts(&d.tally),
                latency(&d.latency)
            ));
            for ep in self.endpoints.iter().filter(|e| e.domain == di) {
                lines.push(format!(
                    "  {:?} {} {}: {}, {}, last error: {}",
                    ep.name,
                    ep.method,
                    ep.url,
                    counts(&ep.tally),
                    latency(&ep.latency),
                    ep.last_error.as_deref().unwrap_or("none"),
                ));
            }
        }
        lines
    }

    /// Nagios-style status of the last result of each endpoint: 0 all UP, 1 some DEGRADED,
    /// 2 some DOWN. Endpoints not checked yet do not count; nothing checked at all is 3.
    pub fn exit_status(&self) -> i32 {
        let last = self.endpoints.iter().filter_map(|e| e.last_outcome);
        let mut status = None;
        for outcome in last {
            let code = match outcome {
                Outcome::Up => 0,
                Outcome::Degraded => 1,
                Outcome::Down => 2,
            };
            status = Some(status.map_or(code, |s: i32| s.max(code)));
        }
        status.unwrap_or(3)
    }
}

fn counts(t: &Tally) -> String {
    format!("{} up, {} degraded, {} down", t.up, t.degraded, t.down)
}

fn latency(samples: &LatencySamples) -> String {
    match samples.summary() {
        Some(s) => format!(
            "latency p50 {:.1}ms p95 {:.1}ms max {:.1}ms",
            s.p50_ms, s.p95_ms, s.max_ms
        ),
        None => "latency n/a".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Rules, classify_response};
    use crate::config::parse_config;
    use netvantage_config::StatusSet;
    use netvantage_core::Reason;
    use std::time::Duration;

    #[test]
    fn nearest_rounds_half_up_and_down_truncates() {
        assert_eq!(availability_percent(1, 3, Rounding::Nearest), 33);
        assert_eq!(availability_percent(2, 3, Rounding::Nearest), 67);
        assert_eq!(availability_percent(2, 3, Rounding::Down), 66);
        assert_eq!(availability_percent(1, 8, Rounding::Nearest), 13);
        assert_eq!(availability_percent(1, 8, Rounding::Down), 12);
        assert_eq!(availability_percent(0, 5, Rounding::Nearest), 0);
        assert_eq!(availability_percent(5, 5, Rounding::Down), 100);
        assert_eq!(availability_percent(0, 0, Rounding::Nearest), 0);
        assert_eq!(availability_percent(199, 200, Rounding::Down), 99);
        assert_eq!(availability_percent(199, 200, Rounding::Nearest), 100);
    }

    /// Issue 15, item 13: the figures a peer solution of the exercise printed (37 / 41 / 43)
    /// are what dropping the decimals gives; half up gave netvantage's old 38 / 42 / 44.
    #[test]
    fn the_exercise_drops_the_decimals() {
        let cases = [(3, 8, 37, 38), (5, 12, 41, 42), (7, 16, 43, 44)];
        for (up, total, down, nearest) in cases {
            assert_eq!(availability_percent(up, total, Rounding::Down), down);
            assert_eq!(availability_percent(up, total, Rounding::Nearest), nearest);
        }
    }

    #[test]
    fn percent_is_always_within_bounds() {
        for total in 1..200u64 {
            for up in 0..=total {
                for r in [Rounding::Nearest, Rounding::Down] {
                    let p = availability_percent(up, total, r);
                    let exact = 100.0 * up as f64 / total as f64;
                    assert!(
                        p <= 100 && (p as f64 - exact).abs() <= 1.0,
                        "{up}/{total} {r:?} {p}"
                    );
                    if r == Rounding::Down {
                        assert!(p as f64 <= exact);
                    } else {
                        assert!((p as f64 - exact).abs() <= 0.5);
                    }
                }
            }
        }
    }

    const EXAMPLE: &str = "- {name: index, url: 'https://fetch.com/'}\n\
        - {name: careers, url: 'https://fetch.com/careers'}\n\
        - {name: post, url: 'https://fetch.com:8443/some/post/endpoint', method: POST}\n\
        - {name: rewards, url: 'https://www.fetchrewards.com/'}\n";

    fn result(status: u16, ms: u64) -> CheckResult {
        let rules = Rules {
            expect_status: StatusSet::default(),
            latency_threshold: Duration::from_millis(500),
            inclusive: false,
        };
        let latency = Duration::from_millis(ms);
        let c = classify_response(&rules, status, None, latency);
        let mut r = CheckResult::tcp("x".into(), None, 0, latency, None);
        r.outcome = c.outcome;
        r.reason = c.reason;
        r.error = c.error;
        r.status = Some(status);
        r
    }

    /// The worked example of issue 4, cycle by cycle.
    #[test]
    fn worked_example_two_cycles() {
        let eps = parse_config(EXAMPLE, "x").unwrap();
        let mut report = Report::new(&eps);
        for (i, (status, ms)) in [(200, 100), (200, 600), (500, 50), (200, 100)]
            .into_iter()
            .enumerate()
        {
            report.record(i, &result(status, ms));
        }
        assert_eq!(
            report.availability_lines(Rounding::Nearest),
            [
                "fetch.com has 33% availability percentage",
                "www.fetchrewards.com has 100% availability percentage"
            ]
        );
        for (i, (status, ms)) in [(200, 100), (200, 300), (201, 50), (200, 900)]
            .into_iter()
            .enumerate()
        {
            report.record(i, &result(status, ms));
        }
        assert_eq!(
            report.availability_lines(Rounding::Nearest),
            [
                "fetch.com has 67% availability percentage",
                "www.fetchrewards.com has 50% availability percentage"
            ]
        );
        assert_eq!(
            report.availability_lines(Rounding::Down)[0],
            "fetch.com has 66% availability percentage"
        );
        // Last results: rewards is DEGRADED, the rest UP.
        assert_eq!(report.exit_status(), 1);
        let summary = report.summary_lines(2, Rounding::Nearest);
        assert_eq!(summary[0], "summary: 2 cycles, 8 checks");
        assert_eq!(
            summary[1],
            "fetch.com: 67% available, 4 up, 1 degraded, 1 down, latency p50 100.0ms p95 600.0ms max 600.0ms"
        );
        assert_eq!(
            summary[4],
            "  \"post\" POST https://fetch.com:8443/some/post/endpoint: 1 up, 0 degraded, 1 down, latency p50 50.0ms p95 50.0ms max 50.0ms, last error: status: HTTP 500 (expected 200-299)"
        );
        assert!(
            summary[6].starts_with(
                "  \"rewards\" GET https://www.fetchrewards.com/: 1 up, 1 degraded, 0 down"
            ),
            "{}",
            summary[6]
        );
        assert!(
            summary[6].ends_with("last error: slow: 900ms over the 500ms threshold"),
            "{}",
            summary[6]
        );
    }

    #[test]
    fn exit_status_follows_the_worst_last_result() {
        let eps = parse_config(EXAMPLE, "x").unwrap();
        let mut report = Report::new(&eps);
        assert_eq!(report.exit_status(), 3);
        report.record(0, &result(200, 1));
        assert_eq!(report.exit_status(), 0);
        report.record(1, &result(500, 1));
        assert_eq!(report.exit_status(), 2);
        report.record(1, &result(200, 1));
        assert_eq!(report.exit_status(), 0);
    }

    #[test]
    fn failures_without_response_have_no_latency_sample() {
        let eps = parse_config("- {name: a, url: 'http://a/'}\n", "x").unwrap();
        let mut report = Report::new(&eps);
        let r = CheckResult::tcp(
            "a".into(),
            None,
            0,
            Duration::from_secs(5),
            Some((Reason::Timeout, "timed out after 5s".into())),
        );
        report.record(0, &r);
        let summary = report.summary_lines(1, Rounding::Nearest);
        assert_eq!(
            summary[1],
            "a: 0% available, 0 up, 0 degraded, 1 down, latency n/a"
        );
        assert!(
            summary[2].ends_with("last error: timeout: timed out after 5s"),
            "{}",
            summary[2]
        );
    }
}

//! Verdicts across vantage points (pure: observations in, reports out; the stores read the
//! observations, `report` prints the reports). Each (target, vantage) history is judged with
//! the same rules as `ports` ([`HostVerdict`]: down after 5 failed rounds in a row, flappy when it was
//! both up and down in the window); then the vantage points are compared:
//!
//! - down from every vantage point: the host (or its service) is down;
//! - down from some only: the others reach it, so it is a path problem (routing, a firewall, a
//!   data center's uplink), not the host;
//! - flappy from any vantage point;
//! - ok.

use crate::Reason;
use crate::status::{ExitStatus, Judged};
use crate::verdict::{HostVerdict, RoundState, Verdict, VerdictRules};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One stored check, as much of it as a verdict needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub target: String,
    pub vantage: String,
    pub ts_unix_ms: i64,
    pub up: bool,
    pub reason: Option<Reason>,
    /// The address tried (what subnet and round-robin findings need); absent for a name
    /// that did not resolve.
    pub address: Option<std::net::SocketAddr>,
    /// The check's error text (what tells a prober-side failure from the target's).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetVerdict {
    Ok,
    Flappy,
    DownFromSome,
    DownEverywhere,
}

/// Nagios convention: a partial outage is a warning (the host is fine), a full one critical.
impl Judged for FleetVerdict {
    fn exit_status(&self) -> ExitStatus {
        match self {
            FleetVerdict::Ok => ExitStatus::Ok,
            FleetVerdict::Flappy | FleetVerdict::DownFromSome => ExitStatus::Warning,
            FleetVerdict::DownEverywhere => ExitStatus::Critical,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VantageView {
    pub vantage: String,
    pub verdict: Verdict,
    pub checks: u32,
    pub failed: u32,
    pub consecutive_down: u32,
    pub last_ts_unix_ms: i64,
    /// Failure reasons seen, most frequent first.
    pub reasons: Vec<(Reason, u32)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetReport {
    pub target: String,
    pub verdict: FleetVerdict,
    pub vantages: Vec<VantageView>,
}

impl TargetReport {
    fn names(&self, verdict: Verdict, want: bool) -> Vec<&str> {
        self.vantages
            .iter()
            .filter(|v| (v.verdict == verdict) == want)
            .map(|v| v.vantage.as_str())
            .collect()
    }

    /// The line a person reads.
    pub fn line(&self) -> String {
        let reasons = |views: &mut dyn Iterator<Item = &VantageView>| {
            let mut all: BTreeMap<Reason, u32> = BTreeMap::new();
            for view in views {
                for (reason, n) in &view.reasons {
                    *all.entry(*reason).or_default() += n;
                }
            }
            let mut all: Vec<_> = all.into_iter().collect();
            all.sort_by_key(|r| std::cmp::Reverse(r.1));
            all.iter()
                .map(|(r, n)| format!("{r} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.verdict {
            FleetVerdict::DownEverywhere => format!(
                "{} is down from every vantage point ({}): {}",
                self.target,
                self.names(Verdict::Down, true).join(", "),
                reasons(&mut self.vantages.iter())
            ),
            FleetVerdict::DownFromSome => format!(
                "{} is down from {} only, reachable from {}: a path problem, not the host ({})",
                self.target,
                self.names(Verdict::Down, true).join(", "),
                self.names(Verdict::Down, false).join(", "),
                reasons(&mut self.vantages.iter().filter(|v| v.verdict == Verdict::Down))
            ),
            FleetVerdict::Flappy => format!(
                "{} is flappy from {} ({})",
                self.target,
                self.names(Verdict::Flappy, true).join(", "),
                reasons(&mut self.vantages.iter())
            ),
            FleetVerdict::Ok => format!("{} reporting ok", self.target),
        }
    }
}

/// Judges every target in `observations` (any order). Checks of one target from one vantage
/// point that share a timestamp are one round (a name with several addresses), up when every
/// address answered, partial when some did, down when none did — as in `ports`.
pub fn judge(mut observations: Vec<Observation>, rules: &VerdictRules) -> Vec<TargetReport> {
    observations.sort_by(|a, b| {
        (&a.target, &a.vantage, a.ts_unix_ms).cmp(&(&b.target, &b.vantage, b.ts_unix_ms))
    });
    let mut reports: Vec<TargetReport> = Vec::new();
    let mut rest = observations.as_slice();
    while let Some(first) = rest.first() {
        let len = rest
            .iter()
            .take_while(|o| o.target == first.target && o.vantage == first.vantage)
            .count();
        let (history, tail) = rest.split_at(len);
        rest = tail;
        let view = judge_vantage(history, rules);
        match reports.last_mut() {
            Some(report) if report.target == first.target => report.vantages.push(view),
            _ => reports.push(TargetReport {
                target: first.target.clone(),
                verdict: FleetVerdict::Ok,
                vantages: vec![view],
            }),
        }
    }
    for report in &mut reports {
        let down = report
            .vantages
            .iter()
            .filter(|v| v.verdict == Verdict::Down)
            .count();
        report.verdict = if down == report.vantages.len() {
            FleetVerdict::DownEverywhere
        } else if down > 0 {
            FleetVerdict::DownFromSome
        } else if report.vantages.iter().any(|v| v.verdict == Verdict::Flappy) {
            FleetVerdict::Flappy
        } else {
            FleetVerdict::Ok
        };
    }
    reports
}

fn judge_vantage(history: &[Observation], rules: &VerdictRules) -> VantageView {
    let start = history[0].ts_unix_ms;
    let mut host = HostVerdict::default();
    let mut reasons: BTreeMap<Reason, u32> = BTreeMap::new();
    let mut rounds = history;
    let mut checks = 0;
    let mut failed = 0;
    while let Some(first) = rounds.first() {
        let len = rounds
            .iter()
            .take_while(|o| o.ts_unix_ms == first.ts_unix_ms)
            .count();
        let (round, tail) = rounds.split_at(len);
        rounds = tail;
        let up = round.iter().filter(|o| o.up).count();
        for o in round.iter().filter(|o| !o.up) {
            *reasons
                .entry(o.reason.unwrap_or(Reason::Other))
                .or_default() += 1;
        }
        checks += round.len() as u32;
        failed += (round.len() - up) as u32;
        let at = Duration::from_millis((first.ts_unix_ms - start).max(0) as u64);
        host.observe(at, RoundState::from_counts(up, round.len()), rules);
    }
    let mut reasons: Vec<_> = reasons.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    VantageView {
        vantage: history[0].vantage.clone(),
        verdict: host.verdict(),
        checks,
        failed,
        consecutive_down: host.consecutive_down(),
        last_ts_unix_ms: history.last().map_or(start, |o| o.ts_unix_ms),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(target: &str, vantage: &str, ups: &[bool]) -> Vec<Observation> {
        ups.iter()
            .enumerate()
            .map(|(i, &up)| Observation {
                address: None,
                error: None,
                target: target.into(),
                vantage: vantage.into(),
                ts_unix_ms: 1_000_000 + 10_000 * i as i64,
                up,
                reason: (!up).then_some(Reason::Timeout),
            })
            .collect()
    }

    fn verdicts(observations: Vec<Observation>) -> Vec<(String, FleetVerdict)> {
        judge(observations, &VerdictRules::default())
            .into_iter()
            .map(|r| (r.target, r.verdict))
            .collect()
    }

    const DOWN5: [bool; 5] = [false; 5];
    const UP5: [bool; 5] = [true; 5];

    #[test]
    fn down_everywhere_is_the_host() {
        let mut obs = history("db:5432", "fra1", &DOWN5);
        obs.extend(history(
            "db:5432",
            "iad1",
            &[true, false, false, false, false, false],
        ));
        let reports = judge(obs, &VerdictRules::default());
        assert_eq!(reports[0].verdict, FleetVerdict::DownEverywhere);
        assert!(
            reports[0]
                .line()
                .starts_with("db:5432 is down from every vantage point (fra1, iad1): timeout ×10"),
            "{}",
            reports[0].line()
        );
    }

    #[test]
    fn down_from_some_is_a_path_problem() {
        let mut obs = history("api:443", "fra1", &DOWN5);
        obs.extend(history("api:443", "iad1", &UP5));
        let reports = judge(obs, &VerdictRules::default());
        assert_eq!(reports[0].verdict, FleetVerdict::DownFromSome);
        assert!(
            reports[0]
                .line()
                .contains("down from fra1 only, reachable from iad1: a path problem"),
            "{}",
            reports[0].line()
        );
        assert_eq!(reports[0].verdict.exit_status(), ExitStatus::Warning);
    }

    #[test]
    fn flappy_and_ok_use_the_ports_rules() {
        let mut obs = history("a:1", "fra1", &[true, false, true]);
        obs.extend(history("a:1", "iad1", &UP5));
        obs.extend(history("b:1", "fra1", &UP5));
        // Four failures in a row is not yet down, but it is flappy.
        obs.extend(history("c:1", "fra1", &[true, false, false, false, false]));
        assert_eq!(
            verdicts(obs),
            vec![
                ("a:1".into(), FleetVerdict::Flappy),
                ("b:1".into(), FleetVerdict::Ok),
                ("c:1".into(), FleetVerdict::Flappy),
            ]
        );
    }

    #[test]
    fn checks_sharing_a_timestamp_are_one_round() {
        // A name with two addresses, one of which always fails: each round is partial, so
        // never down, but flappy (as `ports` judges a partly failing round-robin set).
        let mut obs = history("rr:80", "fra1", &UP5);
        obs.extend(history("rr:80", "fra1", &DOWN5));
        let reports = judge(obs, &VerdictRules::default());
        assert_eq!(reports[0].verdict, FleetVerdict::Flappy);
        assert_eq!(reports[0].vantages[0].checks, 10);
        assert_eq!(reports[0].vantages[0].failed, 5);
        assert_eq!(reports[0].vantages[0].consecutive_down, 0);
    }

    #[test]
    fn input_order_does_not_matter() {
        let mut obs = history("x:1", "a", &[true, false, false, false, false, false]);
        obs.reverse();
        assert_eq!(
            verdicts(obs),
            vec![("x:1".into(), FleetVerdict::DownEverywhere)]
        );
    }
}

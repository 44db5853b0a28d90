//! How `ports` prints what it found: verdict lines, one JSON object per host, watch-mode
//! transition lines. Formatting only; the decisions were made in `netvantage-core`.

use netvantage_core::Reason;
use netvantage_core::findings::Names;
use netvantage_core::fleet::{AddressStats, HostState, Transition};
use netvantage_core::target::{Host, Target};
use netvantage_core::verdict::{FlapRule, Verdict};
use serde::Serialize;
use serde::ser::SerializeMap as _;
use std::net::SocketAddr;

/// `2021-04-28T15:28:05Z` from Unix milliseconds.
pub use netvantage_core::findings::rfc3339;

/// The targets of a run, as the findings engine names them (one vantage point: this machine).
pub struct PortsNames<'a>(pub &'a [Target]);

impl Names for PortsNames<'_> {
    fn host(&self, host: u32) -> (String, u16) {
        let target = &self.0[host as usize];
        let name = match &target.host {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.clone(),
        };
        (name, target.port)
    }

    fn vantage(&self, _vantage: u16) -> String {
        String::new()
    }
}

pub use crate::cmd::explain::{findings_text, write_finding_events};

/// `sync-124.nylas.net is flappy` — the line users grep for. A host the run was stopped before
/// checking says so rather than pretending it is ok.
pub fn verdict_line(target: &Target, host: &HostState) -> String {
    if host.rounds == 0 {
        format!("{} is not checked", target.label)
    } else {
        format!("{} is {}", target.label, host.verdict().phrase())
    }
}

/// `2021-04-28T15:28:05Z sync-124.nylas.net: reporting ok -> flappy (refused)`
pub fn transition_line(target: &Target, transition: &Transition) -> String {
    let from = transition.from.map_or("unknown", |v| v.phrase());
    let reason = transition
        .reason
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    format!(
        "{} {}: {} -> {}{}",
        rfc3339(transition.ts_unix_ms),
        target.label,
        from,
        transition.to.phrase(),
        reason
    )
}

pub fn transition_event(target: &Target, transition: &Transition) -> serde_json::Value {
    let mut event = serde_json::to_value(TransitionReport::from(transition)).unwrap_or_default();
    event["event"] = "transition".into();
    event["host"] = target.label.as_str().into();
    event
}

/// The per-host diagnosis object of `--format json` (schema in the README). Serialized straight
/// from borrowed state: building a `serde_json::Value` per host cost more than the connects on
/// a 10,000-host sweep.
#[derive(Serialize)]
pub struct HostReport<'a> {
    host: &'a str,
    port: u16,
    line: usize,
    verdict: &'static str,
    rounds: u32,
    checks: u32,
    failures: u32,
    consecutive_failed_rounds: u32,
    reasons: ReasonCounts<'a>,
    latency_ms: Option<LatencyMs>,
    addresses: Vec<&'a AddressStats>,
    failing_addresses: Vec<SocketAddr>,
    transitions: Vec<TransitionReport>,
    transitions_total: u32,
    last_error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    percent_state_change: Option<f64>,
}

#[derive(Serialize)]
struct LatencyMs {
    p50: f64,
    p95: f64,
    max: f64,
}

#[derive(Serialize)]
struct TransitionReport {
    ts: String,
    from: Option<Verdict>,
    to: Verdict,
    reason: Option<Reason>,
}

impl From<&Transition> for TransitionReport {
    fn from(t: &Transition) -> Self {
        TransitionReport {
            ts: rfc3339(t.ts_unix_ms),
            from: t.from,
            to: t.to,
            reason: t.reason,
        }
    }
}

/// `{"refused": 3, "timeout": 1}`: only the reasons that occurred.
struct ReasonCounts<'a>(&'a HostState);

impl Serialize for ReasonCounts<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let counts = self.0.reason_counts();
        let mut map = serializer.serialize_map(Some(counts.len()))?;
        for (reason, n) in counts {
            map.serialize_entry(reason.as_str(), &n)?;
        }
        map.end()
    }
}

pub fn host_report<'a>(target: &'a Target, host: &'a HostState, rule: &FlapRule) -> HostReport<'a> {
    HostReport {
        host: &target.label,
        port: target.port,
        line: target.line,
        verdict: if host.rounds == 0 {
            "not_checked"
        } else {
            verdict_word(host.verdict())
        },
        rounds: host.rounds,
        checks: host.checks,
        failures: host.failures,
        consecutive_failed_rounds: host.verdict.consecutive_down(),
        reasons: ReasonCounts(host),
        latency_ms: host.latency_summary().map(|s| LatencyMs {
            p50: s.p50_ms,
            p95: s.p95_ms,
            max: s.max_ms,
        }),
        addresses: host
            .addresses
            .iter()
            .filter(|a| a.address.is_some())
            .collect(),
        failing_addresses: host.failing_addresses(),
        transitions: host
            .transitions
            .iter()
            .map(TransitionReport::from)
            .collect(),
        transitions_total: host.transitions_total,
        last_error: host.last_error.as_deref(),
        percent_state_change: matches!(rule, FlapRule::Nagios(_))
            .then(|| (host.verdict.nagios_percent() * 100.0).round() / 100.0),
    }
}

fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Ok => "ok",
        Verdict::Flappy => "flappy",
        Verdict::Down => "down",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvantage_core::CheckResult;
    use netvantage_core::target::Host;
    use netvantage_core::verdict::VerdictRules;
    use std::time::Duration;

    #[test]
    fn rfc3339_is_utc_seconds() {
        assert_eq!(rfc3339(1_619_623_685_123), "2021-04-28T15:28:05Z");
    }

    #[test]
    fn lines_have_the_documented_shape() {
        let target = Target {
            host: Host::Name("web.test".into()),
            port: 80,
            label: "web.test".into(),
            line: 1,
        };
        let mut host = HostState::default();
        assert_eq!(verdict_line(&target, &host), "web.test is not checked");
        let rules = VerdictRules::default();
        let ok = CheckResult::tcp(
            "web.test".into(),
            Some("127.0.0.1:80".parse().unwrap()),
            1_619_623_685_000,
            Duration::from_millis(1),
            None,
        );
        let failed = CheckResult::tcp(
            "web.test".into(),
            Some("127.0.0.1:80".parse().unwrap()),
            1_619_623_695_000,
            Duration::from_millis(1),
            Some((Reason::Refused, "refused".into())),
        );
        host.observe_round(Duration::ZERO, &[ok], &rules);
        assert_eq!(verdict_line(&target, &host), "web.test is reporting ok");
        let t = host
            .observe_round(Duration::from_secs(10), &[failed], &rules)
            .unwrap();
        assert_eq!(
            transition_line(&target, &t),
            "2021-04-28T15:28:15Z web.test: reporting ok -> flappy (refused)"
        );
        let json = serde_json::to_value(host_report(&target, &host, &rules.flap)).unwrap();
        assert_eq!(json["verdict"], "flappy");
        assert_eq!(json["reasons"]["refused"], 1);
        assert_eq!(json["failing_addresses"][0], "127.0.0.1:80");
        assert_eq!(json["transitions"][1]["to"], "flappy");
    }
}

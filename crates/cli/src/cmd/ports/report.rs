//! How `ports` prints what it found: verdict lines, one JSON object per host, watch-mode
//! transition lines. Formatting only; the decisions were made in `netvantage-core`.

use netvantage_core::fleet::{HostState, Transition};
use netvantage_core::target::Target;
use netvantage_core::verdict::FlapRule;
use serde_json::{Map, Value, json};

/// `2021-04-28T15:28:05Z` from Unix milliseconds.
pub fn rfc3339(ts_unix_ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(ts_unix_ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ts_unix_ms.to_string())
}

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

fn transition_json(transition: &Transition) -> Value {
    json!({
        "ts": rfc3339(transition.ts_unix_ms),
        "from": transition.from,
        "to": transition.to,
        "reason": transition.reason,
    })
}

pub fn transition_event(target: &Target, transition: &Transition) -> Value {
    let mut event = transition_json(transition);
    event["event"] = json!("transition");
    event["host"] = json!(target.label);
    event
}

/// The per-host diagnosis object of `--format json` (schema documented in the README).
pub fn host_json(target: &Target, host: &HostState, rule: &FlapRule) -> Value {
    let reasons: Map<String, Value> = host
        .reason_counts()
        .into_iter()
        .map(|(r, n)| (r.to_string(), json!(n)))
        .collect();
    let addresses: Vec<Value> = host
        .addresses
        .iter()
        .filter(|a| a.address.is_some())
        .map(|a| {
            json!({
                "address": a.address,
                "checks": a.checks,
                "failures": a.failures,
                "last_ok": a.last_ok,
                "last_reason": a.last_reason,
            })
        })
        .collect();
    let mut object = json!({
        "host": target.label,
        "port": target.port,
        "line": target.line,
        "verdict": if host.rounds == 0 { json!("not_checked") } else { json!(host.verdict()) },
        "rounds": host.rounds,
        "checks": host.checks,
        "failures": host.failures,
        "consecutive_failed_rounds": host.verdict.consecutive_down(),
        "reasons": reasons,
        "latency_ms": host.latency_summary().map(|s| json!({"p50": s.p50_ms, "p95": s.p95_ms, "max": s.max_ms})),
        "addresses": addresses,
        "failing_addresses": host.failing_addresses(),
        "transitions": host.transitions.iter().map(transition_json).collect::<Vec<_>>(),
        "transitions_total": host.transitions_total,
        "last_error": host.last_error,
    });
    if matches!(rule, FlapRule::Nagios(_)) {
        object["percent_state_change"] =
            json!((host.verdict.nagios_percent() * 100.0).round() / 100.0);
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvantage_core::target::Host;
    use netvantage_core::verdict::VerdictRules;
    use netvantage_core::{CheckResult, Reason};
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
        let json = host_json(&target, &host, &rules.flap);
        assert_eq!(json["verdict"], "flappy");
        assert_eq!(json["reasons"]["refused"], 1);
        assert_eq!(json["failing_addresses"][0], "127.0.0.1:80");
        assert_eq!(json["transitions"][1]["to"], "flappy");
    }
}

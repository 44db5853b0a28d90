//! `--explain`: failures grouped so a pattern stands out — by reason, by subnet (/24 for IPv4,
//! /64 for IPv6) and by minute (UTC). "All of 10.2.3.0/24 timed out at 12:01" is one row here,
//! not two hundred lines of hosts.

use crate::check::{CheckResult, Reason};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;

/// The subnet an address is grouped under: its /24 (IPv4) or /64 (IPv6), as text.
pub fn subnet_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{prefix}/64")
        }
    }
}

/// `HH:MM` of a UTC timestamp in milliseconds.
pub fn utc_minute(ts_unix_ms: i64) -> String {
    let minutes = ts_unix_ms.div_euclid(60_000);
    let of_day = minutes.rem_euclid(24 * 60);
    format!("{:02}:{:02}", of_day / 60, of_day % 60)
}

#[derive(Debug, Default)]
struct SubnetGroup {
    addresses: HashSet<IpAddr>,
    failing: HashMap<Reason, HashSet<IpAddr>>,
    failures: HashMap<Reason, u32>,
    first_ms: HashMap<Reason, i64>,
    last_ms: HashMap<Reason, i64>,
}

#[derive(Debug, Default)]
pub struct Diagnosis {
    checks: u64,
    by_reason: BTreeMap<Reason, u64>,
    hosts_by_reason: BTreeMap<Reason, HashSet<String>>,
    subnets: HashMap<String, SubnetGroup>,
    /// (minute start in ms, reason) → failed checks.
    by_minute: BTreeMap<(i64, Reason), u64>,
}

impl Diagnosis {
    pub fn observe(&mut self, result: &CheckResult) {
        self.checks += 1;
        let reason = result.reason.filter(|_| !result.outcome.is_up());
        if let Some(address) = result.address {
            let group = self.subnets.entry(subnet_of(address.ip())).or_default();
            group.addresses.insert(address.ip());
            if let Some(reason) = reason {
                group
                    .failing
                    .entry(reason)
                    .or_default()
                    .insert(address.ip());
                *group.failures.entry(reason).or_default() += 1;
                group.first_ms.entry(reason).or_insert(result.ts_unix_ms);
                group.last_ms.insert(reason, result.ts_unix_ms);
            }
        }
        if let Some(reason) = reason {
            *self.by_reason.entry(reason).or_default() += 1;
            self.hosts_by_reason
                .entry(reason)
                .or_default()
                .insert(result.target.clone());
            let minute = result.ts_unix_ms.div_euclid(60_000) * 60_000;
            *self.by_minute.entry((minute, reason)).or_default() += 1;
        }
    }

    /// The report, for stderr or a terminal. `max_rows` bounds the subnet table.
    pub fn render(&self, max_rows: usize) -> String {
        let mut out = String::new();
        let failed: u64 = self.by_reason.values().sum();
        let _ = writeln!(
            out,
            "== Diagnosis: {failed} failed of {} checks ==",
            self.checks
        );
        if failed == 0 {
            let _ = writeln!(out, "no failures");
            return out;
        }
        let _ = writeln!(out, "-- by reason --");
        let mut reasons: Vec<_> = self.by_reason.iter().collect();
        reasons.sort_by_key(|(r, n)| (std::cmp::Reverse(**n), **r));
        for (reason, n) in reasons {
            let hosts = self.hosts_by_reason.get(reason).map_or(0, HashSet::len);
            let _ = writeln!(
                out,
                "{:<12} {n:>8} checks  {hosts:>7} hosts",
                reason.as_str()
            );
        }

        let _ = writeln!(
            out,
            "-- by subnet (addresses failing / addresses checked) --"
        );
        let mut rows: Vec<(&String, Reason, usize, usize, u32, i64, i64)> = Vec::new();
        for (subnet, group) in &self.subnets {
            for (reason, failing) in &group.failing {
                rows.push((
                    subnet,
                    *reason,
                    failing.len(),
                    group.addresses.len(),
                    group.failures[reason],
                    group.first_ms[reason],
                    group.last_ms[reason],
                ));
            }
        }
        rows.sort_by(|a, b| {
            b.2.cmp(&a.2)
                .then(b.4.cmp(&a.4))
                .then(a.0.cmp(b.0))
                .then(a.1.cmp(&b.1))
        });
        for (subnet, reason, failing, total, failures, first, last) in rows.iter().take(max_rows) {
            let all = if failing == total { " (all)" } else { "" };
            let _ = writeln!(
                out,
                "{subnet:<24} {:<12} {failing}/{total}{all}  {failures} failures  {}-{} UTC",
                reason.as_str(),
                utc_minute(*first),
                utc_minute(*last)
            );
        }
        if rows.len() > max_rows {
            let _ = writeln!(out, "... {} more subnet rows", rows.len() - max_rows);
        }

        let _ = writeln!(out, "-- by minute (UTC) --");
        let mut minutes: BTreeMap<i64, Vec<(Reason, u64)>> = BTreeMap::new();
        for ((minute, reason), n) in &self.by_minute {
            minutes.entry(*minute).or_default().push((*reason, *n));
        }
        for (minute, counts) in minutes {
            let cells: Vec<String> = counts
                .iter()
                .map(|(r, n)| format!("{} {n}", r.as_str()))
                .collect();
            let _ = writeln!(out, "{}  {}", utc_minute(minute), cells.join("  "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn result(addr: &str, ts: i64, failure: Option<Reason>) -> CheckResult {
        CheckResult::tcp(
            addr.to_string(),
            Some(addr.parse().unwrap()),
            ts,
            Duration::from_millis(1),
            failure.map(|r| (r, String::new())),
        )
    }

    #[test]
    fn subnets_are_slash_24_and_slash_64() {
        assert_eq!(subnet_of("10.2.3.77".parse().unwrap()), "10.2.3.0/24");
        assert_eq!(
            subnet_of("2001:db8:1:2:3::9".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn utc_minute_of_known_timestamp() {
        // 2021-04-28T12:01:30Z
        assert_eq!(utc_minute(1_619_611_290_000), "12:01");
    }

    #[test]
    fn a_whole_subnet_timing_out_stands_out() {
        let at_1201 = 1_619_611_290_000;
        let mut diagnosis = Diagnosis::default();
        for host in 1..=20 {
            diagnosis.observe(&result(
                &format!("10.2.3.{host}:80"),
                at_1201,
                Some(Reason::Timeout),
            ));
            diagnosis.observe(&result(&format!("10.9.9.{host}:80"), at_1201, None));
        }
        diagnosis.observe(&result("10.9.9.1:80", at_1201, Some(Reason::Refused)));
        let text = diagnosis.render(10);
        assert!(text.contains("21 failed of 41 checks"), "{text}");
        assert!(
            text.contains(
                "10.2.3.0/24              timeout      20/20 (all)  20 failures  12:01-12:01 UTC"
            ),
            "{text}"
        );
        assert!(
            text.contains("10.9.9.0/24              refused      1/20"),
            "{text}"
        );
        assert!(text.contains("12:01  refused 1  timeout 20"), "{text}");
        let timeout_line = text.lines().position(|l| l.starts_with("timeout")).unwrap();
        let refused_line = text.lines().position(|l| l.starts_with("refused")).unwrap();
        assert!(
            timeout_line < refused_line,
            "most frequent reason first:\n{text}"
        );
    }
}

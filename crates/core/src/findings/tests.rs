//! The findings engine on simulated runs: regular rounds, checks spread across the interval as
//! the scheduler spreads them, failures decided by a function of host and time. No sockets, no
//! clock.

use super::*;
use proptest::prelude::*;

/// 2026-11-23T05:48:00Z.
const T0: i64 = 1_795_412_880_000;

#[derive(Default)]
struct TestNames {
    hosts: Vec<(String, u16)>,
    vantages: Vec<String>,
}

impl Names for TestNames {
    fn host(&self, host: u32) -> (String, u16) {
        self.hosts[host as usize].clone()
    }
    fn vantage(&self, vantage: u16) -> String {
        self.vantages
            .get(vantage as usize)
            .cloned()
            .unwrap_or_default()
    }
}

/// What one check of one address sees.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Up,
    Failed(Reason),
    Local,
}

/// A simulated `ports` run: hosts are addresses (or names with their addresses), checked every
/// `step_ms` for `rounds` rounds, host i of n at `i × step / n` into each round.
struct Sim {
    hosts: Vec<SimHost>,
    step_ms: i64,
    rounds: i64,
}

struct SimHost {
    label: String,
    port: u16,
    name: bool,
}

impl Sim {
    fn addresses(addresses: impl IntoIterator<Item = String>, step_ms: i64, rounds: i64) -> Sim {
        Sim {
            hosts: addresses
                .into_iter()
                .map(|label| SimHost {
                    label,
                    port: 80,
                    name: false,
                })
                .collect(),
            step_ms,
            rounds,
        }
    }

    fn slot_ms(&self, host: usize, round: i64) -> i64 {
        T0 + round * self.step_ms + host as i64 * self.step_ms / self.hosts.len().max(1) as i64
    }

    fn names(&self) -> TestNames {
        TestNames {
            hosts: self
                .hosts
                .iter()
                .map(|h| (h.label.clone(), h.port))
                .collect(),
            vantages: vec![String::new()],
        }
    }

    /// Runs it: `resolve(host, round)` gives a name's addresses (`None`: NXDOMAIN), `seen(host,
    /// address, time)` what a check saw.
    fn run_with(
        &self,
        resolve: impl Fn(usize, i64) -> Option<Vec<IpAddr>>,
        seen: impl Fn(usize, IpAddr, i64) -> Seen,
    ) -> Vec<Finding> {
        let mut engine = FindingsEngine::with_series(self.hosts.len());
        for round in 0..self.rounds {
            for (i, host) in self.hosts.iter().enumerate() {
                let ts = self.slot_ms(i, round);
                let addresses = if host.name {
                    resolve(i, round)
                } else {
                    Some(vec![host.label.parse().expect("address host")])
                };
                let base = Evidence {
                    series: i as u32,
                    host: i as u32,
                    vantage: 0,
                    is_name: host.name,
                    address: None,
                    ts_unix_ms: ts,
                    up: false,
                    reason: Some(Reason::Dns),
                    error: Some("x.test: NXDOMAIN"),
                };
                let Some(addresses) = addresses else {
                    engine.observe(&base);
                    continue;
                };
                for ip in addresses {
                    let (up, reason, error) = match seen(i, ip, ts) {
                        Seen::Up => (true, None, None),
                        Seen::Failed(r) => (false, Some(r), Some("failed")),
                        Seen::Local => (
                            false,
                            Some(Reason::Other),
                            Some("local error: Cannot assign requested address (os error 99)"),
                        ),
                    };
                    engine.observe(&Evidence {
                        address: Some(ip),
                        up,
                        reason,
                        error,
                        ..base
                    });
                }
            }
        }
        engine.finish(&self.names())
    }

    fn run(&self, seen: impl Fn(usize, IpAddr, i64) -> Seen) -> Vec<Finding> {
        self.run_with(|_, _| None, seen)
    }
}

fn v4_range(prefix: &str, from: u32, to: u32) -> Vec<String> {
    (from..=to).map(|i| format!("{prefix}.{i}")).collect()
}

fn kinds(findings: &[Finding]) -> Vec<(FindingKind, &str)> {
    findings
        .iter()
        .map(|f| (f.kind, f.scope.as_str()))
        .collect()
}

fn in_net(ip: IpAddr, net: &str) -> bool {
    let (base, len) = net.split_once('/').unwrap();
    let base = u32::from(base.parse::<Ipv4Addr>().unwrap());
    let len: u32 = len.parse().unwrap();
    match ip {
        IpAddr::V4(v4) => (u32::from(v4) ^ base) >> (32 - len) == 0,
        IpAddr::V6(_) => false,
    }
}

#[test]
fn a_clean_fleet_gives_no_finding() {
    let mut hosts = v4_range("10.1.1", 1, 254);
    hosts.extend(v4_range("10.1.2", 1, 254));
    let sim = Sim::addresses(hosts, 10_000, 12);
    assert_eq!(sim.run(|_, _, _| Seen::Up), []);
}

#[test]
fn a_dark_slash_24_is_one_subnet_outage_that_explains_its_hosts() {
    // 10.1.0.0/22, every address a host; 10.1.2.0/24 drops everything for 25 s.
    let mut hosts = Vec::new();
    for third in 0..4 {
        hosts.extend(v4_range(&format!("10.1.{third}"), 0, 255));
    }
    let sim = Sim::addresses(hosts, 10_000, 12);
    let (from, to) = (T0 + 30_000, T0 + 55_000);
    let findings = sim.run(|_, ip, t| {
        if in_net(ip, "10.1.2.0/24") && t >= from && t < to {
            Seen::Failed(Reason::Timeout)
        } else {
            Seen::Up
        }
    });
    assert_eq!(
        kinds(&findings),
        [(FindingKind::SubnetOutage, "10.1.2.0/24")]
    );
    let f = &findings[0];
    assert_eq!(f.reason, Some(Reason::Timeout));
    assert_eq!((f.affected, f.total, f.explains), (256, 256, 256));
    assert!(
        f.from_unix_ms >= from && f.from_unix_ms < from + 10_000,
        "{f:?}"
    );
    assert!(f.to_unix_ms < to && f.to_unix_ms >= to - 10_000, "{f:?}");
    assert!(
        // 10.1.2.x are checked 5.0-7.5 s into each 10 s round: rounds 3 and 4 fall in the dark.
        f.sentence
            .starts_with("10.1.2.0/24: all 256 addresses timed out 05:48:35–05:48:47 UTC"),
        "{}",
        f.sentence
    );
    assert!(
        f.sentence.contains(
            "and nothing else failed: a network path or firewall for that subnet, not the hosts"
        ),
        "{}",
        f.sentence
    );
}

#[test]
fn the_subnet_is_the_smallest_prefix_that_failed_not_a_fixed_slash_24() {
    let hosts = v4_range("10.1.1", 1, 254);
    let sim = Sim::addresses(hosts, 10_000, 6);
    let findings = sim.run(|_, ip, t| {
        if in_net(ip, "10.1.1.64/26") && t >= T0 + 20_000 {
            Seen::Failed(Reason::Refused)
        } else {
            Seen::Up
        }
    });
    assert_eq!(
        kinds(&findings),
        [(FindingKind::SubnetOutage, "10.1.1.64/26")]
    );
    assert!(
        findings[0].sentence.contains("all 64 addresses refused"),
        "{}",
        findings[0].sentence
    );
}

#[test]
fn a_single_flaky_host_is_a_service_finding_never_a_subnet() {
    let sim = Sim::addresses(v4_range("10.1.1", 1, 254), 10_000, 12);
    let findings = sim.run(|i, _, t| {
        if i == 7 && (t - T0) / 10_000 % 3 == 1 {
            Seen::Failed(Reason::Refused)
        } else {
            Seen::Up
        }
    });
    assert_eq!(
        kinds(&findings),
        [(FindingKind::ServiceDown, "10.1.1.8:80")]
    );
    let f = &findings[0];
    assert_eq!((f.affected, f.total), (4, 12));
    assert!(
        f.sentence
            .starts_with("10.1.1.8:80: refused in 4 of 12 rounds in 4 outages 05:48:1"),
        "{}",
        f.sentence
    );
    assert!(f.sentence.contains("nothing listens"), "{}", f.sentence);
}

#[test]
fn refusals_on_one_host_and_timeouts_on_another_are_told_apart() {
    let sim = Sim::addresses(v4_range("10.1.1", 1, 20), 10_000, 6);
    let findings = sim.run(|_, ip, _| match ip.to_string().as_str() {
        "10.1.1.2" => Seen::Failed(Reason::Refused),
        "10.1.1.3" => Seen::Failed(Reason::Timeout),
        "10.1.1.4" => Seen::Failed(Reason::Unreachable),
        _ => Seen::Up,
    });
    assert_eq!(
        kinds(&findings),
        [
            (FindingKind::ServiceDown, "10.1.1.2:80"),
            (FindingKind::HostUnreachable, "10.1.1.3:80"),
            (FindingKind::HostUnreachable, "10.1.1.4:80"),
        ]
    );
    assert_eq!(findings[1].reason, Some(Reason::Timeout));
    assert!(
        findings[2].sentence.contains("ICMP unreachable"),
        "{}",
        findings[2].sentence
    );
}

#[test]
fn a_host_down_for_10_s_every_60_s_is_periodic_with_its_period() {
    // Checked every 2 s for 10 minutes: down 5 s of every 60 s.
    let sim = Sim::addresses(v4_range("10.1.1", 1, 10), 2_000, 300);
    let findings = sim.run(|i, _, t| {
        if i == 3 && (t - T0 - 7_000).rem_euclid(60_000) < 5_000 && t > T0 + 7_000 {
            Seen::Failed(Reason::Refused)
        } else {
            Seen::Up
        }
    });
    assert_eq!(kinds(&findings), [(FindingKind::Periodic, "10.1.1.4:80")]);
    let period = findings[0].period.expect("a period");
    assert_eq!(period.period_ms, 60_000);
    assert!(period.tolerance_ms <= 2_000, "{period:?}");
    assert!(period.occurrences >= 9, "{period:?}");
    assert!(
        findings[0].sentence.contains("fails every 60 s ± "),
        "{}",
        findings[0].sentence
    );
    let json = serde_json::to_value(findings[0].event()).unwrap();
    assert_eq!(json["period_s"], 60.0);
}

#[test]
fn a_subnet_dark_every_60_s_is_one_periodic_finding_for_the_subnet() {
    // 10.1.2.0/24 drops everything for 6 s of every 60 s; checked every 2 s for 10 minutes.
    let mut hosts = v4_range("10.1.1", 1, 254);
    hosts.extend(v4_range("10.1.2", 1, 254));
    let sim = Sim::addresses(hosts, 2_000, 300);
    let findings = sim.run(|_, ip, t| {
        let into = (t - T0 - 10_000).rem_euclid(60_000);
        if in_net(ip, "10.1.2.0/24") && t > T0 + 10_000 && into < 6_000 {
            Seen::Failed(Reason::Timeout)
        } else {
            Seen::Up
        }
    });
    assert_eq!(kinds(&findings), [(FindingKind::Periodic, "10.1.2.0/24")]);
    let f = &findings[0];
    let period = f.period.expect("a period");
    assert!((period.period_ms - 60_000).abs() <= 2_000, "{period:?}");
    assert_eq!(period.occurrences, 10, "{period:?}");
    assert_eq!(f.explains, 254);
    assert!(
        f.sentence.starts_with(
            "10.1.2.0/24: its addresses (254 of 254) timed out together every 60 s ± "
        ),
        "{}",
        f.sentence
    );
}

#[test]
fn a_name_that_is_nxdomain_every_other_round_is_dns_not_the_port() {
    let mut sim = Sim::addresses(v4_range("10.1.1", 1, 5), 10_000, 12);
    sim.hosts.push(SimHost {
        label: "api.test".into(),
        port: 443,
        name: true,
    });
    let findings = sim.run_with(
        |_, round| (round % 2 == 0).then(|| vec!["10.1.1.9".parse().unwrap()]),
        |_, _, _| Seen::Up,
    );
    assert_eq!(kinds(&findings), [(FindingKind::Dns, "api.test")]);
    let f = &findings[0];
    assert_eq!((f.affected, f.total), (6, 12));
    assert!(
        f.sentence
            .starts_with("api.test: failed to resolve in 6 of 12 rounds (6 NXDOMAIN) 05:48:1"),
        "{}",
        f.sentence
    );
    assert!(
        f.sentence
            .contains("while every address answered: the name flaps, not the port")
    );
}

#[test]
fn a_name_whose_answers_alternate_is_dns_with_the_addresses() {
    let mut sim = Sim::addresses(v4_range("10.1.1", 1, 5), 10_000, 10);
    sim.hosts.push(SimHost {
        label: "flip.test".into(),
        port: 80,
        name: true,
    });
    let findings = sim.run_with(
        |_, round| Some(vec![format!("10.2.0.{}", 1 + round % 2).parse().unwrap()]),
        |_, _, _| Seen::Up,
    );
    assert_eq!(kinds(&findings), [(FindingKind::Dns, "flip.test")]);
    let f = &findings[0];
    assert_eq!(f.addresses.len(), 2);
    assert!(
        f.sentence.contains("its answers changed in 9 of 10 rounds"),
        "{}",
        f.sentence
    );
}

#[test]
fn a_round_robin_name_with_one_dead_address_names_that_address() {
    let mut sim = Sim::addresses(v4_range("10.1.1", 1, 5), 10_000, 8);
    sim.hosts.push(SimHost {
        label: "api.test".into(),
        port: 80,
        name: true,
    });
    let set: Vec<IpAddr> = ["10.0.0.5", "10.0.0.6", "10.0.0.7"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let findings = sim.run_with(
        |_, _| Some(set.clone()),
        |_, ip, _| {
            if ip.to_string() == "10.0.0.7" {
                Seen::Failed(Reason::Refused)
            } else {
                Seen::Up
            }
        },
    );
    assert_eq!(kinds(&findings), [(FindingKind::RoundRobin, "api.test")]);
    let f = &findings[0];
    assert_eq!(f.addresses, vec!["10.0.0.7".parse::<IpAddr>().unwrap()]);
    assert_eq!((f.affected, f.total), (1, 3));
    assert!(
        f.sentence
            .starts_with("api.test: 1 of 3 addresses is refusing: 10.0.0.7"),
        "{}",
        f.sentence
    );
    let json = serde_json::to_value(f.event()).unwrap();
    assert_eq!(json["addresses"], serde_json::json!(["10.0.0.7"]));
}

#[test]
fn failures_across_many_subnets_in_the_same_seconds_are_a_fleet_burst() {
    // 16 subnets of 16 hosts, checked every 10 s; everything times out for 4 s.
    let mut hosts = Vec::new();
    for third in 0..16 {
        hosts.extend(v4_range(&format!("10.3.{third}"), 1, 16));
    }
    let sim = Sim::addresses(hosts, 10_000, 12);
    let (from, to) = (T0 + 62_000, T0 + 66_000);
    let findings = sim.run(|_, _, t| {
        if t >= from && t < to {
            Seen::Failed(Reason::Timeout)
        } else {
            Seen::Up
        }
    });
    assert_eq!(kinds(&findings), [(FindingKind::FleetBurst, "10.3.0.0/20")]);
    let f = &findings[0];
    assert_eq!(f.reason, Some(Reason::Timeout));
    assert!(f.from_unix_ms >= from && f.to_unix_ms < to, "{f:?}");
    assert!(f.affected >= 90 && f.affected <= 110, "{f:?}");
    // Hosts are checked 39 ms apart, so the 4 s burst caught hosts 52-153: 10.3.3.x-10.3.9.x.
    assert!(
        f.sentence.starts_with("10.3.0.0/20: 102 of 102 hosts, across 7 subnets, started failing together 05:49:02–05:49:05 UTC (timeout;"),
        "{}",
        f.sentence
    );
    assert_eq!(f.explains, f.affected);
}

#[test]
fn prober_side_failures_blame_no_target() {
    let sim = Sim::addresses(v4_range("10.1.1", 1, 50), 10_000, 4);
    let findings = sim.run(|i, _, t| {
        if i % 5 == 0 && t < T0 + 10_000 {
            Seen::Local
        } else {
            Seen::Up
        }
    });
    assert_eq!(
        kinds(&findings),
        [(FindingKind::ProberLimited, "this prober")]
    );
    let f = &findings[0];
    assert_eq!((f.failed_checks, f.affected, f.total), (10, 10, 50));
    assert!(
        f.sentence.contains("Cannot assign requested address"),
        "{}",
        f.sentence
    );
}

#[test]
fn a_target_down_from_one_vantage_point_only_is_a_path_problem() {
    let checks: Vec<(String, &str, i64, bool)> = (0..12)
        .flat_map(|r| {
            let ts = T0 + r * 10_000;
            [
                ("10.9.0.1:443".to_string(), "fra1", ts, false),
                ("10.9.0.1:443".to_string(), "iad1", ts + 1, true),
                ("10.9.0.2:443".to_string(), "fra1", ts + 2, true),
                ("10.9.0.2:443".to_string(), "iad1", ts + 3, true),
            ]
        })
        .collect();
    let findings = findings_of_stored(checks.iter().map(|(target, vantage, ts, up)| StoredCheck {
        target,
        vantage,
        address: Some(target.parse().unwrap()),
        ts_unix_ms: *ts,
        outcome: if *up { Outcome::Up } else { Outcome::Down },
        reason: (!up).then_some(Reason::Timeout),
        error: None,
    }));
    assert_eq!(
        kinds(&findings),
        [(FindingKind::PathProblem, "10.9.0.1:443")]
    );
    let f = &findings[0];
    assert_eq!(f.failing_vantages, ["fra1"]);
    assert_eq!(f.answering_vantages, ["iad1"]);
    assert!(
        f.sentence
            .contains("down from fra1 (12 of 12 checks failed, timeout"),
        "{}",
        f.sentence
    );
    assert!(
        f.sentence
            .contains("while iad1 reached it in all 12 checks: a path problem")
    );
}

#[test]
fn observations_without_addresses_still_show_a_path_problem_and_a_flapping_name() {
    use crate::vantage::Observation;
    let mut observations = Vec::new();
    for r in 0..12 {
        let ts = T0 + r * 10_000;
        let seen = |target: &str, vantage: &str, ts: i64, reason: Option<Reason>| Observation {
            address: None,
            error: None,
            target: target.into(),
            vantage: vantage.into(),
            ts_unix_ms: ts,
            up: reason.is_none(),
            reason,
        };
        observations.push(seen("db.test:5432", "fra1", ts, Some(Reason::Refused)));
        observations.push(seen("db.test:5432", "iad1", ts + 1, None));
        let dns = (r % 2 == 1).then_some(Reason::Dns);
        observations.push(seen("api.test:443", "fra1", ts + 2, dns));
        observations.push(seen("api.test:443", "iad1", ts + 3, dns));
    }
    observations.reverse(); // any order
    let findings = findings_of_observations(&observations);
    assert_eq!(
        kinds(&findings),
        [
            (FindingKind::PathProblem, "db.test:5432"),
            (FindingKind::Dns, "api.test"),
        ]
    );
    let dns = &findings[1];
    assert_eq!(dns.failing_vantages, ["fra1", "iad1"]);
    assert_eq!((dns.affected, dns.total), (12, 24));
    assert!(
        dns.sentence
            .starts_with("api.test: failed to resolve in 6 of 12 rounds")
            && dns.sentence.ends_with("(seen from fra1, iad1)"),
        "{}",
        dns.sentence
    );
}

#[test]
fn stored_targets_name_their_host_and_port() {
    assert_eq!(split_target("db.test:5432"), ("db.test".into(), 5432));
    assert_eq!(split_target("[::1]:80"), ("::1".into(), 80));
    assert_eq!(
        split_target("https://u@example.org/health"),
        ("example.org".into(), 443)
    );
    assert_eq!(
        split_target("http://127.0.0.1:8080/x"),
        ("127.0.0.1".into(), 8080)
    );
    assert_eq!(host_port_text("::1", 80), "[::1]:80");
}

#[test]
fn json_events_carry_the_documented_fields() {
    let sim = Sim::addresses(v4_range("10.1.1", 1, 3), 10_000, 2);
    let findings = sim.run(|i, _, _| {
        if i == 1 {
            Seen::Failed(Reason::Refused)
        } else {
            Seen::Up
        }
    });
    let json = serde_json::to_value(findings[0].event()).unwrap();
    assert_eq!(json["event"], "finding");
    assert_eq!(json["kind"], "service_down");
    assert_eq!(json["scope"], "10.1.1.2:80");
    assert_eq!(json["reason"], "refused");
    assert_eq!(json["from"], "2026-11-23T05:48:03Z");
    assert_eq!(json["to"], "2026-11-23T05:48:13Z");
    assert_eq!(json["from_unix_ms"], T0 + 3_333);
    assert_eq!(
        (json["affected"].as_u64(), json["total"].as_u64()),
        (Some(2), Some(2))
    );
    assert!(json.get("period_s").is_none() && json.get("addresses").is_none());
    assert!(
        json["sentence"]
            .as_str()
            .unwrap()
            .starts_with("10.1.1.2:80: refused")
    );
}

#[test]
fn utc_text_of_known_times() {
    assert_eq!(rfc3339(T0), "2026-11-23T05:48:00Z");
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    assert_eq!(rfc3339(253_402_300_799_999), "9999-12-31T23:59:59Z");
    assert_eq!(rfc3339(1_619_623_685_123), "2021-04-28T15:28:05Z");
    assert_eq!(window_text(T0 + 3_000, T0 + 8_999), "05:48:03–05:48:08 UTC");
    assert_eq!(window_text(T0, T0 + 999), "at 05:48:00 UTC");
    assert_eq!(
        window_text(T0, T0 + 86_400_000),
        "2026-11-23 05:48:00–2026-11-24 05:48:00 UTC"
    );
}

#[test]
fn time_buckets_stay_bounded_over_a_long_run_and_keep_every_check() {
    let mut buckets = Buckets::new();
    for i in 0..100_000i64 {
        buckets.add(T0 + i * 997, (i % 10 == 0).then_some(1));
    }
    buckets.add(T0 - 3_600_000, None);
    assert!(buckets.slots.len() <= MAX_BUCKETS);
    let checks: u64 = buckets.slots.iter().map(|b| u64::from(b.checks)).sum();
    let failures: u64 = buckets.slots.iter().map(|b| u64::from(b.failures)).sum();
    assert_eq!((checks, failures), (100_001, 10_000));
}

#[test]
fn the_per_series_accumulator_stays_small() {
    // 1,000,000 hosts: 40 MB of tallies, 8 MB of IPv4 addresses.
    assert!(
        std::mem::size_of::<Tally>() <= 40,
        "{}",
        std::mem::size_of::<Tally>()
    );
}

#[test]
fn prober_errors_are_recognised_by_their_text() {
    assert!(is_prober_error(
        Some(Reason::Other),
        Some("local error: Too many open files (os error 24)")
    ));
    assert!(!is_prober_error(
        Some(Reason::Refused),
        Some("local error: x")
    ));
    assert!(is_prober_error(
        Some(Reason::Other),
        Some("not started before the cycle ended (too many checks for --concurrency)")
    ));
    assert!(!is_prober_error(
        Some(Reason::Other),
        Some("Protocol error")
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the fleet's shape, a run where everything answers has no finding.
    #[test]
    fn every_check_answering_gives_no_finding(hosts in 1u32..600, rounds in 1i64..15, step in 1_000i64..20_000) {
        let sim = Sim::addresses((0..hosts).map(|i| format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)), step, rounds);
        prop_assert_eq!(sim.run(|_, _, _| Seen::Up), vec![]);
    }

    /// One flaky host, whatever its pattern, never makes a subnet outage or a fleet burst.
    #[test]
    fn a_single_flaky_host_never_makes_a_group_finding(
        hosts in 2u32..400,
        flaky in 0u32..400,
        pattern in proptest::collection::vec(any::<bool>(), 12),
        reason in prop::sample::select(vec![Reason::Refused, Reason::Timeout, Reason::Unreachable]),
    ) {
        let flaky = (flaky % hosts) as usize;
        let sim = Sim::addresses((0..hosts).map(|i| format!("10.0.{}.{}", i >> 8, i & 255)), 10_000, 12);
        let findings = sim.run(|i, _, t| {
            if i == flaky && pattern[((t - T0) / 10_000) as usize] { Seen::Failed(reason) } else { Seen::Up }
        });
        prop_assert!(findings.iter().all(|f| f.kind != FindingKind::SubnetOutage && f.kind != FindingKind::FleetBurst), "{:?}", kinds(&findings));
        prop_assert!(findings.len() <= 1);
    }

    /// Independent failures of 5 % of a 4,096-host fleet, each host at its own random times,
    /// make no subnet outage and no burst.
    #[test]
    fn scattered_random_failures_make_no_group_finding(seed in any::<u64>()) {
        let sim = Sim::addresses((0..4096u32).map(|i| format!("10.4.{}.{}", i >> 8, i & 255)), 10_000, 12);
        let hash = |i: usize, t: i64| {
            let mut x = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (t as u64).rotate_left(17);
            x = (x ^ (x >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x ^ (x >> 29)
        };
        let findings = sim.run(|i, _, t| {
            let failing_host = hash(i, 0) % 20 == 0;
            if failing_host && hash(i, t) % 3 == 0 { Seen::Failed(Reason::Timeout) } else { Seen::Up }
        });
        prop_assert!(findings.iter().all(|f| f.kind != FindingKind::SubnetOutage && f.kind != FindingKind::FleetBurst), "{:?}", kinds(&findings));
    }
}

#[test]
fn details_stay_small() {
    assert!(
        std::mem::size_of::<Detail>() <= 136,
        "{}",
        std::mem::size_of::<Detail>()
    );
    assert!(
        std::mem::size_of::<Episode>() <= 32,
        "{}",
        std::mem::size_of::<Episode>()
    );
}

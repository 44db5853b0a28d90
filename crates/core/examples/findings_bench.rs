//! Benchmark of the findings pass (see `bench/findings/run.sh`): the evidence of a
//! 1,000,000-host `ports` run, generated in-process and streamed into the engine, never stored.
//!
//!     findings_bench [findings|diagnosis|generate|results] [HOSTS] [ROUNDS]
//!
//! - `findings`: the findings engine (`observe` every check, then `finish`);
//! - `diagnosis`: today's `--explain` tables (`Diagnosis::observe`) over the same evidence, the
//!   reference;
//! - `generate`: the evidence alone, to subtract its cost from `findings`;
//! - `results`: the evidence built into `CheckResult`s (as the probes do), to subtract from
//!   `diagnosis`.
//!
//! The run: HOSTS addresses in 10.0.0.0/8 checked every 10 s for ROUNDS rounds, spread across
//! the interval as the scheduler spreads them, plus 1 % names (three addresses each). About 5 %
//! of the hosts fail, in mixed patterns: 16 dark /24s for 25 s and a refusing /20 for 3 rounds,
//! a 200 ms burst across the whole fleet, hosts refusing or timing out all run, random flaky
//! hosts, hosts down every 4th round, round-robin names with a dead address, names that are
//! NXDOMAIN every other round or whose answers alternate, and prober-side failures.
//!
//! Prints the time of each phase and the memory it added (VmHWM minus the RSS before it).

use netvantage_core::diagnosis::Diagnosis;
use netvantage_core::findings::{Evidence, FindingsEngine, Names};
use netvantage_core::{CheckResult, Reason};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const T0: i64 = 1_795_412_880_000;
const STEP_MS: i64 = 10_000;

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

struct Fleet {
    hosts: u32,
    rounds: i64,
}

/// One check, as the generator yields it.
struct Check {
    host: u32,
    is_name: bool,
    address: Option<IpAddr>,
    ts: i64,
    failure: Option<(Reason, &'static str)>,
}

impl Fleet {
    fn address(i: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0a00_0000 | (i + 256))
    }

    fn is_name(&self, i: u32) -> bool {
        i % 100 == 99
    }

    /// Every check of the run, in time order, to `sink`.
    fn generate(&self, mut sink: impl FnMut(&Check)) {
        let n = i64::from(self.hosts);
        for round in 0..self.rounds {
            for i in 0..self.hosts {
                let ts = T0 + round * STEP_MS + i64::from(i) * STEP_MS / n;
                if self.is_name(i) {
                    self.name_round(i, round, ts, &mut sink);
                    continue;
                }
                let ip = Fleet::address(i);
                sink(&Check {
                    host: i,
                    is_name: false,
                    address: Some(IpAddr::V4(ip)),
                    ts,
                    failure: self.address_failure(i, ip, round, ts),
                });
            }
        }
    }

    fn address_failure(
        &self,
        i: u32,
        ip: Ipv4Addr,
        round: i64,
        ts: i64,
    ) -> Option<(Reason, &'static str)> {
        let bits = u32::from(ip);
        let h = mix(u64::from(i));
        let refused = Some((Reason::Refused, "Connection refused (os error 111)"));
        let timeout = Some((Reason::Timeout, "no answer within 2s"));
        // 16 dark /24s (10.0.7.0/24, 10.1.7.0/24, ... 10.15.7.0/24) for 25 s from 30 s.
        if (bits >> 8) & 0xff == 7
            && (bits >> 16) & 0xff < 16
            && (T0 + 30_000..T0 + 55_000).contains(&ts)
        {
            return timeout;
        }
        // One /20 refusing in rounds 6-8.
        if bits >> 12 == 0xa055 && (6..9).contains(&round) {
            return refused;
        }
        // 200 ms in round 9 when everything timed out: 2 % of the fleet.
        let into = ts - T0 - 9 * STEP_MS;
        if (5_000..5_200).contains(&into) {
            return timeout;
        }
        match h % 1000 {
            0..=9 => refused,
            10..=19 => timeout,
            20..=23 if mix(h ^ round as u64).is_multiple_of(3) => refused,
            24 if round % 4 == 1 => refused,
            25 if round == 2 => Some((
                Reason::Other,
                "local error: Cannot assign requested address (os error 99)",
            )),
            _ => None,
        }
    }

    fn name_round(&self, i: u32, round: i64, ts: i64, sink: &mut impl FnMut(&Check)) {
        let h = mix(u64::from(i) ^ 0xd15);
        let into = ts - T0 - 9 * STEP_MS;
        let burst = (5_000..5_200).contains(&into);
        let base = 0x0b00_0000 | (i * 4);
        let kind = h % 20;
        if kind == 1 && round % 2 == 1 {
            sink(&Check {
                host: i,
                is_name: true,
                address: None,
                ts,
                failure: Some((Reason::Dns, "name.test: NXDOMAIN")),
            });
            return;
        }
        let shift = if kind == 2 { (round % 2) as u32 * 3 } else { 0 };
        for k in 0..3u32 {
            let ip = Ipv4Addr::from(base + k + shift);
            let failure = if burst {
                Some((Reason::Timeout, "no answer within 2s"))
            } else {
                (kind == 0 && k == 2)
                    .then_some((Reason::Refused, "Connection refused (os error 111)"))
            };
            sink(&Check {
                host: i,
                is_name: true,
                address: Some(IpAddr::V4(ip)),
                ts,
                failure,
            });
        }
    }
}

struct FleetNames;

impl Names for FleetNames {
    fn host(&self, host: u32) -> (String, u16) {
        if host % 100 == 99 {
            (format!("name-{host}.test"), 443)
        } else {
            (Fleet::address(host).to_string(), 443)
        }
    }
    fn vantage(&self, _: u16) -> String {
        String::new()
    }
}

/// (current RSS, peak RSS) in KiB, from /proc/self/status.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn seconds(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "findings".into());
    let hosts: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(12);
    let fleet = Fleet { hosts, rounds };
    let (rss_before, _) = memory_kib();
    let started = Instant::now();
    let mut checks = 0u64;
    let mut failures = 0u64;
    let mut failing_hosts = vec![false; hosts as usize];
    match mode.as_str() {
        "generate" => {
            fleet.generate(|c| {
                checks += 1;
                if c.failure.is_some() {
                    failures += 1;
                    failing_hosts[c.host as usize] = true;
                }
                black_box(c);
            });
            let failing = failing_hosts.iter().filter(|f| **f).count();
            println!(
                "generate: {checks} checks, {failures} failed, {failing} of {hosts} hosts failed at least once ({:.1} %), {} s",
                100.0 * failing as f64 / f64::from(hosts),
                seconds(started.elapsed())
            );
        }
        "findings" => {
            drop(failing_hosts);
            let mut engine = FindingsEngine::with_series(hosts as usize);
            fleet.generate(|c| {
                checks += 1;
                engine.observe(&Evidence {
                    series: c.host,
                    host: c.host,
                    vantage: 0,
                    is_name: c.is_name,
                    address: c.address,
                    ts_unix_ms: c.ts,
                    up: c.failure.is_none(),
                    reason: c.failure.map(|f| f.0),
                    error: c.failure.map(|f| f.1),
                });
            });
            let observed = started.elapsed();
            let (_, peak_observe) = memory_kib();
            let finishing = Instant::now();
            let findings = engine.finish(&FleetNames);
            let finished = finishing.elapsed();
            let (_, peak) = memory_kib();
            let mut by_kind: Vec<(&str, usize)> = Vec::new();
            for f in &findings {
                match by_kind.iter_mut().find(|(k, _)| *k == f.kind.as_str()) {
                    Some((_, n)) => *n += 1,
                    None => by_kind.push((f.kind.as_str(), 1)),
                }
            }
            println!(
                "findings: {checks} checks; observe {} s (with generation), finish {} s, total {} s",
                seconds(observed),
                seconds(finished),
                seconds(started.elapsed())
            );
            println!(
                "findings: memory added {:.1} MB after observe, {:.1} MB peak (RSS before {:.1} MB)",
                (peak_observe - rss_before) as f64 / 1024.0,
                (peak - rss_before) as f64 / 1024.0,
                rss_before as f64 / 1024.0
            );
            let counts: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!("findings: {} ({})", findings.len(), counts.join(", "));
            if std::env::var_os("NV_BENCH_LIST").is_some() {
                for f in findings
                    .iter()
                    .filter(|f| f.kind.as_str() == "subnet_outage")
                    .take(40)
                {
                    println!(
                        "    {} {} {}..{} {}/{}",
                        f.scope,
                        f.reason.map_or("-", |r| r.as_str()),
                        f.from_unix_ms - T0,
                        f.to_unix_ms - T0,
                        f.affected,
                        f.total
                    );
                }
            }
            let mut shown = Vec::new();
            for f in &findings {
                if !shown.contains(&f.kind) {
                    shown.push(f.kind);
                    println!("  [{}] {}", f.kind.as_str(), f.sentence);
                }
            }
        }
        "diagnosis" | "results" => {
            drop(failing_hosts);
            let observe = mode == "diagnosis";
            let mut diagnosis = Diagnosis::default();
            let labels: Vec<String> = (0..hosts).map(|h| FleetNames.host(h).0).collect();
            let (rss_labels, _) = memory_kib();
            let started = Instant::now();
            fleet.generate(|c| {
                checks += 1;
                let result = CheckResult::tcp(
                    labels[c.host as usize].clone(),
                    c.address.map(|ip| SocketAddr::new(ip, 443)),
                    c.ts,
                    Duration::from_millis(1),
                    c.failure.map(|(r, e)| (r, e.to_string())),
                );
                if observe {
                    diagnosis.observe(&result);
                }
                black_box(result);
            });
            let observed = started.elapsed();
            let text = diagnosis.render(20);
            let (_, peak) = memory_kib();
            println!(
                "{mode}: {checks} checks; observe {} s (with generation and building each CheckResult), render {} s",
                seconds(observed),
                seconds(started.elapsed() - observed)
            );
            println!(
                "{mode}: memory added {:.1} MB peak (over the RSS with the host labels, {:.1} MB)",
                (peak - rss_labels) as f64 / 1024.0,
                rss_labels as f64 / 1024.0
            );
            black_box(text);
        }
        other => {
            eprintln!("unknown mode {other:?}: findings, diagnosis, generate or results");
            std::process::exit(2);
        }
    }
}

//! End-to-end specification of `ports --explain`'s findings: each scenario builds a fleet with
//! `nv-testfleet` in a namespace of its own (a timed prefix outage, a host in a restart loop,
//! flaky DNS, a dead round-robin address, refusals and timeouts, a fleet-wide blackout), runs
//! the real binary against it, and checks the finding's kind, scope, reason and window — and
//! that no other finding appears.

use netvantage_testkit::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Fast rounds: every host every 300 ms, a dead one given up on after 150 ms.
const FAST: &str = "--interval 300ms --timeout 150ms";

fn words(args: &str) -> Vec<&str> {
    args.split_whitespace().collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A fleet started in `ns` with `args`, and when it said `ready` (its outages are timed from
/// then).
fn fleet_at(ns: &Netns, args: &str) -> (Fleet, i64) {
    let fleet = ns.fleet(&words(args));
    (fleet, now_ms())
}

/// `netvantage ports ARGS` in the namespace, `input` on stdin.
fn ports_in(ns: &Netns, args: &str, input: &str) -> Run {
    nv().arg("ports")
        .args(words(args))
        .stdin(input)
        .in_netns(ns)
        .run()
}

/// `ports ARGS --explain --format json`: the run, and its finding events (stderr).
fn explain_json(ns: &Netns, args: &str, input: &str) -> (Run, Vec<Value>) {
    let run = ports_in(ns, &format!("{args} --explain --format json"), input);
    let findings = run
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v| v["event"] == "finding")
        .collect();
    (run, findings)
}

/// A DNS scenario: the fleet serves `zone` (with a TTL of 0, so every round asks again) and
/// `ports` checks `input` for `rounds` rounds through it.
fn dns_findings(zone: &str, rounds: u32, input: &str) -> Vec<Value> {
    let ns = Netns::new();
    let (_fleet, _) = fleet_at(
        &ns,
        &format!("--port 80 --dns 127.0.0.53:53 --ttl 0 {zone}"),
    );
    let args = format!("80 --rounds {rounds} --dns-server 127.0.0.53 {FAST}");
    explain_json(&ns, &args, input).1
}

/// (kind, scope) of each finding, to compare whole.
fn kinds(findings: &[Value]) -> Vec<(String, String)> {
    findings
        .iter()
        .map(|f| (text(f, "kind").to_string(), text(f, "scope").to_string()))
        .collect()
}

fn pair(kind: &str, scope: &str) -> (String, String) {
    (kind.to_string(), scope.to_string())
}

fn text<'a>(finding: &'a Value, field: &str) -> &'a str {
    finding[field].as_str().unwrap_or_default()
}

fn counts(finding: &Value) -> (u64, u64) {
    let n = |field: &str| finding[field].as_u64().unwrap_or(u64::MAX);
    (n("affected"), n("total"))
}

fn window(finding: &Value) -> (i64, i64) {
    (
        finding["from_unix_ms"].as_i64().expect("from_unix_ms"),
        finding["to_unix_ms"].as_i64().expect("to_unix_ms"),
    )
}

fn hosts(prefix: &str, from: u32, to: u32) -> String {
    (from..=to).map(|i| format!("{prefix}.{i}\n")).collect()
}

#[test]
fn a_prefix_dark_for_a_window_is_one_subnet_outage_found_at_its_real_size() {
    let ns = Netns::new();
    // 127.20.1.0/25 drops every SYN from 1.0 s to 2.5 s; the rest of the /24 answers.
    let (_fleet, ready) = fleet_at(&ns, "--port 80 --outage 127.20.1.0/25=blackhole@1000+1500");
    let args = format!("80 --rounds 12 {FAST}");
    let (run, findings) = explain_json(&ns, &args, &hosts("127.20.1", 1, 254));
    assert_eq!(
        run.json_lines().len(),
        254,
        "stdout stays one JSON object per host"
    );
    assert_eq!(
        kinds(&findings),
        [pair("subnet_outage", "127.20.1.0/25")],
        "{findings:#?}"
    );
    let f = &findings[0];
    assert_eq!(f["reason"], "timeout");
    assert_eq!(counts(f), (127, 127));
    assert_eq!(f["explains"], 127);
    // Within one check interval of the outage (a loaded machine delays checks and changes).
    let (from, to) = window(f);
    assert!(
        from >= ready + 990 && to <= ready + 2_800 && to > from + 900,
        "window {from}..{to} vs the outage {}..{}",
        ready + 1000,
        ready + 2500
    );
    let sentence = text(f, "sentence");
    assert!(
        sentence.starts_with("127.20.1.0/25: all 127 addresses timed out ")
            && sentence.contains(
                "and nothing else failed: a network path or firewall for that subnet, not the hosts"
            ),
        "{sentence}"
    );
}

#[test]
fn a_host_in_a_restart_loop_is_periodic_with_its_period() {
    let ns = Netns::new();
    // 127.0.0.4 refuses for 400 ms every 1.5 s; checked every 100 ms for 12 s.
    let (_fleet, _) = fleet_at(&ns, "--port 80 --outage 127.0.0.4=refused@300+400/1500");
    let args = "80 --interval 100ms --timeout 50ms --rounds 120";
    let (_, findings) = explain_json(&ns, args, &hosts("127.0.0", 1, 6));
    assert_eq!(
        kinds(&findings),
        [pair("periodic", "127.0.0.4:80")],
        "{findings:#?}"
    );
    let f = &findings[0];
    assert_eq!(f["reason"], "refused");
    let period = f["period_s"].as_f64().expect("period_s");
    let tolerance = f["tolerance_s"].as_f64().expect("tolerance_s");
    assert!(
        (period - 1.5).abs() <= 0.2 && tolerance <= 0.3,
        "period {period} ± {tolerance}"
    );
    assert!(f["occurrences"].as_u64().unwrap_or(0) >= 6, "{f}");
    assert!(
        text(f, "sentence").contains("a cron job, a restart loop or a health-check timeout"),
        "{f}"
    );
}

#[test]
fn a_name_that_is_nxdomain_every_other_query_is_a_dns_finding_not_the_port() {
    let findings = dns_findings(
        "--zone-flaky api.test=127.0.0.9",
        8,
        "api.test\n127.0.0.1\n127.0.0.2\n",
    );
    assert_eq!(kinds(&findings), [pair("dns", "api.test")], "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f["reason"], "dns");
    assert_eq!(counts(f), (4, 8));
    let sentence = text(f, "sentence");
    assert!(
        sentence.starts_with("api.test: failed to resolve in 4 of 8 rounds (4 NXDOMAIN)")
            && sentence.ends_with("while every address answered: the name flaps, not the port."),
        "{sentence}"
    );
}

#[test]
fn a_name_whose_answers_alternate_is_a_dns_finding_naming_both_answers() {
    let findings = dns_findings(
        "--zone-alternate flip.test=127.0.0.11|127.0.0.12",
        6,
        "flip.test\n127.0.0.1\n",
    );
    assert_eq!(
        kinds(&findings),
        [pair("dns", "flip.test")],
        "{findings:#?}"
    );
    let f = &findings[0];
    assert_eq!(
        f["addresses"],
        serde_json::json!(["127.0.0.11", "127.0.0.12"])
    );
    // Every round asks again and gets the other set: 5 changes in 6 rounds, fewer if a query
    // was retried on a busy machine (the retry takes the next answer).
    let (changes, rounds) = counts(f);
    assert!(rounds == 6 && changes >= 3, "{f}");
    assert!(
        text(f, "sentence").contains(&format!("its answers changed in {changes} of 6 rounds")),
        "{f}"
    );
}

#[test]
fn a_round_robin_name_with_one_dead_address_names_it() {
    let findings = dns_findings(
        "--refused 127.0.0.7 --zone api.test=127.0.0.5,127.0.0.6,127.0.0.7",
        4,
        "api.test\n127.0.0.1\n",
    );
    assert_eq!(
        kinds(&findings),
        [pair("round_robin", "api.test")],
        "{findings:#?}"
    );
    let f = &findings[0];
    assert_eq!(f["reason"], "refused");
    assert_eq!(f["addresses"], serde_json::json!(["127.0.0.7"]));
    assert_eq!(counts(f), (1, 3));
    assert!(
        text(f, "sentence").starts_with("api.test: 1 of 3 addresses is refusing: 127.0.0.7"),
        "{f}"
    );
}

#[test]
fn refusals_on_one_host_and_timeouts_on_another_are_told_apart_in_text_after_the_verdicts() {
    let ns = Netns::new();
    let (_fleet, _) = fleet_at(&ns, "--port 80 --refused 127.0.0.2 --blackhole 127.0.0.3");
    let run = ports_in(
        &ns,
        &format!("80 --rounds 3 --explain {FAST}"),
        &hosts("127.0.0", 1, 4),
    );
    let lines = run.lines();
    assert_eq!(
        lines[..5],
        [
            "127.0.0.1 is reporting ok",
            "127.0.0.2 is down",
            "127.0.0.3 is down",
            "127.0.0.4 is reporting ok",
            "",
        ],
        "the verdict lines come first, unchanged\n{}",
        run.stdout
    );
    assert_eq!(lines[5], "== Findings: 2 ==", "{}", run.stdout);
    assert!(
        lines[6].starts_with("[service_down] 127.0.0.2:80: refused in 3 of 3 rounds ")
            && lines[6].contains("nothing listens on the port"),
        "{}",
        run.stdout
    );
    assert_eq!(lines[7], "");
    assert!(
        lines[8].starts_with("[host_unreachable] 127.0.0.3:80: timed out in 3 of 3 rounds ")
            && lines[8].contains("a firewall drops the packets"),
        "{}",
        run.stdout
    );
    assert_eq!(lines[9], "");
    assert!(
        lines[10].starts_with("== Diagnosis: "),
        "then today's tables\n{}",
        run.stdout
    );
}

#[test]
fn failures_across_many_subnets_at_once_are_a_fleet_burst_not_a_subnet() {
    let ns = Netns::new();
    // Everything drops SYNs from 1.0 s to 1.7 s: 16 subnets of 4 hosts all fail together.
    let (_fleet, ready) = fleet_at(&ns, "--port 80 --outage 127.0.0.0/8=blackhole@1000+700");
    let input: String = (0..16)
        .flat_map(|subnet| (1..=4).map(move |host| format!("127.30.{subnet}.{host}\n")))
        .collect();
    let (_, findings) = explain_json(&ns, &format!("80 --rounds 12 {FAST}"), &input);
    assert_eq!(
        kinds(&findings),
        [pair("fleet_burst", "127.30.0.0/20")],
        "{findings:#?}"
    );
    let f = &findings[0];
    assert_eq!(f["reason"], "timeout");
    assert_eq!(f["affected"], 64, "{f}");
    let (from, to) = window(f);
    assert!(
        from >= ready + 990 && to <= ready + 2_000,
        "window {from}..{to} vs the outage {}..{}",
        ready + 1000,
        ready + 1700
    );
    assert!(
        text(f, "sentence").contains("across 16 subnets, started failing together"),
        "{f}"
    );
}

#[test]
fn a_clean_fleet_has_no_finding() {
    let ns = Netns::new();
    let (_fleet, _) = fleet_at(&ns, "--port 80");
    let args = format!("80 --rounds 3 {FAST}");
    let (run, findings) = explain_json(&ns, &args, &hosts("127.0.3", 1, 50));
    assert_eq!(findings, Vec::<Value>::new());
    assert_eq!(run.code, 0);
    let text = ports_in(
        &ns,
        &format!("80 --rounds 2 --explain {FAST}"),
        "127.0.0.1\n",
    );
    assert!(
        text.stdout.contains("\n== Findings: none ==\n"),
        "{}",
        text.stdout
    );
}

/// Runs an agent in `ns` for 2 s as vantage point `vantage`, checking `hosts` on port 80 fast,
/// into `scratch`'s `nv.db` (several runs share it); returns the store's path.
fn agent_into_store(ns: &Netns, scratch: &Scratch, vantage: &str, hosts: &[String]) -> PathBuf {
    let config = scratch.write(
        format!("{vantage}.yaml"),
        format!(
            "vantage: {vantage}\ntcp:\n  - name: web\n    port: 80\n    hosts: [{}]\n    interval: 300ms\n    timeout: 150ms\nsinks:\n  sqlite: {{path: nv.db}}\n",
            hosts.join(", ")
        ),
    );
    nv().args([
        "agent",
        "--config",
        config.to_str().unwrap(),
        "--run-for",
        "2s",
    ])
    .current_dir(scratch.path())
    .in_netns(ns)
    .run()
    .assert_code(0);
    scratch.path().join("nv.db")
}

/// `report --sqlite DB --explain --format json`: the run and its finding events (stderr).
fn report_findings(db: &Path) -> (Run, Vec<Value>) {
    let run = nv()
        .args([
            "report",
            "--sqlite",
            db.to_str().unwrap(),
            "--explain",
            "--format",
            "json",
        ])
        .run();
    let findings = run
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "finding")
        .collect();
    (run, findings)
}

#[test]
fn report_explain_names_the_subnet_that_went_dark_in_a_stored_window() {
    // The same findings over stored results: an agent in the namespace checks two /24s, one of
    // which refuses everything, and `report --explain` over its SQLite store names that subnet.
    let ns = Netns::new();
    let (_fleet, _) = fleet_at(&ns, "--port 80 --refused 127.20.1.0/24");
    let scratch = Scratch::new();
    let hosts: Vec<String> = (1..=20)
        .flat_map(|i| [format!("127.20.1.{i}"), format!("127.20.2.{i}")])
        .collect();
    let db = agent_into_store(&ns, &scratch, "lab", &hosts);
    let (json, findings) = report_findings(&db);
    let subnet = findings
        .iter()
        .find(|f| f["kind"] == "subnet_outage")
        .unwrap_or_else(|| panic!("no subnet finding in {findings:?}\n{}", json.stderr));
    assert!(
        subnet["scope"].as_str().unwrap().starts_with("127.20.1.0/"),
        "{subnet}"
    );
    assert_eq!(subnet["reason"], "refused", "{subnet}");
    assert!(
        !findings.iter().any(|f| f["scope"]
            .as_str()
            .is_some_and(|s| s.starts_with("127.20.2."))),
        "the healthy subnet is blamed for nothing: {findings:?}"
    );
    let text = nv()
        .args(["report", "--sqlite", db.to_str().unwrap(), "--explain"])
        .run();
    assert!(text.stdout.contains("== Findings"), "{}", text.stdout);
    assert!(text.stdout.contains("127.20.1.0/"), "{}", text.stdout);
}

#[test]
fn report_explain_names_a_path_problem_seen_from_one_vantage_point_only() {
    // Two vantage points check the same hosts into one store: from `fra1` (a namespace whose
    // fleet refuses 127.21.1.0/24) they are down, from `iad1` (a clean fleet) they answer.
    // The hosts are fine; the path from fra1 is not.
    let scratch = Scratch::new();
    let hosts: Vec<String> = (1..=8).map(|i| format!("127.21.1.{i}")).collect();
    let mut db = PathBuf::new();
    for (vantage, fleet_args) in [
        ("fra1", "--port 80 --refused 127.21.1.0/24"),
        ("iad1", "--port 80"),
    ] {
        let ns = Netns::new();
        let (_fleet, _) = fleet_at(&ns, fleet_args);
        db = agent_into_store(&ns, &scratch, vantage, &hosts);
    }
    let (json, findings) = report_findings(&db);
    let paths: Vec<&Value> = findings
        .iter()
        .filter(|f| f["kind"] == "path_problem")
        .collect();
    assert!(
        !paths.is_empty(),
        "no path_problem in {findings:?}\n{}",
        json.stderr
    );
    for path in &paths {
        assert!(
            path.to_string().contains("fra1") && !text(path, "sentence").is_empty(),
            "the finding names the vantage point the path fails from: {path}"
        );
    }
    assert!(
        !findings
            .iter()
            .any(|f| f["kind"] == "service_down" || f["kind"] == "host_unreachable"),
        "hosts that answer another vantage point are not blamed: {findings:?}"
    );
    // The verdict lines say the same: down from fra1 only.
    assert!(json.stdout.contains("fra1"), "{}", json.stdout);
}

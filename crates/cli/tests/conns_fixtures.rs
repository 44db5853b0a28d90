//! `netvantage conns --proc-root DIR` over fixture tables with known entries: IPv4, IPv6,
//! IPv4-mapped, every TCP state, malformed lines. This is also the container layout (the host's
//! /proc mounted elsewhere), tested without a Docker engine. The metrics endpoint is checked
//! here too because fixture input makes every counter exact.

use netvantage_testkit::*;
use std::path::Path;
use std::time::Duration;

/// Every connection of `before/`, sorted by (source, destination): inbound ones (local port is
/// a listening port: 0.0.0.0:80 and the dual-stack [::]:22) print remote -> local.
const BEFORE: [&str; 13] = [
    "New connection: 10.0.0.5:41001 -> 198.51.100.7:443",
    "New connection: 10.0.0.5:41002 -> 198.51.100.7:443",
    "New connection: 10.0.0.5:41003 -> 198.51.100.7:443",
    "New connection: 10.0.0.5:41004 -> 198.51.100.7:443",
    "New connection: 10.0.0.5:41005 -> 198.51.100.7:443",
    "New connection: 10.162.15.225:55474 -> 169.254.169.254:80",
    "New connection: 192.0.2.56:5973 -> 10.0.0.5:80",
    "New connection: 192.0.2.56:5974 -> 10.0.0.5:22",
    "New connection: 192.0.2.57:40001 -> 10.0.0.5:80",
    "New connection: 192.0.2.58:40002 -> 10.0.0.5:80",
    "New connection: 192.0.2.59:40003 -> 10.0.0.5:80",
    "New connection: 192.0.2.60:40004 -> 10.0.0.5:80",
    "New connection: [::1]:50000 -> [::1]:631",
];

/// What `after/` adds to `before/` (the rest of `after/` is either unchanged or gone).
const AFTER: [&str; 3] = [
    "New connection: 10.162.15.225:55475 -> 169.254.169.254:80",
    "New connection: 203.0.113.9:33000 -> 10.0.0.5:80",
    "New connection: [2001:db8::3]:40001 -> [2001:db8::1]:22",
];

fn expected_before() -> Vec<String> {
    let mut lines: Vec<String> = BEFORE.iter().map(|s| s.to_string()).collect();
    // IPv6 sorts after IPv4.
    lines.push("New connection: [2001:db8::2]:40000 -> [2001:db8::1]:22".to_string());
    lines
}

#[test]
fn include_existing_prints_every_fixture_connection_exactly_and_skips_malformed_lines() {
    let root = proc_fixture("before");
    let run = nv()
        .args([
            "conns",
            "--proc-root",
            root.to_str().unwrap(),
            "--include-existing",
            "--count",
            "1",
        ])
        .run();
    run.assert_success();
    let events: Vec<&str> = run.stdout.lines().map(strip_timestamp).collect();
    assert_eq!(events, expected_before());
    let stderr = &run.stderr;
    let tcp = root.join("net/tcp");
    let warning = format!(
        "skipped 5 malformed line(s); first: {}:15: expected at least 10 fields, found 2",
        tcp.display()
    );
    assert!(stderr.contains(&warning), "stderr: {stderr}");
}

#[test]
fn baseline_is_silent_and_a_changed_table_prints_only_the_new_connections() {
    let dir = ProcDir::new();
    let mut conns = Conns::start(nv().args([
        "-v",
        "conns",
        "--proc-root",
        dir.path(),
        "--interval",
        "100ms",
    ]));
    conns.wait_baseline();
    dir.load("after");
    let expected: Vec<String> = AFTER.iter().map(|s| s.to_string()).collect();
    conns.wait_events(&expected);
    assert_eq!(conns.settle(Duration::from_millis(100), 3), expected);
    assert_eq!(conns.terminate(), 0);
}

#[test]
fn timestamps_are_utc_unless_local_time() {
    let root = proc_fixture("before");
    let run = |extra: &[&str]| {
        let run = nv()
            .env("TZ", "UTC-5") // POSIX: five hours east of UTC
            .args([
                "conns",
                "--proc-root",
                root.to_str().unwrap(),
                "--include-existing",
                "--count",
                "1",
            ])
            .args(extra)
            .run();
        let line = run.stdout.lines().next().unwrap().to_string();
        time_of(&line)
    };
    let started = std::time::Instant::now();
    let utc = run(&[]);
    let local = run(&["--local-time"]);
    // The second run starts later: its clock may have crossed a second boundary or more.
    let later = started.elapsed().as_secs() as i64 + 1;
    let diff = (local - utc).rem_euclid(24 * 3600);
    assert!(
        (5 * 3600..=5 * 3600 + later).contains(&diff),
        "UTC {utc}s vs local {local}s (seconds of day), runs {later}s apart at most"
    );
}

/// Seconds since midnight of a line's timestamp.
fn time_of(line: &str) -> i64 {
    let hms: Vec<i64> = line[11..19]
        .split(':')
        .map(|p| p.parse().unwrap())
        .collect();
    hms[0] * 3600 + hms[1] * 60 + hms[2]
}

#[test]
fn usage_errors_exit_3_and_name_the_problem() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--proc-root", "/nonexistent-nvc"],
            "/nonexistent-nvc/net/tcp",
        ),
        (
            &["--source", "netlink", "--proc-root", "/proc"],
            "--proc-root only applies to --source proc",
        ),
        (&["--interval", "0s"], "must be greater than zero"),
        (&["--allow", "10.0.0.0/33"], "10.0.0.0/33"),
        (
            &["--block", "--shared", "--dry-run"],
            "--shared reads the bans other hosts publish: it needs --sink kafka:BROKERS",
        ),
    ];
    for (args, message) in cases {
        let run = nv().arg("conns").args(args).args(["--count", "1"]).run();
        assert_eq!(run.code, 3, "{args:?}: {run:?}");
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn help_shows_an_example() {
    let run = nv().args(["conns", "--help"]).run();
    let help = &run.stdout;
    assert!(
        help.contains("Examples:") && help.contains("netvantage conns --block"),
        "{help}"
    );
}

#[test]
fn metrics_endpoint_counts_exactly_and_passes_promtool() {
    require_tool("promtool", "prometheus");
    let ns = Netns::new();
    let dir = ProcDir::new();
    let mut conns = ns.conns(&[
        "--proc-root",
        dir.path(),
        "--interval",
        "100ms",
        "--include-existing",
        "--metrics-addr",
        "127.0.0.1:9464",
    ]);
    conns.wait_events(&expected_before());
    dir.load("after");
    let after: Vec<String> = AFTER.iter().map(|s| s.to_string()).collect();
    conns.wait_events(&after);

    let response = ns.run_in(|| scrape("127.0.0.1:9464"));
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    for line in [
        "netvantage_new_connections_total{direction=\"inbound\"} 9",
        "netvantage_new_connections_total{direction=\"outbound\"} 8",
        "netvantage_port_scans_total 0",
        "netvantage_blocked_sources 0",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in\n{body}"
        );
    }
    assert!(
        body.contains("netvantage_poll_duration_seconds_bucket{le="),
        "{body}"
    );
    // Every poll of `before/` skips its 5 malformed lines again.
    let malformed = metric(body, "netvantage_malformed_lines_total") as u64;
    assert!(malformed >= 5 && malformed.is_multiple_of(5), "{malformed}");

    let checked = TestCommand::new("promtool")
        .args(["check", "metrics"])
        .stdin(body)
        .in_netns(&ns)
        .run();
    assert_eq!(
        checked.code, 0,
        "promtool check metrics failed:\n{}{}\n{body}",
        checked.stdout, checked.stderr
    );
    assert_eq!(conns.terminate(), 0);
}

#[test]
fn dockerfile_entrypoint_reads_a_mounted_proc() {
    // No Docker engine here: run the image's exact ENTRYPOINT with the host /proc mount point
    // replaced by a directory holding fixture tables, as `-v /proc:/host/proc:ro` would.
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/conns/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    let entrypoint = text
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("ENTRYPOINT line");
    let argv: Vec<String> = serde_json::from_str(entrypoint).expect("exec-form ENTRYPOINT");
    assert_eq!(argv[0], "netvantage");
    let mount = proc_fixture("before");
    let mount = mount.to_str().unwrap();
    assert!(argv.iter().any(|a| a == "/host/proc"), "{argv:?}");
    let args: Vec<String> = argv[1..]
        .iter()
        .map(|a| a.replace("/host/proc", mount))
        .collect();
    let run = nv()
        .args(&args)
        .args(["--include-existing", "--count", "1"])
        .run();
    run.assert_success();
    let events: Vec<&str> = run.stdout.lines().map(strip_timestamp).collect();
    assert_eq!(events, expected_before());
}

#[test]
fn a_sink_that_cannot_be_used_is_a_usage_error_before_any_poll() {
    let root = proc_fixture("before");
    let root = root.to_str().unwrap();
    for (sink, needle) in [
        ("nope", "is not a sink"),
        (
            "sqlite:/nonexistent-netvantage-dir/conns.db",
            "does not exist",
        ),
    ] {
        let run = nv()
            .args(["conns", "--proc-root", root, "--count", "1", "--sink", sink])
            .run();
        assert_eq!(run.code, 3, "{sink}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{sink}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{sink}: {}", run.stdout);
    }
}

//! End-to-end specification of `netvantage ports`, against real sockets: loopback listeners, and
//! a simulated fleet (up, refused, blackholed, flapping hosts and a DNS server) inside a network
//! namespace each test creates.

use netvantage_testkit::*;
use serde_json::Value;
use std::time::Duration;

const FAST: &[&str] = &["--interval", "300ms", "--timeout", "150ms"];

/// The fleet every namespace test uses: port 80; 127.0.0.2 refuses, 127.0.0.3 drops SYNs,
/// 127.0.0.4 flaps; a DNS server with a round-robin name whose second address refuses.
fn standard_fleet(ns: &Netns) -> Fleet {
    ns.fleet(&[
        "--port",
        "80",
        "--refused",
        "127.0.0.2",
        "--blackhole",
        "127.0.0.3",
        "--flap",
        "127.0.0.4",
        "--flap-period-ms",
        "450",
        "--dns",
        "127.0.0.53:53",
        "--zone",
        "web.test=127.0.0.1,127.0.0.2",
        "--zone",
        "ok.test=127.0.0.9",
    ])
}

fn ports_in(ns: &Netns, args: &[&str], input: &str) -> Run {
    nv().arg("ports").args(args).stdin(input).in_netns(ns).run()
}

const FLEET_INPUT: &str =
    "127.0.0.1\n127.0.0.2\n127.0.0.3\n127.0.0.4\nweb.test\nok.test\nnx.test\n[::1]\n";

#[test]
fn mixed_fleet_prints_exact_verdict_lines_in_input_order_and_exits_2() {
    let ns = Netns::new();
    let _fleet = standard_fleet(&ns);
    let mut args = vec!["80", "--rounds", "6", "--dns-server", "127.0.0.53"];
    args.extend(FAST);
    let run = ports_in(&ns, &args, FLEET_INPUT);
    assert_eq!(
        run.lines(),
        [
            "127.0.0.1 is reporting ok",
            "127.0.0.2 is down",
            "127.0.0.3 is down",
            "127.0.0.4 is flappy",
            "web.test is flappy",
            "ok.test is reporting ok",
            "nx.test is down",
            "[::1] is reporting ok",
        ],
        "stderr: {}",
        run.stderr
    );
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr, "", "no noise on stderr when not a terminal");
}

#[test]
fn json_gives_reasons_latency_addresses_and_failing_backends() {
    let ns = Netns::new();
    let _fleet = standard_fleet(&ns);
    let mut args = vec![
        "80",
        "--rounds",
        "5",
        "--dns-server",
        "127.0.0.53",
        "--format",
        "json",
    ];
    args.extend(FAST);
    let run = ports_in(&ns, &args, FLEET_INPUT);
    let hosts = run.json_lines();
    assert_eq!(hosts.len(), 8, "{}", run.stdout);
    let by_name = |name: &str| -> &Value {
        hosts
            .iter()
            .find(|h| h["host"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };

    let up = by_name("127.0.0.1");
    assert_eq!(up["verdict"], "ok");
    assert_eq!(up["rounds"], 5);
    assert_eq!(up["failures"], 0);
    assert!(up["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(up["latency_ms"]["max"].as_f64().unwrap() >= up["latency_ms"]["p95"].as_f64().unwrap());

    let refused = by_name("127.0.0.2");
    assert_eq!(refused["verdict"], "down");
    assert_eq!(refused["reasons"], serde_json::json!({"refused": 5}));
    assert_eq!(refused["consecutive_failed_rounds"], 5);
    assert!(
        refused["last_error"].as_str().unwrap().contains("refused"),
        "{refused}"
    );

    let blackholed = by_name("127.0.0.3");
    assert_eq!(blackholed["verdict"], "down");
    assert_eq!(blackholed["reasons"], serde_json::json!({"timeout": 5}));
    let transitions = blackholed["transitions"].as_array().unwrap();
    assert_eq!(transitions.last().unwrap()["to"], "down");
    assert_eq!(transitions.last().unwrap()["reason"], "timeout");

    let nx = by_name("nx.test");
    assert_eq!(nx["verdict"], "down");
    assert_eq!(nx["reasons"], serde_json::json!({"dns": 5}));
    assert!(
        nx["last_error"].as_str().unwrap().contains("NXDOMAIN"),
        "{nx}"
    );

    let round_robin = by_name("web.test");
    assert_eq!(round_robin["verdict"], "flappy");
    assert_eq!(
        round_robin["failing_addresses"],
        serde_json::json!(["127.0.0.2:80"])
    );
    assert_eq!(round_robin["addresses"].as_array().unwrap().len(), 2);
    assert_eq!(round_robin["checks"], 10);
    assert_eq!(round_robin["reasons"], serde_json::json!({"refused": 5}));
}

#[test]
fn exit_0_when_all_ok_and_1_when_flappy_but_none_down() {
    let ns = Netns::new();
    let _fleet = standard_fleet(&ns);
    let mut args = vec!["80", "--rounds", "6"];
    args.extend(FAST);
    let ok = ports_in(&ns, &args, "127.0.0.1\n127.0.0.7\n");
    assert_eq!(
        (ok.code, ok.lines()),
        (
            0,
            vec!["127.0.0.1 is reporting ok", "127.0.0.7 is reporting ok"]
        )
    );
    let flappy = ports_in(&ns, &args, "127.0.0.1\n127.0.0.4\n");
    assert_eq!(
        (flappy.code, flappy.lines()),
        (1, vec!["127.0.0.1 is reporting ok", "127.0.0.4 is flappy"])
    );
}

#[test]
fn nagios_flap_detection_reports_percent_state_change() {
    let ns = Netns::new();
    let _fleet = ns.fleet(&[
        "--port",
        "80",
        "--flap",
        "127.0.0.4",
        "--flap-period-ms",
        "300",
    ]);
    let args = [
        "80",
        "--rounds",
        "12",
        "--interval",
        "200ms",
        "--timeout",
        "100ms",
        "--flap-detection",
        "nagios",
        "--format",
        "json",
    ];
    let run = ports_in(&ns, &args, "127.0.0.1\n127.0.0.4\n");
    let hosts = run.json_lines();
    assert_eq!(hosts[0]["verdict"], "ok");
    assert_eq!(hosts[0]["percent_state_change"], 0.0);
    assert_eq!(hosts[1]["verdict"], "flappy", "{}", hosts[1]);
    assert!(
        hosts[1]["percent_state_change"].as_f64().unwrap() >= 20.0,
        "{}",
        hosts[1]
    );
    assert_eq!(run.code, 1);
}

#[test]
fn explain_shows_a_whole_subnet_timing_out() {
    let ns = Netns::new();
    let _fleet = ns.fleet(&[
        "--port",
        "80",
        "--blackhole",
        "127.0.9.0/24",
        "--refused",
        "127.0.8.7",
    ]);
    let mut input: String = (1..=20).map(|i| format!("127.0.9.{i}\n")).collect();
    input.push_str("127.0.8.1\n127.0.8.7\n");
    let run = ports_in(
        &ns,
        &["80", "--rounds", "1", "--timeout", "200ms", "--explain"],
        &input,
    );
    assert!(
        run.stdout
            .contains("== Diagnosis: 21 failed of 22 checks =="),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("127.0.9.0/24             timeout      20/20 (all)  20 failures"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("127.0.8.0/24             refused      1/2  1 failures"),
        "{}",
        run.stdout
    );
    let reasons: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("-- by reason"))
        .skip(1)
        .take(2)
        .collect();
    assert!(
        reasons[0].starts_with("timeout") && reasons[0].contains("20 checks"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("refused") && reasons[1].contains("1 checks"),
        "{reasons:?}"
    );
}

#[test]
fn icmp_unreachable_is_its_own_reason() {
    let ns = Netns::new();
    let _fleet = ns.fleet(&["--port", "80", "--unreachable", "127.0.5.5"]);
    let run = ports_in(
        &ns,
        &[
            "80",
            "--rounds",
            "1",
            "--down-after",
            "1",
            "--timeout",
            "500ms",
            "--format",
            "json",
        ],
        "127.0.5.5\n",
    );
    let hosts = run.json_lines();
    assert_eq!(hosts[0]["verdict"], "down", "{}", hosts[0]);
    assert_eq!(hosts[0]["reasons"], serde_json::json!({"unreachable": 1}));
}

#[test]
fn rate_cap_paces_a_single_sweep() {
    let listener = listen("127.0.0.1:0");
    let port = listener.local_addr().unwrap().port().to_string();
    let input: String = (1..=10)
        .map(|i| format!("127.0.0.1:{port}\n127.0.3.{i}:{port}\n"))
        .collect();
    let run = nv()
        .args([
            "ports", &port, "--rounds", "1", "--rate", "40", "--format", "json",
        ])
        .stdin(input)
        .run();
    let elapsed = run.elapsed;
    assert_eq!(run.json_lines().len(), 11, "{}", run.stdout);
    // 11 connects at 40/s: the last one starts 250 ms after the first.
    assert!(
        elapsed >= Duration::from_millis(250),
        "{elapsed:?}: --rate was not applied"
    );
}

#[test]
fn thousands_of_blackholed_hosts_never_run_out_of_file_descriptors() {
    let ns = Netns::new();
    let _fleet = ns.fleet(&["--port", "80", "--blackhole", "127.1.0.0/20"]);
    let input: String = (0..3000)
        .map(|i| format!("127.1.{}.{}\n", i / 250, i % 250 + 1))
        .collect();
    // Start with a soft limit of 256: netvantage must raise it (or queue) rather than fail.
    let run = nv()
        .args([
            "ports",
            "80",
            "--rounds",
            "1",
            "--timeout",
            "500ms",
            "--down-after",
            "1",
            "--format",
            "json",
        ])
        .stdin(input)
        .wrap(["prlimit", "--nofile=256:20000", "--"])
        .in_netns(&ns)
        .timeout(Duration::from_secs(60))
        .run();
    let hosts = run.json_lines();
    assert_eq!(hosts.len(), 3000);
    let timeouts = hosts
        .iter()
        .filter(|h| h["verdict"] == "down" && h["reasons"]["timeout"] == 1)
        .count();
    assert_eq!(timeouts, 3000, "stderr: {}", run.stderr);
    assert!(
        !run.stdout.contains("local error"),
        "a local shortage leaked into results"
    );
    assert_eq!(run.code, 2);
}

#[test]
fn bad_lines_are_reported_by_number_and_the_good_ones_still_checked() {
    let listener = listen("127.0.0.1:0");
    let port = listener.local_addr().unwrap().port().to_string();
    let long_name = format!("{}.example", "a".repeat(250));
    let mut input = format!(
        "# fleet\r\n127.0.0.1\r\n\r\nbad host\n127.0.0.1:0\nh:abc\n{long_name}\n  127.0.0.1  \n[::1\n127.0.0.1:{port}\n"
    )
    .into_bytes();
    input.extend_from_slice(b"caf\xe9.example\n");
    let run = nv()
        .args([
            "ports",
            &port,
            "--rounds",
            "2",
            "--interval",
            "100ms",
            "--timeout",
            "50ms",
            "--down-after",
            "2",
        ])
        .stdin(input)
        .timeout(Duration::from_secs(30))
        .run();
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("stdin:"))
            .collect::<Vec<_>>(),
        [
            "stdin:4: invalid host \"bad host\"",
            "stdin:5: invalid port \"0\" (must be 1-65535)",
            "stdin:6: invalid port \"abc\" (must be 1-65535)",
            "stdin:7: host name longer than 253 characters",
            "stdin:9: unclosed '[' in IPv6 address",
            "stdin:11: not valid UTF-8",
        ]
    );
    // Line 8 duplicates line 2 and line 10 names the same host and port: checked once.
    assert_eq!(run.lines(), ["127.0.0.1 is reporting ok"]);
    assert_eq!(run.code, 0);
}

#[test]
fn input_file_errors_name_the_file() {
    let dir = Scratch::new();
    let file = dir.write("hosts.txt", "nope nope\n");
    let run = nv()
        .args(["ports", "80", "--input", file.to_str().unwrap()])
        .run();
    assert!(
        run.stderr
            .contains(&format!("{}:1: invalid host \"nope nope\"", file.display())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("no valid host"), "{}", run.stderr);
    assert_eq!(run.code, 3);
    let missing = nv()
        .args([
            "ports",
            "80",
            "--input",
            dir.join("missing.txt").to_str().unwrap(),
        ])
        .run();
    assert_eq!(missing.code, 3);
    assert!(missing.stderr.contains("cannot read"), "{}", missing.stderr);
}

#[test]
fn usage_errors_exit_3_with_a_clear_message() {
    for port in ["0", "65536", "abc", "-1"] {
        let run = nv().args(["ports", "--", port]).stdin("127.0.0.1\n").run();
        assert_eq!(run.code, 3, "port {port}: {}", run.stderr);
        assert!(run.stderr.contains("port"), "port {port}: {}", run.stderr);
    }
    let cases: &[(&[&str], &str)] = &[
        (&["ports", "80"], "no valid host in stdin"),
        (&["ports", "80", "--interval", "soon"], "invalid duration"),
        (
            &["ports", "80", "--rounds", "0"],
            "--rounds must be at least 1",
        ),
        (
            &["ports", "80", "--timeout", "5s", "--interval", "1s"],
            "must be shorter than --interval",
        ),
        (&["ports", "80", "--rate", "0"], "--rate"),
        (
            &["ports", "80", "--resolve", "nonsense"],
            "invalid --resolve",
        ),
        (
            &["ports", "80", "--watch", "--rounds", "3"],
            "cannot be used with",
        ),
        (&["ports"], "PORT"),
    ];
    for (args, expected) in cases {
        let input = if args.len() == 2 {
            "\n# nothing\n"
        } else {
            "127.0.0.1\n"
        };
        let run = nv().args(*args).stdin(input).run();
        assert_eq!(run.code, 3, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout, "", "{args:?}");
    }
}

#[test]
fn help_has_an_example() {
    let run = nv().args(["ports", "--help"]).run();
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("netvantage ports 443 < hosts.txt"),
        "{}",
        run.stdout
    );
}

#[test]
fn resolve_pins_and_ipv6_forms_work_without_dns() {
    let v4 = listen("127.0.0.1:0");
    let port = v4.local_addr().unwrap().port();
    let v6 = listen(&format!("[::1]:{port}"));
    let input = format!("pinned.invalid\n[::1]:{port}\n::1\n");
    let run = nv()
        .args([
            "ports",
            &port.to_string(),
            "--rounds",
            "1",
            "--resolve",
            &format!("pinned.invalid:{port}:127.0.0.1"),
            "--format",
            "json",
        ])
        .stdin(input)
        .run();
    let hosts = run.json_lines();
    assert_eq!(
        hosts.len(),
        2,
        "[::1]:PORT and ::1 on PORT are the same target: {}",
        run.stdout
    );
    assert_eq!(hosts[0]["verdict"], "ok", "{}", hosts[0]);
    assert_eq!(
        hosts[0]["addresses"][0]["address"],
        format!("127.0.0.1:{port}")
    );
    assert_eq!(hosts[1]["addresses"][0]["address"], format!("[::1]:{port}"));
    assert_eq!(run.code, 0);
    drop((v4, v6));
}

#[test]
fn watch_prints_state_changes_and_sigterm_prints_verdicts_so_far() {
    let listener = listen("127.0.0.1:0");
    let up_port = listener.local_addr().unwrap().port();
    let closed_port = free_port();
    let input = format!("127.0.0.1\n127.0.0.1:{closed_port}\n");
    let up = up_port.to_string();
    let mut child = nv()
        .args([
            "ports",
            &up,
            "--watch",
            "--interval",
            "100ms",
            "--timeout",
            "50ms",
        ])
        .stdin(input)
        .spawn();
    child.wait_for(
        Duration::from_secs(10),
        "the first state change",
        |out, _| !out.is_empty(),
    );
    let line = child.stdout_lines()[0].clone();
    // The closed port refused its very first check and nothing ever answered: it is down from
    // that first round (never "reporting ok"), and the first line says so, with a time.
    let expected_tail = format!(" 127.0.0.1:{closed_port}: unknown -> down (refused)");
    assert!(line.ends_with(&expected_tail), "{line:?}");
    assert!(
        line.starts_with("20") && line.as_bytes()[10] == b'T' && line.contains("Z 127.0.0.1"),
        "{line:?}"
    );
    let code = child.terminate(Duration::from_secs(10));
    assert_eq!(
        child.stdout_lines()[1..],
        [
            "127.0.0.1 is reporting ok".to_string(),
            format!("127.0.0.1:{closed_port} is down")
        ]
    );
    assert_eq!(code, 2);
    drop(listener);
}

#[test]
fn one_sweep_of_a_closed_port_is_down_not_ok() {
    // Issue 15: `--rounds 1` (the README's one-sweep example) once printed `reporting ok` and
    // exited 0 for a host that failed its only check.
    let closed_port = free_port().to_string();
    let run = nv()
        .args(["ports", &closed_port, "--rounds", "1", "--timeout", "500ms"])
        .stdin("127.0.0.1\n")
        .run();
    assert_eq!(run.lines(), ["127.0.0.1 is down"], "{}", run.stderr);
    assert_eq!(run.code, 2);
    let json = nv()
        .args([
            "ports",
            &closed_port,
            "--rounds",
            "1",
            "--timeout",
            "500ms",
            "--format",
            "json",
        ])
        .stdin("127.0.0.1\n")
        .run();
    let host = &json.json_lines()[0];
    assert_eq!(host["verdict"], "down");
    assert_eq!(
        host["rounds"], 1,
        "the JSON says how many rounds the verdict rests on"
    );
    assert_eq!(json.code, 2);
}

#[test]
fn sigint_in_a_finite_run_prints_what_was_observed() {
    let listener = listen("127.0.0.1:0");
    let port = listener.local_addr().unwrap().port().to_string();
    let mut child = nv()
        .args([
            "ports",
            &port,
            "--rounds",
            "1000",
            "--interval",
            "100ms",
            "--timeout",
            "50ms",
        ])
        .stdin("127.0.0.1\n")
        .spawn();
    std::thread::sleep(Duration::from_millis(700));
    let code = child.interrupt(Duration::from_secs(10));
    assert_eq!(child.stdout_text(), "127.0.0.1 is reporting ok\n");
    assert_eq!(code, 0);
    drop(listener);
}

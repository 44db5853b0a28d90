//! End-to-end tests of `netvantage http`: the real binary against real HTTP(S) servers on
//! loopback. Names are pinned with `--resolve`, so no query ever leaves 127.0.0.0/8.

use netvantage_testkit::*;
use std::path::Path;
use std::time::Duration;

/// `netvantage http -f EVERY -r RUN_FOR --format json ARGS... CONFIG`: the NDJSON run most
/// tests read.
fn http_json(every: &str, run_for: &str, args: &[&str], config: &Path) -> Run {
    nv().args(["http", "-f", every, "-r", run_for, "--format", "json"])
        .args(args)
        .arg(config)
        .run()
}

/// The worked example of issue 4: two domains, the post endpoint on another port of the
/// first domain (ports are ignored when grouping).
fn worked_example(extra: &[&str]) -> Run {
    let tmp = Scratch::new();
    let main = TestServer::start(&[
        ("/", vec![reply(200, 100), reply(200, 100)]),
        ("/careers", vec![reply(200, 600), reply(200, 300)]),
    ]);
    let post = TestServer::start(&[("/some/post/endpoint", vec![reply(500, 50), reply(201, 50)])]);
    let rewards = TestServer::start(&[("/", vec![reply(200, 100), reply(200, 900)])]);
    let config = tmp.write(
        "worked.yaml",
        format!(
            "- name: fetch index page\n  url: http://fetch.com:{a}/\n\
             - name: fetch careers page\n  url: http://fetch.com:{a}/careers\n\
             - name: fetch some fake post endpoint\n  url: http://FETCH.com:{p}/some/post/endpoint\n  method: POST\n  body: '{{\"foo\":\"bar\"}}'\n\
             - name: fetch rewards index page\n  url: http://www.fetchrewards.com:{r}/\n",
            a = main.port(),
            p = post.port(),
            r = rewards.port()
        ),
    );
    let (pa, pp, pr) = (
        pin("fetch.com", &main),
        pin("fetch.com", &post),
        pin("www.fetchrewards.com", &rewards),
    );
    let mut args = vec![
        "http",
        "-f",
        "1500ms",
        "-r",
        "3s",
        "--resolve",
        &pa,
        "--resolve",
        &pp,
        "--resolve",
        &pr,
    ];
    args.extend_from_slice(extra);
    let config = config.to_str().unwrap().to_string();
    args.push(&config);
    nv().args(&args).run()
}

/// Issue 15, item 13: the exercise drops the decimals, so 2 of 3 is 66 by default.
#[test]
fn worked_example_prints_33_and_100_then_66_and_50() {
    let run = worked_example(&[]);
    let lines = run.lines();
    assert_eq!(
        lines[..4],
        [
            "fetch.com has 33% availability percentage",
            "www.fetchrewards.com has 100% availability percentage",
            "fetch.com has 66% availability percentage",
            "www.fetchrewards.com has 50% availability percentage",
        ],
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(lines[4], "summary: 2 cycles, 8 checks");
    assert!(
        lines[5].starts_with("fetch.com: 66% available, 4 up, 1 degraded, 1 down, latency p50 "),
        "{}",
        lines[5]
    );
    assert!(
        lines[8].contains("last error: status: HTTP 500 (expected 200-299)"),
        "{}",
        lines[8]
    );
    assert!(
        lines[9].starts_with("www.fetchrewards.com: 50% available, 1 up, 1 degraded, 0 down"),
        "{}",
        lines[9]
    );
    assert!(lines[10].contains("last error: slow: "), "{}", lines[10]);
    assert_eq!(lines.len(), 11);
    // The last check of the rewards page was DEGRADED, the others UP: Nagios WARNING.
    assert_eq!(run.code, 1, "{}", run.stderr);
}

#[test]
fn worked_example_round_nearest_prints_67() {
    let run = worked_example(&["--round", "nearest"]);
    assert_eq!(
        run.lines()[..4],
        [
            "fetch.com has 33% availability percentage",
            "www.fetchrewards.com has 100% availability percentage",
            "fetch.com has 67% availability percentage",
            "www.fetchrewards.com has 50% availability percentage",
        ],
        "{}",
        run.stderr
    );
}

/// The synthetic-monitor YAML users arrive with, byte for byte.
const FETCH_YAML: &str = r#"- headers:
    user-agent: fetch-synthetic-monitor
  method: GET
  name: fetch index page
  url: https://fetch.com/
- body: '{"foo":"bar"}'
  headers:
    content-type: application/json
    user-agent: fetch-synthetic-monitor
  method: POST
  name: fetch some fake post endpoint
  url: https://fetch.com/some/post/endpoint
- name: fetch rewards index page
  url: https://www.fetchrewards.com/
"#;

#[test]
fn fetch_yaml_works_unchanged_and_method_headers_body_reach_the_server() {
    let tmp = Scratch::new();
    let cert = TestCert::new(&["fetch.com", "www.fetchrewards.com"]);
    // Port 443 as in the file, on a loopback address of this test's own.
    let ip = private_loopback();
    let server = TestServer::start_on(
        std::net::SocketAddr::new(ip, 443),
        &[
            ("/", vec![reply(200, 0)]),
            ("/some/post/endpoint", vec![reply(200, 0)]),
        ],
        Some(&cert),
    );
    let ca = tmp.write("ca.pem", &cert.cert_pem);
    let config = tmp.write("fetch.yaml", FETCH_YAML);
    let (p1, p2) = (
        format!("fetch.com:443:{ip}"),
        format!("www.fetchrewards.com:443:{ip}"),
    );
    let run = nv()
        .args([
            "http",
            "-f",
            "1s",
            "-r",
            "1s",
            "--resolve",
            &p1,
            "--resolve",
            &p2,
            "--ca-file",
            ca.to_str().unwrap(),
            config.to_str().unwrap(),
        ])
        .run();
    assert_eq!(
        run.lines()[..2],
        [
            "fetch.com has 100% availability percentage",
            "www.fetchrewards.com has 100% availability percentage"
        ],
        "{}",
        run.stderr
    );
    assert_eq!(run.code, 0);

    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    let host = |s: &Seen| s.headers["host"].to_str().unwrap().to_string();
    let index = seen
        .iter()
        .find(|s| s.path == "/" && host(s) == "fetch.com")
        .expect("index page");
    assert_eq!(index.method, "GET");
    assert_eq!(index.headers["user-agent"], "fetch-synthetic-monitor");
    assert!(index.headers.get("content-type").is_none());
    let post = &server.seen_on("/some/post/endpoint")[0];
    assert_eq!(post.method, "POST");
    assert_eq!(post.body, r#"{"foo":"bar"}"#);
    assert_eq!(post.headers["content-type"], "application/json");
    assert_eq!(post.headers.get_all("content-type").iter().count(), 1);
    assert_eq!(post.headers["user-agent"], "fetch-synthetic-monitor");
    let rewards = seen
        .iter()
        .find(|s| host(s) == "www.fetchrewards.com")
        .expect("rewards page");
    let ua = rewards.headers["user-agent"].to_str().unwrap();
    assert!(
        ua.starts_with("netvantage/"),
        "default user-agent identifies netvantage: {ua}"
    );
}

#[test]
fn a_body_without_content_type_is_sent_as_json_and_custom_headers_arrive() {
    let tmp = Scratch::new();
    let server = TestServer::start(&[("/put", vec![reply(204, 0)]), ("/get", vec![reply(200, 0)])]);
    let base = format!("http://127.0.0.1:{}", server.port());
    let config = tmp.write(
        "headers.yaml",
        format!(
            "- name: put\n  url: {base}/put\n  method: put\n  body: '[1,2]'\n  headers:\n    X-Team: sre\n    x-retry: 3\n\
             - name: get\n  url: {base}/get\n"
        ),
    );
    let run = nv()
        .args(["http", "-f", "1s", "-r", "1s", config.to_str().unwrap()])
        .run();
    assert_eq!(
        run.lines()[0],
        "127.0.0.1 has 100% availability percentage",
        "{}",
        run.stderr
    );
    let put = &server.seen_on("/put")[0];
    assert_eq!((put.method.as_str(), put.body.as_str()), ("PUT", "[1,2]"));
    assert_eq!(put.headers["content-type"], "application/json");
    assert_eq!(put.headers["x-team"], "sre");
    assert_eq!(put.headers["x-retry"], "3");
    let get = &server.seen_on("/get")[0];
    assert!(get.headers.get("content-type").is_none() && get.body.is_empty());
}

#[test]
fn body_regex_and_expected_statuses_decide_the_outcome() {
    let tmp = Scratch::new();
    let server = TestServer::start(&[
        ("/ok", vec![reply_body(200, "{\"status\": \"ok\"}")]),
        (
            "/failing",
            vec![reply_body(200, "{\"status\": \"failing\"}")],
        ),
        ("/created", vec![reply(201, 0)]),
        ("/teapot", vec![reply(418, 0)]),
        ("/moved", vec![reply(301, 0)]),
    ]);
    let base = format!("http://127.0.0.1:{}", server.port());
    let config = tmp.write(
        "rules.yaml",
        format!(
            "- {{name: ok, url: '{base}/ok', body_regex: '\"status\":\\s*\"ok\"'}}\n\
             - {{name: failing, url: '{base}/failing', body_regex: '\"status\":\\s*\"ok\"'}}\n\
             - {{name: created, url: '{base}/created', expect_status: 201}}\n\
             - {{name: teapot, url: '{base}/teapot', expect_status: [200, 4xx]}}\n\
             - {{name: moved, url: '{base}/moved'}}\n"
        ),
    );
    let run = http_json("1s", "1s", &[], &config);
    let records = run.json_lines();
    assert_eq!(records.len(), 5, "{}", run.stderr);
    let by_name = |name: &str| {
        records
            .iter()
            .find(|r| r["http"]["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (
            by_name("ok")["outcome"].as_str(),
            by_name("ok")["body_matched"].as_bool()
        ),
        (Some("up"), Some(true))
    );
    let failing = by_name("failing");
    assert_eq!(
        (failing["outcome"].as_str(), failing["reason"].as_str()),
        (Some("down"), Some("body"))
    );
    assert_eq!(failing["body_matched"], false);
    assert_eq!(by_name("created")["outcome"], "up");
    assert_eq!(by_name("teapot")["outcome"], "up");
    let moved = by_name("moved");
    assert_eq!(
        (
            moved["outcome"].as_str(),
            moved["reason"].as_str(),
            moved["status"].as_u64()
        ),
        (Some("down"), Some("status"), Some(301))
    );
    // 3 of 5 UP; availability goes to stderr in JSON mode.
    assert!(
        run.stderr
            .contains("127.0.0.1 has 60% availability percentage"),
        "{}",
        run.stderr
    );
    assert_eq!(run.code, 2);
}

#[test]
fn a_hung_endpoint_times_out_at_its_own_deadline() {
    let tmp = Scratch::new();
    let server = TestServer::start(&[("/slow", vec![hang()]), ("/fast", vec![reply(200, 0)])]);
    let base = format!("http://127.0.0.1:{}", server.port());
    let config = tmp.write(
        "timeout.yaml",
        format!(
            "- {{name: slow, url: '{base}/slow', timeout: 300ms}}\n- {{name: fast, url: '{base}/fast'}}\n"
        ),
    );
    let run = http_json("2s", "2s", &[], &config);
    let records = run.json_lines();
    let slow = records
        .iter()
        .find(|r| r["http"]["name"] == "slow")
        .expect("slow record");
    assert_eq!(
        (slow["outcome"].as_str(), slow["reason"].as_str()),
        (Some("down"), Some("timeout"))
    );
    let latency = slow["latency_ms"].as_f64().unwrap();
    assert!(
        (290.0..1000.0).contains(&latency),
        "timed out after {latency} ms"
    );
    assert!(
        slow["error"]
            .as_str()
            .unwrap()
            .contains("waiting for the response"),
        "{slow}"
    );
    let fast = records
        .iter()
        .find(|r| r["http"]["name"] == "fast")
        .unwrap();
    assert_eq!(fast["outcome"], "up");
    // The cycle ended with its last check, not at the cycle's 2 s deadline.
    assert!(
        run.elapsed < Duration::from_millis(1800),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn connection_refused_is_down_with_reason_refused() {
    let tmp = Scratch::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = tmp.write(
        "refused.yaml",
        format!("- name: gone\n  url: http://127.0.0.1:{port}/\n"),
    );
    let run = http_json("1s", "1s", &[], &config);
    let records = run.json_lines();
    assert_eq!(records.len(), 1, "{}", run.stderr);
    assert_eq!(
        (
            records[0]["outcome"].as_str(),
            records[0]["reason"].as_str()
        ),
        (Some("down"), Some("refused"))
    );
    assert_eq!(records[0]["address"], format!("127.0.0.1:{port}"));
    assert!(records[0].get("status").is_none());
    assert_eq!(run.code, 2);
}

#[test]
fn self_signed_tls_fails_then_succeeds_with_ca_file() {
    let tmp = Scratch::new();
    let cert = TestCert::new(&["secure.test"]);
    let server = TestServer::start_tls(&[("/", vec![reply(200, 0)])], &cert);
    let config = tmp.write(
        "tls.yaml",
        format!(
            "- name: secure\n  url: https://secure.test:{}/\n",
            server.port()
        ),
    );
    let pinned = pin("secure.test", &server);
    let run = http_json("1s", "1s", &["--resolve", &pinned], &config);
    let record = &run.json_lines()[0];
    assert_eq!(
        (record["outcome"].as_str(), record["reason"].as_str()),
        (Some("down"), Some("tls")),
        "{record}"
    );
    // Issue 15, item 12: words to act on, not rustls's `Other(OtherError(…))`.
    let error = record["error"].as_str().unwrap();
    assert!(
        error.contains("self-signed") && error.contains("pass --ca-file"),
        "{record}"
    );
    assert!(!error.contains("OtherError"), "{record}");
    assert_eq!(run.code, 2);

    let ca = tmp.write("secure-ca.pem", &cert.cert_pem);
    let run = http_json(
        "1s",
        "1s",
        &["--resolve", &pinned, "--ca-file", ca.to_str().unwrap()],
        &config,
    );
    let record = &run.json_lines()[0];
    assert_eq!(record["outcome"], "up", "{record}");
    assert_eq!(record["status"], 200);
    let phases = &record["phases"];
    for phase in ["connect_ms", "tls_ms", "first_byte_ms", "total_ms"] {
        assert!(
            phases[phase].as_f64().is_some_and(|ms| ms >= 0.0),
            "{phase} in {record}"
        );
    }
    assert!(phases.get("dns_ms").is_none(), "a pinned name needs no DNS");
    let expiry = record["http"]["tls_cert_not_after_unix_ms"]
        .as_i64()
        .expect("certificate expiry");
    assert!(expiry > record["ts_unix_ms"].as_i64().unwrap());
    assert_eq!(run.code, 0);
}

#[test]
fn cycles_keep_a_fixed_rate_while_an_endpoint_hangs() {
    let tmp = Scratch::new();
    let fast = TestServer::start(&[("/", vec![reply(200, 0)])]);
    let hung = TestServer::start(&[("/", vec![hang()])]);
    let config = tmp.write(
        "fixed-rate.yaml",
        format!(
            "- name: fast\n  url: http://fast.test:{}/\n- name: hung\n  url: http://hung.test:{}/\n  timeout: 1m\n",
            fast.port(),
            hung.port()
        ),
    );
    let (pf, ph) = (pin("fast.test", &fast), pin("hung.test", &hung));
    let run = nv()
        .args([
            "http",
            "-f",
            "500ms",
            "-r",
            "2s",
            "--resolve",
            &pf,
            "--resolve",
            &ph,
            config.to_str().unwrap(),
        ])
        .run();
    let lines = run.lines();
    for cycle in 0..4 {
        assert_eq!(
            lines[2 * cycle],
            "fast.test has 100% availability percentage",
            "{}",
            run.stdout
        );
        assert_eq!(
            lines[2 * cycle + 1],
            "hung.test has 0% availability percentage"
        );
    }
    assert_eq!(lines[8], "summary: 4 cycles, 8 checks");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"hung\"") && l.contains("last error: timeout: ")),
        "{}",
        run.stdout
    );
    // Cycle n started at t0 + n × 500 ms although the hung check of each cycle took all of it.
    let starts: Vec<_> = fast.seen().iter().map(|s| s.at).collect();
    assert_eq!(starts.len(), 4);
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap > Duration::from_millis(400) && gap < Duration::from_millis(600),
            "gap {gap:?}"
        );
    }
    assert!(
        run.elapsed < Duration::from_millis(2700),
        "took {:?}",
        run.elapsed
    );
    assert_eq!(run.code, 2);
}

#[test]
fn sigterm_prints_the_final_summary_and_exits() {
    let tmp = Scratch::new();
    let server = TestServer::start(&[("/", vec![reply(200, 0)])]);
    let config = tmp.write(
        "sigterm.yaml",
        format!("- name: web\n  url: http://127.0.0.1:{}/\n", server.port()),
    );
    let mut child = nv()
        .args(["http", "-f", "200ms", config.to_str().unwrap()])
        .spawn();
    child.wait_for(
        Duration::from_secs(10),
        "the first cycle's line",
        |out, _| !out.is_empty(),
    );
    assert_eq!(
        child.stdout_lines()[0],
        "127.0.0.1 has 100% availability percentage"
    );
    let code = child.terminate(Duration::from_secs(10));
    let rest = child.stdout_lines()[1..].to_vec();
    let summary: Vec<&str> = rest
        .iter()
        .map(String::as_str)
        .skip_while(|l| !l.starts_with("summary: "))
        .collect();
    assert!(!summary.is_empty(), "no summary in {rest:?}");
    assert!(summary[0].ends_with(" checks"));
    assert!(
        summary[1].starts_with("127.0.0.1: 100% available, "),
        "{}",
        summary[1]
    );
    assert!(
        summary[2].starts_with("  \"web\" GET http://127.0.0.1:"),
        "{}",
        summary[2]
    );
    assert!(summary[2].ends_with("last error: none"), "{}", summary[2]);
    assert_eq!(code, 0);
}

#[test]
fn fresh_connection_per_check_unless_keep_alive() {
    let tmp = Scratch::new();
    for (flag, expected) in [(None, 3), (Some("--keep-alive"), 1)] {
        let server = TestServer::start(&[("/", vec![reply(200, 0)])]);
        let config = tmp.write(
            "conn.yaml",
            format!("- name: web\n  url: http://127.0.0.1:{}/\n", server.port()),
        );
        let mut args = vec!["http", "-f", "300ms", "-r", "900ms"];
        args.extend(flag);
        args.push(config.to_str().unwrap());
        let run = nv().args(&args).run();
        assert_eq!(
            run.lines()[2],
            "127.0.0.1 has 100% availability percentage",
            "{}",
            run.stderr
        );
        assert_eq!(server.seen().len(), 3);
        assert_eq!(server.connections(), expected, "{flag:?}");
    }
}

#[test]
fn ndjson_records_are_versioned_check_results() {
    let tmp = Scratch::new();
    let server = TestServer::start(&[("/", vec![reply(200, 0)])]);
    let config = tmp.write(
        "json.yaml",
        format!("- name: web\n  url: http://127.0.0.1:{}/\n", server.port()),
    );
    let run = http_json("500ms", "1s", &[], &config);
    let records = run.json_lines();
    assert_eq!(records.len(), 2, "one record per check: {}", run.stdout);
    let r = &records[0];
    assert_eq!(r["schema"], 1);
    assert_eq!(r["kind"], "http");
    assert_eq!(r["target"], format!("http://127.0.0.1:{}/", server.port()));
    assert_eq!(r["outcome"], "up");
    assert_eq!(r["status"], 200);
    assert_eq!(r["http"]["method"], "GET");
    assert_eq!(r["http"]["domain"], "127.0.0.1");
    assert!(r["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(r["latency_ms"], r["phases"]["total_ms"]);
    assert!(
        run.stderr.contains("summary: 2 cycles, 2 checks"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_input_names_file_line_and_field_and_sends_nothing() {
    let tmp = Scratch::new();
    let server = TestServer::start(&[("/", vec![reply(200, 0)])]);
    let ok = format!("- name: fine\n  url: http://127.0.0.1:{}/\n", server.port());
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "invalid YAML",
            format!("{ok}- name: [unclosed\n"),
            ":4:1: invalid YAML: ",
        ),
        (
            "not a list",
            "name: a\nurl: http://a/\n".into(),
            "YAML list",
        ),
        ("empty list", "[]\n".into(), "no endpoints"),
        (
            "missing name",
            format!("{ok}- url: http://b/\n"),
            ":3:3: entry 2: missing field `name`",
        ),
        (
            "missing url",
            format!("{ok}- name: b\n"),
            ":3:3: entry 2 (\"b\"): missing field `url`",
        ),
        (
            "bad scheme",
            format!("{ok}- name: b\n  url: ftp://b/\n"),
            ":4:8: entry 2, field `url`",
        ),
        (
            "bad port",
            format!("{ok}- name: b\n  url: http://b:70000/\n"),
            ":4:8: entry 2, field `url`",
        ),
        (
            "no scheme",
            format!("{ok}- name: b\n  url: fetch.com\n"),
            ":4:8: entry 2, field `url`",
        ),
        (
            "bad method",
            format!("{ok}- name: b\n  url: http://b/\n  method: FETCH\n"),
            ":5:11: entry 2, field `method`",
        ),
        (
            "bad header name",
            format!("{ok}- name: b\n  url: http://b/\n  headers:\n    bad name: x\n"),
            ":6:5: entry 2, field `headers`",
        ),
        (
            "bad header value",
            format!("{ok}- name: b\n  url: http://b/\n  headers:\n    x: \"a\\nb\"\n"),
            ":6:8: entry 2, field `headers`",
        ),
        (
            "unknown field",
            format!("{ok}- name: b\n  url: http://b/\n  methdo: GET\n"),
            ":5:3: entry 2, field `methdo`",
        ),
        (
            "bad duration",
            format!("{ok}- name: b\n  url: http://b/\n  timeout: soon\n"),
            ":5:12: entry 2, field `timeout`",
        ),
        (
            "bad status",
            format!("{ok}- name: b\n  url: http://b/\n  expect_status: 99\n"),
            ":5:18: entry 2, field `expect_status`",
        ),
        (
            "bad regex",
            format!("{ok}- name: b\n  url: http://b/\n  body_regex: '('\n"),
            ":5:15: entry 2, field `body_regex`",
        ),
    ];
    for (what, yaml, expected) in cases {
        let config = tmp.write("bad.yaml", &yaml);
        let path = config.to_str().unwrap();
        let run = nv()
            .args(["http", "-f", "200ms", "-r", "200ms", path])
            .run();
        assert_eq!(run.code, 3, "{what}: {}", run.stderr);
        assert!(
            run.stderr.contains(path),
            "{what}: names the file: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(expected),
            "{what}: expected {expected:?} in {}",
            run.stderr
        );
        assert_eq!(run.stdout, "", "{what}");
    }
    let good = tmp.write("good.yaml", &ok);
    let good = good.to_str().unwrap();
    let missing = format!("{good}.missing");
    for (what, args, expected) in [
        (
            "missing file",
            vec!["http", missing.as_str()],
            "cannot read",
        ),
        (
            "missing CA file",
            vec!["http", "--ca-file", "/nonexistent/ca.pem", good],
            "/nonexistent/ca.pem",
        ),
        (
            "bad --resolve",
            vec!["http", "--resolve", "fetch.com:443", good],
            "--resolve",
        ),
        (
            "zero frequency",
            vec!["http", "-f", "0", good],
            "greater than zero",
        ),
        ("bad run duration", vec!["http", "-r", "soon", good], "soon"),
        ("bad rounding", vec!["http", "--round", "up", good], "up"),
    ] {
        let run = nv().args(&args).run();
        assert_eq!(run.code, 3, "{what}: {}", run.stderr);
        assert!(
            run.stderr.contains(expected),
            "{what}: expected {expected:?} in {}",
            run.stderr
        );
    }
    assert_eq!(
        server.seen().len(),
        0,
        "a bad input must stop the run before any request"
    );
}

#[test]
fn help_shows_an_example() {
    let run = nv().args(["http", "--help"]).run();
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("Example:") && run.stdout.contains("--health-check-frequency"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("- name: fetch index page"));
}

#[test]
fn interval_checks_an_endpoint_every_nth_cycle() {
    let tmp = Scratch::new();
    let server = TestServer::start(&[
        ("/often", vec![reply(200, 0)]),
        ("/rarely", vec![reply(200, 0)]),
    ]);
    let base = format!("http://127.0.0.1:{}", server.port());
    let config = tmp.write(
        "interval.yaml",
        format!(
            "- {{name: often, url: '{base}/often'}}\n- {{name: rarely, url: '{base}/rarely', interval: 1s}}\n"
        ),
    );
    let run = nv()
        .args([
            "http",
            "-f",
            "300ms",
            "-r",
            "1200ms",
            config.to_str().unwrap(),
        ])
        .run();
    assert_eq!(server.seen_on("/often").len(), 4, "{}", run.stdout);
    // 1 s rounds up to 4 cycles of 300 ms: cycle 0 only.
    assert_eq!(server.seen_on("/rarely").len(), 1);
    assert!(
        run.stdout.contains("summary: 4 cycles, 5 checks"),
        "{}",
        run.stdout
    );
}

#[test]
fn checks_that_cannot_start_before_the_cycle_ends_are_down_and_said_so() {
    let tmp = Scratch::new();
    let server = TestServer::start(&[("/a", vec![hang()]), ("/b", vec![hang()])]);
    let base = format!("http://127.0.0.1:{}", server.port());
    let config = tmp.write(
        "starved.yaml",
        format!("- {{name: a, url: '{base}/a'}}\n- {{name: b, url: '{base}/b'}}\n"),
    );
    let run = http_json("500ms", "500ms", &["--concurrency", "1"], &config);
    let records = run.json_lines();
    assert_eq!(records.len(), 2, "{}", run.stderr);
    let errors: Vec<&str> = records
        .iter()
        .map(|r| r["error"].as_str().unwrap())
        .collect();
    assert!(
        records
            .iter()
            .all(|r| r["outcome"] == "down" && r["reason"] == "timeout"),
        "{records:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("no answer within")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("not started before the cycle ended")),
        "{errors:?}"
    );
    assert_eq!(server.seen().len(), 1, "only one check may be in flight");
    assert!(
        run.elapsed < Duration::from_millis(1500),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn resolve_host_addr_pins_a_name_on_every_port_and_a_port_pin_only_its_port() {
    // `--resolve HOST:ADDR` (no port) is the TCP form; HTTP takes it too, through the same
    // parser, and it applies to every port of the name.
    let tmp = Scratch::new();
    let server = TestServer::start_on(
        std::net::SocketAddr::new(private_loopback(), 0),
        &[("/", vec![reply(200, 1), reply(200, 1), reply(200, 1)])],
        None,
    );
    let config = tmp.write(
        "resolve-any-port.yaml",
        format!(
            "- {{name: any, url: 'http://pinned.test:{}/'}}\n",
            server.port()
        ),
    );
    let any_port = format!("pinned.test:{}", server.addr.ip());
    let run = http_json("200ms", "200ms", &["--resolve", &any_port], &config);
    let record = &run.json_lines()[0];
    assert_eq!(record["outcome"], "up", "{record} {}", run.stderr);
    assert_eq!(run.code, 0);

    // A pin for another port does not apply, and a pin for this very port wins over the
    // every-port pin (to another private loopback address, where nothing listens on that
    // port: refused; 127.0.0.1 could hold a parallel test's listener on the same port). No
    // DNS is asked.
    let elsewhere = std::iter::repeat_with(private_loopback)
        .find(|ip| *ip != server.addr.ip())
        .expect("another private loopback address");
    let other_port = format!("pinned.test:{}:{elsewhere}", server.port() + 1);
    let this_port_elsewhere = format!("pinned.test:{}:{elsewhere}", server.port());
    let mut outcomes = Vec::new();
    for port_pin in [&other_port, &this_port_elsewhere] {
        let run = http_json(
            "500ms",
            "500ms",
            &["--resolve", &any_port, "--resolve", port_pin],
            &config,
        );
        let record = run.json_lines().remove(0);
        outcomes.push((record["outcome"].clone(), record["address"].clone()));
    }
    let server_address = format!("{}:{}", server.addr.ip(), server.port());
    assert_eq!(outcomes[0], ("up".into(), server_address.into()));
    assert_eq!(
        outcomes[1],
        (
            "down".into(),
            format!("{elsewhere}:{}", server.port()).into()
        ),
        "the pin for this port wins (nothing listens on {elsewhere} there)"
    );
}

/// Issue 15, item 12: docs/http.md says a stop lets the checks in flight finish; a check that
/// is half-way through its (slow) response when SIGTERM arrives is counted as what it was.
#[test]
fn a_check_in_flight_at_sigterm_finishes_and_is_counted() {
    let tmp = Scratch::new();
    let server = TestServer::start(&[("/", vec![reply(200, 1500)])]);
    let config = tmp.write(
        "slow.yaml",
        format!("- name: slow\n  url: http://127.0.0.1:{}/\n", server.port()),
    );
    let mut child = nv()
        .args(["http", "-f", "20s", "--timeout", "10s"])
        .args(["--latency-threshold", "5s", config.to_str().unwrap()])
        .spawn();
    assert!(
        wait_until(Duration::from_secs(10), || !server.seen().is_empty()),
        "the check never reached the server"
    );
    let code = child.terminate(Duration::from_secs(20));
    let out = child.stdout_text();
    assert!(
        out.contains("127.0.0.1 has 100% availability percentage"),
        "{out}\n{}",
        child.stderr_text()
    );
    assert!(out.contains("summary: 1 cycles, 1 checks"), "{out}");
    assert!(out.contains("1 up, 0 degraded, 0 down"), "{out}");
    assert_eq!(code, 0, "{}", child.stderr_text());
}

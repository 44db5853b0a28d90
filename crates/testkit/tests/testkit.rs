//! The test kit's own specification: what a test may rely on when it runs a program, waits, or
//! stands up a fixture. Real processes (`sh`), real sockets, the machine's PostgreSQL.

use netvantage_testkit::*;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn sh(script: &str) -> TestCommand {
    TestCommand::new("sh").args(["-c", script])
}

#[test]
fn run_feeds_stdin_and_returns_the_exit_code_and_both_streams() {
    let run = sh("cat; echo oops >&2; exit 3").stdin("a\nb\n").run();
    assert_eq!(run.code, 3);
    assert_eq!(run.stdout, "a\nb\n");
    assert_eq!(run.lines(), ["a", "b"]);
    assert_eq!(run.stderr, "oops\n");
    assert_eq!(run.command, "sh -c cat; echo oops >&2; exit 3");
}

#[test]
fn json_lines_parses_every_stdout_line() {
    let run = sh(r#"echo '{"a":1}'; echo '[2]'"#).run();
    assert_eq!(
        run.json_lines(),
        [serde_json::json!({"a": 1}), serde_json::json!([2])]
    );
}

#[test]
#[should_panic(expected = "not JSON")]
fn json_lines_fails_on_a_line_that_is_not_json() {
    sh("echo '{}'; echo nope").run().json_lines();
}

#[test]
fn rust_log_is_removed_unless_the_test_sets_it() {
    let script = r#"echo "${RUST_LOG-unset}""#;
    assert_eq!(sh(script).run().stdout, "unset\n");
    assert_eq!(sh(script).env("RUST_LOG", "info").run().stdout, "info\n");
}

#[test]
fn current_dir_and_env_reach_the_program() {
    let dir = Scratch::new();
    let run = sh(r#"pwd; echo "$NV_TESTKIT""#)
        .current_dir(dir.path())
        .env("NV_TESTKIT", "yes")
        .run();
    let canonical = dir.path().canonicalize().unwrap();
    assert_eq!(
        run.lines(),
        [canonical.to_str().unwrap(), "yes"],
        "{}",
        run.stderr
    );
}

#[test]
#[should_panic(expected = "did not exit within 200ms")]
fn a_run_past_its_bound_is_killed_and_fails_the_test() {
    sh("exec sleep 30")
        .timeout(Duration::from_millis(200))
        .run();
}

#[test]
#[should_panic(expected = "exited 1, expected 0\n--- stdout\nout\n\n--- stderr\nbad\n")]
fn assert_code_shows_both_streams_when_it_fails() {
    sh("echo out; echo bad >&2; exit 1").run().assert_success();
}

#[test]
#[should_panic(expected = "non-UTF-8 to stdout")]
fn output_that_is_not_utf8_fails_the_run() {
    sh(r"printf '\377'").run();
}

#[test]
fn wrappers_nest_with_the_last_one_outermost() {
    let command = TestCommand::new("netvantage")
        .arg("ports")
        .wrap(["prlimit", "--nofile=256:20000", "--"])
        .wrap(["ip", "netns", "exec", "ns"]);
    assert_eq!(
        command.to_string(),
        "ip netns exec ns prlimit --nofile=256:20000 -- netvantage ports"
    );
    let wrapped = sh("echo $0").wrap(["env", "-u", "NOTHING"]).run();
    assert_eq!(wrapped.stdout, "sh\n");
}

#[test]
fn a_spawned_process_is_read_while_it_runs_and_sigterm_returns_its_exit_code() {
    let mut process =
        sh("trap 'echo bye; exit 7' TERM; echo ready; while :; do sleep 0.05; done").spawn();
    process.wait_for(Duration::from_secs(10), "ready", |out, _| {
        out == ["ready".to_string()]
    });
    assert_eq!(process.code(), None, "still running");
    assert_eq!(process.terminate(Duration::from_secs(10)), 7);
    assert_eq!(process.stdout_lines(), ["ready", "bye"]);
    assert_eq!(process.code(), Some(7));
}

#[test]
fn hangup_sends_sighup_and_the_process_runs_on() {
    let mut process = sh("trap 'echo hup' HUP; echo ready; while :; do sleep 0.05; done").spawn();
    process.wait_for(Duration::from_secs(10), "ready", |out, _| !out.is_empty());
    process.hangup();
    process.wait_for(Duration::from_secs(10), "hup", |out, _| {
        out.iter().any(|l| l == "hup")
    });
    assert_eq!(process.code(), None, "still running");
    assert_eq!(
        process.terminate(Duration::from_secs(10)),
        -1,
        "TERM is not trapped"
    );
}

#[test]
fn a_line_counts_once_it_is_complete_or_the_stream_has_closed() {
    let mut process = sh(r"printf 'a\nb'; sleep 0.5").spawn();
    process.wait_for(Duration::from_secs(10), "the first line", |out, _| {
        !out.is_empty()
    });
    assert_eq!(process.stdout_lines(), ["a"], "half a line is not a line");
    assert_eq!(process.wait(Duration::from_secs(10)), 0);
    assert_eq!(process.stdout_lines(), ["a", "b"]);
    assert_eq!(process.stdout_text(), "a\nb");
}

#[test]
#[should_panic(expected = "exited (exit status: 0) while waiting for the word yes")]
fn wait_for_fails_as_soon_as_the_process_exits_without_it() {
    let mut process = sh("echo no").spawn();
    process.wait_for(Duration::from_secs(60), "the word yes", |out, _| {
        out.iter().any(|l| l == "yes")
    });
}

#[test]
fn wait_for_sees_the_lines_that_came_with_the_exit() {
    let mut process = sh("echo yes").spawn();
    process.wait_for(Duration::from_secs(10), "yes", |out, _| {
        out.iter().any(|l| l == "yes")
    });
}

#[test]
fn kill9_ends_a_process_that_ignores_sigterm() {
    let mut process = sh("trap '' TERM; echo ready; while :; do sleep 0.05; done").spawn();
    process.wait_for(Duration::from_secs(10), "ready", |out, _| !out.is_empty());
    process.kill9();
    assert_eq!(process.code(), Some(-1), "ended by a signal");
}

#[test]
fn wait_until_gives_up_after_its_limit_having_checked_at_the_deadline() {
    let started = Instant::now();
    let mut checks = 0;
    let held = wait_until(Duration::from_millis(100), || {
        checks += 1;
        false
    });
    assert!(!held);
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(checks >= 3, "{checks} checks");
    assert!(wait_until(Duration::ZERO, || true), "checked at least once");
}

#[test]
#[should_panic(expected = "waiting for the impossible")]
fn wait_for_names_what_it_waited_for() {
    wait_for(Duration::from_millis(50), "the impossible", || false);
}

#[test]
#[should_panic(expected = "build it with `cargo build -p nv-nowhere`")]
fn a_binary_that_was_not_built_fails_with_the_build_command() {
    binary("nv-no-such-binary", "nv-nowhere");
}

#[test]
#[should_panic(expected = "apt-get install nv-nowhere")]
fn a_missing_tool_fails_naming_its_package() {
    require_tool("nv-no-such-tool", "nv-nowhere");
}

#[test]
fn free_port_is_closed() {
    let port = free_port();
    let refused = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn scratch_files_live_in_a_directory_removed_on_drop() {
    let dir = Scratch::new();
    let file = dir.write("a/b.txt", "x");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    let path = dir.path().to_path_buf();
    drop(dir);
    assert!(!path.exists());
    assert_ne!(unique_name("t"), unique_name("t"));
}

fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn the_test_server_plays_each_paths_replies_in_order_and_records_every_request() {
    let server =
        TestServer::start(&[("/", vec![reply_body(500, "first"), reply_body(200, "then")])]);
    let statuses: Vec<String> = (0..3)
        .map(|_| get(server.addr, "/"))
        .map(|r| r.lines().next().unwrap().to_string())
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.0 500 Internal Server Error",
            "HTTP/1.0 200 OK",
            "HTTP/1.0 200 OK"
        ]
    );
    assert!(get(server.addr, "/").ends_with("then"));
    assert!(get(server.addr, "/elsewhere").starts_with("HTTP/1.0 404"));
    assert_eq!(server.seen().len(), 5);
    assert_eq!(server.seen_on("/").len(), 4);
    assert_eq!(server.seen()[0].method, "GET");
    assert_eq!(server.connections(), 5);
    assert_eq!(
        pin("a.test", &server),
        format!("a.test:{}:127.0.0.1", server.port())
    );
}

#[test]
fn metric_reads_a_sample_by_its_whole_name() {
    let text = "# TYPE x counter\nx_total{a=\"b\"} 4\nx_total 2.5\n";
    assert_eq!(metric(text, "x_total"), 2.5);
    assert_eq!(metric(text, "x_total{a=\"b\"}"), 4.0);
}

#[test]
fn a_database_is_the_tests_own_and_is_dropped_on_drop() {
    let db = Database::new("nv_testkit");
    assert_eq!(db.count_rows("t"), 0, "no table yet counts as empty");
    db.query("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)");
    assert_eq!(db.count_rows("t"), 2);
    assert_eq!(db.query("SELECT x, x * 10 FROM t ORDER BY x"), "1|10\n2|20");
    let name = db.name.clone();
    drop(db);
    let left = psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    );
    assert_eq!(left, Ok("0".to_string()));
}

#[test]
fn a_namespace_is_deleted_with_what_runs_in_it() {
    let ns = Netns::new();
    let name = ns.name.clone();
    assert!(ns.ip(&["link", "show", "lo"]).contains("UP"));
    let mut process = TestCommand::new("sleep").arg("600").in_netns(&ns).spawn();
    let pid = process.pid().to_string();
    wait_for(
        Duration::from_secs(5),
        "sleep to enter the namespace",
        || {
            TestCommand::new("ip")
                .args(["netns", "pids", &name])
                .run()
                .stdout
                .split_whitespace()
                .any(|p| p == pid)
        },
    );
    drop(ns);
    let listed = TestCommand::new("ip").args(["netns", "list"]).run();
    assert!(!listed.stdout.contains(&name), "{}", listed.stdout);
    let gone = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    assert!(
        gone,
        "the namespace's process {pid} survived it: {:?}",
        std::fs::read_to_string(format!("/proc/{pid}/status"))
    );
    assert_eq!(
        process.wait(Duration::from_secs(5)),
        -1,
        "killed by a signal"
    );
}

//! The fleet pipeline end to end, against a real Kafka-protocol broker (tansu on PostgreSQL) and
//! the machine's PostgreSQL: agent → Kafka → ingest → PostgreSQL, and the SQLite default.

use netvantage_testkit::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const INGEST_EXIT: Duration = Duration::from_secs(30);

/// How long an agent given `--run-for` may take to flush its sinks and exit.
const AGENT_EXIT: Duration = Duration::from_secs(60);

/// `netvantage ARGS` in `dir` (where the SQLite default and relative `hosts_file`s live),
/// logging at info: the tests read the summary lines.
fn start(dir: &Path, args: &[&str]) -> Running {
    nv().args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .spawn()
}

/// `netvantage agent --config CONFIG [--run-for RUN_FOR]` in `dir`.
fn spawn_agent(dir: &Path, config: &Path, run_for: Option<&str>) -> Running {
    let mut args = vec!["agent", "--config", config.to_str().unwrap()];
    if let Some(run_for) = run_for {
        args.extend(["--run-for", run_for]);
    }
    start(dir, &args)
}

/// Runs an agent for `run_for` and asserts it exited 0.
fn run_agent(dir: &Path, config: &Path, run_for: &str) -> Running {
    let mut agent = spawn_agent(dir, config, Some(run_for));
    assert_eq!(agent.wait(AGENT_EXIT), 0, "{}", agent.stderr_text());
    agent
}

/// Writes `yaml` as `DIR/agent.yaml` and returns its path.
fn write_agent_config(dir: &Path, yaml: &str) -> PathBuf {
    let config = dir.join("agent.yaml");
    std::fs::write(&config, yaml).unwrap();
    config
}

/// An agent config: `targets` closed loopback ports (each check is a quick `refused`), every
/// `interval`, to Kafka (and stdout, so the test knows every record produced).
fn agent_config(
    dir: &Path,
    brokers: &str,
    topic: &str,
    targets: usize,
    interval: &str,
    memory_records: usize,
) -> PathBuf {
    let port = free_port(); // nothing listens there once the probe listener is dropped
    let hosts: Vec<String> = (0..targets)
        .map(|i| format!("\"127.0.{}.{}\"", 1 + i / 250, 1 + i % 250))
        .collect();
    let yaml = format!(
        "agent: test-agent\nvantage: lab\ntcp:\n  - name: closed\n    port: {port}\n    interval: {interval}\n    timeout: 100ms\n    hosts: [{}]\nsinks:\n  stdout: true\n  kafka:\n    brokers: {brokers}\n    topic: {topic}\n    partitions: 6\n    memory_records: {memory_records}\n    spool_dir: {}\n    properties:\n      message.timeout.ms: 60000\n",
        hosts.join(", "),
        dir.join("spool").display()
    );
    let path = dir.join(format!("{}.yaml", unique_name("agent")));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A broker, a results database and an agent config for `targets` closed ports checked every
/// `interval`, in a temporary directory of their own. Tests destructure it; the directory is
/// the first binding, so it is dropped last.
struct Pipeline {
    dir: Scratch,
    broker: Broker,
    db: Database,
    config: PathBuf,
}

impl Pipeline {
    fn start(targets: usize, interval: &str, memory_records: usize) -> Pipeline {
        let dir = Scratch::new();
        let broker = Broker::start();
        let db = Database::new("nv_test");
        let config = agent_config(
            dir.path(),
            &broker.address(),
            "results",
            targets,
            interval,
            memory_records,
        );
        Pipeline {
            dir,
            broker,
            db,
            config,
        }
    }
}

/// `ingest` with a short session timeout, so a killed member's partitions move on quickly.
fn ingest_args<'a>(broker: &'a str, db_url: &'a str, topic: &'a str) -> Vec<&'a str> {
    vec![
        "ingest",
        "--kafka",
        broker,
        "--postgres",
        db_url,
        "--topic",
        topic,
        "--group",
        "nv-test",
        "--kafka-property",
        "session.timeout.ms=6000",
        "--kafka-property",
        "heartbeat.interval.ms=500",
        "--batch-wait",
        "100ms",
    ]
}

/// `ingest: N rows written, …` from an ingest's exit line.
fn rows_written(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("ingest: "))
        .filter_map(|l| l.split(" rows written").next()?.parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no `ingest: N rows written` line in:\n{stderr}"))
}

/// The ids of the records the agent printed (its `stdout` sink).
fn record_ids(agent: &Running) -> Vec<String> {
    agent
        .stdout_lines()
        .iter()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("agent stdout is not NDJSON ({e}): {line}"));
            v["id"].as_str().expect("record id").to_string()
        })
        .collect()
}

/// The ids of the rows in PostgreSQL's `results`.
fn stored_ids(db: &Database) -> Vec<String> {
    db.query("SELECT id FROM results")
        .lines()
        .map(str::to_string)
        .collect()
}

fn assert_same_ids(produced: &[String], stored: &[String]) {
    let produced_set: HashSet<&String> = produced.iter().collect();
    let stored_set: HashSet<&String> = stored.iter().collect();
    assert_eq!(
        produced_set.len(),
        produced.len(),
        "the agent produced a duplicate id"
    );
    assert_eq!(stored_set.len(), stored.len(), "a row is stored twice");
    let missing = produced_set.difference(&stored_set).count();
    let extra = stored_set.difference(&produced_set).count();
    assert!(
        missing == 0 && extra == 0,
        "{missing} produced records missing from PostgreSQL, {extra} unexpected rows ({} produced, {} stored)",
        produced.len(),
        stored.len()
    );
}

/// Waits until PostgreSQL holds `expected` rows, with a clear failure that shows both sides.
fn wait_for_rows(db: &Database, expected: usize, limit: Duration, ingests: &[&Running]) {
    if !wait_until(limit, || db.count_rows("results") >= expected) {
        let logs: Vec<String> = ingests.iter().map(|r| r.stderr_text()).collect();
        panic!(
            "{} of {expected} rows after {limit:?}; ingest logs:\n{}",
            db.count_rows("results"),
            logs.join("\n----\n")
        );
    }
}

#[test]
fn every_produced_record_lands_exactly_once() {
    let Pipeline {
        dir,
        broker,
        db,
        config,
    } = Pipeline::start(40, "500ms", 100_000);
    let mut agent = spawn_agent(dir.path(), &config, Some("4s"));
    let url = db.url();
    let mut ingest = start(dir.path(), &ingest_args(&broker.address(), &url, "results"));
    assert_eq!(agent.wait(AGENT_EXIT), 0, "{}", agent.stderr_text());
    let produced = record_ids(&agent);
    assert!(
        produced.len() >= 200,
        "only {} records produced",
        produced.len()
    );
    wait_for_rows(&db, produced.len(), Duration::from_secs(60), &[&ingest]);
    assert_eq!(ingest.terminate(INGEST_EXIT), 0, "{}", ingest.stderr_text());
    assert_same_ids(&produced, &stored_ids(&db));
    assert_eq!(rows_written(&ingest.stderr_text()), produced.len() as u64);
    assert!(
        agent
            .stderr_text()
            .contains(&format!("kafka: {} delivered", produced.len())),
        "{}",
        agent.stderr_text()
    );
    // The row is the record: a sample of its fields came through.
    let row = db.query("SELECT agent, vantage, kind, outcome, reason FROM results LIMIT 1");
    assert_eq!(row, "test-agent|lab|tcp|down|refused");

    // `report` reads PostgreSQL as it reads SQLite: 8 refused rounds per target are "down".
    let mut report = start(dir.path(), &["report", "--postgres", &url]);
    assert_eq!(
        report.wait(Duration::from_secs(30)),
        2,
        "{}",
        report.stderr_text()
    );
    let lines = report.stdout_text();
    assert_eq!(lines.lines().count(), 40, "{lines}");
    assert!(
        lines
            .lines()
            .all(|l| l.contains(" is down from every vantage point (lab): refused")),
        "{lines}"
    );
}

#[test]
fn the_agent_runs_http_endpoints_with_the_http_entry_schema() {
    let dir = Scratch::new();
    let body = "{\"status\": \"ok\"}";
    let server = TestServer::start(&[
        ("/health", vec![reply_body(200, body)]),
        ("/", vec![reply_body(200, body)]),
    ]);
    let port = server.port();
    let config = write_agent_config(
        dir.path(),
        &format!(
            "vantage: lab\nhttp:\n  interval: 300ms\n  timeout: 1s\n  endpoints:\n    - name: health\n      url: http://127.0.0.1:{port}/health\n      method: POST\n      headers: {{x-probe: netvantage}}\n      body: '{{}}'\n      body_regex: '\"status\": \"ok\"'\n    - name: wrong-body\n      url: http://127.0.0.1:{port}/\n      body_regex: 'healthy'\nsinks:\n  stdout: true\n"
        ),
    );
    let agent = run_agent(dir.path(), &config, "1s");
    let records: Vec<serde_json::Value> = agent
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |name: &str| -> Vec<&serde_json::Value> {
        records
            .iter()
            .filter(|r| r["http"]["name"] == name)
            .collect()
    };
    let health = of("health");
    assert!(health.len() >= 3, "{records:?}");
    for r in &health {
        assert_eq!(r["kind"], "http");
        assert_eq!(r["outcome"], "up", "{r}");
        assert_eq!(r["status"], 200);
        assert_eq!(r["body_matched"], true);
        assert_eq!(r["http"]["method"], "POST");
        assert_eq!(r["vantage"], "lab");
        assert!(r["phases"]["connect_ms"].is_number(), "{r}");
    }
    let wrong = of("wrong-body");
    assert!(!wrong.is_empty());
    assert!(
        wrong
            .iter()
            .all(|r| r["outcome"] == "down" && r["reason"] == "body" && r["body_matched"] == false),
        "{wrong:?}"
    );
}

#[test]
fn ingest_killed_mid_stream_loses_and_duplicates_nothing() {
    let Pipeline {
        dir,
        broker,
        db,
        config,
    } = Pipeline::start(100, "300ms", 100_000);
    let agent = run_agent(dir.path(), &config, "6s");
    let produced = record_ids(&agent);
    assert!(produced.len() >= 1000, "only {} records", produced.len());

    let (url, address) = (db.url(), broker.address());
    let mut args = ingest_args(&address, &url, "results");
    args.extend(["--batch", "100"]);
    let mut first = start(dir.path(), &args);
    wait_for_rows(&db, 200, Duration::from_secs(60), &[&first]);
    first.kill9();
    // A COMMIT the server had already received still completes after the client died.
    std::thread::sleep(Duration::from_millis(500));
    let stored_at_kill = db.count_rows("results");
    assert!(
        stored_at_kill < produced.len(),
        "ingest finished ({stored_at_kill}) before it could be killed mid-stream"
    );

    let mut second = start(dir.path(), &args);
    wait_for_rows(&db, produced.len(), Duration::from_secs(90), &[&second]);
    assert_eq!(second.terminate(INGEST_EXIT), 0, "{}", second.stderr_text());
    assert_same_ids(&produced, &stored_ids(&db));
    // What the second process wrote is exactly what the first had not: nothing twice.
    assert_eq!(
        rows_written(&second.stderr_text()) as usize,
        produced.len() - stored_at_kill
    );
}

#[test]
fn a_broker_down_for_ten_seconds_loses_nothing() {
    // A small memory queue, so the outage also goes through the on-disk spool.
    let Pipeline {
        dir,
        mut broker,
        db,
        config,
    } = Pipeline::start(50, "250ms", 200);
    let mut agent = spawn_agent(dir.path(), &config, None);
    let url = db.url();
    let mut ingest = start(dir.path(), &ingest_args(&broker.address(), &url, "results"));
    wait_for_rows(&db, 100, Duration::from_secs(60), &[&ingest]);

    broker.stop();
    std::thread::sleep(Duration::from_secs(10));
    broker.resume();
    // The agent keeps checking through the outage and after it.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(agent.terminate(AGENT_EXIT), 0, "{}", agent.stderr_text());
    let produced = record_ids(&agent);
    let agent_log = agent.stderr_text();
    let spooled: u64 = agent_log
        .split("; kafka: ")
        .nth(1)
        .and_then(|s| s.split(" spooled").next()?.split(", ").nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no kafka summary in:\n{agent_log}"));
    assert!(
        spooled > 0,
        "the outage never reached the spool:\n{agent_log}"
    );
    assert!(
        agent_log.contains(" 0 dropped, 0 bytes left in the spool"),
        "{agent_log}"
    );

    wait_for_rows(&db, produced.len(), Duration::from_secs(120), &[&ingest]);
    assert_eq!(ingest.terminate(INGEST_EXIT), 0, "{}", ingest.stderr_text());
    assert_same_ids(&produced, &stored_ids(&db));
}

/// The record ids in the spool's segment files under `spool` (a torn last line is skipped).
fn spooled_ids(spool: &Path) -> HashSet<String> {
    let mut ids = HashSet::new();
    let Ok(entries) = std::fs::read_dir(spool) else {
        return ids;
    };
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(id) = v["id"].as_str()
            {
                ids.insert(id.to_string());
            }
        }
    }
    ids
}

/// Issue 15, item 1, on the real broker: records spooled while the broker is away survive an
/// agent that is `kill -9`ed while it tries to replay them to a broker still away (a segment
/// goes only once the broker acknowledged each of its records); once the broker is back,
/// every one of them reaches PostgreSQL exactly once, and the last agent's records are
/// stored or still spooled.
#[test]
fn spooled_records_survive_a_kill_9_during_replay_and_arrive_once() {
    let Pipeline {
        dir,
        mut broker,
        db,
        config,
    } = Pipeline::start(20, "250ms", 1);
    let spool = dir.path().join("spool");
    broker.stop();

    // 1. The broker is away: what the agent checks goes to the spool.
    let first = run_agent(dir.path(), &config, "2s");
    let spooled_first = record_ids(&first);
    assert!(
        spooled_first.len() >= 40,
        "only {} records",
        spooled_first.len()
    );
    let on_disk = spooled_ids(&spool);
    let missing = spooled_first
        .iter()
        .filter(|id| !on_disk.contains(*id))
        .count();
    assert_eq!(
        missing, 0,
        "records missing from the spool after a clean exit"
    );

    // 2. Again with the broker still away: the agent takes the spool up for replay and is
    // killed in the middle of it.
    let mut second = spawn_agent(dir.path(), &config, None);
    std::thread::sleep(Duration::from_secs(4));
    second.kill9();
    let second_ids = record_ids(&second);
    let on_disk = spooled_ids(&spool);
    let lost: Vec<&String> = spooled_first
        .iter()
        .filter(|id| !on_disk.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} spooled records were lost by the kill -9 during replay",
        lost.len(),
        spooled_first.len()
    );

    // 3. The broker is back: the next agent replays the spool; ingest stores it.
    broker.resume();
    let url = db.url();
    // The schema first, so the test can read `results` from the start.
    let mut migrate = start(
        dir.path(),
        &[
            "ingest",
            "--kafka",
            &broker.address(),
            "--postgres",
            &url,
            "--migrate-only",
        ],
    );
    assert_eq!(migrate.wait(INGEST_EXIT), 0, "{}", migrate.stderr_text());
    let mut ingest = start(dir.path(), &ingest_args(&broker.address(), &url, "results"));
    // Room in memory now: with a one-record queue the new records would crowd the replay out.
    let roomy = agent_config(
        dir.path(),
        &broker.address(),
        "results",
        20,
        "250ms",
        100_000,
    );
    let mut third = spawn_agent(dir.path(), &roomy, None);
    let arrived = wait_until(Duration::from_secs(120), || {
        let stored: HashSet<String> = stored_ids(&db).into_iter().collect();
        spooled_first.iter().all(|id| stored.contains(id))
    });
    let stored_then = stored_ids(&db).len();
    assert_eq!(third.terminate(AGENT_EXIT), 0, "{}", third.stderr_text());
    assert!(
        arrived,
        "spooled records never reached PostgreSQL ({stored_then} rows); agent log:\n{}\ningest log:\n{}",
        third.stderr_text(),
        ingest.stderr_text()
    );
    let third_ids = record_ids(&third);
    // What the last agent still had queued when it stopped waits in the spool for the next
    // run; the rest was delivered and reaches PostgreSQL: either place, never neither.
    let left_in_spool = spooled_ids(&spool);
    let unsettled = |stored: &HashSet<String>| -> Vec<String> {
        third_ids
            .iter()
            .filter(|id| !stored.contains(*id) && !left_in_spool.contains(*id))
            .cloned()
            .collect()
    };
    let settled = wait_until(Duration::from_secs(60), || {
        unsettled(&stored_ids(&db).into_iter().collect()).is_empty()
    });
    let missing = unsettled(&stored_ids(&db).into_iter().collect());
    assert!(
        settled,
        "{} of the last agent's {} records are neither stored nor spooled, e.g. {:?}\nagent log:\n{}",
        missing.len(),
        third_ids.len(),
        missing.first(),
        third.stderr_text()
    );
    assert_eq!(ingest.terminate(INGEST_EXIT), 0, "{}", ingest.stderr_text());
    let stored = stored_ids(&db);
    let stored_set: HashSet<&String> = stored.iter().collect();
    assert_eq!(stored_set.len(), stored.len(), "a row is stored twice");
    for id in &spooled_first {
        assert!(stored_set.contains(id), "spooled record {id} never arrived");
    }
    // Nothing arrives that no agent produced (the killed one's may or may not have spooled).
    let produced: HashSet<&String> = spooled_first
        .iter()
        .chain(&second_ids)
        .chain(&third_ids)
        .collect();
    assert!(stored.iter().all(|id| produced.contains(id)));
}

#[test]
fn two_ingests_in_one_group_share_six_partitions() {
    let Pipeline {
        dir,
        broker,
        db,
        config,
    } = Pipeline::start(120, "300ms", 100_000);
    let (url, address) = (db.url(), broker.address());
    let args = ingest_args(&address, &url, "results");
    // The agent creates the 6-partition topic; the ingests join the group first so the work
    // is split from the start.
    let mut agent = spawn_agent(dir.path(), &config, Some("8s"));
    std::thread::sleep(Duration::from_secs(1));
    let mut a = start(dir.path(), &args);
    let mut b = start(dir.path(), &args);
    assert_eq!(agent.wait(AGENT_EXIT), 0, "{}", agent.stderr_text());
    let produced = record_ids(&agent);
    wait_for_rows(&db, produced.len(), Duration::from_secs(90), &[&a, &b]);
    assert_eq!(a.terminate(INGEST_EXIT), 0);
    assert_eq!(b.terminate(INGEST_EXIT), 0);
    assert_same_ids(&produced, &stored_ids(&db));
    let (wrote_a, wrote_b) = (
        rows_written(&a.stderr_text()),
        rows_written(&b.stderr_text()),
    );
    assert!(
        wrote_a > 0 && wrote_b > 0,
        "one member did all the work: {wrote_a} and {wrote_b} rows\n{}\n----\n{}",
        a.stderr_text(),
        b.stderr_text()
    );
    assert_eq!((wrote_a + wrote_b) as usize, produced.len());
    assert_eq!(
        db.query("SELECT count(DISTINCT target) FROM results"),
        "120",
        "every target's records arrived"
    );
}

#[test]
fn postgres_unavailable_ingest_holds_offsets_retries_and_catches_up() {
    let Pipeline {
        dir,
        broker,
        db,
        config,
    } = Pipeline::start(40, "250ms", 100_000);
    let (url, address) = (db.url(), broker.address());
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut args = ingest_args(&address, &url, "results");
    args.extend(["--metrics-listen", &metrics_addr]);
    let mut ingest = start(dir.path(), &args);
    let mut agent = spawn_agent(dir.path(), &config, Some("12s"));
    wait_for_rows(&db, 100, Duration::from_secs(60), &[&ingest]);

    db.block_connections();
    std::thread::sleep(Duration::from_secs(1));
    let before = scrape(&metrics_addr);
    std::thread::sleep(Duration::from_secs(4));
    let during = scrape(&metrics_addr);
    assert_eq!(
        metric(&before, "netvantage_ingest_offset_commits_total"),
        metric(&during, "netvantage_ingest_offset_commits_total"),
        "offsets were committed while the database was unavailable"
    );
    assert!(
        metric(&during, "netvantage_ingest_database_errors_total") > 0.0,
        "{during}"
    );
    db.allow_connections();

    assert_eq!(agent.wait(AGENT_EXIT), 0, "{}", agent.stderr_text());
    let produced = record_ids(&agent);
    wait_for_rows(&db, produced.len(), Duration::from_secs(90), &[&ingest]);
    let after = scrape(&metrics_addr);
    assert!(
        metric(&after, "netvantage_ingest_offset_commits_total")
            > metric(&during, "netvantage_ingest_offset_commits_total")
    );
    assert_eq!(ingest.terminate(INGEST_EXIT), 0, "{}", ingest.stderr_text());
    assert_same_ids(&produced, &stored_ids(&db));
}

#[test]
fn without_kafka_the_agent_writes_sqlite_and_report_reads_it() {
    let dir = Scratch::new();
    let listener = listen("127.0.0.1:0");
    let open = listener.local_addr().unwrap().port();
    let closed = free_port();
    std::fs::write(
        dir.path().join("hosts.txt"),
        format!("127.0.0.1:{closed}\nnot a host!\n"),
    )
    .unwrap();
    let config = write_agent_config(
        dir.path(),
        &format!(
            "vantage: lab\ninterval: 200ms\ntimeout: 150ms\ntcp:\n  - name: up\n    port: {open}\n    hosts: [127.0.0.1]\n  - name: down\n    port: {closed}\n    hosts_file: hosts.txt\n"
        ),
    );
    let agent = run_agent(dir.path(), &config, "2s");
    let log = agent.stderr_text();
    assert!(log.contains("hosts.txt:2: invalid host"), "{log}");
    assert!(
        dir.path().join("netvantage.db").exists(),
        "the default sink is ./netvantage.db"
    );

    let mut report = start(dir.path(), &["report"]);
    let code = report.wait(Duration::from_secs(30));
    let out = report.stdout_text();
    assert!(
        out.contains(&format!("127.0.0.1:{open} reporting ok")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "127.0.0.1:{closed} is down from every vantage point (lab): refused"
        )),
        "{out}"
    );
    assert_eq!(code, 2, "a target down from everywhere is critical");

    let mut json = start(dir.path(), &["report", "--format", "json"]);
    json.wait(Duration::from_secs(30));
    let verdicts: Vec<serde_json::Value> = json
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(verdicts.len(), 2);
    assert!(verdicts.iter().any(|v| v["verdict"] == "down_everywhere"));
    drop(listener);
}

#[test]
fn a_bad_agent_config_names_the_line_and_exits_3() {
    let dir = Scratch::new();
    let config = write_agent_config(
        dir.path(),
        "vantage: lab\ntcp:\n  - port: 22\n    hosts: [127.0.0.1]\n    intervall: 5s\n",
    );
    let mut agent = spawn_agent(dir.path(), &config, None);
    assert_eq!(agent.wait(Duration::from_secs(10)), 3);
    let err = agent.stderr_text();
    assert!(
        err.contains("agent.yaml:5:5: tcp group 1, field `intervall`: unknown field"),
        "{err}"
    );
}

#[test]
fn an_agent_group_whose_timeout_is_not_below_its_interval_exits_3_naming_the_line() {
    // The rule `ports --timeout` obeys holds for agent groups too (issue 11/15).
    let dir = Scratch::new();
    let config = write_agent_config(
        dir.path(),
        "vantage: lab\ntcp:\n  - port: 22\n    hosts: [127.0.0.1]\n    interval: 10s\n    timeout: 30s\n",
    );
    let mut agent = spawn_agent(dir.path(), &config, None);
    assert_eq!(agent.wait(Duration::from_secs(10)), 3);
    let err = agent.stderr_text();
    assert!(
        err.contains("agent.yaml:6:14: tcp group 1 (tcp-22): the timeout (30s) must be shorter than the interval (10s)"),
        "{err}"
    );
}

/// The ids of the connection-log records a `conns --sink stdout` printed.
fn conns_record_ids(conns: &Running) -> Vec<String> {
    conns
        .stdout_lines()
        .iter()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(json["record"], "connection", "{line}");
            json["id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn conns_records_reach_postgres_through_the_broker_exactly_once_even_redelivered() {
    let dir = Scratch::new();
    let broker = Broker::start();
    let db = Database::new("nv_conns");
    let root = proc_fixture("before");
    let brokers = format!("kafka:{}", broker.address());
    let spool = dir.join("conns-spool");
    let mut conns = start(
        dir.path(),
        &[
            "conns",
            "--proc-root",
            root.to_str().unwrap(),
            "--include-existing",
            "--count",
            "1",
            "--host",
            "web-1",
            "--sink",
            &brokers,
            "--kafka-topic",
            "conns",
            "--spool-dir",
            spool.to_str().unwrap(),
            "--sink",
            "stdout",
        ],
    );
    assert_eq!(conns.wait(AGENT_EXIT), 0, "{}", conns.stderr_text());
    let produced = conns_record_ids(&conns);
    assert_eq!(produced.len(), 14, "every fixture connection, once");
    let url = db.url();
    let ingest_rows = |db: &Database| db.count_rows("connections");
    let address = broker.address();
    // The second group reads every message again: a redelivery, skipped by id.
    for (group, new_rows) in [("nv-conns-1", produced.len()), ("nv-conns-2", 0)] {
        let metrics = format!("127.0.0.1:{}", free_port());
        let mut args = ingest_args(&address, &url, "conns");
        args[8] = group;
        args.extend(["--metrics-listen", &metrics]);
        let mut ingest = start(dir.path(), &args);
        let duplicates = format!("{} duplicates skipped", produced.len() - new_rows);
        // Both counters settle on exact values once the whole topic is read.
        let counted = |name: &str| {
            std::panic::catch_unwind(|| metric(&scrape(&metrics), name)).unwrap_or(-1.0)
        };
        let read = wait_until(Duration::from_secs(60), || {
            counted("netvantage_ingest_rows_written_total") == new_rows as f64
                && counted("netvantage_ingest_duplicates_skipped_total")
                    == (produced.len() - new_rows) as f64
        });
        assert!(read, "{}", ingest.stderr_text());
        assert_eq!(ingest.terminate(INGEST_EXIT), 0, "{}", ingest.stderr_text());
        let log = ingest.stderr_text();
        assert_eq!(rows_written(&log), new_rows as u64, "{log}");
        if new_rows == 0 {
            assert!(log.contains(&duplicates), "{log}");
        }
        assert_eq!(ingest_rows(&db), produced.len(), "{log}");
    }
    let stored: HashSet<String> = db
        .query("SELECT id FROM connections")
        .lines()
        .map(str::to_string)
        .collect();
    let produced: HashSet<String> = produced.into_iter().collect();
    assert_eq!(stored, produced);
    assert_eq!(
        db.query("SELECT host, direction FROM connections WHERE destination = '10.0.0.5:22'"),
        "web-1|inbound"
    );
    // The redelivery was rolled up as it was stored: not at all.
    for tier in ["conns_rollups_hour", "conns_rollups_day"] {
        assert_eq!(
            db.query(&format!("SELECT sum(inbound + outbound) FROM {tier}")),
            stored.len().to_string(),
            "{tier}"
        );
    }
    assert_eq!(db.count_rows("results"), 0);
    assert_eq!(db.count_rows("rejected_messages"), 0);
}

/// A small seeded generator (splitmix64) for the crash-safety loop's kill moments: the same
/// seed replays the same schedule, and the test prints it.
struct KillSchedule {
    state: u64,
}

impl KillSchedule {
    /// `NV_CRASH_SEED` when set (to replay a failure), otherwise the clock's nanoseconds.
    fn from_env_or_clock() -> (KillSchedule, u64) {
        let seed = std::env::var("NV_CRASH_SEED")
            .ok()
            .map(|s| s.parse().expect("NV_CRASH_SEED is a u64"))
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        (KillSchedule { state: seed }, seed)
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A pause between `low_ms` and `high_ms`: when the next fault strikes.
    fn pause(&mut self, low_ms: u64, high_ms: u64) -> Duration {
        Duration::from_millis(low_ms + self.next() % (high_ms - low_ms + 1))
    }
}

/// Collects, every 50 ms on a thread of its own, the id of every record seen in the spool's
/// segments at any moment: a record that reached the spool must reach PostgreSQL.
struct SpoolWatcher {
    seen: std::sync::Arc<std::sync::Mutex<HashSet<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SpoolWatcher {
    fn start(spool: PathBuf) -> SpoolWatcher {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(HashSet::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let now = spooled_ids(&spool);
                    seen.lock().unwrap().extend(now);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        SpoolWatcher {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> HashSet<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops watching and returns everything seen.
    fn finish(mut self) -> HashSet<String> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the spool watcher panicked");
        }
        self.seen()
    }
}

impl Drop for SpoolWatcher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The crash-safety loop's agent config: run `name` (stored as the row's `agent`, so a row
/// tells which run produced it), `targets` closed loopback ports every 200 ms, to stdout and to
/// Kafka with a small memory queue, so an outage reaches the shared spool quickly. No SQLite.
/// The agent reads its config once at start, so each run rewrites `agent.yaml`.
fn crash_agent_config(dir: &Path, name: &str, brokers: &str, port: u16, targets: usize) -> PathBuf {
    let hosts: Vec<String> = (0..targets)
        .map(|i| format!("\"127.0.3.{}\"", 1 + i))
        .collect();
    write_agent_config(
        dir,
        &format!(
            "agent: {name}\nvantage: lab\ntcp:\n  - name: closed\n    port: {port}\n    interval: 200ms\n    timeout: 100ms\n    hosts: [{}]\nsinks:\n  stdout: true\n  kafka:\n    brokers: {brokers}\n    topic: results\n    partitions: 6\n    memory_records: 200\n    spool_dir: {}\n    properties:\n      message.timeout.ms: 60000\n",
            hosts.join(", "),
            dir.join("spool").display()
        ),
    )
}

/// The ids a (possibly killed) agent printed; a line cut by the kill is not a record.
fn printed_ids(agent: &Running) -> HashSet<String> {
    agent
        .stdout_lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect()
}

/// Issue 15, "keep it fixed": agents and ingests are `kill -9`ed at seeded-random moments (six
/// kills) while the broker is killed and restarted once and the results database refuses
/// connections once. At the end every record that reached the spool at any moment, and every
/// record of the last agent (stopped cleanly), is in PostgreSQL exactly once; nothing is stored
/// that no agent produced. What a killed agent held only in librdkafka's memory queue is lost
/// by design (docs/pipeline.md: only the spool is durable); the test prints how much.
#[test]
fn crash_safety_loop_every_produced_result_lands_exactly_once() {
    let (mut schedule, seed) = KillSchedule::from_env_or_clock();
    eprintln!("crash-safety loop seed: {seed} (replay with NV_CRASH_SEED={seed})");
    let dir = Scratch::new();
    let mut broker = Broker::start();
    let db = Database::new("nv_crash");
    let (url, address) = (db.url(), broker.address());
    let port = free_port();
    let spool = dir.path().join("spool");
    let watcher = SpoolWatcher::start(spool.clone());

    // The schema first, so the test can count rows from the start.
    let mut migrate = start(
        dir.path(),
        &[
            "ingest",
            "--kafka",
            &address,
            "--postgres",
            &url,
            "--migrate-only",
        ],
    );
    assert_eq!(migrate.wait(INGEST_EXIT), 0, "{}", migrate.stderr_text());

    let ingest_command = ingest_args(&address, &url, "results");
    let mut run = 0;
    let mut next_agent = |dir: &Path| -> (String, Running) {
        run += 1;
        let name = format!("crash-run-{run}");
        let config = crash_agent_config(dir, &name, &address, port, 20);
        (name, spawn_agent(dir, &config, None))
    };
    let mut killed_agents: Vec<(String, HashSet<String>)> = Vec::new();
    let mut kills = 0;
    let mut kill_agent = |agent: &mut Running, name: &str, kills: &mut u32| {
        agent.kill9();
        *kills += 1;
        eprintln!("kill {kills}: agent {name}");
        killed_agents.push((name.to_string(), printed_ids(agent)));
    };
    let kill_ingest = |ingest: &mut Running, kills: &mut u32| {
        ingest.kill9();
        *kills += 1;
        eprintln!("kill {kills}: ingest");
    };
    // Rows stored go up from what they are now: the pipeline is flowing again.
    let flowing = |db: &Database, what: &str| {
        let before = db.count_rows("results");
        wait_for(Duration::from_secs(60), what, || {
            db.count_rows("results") > before
        });
    };

    let mut ingest = start(dir.path(), &ingest_command);
    let (mut name, mut agent) = next_agent(dir.path());
    wait_for(Duration::from_secs(60), "the first rows", || {
        db.count_rows("results") >= 50
    });

    // 1–2. With everything up: an agent, then an ingest.
    std::thread::sleep(schedule.pause(300, 2000));
    kill_agent(&mut agent, &name, &mut kills);
    (name, agent) = next_agent(dir.path());
    std::thread::sleep(schedule.pause(300, 2000));
    kill_ingest(&mut ingest, &mut kills);
    ingest = start(dir.path(), &ingest_command);
    flowing(&db, "rows after the first two kills");

    // 3–4. The broker is killed: the agent spools, is killed; the next one, replaying the
    // spool to a broker still away, is killed too.
    broker.stop();
    wait_for(Duration::from_secs(60), "records in the spool", || {
        !spooled_ids(&spool).is_empty()
    });
    std::thread::sleep(schedule.pause(200, 1500));
    kill_agent(&mut agent, &name, &mut kills);
    (name, agent) = next_agent(dir.path());
    std::thread::sleep(schedule.pause(1000, 3000));
    kill_agent(&mut agent, &name, &mut kills);
    let (last_name, mut last_agent) = next_agent(dir.path());
    broker.resume();
    flowing(&db, "rows after the broker came back");

    // 5. The results database refuses connections; ingest is killed in the middle of it and
    // the next one starts while it still refuses.
    db.block_connections();
    std::thread::sleep(schedule.pause(300, 1500));
    kill_ingest(&mut ingest, &mut kills);
    ingest = start(dir.path(), &ingest_command);
    std::thread::sleep(schedule.pause(1000, 3000));
    db.allow_connections();
    flowing(&db, "rows after the database came back");

    // 6. An ingest killed while catching up.
    std::thread::sleep(schedule.pause(100, 1000));
    kill_ingest(&mut ingest, &mut kills);
    ingest = start(dir.path(), &ingest_command);
    assert_eq!(kills, 6);

    // Every spooled record replayed and stored, the spool empty: the last agent may stop.
    let replayed = wait_until(Duration::from_secs(120), || {
        let stored: HashSet<String> = stored_ids(&db).into_iter().collect();
        spooled_ids(&spool).is_empty() && watcher.seen().iter().all(|id| stored.contains(id))
    });
    assert!(
        replayed,
        "the spool never drained into PostgreSQL (seed {seed}); agent log:\n{}\ningest log:\n{}",
        last_agent.stderr_text(),
        ingest.stderr_text()
    );
    assert_eq!(
        last_agent.terminate(AGENT_EXIT),
        0,
        "{}",
        last_agent.stderr_text()
    );
    let seen_spooled = watcher.finish();
    let last_log = last_agent.stderr_text();
    assert!(
        last_log.contains(" 0 dropped, 0 bytes left in the spool"),
        "the last agent (broker and database up) dropped or spooled records:\n{last_log}"
    );
    assert!(spooled_ids(&spool).is_empty(), "records left in the spool");
    let last_ids: HashSet<String> = record_ids(&last_agent).into_iter().collect();
    assert!(last_ids.len() >= 100, "only {} records", last_ids.len());
    let all_arrived = wait_until(Duration::from_secs(90), || {
        let stored: HashSet<String> = stored_ids(&db).into_iter().collect();
        last_ids.iter().all(|id| stored.contains(id))
    });
    assert_eq!(ingest.terminate(INGEST_EXIT), 0, "{}", ingest.stderr_text());
    assert!(
        all_arrived,
        "the last agent's records never all reached PostgreSQL (seed {seed}); ingest log:\n{}",
        ingest.stderr_text()
    );

    // Exactly once: as many rows as distinct ids.
    assert_eq!(
        db.query("SELECT count(*) = count(DISTINCT id) FROM results"),
        "t",
        "a record is stored twice (seed {seed})"
    );
    let stored: HashSet<String> = stored_ids(&db).into_iter().collect();
    assert_eq!(stored.len(), db.count_rows("results"));
    let missing_spooled = seen_spooled.difference(&stored).count();
    assert_eq!(
        missing_spooled,
        0,
        "{missing_spooled} of {} records that reached the spool never reached PostgreSQL (seed {seed})",
        seen_spooled.len()
    );
    // Nothing stored that no agent produced. A killed agent may have handed a record to the
    // broker in the instant before its stdout sink printed it: such a row can only be a killed
    // run's, which its `agent` column says.
    let printed: HashSet<&String> = killed_agents
        .iter()
        .flat_map(|(_, ids)| ids)
        .chain(&last_ids)
        .collect();
    let killed_names: HashSet<&str> = killed_agents.iter().map(|(n, _)| n.as_str()).collect();
    let unprinted: Vec<String> = db
        .query("SELECT id || '|' || agent FROM results")
        .lines()
        .filter(|l| !printed.contains(&l.split('|').next().unwrap().to_string()))
        .map(str::to_string)
        .collect();
    assert!(
        unprinted
            .iter()
            .all(|l| killed_names.contains(l.split('|').nth(1).unwrap_or(""))),
        "rows stored that no agent produced (seed {seed}): {unprinted:?}"
    );
    // What the kills cost: a killed agent's records that never reached the spool or the broker
    // were in librdkafka's memory queue when the process died.
    for (name, ids) in &killed_agents {
        let lost = ids
            .iter()
            .filter(|id| !stored.contains(*id) && !seen_spooled.contains(*id))
            .count();
        eprintln!(
            "{name}: {} printed, {lost} lost in memory at its kill -9",
            ids.len()
        );
    }
    eprintln!(
        "{last_name}: {} records, all stored; {} stored in all, {} seen in the spool, {} unprinted rows of killed runs",
        last_ids.len(),
        stored.len(),
        seen_spooled.len(),
        unprinted.len()
    );
    assert!(
        !seen_spooled.is_empty(),
        "the outage never reached the spool"
    );
}

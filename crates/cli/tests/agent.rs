//! End-to-end tests of `netvantage agent` on its own (no broker): config reloads on SIGHUP, the
//! metrics it serves, and its sinks under faults — a sink that fails for good must not take the
//! others down, and a SQLite store on a disk that fills and is freed again must lose nothing.
//! Every target is a loopback port; full disks are tiny tmpfs mounts the test makes and removes.

use netvantage_testkit::*;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const EXIT: Duration = Duration::from_secs(30);

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// A closed loopback port: every check of it is a quick `refused`.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The `target` of each NDJSON record the agent printed.
fn targets(agent: &Running) -> Vec<String> {
    agent
        .json_lines()
        .iter()
        .map(|r| r["target"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn count(agent: &Running, target: &str) -> usize {
    targets(agent).iter().filter(|t| *t == target).count()
}

#[test]
fn sighup_starts_added_targets_stops_removed_ones_and_keeps_the_rest() {
    let scratch = Scratch::new();
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let kept = format!("127.0.0.1:{}", up.local_addr().unwrap().port());
    let removed = format!("127.0.0.1:{}", closed_port());
    let added = format!("127.0.0.1:{}", closed_port());
    let group = |name: &str, target: &str| {
        format!(
            "  - name: {name}\n    port: 1\n    hosts: ['{target}']\n    interval: 200ms\n    timeout: 100ms\n"
        )
    };
    let config = write(
        &scratch.path().join("agent.yaml"),
        &format!(
            "vantage: lab\ntcp:\n{}{}sinks:\n  stdout: true\n",
            group("kept", &kept),
            group("old", &removed)
        ),
    );
    let mut agent = nv()
        .args(["-v", "agent", "--config", config.to_str().unwrap()])
        .current_dir(scratch.path())
        .spawn();
    agent.wait_for(
        Duration::from_secs(20),
        "records of both groups",
        |out, _| {
            let text = out.join("\n");
            text.contains(&kept) && text.contains(&removed)
        },
    );

    // A broken file is refused with its line, and the running config stays.
    write(
        &config,
        "vantage: lab\ntcp:\n  - name: kept\n    port: nope\n",
    );
    agent.hangup();
    agent.wait_for(Duration::from_secs(10), "the refusal", |_, err| {
        err.iter()
            .any(|l| l.contains("reload refused") && l.contains("agent.yaml:4:11"))
    });
    let removed_before = count(&agent, &removed);
    agent.wait_for(
        Duration::from_secs(10),
        "the old groups still running",
        |out, _| out.iter().filter(|l| l.contains(&removed)).count() > removed_before + 2,
    );

    // A good file: `old` goes, `new` comes, `kept` is untouched.
    write(
        &config,
        &format!(
            "vantage: lab\ntcp:\n{}{}sinks:\n  stdout: true\n",
            group("kept", &kept),
            group("new", &added)
        ),
    );
    agent.hangup();
    agent.wait_for(Duration::from_secs(10), "the reload", |_, err| {
        err.iter().any(|l| l.contains("config reloaded"))
    });
    agent.wait_for(
        Duration::from_secs(10),
        "records of the added group",
        |out, _| out.iter().any(|l| l.contains(&added)),
    );
    // Checks of the removed group that were in flight at the reload may still report; after
    // that, none.
    std::thread::sleep(Duration::from_millis(300));
    let removed_after_reload = count(&agent, &removed);
    let kept_after_reload = count(&agent, &kept);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        count(&agent, &removed),
        removed_after_reload,
        "the removed group stopped"
    );
    assert!(
        count(&agent, &kept) > kept_after_reload + 2,
        "the kept group runs on"
    );
    assert_eq!(agent.terminate(EXIT), 0, "{}", agent.stderr_text());

    let log = agent.stderr_text();
    let started = |name: &str| {
        log.lines()
            .filter(|l| l.contains("started") && l.contains(&format!("engine=tcp {name}")))
            .count()
    };
    assert_eq!(
        started("kept"),
        1,
        "the unchanged group was never restarted:\n{log}"
    );
    assert_eq!(started("new"), 1);
    // Its target kept its verdict state: one first verdict, and no second one after the reload.
    let first_verdicts = log
        .lines()
        .filter(|l| l.contains("verdict changed") && l.contains(&kept) && l.contains("unknown"))
        .count();
    assert_eq!(first_verdicts, 1, "{log}");
}

#[test]
fn the_agent_serves_its_metrics_and_promtool_accepts_them() {
    require_tool("promtool", "prometheus");
    let scratch = Scratch::new();
    let closed = closed_port();
    let port = free_port();
    let config = write(
        &scratch.path().join("agent.yaml"),
        &format!(
            "vantage: lab\ntcp:\n  - port: {closed}\n    hosts: [127.0.0.1]\n    interval: 100ms\n    timeout: 50ms\nsinks:\n  sqlite: {{path: nv.db}}\n  stdout: true\n"
        ),
    );
    let listen = format!("127.0.0.1:{port}");
    let mut agent = nv()
        .args([
            "agent",
            "--config",
            config.to_str().unwrap(),
            "--metrics-listen",
            &listen,
        ])
        .current_dir(scratch.path())
        .spawn();
    agent.wait_for(Duration::from_secs(20), "a few records", |out, _| {
        out.len() >= 5
    });
    let response = scrape(&listen);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(
        metric(
            body,
            "netvantage_agent_checks_total{kind=\"tcp\",outcome=\"down\"}"
        ) >= 5.0,
        "{body}"
    );
    assert_eq!(
        metric(body, "netvantage_agent_targets{verdict=\"down\"}"),
        1.0
    );
    for sink in ["sqlite", "stdout"] {
        assert!(
            metric(
                body,
                &format!(
                    "netvantage_agent_sink_records_total{{sink=\"{sink}\",fate=\"received\"}}"
                )
            ) >= 5.0,
            "{body}"
        );
        assert_eq!(
            metric(
                body,
                &format!("netvantage_agent_sink_up{{sink=\"{sink}\"}}")
            ),
            1.0
        );
    }
    let file = scratch.write("metrics.txt", body);
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(agent.terminate(EXIT), 0, "{}", agent.stderr_text());
}

#[test]
fn a_closed_stdout_does_not_take_the_sqlite_sink_down() {
    // Issue 15: a closed stdout once aborted the agent before the other sinks were closed.
    let scratch = Scratch::new();
    let closed = closed_port();
    let config = write(
        &scratch.path().join("agent.yaml"),
        &format!(
            "vantage: lab\ntcp:\n  - port: {closed}\n    hosts: [127.0.0.1, 127.0.0.2]\n    interval: 100ms\n    timeout: 50ms\nsinks:\n  sqlite: {{path: nv.db}}\n  stdout: true\n"
        ),
    );
    let netvantage = binary("netvantage", "netvantage");
    // `head -n 1` reads one record and leaves: every later write to stdout fails with EPIPE.
    let run = TestCommand::new("sh")
        .args([
            "-c",
            &format!(
                "'{}' agent --config '{}' --run-for 2s | head -n 1 >/dev/null",
                netvantage.display(),
                config.display()
            ),
        ])
        .current_dir(scratch.path())
        .run();
    let summary = run
        .stderr
        .lines()
        .find(|l| l.starts_with("agent: "))
        .unwrap_or_else(|| panic!("no summary:\n{}", run.stderr));
    let results: u64 = summary
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    let stored: u64 = summary
        .split("sqlite: ")
        .nth(1)
        .and_then(|s| s.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(results >= 10, "{summary}");
    assert_eq!(stored, results, "every result stored in SQLite: {summary}");
    assert!(summary.contains("reader went away"), "{summary}");
}

/// A tmpfs of `size` mounted on a directory of the test's own, unmounted on drop.
struct TinyDisk {
    dir: PathBuf,
}

impl TinyDisk {
    fn mount(scratch: &Scratch, size: &str) -> TinyDisk {
        let dir = scratch.path().join("disk");
        std::fs::create_dir(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a test tmpfs needs root (CI runs as root)"
        );
        TinyDisk { dir }
    }

    /// Fills the disk to the last byte with a file that can be removed later.
    fn fill(&self) -> PathBuf {
        let filler = self.dir.join("filler");
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4k"])
            .arg(format!("of={}", filler.display()))
            .stderr(std::process::Stdio::null())
            .status();
        filler
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

#[test]
fn a_sqlite_store_on_a_disk_that_fills_and_is_freed_again_loses_nothing() {
    // Issue 15: after one failed write the SQLite sink never recovered (17 rows of ~3,000).
    let scratch = Scratch::new();
    // Room for the WAL to reach its checkpoint size (1,000 pages) next to the database.
    let disk = TinyDisk::mount(&scratch, "16m");
    let db = disk.dir.join("nv.db");
    let closed = closed_port();
    let config = write(
        &scratch.path().join("agent.yaml"),
        &format!(
            "vantage: lab\ntcp:\n  - port: {closed}\n    hosts: [127.0.0.1, 127.0.0.2, 127.0.0.3, 127.0.0.4]\n    interval: 50ms\n    timeout: 30ms\nsinks:\n  sqlite: {{path: '{}'}}\n",
            db.display()
        ),
    );
    let mut agent = nv()
        .args(["agent", "--config", config.to_str().unwrap()])
        .current_dir(scratch.path())
        .spawn();
    wait_until(Duration::from_secs(10), || db.exists());
    std::thread::sleep(Duration::from_millis(500));
    let filler = disk.fill();
    // Full for a while: writes fail and are retried, the records wait in memory.
    agent.wait_for(Duration::from_secs(20), "a failed write", |_, err| {
        err.iter()
            .any(|l| l.contains("cannot write; keeping the records"))
    });
    std::thread::sleep(Duration::from_secs(1));
    std::fs::remove_file(&filler).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(agent.terminate(EXIT), 0, "{}", agent.stderr_text());
    let summary = agent
        .stderr_lines()
        .into_iter()
        .find(|l| l.starts_with("agent: "))
        .unwrap();
    let results: u64 = summary.split_whitespace().nth(1).unwrap().parse().unwrap();
    let rows: u64 = Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT count(*) FROM results")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or_else(|| count_rows_with_netvantage(&scratch, &db));
    assert!(results > 100, "{summary}");
    assert_eq!(
        rows, results,
        "every result stored once the disk had room: {summary}"
    );
    assert!(
        summary.contains(&format!("sqlite: {results} stored")),
        "{summary}"
    );
}

/// Counts stored checks with `report --format json` when the sqlite3 shell is not installed.
fn count_rows_with_netvantage(scratch: &Scratch, db: &Path) -> u64 {
    let run = nv()
        .args([
            "report",
            "--sqlite",
            db.to_str().unwrap(),
            "--since",
            "1h",
            "--format",
            "json",
        ])
        .current_dir(scratch.path())
        .run();
    run.json_lines()
        .iter()
        .flat_map(|t| t["vantages"].as_array().cloned().unwrap_or_default())
        .map(|v| v["checks"].as_u64().unwrap_or(0))
        .sum()
}

//! The stores as the binary uses them (issue 15, items 9, 11 and 12): `report` reads what it
//! can't write and refuses what isn't a store; the agent's SQLite file is owner-only and a path
//! in a missing directory is bad config; PostgreSQL errors that can't heal are fatal at start.

use netvantage_testkit::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);
/// How long an agent given `--run-for` may take to flush its sinks and exit.
const AGENT_EXIT: Duration = Duration::from_secs(60);

/// `netvantage ARGS` in `dir`, to completion.
fn nv_in(dir: &Path, args: &[&str]) -> Run {
    nv().args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .timeout(LIMIT)
        .run()
}

/// An agent run that stores checks of one listening port in `dir/netvantage.db` (the default
/// sink). Returns the listener (keep it to keep the port up) and its port.
fn agent_store(dir: &Path) -> (std::net::TcpListener, u16) {
    let listener = listen("127.0.0.1:0");
    let port = listener.local_addr().unwrap().port();
    let config = dir.join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "vantage: lab\ninterval: 200ms\ntimeout: 100ms\ntcp:\n  - name: up\n    port: {port}\n    hosts: [127.0.0.1]\n"
        ),
    )
    .unwrap();
    nv().args([
        "agent",
        "--config",
        config.to_str().unwrap(),
        "--run-for",
        "1s",
    ])
    .current_dir(dir)
    .timeout(AGENT_EXIT)
    .run()
    .assert_success();
    (listener, port)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn the_agent_creates_its_sqlite_store_owner_only() {
    let dir = Scratch::new();
    let _listening = agent_store(dir.path());
    assert_eq!(mode(&dir.join("netvantage.db")), 0o600);
}

#[test]
fn report_reads_a_0644_store_of_another_user_in_a_directory_it_cannot_write() {
    let dir = Scratch::new();
    let (_listening, port) = agent_store(dir.path());
    let db = dir.join("netvantage.db");
    set_mode(&db, 0o644);
    std::os::unix::fs::chown(&db, Some(1234), Some(1234)).unwrap();
    set_mode(dir.path(), 0o755);
    let before = std::fs::read(&db).unwrap();
    let run = nv()
        .args(["report", "--sqlite", db.to_str().unwrap(), "--since", "1h"])
        .wrap([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ])
        .timeout(LIMIT)
        .run();
    run.assert_code(0);
    assert!(
        run.stdout
            .contains(&format!("127.0.0.1:{port} reporting ok")),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "report changed the store"
    );
}

#[test]
fn report_refuses_a_foreign_sqlite_file_and_leaves_it_alone() {
    let dir = Scratch::new();
    let path = dir.join("notes.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
        .unwrap();
    drop(conn);
    let before = std::fs::read(&path).unwrap();
    let run = nv_in(dir.path(), &["report", "--sqlite", path.to_str().unwrap()]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("not a netvantage store"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(!dir.join("notes.db-wal").exists(), "switched to WAL");
}

#[test]
fn report_without_a_store_says_how_to_make_one_and_exits_3() {
    let dir = Scratch::new();
    let run = nv_in(dir.path(), &["report"]);
    run.assert_code(3);
    assert!(
        run.stderr
            .contains("netvantage.db: no such file (run `netvantage agent` first"),
        "{}",
        run.stderr
    );
    assert!(!dir.join("netvantage.db").exists());
}

#[test]
fn an_agent_sqlite_path_in_a_missing_directory_is_bad_config_exit_3() {
    let dir = Scratch::new();
    let config = dir.write(
        "agent.yaml",
        "vantage: lab\ntcp:\n  - port: 22\n    hosts: [127.0.0.1]\nsinks:\n  sqlite: {path: missing/nv.db}\n",
    );
    let run = nv()
        .args([
            "agent",
            "--config",
            config.to_str().unwrap(),
            "--run-for",
            "1s",
        ])
        .current_dir(dir.path())
        .timeout(AGENT_EXIT)
        .run();
    run.assert_code(3);
    assert!(run.stderr.contains("missing"), "{}", run.stderr);
    assert!(!dir.join("missing").exists());
}

#[test]
fn ingest_stops_at_once_with_the_server_s_words_when_the_database_is_missing() {
    let dir = Scratch::new();
    let url = format!(
        "host=127.0.0.1 user=postgres dbname={}",
        unique_name("nv_missing")
    );
    let broker = format!("127.0.0.1:{}", free_port());
    for args in [
        vec!["ingest", "--kafka", &broker, "--postgres", &url],
        vec![
            "ingest",
            "--kafka",
            &broker,
            "--postgres",
            &url,
            "--migrate-only",
        ],
    ] {
        let run = nv_in(dir.path(), &args);
        run.assert_code(3);
        assert!(
            run.stderr.contains("3D000") && run.stderr.contains("does not exist"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
    }
}

#[test]
fn report_on_a_database_without_netvantage_s_schema_exits_3_and_creates_nothing() {
    let db = Database::new("nvreport");
    let dir = Scratch::new();
    let run = nv_in(dir.path(), &["report", "--postgres", &db.url()]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("not a netvantage store"),
        "{}",
        run.stderr
    );
    assert_eq!(
        db.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
}

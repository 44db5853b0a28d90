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

/// Issue 15, item 8: a password on the command line is refused before anything connects, and
/// says where a password may come from; a named password file must be there.
#[test]
fn ingest_refuses_passwords_on_the_command_line_and_says_where_they_belong() {
    let dir = Scratch::new();
    let broker = format!("127.0.0.1:{}", free_port());
    let with_password = "host=127.0.0.1 user=postgres password=hunter2 dbname=postgres";
    let url_password = "postgres://postgres:hunter2@127.0.0.1/postgres";
    let plain = "host=127.0.0.1 user=postgres dbname=postgres";
    let missing_file = dir.path().join("no-such-password-file");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["ingest", "--kafka", &broker, "--postgres", with_password],
            "PGPASSWORD",
        ),
        (
            vec![
                "ingest",
                "--kafka",
                &broker,
                "--postgres",
                url_password,
                "--migrate-only",
            ],
            "--postgres-password-file",
        ),
        (
            vec![
                "ingest",
                "--kafka",
                &broker,
                "--postgres",
                plain,
                "--kafka-property",
                "sasl.password=hunter2",
            ],
            "`sasl.password` holds a secret",
        ),
        (
            vec![
                "ingest",
                "--kafka",
                &broker,
                "--postgres",
                plain,
                "--postgres-password-file",
                missing_file.to_str().unwrap(),
            ],
            "no-such-password-file",
        ),
    ];
    for (args, expected) in cases {
        let run = nv_in(dir.path(), &args);
        run.assert_code(3);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("hunter2"), "{args:?}: {}", run.stderr);
    }
    // PGPASSFILE naming a file that isn't there is the user's mistake too, said at start.
    let run = nv()
        .args([
            "ingest",
            "--kafka",
            &broker,
            "--postgres",
            plain,
            "--migrate-only",
        ])
        .env("PGPASSFILE", missing_file.to_str().unwrap())
        .env_remove("PGPASSWORD")
        .current_dir(dir.path())
        .timeout(LIMIT)
        .run();
    run.assert_code(3);
    assert!(run.stderr.contains("password file"), "{}", run.stderr);
}

/// Issue 15, item 10: whoever can write to the topic (or the store) chooses target and vantage
/// labels; `report` must not let one forge a line or drive the terminal.
#[test]
fn report_escapes_control_characters_in_stored_labels() {
    use netvantage_core::{CheckResult, Reason, ResultRecord};
    let dir = Scratch::new();
    let path = dir.path().join("netvantage.db");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let forged = "evil:1\nweb:443 reporting ok\x1b[2J\u{9b}31m";
    let records: Vec<ResultRecord> = (0..6)
        .map(|round| ResultRecord {
            id: uuid::Uuid::now_v7(),
            agent: "a1".into(),
            vantage: "lab\x1b]0;owned\x07".into(),
            check: CheckResult::tcp(
                forged.into(),
                None,
                now - 60_000 + round * 1_000,
                Duration::from_millis(1),
                Some((Reason::Refused, "refused\r".into())),
            ),
        })
        .collect();
    netvantage_store::SqliteStore::open_writer(&path)
        .unwrap()
        .insert(&records)
        .unwrap();
    let run = nv_in(dir.path(), &["report"]);
    run.assert_code(2);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{:?}", run.stdout);
    assert!(
        lines[0].starts_with("evil:1\\nweb:443 reporting ok\\x1b[2J\\u{9b}31m is down"),
        "{:?}",
        lines[0]
    );
    assert!(lines[0].contains("lab\\x1b]0;owned\\x07"), "{:?}", lines[0]);
    assert!(
        !run.stdout.chars().any(|c| c.is_control() && c != '\n'),
        "{:?}",
        run.stdout
    );
}

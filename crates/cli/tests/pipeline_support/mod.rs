//! Fixtures for the pipeline tests: a database of the test's own on the machine's PostgreSQL,
//! a real Kafka-protocol broker (tansu on its PostgreSQL storage engine, in its own database)
//! on a free loopback port, and the real `netvantage` binary as agent and ingest. Everything
//! is dropped (processes killed, databases dropped) when the fixture goes out of scope.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn netvantage() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netvantage"))
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Runs SQL with `psql` as the `postgres` user on 127.0.0.1 and returns its unaligned output.
pub fn psql(database: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-tAq",
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| {
            format!("cannot run psql ({e}): apt-get install postgresql-client, and run PostgreSQL on 127.0.0.1:5432")
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

fn psql_file(database: &str, file: &Path) {
    if let Err(e) = psql(database, &format!("\\i '{}'", file.display())) {
        panic!("applying {}: {e}", file.display());
    }
}

/// A database of this test's own, dropped on drop.
pub struct Database {
    pub name: String,
}

impl Database {
    pub fn new(prefix: &str) -> Database {
        let name = unique(prefix);
        psql("postgres", &format!("CREATE DATABASE {name}")).unwrap_or_else(|e| {
            panic!("cannot create a test database on 127.0.0.1:5432 ({e}); the test script installs and starts PostgreSQL")
        });
        Database { name }
    }

    pub fn url(&self) -> String {
        format!("host=127.0.0.1 user=postgres dbname={}", self.name)
    }

    pub fn query(&self, sql: &str) -> String {
        psql(&self.name, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Rows in `results`, or 0 before ingest has created the table.
    pub fn count(&self) -> usize {
        psql(&self.name, "SELECT count(*) FROM results")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub fn ids(&self) -> Vec<String> {
        self.query("SELECT id FROM results")
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Makes the database refuse every connection and ends the open ones: PostgreSQL is
    /// unavailable to ingest, while the rest of the server (and the broker's storage) runs on.
    pub fn block_connections(&self) {
        psql(
            "postgres",
            &format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", self.name),
        )
        .unwrap();
        psql(
            "postgres",
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                self.name
            ),
        )
        .unwrap();
    }

    pub fn allow_connections(&self) {
        psql(
            "postgres",
            &format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", self.name),
        )
        .unwrap();
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The tansu binary: `$TANSU`, `~/.cargo/bin/tansu` or `tansu` on the PATH.
pub fn tansu() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cargo_bin = home.join(".cargo/bin/tansu");
    if cargo_bin.exists() {
        return cargo_bin;
    }
    let on_path = Command::new("sh")
        .args(["-c", "command -v tansu"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    on_path.unwrap_or_else(|| {
        panic!(
            "the tansu Kafka-API broker is required: cargo install --locked tansu --version 0.6.0 --features dynostore,postgres (scripts/test.sh does this when it is missing)"
        )
    })
}

/// A tansu broker on 127.0.0.1, storing in a PostgreSQL database of its own. It can be stopped
/// and started again on the same port and storage, as a broker restart.
pub struct Broker {
    pub port: u16,
    storage: Database,
    process: Option<Child>,
    log: PathBuf,
}

impl Broker {
    pub fn start(dir: &Path) -> Broker {
        let storage = Database::new("nv_tansu");
        let schema = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/tansu/tansu-0.6.0-postgres-schema.sql");
        psql_file(&storage.name, &schema);
        let mut broker = Broker {
            port: free_port(),
            storage,
            process: None,
            log: dir.join("tansu.log"),
        };
        broker.resume();
        broker
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again) and waits until it accepts connections.
    pub fn resume(&mut self) {
        assert!(self.process.is_none(), "already running");
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &listener,
                "--advertised-listener-url",
                &listener,
            ])
            .arg("--storage-engine")
            .arg(format!(
                "postgres://postgres:postgres@localhost/{}?sslmode=disable",
                self.storage.name
            ))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start tansu");
        self.process = Some(child);
        let addr: SocketAddr = self.address().parse().unwrap();
        wait_for(Duration::from_secs(30), "tansu to listen", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
    }

    /// Kills the broker (as a crash: no clean shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `condition` every 100 ms until it holds or `limit` passes (then panics with `what`).
pub fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// A `netvantage` process with stdout and stderr in files, killed on drop.
pub struct Running {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Running {
    pub fn spawn(dir: &Path, name: &str, args: &[&str]) -> Running {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let child = Command::new(netvantage())
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start netvantage");
        Running {
            child,
            stdout,
            stderr,
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// SIGTERM, then waits (at most `limit`) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> i32 {
        self.signal(libc::SIGTERM);
        self.wait(limit)
    }

    pub fn wait(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "netvantage did not exit within {limit:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The ids of the records the agent printed (its `stdout` sink).
    pub fn record_ids(&self) -> Vec<String> {
        self.stdout_text()
            .lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("agent stdout is not NDJSON ({e}): {line}"));
                v["id"].as_str().expect("record id").to_string()
            })
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `netvantage agent --config CONFIG [--run-for RUN_FOR]` in `dir`.
pub fn spawn_agent(dir: &Path, config: &Path, run_for: Option<&str>) -> Running {
    let mut args = vec!["agent", "--config", config.to_str().unwrap()];
    if let Some(run_for) = run_for {
        args.extend(["--run-for", run_for]);
    }
    Running::spawn(dir, "agent", &args)
}

/// How long an agent given `--run-for` may take to flush its sinks and exit.
pub const AGENT_EXIT: Duration = Duration::from_secs(60);

/// Runs an agent for `run_for` and asserts it exited 0.
pub fn run_agent(dir: &Path, config: &Path, run_for: &str) -> Running {
    let mut agent = spawn_agent(dir, config, Some(run_for));
    assert_eq!(agent.wait(AGENT_EXIT), 0, "{}", agent.stderr_text());
    agent
}

/// Writes `yaml` as `DIR/agent.yaml` and returns its path.
pub fn write_agent_config(dir: &Path, yaml: &str) -> PathBuf {
    let config = dir.join("agent.yaml");
    std::fs::write(&config, yaml).unwrap();
    config
}

/// An agent config: `targets` closed loopback ports (each check is a quick `refused`), every
/// `interval`, to Kafka (and stdout, so the test knows every record produced).
pub fn agent_config(
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
    let path = dir.join(format!("{}.yaml", unique("agent")));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A broker, a results database and an agent config for `targets` closed ports checked every
/// `interval`, in a temporary directory of their own. Tests destructure it; the directory is
/// the first binding, so it is dropped last.
pub struct Pipeline {
    pub dir: tempfile::TempDir,
    pub broker: Broker,
    pub db: Database,
    pub config: PathBuf,
}

impl Pipeline {
    pub fn start(targets: usize, interval: &str, memory_records: usize) -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(dir.path());
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
pub fn ingest_args<'a>(broker: &'a str, db_url: &'a str, topic: &'a str) -> Vec<&'a str> {
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
pub fn rows_written(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("ingest: "))
        .filter_map(|l| l.split(" rows written").next()?.parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no `ingest: N rows written` line in:\n{stderr}"))
}

pub fn assert_same_ids(produced: &[String], stored: &[String]) {
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

/// GET /metrics from a local address.
pub fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body
}

pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
}

//! A real Kafka-protocol broker: tansu 0.6.0 on its PostgreSQL storage engine, in a database of
//! its own, on a free loopback port. See `/tests/tansu/` for the schema it needs and why tansu.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::command::{Running, TestCommand};
use crate::net::free_port;
use crate::postgres::Database;
use crate::wait::wait_until;

/// tansu's own schema (its `etc/initdb.d/010-schema.sql`), applied to the storage database.
const SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/tansu/tansu-0.6.0-postgres-schema.sql"
);

/// How long tansu may take to listen after it starts.
const LISTENING_WITHIN: Duration = Duration::from_secs(30);

/// The tansu binary: `$TANSU`, `~/.cargo/bin/tansu` or `tansu` on the PATH. Fails (never
/// skips) with the install command when there is none.
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
    let on_path = TestCommand::new("sh")
        .args(["-c", "command -v tansu"])
        .run();
    if on_path.code == 0 {
        return PathBuf::from(on_path.stdout.trim());
    }
    panic!(
        "the tansu Kafka-API broker is required: cargo install --locked tansu --version 0.6.0 --features dynostore,postgres (scripts/test.sh does this when it is missing)"
    )
}

/// A tansu broker on 127.0.0.1, storing in a PostgreSQL database of its own. It can be stopped
/// and started again on the same port and storage, as a broker restart. Killed on drop.
pub struct Broker {
    pub port: u16,
    storage: Database,
    process: Option<Running>,
    /// What earlier runs (before a [`stop`](Self::stop)) printed.
    earlier_log: String,
}

impl Broker {
    pub fn start() -> Broker {
        let storage = Database::new("nv_tansu");
        storage.apply_file(Path::new(SCHEMA));
        let mut broker = Broker {
            port: free_port(),
            storage,
            process: None,
            earlier_log: String::new(),
        };
        broker.resume();
        broker
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again) and waits until it accepts connections.
    pub fn resume(&mut self) {
        assert!(self.process.is_none(), "already running");
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let process = TestCommand::new(tansu())
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
            .spawn();
        self.process = Some(process);
        let addr: SocketAddr = self.address().parse().expect("a socket address");
        let listening = wait_until(LISTENING_WITHIN, || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        assert!(
            listening,
            "tansu did not listen on {addr} within {LISTENING_WITHIN:?}; its log:\n{}",
            self.log()
        );
    }

    /// Kills the broker (as a crash: no clean shutdown).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill9();
            self.earlier_log.push_str(&process.stdout_text());
            self.earlier_log.push_str(&process.stderr_text());
        }
    }

    /// Everything the broker printed, over all its runs.
    pub fn log(&self) -> String {
        let mut log = self.earlier_log.clone();
        if let Some(process) = &self.process {
            log.push_str(&process.stdout_text());
            log.push_str(&process.stderr_text());
        }
        log
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

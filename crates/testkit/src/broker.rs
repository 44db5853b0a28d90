//! A real Kafka-protocol broker: tansu 0.6.0 on its PostgreSQL storage engine, in a database of
//! its own, on a free loopback port (or inside a test namespace, [`Broker::start_in`]). See `/tests/tansu/` for the schema it needs and why tansu.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::command::{Running, TestCommand};
use crate::net::free_port;
use crate::netns::{Netns, run_in_netns};
use crate::postgres::Database;
use crate::tools::require_tool;
use crate::wait::wait_until;

/// The machine's PostgreSQL socket: a unix socket, which a network namespace still reaches.
const POSTGRES_SOCKET: &str = "/var/run/postgresql/.s.PGSQL.5432";
/// Inside a test namespace: where the bridge to PostgreSQL listens, and the broker's port.
const NETNS_POSTGRES_PORT: u16 = 15432;
const NETNS_BROKER_PORT: u16 = 19092;

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
    /// The address it listens on (127.0.0.1, or an address inside [`Broker::start_in`]'s namespace).
    ip: String,
    /// `ip netns exec NS`, for a broker inside a namespace.
    netns: Option<String>,
    /// Inside a namespace: socat from 127.0.0.1:15432 there to PostgreSQL's unix socket.
    bridge: Option<Running>,
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
            ip: "127.0.0.1".into(),
            netns: None,
            bridge: None,
            storage,
            process: None,
            earlier_log: String::new(),
        };
        broker.resume();
        broker
    }

    /// A broker inside `ns`, listening on `ip` (an address of `ns`, e.g. one end of a veth
    /// pair, so a second namespace reaches it). The host's loopback, where PostgreSQL listens,
    /// is not reachable from a namespace, so storage goes through PostgreSQL's unix socket:
    /// socat in `ns` bridges 127.0.0.1:15432 there to it. (tansu's `memory://` engine is no
    /// substitute: it returns nothing for a fetch from an offset other than 0, see
    /// `tests/tansu`; and a unix-socket URL fails in tansu's TLS set-up even with
    /// `sslmode=disable`.) Stopped with the namespace at the latest.
    pub fn start_in(ns: &Netns, ip: &str) -> Broker {
        require_tool("socat", "socat");
        let storage = Database::new("nv_tansu");
        storage.apply_file(Path::new(SCHEMA));
        let bridge = TestCommand::new("socat")
            .arg(format!(
                "TCP-LISTEN:{NETNS_POSTGRES_PORT},bind=127.0.0.1,fork,reuseaddr"
            ))
            .arg(format!("UNIX-CONNECT:{POSTGRES_SOCKET}"))
            .in_netns(ns)
            .spawn();
        let mut broker = Broker {
            port: NETNS_BROKER_PORT,
            ip: ip.into(),
            netns: Some(ns.name.clone()),
            bridge: Some(bridge),
            storage,
            process: None,
            earlier_log: String::new(),
        };
        broker.resume();
        broker
    }

    /// `IP:PORT`, for `bootstrap.servers`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// The storage URL as tansu sees it (through the bridge inside a namespace).
    fn storage_url(&self) -> String {
        let host = match self.netns {
            Some(_) => format!("localhost:{NETNS_POSTGRES_PORT}"),
            None => "localhost".into(),
        };
        format!(
            "postgres://postgres:postgres@{host}/{}?sslmode=disable",
            self.storage.name
        )
    }

    /// Starts (again) and waits until it accepts connections.
    pub fn resume(&mut self) {
        assert!(self.process.is_none(), "already running");
        let listener = format!("tcp://{}", self.address());
        let mut command = TestCommand::new(tansu());
        if let Some(ns) = &self.netns {
            command = command.wrap(["ip", "netns", "exec", ns.as_str()]);
        }
        let process = command
            .args([
                "broker",
                "--listener-url",
                &listener,
                "--advertised-listener-url",
                &listener,
            ])
            .arg("--storage-engine")
            .arg(self.storage_url())
            .env("RUST_LOG", "warn")
            .spawn();
        self.process = Some(process);
        let addr: SocketAddr = self.address().parse().expect("a socket address");
        let listening = wait_until(LISTENING_WITHIN, || match &self.netns {
            None => TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
            Some(ns) => run_in_netns(ns, move || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            }),
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
        if let Some(mut bridge) = self.bridge.take() {
            bridge.kill9();
        }
    }
}

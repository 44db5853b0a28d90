//! The HTTP request path end to end: the real server (the one behind `/metrics` of every
//! command and the status page), listening on loopback, with the status app over a demo fleet
//! mounted under a base path. Each input is written raw to a fresh connection, which is then
//! half-closed (as `nc -N` does; the server must still answer), and the answer read to the end.
//!
//! It fails when the server's code panics (a handler task dies: the hook below notices), when
//! an answer is a 500 (a bug, never the client's fault), or when the plain request that follows
//! every input is not answered 200 (a dropped answer, a connection or task leak, a wedged
//! accept loop).

use netvantage_core::clock::ManualClock;
use netvantage_server::status::{self, MemorySource, UnixMs};
use netvantage_server::{Limits, ServerBuilder};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// 2025-03-01T12:00:00Z: the demo fleet's "now", so pages are the same on every run.
const AT: UnixMs = UnixMs(1_740_830_400_000);

/// Longest wait for an answer. The server's own header timeout is shorter (below), so only a
/// server that stopped working reaches it.
const ANSWER_LIMIT: Duration = Duration::from_secs(20);

static PANICKED: AtomicBool = AtomicBool::new(false);

fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        // `RUST_LOG=netvantage_server=debug fuzz/run.sh 60 http_request` shows why the server
        // closed each connection (with the client's address).
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_writer(std::io::stderr)
                .try_init();
        }
        // A panic on a server task is caught by tokio and would only close the connection:
        // note it so the input that caused it fails.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            previous(info);
        }));
        // Both below ANSWER_LIMIT, so only a server that stopped working reaches that. (An
        // unfinished request head rarely waits for the first: the half-close ends it.)
        let limits = Limits {
            header_read_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            ..Limits::default()
        };
        let builder = ServerBuilder::new()
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
            .limits(limits)
            .base_path("/status");
        let builder = status::mount(
            builder,
            std::sync::Arc::new(MemorySource::demo(AT, 40)),
            std::sync::Arc::new(ManualClock::new(AT.0)),
        );
        let running = crate::runtime()
            .block_on(builder.start(tokio_util::sync::CancellationToken::new()))
            .expect("the fuzzed server starts on loopback");
        let addr = running.local_addr();
        // Serve for the life of the process.
        std::mem::forget(running);
        addr
    })
}

/// Sends `request` on a fresh connection, half-closes it, returns everything answered.
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    try_exchange(addr, request, ANSWER_LIMIT)
        .unwrap_or_else(|e| panic!("no answer within {ANSWER_LIMIT:?}: {e}"))
}

fn try_exchange(addr: SocketAddr, request: &[u8], limit: Duration) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(limit))?;
    // The server may close before reading everything (431, a bad request line): fine.
    let _ = stream.write_all(request);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Err(e) if e.kind() != std::io::ErrorKind::ConnectionReset => Err(e),
        _ => Ok(answer),
    }
}

/// The status codes of every response in `answer` (several when requests were pipelined).
fn statuses(answer: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(answer);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .collect()
}

pub fn http_request(data: &[u8]) {
    let addr = server();
    let answer = exchange(addr, data);
    assert!(!PANICKED.load(Ordering::SeqCst), "the server panicked");
    // A status in a body could look like one here; pages never contain "HTTP/1.1 500".
    assert!(
        !statuses(&answer).contains(&500),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // Still serving: a plain request is answered 200, the first time. (This once allowed five
    // tries for "a loaded machine"; they hid a real defect — the server dropped the answer of
    // a client that half-closed, one time in twenty here — until all five lost the race.)
    let answer = exchange(addr, b"GET /status/healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        statuses(&answer).first() == Some(&200),
        "/healthz answered {:?}; {}",
        String::from_utf8_lossy(&answer),
        connections(addr)
    );
}

/// The server's connections as the kernel and the server see them, for a failure message:
/// sockets on the server's port by TCP state (is something left open?), and the server's own
/// `connections_open` gauge.
fn connections(addr: SocketAddr) -> String {
    let mut states = std::collections::BTreeMap::<String, u32>::new();
    let table = std::fs::read("/proc/net/tcp").unwrap_or_default();
    netvantage_conns::procnet::parse_table(&table, |socket| {
        if socket.local.port() == addr.port() {
            *states.entry(format!("{:?}", socket.state)).or_default() += 1;
        }
    });
    let metrics = try_exchange(
        addr,
        b"GET /status/metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(2),
    )
    .unwrap_or_default();
    let open = String::from_utf8_lossy(&metrics)
        .lines()
        .find(|line| line.starts_with("netvantage_server_connections_open "))
        .map(str::to_owned)
        .unwrap_or_else(|| "no connections_open from /metrics".to_string());
    format!("server-side sockets by state: {states:?}; {open}")
}

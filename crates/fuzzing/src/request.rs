//! The HTTP request path end to end: the real server (the one behind `/metrics` of every
//! command and the status page), listening on loopback, with the status app over a demo fleet
//! mounted under a base path. Each input is written raw to a fresh connection, which is then
//! half-closed, and the answer read to the end.
//!
//! It fails when the server's code panics (a handler task dies: the hook below notices), when
//! an answer is a 500 (a bug, never the client's fault), or when the server stops answering a
//! plain request afterwards (a connection or task leak, a wedged accept loop).

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
        // A panic on a server task is caught by tokio and would only close the connection:
        // note it so the input that caused it fails.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            previous(info);
        }));
        // Timeouts well above what one input needs even on a loaded machine: with 2 s, a
        // stalled worker thread closed waiting connections and read as a dead server.
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
    let mut stream = TcpStream::connect(addr).expect("connect to the fuzzed server");
    stream
        .set_read_timeout(Some(ANSWER_LIMIT))
        .expect("timeout");
    // The server may close before reading everything (431, a bad request line): fine.
    let _ = stream.write_all(request);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("no answer within {ANSWER_LIMIT:?}: {e}"),
    }
    answer
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
    // Still serving: a plain request is answered 200. A loaded machine may reset one
    // connection; a server that stopped answering fails every try.
    let answers: Vec<Vec<u8>> = (0..5)
        .map(|_| exchange(addr, b"GET /status/healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
        .take_while(|answer| statuses(answer).first() != Some(&200))
        .collect();
    assert!(
        answers.len() < 5,
        "the server stopped answering /healthz: {:?}",
        answers
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
    );
}

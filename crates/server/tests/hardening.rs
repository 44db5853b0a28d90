//! The server's protections on real loopback sockets (issue 15 item 7): header and request
//! timeouts, the connection cap, the open-file limit, graceful shutdown, and `/metrics` that
//! `promtool check metrics` accepts.

mod support;

use futures::future::BoxFuture;
use netvantage_server::{Handler, Limits, Request, Response, ServerBuilder, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Fixture, get, get_with, output_dir, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// `/slow` answers after the given delay.
struct Slow(Duration);

impl Handler for Slow {
    fn handle<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a, Option<Response>> {
        Box::pin(async move {
            (request.path == "/slow").then_some(())?;
            tokio::time::sleep(self.0).await;
            Some(text(hyper::StatusCode::OK, "slow answer\n"))
        })
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn registry() -> Arc<Registry> {
    let mut registry = Registry::default();
    let counter = Counter::<u64>::default();
    counter.inc_by(7);
    registry.register("nv_test_events", "Events", counter);
    Arc::new(registry)
}

async fn start(limits: Limits, shutdown: &CancellationToken) -> netvantage_server::RunningServer {
    ServerBuilder::new()
        .listen(loopback())
        .limits(limits)
        .metrics(registry())
        .app(Arc::new(Slow(Duration::from_millis(600))))
        .start(shutdown.clone())
        .await
        .expect("start")
}

/// Reads until EOF, an error or `limit`; returns what arrived and whether the peer closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let shutdown = CancellationToken::new();
    let limits = Limits {
        header_read_timeout: Duration::from_millis(400),
        ..Limits::default()
    };
    let server = start(limits, &shutdown).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/pl")
        .await
        .unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let after = started.elapsed();
    assert!(closed, "a half-sent request was held open for 5 s");
    assert!(
        after >= Duration::from_millis(300) && after < Duration::from_secs(2),
        "closed after {after:?}, the header timeout is 400 ms"
    );
    // An idle connection that sends nothing at all is closed the same way.
    let mut idle = TcpStream::connect(server.local_addr()).await.unwrap();
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(closed, "an idle connection was held open for 5 s");
    // The server still answers complete requests.
    assert_eq!(get(server.local_addr(), "/healthz").await.status, 200);
    let metrics = get(server.local_addr(), "/metrics").await.body;
    assert!(
        metrics.contains("netvantage_server_header_timeouts_total 2"),
        "{metrics}"
    );
    shutdown.cancel();
    server.stopped().await;
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let shutdown = CancellationToken::new();
    let limits = Limits {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let server = start(limits, &shutdown).await;
    let addr = server.local_addr();
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    // The third connection completes its handshake in the kernel's queue, but the server does
    // not take it while two are open.
    let waiting = tokio::spawn(async move {
        let sent = Instant::now();
        let answer = get(addr, "/healthz").await;
        (answer, sent.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served past a cap of 2"
    );
    drop(first);
    let (answer, waited) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting connection is served once a slot frees")
        .unwrap();
    assert_eq!(answer.status, 200);
    assert!(waited >= Duration::from_millis(500), "waited {waited:?}");
    shutdown.cancel();
    server.stopped().await;
}

/// A client that sends its request and then shuts its write side (the fuzz harness does, as do
/// `nc -N` and many scripts) is answered even when the server reads the request and the FIN
/// together — here certainly, as the connection waits behind a cap of one while both arrive.
/// This passed even before the server set `half_close`; the case that lost answers is the FIN
/// noticed while the handler runs (the next test but one).
#[tokio::test]
async fn a_request_followed_by_a_half_close_is_answered_even_when_read_late() {
    let shutdown = CancellationToken::new();
    let limits = Limits {
        max_connections: 1,
        header_read_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let server = start(limits, &shutdown).await;
    let addr = server.local_addr();
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    // The one slot, held by an idle keep-alive connection once it has been answered.
    let mut holder = TcpStream::connect(addr).await.unwrap();
    holder.write_all(healthz).await.unwrap();
    let mut answered = Vec::new();
    let mut buf = [0u8; 1024];
    while !answered.ends_with(b"\r\n\r\nok\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), holder.read(&mut buf))
            .await
            .expect("the holder is answered")
            .unwrap();
        assert!(n > 0, "the holder was closed: {answered:?}");
        answered.extend_from_slice(&buf[..n]);
    }
    // Request and FIN wait in the kernel's queue until the slot frees.
    let mut late = TcpStream::connect(addr).await.unwrap();
    late.write_all(healthz).await.unwrap();
    late.shutdown().await.unwrap();
    drop(holder);
    let (answer, closed) = read_until_closed(&mut late, Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        closed,
        "the server never closed after answering: {answer:?}"
    );
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n"),
        "answered {answer:?}"
    );
    assert!(answer.ends_with("\r\n\r\nok\n"), "answered {answer:?}");
    shutdown.cancel();
    server.stopped().await;
}

/// The fuzzer's empty `/healthz` answers (fuzz/README.md), made certain: the client's FIN
/// arrives while the handler is still working. hyper's default (`half_close(false)`) takes an
/// EOF on a busy connection for a client that left and drops the answer; for a fast handler
/// that is a race the loaded, instrumented fuzz build lost about one time in twenty.
#[tokio::test]
async fn a_client_that_half_closes_while_its_request_is_handled_gets_the_answer() {
    let shutdown = CancellationToken::new();
    let server = start(Limits::default(), &shutdown).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The server has read the request and is in the 600 ms handler when the FIN comes.
    tokio::time::sleep(Duration::from_millis(150)).await;
    stream.shutdown().await.unwrap();
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("slow answer\n"),
        "answered {answer:?}"
    );
    // Answered, the connection closes at once: a half-closed client holds no slot until the
    // header timeout (10 s).
    assert!(closed, "the server never closed after answering");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    shutdown.cancel();
    server.stopped().await;
}

#[tokio::test]
async fn a_handler_past_the_request_timeout_answers_503() {
    let shutdown = CancellationToken::new();
    let limits = Limits {
        request_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let server = start(limits, &shutdown).await;
    let started = Instant::now();
    let answer = get(server.local_addr(), "/slow").await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(started.elapsed() < Duration::from_millis(550));
    let metrics = get(server.local_addr(), "/metrics").await.body;
    assert!(
        metrics.contains("netvantage_server_request_timeouts_total 1"),
        "{metrics}"
    );
    shutdown.cancel();
    server.stopped().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_unknown_paths() {
    let shutdown = CancellationToken::new();
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = ready.clone();
    let server = ServerBuilder::new()
        .listen(loopback())
        .metrics(registry())
        .readiness(Arc::new(move || {
            let ready = flag.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                if ready {
                    Ok(())
                } else {
                    Err("store unreachable: connection refused".to_string())
                }
            }
        }))
        .start(shutdown.clone())
        .await
        .unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback());
    assert_eq!(get(addr, "/healthz").await.status, 200);
    assert_eq!(get(addr, "/readyz").await.status, 200);
    ready.store(false, std::sync::atomic::Ordering::SeqCst);
    let not_ready = get(addr, "/readyz").await;
    assert_eq!(not_ready.status, 503);
    assert!(
        not_ready
            .body
            .contains("store unreachable: connection refused"),
        "{not_ready:?}"
    );
    assert_eq!(
        get(addr, "/healthz").await.status,
        200,
        "healthz stays 200 while not ready"
    );
    assert_eq!(get(addr, "/nothing-here").await.status, 404);
    let post = request(addr, "POST", "/metrics", &["Content-Length: 0"]).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    let text = get(addr, "/metrics").await;
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        text.body.contains("nv_test_events_total 7"),
        "{}",
        text.body
    );
    assert!(!text.body.contains("# EOF"));
    let open = get_with(addr, "/metrics", &["Accept: application/openmetrics-text"]).await;
    assert!(
        open.header("content-type")
            .is_some_and(|v| v.starts_with("application/openmetrics-text")),
        "{open:?}"
    );
    assert!(open.body.ends_with("# EOF\n"));
    shutdown.cancel();
    server.stopped().await;
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_with_431() {
    let shutdown = CancellationToken::new();
    let server = start(Limits::default(), &shutdown).await;
    let huge = format!("X-Padding: {}", "a".repeat(40 * 1024));
    let answer = get_with(server.local_addr(), "/healthz", &[&huge]).await;
    assert_eq!(answer.status, 431);
    assert_eq!(get(server.local_addr(), "/healthz").await.status, 200);
    shutdown.cancel();
    server.stopped().await;
}

#[tokio::test]
async fn everything_is_served_under_the_base_path() {
    let shutdown = CancellationToken::new();
    let server = ServerBuilder::new()
        .listen(loopback())
        .base_path("/status/")
        .metrics(registry())
        .start(shutdown.clone())
        .await
        .unwrap();
    let addr = server.local_addr();
    assert_eq!(get(addr, "/status/healthz").await.status, 200);
    assert_eq!(get(addr, "/status/metrics").await.status, 200);
    assert_eq!(get(addr, "/healthz").await.status, 404);
    assert_eq!(get(addr, "/metrics").await.status, 404);
    assert_eq!(get(addr, "/statusx/healthz").await.status, 404);
    shutdown.cancel();
    server.stopped().await;
    let bad = ServerBuilder::new()
        .listen(loopback())
        .base_path("/a/../b")
        .start(CancellationToken::new())
        .await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish_and_then_refuses() {
    let shutdown = CancellationToken::new();
    let server = start(Limits::default(), &shutdown).await;
    let addr = server.local_addr();
    let idle = TcpStream::connect(addr).await.unwrap();
    let in_flight = tokio::spawn(async move { get(addr, "/slow").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    shutdown.cancel();
    let answer = in_flight.await.unwrap();
    assert_eq!(
        answer.status, 200,
        "the in-flight request was cut: {answer:?}"
    );
    let summary = tokio::time::timeout(Duration::from_secs(3), server.stopped())
        .await
        .expect("the server stops once the slow request is answered");
    assert!(summary.connections >= 2);
    drop(idle);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still listening after shutdown"
    );
}

#[tokio::test]
async fn at_the_open_file_limit_the_server_neither_spins_nor_floods_the_log_and_recovers() {
    let dir = output_dir("open-file-limit");
    let fixture = Fixture::start(&[
        "--nofile",
        "48",
        "--max-connections",
        "10000",
        "--header-timeout-ms",
        "60000",
    ]);
    let addr = fixture.addr;
    // 150 idle connections: the kernel completes every handshake (the queue holds 1024), the
    // server takes them until it runs out of descriptors, then `accept` fails with EMFILE.
    let mut idle = Vec::new();
    for _ in 0..150 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // The 8th failure comes about 130 ms into the episode, when the wait has grown to 128 ms;
    // from there the wait is long and lines are rare.
    let at_limit = netvantage_testkit::wait_until(Duration::from_secs(5), || {
        fixture.log().contains("failures=8 ")
    });
    assert!(
        at_limit,
        "the server never reached its open-file limit:\n{}",
        fixture.log()
    );
    let cpu_before = fixture.cpu_time();
    let lines_before = fixture.log().lines().count();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = fixture.cpu_time().saturating_sub(cpu_before);
    let log = fixture.log();
    let lines_in_second = log.lines().count() - lines_before;
    eprintln!("at the open-file limit: {cpu:?} of CPU in one second, {lines_in_second} log lines");
    assert!(
        cpu < Duration::from_millis(150),
        "the server used {cpu:?} of CPU in one second at the open-file limit (spinning)"
    );
    assert!(
        lines_in_second <= 1,
        "{lines_in_second} log lines in one second at the limit:\n{log}"
    );
    let accept_lines = log.lines().filter(|l| l.contains("accept failed")).count();
    assert!(
        (1..=14).contains(&accept_lines),
        "{accept_lines} accept error lines:\n{log}"
    );
    assert!(log.contains("Too many open files"), "{log}");

    // Once the idle connections close, a scrape is answered again.
    drop(idle);
    let mut recovered = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while recovered.is_none() && Instant::now() < deadline {
        let attempt = tokio::time::timeout(Duration::from_secs(3), get(addr, "/metrics")).await;
        if let Ok(answer) = attempt
            && answer.status == 200
        {
            recovered = Some(answer);
        }
    }
    let answer = recovered.expect("no /metrics answer after the idle connections closed");
    assert!(
        answer
            .body
            .contains("nv_fixture_checks_total{kind=\"tcp\"} 3"),
        "{}",
        answer.body
    );
    // A second without failures ends the episode: the next connection says so, once.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(addr, "/healthz").await.status, 200);
    let log = fixture.log();
    assert_eq!(
        log.matches("accepting again").count(),
        1,
        "recovery is said once:\n{log}"
    );
    let accept_lines = log.lines().filter(|l| l.contains("accept failed")).count();
    assert!(
        accept_lines <= 20,
        "{accept_lines} accept error lines from the limit to recovery:\n{log}"
    );
    std::fs::write(dir.join("metrics.txt"), &answer.body).unwrap();
    std::fs::write(dir.join("server.log"), fixture.log()).unwrap();
}

#[tokio::test]
async fn promtool_check_metrics_is_clean() {
    let dir = output_dir("promtool");
    let fixture = Fixture::start(&[]);
    // Connections and a request first, so every series has a value.
    let _ = get(fixture.addr, "/healthz").await;
    let answer = get(fixture.addr, "/metrics").await;
    assert_eq!(answer.status, 200);
    support::assert_promtool_clean(&answer.body, &dir);
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    // `printf 'GET …' | nc -N`, and the fuzz harness, shut down their write side once the
    // request is sent. hyper's default treats that EOF as the end of the connection and may
    // close it unanswered (the fuzzer saw /healthz answered with an empty connection); the
    // server must answer first, as nginx does.
    let shutdown = CancellationToken::new();
    let server = start(Limits::default(), &shutdown).await;
    let mut unanswered = 0;
    for _ in 0..200 {
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        if !answer.starts_with(b"HTTP/1.1 200") {
            unanswered += 1;
        }
    }
    assert_eq!(unanswered, 0, "half-closed requests left unanswered");
    shutdown.cancel();
}

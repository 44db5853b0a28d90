//! Local target for `bench/http`: listens on many loopback ports and answers every path with
//! `200 ok`, except `/sleep/MS`, which answers after sleeping MS milliseconds on a blocking
//! thread, precisely (see `precise_sleep`), so the latency benchmark measures the client, not
//! the server's timer. Prints the bound ports on one line, then serves until
//! killed. Binds 127.0.0.1 only.
//!
//! Usage: bench_server [PORTS]   (default 50)

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::io::Write;
use std::time::Duration;
use tokio::net::TcpListener;

async fn handle(
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if let Some(ms) = req
        .uri()
        .path()
        .strip_prefix("/sleep/")
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        let _ = tokio::task::spawn_blocking(move || precise_sleep(Duration::from_millis(ms))).await;
    }
    Ok(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
}

/// Sleeps to within a few microseconds: nanosleep for all but the last millisecond (it can
/// overshoot by that much on a busy machine), then spins. Only the latency benchmark uses it.
fn precise_sleep(duration: Duration) {
    let until = std::time::Instant::now() + duration;
    if let Some(coarse) = duration.checked_sub(Duration::from_millis(1)) {
        std::thread::sleep(coarse);
    }
    while std::time::Instant::now() < until {
        std::hint::spin_loop();
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        listeners.push(TcpListener::bind("127.0.0.1:0").await?);
    }
    let ports: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port().to_string()))
        .collect::<Result<_, _>>()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", ports.join(","))?;
    out.flush()?;
    drop(out);
    for listener in listeners {
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(handle))
                        .await;
                });
            }
        });
    }
    std::future::pending::<()>().await;
    Ok(())
}

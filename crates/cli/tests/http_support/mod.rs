//! Fixtures for the `netvantage http` end-to-end tests: a real HTTP(S) server on loopback with
//! per-path status, latency and body (changing from one request to the next, so a test can
//! script cycle 1 and cycle 2), which records what it received; and a helper that runs the
//! real binary. Only 127.0.0.0/8 is ever used.

#![allow(dead_code)] // each test file uses a different subset

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::rustls;

/// What the server answers to one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub body: String,
}

pub fn reply(status: u16, delay_ms: u64) -> Reply {
    Reply {
        status,
        delay: Duration::from_millis(delay_ms),
        body: String::new(),
    }
}

pub fn reply_body(status: u16, body: &str) -> Reply {
    Reply {
        status,
        delay: Duration::ZERO,
        body: body.to_string(),
    }
}

/// Never answers (within any test's lifetime).
pub fn hang() -> Reply {
    reply(200, 600_000)
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: String,
    pub at: std::time::Instant,
}

#[derive(Default)]
struct State {
    /// Path → replies; the n-th request to a path gets the n-th reply (the last one repeats).
    routes: HashMap<String, Vec<Reply>>,
    served: Mutex<HashMap<String, usize>>,
    seen: Mutex<Vec<Seen>>,
    connections: AtomicUsize,
}

pub struct TestServer {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl TestServer {
    pub async fn start(routes: &[(&str, Vec<Reply>)]) -> TestServer {
        Self::start_on("127.0.0.1:0".parse().unwrap(), routes, None).await
    }

    pub async fn start_tls(routes: &[(&str, Vec<Reply>)], cert: &TestCert) -> TestServer {
        Self::start_on("127.0.0.1:0".parse().unwrap(), routes, Some(cert)).await
    }

    pub async fn start_on(
        addr: SocketAddr,
        routes: &[(&str, Vec<Reply>)],
        cert: Option<&TestCert>,
    ) -> TestServer {
        assert!(
            addr.ip().is_loopback(),
            "test servers live on loopback only"
        );
        let state = Arc::new(State {
            routes: routes
                .iter()
                .map(|(p, r)| (p.to_string(), r.clone()))
                .collect(),
            ..State::default()
        });
        let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| {
            panic!("bind test server on {addr} (ports below 1024 need root): {e}")
        });
        let addr = listener.local_addr().unwrap();
        let acceptor = cert.map(|c| tokio_rustls::TlsAcceptor::from(c.server_config()));
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let st = Arc::clone(&st);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&st), req));
                    let builder = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            // A client that refuses our certificate just goes away.
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                    }
                });
            }
        });
        TestServer { addr, state }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn seen_on(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let body = req.into_body().collect().await?.to_bytes();
    let at = std::time::Instant::now();
    state.seen.lock().unwrap().push(Seen {
        method,
        path: path.clone(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at,
    });
    let reply = {
        let mut served = state.served.lock().unwrap();
        let n = served.entry(path.clone()).or_default();
        let reply = state
            .routes
            .get(&path)
            .map(|replies| replies[(*n).min(replies.len() - 1)].clone());
        *n += 1;
        reply
    };
    let reply = reply.unwrap_or(Reply {
        status: 404,
        delay: Duration::ZERO,
        body: "no such path".into(),
    });
    tokio::time::sleep(reply.delay).await;
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = http::StatusCode::from_u16(reply.status).unwrap();
    Ok(response)
}

/// A self-signed certificate for the given names, generated per test.
pub struct TestCert {
    pub cert_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl TestCert {
    pub fn new(names: &[&str]) -> TestCert {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let certified = rcgen::generate_simple_self_signed(names).unwrap();
        TestCert {
            cert_pem: certified.cert.pem(),
            cert_der: certified.cert.der().to_vec(),
            key_der: certified.signing_key.serialize_der(),
        }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cert = rustls::pki_types::CertificateDer::from(self.cert_der.clone());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.key_der.clone().into());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        Arc::new(config)
    }
}

/// A file under the test's temporary directory with the given contents.
pub fn write_file(name: &str, contents: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("http-tests");
    std::fs::create_dir_all(&dir).unwrap();
    // Tests run in parallel: make every file name unique.
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let path = dir.join(format!(
        "{}-{}-{name}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, contents).unwrap();
    path
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("NDJSON line"))
            .collect()
    }
}

pub fn command(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_netvantage"));
    cmd.args(args).env_remove("RUST_LOG").kill_on_drop(true);
    cmd
}

/// Runs `netvantage ARGS` to completion (bounded: killed after 30 s).
pub async fn netvantage(args: &[&str]) -> Run {
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(30), command(args).output())
        .await
        .expect("netvantage did not finish within 30 s")
        .expect("run netvantage");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
        elapsed: started.elapsed(),
    }
}

/// `HOST:PORT:127.0.0.1` for `--resolve`.
pub fn pin(host: &str, server: &TestServer) -> String {
    format!("{host}:{}:{}", server.port(), server.addr.ip())
}

/// A loopback address of its own (127.a.b.c), so a test can bind a fixed port such as 443
/// without colliding with other tests.
pub fn private_loopback() -> IpAddr {
    let n = std::process::id() as u64
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64);
    IpAddr::from([
        127,
        100 + (n % 100) as u8,
        ((n >> 8) % 250) as u8 + 1,
        ((n >> 16) % 250) as u8 + 1,
    ])
}

//! A real HTTP(S) server on loopback for the HTTP probe's tests: per-path status, latency and
//! body, changing from one request to the next (so a test can script cycle 1 and cycle 2), and
//! a record of every request it received. Only 127.0.0.0/8 is ever used.
//!
//! The server runs on a tokio runtime of its own, so it serves whether the test is a plain
//! `#[test]` that blocks on the binary or an async one; the runtime stops when the server is
//! dropped.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::rustls;

/// What the server answers to one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub body: String,
}

/// `status` with an empty body, after `delay_ms`.
pub fn reply(status: u16, delay_ms: u64) -> Reply {
    Reply {
        status,
        delay: Duration::from_millis(delay_ms),
        body: String::new(),
    }
}

/// `status` with `body`, at once.
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
    /// When its body had arrived.
    pub at: Instant,
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
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    /// Plain HTTP on a free port of 127.0.0.1.
    pub fn start(routes: &[(&str, Vec<Reply>)]) -> TestServer {
        Self::start_on(loopback_any_port(), routes, None)
    }

    /// HTTPS with `cert` on a free port of 127.0.0.1.
    pub fn start_tls(routes: &[(&str, Vec<Reply>)], cert: &TestCert) -> TestServer {
        Self::start_on(loopback_any_port(), routes, Some(cert))
    }

    /// On a given loopback address (HTTPS when `cert` is given); paths without a route get 404.
    pub fn start_on(
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
        let listener = std::net::TcpListener::bind(addr).unwrap_or_else(|e| {
            panic!("bind test server on {addr} (ports below 1024 need root): {e}")
        });
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("a bound listener's address");
        let acceptor = cert.map(|c| tokio_rustls::TlsAcceptor::from(c.server_config()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the test server");
        let st = Arc::clone(&state);
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("a tokio listener");
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
        TestServer {
            addr,
            state,
            runtime: Some(runtime),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("seen lock").clone()
    }

    pub fn seen_on(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Without waiting: a hung reply sleeps for minutes.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn loopback_any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let body = req.into_body().collect().await?.to_bytes();
    let at = Instant::now();
    state.seen.lock().expect("seen lock").push(Seen {
        method,
        path: path.clone(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at,
    });
    let reply = {
        let mut served = state.served.lock().expect("served lock");
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
    *response.status_mut() =
        http::StatusCode::from_u16(reply.status).expect("a test reply's status is valid");
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
        let certified =
            rcgen::generate_simple_self_signed(names).expect("a self-signed test certificate");
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
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("the test certificate and key match");
        Arc::new(config)
    }
}

/// `HOST:PORT:ADDR` for `--resolve`, pinning `host` to the server.
pub fn pin(host: &str, server: &TestServer) -> String {
    format!("{host}:{}:{}", server.port(), server.addr.ip())
}

/// A loopback address of its own (127.a.b.c), so a test can bind a fixed port such as 443
/// without colliding with other tests.
pub fn private_loopback() -> IpAddr {
    let n = u64::from(std::process::id())
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_nanos() as u64);
    IpAddr::from([
        127,
        100 + (n % 100) as u8,
        ((n >> 8) % 250) as u8 + 1,
        ((n >> 16) % 250) as u8 + 1,
    ])
}

//! The server: a builder, the accept loop and one task per connection.
//!
//! Protections, each a default a caller may change ([`Limits`]):
//! - **accept errors back off** (1 ms doubling to 1 s) and are logged rate-limited
//!   ([`crate::accept`]), so `EMFILE` at the open-file limit neither spins nor floods the log;
//! - **a cap on open connections**: at the cap the loop stops calling `accept`, so new
//!   connections wait in the kernel's queue until one closes (they are not refused);
//! - **a header read timeout**: headers must arrive within it, counted from the moment the
//!   connection is ready for its next request — an idle keep-alive connection or a half-sent
//!   request is closed when it passes;
//! - **half-closed clients are answered**: a FIN after the request is the end of the request,
//!   not of the connection; the answer is written, then the connection closes;
//! - **a request timeout**: a handler still running after it answers 503, and a response the
//!   client stops reading for that long closes the connection ([`crate::stall`]);
//! - **graceful shutdown** when the caller's [`CancellationToken`] is cancelled: the listener
//!   closes, every connection finishes the request it is answering (idle ones close at once),
//!   and those still busy after the grace period are dropped.
//!
//! How the server knows every connection is done: each connection task is spawned on one
//! [`TaskTracker`]; after the accept loop ends the tracker is closed and awaited, and every task
//! ends by itself within the grace period because it watches the same token.

use crate::accept::{AcceptBackoff, AcceptErrorKind};
use crate::handler::{
    Authorize, Handler, MetricsCollector, ReadinessCheck, Request, Response, respond, text,
};
use crate::metrics::{self, Exposition, ServerMetrics};
use crate::stall::StallGuard;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where a server listens unless told otherwise: loopback only, never every interface.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// The server's protective limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; past it new connections wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Time for a request's headers to arrive, from when the connection is ready to read one.
    pub header_read_timeout: Duration,
    /// Time for a handler to answer, and for a client to take any of the answer.
    pub request_timeout: Duration,
    /// Time in-flight requests get to finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// Largest request head (request line and headers); larger ones get 431.
    pub max_header_bytes: usize,
    /// First wait after a failed `accept`; it doubles up to `accept_backoff_max`.
    pub accept_backoff_min: Duration,
    pub accept_backoff_max: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            max_header_bytes: 32 * 1024,
            accept_backoff_min: Duration::from_millis(1),
            accept_backoff_max: Duration::from_secs(1),
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "base path {0:?}: expected a path such as /status (a leading slash, no trailing slash, no query, no dots)"
    )]
    BasePath(String),
    #[error("max connections must be at least 1")]
    NoConnections,
}

/// What a server did, returned when it has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServeSummary {
    pub connections: u64,
    pub accept_errors: u64,
}

/// Builds a server: where it listens, what it serves, its limits.
///
/// Always served: `/healthz` (200 while the process answers) and `/readyz` (200, or 503 with
/// the reason when the [`ReadinessCheck`] fails). `/metrics` when a registry or collector is
/// given. Every other path goes to the application [`Handler`], or is 404.
pub struct ServerBuilder {
    listen: SocketAddr,
    limits: Limits,
    base_path: String,
    serving: Serving,
}

/// What a server answers with, as the builder collected it.
#[derive(Default)]
struct Serving {
    registries: Vec<Arc<Registry>>,
    collectors: Vec<Arc<dyn MetricsCollector>>,
    readiness: Option<Arc<dyn ReadinessCheck>>,
    app: Option<Arc<dyn Handler>>,
    auth: Option<Arc<dyn Authorize>>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder::new()
    }
}

impl ServerBuilder {
    /// A server on [`DEFAULT_LISTEN`] with default [`Limits`], serving `/healthz` and `/readyz`.
    pub fn new() -> ServerBuilder {
        ServerBuilder {
            listen: DEFAULT_LISTEN,
            limits: Limits::default(),
            base_path: String::new(),
            serving: Serving::default(),
        }
    }

    /// Listens on `addr` (port 0 picks a free port; see [`RunningServer::local_addr`]).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves everything — pages, `/metrics`, `/healthz` — under `base_path` (e.g. `/status`);
    /// `""` or `"/"` is the root. Checked by [`ServerBuilder::start`].
    pub fn base_path(mut self, base_path: impl Into<String>) -> Self {
        self.base_path = base_path.into();
        self
    }

    /// Serves this registry on `/metrics` (may be given several times).
    pub fn metrics(mut self, registry: Arc<Registry>) -> Self {
        self.serving.registries.push(registry);
        self
    }

    /// Adds figures computed at each scrape to `/metrics`.
    pub fn metrics_collector(mut self, collector: Arc<dyn MetricsCollector>) -> Self {
        self.serving.collectors.push(collector);
        self
    }

    /// What `/readyz` checks (without one it is always ready).
    pub fn readiness(mut self, check: Arc<dyn ReadinessCheck>) -> Self {
        self.serving.readiness = Some(check);
        self
    }

    /// The application that answers every other path.
    pub fn app(mut self, app: Arc<dyn Handler>) -> Self {
        self.serving.app = Some(app);
        self
    }

    /// Requires every request but `/healthz` to pass `auth`.
    pub fn auth(mut self, auth: Arc<dyn Authorize>) -> Self {
        self.serving.auth = Some(auth);
        self
    }

    /// Binds the listener and serves until `shutdown` is cancelled. Returns once listening.
    pub async fn start(self, shutdown: CancellationToken) -> Result<RunningServer, ServerError> {
        let base_path = normalize_base_path(&self.base_path)?;
        if self.limits.max_connections == 0 {
            return Err(ServerError::NoConnections);
        }
        let listener =
            TcpListener::bind(self.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: self.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: self.listen,
            source,
        })?;
        let metrics = ServerMetrics::default();
        let routes = Arc::new(Routes {
            base_path,
            own_registry: metrics.registry(),
            metrics,
            serving: self.serving,
            request_timeout: self.limits.request_timeout,
        });
        let task = tokio::spawn(accept_loop(
            listener,
            local_addr,
            routes,
            self.limits,
            shutdown,
        ));
        Ok(RunningServer { local_addr, task })
    }
}

/// Serves `registry` on `addr`'s `/metrics` (plus `/healthz` and `/readyz`) with the default
/// limits until `shutdown` is cancelled: what `conns`, `ingest` and the agent need.
pub async fn serve_metrics(
    addr: SocketAddr,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> Result<RunningServer, ServerError> {
    ServerBuilder::new()
        .listen(addr)
        .metrics(registry)
        .start(shutdown)
        .await
}

/// A server that is listening.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    task: JoinHandle<ServeSummary>,
}

impl RunningServer {
    /// The address actually bound (the port chosen when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server has stopped (after its shutdown token is cancelled and every
    /// connection has finished or passed the grace period).
    pub async fn stopped(self) -> ServeSummary {
        self.task.await.unwrap_or_default()
    }
}

fn normalize_base_path(raw: &str) -> Result<String, ServerError> {
    let trimmed = raw.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let valid = trimmed.starts_with('/')
        && trimmed.split('/').skip(1).all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        });
    if valid {
        Ok(trimmed.to_string())
    } else {
        Err(ServerError::BasePath(raw.to_string()))
    }
}

async fn accept_loop(
    listener: TcpListener,
    local_addr: SocketAddr,
    routes: Arc<Routes>,
    limits: Limits,
    shutdown: CancellationToken,
) -> ServeSummary {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut backoff = AcceptBackoff::new(limits.accept_backoff_min, limits.accept_backoff_max);
    let mut summary = ServeSummary::default();
    let mut cap_logged: Option<Instant> = None;
    loop {
        if slots.available_permits() == 0
            && cap_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
        {
            tracing::warn!(
                listen = %local_addr,
                max_connections = limits.max_connections,
                "connection cap reached; new connections wait until one closes"
            );
            cap_logged = Some(Instant::now());
        }
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                if let Some(failures) = backoff.on_success(Instant::now()) {
                    tracing::info!(listen = %local_addr, failures, "accepting again");
                }
                summary.connections += 1;
                routes.metrics.connections.inc();
                connections.spawn(serve_connection(
                    stream,
                    peer,
                    slot,
                    routes.clone(),
                    limits,
                    shutdown.clone(),
                ));
            }
            Err(err) => {
                summary.accept_errors += 1;
                routes.metrics.accept_errors.inc();
                let kind = AcceptErrorKind::of(&err);
                let decision = backoff.on_error(kind, Instant::now());
                if let Some(count) = decision.log_failures {
                    let wait_ms = decision.wait.as_millis() as u64;
                    match kind {
                        AcceptErrorKind::Unexpected => tracing::error!(
                            listen = %local_addr, %err, failures = count, wait_ms,
                            "accept failed; backing off"
                        ),
                        _ => tracing::warn!(
                            listen = %local_addr, %err, failures = count, wait_ms,
                            "accept failed; backing off"
                        ),
                    }
                }
                drop(slot);
                if !decision.wait.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(decision.wait) => {}
                        () = shutdown.cancelled() => break,
                    }
                }
            }
        }
    }
    // New connections are refused from here on; those open drain within the grace period.
    drop(listener);
    connections.close();
    connections.wait().await;
    summary
}

/// Keeps the open-connections gauge right however the connection task ends.
struct OpenConnection(prometheus_client::metrics::gauge::Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    routes: Arc<Routes>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let _slot = slot;
    routes.metrics.connections_open.inc();
    let _open = OpenConnection(routes.metrics.connections_open.clone());
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(StallGuard::new(stream, limits.request_timeout));
    let service_routes = routes.clone();
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let routes = service_routes.clone();
        async move { Ok::<_, Infallible>(routes.answer(request).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        // hyper refuses a buffer under 8 KiB; the body is never read, so the head sets it.
        .max_buf_size(limits.max_header_bytes.max(8192))
        // A client may shut its write side once the request is sent (`nc -N`, scripts, the
        // fuzz harness) and still read the answer. Without this hyper takes that EOF, seen
        // while the handler runs, for a client that left and closes unanswered — a race a
        // fast handler usually wins, a slow page always loses. A client that really left is
        // still bounded: the handler by the request timeout, the write by the stall guard.
        .half_close(true)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(limits.shutdown_grace, connection.as_mut()).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::debug!("connection still busy after the shutdown grace; dropped");
                    return;
                }
            }
        }
    };
    if let Err(err) = result {
        if err.is_timeout() {
            routes.metrics.header_timeouts.inc();
        }
        tracing::debug!(%err, %peer, "connection ended with an error");
    }
}

/// What the server answers, shared by every connection.
struct Routes {
    base_path: String,
    metrics: ServerMetrics,
    own_registry: Registry,
    serving: Serving,
    request_timeout: Duration,
}

impl Routes {
    fn serves_metrics(&self) -> bool {
        !self.serving.registries.is_empty() || !self.serving.collectors.is_empty()
    }

    async fn answer(&self, request: hyper::Request<Incoming>) -> Response {
        // The body is never read: every route is a read.
        let (head, _body) = request.into_parts();
        self.metrics.requests.inc();
        let gzip = accepts_gzip(
            head.headers
                .get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok()),
        );
        let mut response = match tokio::time::timeout(self.request_timeout, self.route(&head)).await
        {
            Ok(response) => response,
            Err(_) => {
                self.metrics.request_timeouts.inc();
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the request took too long; try again\n",
                )
            }
        };
        response.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if gzip {
            response = compress(response).await;
        }
        response
    }

    async fn route(&self, head: &Parts) -> Response {
        if head.method != Method::GET && head.method != Method::HEAD {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are served\n",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let Some(path) = strip_base_path(head.uri.path(), &self.base_path) else {
            return not_found();
        };
        if path == "/healthz" {
            return text(StatusCode::OK, "ok\n");
        }
        if let Some(auth) = &self.serving.auth
            && let Err(refusal) = auth.authorize(head).await
        {
            return refusal;
        }
        match path {
            "/readyz" => self.readyz().await,
            "/metrics" if self.serves_metrics() => self.scrape(head).await,
            _ => {
                let request = Request {
                    head,
                    path,
                    base_path: &self.base_path,
                };
                match &self.serving.app {
                    Some(app) => app.handle(request).await.unwrap_or_else(not_found),
                    None => not_found(),
                }
            }
        }
    }

    async fn readyz(&self) -> Response {
        let verdict = match &self.serving.readiness {
            Some(check) => check.check().await,
            None => Ok(()),
        };
        match verdict {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            ),
        }
    }

    async fn scrape(&self, head: &Parts) -> Response {
        let format = Exposition::for_accept(
            head.headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        );
        let mut collected = Vec::with_capacity(self.serving.collectors.len());
        for collector in &self.serving.collectors {
            collected.push(collector.collect().await);
        }
        let mut registries: Vec<&Registry> =
            self.serving.registries.iter().map(|r| r.as_ref()).collect();
        registries.extend(collected.iter());
        registries.push(&self.own_registry);
        respond(
            StatusCode::OK,
            format.content_type(),
            metrics::render(&registries, format),
        )
    }
}

/// Whether an `Accept-Encoding` value takes gzip (and doesn't refuse it with `q=0`).
pub(crate) fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|value| {
        value.split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
    })
}

/// Bodies smaller than this go as they are: gzip would save little.
const COMPRESS_FROM_BYTES: usize = 1024;

/// Gzips a text body (pages, JSON, SVG, `/metrics`): a 90-day bar per row makes an overview
/// page of a few hundred kilobytes that compresses about twentyfold.
async fn compress(response: Response) -> Response {
    use http_body_util::BodyExt;
    let textual = is_textual(response.headers());
    if !textual || response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    parts
        .headers
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    let body = match gzipped(&bytes) {
        Some(gzipped) => {
            parts
                .headers
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            gzipped
        }
        None => bytes,
    };
    Response::from_parts(parts, http_body_util::Full::new(body))
}

/// Whether an answer's content type is text that gzip shrinks.
pub(crate) fn is_textual(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.starts_with("text/")
                || t.starts_with("application/json")
                || t.starts_with("application/problem+json")
                || t.starts_with("application/yaml")
                || t.starts_with("application/openmetrics-text")
                || t.starts_with("image/svg+xml")
        })
}

/// `bytes` gzipped, or `None` when they are too few to bother (or gzip failed).
pub(crate) fn gzipped(bytes: &[u8]) -> Option<hyper::body::Bytes> {
    use std::io::Write;
    if bytes.len() < COMPRESS_FROM_BYTES {
        return None;
    }
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 8),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .ok()
        .map(hyper::body::Bytes::from)
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found\n")
}

/// The path below `base_path`, or `None` when the request is outside it. `/status` and
/// `/status/` both mean the base itself.
fn strip_base_path<'a>(path: &'a str, base_path: &str) -> Option<&'a str> {
    if base_path.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(base_path)?;
    match rest {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_are_a_clean_prefix_or_nothing() {
        assert_eq!(normalize_base_path("").unwrap(), "");
        assert_eq!(normalize_base_path("/").unwrap(), "");
        assert_eq!(normalize_base_path("/status/").unwrap(), "/status");
        assert_eq!(normalize_base_path("/a/b-c").unwrap(), "/a/b-c");
        for bad in ["status", "/a//b", "/a/../b", "/a?x", "/a b", "/a/%2e%2e"] {
            assert!(normalize_base_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn only_paths_under_the_base_are_served() {
        assert_eq!(strip_base_path("/metrics", ""), Some("/metrics"));
        assert_eq!(strip_base_path("/status", "/status"), Some("/"));
        assert_eq!(strip_base_path("/status/", "/status"), Some("/"));
        assert_eq!(
            strip_base_path("/status/healthz", "/status"),
            Some("/healthz")
        );
        assert_eq!(strip_base_path("/statusx/healthz", "/status"), None);
        assert_eq!(strip_base_path("/healthz", "/status"), None);
    }

    #[test]
    fn gzip_only_when_the_client_takes_it() {
        assert!(accepts_gzip(Some("gzip, deflate, br")));
        assert!(accepts_gzip(Some("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn the_default_listen_address_is_loopback() {
        assert!(DEFAULT_LISTEN.ip().is_loopback());
        assert!(ServerBuilder::new().listen.ip().is_loopback());
    }
}

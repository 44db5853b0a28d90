//! What the server asks of the code behind it: an application [`Handler`] for its own paths, a
//! [`ReadinessCheck`] for `/readyz`, [`MetricsCollector`]s for figures computed at scrape time —
//! and small constructors for the responses they return.
//!
//! The server is read-only: it answers `GET` and `HEAD` and never reads a request body, so a
//! handler sees the request head only.

use futures::future::BoxFuture;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Response as HyperResponse, StatusCode};
use prometheus_client::registry::Registry;
use std::future::Future;

/// Every response the server writes.
pub type Response = HyperResponse<Full<Bytes>>;

/// One request as a handler sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Method, URI and headers as received.
    pub head: &'a Parts,
    /// The path below the base path, still percent-encoded, always starting with `/`.
    pub path: &'a str,
    /// The base path everything is served under (`""` or e.g. `/status`): prefix it to every
    /// link a page writes.
    pub base_path: &'a str,
}

impl Request<'_> {
    /// The raw query string (`None` when the URI has none).
    pub fn query(&self) -> Option<&str> {
        self.head.uri.query()
    }

    /// A header as text (`None` if absent or not visible ASCII).
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.head.headers.get(name)?.to_str().ok()
    }
}

/// The application behind the server (the status page, the JSON API).
pub trait Handler: Send + Sync + 'static {
    /// Answers one request, or `None` when the path isn't the application's (the server then
    /// answers 404).
    fn handle<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a, Option<Response>>;
}

/// What `/readyz` asks: `Err(reason)` turns it 503 with the reason in the body.
pub trait ReadinessCheck: Send + Sync + 'static {
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

impl<F, Fut> ReadinessCheck for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self())
    }
}

/// Figures computed when `/metrics` is scraped (e.g. targets by verdict from a store), as a
/// fresh registry each time. Its metric names must differ from every other registry served.
pub trait MetricsCollector: Send + Sync + 'static {
    fn collect(&self) -> BoxFuture<'_, Registry>;
}

/// Read-only access control in front of every path but `/healthz`: `Err` carries the refusal
/// (401 with its challenge).
pub trait Authorize: Send + Sync + 'static {
    fn authorize<'a>(&'a self, head: &'a Parts) -> BoxFuture<'a, Result<(), Response>>;
}

/// A response with `body` and `content_type`.
pub fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response {
    let mut response = HyperResponse::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    respond(status, "text/plain; charset=utf-8", body.into())
}

/// An RFC 9457 `application/problem+json` answer; `parameter` names a bad query parameter.
pub fn problem(status: StatusCode, detail: &str, parameter: Option<&str>) -> Response {
    let mut body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let Some(parameter) = parameter {
        body["parameter"] = serde_json::json!(parameter);
    }
    let mut response = respond(
        status,
        "application/problem+json",
        serde_json::to_vec(&body).unwrap_or_default(),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

//! Prometheus metrics for `conns` and the small HTTP server that exposes them on `/metrics`.

use crate::table::Direction;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

/// Handles are cheap clones sharing the same atomics as the registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    new_connections: Family<DirectionLabel, Counter>,
    pub port_scans: Counter,
    pub blocked_sources: Gauge,
    pub poll_duration: Histogram,
    pub malformed_lines: Counter,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let new_connections = Family::<DirectionLabel, Counter>::default();
        // Both series exist from the start, so `rate()` has a zero to start from.
        for direction in [Direction::Inbound, Direction::Outbound] {
            let _ = new_connections.get_or_create(&DirectionLabel {
                direction: direction.as_str(),
            });
        }
        let port_scans = Counter::default();
        let blocked_sources = Gauge::default();
        // 1 ms … ~16 s: a small /proc table polls in about a millisecond, a huge one in seconds.
        let poll_duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let malformed_lines = Counter::default();
        registry.register(
            "netvantage_new_connections",
            "New TCP connections reported, by direction",
            new_connections.clone(),
        );
        registry.register(
            "netvantage_port_scans",
            "Port scan episodes detected",
            port_scans.clone(),
        );
        registry.register(
            "netvantage_blocked_sources",
            "Source addresses currently blocked by this process",
            blocked_sources.clone(),
        );
        registry.register(
            "netvantage_poll_duration_seconds",
            "Time to read and diff the socket table once",
            poll_duration.clone(),
        );
        registry.register(
            "netvantage_malformed_lines",
            "Socket table lines that could not be decoded and were skipped",
            malformed_lines.clone(),
        );
        Metrics {
            new_connections,
            port_scans,
            blocked_sources,
            poll_duration,
            malformed_lines,
            registry: Arc::new(registry),
        }
    }

    pub fn new_connection(&self, direction: Direction) {
        self.new_connections
            .get_or_create(&DirectionLabel {
                direction: direction.as_str(),
            })
            .inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn respond(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match req.uri().path() {
        "/metrics" => (StatusCode::OK, CONTENT_TYPE, metrics.render()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /metrics\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Binds `addr` and serves `/metrics` until the runtime stops. Returns the bound address (port
/// 0 picks one) once listening, so callers can log it and tests can find it.
pub async fn serve(addr: SocketAddr, metrics: Metrics) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(%err, "metrics: accept failed");
                    continue;
                }
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let response = respond(&req, &metrics);
                    async move { Ok::<_, Infallible>(response) }
                });
                if let Err(err) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%err, "metrics: connection ended with an error");
                }
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_follow_the_issue() {
        let metrics = Metrics::new();
        metrics.new_connection(Direction::Inbound);
        metrics.port_scans.inc();
        metrics.blocked_sources.set(2);
        metrics.poll_duration.observe(0.004);
        metrics.malformed_lines.inc_by(3);
        let text = metrics.render();
        for line in [
            "netvantage_new_connections_total{direction=\"inbound\"} 1",
            "netvantage_new_connections_total{direction=\"outbound\"} 0",
            "netvantage_port_scans_total 1",
            "netvantage_blocked_sources 2",
            "netvantage_poll_duration_seconds_count 1",
            "netvantage_malformed_lines_total 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}

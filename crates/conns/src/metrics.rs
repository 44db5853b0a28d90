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

    /// The OpenMetrics exposition (what the prometheus-client crate writes).
    pub fn render_openmetrics(&self) -> String {
        render_openmetrics(&self.registry)
    }

    /// The classic Prometheus text format (0.0.4), which every scraper and `promtool check
    /// metrics` read.
    pub fn render(&self) -> String {
        openmetrics_to_text(&self.render_openmetrics())
    }
}

/// The OpenMetrics exposition of any registry (`conns` and `ingest` both serve one).
pub fn render_openmetrics(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// OpenMetrics names a counter family without `_total` in its HELP/TYPE lines and ends with
/// `# EOF`; the 0.0.4 text format wants the sample name (`_total`) there and no EOF marker.
/// Our metrics use no other OpenMetrics-only feature (units, exemplars, created timestamps).
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn respond(req: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    let wants_openmetrics = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (status, content_type, body) = match req.uri().path() {
        "/metrics" if wants_openmetrics => {
            (StatusCode::OK, OPENMETRICS, render_openmetrics(registry))
        }
        "/metrics" => (
            StatusCode::OK,
            TEXT,
            openmetrics_to_text(&render_openmetrics(registry)),
        ),
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
    serve_registry(addr, metrics.registry.clone()).await
}

/// Serves any registry's `/metrics` on `addr`, as [`serve`] does.
pub async fn serve_registry(
    addr: SocketAddr,
    registry: Arc<Registry>,
) -> std::io::Result<SocketAddr> {
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
            let registry = registry.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let response = respond(&req, &registry);
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

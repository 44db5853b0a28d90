//! Prometheus metrics for `conns`. Serving them is not this crate's business: the CLI hands
//! [`Metrics::registry`] to netvantage's one hardened server (`netvantage_server::serve_metrics`).

use crate::table::Direction;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// What became of a ban decided by another host (`--shared`), as the metric's `outcome`.
pub const SHARED_OUTCOMES: [&str; 5] = ["applied", "allow_list", "refused", "expired", "invalid"];

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
    /// Conntrack event overruns (ENOBUFS on the event socket), each followed by a re-sync.
    pub conntrack_overruns: Counter,
    /// Inbound attempts refused by this host (a SYN answered only by an RST), conntrack only.
    pub refused_connections: Counter,
    shared_bans: Family<OutcomeLabel, Counter>,
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
        let conntrack_overruns = Counter::default();
        registry.register(
            "netvantage_conntrack_overruns",
            "Times the conntrack event socket overflowed (ENOBUFS) and the table was re-read",
            conntrack_overruns.clone(),
        );
        let refused_connections = Counter::default();
        registry.register(
            "netvantage_refused_connections",
            "Inbound connection attempts answered only by a reset (closed ports; conntrack source)",
            refused_connections.clone(),
        );
        let shared_bans = Family::<OutcomeLabel, Counter>::default();
        for outcome in SHARED_OUTCOMES {
            let _ = shared_bans.get_or_create(&OutcomeLabel { outcome });
        }
        registry.register(
            "netvantage_shared_bans",
            "Bans decided by other hosts read from the topic (--shared), by outcome: applied, allow_list (refused by --allow), refused (loopback, own address, not unicast), expired, invalid",
            shared_bans.clone(),
        );
        Metrics {
            shared_bans,
            conntrack_overruns,
            refused_connections,
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

    /// Counts one shared ban; `outcome` is one of [`SHARED_OUTCOMES`].
    pub fn shared_ban(&self, outcome: &'static str) {
        self.shared_bans
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// The registry to serve (shared: the handles above update it in place).
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }
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
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry()).unwrap();
        for line in [
            "netvantage_new_connections_total{direction=\"inbound\"} 1",
            "netvantage_new_connections_total{direction=\"outbound\"} 0",
            "netvantage_port_scans_total 1",
            "netvantage_blocked_sources 2",
            "netvantage_poll_duration_seconds_count 1",
            "netvantage_malformed_lines_total 3",
            "netvantage_shared_bans_total{outcome=\"allow_list\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}

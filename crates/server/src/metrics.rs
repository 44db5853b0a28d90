//! `/metrics`: any `prometheus_client` registries in the format the scraper asks for, plus the
//! server's own counters (connections, accept errors, timeouts).
//!
//! A scraper that sends `Accept: application/openmetrics-text` gets OpenMetrics (what the
//! prometheus-client crate writes); everyone else — `curl`, `promtool check metrics`, older
//! Prometheus — gets the classic text format 0.0.4.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which exposition format a scrape gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    OpenMetrics,
    Text,
}

impl Exposition {
    /// The choice for a request's `Accept` header value (`None`: no header).
    pub fn for_accept(accept: Option<&str>) -> Exposition {
        if accept.is_some_and(|v| v.contains("application/openmetrics-text")) {
            Exposition::OpenMetrics
        } else {
            Exposition::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Exposition::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// The OpenMetrics exposition of any registry.
pub fn render_openmetrics(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// Several registries as one exposition in `format`: each registry's metrics in turn, one
/// `# EOF` at the end for OpenMetrics. The registries must not share metric names.
pub fn render(registries: &[&Registry], format: Exposition) -> String {
    let mut openmetrics = String::new();
    for registry in registries {
        let one = render_openmetrics(registry);
        openmetrics.push_str(one.strip_suffix("# EOF\n").unwrap_or(&one));
    }
    match format {
        Exposition::OpenMetrics => {
            openmetrics.push_str("# EOF\n");
            openmetrics
        }
        Exposition::Text => openmetrics_to_text(&openmetrics),
    }
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

/// The server's own figures, served on its `/metrics` next to the caller's registries. Handles
/// are cheap clones sharing the registry's atomics.
#[derive(Debug, Clone, Default)]
pub struct ServerMetrics {
    pub connections_open: Gauge,
    pub connections: Counter,
    pub accept_errors: Counter,
    pub requests: Counter,
    pub request_timeouts: Counter,
    pub header_timeouts: Counter,
}

impl ServerMetrics {
    pub(crate) fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        registry.register(
            "netvantage_server_connections_open",
            "HTTP connections open now",
            self.connections_open.clone(),
        );
        registry.register(
            "netvantage_server_connections",
            "HTTP connections accepted",
            self.connections.clone(),
        );
        registry.register(
            "netvantage_server_accept_errors",
            "Failed accept calls (EMFILE and the like), each followed by a back-off",
            self.accept_errors.clone(),
        );
        registry.register(
            "netvantage_server_requests",
            "HTTP requests answered",
            self.requests.clone(),
        );
        registry.register(
            "netvantage_server_request_timeouts",
            "Requests answered 503 because their handler ran past the request timeout",
            self.request_timeouts.clone(),
        );
        registry.register(
            "netvantage_server_header_timeouts",
            "Connections closed because request headers did not arrive in time",
            self.header_timeouts.clone(),
        );
        registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_total_suffix_in_the_text_format() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        counter.inc_by(3);
        registry.register("nv_things", "Things", counter);
        let text = render(&[&registry], Exposition::Text);
        assert!(text.contains("# TYPE nv_things_total counter\n"), "{text}");
        assert!(text.contains("\nnv_things_total 3\n"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn several_registries_make_one_openmetrics_document_with_one_eof() {
        let a = Registry::default();
        let b = ServerMetrics::default().registry();
        let out = render(&[&a, &b], Exposition::OpenMetrics);
        assert_eq!(out.matches("# EOF").count(), 1);
        assert!(out.ends_with("# EOF\n"));
        assert!(out.contains("netvantage_server_connections_open 0"));
    }

    #[test]
    fn openmetrics_only_when_the_scraper_asks_for_it() {
        assert_eq!(Exposition::for_accept(None), Exposition::Text);
        assert_eq!(
            Exposition::for_accept(Some("text/plain;version=0.0.4")),
            Exposition::Text
        );
        assert_eq!(
            Exposition::for_accept(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Exposition::OpenMetrics
        );
    }
}

//! `CheckResult`: the one record that travels — printed, stored, published, ingested.
//!
//! Its JSON form is versioned by [`SCHEMA_VERSION`]; fields are only ever added, and a consumer
//! ignores fields it does not know. Times are UTC milliseconds since the Unix epoch.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Tcp,
    Http,
}

/// What the check saw. `Degraded` is HTTP's "worked, but slower than its budget".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Up,
    Degraded,
    Down,
}

impl Outcome {
    pub fn is_up(self) -> bool {
        self == Outcome::Up
    }

    /// The name used in JSON and in the stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Up => "up",
            Outcome::Degraded => "degraded",
            Outcome::Down => "down",
        }
    }
}

impl CheckKind {
    /// The name used in JSON and in the stores.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http => "http",
        }
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;

    /// The inverse of [`Outcome::as_str`] (what the stores keep).
    fn from_str(text: &str) -> Result<Outcome, String> {
        [Outcome::Up, Outcome::Degraded, Outcome::Down]
            .into_iter()
            .find(|o| o.as_str() == text)
            .ok_or_else(|| format!("unknown outcome {text:?}"))
    }
}

impl std::str::FromStr for CheckKind {
    type Err = String;

    /// The inverse of [`CheckKind::as_str`] (what the stores keep).
    fn from_str(text: &str) -> Result<CheckKind, String> {
        [CheckKind::Tcp, CheckKind::Http]
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| format!("unknown check kind {text:?}"))
    }
}

/// Why a check failed: the first thing an SRE asks about a flapping port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The host answered with a RST: reachable, but nothing listens (or a firewall rejects).
    Refused,
    /// No answer within the timeout: SYNs dropped by a firewall, an overloaded host, a dead path.
    Timeout,
    /// The network or host is unreachable (ICMP unreachable, no route).
    Unreachable,
    /// The name did not resolve (NXDOMAIN, no records, resolver timeout).
    Dns,
    /// TLS handshake or certificate failure (HTTP checks).
    Tls,
    /// An HTTP status outside the expected set.
    Status,
    /// The response body did not match the configured regex.
    Body,
    /// Anything else; the error text says what.
    Other,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::Refused,
        Reason::Timeout,
        Reason::Unreachable,
        Reason::Dns,
        Reason::Tls,
        Reason::Status,
        Reason::Body,
        Reason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Refused => "refused",
            Reason::Timeout => "timeout",
            Reason::Unreachable => "unreachable",
            Reason::Dns => "dns",
            Reason::Tls => "tls",
            Reason::Status => "status",
            Reason::Body => "body",
            Reason::Other => "other",
        }
    }
}

impl std::str::FromStr for Reason {
    type Err = String;

    /// The inverse of [`Reason::as_str`] (what the stores keep).
    fn from_str(text: &str) -> Result<Reason, String> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| format!("unknown reason {text:?}"))
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-phase timings of a request, as Prometheus' blackbox_exporter reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_byte_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<f64>,
}

/// One check of one target (one address, for a name with several).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub schema: u32,
    pub kind: CheckKind,
    /// The target as the user named it: `host:port` for TCP, the URL for HTTP.
    pub target: String,
    /// The address actually tried; absent when the name did not resolve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<SocketAddr>,
    pub ts_unix_ms: i64,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases: Option<Phases>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_matched: Option<bool>,
    /// HTTP checks only: which configured endpoint, and what TLS showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpDetails>,
}

/// What an HTTP check adds to the record (added in schema 1; absent for TCP checks).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpDetails {
    /// The endpoint's `name` in the config.
    pub name: String,
    pub method: String,
    /// The URL's host, lower-cased, without the port: what availability is grouped by.
    pub domain: String,
    /// When the server's leaf certificate expires (HTTPS only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_not_after_unix_ms: Option<i64>,
}

/// What an HTTP check saw, for [`CheckResult::http`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpObservation {
    pub outcome: Option<Outcome>,
    pub reason: Option<Reason>,
    pub error: Option<String>,
    pub address: Option<SocketAddr>,
    pub status: Option<u16>,
    pub phases: Option<Phases>,
    pub body_matched: Option<bool>,
}

impl CheckResult {
    /// An HTTP check result. An observation without an outcome is a failure (`Down`): a check
    /// that could not even say how it went did not work.
    pub fn http(
        target: String,
        ts_unix_ms: i64,
        latency: Duration,
        seen: HttpObservation,
        details: HttpDetails,
    ) -> Self {
        CheckResult {
            schema: SCHEMA_VERSION,
            kind: CheckKind::Http,
            target,
            address: seen.address,
            ts_unix_ms,
            outcome: seen.outcome.unwrap_or(Outcome::Down),
            reason: seen.reason,
            latency_ms: latency.as_secs_f64() * 1e3,
            error: seen.error,
            status: seen.status,
            phases: seen.phases,
            body_matched: seen.body_matched,
            http: Some(details),
        }
    }

    /// A TCP connect result; `failure` is `None` when the connect succeeded.
    pub fn tcp(
        target: String,
        address: Option<SocketAddr>,
        ts_unix_ms: i64,
        latency: Duration,
        failure: Option<(Reason, String)>,
    ) -> Self {
        let (outcome, reason, error) = match failure {
            None => (Outcome::Up, None, None),
            Some((reason, error)) => (Outcome::Down, Some(reason), Some(error)),
        };
        CheckResult {
            schema: SCHEMA_VERSION,
            kind: CheckKind::Tcp,
            target,
            address,
            ts_unix_ms,
            outcome,
            reason,
            latency_ms: latency.as_secs_f64() * 1e3,
            error,
            status: None,
            phases: None,
            body_matched: None,
            http: None,
        }
    }

    pub fn latency(&self) -> Duration {
        Duration::from_secs_f64(self.latency_ms.max(0.0) / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_json_has_versioned_stable_field_names() {
        let ok = CheckResult::tcp(
            "db:5432".into(),
            Some("127.0.0.1:5432".parse().unwrap()),
            1_700_000_000_000,
            Duration::from_micros(1500),
            None,
        );
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(json["schema"], 1);
        assert_eq!(json["kind"], "tcp");
        assert_eq!(json["outcome"], "up");
        assert_eq!(json["address"], "127.0.0.1:5432");
        assert_eq!(json["latency_ms"], 1.5);
        assert!(json.get("reason").is_none());

        let failed = CheckResult::tcp(
            "x:1".into(),
            None,
            0,
            Duration::ZERO,
            Some((Reason::Dns, "NXDOMAIN".into())),
        );
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(json["outcome"], "down");
        assert_eq!(json["reason"], "dns");
        let back: CheckResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, failed);
    }

    #[test]
    fn http_results_carry_their_details_and_default_to_down() {
        let details = HttpDetails {
            name: "home".into(),
            method: "GET".into(),
            domain: "example.org".into(),
            tls_cert_not_after_unix_ms: None,
        };
        let seen = HttpObservation {
            outcome: Some(Outcome::Degraded),
            status: Some(200),
            ..HttpObservation::default()
        };
        let r = CheckResult::http(
            "http://example.org/".into(),
            5,
            Duration::from_millis(700),
            seen,
            details.clone(),
        );
        assert_eq!(
            (r.kind, r.outcome, r.status, r.latency_ms),
            (CheckKind::Http, Outcome::Degraded, Some(200), 700.0)
        );
        assert_eq!(r.http, Some(details.clone()));
        let unknown = CheckResult::http(
            "u".into(),
            0,
            Duration::ZERO,
            HttpObservation::default(),
            details,
        );
        assert_eq!(unknown.outcome, Outcome::Down);
    }

    #[test]
    fn store_names_match_the_json_names() {
        for reason in Reason::ALL {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
            assert_eq!(reason.as_str().parse::<Reason>(), Ok(reason));
        }
        for outcome in [Outcome::Up, Outcome::Degraded, Outcome::Down] {
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.as_str());
            assert_eq!(outcome.as_str().parse::<Outcome>(), Ok(outcome));
        }
        for kind in [CheckKind::Tcp, CheckKind::Http] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            assert_eq!(kind.as_str().parse::<CheckKind>(), Ok(kind));
        }
    }
}

//! The endpoint list: a YAML sequence in the widely used synthetic-monitor format (`name`, `url`,
//! `method`, `headers`, `body`), plus netvantage's optional fields. Pure: it parses text the
//! caller has read, and every error names the file, the line and the field, so a bad config is
//! refused before a single request is sent.

use crate::status::StatusSet;
use crate::yaml::{ConfigError, Failure, Fields, load_documents, scalar_text};
use http::{HeaderName, HeaderValue, Method};
use regex::Regex;
use saphyr::{MarkedYaml, Scalar, YamlData};
use std::time::Duration;

/// Methods we send. A closed list so a typo (`GTE`) is an error rather than a 405 at 3 am.
pub const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// One validated endpoint, ready to be checked.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    /// The URL as written in the config (used verbatim in output).
    pub url: String,
    pub scheme: Scheme,
    /// The host as the URL names it (no brackets around IPv6), used for Host, SNI and DNS.
    pub host: String,
    pub port: u16,
    /// What availability is grouped by: the host, lower-cased, without the port.
    pub domain: String,
    pub path_and_query: String,
    pub method: Method,
    /// Headers in file order, names lower-cased.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<String>,
    pub timeout: Option<Duration>,
    pub latency_threshold: Option<Duration>,
    pub expect_status: StatusSet,
    pub body_regex: Option<Regex>,
    pub interval: Option<Duration>,
}

impl Endpoint {
    /// The `authority` (`host[:port]`) for the Host header: the port only when not the default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
    }
}

/// Parses and validates a whole config. `file` is only used in error messages.
///
/// The tree is walked by hand (rather than through serde) because every node carries its
/// position, so an error can point at the exact line of the offending field.
pub fn parse_config(text: &str, file: &str) -> Result<Vec<Endpoint>, ConfigError> {
    let fail = |node: Option<&MarkedYaml>, message: String| ConfigError {
        file: file.to_string(),
        location: node.map(crate::yaml::position),
        message,
    };
    let docs = load_documents(text, file)?;
    let no_endpoints =
        "no endpoints: the file must be a YAML list of entries with `name` and `url`";
    let doc = match docs.as_slice() {
        [] => return Err(fail(None, no_endpoints.into())),
        [doc] => doc,
        [_, second, ..] => {
            return Err(fail(
                Some(second),
                "only one YAML document is allowed".into(),
            ));
        }
    };
    parse_endpoint_list(doc, file)
}

/// Parses a YAML list of endpoints that is part of a larger document (the agent's `http:`
/// section); errors point into `file` just as [`parse_config`]'s do.
pub fn parse_endpoint_list(list: &MarkedYaml, file: &str) -> Result<Vec<Endpoint>, ConfigError> {
    let fail = |node: Option<&MarkedYaml>, message: String| ConfigError {
        file: file.to_string(),
        location: node.map(crate::yaml::position),
        message,
    };
    let no_endpoints =
        "no endpoints: the file must be a YAML list of entries with `name` and `url`";
    let entries = match &list.data {
        YamlData::Sequence(entries) => entries,
        YamlData::Value(Scalar::Null) => return Err(fail(None, no_endpoints.into())),
        _ => {
            return Err(fail(
                Some(list),
                "the file must be a YAML list of endpoints (each starting with `- name:`)".into(),
            ));
        }
    };
    if entries.is_empty() {
        return Err(fail(Some(list), no_endpoints.into()));
    }
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            parse_entry(entry, index + 1)
                .map_err(|(node, message)| ConfigError::at(file, Some(node), message))
        })
        .collect()
}

const FIELDS: [&str; 10] = [
    "name",
    "url",
    "method",
    "headers",
    "body",
    "timeout",
    "latency_threshold",
    "expect_status",
    "body_regex",
    "interval",
];

fn parse_entry<'a, 'y>(
    entry: &'a MarkedYaml<'y>,
    number: usize,
) -> Result<Endpoint, Failure<'a, 'y>> {
    let what = format!("entry {number}");
    if !matches!(entry.data, YamlData::Mapping(_)) {
        return Err((
            entry,
            format!("{what}: must be a mapping with at least `name` and `url`"),
        ));
    }
    let fields = Fields::new(entry, what, &FIELDS)?;
    let name = match fields.raw_text("name")? {
        None => return Err(fields.fail_here("missing field `name`")),
        Some((node, name)) if name.trim().is_empty() => {
            return Err(fields.fail(node, "name", "must not be empty"));
        }
        Some((_, name)) => name,
    };
    let (url_node, url) = fields.raw_text("url")?.ok_or_else(|| {
        (
            entry,
            format!("{} ({name:?}): missing field `url`", fields.what),
        )
    })?;
    let url = url.trim().to_string();
    let (scheme, host, port, path_and_query) =
        parse_url(&url).map_err(|m| fields.fail(url_node, "url", m))?;
    let method = match fields.raw_text("method")? {
        None => Method::GET,
        Some((node, m)) => parse_method(&m).map_err(|e| fields.fail(node, "method", e))?,
    };
    let headers = match fields.get("headers") {
        None => Vec::new(),
        Some(node) => {
            parse_headers(node).map_err(|(n, m)| fields.fail(n.unwrap_or(node), "headers", m))?
        }
    };
    let body = fields.raw_text("body")?.map(|(_, b)| b);
    let duration = |field: &str| -> Result<Option<Duration>, Failure<'a, 'y>> {
        Ok(fields.duration(field)?.map(|(_, d)| d))
    };
    let timeout = duration("timeout")?;
    let latency_threshold = duration("latency_threshold")?;
    let interval = duration("interval")?;
    let expect_status = match fields.get("expect_status") {
        None => StatusSet::default(),
        Some(node) => parse_status_set(node)
            .map_err(|(n, m)| fields.fail(n.unwrap_or(node), "expect_status", m))?,
    };
    let body_regex = match fields.raw_text("body_regex")? {
        None => None,
        Some((node, r)) => Some(
            Regex::new(&r)
                .map_err(|e| fields.fail(node, "body_regex", format!("invalid regex: {e}")))?,
        ),
    };
    let domain = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    Ok(Endpoint {
        name,
        url,
        scheme,
        host,
        port,
        domain,
        path_and_query,
        method,
        headers,
        body,
        timeout,
        latency_threshold,
        expect_status,
        body_regex,
        interval,
    })
}

fn parse_method(text: &str) -> Result<Method, String> {
    let upper = text.trim().to_ascii_uppercase();
    if !METHODS.contains(&upper.as_str()) {
        return Err(format!(
            "unknown method {text:?} (use one of {})",
            METHODS.join(", ")
        ));
    }
    Method::from_bytes(upper.as_bytes()).map_err(|e| e.to_string())
}

type NodeError<'a, 'y> = (Option<&'a MarkedYaml<'y>>, String);

fn parse_headers<'a, 'y>(
    node: &'a MarkedYaml<'y>,
) -> Result<Vec<(HeaderName, HeaderValue)>, NodeError<'a, 'y>> {
    let YamlData::Mapping(map) = &node.data else {
        return Err((None, "must be a map of header names to values".into()));
    };
    let mut headers = Vec::new();
    for (key, value) in map {
        let name =
            scalar_text(key).ok_or((Some(key), "header names must be strings".to_string()))?;
        let header = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| (Some(key), format!("invalid header name {name:?}")))?;
        let text = scalar_text(value).ok_or((
            Some(value),
            format!("the value of header {name:?} must be a string"),
        ))?;
        let value = HeaderValue::from_str(&text).map_err(|_| {
            (
                Some(value),
                format!("invalid value for header {name:?}: {text:?}"),
            )
        })?;
        headers.push((header, value));
    }
    Ok(headers)
}

fn parse_status_set<'a, 'y>(node: &'a MarkedYaml<'y>) -> Result<StatusSet, NodeError<'a, 'y>> {
    let items: Vec<&MarkedYaml> = match &node.data {
        YamlData::Sequence(items) if items.is_empty() => {
            return Err((None, "the list of statuses is empty".into()));
        }
        YamlData::Sequence(items) => items.iter().collect(),
        _ => vec![node],
    };
    let mut ranges = Vec::new();
    for item in items {
        let text = scalar_text(item).ok_or((
            Some(item),
            "a status is 200, \"200-299\" or \"2xx\"".to_string(),
        ))?;
        for part in text.split(',') {
            ranges.push(StatusSet::parse_item(part).map_err(|e| (Some(item), e.to_string()))?);
        }
    }
    Ok(StatusSet::new(ranges))
}

/// Validates a URL: http or https, a host, an optional port, no credentials.
pub fn parse_url(text: &str) -> Result<(Scheme, String, u16, String), String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    let scheme = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
        Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
        Some(s) => {
            return Err(format!(
                "invalid URL {text:?}: scheme {s:?} is not http or https"
            ));
        }
        None => {
            return Err(format!(
                "invalid URL {text:?}: no scheme (write http:// or https://)"
            ));
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("invalid URL {text:?}: no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "invalid URL {text:?}: credentials in URLs are not supported; use an authorization header"
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("invalid URL {text:?}: no host"));
    }
    let port = match authority.port() {
        // `http` drops a port it cannot read (`:99999`, `:`); the authority still shows it.
        None if authority.as_str().len() > authority.host().len() => {
            return Err(format!("invalid URL {text:?}: the port must be 1-65535"));
        }
        None => match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        },
        Some(p) => match p.as_str().parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(format!(
                    "invalid URL {text:?}: port {:?} is not 1-65535",
                    p.as_str()
                ));
            }
        },
    };
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let path_and_query = if path_and_query.is_empty() {
        "/"
    } else {
        path_and_query
    };
    Ok((
        scheme,
        host.to_ascii_lowercase(),
        port,
        path_and_query.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file users arrive with; it must work unchanged.
    pub const FETCH_EXAMPLE: &str = r#"- headers:
    user-agent: fetch-synthetic-monitor
  method: GET
  name: fetch index page
  url: https://fetch.com/
- body: '{"foo":"bar"}'
  headers:
    content-type: application/json
    user-agent: fetch-synthetic-monitor
  method: POST
  name: fetch some fake post endpoint
  url: https://fetch.com/some/post/endpoint
- name: fetch rewards index page
  url: https://www.fetchrewards.com/
"#;

    fn err(text: &str) -> String {
        parse_config(text, "c.yaml").unwrap_err().to_string()
    }

    #[test]
    fn fetch_example_parses_unchanged() {
        let eps = parse_config(FETCH_EXAMPLE, "fetch.yaml").unwrap();
        assert_eq!(eps.len(), 3);
        assert_eq!(eps[0].name, "fetch index page");
        assert_eq!(eps[0].method, Method::GET);
        assert_eq!(eps[0].headers[0].0.as_str(), "user-agent");
        assert_eq!(eps[0].headers[0].1, "fetch-synthetic-monitor");
        assert_eq!(
            (eps[0].scheme, eps[0].port, eps[0].path_and_query.as_str()),
            (Scheme::Https, 443, "/")
        );
        assert_eq!(eps[1].method, Method::POST);
        assert_eq!(eps[1].body.as_deref(), Some(r#"{"foo":"bar"}"#));
        assert_eq!(eps[1].path_and_query, "/some/post/endpoint");
        assert_eq!(eps[2].domain, "www.fetchrewards.com");
        assert_eq!(eps[2].method, Method::GET);
        assert!(eps[2].headers.is_empty() && eps[2].body.is_none());
        assert_eq!(eps[2].expect_status, StatusSet::default());
    }

    #[test]
    fn optional_fields_parse() {
        let eps = parse_config(
            "- name: a\n  url: http://Example.COM:8080/x?y=1\n  method: post\n  timeout: 2s\n  latency_threshold: 250ms\n  expect_status: [200, \"300-302\", 4xx]\n  body_regex: '^ok'\n  interval: 1m\n  headers: {x-retry: 3}\n",
            "c.yaml",
        )
        .unwrap();
        let ep = &eps[0];
        assert_eq!(ep.domain, "example.com");
        assert_eq!(ep.port, 8080);
        assert_eq!(ep.host_header(), "example.com:8080");
        assert_eq!(ep.path_and_query, "/x?y=1");
        assert_eq!(ep.method, Method::POST);
        assert_eq!(ep.timeout, Some(Duration::from_secs(2)));
        assert_eq!(ep.latency_threshold, Some(Duration::from_millis(250)));
        assert_eq!(ep.expect_status.to_string(), "200,300-302,400-499");
        assert!(ep.body_regex.as_ref().unwrap().is_match("ok!"));
        assert_eq!(ep.interval, Some(Duration::from_secs(60)));
        assert_eq!(ep.headers[0].1, "3");
    }

    #[test]
    fn expect_status_accepts_scalar_forms() {
        let one = |v: &str| {
            parse_config(
                &format!("- name: a\n  url: http://h/\n  expect_status: {v}\n"),
                "c",
            )
            .unwrap()[0]
                .expect_status
                .to_string()
        };
        assert_eq!(one("204"), "204");
        assert_eq!(one("\"200-204,301\""), "200-204,301");
        assert_eq!(one("3xx"), "300-399");
    }

    #[test]
    fn domain_is_host_without_port_lower_cased() {
        let eps = parse_config(
            "- {name: a, url: 'http://[::1]:9/'}\n- {name: b, url: 'HTTPS://Fetch.com:8443'}\n",
            "c",
        )
        .unwrap();
        assert_eq!(
            (eps[0].host.as_str(), eps[0].domain.as_str()),
            ("::1", "[::1]")
        );
        assert_eq!(eps[0].host_header(), "[::1]:9");
        assert_eq!(
            (
                eps[1].domain.as_str(),
                eps[1].port,
                eps[1].path_and_query.as_str()
            ),
            ("fetch.com", 8443, "/")
        );
    }

    #[test]
    fn missing_name_names_file_line_and_field() {
        let e = err("- name: ok\n  url: http://a/\n- url: http://b/\n");
        assert!(e.starts_with("c.yaml:3:"), "{e}");
        assert!(
            e.contains("entry 2") && e.contains("missing field `name`"),
            "{e}"
        );
    }

    #[test]
    fn missing_url_is_reported() {
        let e = err("- name: ok\n");
        assert!(
            e.starts_with("c.yaml:1:") && e.contains("missing field `url`"),
            "{e}"
        );
    }

    #[test]
    fn bad_url_method_header_name_the_line_and_field() {
        let e = err("- name: a\n  url: ftp://a/\n");
        assert!(
            e.starts_with("c.yaml:2:")
                && e.contains("field `url`")
                && e.contains("not http or https"),
            "{e}"
        );
        let e = err("- name: a\n  url: fetch.com\n");
        assert!(e.starts_with("c.yaml:2:") && e.contains("no scheme"), "{e}");
        let e = err("- name: a\n  url: http://a/\n  method: GTE\n");
        assert!(
            e.starts_with("c.yaml:3:") && e.contains("field `method`") && e.contains("\"GTE\""),
            "{e}"
        );
        let e = err("- name: a\n  url: http://a/\n  headers:\n    bad header: x\n");
        assert!(
            e.starts_with("c.yaml:")
                && e.contains("field `headers`")
                && e.contains("\"bad header\""),
            "{e}"
        );
        let e = err("- name: a\n  url: http://a/\n  headers:\n    x: \"a\\nb\"\n");
        assert!(e.contains("invalid value for header \"x\""), "{e}");
    }

    #[test]
    fn bad_optional_fields_are_refused() {
        for (yaml, field, line) in [
            ("  timeout: soon\n", "timeout", 3),
            ("  latency_threshold: 0s\n", "latency_threshold", 3),
            ("  expect_status: 700\n", "expect_status", 3),
            ("  body_regex: '('\n", "body_regex", 3),
            ("  interval: -1\n", "interval", 3),
            ("  colour: blue\n", "colour", 3),
        ] {
            let e = err(&format!("- name: a\n  url: http://a/\n{yaml}"));
            assert!(
                e.starts_with(&format!("c.yaml:{line}:")) && e.contains(field),
                "{field}: {e}"
            );
        }
    }

    #[test]
    fn bad_documents_are_refused() {
        assert!(
            err("").contains("no endpoints") || err("").contains("c.yaml"),
            "{}",
            err("")
        );
        assert!(err("[]").contains("no endpoints"));
        let e = err("name: a\nurl: http://a/\n");
        assert!(e.starts_with("c.yaml:1:") && e.contains("YAML list"), "{e}");
        let e = err("- name: a\n  url: [\n");
        assert!(e.starts_with("c.yaml:"), "{e}");
        let e = err("- name: ''\n  url: http://a/\n");
        assert!(e.contains("field `name`") && e.contains("empty"), "{e}");
        let e = err("- name: a\n  url: http://u:p@a/\n");
        assert!(e.contains("credentials"), "{e}");
    }

    #[test]
    fn url_validation() {
        assert!(parse_url("http://a:0/").is_err());
        assert!(parse_url("http://a:99999/").is_err());
        assert!(parse_url("http:///x").is_err());
        assert_eq!(
            parse_url("http://a").unwrap(),
            (Scheme::Http, "a".into(), 80, "/".into())
        );
    }
}

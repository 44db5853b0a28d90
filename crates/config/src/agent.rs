//! The agent's YAML config: who the agent is, what it checks, and where results go. Pure: it
//! parses text the caller has read; hosts files named in it are read by the caller. Every error
//! names the file, line and column, as `netvantage http`'s config errors do (its endpoint entries
//! are parsed by that same code).
//!
//! ```yaml
//! agent: probe-fra-1            # default: the host name
//! vantage: fra1                 # where the checks come from (data center, region)
//! interval: 10s                 # default for every tcp group
//! timeout: 2s
//! tcp:
//!   - name: postgres
//!     port: 5432
//!     hosts: [db1.internal, 10.0.0.7]
//!     hosts_file: /etc/netvantage/db-hosts.txt   # same line format as `ports`
//! http:
//!   interval: 15s
//!   endpoints:                  # the entry schema of `netvantage http`
//!     - name: home
//!       url: https://example.org/
//! sinks:
//!   sqlite: {path: netvantage.db}  # the default when no sink is listed
//!   # sqlite: {path: netvantage.db, retention: {raw: 7d, minute: 30d, hour: 400d, day: forever}}
//!   stdout: true                   # NDJSON records on stdout
//!   kafka:
//!     brokers: kafka-1:9093,kafka-2:9093
//!     topic: netvantage.results
//! ```

use crate::endpoints::{Endpoint, parse_endpoint_list};
use crate::plan::{HttpTiming, TcpTiming, defaults};
use crate::yaml::{ConfigError, Failure, Fields, load_documents, scalar_text};
use netvantage_core::target::{Host, Target, parse_line};
use saphyr::{MarkedYaml, Scalar, YamlData};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `None`: the caller fills in the host name.
    pub agent: Option<String>,
    pub vantage: String,
    pub tcp: Vec<TcpGroup>,
    pub http: Option<HttpSection>,
    pub sinks: Sinks,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TcpGroup {
    pub name: String,
    pub port: u16,
    pub hosts: Vec<Target>,
    /// Read by the caller, with `port` as the default port.
    pub hosts_file: Option<PathBuf>,
    /// Validated as `ports`' flags are: the timeout is shorter than the interval.
    pub timing: TcpTiming,
}

#[derive(Debug, Clone)]
pub struct HttpSection {
    pub timing: HttpTiming,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Default)]
pub struct Sinks {
    pub sqlite: Option<PathBuf>,
    /// `sinks.sqlite.retention`: how long the SQLite store keeps each tier.
    pub sqlite_retention: RetentionConfig,
    pub stdout: bool,
    pub kafka: Option<KafkaSettings>,
}

/// How long something is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    For(Duration),
    Forever,
}

/// Retention per tier as the config gives it; `None`: the store's default (raw 7 d, minute
/// 30 d, hour 400 d, day forever; the connection log's records 30 d).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionConfig {
    pub raw: Option<Keep>,
    pub minute: Option<Keep>,
    pub hour: Option<Keep>,
    pub day: Option<Keep>,
    /// The connection log's records (`connections`, `scans`, `blocks`, what `conns --sink`
    /// writes); its roll-ups follow `hour` and `day`.
    pub conns: Option<Keep>,
}

impl std::str::FromStr for Keep {
    type Err = String;

    /// A duration (`7d`, `400d`) or `forever`.
    fn from_str(text: &str) -> Result<Keep, String> {
        if text.trim() == "forever" {
            return Ok(Keep::Forever);
        }
        match netvantage_core::parse_duration(text) {
            Ok(d) if !d.is_zero() => Ok(Keep::For(d)),
            Ok(_) => Err(format!("{text:?} must be greater than zero")),
            Err(e) => Err(format!("{e} (or `forever`)")),
        }
    }
}

/// Where a credential comes from. Passwords may only come from the environment or a file:
/// never the command line (visible in `ps`), nor the config text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Literal(String),
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512.
    pub mechanism: String,
    pub username: Secret,
    pub password: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub key_password: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSettings {
    /// `host:port,host:port`.
    pub brokers: String,
    pub topic: String,
    /// Used when the topic has to be created.
    pub partitions: i32,
    pub replication: i32,
    pub tls: Option<Tls>,
    pub sasl: Option<Sasl>,
    /// Records held in memory while the broker is away, before the spool takes over.
    pub memory_records: usize,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    /// Extra librdkafka properties, passed as given (the escape hatch for tuning).
    pub properties: Vec<(String, String)>,
}

/// Parses and validates an agent config. `file` is used in error messages only.
pub fn parse_agent_config(text: &str, file: &str) -> Result<AgentConfig, ConfigError> {
    let error = |node: Option<&MarkedYaml>, message: String| ConfigError::at(file, node, message);
    let docs = load_documents(text, file)?;
    let [doc] = docs.as_slice() else {
        return Err(error(
            docs.get(1),
            "the file must hold exactly one YAML document (a mapping with `vantage`, `tcp`, `http`, `sinks`)".into(),
        ));
    };
    let mut http_list = None;
    let mut config =
        parse_document(doc, &mut http_list).map_err(|(node, m)| error(Some(node), m))?;
    if let Some((list, timing)) = http_list {
        let endpoints = parse_endpoint_list(list, file)?;
        config.http = Some(HttpSection { timing, endpoints });
    }
    if config.tcp.is_empty() && config.http.is_none() {
        return Err(error(
            Some(doc),
            "nothing to check: add a `tcp` group or `http` endpoints".into(),
        ));
    }
    Ok(config)
}

type HttpList<'a, 'y> = Option<(&'a MarkedYaml<'y>, HttpTiming)>;

fn parse_document<'a, 'y>(
    doc: &'a MarkedYaml<'y>,
    http_list: &mut HttpList<'a, 'y>,
) -> Result<AgentConfig, Failure<'a, 'y>> {
    let top = Fields::new(
        doc,
        "the config",
        &[
            "agent", "vantage", "interval", "timeout", "tcp", "http", "sinks",
        ],
    )?;
    let agent = top.text("agent")?.map(|(_, t)| t);
    let vantage = top.required("vantage")?.1;
    let interval = top.duration("interval")?;
    let timeout = top.duration("timeout")?;

    let mut tcp = Vec::new();
    if let Some(node) = top.get("tcp") {
        let YamlData::Sequence(groups) = &node.data else {
            return Err((
                node,
                "`tcp` must be a list of groups (`- name: …`, `port: …`, `hosts: […]`)".into(),
            ));
        };
        for (index, group) in groups.iter().enumerate() {
            tcp.push(parse_tcp_group(group, index + 1, interval, timeout)?);
        }
    }

    if let Some(node) = top.get("http") {
        let section = Fields::new(
            node,
            "`http`",
            &["interval", "timeout", "latency_threshold", "endpoints"],
        )?;
        let list = section
            .get("endpoints")
            .ok_or_else(|| (node, "`http`: missing field `endpoints`".to_string()))?;
        *http_list = Some((
            list,
            HttpTiming {
                cycle: section.duration_or("interval", defaults::HTTP_CYCLE)?,
                timeout: section.duration_or("timeout", defaults::HTTP_TIMEOUT)?,
                latency_threshold: section
                    .duration_or("latency_threshold", defaults::LATENCY_THRESHOLD)?,
            },
        ));
    }

    let sinks = match top.get("sinks") {
        None => Sinks {
            sqlite: Some(PathBuf::from(defaults::SQLITE_PATH)),
            ..Sinks::default()
        },
        Some(node) => parse_sinks(node)?,
    };
    Ok(AgentConfig {
        agent,
        vantage,
        tcp,
        http: None,
        sinks,
    })
}

/// A duration given in the config, with the node it was written at (for rule errors).
type Given<'a, 'y> = Option<(&'a MarkedYaml<'y>, std::time::Duration)>;

fn parse_tcp_group<'a, 'y>(
    node: &'a MarkedYaml<'y>,
    number: usize,
    interval: Given<'a, 'y>,
    timeout: Given<'a, 'y>,
) -> Result<TcpGroup, Failure<'a, 'y>> {
    let group = Fields::new(
        node,
        format!("tcp group {number}"),
        &["name", "port", "hosts", "hosts_file", "interval", "timeout"],
    )?;
    let (port_node, port_text) = group.required("port")?;
    let port = netvantage_core::target::parse_port(&port_text)
        .map_err(|e| group.fail(port_node, "port", e))?;
    let name = group
        .text("name")?
        .map(|(_, t)| t)
        .unwrap_or_else(|| format!("tcp-{port}"));
    let mut hosts = Vec::new();
    for item in group.list("hosts", false)?.unwrap_or_default() {
        let text = scalar_text(item)
            .ok_or_else(|| group.fail(item, "hosts", "each host must be a string"))?;
        match parse_line(text.as_bytes(), port) {
            Ok(Some((host, port, label))) => hosts.push(Target {
                host,
                port,
                label,
                line: item.span.start.line(),
            }),
            Ok(None) => return Err(group.fail(item, "hosts", "empty host")),
            Err(problem) => return Err(group.fail(item, "hosts", problem)),
        }
    }
    let hosts_file = group.text("hosts_file")?.map(|(_, t)| PathBuf::from(t));
    if hosts.is_empty() && hosts_file.is_none() {
        return Err((
            node,
            format!("tcp group {number} ({name}): give `hosts` or `hosts_file`"),
        ));
    }
    // The group's own values win over the config's defaults; a rule broken is reported at
    // the timeout that breaks it (the group's, else the config-wide one, else the group).
    let interval = group.duration("interval")?.or(interval);
    let timeout = group.duration("timeout")?.or(timeout);
    let timing = TcpTiming::new(
        interval.map_or(defaults::TCP_INTERVAL, |(_, d)| d),
        timeout.map_or(defaults::TCP_TIMEOUT, |(_, d)| d),
        None,
    )
    .map_err(|rule| {
        let at = timeout.or(interval).map_or(node, |(n, _)| n);
        (at, format!("tcp group {number} ({name}): {rule}"))
    })?;
    Ok(TcpGroup {
        name,
        port,
        hosts,
        hosts_file,
        timing,
    })
}

fn parse_sinks<'a, 'y>(node: &'a MarkedYaml<'y>) -> Result<Sinks, Failure<'a, 'y>> {
    let sinks = Fields::new(node, "`sinks`", &["sqlite", "stdout", "kafka"])?;
    let mut retention = RetentionConfig::default();
    let sqlite = match sinks.get("sqlite") {
        None => None,
        Some(node) => match &node.data {
            YamlData::Value(Scalar::Boolean(false)) => None,
            YamlData::Value(Scalar::Boolean(true)) => Some(PathBuf::from(defaults::SQLITE_PATH)),
            _ => {
                let sqlite = Fields::new(node, "`sinks.sqlite`", &["path", "retention"])?;
                if let Some(node) = sqlite.get("retention") {
                    retention = parse_retention(node)?;
                }
                Some(PathBuf::from(
                    sqlite
                        .text("path")?
                        .map(|(_, t)| t)
                        .unwrap_or_else(|| defaults::SQLITE_PATH.into()),
                ))
            }
        },
    };
    let stdout = sinks.flag("stdout")?;
    let kafka = sinks.get("kafka").map(parse_kafka).transpose()?;
    if sqlite.is_none() && !stdout && kafka.is_none() {
        return Err((node, "`sinks`: no sink is enabled".into()));
    }
    Ok(Sinks {
        sqlite,
        sqlite_retention: retention,
        stdout,
        kafka,
    })
}

/// librdkafka properties that hold secrets: refused in `properties` and on the command line.
pub const SECRET_PROPERTIES: [&str; 4] = [
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "sasl.oauthbearer.client.secret",
];

/// Whether a librdkafka property carries a secret.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    SECRET_PROPERTIES.contains(&key.as_str())
        || key.ends_with(".password")
        || key.ends_with(".secret")
}

/// Why a secret property is refused where it was given (`where_`), and what to use instead.
pub fn secret_property_refusal(key: &str, where_: &str) -> String {
    format!(
        "{where_}: `{key}` holds a secret, which must not be written in the config or on the command line; give it in `sinks.kafka.sasl` (`password_env` / `password_file`) or `sinks.kafka.tls` (`key_password_env` / `key_password_file`)"
    )
}

/// `retention: {raw: 7d, minute: 30d, hour: 400d, day: forever, conns: 30d}`; a tier not given
/// keeps its default.
fn parse_retention<'a, 'y>(node: &'a MarkedYaml<'y>) -> Result<RetentionConfig, Failure<'a, 'y>> {
    let fields = Fields::new(
        node,
        "`sinks.sqlite.retention`",
        &["raw", "minute", "hour", "day", "conns"],
    )?;
    let keep = |field: &str| -> Result<Option<Keep>, Failure<'a, 'y>> {
        match fields.text(field)? {
            None => Ok(None),
            Some((node, text)) => text
                .parse()
                .map(Some)
                .map_err(|e: String| fields.fail(node, field, e)),
        }
    };
    Ok(RetentionConfig {
        raw: keep("raw")?,
        minute: keep("minute")?,
        hour: keep("hour")?,
        day: keep("day")?,
        conns: keep("conns")?,
    })
}

fn parse_secret<'a, 'y>(
    fields: &Fields<'a, 'y>,
    env_field: &str,
    file_field: &str,
) -> Result<Option<Secret>, Failure<'a, 'y>> {
    match (fields.text(env_field)?, fields.text(file_field)?) {
        (Some(_), Some((node, _))) => Err((
            node,
            format!(
                "{}: give `{env_field}` or `{file_field}`, not both",
                fields.what
            ),
        )),
        (Some((_, var)), None) => Ok(Some(Secret::Env(var))),
        (None, Some((_, path))) => Ok(Some(Secret::File(path.into()))),
        (None, None) => Ok(None),
    }
}

fn parse_kafka<'a, 'y>(node: &'a MarkedYaml<'y>) -> Result<KafkaSettings, Failure<'a, 'y>> {
    let kafka = Fields::new(
        node,
        "`sinks.kafka`",
        &[
            "brokers",
            "topic",
            "partitions",
            "replication",
            "tls",
            "sasl",
            "memory_records",
            "spool_dir",
            "spool_max_bytes",
            "properties",
        ],
    )?;
    let brokers = match kafka.get("brokers") {
        Some(node) if matches!(node.data, YamlData::Sequence(_)) => {
            let YamlData::Sequence(items) = &node.data else {
                unreachable!()
            };
            items
                .iter()
                .map(|item| {
                    scalar_text(item).ok_or((
                        item,
                        "`sinks.kafka`, field `brokers`: each broker must be host:port".to_string(),
                    ))
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(",")
        }
        _ => kafka.required("brokers")?.1,
    };
    let tls = match kafka.get("tls") {
        None => None,
        Some(node) => {
            let tls = Fields::new(
                node,
                "`sinks.kafka.tls`",
                &[
                    "ca_file",
                    "cert_file",
                    "key_file",
                    "key_password_env",
                    "key_password_file",
                ],
            )?;
            let path = |f: &str| -> Result<Option<PathBuf>, Failure<'a, 'y>> {
                Ok(tls.text(f)?.map(|(_, t)| PathBuf::from(t)))
            };
            let parsed = Tls {
                ca_file: path("ca_file")?,
                cert_file: path("cert_file")?,
                key_file: path("key_file")?,
                key_password: parse_secret(&tls, "key_password_env", "key_password_file")?,
            };
            if parsed.cert_file.is_some() != parsed.key_file.is_some() {
                return Err((
                    node,
                    "`sinks.kafka.tls`: a client certificate needs both `cert_file` and `key_file`"
                        .into(),
                ));
            }
            Some(parsed)
        }
    };
    let sasl = match kafka.get("sasl") {
        None => None,
        Some(node) => {
            let sasl = Fields::new(
                node,
                "`sinks.kafka.sasl`",
                &[
                    "mechanism",
                    "username",
                    "username_env",
                    "password_env",
                    "password_file",
                ],
            )?;
            let (mech_node, mechanism) = sasl.required("mechanism")?;
            let mechanism = mechanism.to_ascii_uppercase();
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
                return Err((
                    mech_node,
                    format!(
                        "`sinks.kafka.sasl`, field `mechanism`: {mechanism:?} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
                    ),
                ));
            }
            let username = match (sasl.text("username")?, sasl.text("username_env")?) {
                (Some((_, name)), None) => Secret::Literal(name),
                (None, Some((_, var))) => Secret::Env(var),
                _ => {
                    return Err((
                        node,
                        "`sinks.kafka.sasl`: give `username` or `username_env`".into(),
                    ));
                }
            };
            let password = parse_secret(&sasl, "password_env", "password_file")?.ok_or((
                node,
                "`sinks.kafka.sasl`: give `password_env` or `password_file` (never the password itself)".to_string(),
            ))?;
            Some(Sasl {
                mechanism,
                username,
                password,
            })
        }
    };
    let properties = match kafka.get("properties") {
        None => Vec::new(),
        Some(node) => {
            let YamlData::Mapping(map) = &node.data else {
                return Err((
                    node,
                    "`sinks.kafka`, field `properties`: must be a mapping of librdkafka settings"
                        .into(),
                ));
            };
            map.iter()
                .map(|(k, v)| match (scalar_text(k), scalar_text(v)) {
                    (Some(key), Some(_)) if is_secret_property(&key) => {
                        Err((k, secret_property_refusal(&key, "`sinks.kafka.properties`")))
                    }
                    (Some(k), Some(v)) => Ok((k, v)),
                    _ => Err((
                        k,
                        "`sinks.kafka.properties`: keys and values must be scalars".to_string(),
                    )),
                })
                .collect::<Result<_, _>>()?
        }
    };
    Ok(KafkaSettings {
        brokers,
        topic: kafka
            .text("topic")?
            .map(|(_, t)| t)
            .unwrap_or_else(|| "netvantage.results".into()),
        partitions: kafka.number(
            "partitions",
            defaults::KAFKA_PARTITIONS,
            |&n: &i32| n > 0,
            "a positive number",
        )?,
        replication: kafka.number(
            "replication",
            defaults::KAFKA_REPLICATION,
            |&n: &i32| n > 0,
            "a positive number",
        )?,
        tls,
        sasl,
        memory_records: kafka.number(
            "memory_records",
            defaults::KAFKA_MEMORY_RECORDS,
            |&n: &usize| n > 0,
            "a positive number",
        )?,
        spool_dir: kafka
            .text("spool_dir")?
            .map(|(_, t)| PathBuf::from(t))
            .unwrap_or_else(|| PathBuf::from(defaults::SPOOL_DIR)),
        spool_max_bytes: kafka.number(
            "spool_max_bytes",
            defaults::SPOOL_MAX_BYTES,
            |&n: &u64| n > 0,
            "a positive number of bytes",
        )?,
        properties,
    })
}

/// The agent's name when the config gives none.
pub fn default_agent_name(hostname: Option<String>) -> String {
    hostname
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "netvantage-agent".into())
}

/// A `Target` label for a group's host, for messages.
pub fn describe(host: &Host, port: u16) -> String {
    match host {
        Host::Ip(ip) if ip.is_ipv6() => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        parse_agent_config(text, "agent.yaml")
    }

    #[test]
    fn a_full_config_parses() {
        let config = parse(
            "agent: a1\nvantage: fra1\ninterval: 5s\ntcp:\n  - name: db\n    port: 5432\n    hosts: [127.0.0.1, 'db.test:6432']\n  - port: 22\n    hosts_file: hosts.txt\n    interval: 1m\nhttp:\n  interval: 30s\n  endpoints:\n    - name: home\n      url: http://127.0.0.1:8080/\nsinks:\n  stdout: true\n  kafka:\n    brokers: [127.0.0.1:9092]\n    topic: results\n    partitions: 3\n    sasl: {mechanism: scram-sha-512, username: nv, password_env: KAFKA_PASSWORD}\n    properties: {linger.ms: 20}\n",
        )
        .unwrap();
        assert_eq!(config.agent.as_deref(), Some("a1"));
        assert_eq!(config.vantage, "fra1");
        assert_eq!(config.tcp.len(), 2);
        assert_eq!(config.tcp[0].hosts.len(), 2);
        assert_eq!(config.tcp[0].hosts[1].port, 6432);
        assert_eq!(config.tcp[0].timing.interval, Duration::from_secs(5));
        assert_eq!(config.tcp[1].name, "tcp-22");
        assert_eq!(config.tcp[1].timing.interval, Duration::from_secs(60));
        assert_eq!(config.tcp[1].hosts_file, Some(PathBuf::from("hosts.txt")));
        let http = config.http.unwrap();
        assert_eq!(http.timing.cycle, Duration::from_secs(30));
        assert_eq!(http.endpoints[0].name, "home");
        assert!(config.sinks.stdout);
        assert_eq!(config.sinks.sqlite, None);
        let kafka = config.sinks.kafka.unwrap();
        assert_eq!(kafka.brokers, "127.0.0.1:9092");
        assert_eq!(kafka.partitions, 3);
        assert_eq!(
            kafka.sasl.unwrap().password,
            Secret::Env("KAFKA_PASSWORD".into())
        );
        assert_eq!(kafka.properties, vec![("linger.ms".into(), "20".into())]);
    }

    #[test]
    fn sqlite_retention_is_per_tier_with_defaults_for_the_rest() {
        let config = parse_agent_config(
            "vantage: lab\ntcp:\n  - name: a\n    port: 1\n    hosts: [127.0.0.1]\nsinks:\n  sqlite:\n    path: x.db\n    retention: {raw: 2d, hour: forever, conns: 90d}\n",
            "agent.yaml",
        )
        .unwrap();
        let retention = config.sinks.sqlite_retention;
        assert_eq!(
            retention.raw,
            Some(Keep::For(Duration::from_secs(2 * 86_400)))
        );
        assert_eq!(retention.hour, Some(Keep::Forever));
        assert_eq!((retention.minute, retention.day), (None, None));
        assert_eq!(
            retention.conns,
            Some(Keep::For(Duration::from_secs(90 * 86_400)))
        );
        let bad = parse_agent_config(
            "vantage: lab\ntcp:\n  - name: a\n    port: 1\n    hosts: [127.0.0.1]\nsinks:\n  sqlite:\n    retention: {minute: soon}\n",
            "agent.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("retention") && bad.contains("minute"), "{bad}");
    }

    #[test]
    fn sqlite_is_the_default_sink() {
        let config = parse("vantage: lab\ntcp:\n  - port: 22\n    hosts: [127.0.0.1]\n").unwrap();
        assert_eq!(config.sinks.sqlite, Some(PathBuf::from("netvantage.db")));
        assert!(config.sinks.kafka.is_none());
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let cases = [
            (
                "vantage: lab\ntcp:\n  - port: 70000\n    hosts: [a]\n",
                "agent.yaml:3:11: tcp group 1, field `port`",
            ),
            (
                "vantage: lab\ntcp:\n  - port: 22\n    hosts: [127.0.0.1, 'bad host!']\n",
                "agent.yaml:4:24: tcp group 1, field `hosts`: invalid host",
            ),
            (
                "vantage: lab\ntcp:\n  - port: 22\n    hots: [a]\n",
                "agent.yaml:4:5: tcp group 1, field `hots`: unknown field",
            ),
            (
                "tcp:\n  - port: 22\n    hosts: [a]\n",
                "agent.yaml:1:1: the config: missing field `vantage`",
            ),
            (
                "vantage: lab\ninterval: soon\ntcp:\n  - port: 22\n    hosts: [a]\n",
                "agent.yaml:2:11: the config, field `interval`",
            ),
            (
                "vantage: lab\nhttp:\n  endpoints:\n    - name: x\n      url: ftp://x/\n",
                "agent.yaml:5:",
            ),
            (
                "vantage: lab\ntcp:\n  - port: 22\n    hosts: [a]\nsinks:\n  kafka:\n    brokers: b:9092\n    sasl: {mechanism: PLAIN, username: u}\n",
                "password_env",
            ),
            // A secret in the free-form properties is refused at its line, with what to use.
            (
                "vantage: lab\ntcp:\n  - port: 22\n    hosts: [a]\nsinks:\n  kafka:\n    brokers: b:9092\n    properties:\n      linger.ms: 5\n      sasl.password: hunter2\n",
                "agent.yaml:10:7: `sinks.kafka.properties`: `sasl.password` holds a secret",
            ),
            (
                "vantage: lab\ntcp:\n  - port: 22\n    hosts: [a]\nsinks:\n  kafka:\n    brokers: b:9092\n    properties: {SSL.Key.Password: x}\n",
                "password_file",
            ),
            ("vantage: lab\n", "nothing to check"),
            // The timeout rule of `ports` holds for agent groups too, at the field's line.
            (
                "vantage: lab\ntcp:\n  - port: 22\n    hosts: [a]\n    interval: 10s\n    timeout: 30s\n",
                "agent.yaml:6:14: tcp group 1 (tcp-22): the timeout (30s) must be shorter than the interval (10s)",
            ),
            (
                "vantage: lab\ntimeout: 15s\ntcp:\n  - port: 22\n    hosts: [a]\n",
                "agent.yaml:2:10: tcp group 1 (tcp-22): the timeout (15s) must be shorter than the interval (10s)",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: got {err:?}");
        }
    }
}

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
//!   stdout: true                   # NDJSON records on stdout
//!   kafka:
//!     brokers: kafka-1:9093,kafka-2:9093
//!     topic: netvantage.results
//! ```

use netvantage_core::duration::parse_duration;
use netvantage_core::target::{Host, Target, parse_line};
use netvantage_http::config::{load_documents, position, scalar_text};
use netvantage_http::{ConfigError, Endpoint, parse_endpoint_list};
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

#[derive(Debug, Clone)]
pub struct TcpGroup {
    pub name: String,
    pub port: u16,
    pub hosts: Vec<Target>,
    /// Read by the caller, with `port` as the default port.
    pub hosts_file: Option<PathBuf>,
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct HttpSection {
    pub interval: Duration,
    pub timeout: Duration,
    pub latency_threshold: Duration,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Default)]
pub struct Sinks {
    pub sqlite: Option<PathBuf>,
    pub stdout: bool,
    pub kafka: Option<KafkaSettings>,
}

/// Where a credential comes from. Passwords may only come from the environment or a file:
/// never the command line (visible in `ps`), nor the config text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Literal(String),
    Env(String),
    File(PathBuf),
}

impl Secret {
    /// Reads the value (I/O: the environment or a file). A trailing newline in a file is not
    /// part of the secret.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            Secret::Literal(value) => Ok(value.clone()),
            Secret::Env(var) => {
                std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))
            }
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|e| format!("cannot read {}: {e}", path.display())),
        }
    }
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

pub const DEFAULT_SQLITE_PATH: &str = "netvantage.db";
const DEFAULT_TCP_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_TCP_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_HTTP_INTERVAL: Duration = Duration::from_secs(15);
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_LATENCY_THRESHOLD: Duration = Duration::from_millis(500);

type Failure<'a, 'y> = (&'a MarkedYaml<'y>, String);

/// A mapping's fields, checked against the names it may have.
struct Fields<'a, 'y> {
    node: &'a MarkedYaml<'y>,
    what: &'static str,
    fields: Vec<(String, &'a MarkedYaml<'y>)>,
}

impl<'a, 'y> Fields<'a, 'y> {
    fn new(
        node: &'a MarkedYaml<'y>,
        what: &'static str,
        known: &[&str],
    ) -> Result<Self, Failure<'a, 'y>> {
        let YamlData::Mapping(map) = &node.data else {
            return Err((node, format!("{what} must be a mapping")));
        };
        let mut fields = Vec::new();
        for (key, value) in map {
            let Some(name) = scalar_text(key) else {
                return Err((key, format!("{what}: keys must be plain names")));
            };
            if !known.contains(&name.as_str()) {
                return Err((
                    key,
                    format!(
                        "{what}: unknown field `{name}` (known: {})",
                        known.join(", ")
                    ),
                ));
            }
            fields.push((name, value));
        }
        Ok(Fields { node, what, fields })
    }

    fn get(&self, field: &str) -> Option<&'a MarkedYaml<'y>> {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, v)| *v)
    }

    fn text(&self, field: &str) -> Result<Option<(&'a MarkedYaml<'y>, String)>, Failure<'a, 'y>> {
        match self.get(field) {
            None => Ok(None),
            Some(node) => match scalar_text(node) {
                Some(text) if !text.trim().is_empty() => Ok(Some((node, text.trim().to_string()))),
                _ => Err((
                    node,
                    format!("{}, field `{field}`: must be a non-empty string", self.what),
                )),
            },
        }
    }

    fn required(&self, field: &str) -> Result<(&'a MarkedYaml<'y>, String), Failure<'a, 'y>> {
        self.text(field)?
            .ok_or_else(|| (self.node, format!("{}: missing field `{field}`", self.what)))
    }

    fn duration(&self, field: &str, default: Duration) -> Result<Duration, Failure<'a, 'y>> {
        match self.text(field)? {
            None => Ok(default),
            Some((node, text)) => match parse_duration(&text) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err((
                    node,
                    format!("{}, field `{field}`: must be more than zero", self.what),
                )),
                Err(e) => Err((node, format!("{}, field `{field}`: {e}", self.what))),
            },
        }
    }

    fn number<T: std::str::FromStr>(
        &self,
        field: &str,
        default: T,
        valid: impl Fn(&T) -> bool,
        expected: &str,
    ) -> Result<T, Failure<'a, 'y>> {
        match self.text(field)? {
            None => Ok(default),
            Some((node, text)) => match text.parse::<T>() {
                Ok(n) if valid(&n) => Ok(n),
                _ => Err((
                    node,
                    format!("{}, field `{field}`: {text:?} is not {expected}", self.what),
                )),
            },
        }
    }

    fn flag(&self, field: &str) -> Result<bool, Failure<'a, 'y>> {
        match self.get(field) {
            None => Ok(false),
            Some(node) => match &node.data {
                YamlData::Value(Scalar::Boolean(b)) => Ok(*b),
                // `stdout: {}` reads as "on" too.
                YamlData::Mapping(m) if m.is_empty() => Ok(true),
                _ => Err((
                    node,
                    format!("{}, field `{field}`: must be true or false", self.what),
                )),
            },
        }
    }
}

/// Parses and validates an agent config. `file` is used in error messages only.
pub fn parse_agent_config(text: &str, file: &str) -> Result<AgentConfig, ConfigError> {
    let error = |node: Option<&MarkedYaml>, message: String| ConfigError {
        file: file.to_string(),
        location: node.map(position),
        message,
    };
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
    if let Some((list, interval, timeout, latency_threshold)) = http_list {
        let endpoints = parse_endpoint_list(list, file)?;
        config.http = Some(HttpSection {
            interval,
            timeout,
            latency_threshold,
            endpoints,
        });
    }
    if config.tcp.is_empty() && config.http.is_none() {
        return Err(error(
            Some(doc),
            "nothing to check: add a `tcp` group or `http` endpoints".into(),
        ));
    }
    Ok(config)
}

type HttpList<'a, 'y> = Option<(&'a MarkedYaml<'y>, Duration, Duration, Duration)>;

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
    let interval = top.duration("interval", DEFAULT_TCP_INTERVAL)?;
    let timeout = top.duration("timeout", DEFAULT_TCP_TIMEOUT)?;

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
            section.duration("interval", DEFAULT_HTTP_INTERVAL)?,
            section.duration("timeout", DEFAULT_HTTP_TIMEOUT)?,
            section.duration("latency_threshold", DEFAULT_LATENCY_THRESHOLD)?,
        ));
    }

    let sinks = match top.get("sinks") {
        None => Sinks {
            sqlite: Some(PathBuf::from(DEFAULT_SQLITE_PATH)),
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

fn parse_tcp_group<'a, 'y>(
    node: &'a MarkedYaml<'y>,
    number: usize,
    interval: Duration,
    timeout: Duration,
) -> Result<TcpGroup, Failure<'a, 'y>> {
    let group = Fields::new(
        node,
        "tcp group",
        &["name", "port", "hosts", "hosts_file", "interval", "timeout"],
    )?;
    let (port_node, port_text) = group.required("port")?;
    let port = netvantage_core::target::parse_port(&port_text)
        .map_err(|e| (port_node, format!("tcp group {number}, field `port`: {e}")))?;
    let name = group
        .text("name")?
        .map(|(_, t)| t)
        .unwrap_or_else(|| format!("tcp-{port}"));
    let mut hosts = Vec::new();
    if let Some(list) = group.get("hosts") {
        let YamlData::Sequence(items) = &list.data else {
            return Err((
                list,
                format!("tcp group {number}, field `hosts`: must be a list"),
            ));
        };
        for item in items {
            let text = scalar_text(item).ok_or_else(|| {
                (
                    item,
                    format!("tcp group {number}, field `hosts`: each host must be a string"),
                )
            })?;
            match parse_line(text.as_bytes(), port) {
                Ok(Some((host, port, label))) => hosts.push(Target {
                    host,
                    port,
                    label,
                    line: item.span.start.line(),
                }),
                Ok(None) => {
                    return Err((
                        item,
                        format!("tcp group {number}, field `hosts`: empty host"),
                    ));
                }
                Err(problem) => {
                    return Err((
                        item,
                        format!("tcp group {number}, field `hosts`: {problem}"),
                    ));
                }
            }
        }
    }
    let hosts_file = group.text("hosts_file")?.map(|(_, t)| PathBuf::from(t));
    if hosts.is_empty() && hosts_file.is_none() {
        return Err((
            node,
            format!("tcp group {number} ({name}): give `hosts` or `hosts_file`"),
        ));
    }
    Ok(TcpGroup {
        name,
        port,
        hosts,
        hosts_file,
        interval: group.duration("interval", interval)?,
        timeout: group.duration("timeout", timeout)?,
    })
}

fn parse_sinks<'a, 'y>(node: &'a MarkedYaml<'y>) -> Result<Sinks, Failure<'a, 'y>> {
    let sinks = Fields::new(node, "`sinks`", &["sqlite", "stdout", "kafka"])?;
    let sqlite = match sinks.get("sqlite") {
        None => None,
        Some(node) => match &node.data {
            YamlData::Value(Scalar::Boolean(false)) => None,
            YamlData::Value(Scalar::Boolean(true)) => Some(PathBuf::from(DEFAULT_SQLITE_PATH)),
            _ => {
                let sqlite = Fields::new(node, "`sinks.sqlite`", &["path"])?;
                Some(PathBuf::from(
                    sqlite
                        .text("path")?
                        .map(|(_, t)| t)
                        .unwrap_or_else(|| DEFAULT_SQLITE_PATH.into()),
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
        stdout,
        kafka,
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
        partitions: kafka.number("partitions", 6, |&n: &i32| n > 0, "a positive number")?,
        replication: kafka.number("replication", 1, |&n: &i32| n > 0, "a positive number")?,
        tls,
        sasl,
        memory_records: kafka.number(
            "memory_records",
            100_000,
            |&n: &usize| n > 0,
            "a positive number",
        )?,
        spool_dir: kafka
            .text("spool_dir")?
            .map(|(_, t)| PathBuf::from(t))
            .unwrap_or_else(|| PathBuf::from("netvantage-spool")),
        spool_max_bytes: kafka.number(
            "spool_max_bytes",
            1 << 30,
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
        assert_eq!(config.tcp[0].interval, Duration::from_secs(5));
        assert_eq!(config.tcp[1].name, "tcp-22");
        assert_eq!(config.tcp[1].interval, Duration::from_secs(60));
        assert_eq!(config.tcp[1].hosts_file, Some(PathBuf::from("hosts.txt")));
        let http = config.http.unwrap();
        assert_eq!(http.interval, Duration::from_secs(30));
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
                "agent.yaml:4:5: tcp group: unknown field `hots`",
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
            ("vantage: lab\n", "nothing to check"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: got {err:?}");
        }
    }
}

//! Name resolution for probes: asynchronous and concurrent (each target resolves in its own
//! task, at its own slot), cached by hickory-resolver for the records' TTL, and re-asked every
//! round so a changed record is seen once its TTL expires. `--resolve` pins bypass DNS, as in
//! curl. IP literals never touch the resolver. Every probe (TCP and HTTP) resolves through
//! [`Resolver`] and parses pins with [`Pin`]'s one parser.

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use netvantage_core::target::Host;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Which address families to check for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpFamily {
    /// A records; AAAA only when there are no A records (what most clients end up using).
    #[default]
    Auto,
    V4,
    V6,
    /// Every A and AAAA record.
    Both,
}

#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Name servers to ask instead of `/etc/resolv.conf`'s (`--dns-server`).
    pub nameservers: Vec<SocketAddr>,
    /// `--resolve` pins.
    pub pins: Pins,
    pub family: IpFamily,
    /// One query's timeout.
    pub timeout: Duration,
    /// Expected number of distinct names: sizes the cache so every name stays cached for its TTL.
    pub names: usize,
}

/// The timeout of one DNS query unless told otherwise (`--dns-timeout`).
pub const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(2);

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: Vec::new(),
            pins: Pins::default(),
            family: IpFamily::Auto,
            timeout: DEFAULT_DNS_TIMEOUT,
            names: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up DNS resolution: {0}")]
pub struct DnsSetupError(String);

/// The one resolver every probe uses: pins first, then IP literals, then DNS.
pub struct Resolver {
    resolver: Option<TokioResolver>,
    pins: Pins,
}

impl Resolver {
    /// Builds the resolver. `needs_dns` false (every target is a literal or pinned) skips
    /// reading the system configuration entirely.
    pub fn new(config: DnsConfig, needs_dns: bool) -> Result<Self, DnsSetupError> {
        if !needs_dns {
            return Ok(Resolver {
                resolver: None,
                pins: config.pins,
            });
        }
        let provider = TokioRuntimeProvider::default();
        let mut builder = if config.nameservers.is_empty() {
            Resolver::system_builder(provider)?
        } else {
            let servers = config
                .nameservers
                .iter()
                .map(|server| {
                    let mut ns = NameServerConfig::udp_and_tcp(server.ip());
                    for connection in &mut ns.connections {
                        connection.port = server.port();
                    }
                    ns
                })
                .collect();
            hickory_resolver::Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                provider,
            )
        };
        let opts = builder.options_mut();
        opts.timeout = config.timeout;
        opts.attempts = 2;
        opts.cache_size = (config.names as u64).clamp(64, 2_000_000);
        opts.ip_strategy = match config.family {
            IpFamily::Auto => LookupIpStrategy::Ipv4thenIpv6,
            IpFamily::V4 => LookupIpStrategy::Ipv4Only,
            IpFamily::V6 => LookupIpStrategy::Ipv6Only,
            IpFamily::Both => LookupIpStrategy::Ipv4AndIpv6,
        };
        let resolver = builder.build().map_err(|e| DnsSetupError(e.to_string()))?;
        Ok(Resolver {
            resolver: Some(resolver),
            pins: config.pins,
        })
    }

    fn system_builder(
        provider: TokioRuntimeProvider,
    ) -> Result<hickory_resolver::ResolverBuilder<TokioRuntimeProvider>, DnsSetupError> {
        hickory_resolver::Resolver::builder(provider)
            .map_err(|e| DnsSetupError(format!("reading /etc/resolv.conf: {e}")))
    }

    /// The addresses to check for `host` on `port`, or why resolution failed (the `dns`
    /// reason's error text). A pin for this port wins over a pin for every port.
    pub async fn resolve(&self, host: &Host, port: u16) -> Result<Vec<IpAddr>, String> {
        let name = match host {
            Host::Ip(ip) => return Ok(vec![*ip]),
            Host::Name(name) => name,
        };
        if let Some(pinned) = self.pins.lookup(name, port) {
            return Ok(pinned.to_vec());
        }
        let Some(resolver) = &self.resolver else {
            return Err(format!("{name}: no resolver configured"));
        };
        // A trailing dot makes the name absolute: no search-domain guesses for fleet names.
        let absolute = format!("{name}.");
        match resolver.lookup_ip(absolute.as_str()).await {
            Ok(lookup) => {
                let mut addresses: Vec<IpAddr> = lookup.iter().collect();
                addresses.dedup();
                if addresses.is_empty() {
                    Err(format!("{name}: no addresses"))
                } else {
                    Ok(addresses)
                }
            }
            Err(err) if err.is_nx_domain() => Err(format!("{name}: NXDOMAIN")),
            Err(err) if err.is_no_records_found() => Err(format!("{name}: no address records")),
            Err(err) => Err(format!("{name}: {err}")),
        }
    }

    /// Whether resolving `host` on `port` asks the DNS (so a probe times it as a DNS phase).
    pub fn asks_dns(&self, host: &Host, port: u16) -> bool {
        Resolver::needs_dns(&self.pins, host, port)
    }

    /// Whether `host` needs the DNS (it is a name no pin covers on `port`).
    pub fn needs_dns(pins: &Pins, host: &Host, port: u16) -> bool {
        matches!(host, Host::Name(name) if pins.lookup(name, port).is_none())
    }
}

/// One `--resolve` pin: `name` (on `port`, or on every port) is `addresses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Lower-cased, without a trailing dot or brackets.
    pub host: String,
    pub port: Option<u16>,
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid --resolve {input:?}: {problem} (expected HOST:ADDR or HOST:PORT:ADDR[,ADDR...], e.g. web.example:443:127.0.0.1)"
)]
pub struct PinError {
    pub input: String,
    pub problem: &'static str,
}

impl std::str::FromStr for Pin {
    type Err = PinError;

    /// `HOST:ADDR` pins the name on every port; curl's `HOST:PORT:ADDR[,ADDR...]` on one port.
    /// Hosts and addresses may be bracketed (`[::1]`); a bare IPv6 address works too.
    fn from_str(input: &str) -> Result<Pin, PinError> {
        let fail = |problem| PinError {
            input: input.to_string(),
            problem,
        };
        let (host, rest) = match input.strip_prefix('[') {
            Some(bracketed) => {
                let (host, rest) = bracketed.split_once(']').ok_or(fail("unclosed '['"))?;
                (host, rest.strip_prefix(':').ok_or(fail("no address"))?)
            }
            None => input.split_once(':').ok_or(fail("no address"))?,
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err(fail("empty host"));
        }
        let parse_addresses = |text: &str| -> Option<Vec<IpAddr>> {
            text.split(',')
                .map(|a| a.trim_start_matches('[').trim_end_matches(']').parse().ok())
                .collect()
        };
        // `HOST:ADDR` first (an IPv6 address has colons of its own), then `HOST:PORT:ADDR`.
        if let Some(addresses) = parse_addresses(rest) {
            return Ok(Pin {
                host,
                port: None,
                addresses,
            });
        }
        let (port, addresses) = rest.split_once(':').ok_or(fail("no address"))?;
        let port = match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(fail("the port must be 1-65535")),
        };
        let addresses =
            parse_addresses(addresses).ok_or(fail("the address must be an IP address"))?;
        Ok(Pin {
            host,
            port: Some(port),
            addresses,
        })
    }
}

/// Every pin of a run. Several pins for one name (and port) make a round-robin set, checked
/// like a name with several address records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pins {
    by_name: HashMap<String, Vec<PortPin>>,
}

/// The addresses pinned for one name on one port (`None`: on every port).
type PortPin = (Option<u16>, Vec<IpAddr>);

impl Pins {
    pub fn add(&mut self, pin: Pin) {
        let entries = self.by_name.entry(pin.host).or_default();
        match entries.iter_mut().find(|(port, _)| *port == pin.port) {
            Some((_, addresses)) => {
                for address in pin.addresses {
                    if !addresses.contains(&address) {
                        addresses.push(address);
                    }
                }
            }
            None => entries.push((pin.port, pin.addresses)),
        }
    }

    /// The pinned addresses of `name` on `port`: a pin for that port, else one for every port.
    pub fn lookup(&self, name: &str, port: u16) -> Option<&[IpAddr]> {
        let entries = self.by_name.get(name)?;
        entries
            .iter()
            .find(|(p, _)| *p == Some(port))
            .or_else(|| entries.iter().find(|(p, _)| p.is_none()))
            .map(|(_, addresses)| addresses.as_slice())
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl FromIterator<Pin> for Pins {
    fn from_iter<I: IntoIterator<Item = Pin>>(iter: I) -> Pins {
        let mut pins = Pins::default();
        for pin in iter {
            pins.add(pin);
        }
        pins
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(text: &str) -> Pin {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn pins_accept_both_forms_brackets_and_lists() {
        assert_eq!(
            pin("Web.example:127.0.0.2"),
            Pin {
                host: "web.example".into(),
                port: None,
                addresses: vec![ip("127.0.0.2")]
            }
        );
        assert_eq!(pin("web:443:127.0.0.3").port, Some(443));
        assert_eq!(pin("web:[::1]").addresses, [ip("::1")]);
        assert_eq!(pin("web:80:[::1]").addresses, [ip("::1")]);
        assert_eq!(pin("web:::1").addresses, [ip("::1")]);
        assert_eq!(pin("www.x.com:8080:::1").addresses, [ip("::1")]);
        assert_eq!(
            pin("web:443:127.0.0.1,127.0.0.2").addresses,
            [ip("127.0.0.1"), ip("127.0.0.2")]
        );
        let v6_host = pin("[::2]:80:127.0.0.2");
        assert_eq!((v6_host.host.as_str(), v6_host.port), ("::2", Some(80)));
        for bad in [
            "web",
            ":1.2.3.4",
            "web:nope",
            "web:99999:1.2.3.4",
            "fetch.com:443",
            "fetch.com:0:127.0.0.1",
            "h:443:localhost",
            "[::1:80:1.2.3.4",
        ] {
            let err = bad.parse::<Pin>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn a_pin_for_the_port_wins_over_a_pin_for_every_port() {
        let pins: Pins = [
            pin("a.com:127.0.0.1"),
            pin("a.com:80:127.0.0.2"),
            pin("a.com:80:127.0.0.3"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            pins.lookup("a.com", 80),
            Some(&[ip("127.0.0.2"), ip("127.0.0.3")][..])
        );
        assert_eq!(pins.lookup("a.com", 443), Some(&[ip("127.0.0.1")][..]));
        assert_eq!(pins.lookup("b.com", 443), None);
        let port_only: Pins = [pin("c.com:443:127.0.0.4")].into_iter().collect();
        assert_eq!(
            port_only.lookup("c.com", 8443),
            None,
            "the port is honoured"
        );
    }

    #[tokio::test]
    async fn literals_and_pins_skip_dns() {
        let config = DnsConfig {
            pins: [pin("pinned.test:127.0.0.9")].into_iter().collect(),
            ..DnsConfig::default()
        };
        let resolver = Resolver::new(config, false).unwrap();
        let literal = ip("127.0.0.1");
        assert_eq!(
            resolver.resolve(&Host::Ip(literal), 80).await.unwrap(),
            vec![literal]
        );
        assert_eq!(
            resolver
                .resolve(&Host::Name("pinned.test".into()), 80)
                .await
                .unwrap(),
            vec![ip("127.0.0.9")]
        );
        assert!(
            resolver
                .resolve(&Host::Name("other.test".into()), 80)
                .await
                .is_err()
        );
    }
}

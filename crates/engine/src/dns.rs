//! Name resolution for probes: asynchronous and concurrent (each target resolves in its own
//! task, at its own slot), cached by hickory-resolver for the records' TTL, and re-asked every
//! round so a changed record is seen once its TTL expires. `--resolve` pins bypass DNS, as in
//! curl. IP literals never touch the resolver. Every probe (TCP and HTTP) resolves through
//! [`Resolver`] and parses pins with [`Pin`]'s one parser.

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
pub use netvantage_core::pin::{IpFamily, Pin, PinError, Pins};
use netvantage_core::target::Host;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(text: &str) -> Pin {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
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

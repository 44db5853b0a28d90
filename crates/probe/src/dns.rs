//! Name resolution for probes: asynchronous and concurrent (each target resolves in its own
//! task, at its own slot), cached by hickory-resolver for the records' TTL, and re-asked every
//! round so a changed record is seen once its TTL expires. `--resolve` pins bypass DNS, as in
//! curl. IP literals never touch the resolver.

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};
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

#[derive(Debug, Clone, Default)]
pub struct DnsConfig {
    /// Name servers to ask instead of `/etc/resolv.conf`'s (`--dns-server`).
    pub nameservers: Vec<SocketAddr>,
    /// `--resolve` pins: lower-case name → addresses.
    pub pins: HashMap<String, Vec<IpAddr>>,
    pub family: IpFamily,
    pub timeout: Duration,
    /// Expected number of distinct names: sizes the cache so every name stays cached for its TTL.
    pub names: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up DNS resolution: {0}")]
pub struct DnsSetupError(String);

pub struct NameResolver {
    resolver: Option<TokioResolver>,
    pins: HashMap<String, Vec<IpAddr>>,
}

impl NameResolver {
    /// Builds the resolver. `needs_dns` false (every target is a literal or pinned) skips
    /// reading the system configuration entirely.
    pub fn new(config: DnsConfig, needs_dns: bool) -> Result<Self, DnsSetupError> {
        if !needs_dns {
            return Ok(NameResolver {
                resolver: None,
                pins: config.pins,
            });
        }
        let provider = TokioRuntimeProvider::default();
        let mut builder = if config.nameservers.is_empty() {
            Resolver::builder(provider)
                .map_err(|e| DnsSetupError(format!("reading /etc/resolv.conf: {e}")))?
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
            Resolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
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
        Ok(NameResolver {
            resolver: Some(resolver),
            pins: config.pins,
        })
    }

    /// The addresses to check for `host`, or the reason resolution failed (for the `dns` reason).
    pub async fn resolve(&self, host: &Host) -> Result<Vec<IpAddr>, String> {
        let name = match host {
            Host::Ip(ip) => return Ok(vec![*ip]),
            Host::Name(name) => name,
        };
        if let Some(pinned) = self.pins.get(name) {
            return Ok(pinned.clone());
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
}

/// Parses a `--resolve` pin: `HOST:ADDR` or curl's `HOST:PORT:ADDR` (the port is accepted and
/// ignored: a pin applies to the name on every port). IPv6 addresses may be bracketed.
pub fn parse_pin(text: &str) -> Result<(String, IpAddr), String> {
    let bad = || format!("invalid --resolve {text:?}: expected HOST:ADDR or HOST:PORT:ADDR");
    let (host, rest) = text.split_once(':').ok_or_else(bad)?;
    if host.is_empty() {
        return Err(bad());
    }
    let parse_addr = |s: &str| {
        s.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
    };
    let addr = match parse_addr(rest) {
        Some(addr) => addr,
        None => {
            let (port, addr) = rest.split_once(':').ok_or_else(bad)?;
            port.parse::<u16>().map_err(|_| bad())?;
            parse_addr(addr).ok_or_else(bad)?
        }
    };
    Ok((host.trim_end_matches('.').to_ascii_lowercase(), addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_accept_both_forms_and_v6() {
        assert_eq!(
            parse_pin("Web.example:127.0.0.2").unwrap(),
            ("web.example".into(), "127.0.0.2".parse().unwrap())
        );
        assert_eq!(
            parse_pin("web:443:127.0.0.3").unwrap().1,
            "127.0.0.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            parse_pin("web:[::1]").unwrap().1,
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            parse_pin("web:80:[::1]").unwrap().1,
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            parse_pin("web:::1").unwrap().1,
            "::1".parse::<IpAddr>().unwrap()
        );
        for bad in ["web", ":1.2.3.4", "web:nope", "web:99999:1.2.3.4"] {
            assert!(parse_pin(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn literals_and_pins_skip_dns() {
        let mut config = DnsConfig::default();
        config
            .pins
            .insert("pinned.test".into(), vec!["127.0.0.9".parse().unwrap()]);
        let resolver = NameResolver::new(config, false).unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(resolver.resolve(&Host::Ip(ip)).await.unwrap(), vec![ip]);
        assert_eq!(
            resolver
                .resolve(&Host::Name("pinned.test".into()))
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            resolver
                .resolve(&Host::Name("other.test".into()))
                .await
                .is_err()
        );
    }
}

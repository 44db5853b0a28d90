//! The TCP probe: one round of one target — resolve its name, connect to every address
//! concurrently, and return one [`CheckResult`] per address (or a single `dns` failure). `ports`
//! and the agent's TCP groups both run it, so both judge hosts the same way.

use crate::dns::Resolver;
use crate::probe::Probe;
use crate::tcp::TcpProber;
use netvantage_core::clock::unix_ms_now;
use netvantage_core::target::{Host, Target};
use netvantage_core::{CheckResult, Reason};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct TcpProbe {
    resolver: Arc<Resolver>,
    prober: TcpProber,
}

impl TcpProbe {
    pub fn new(resolver: Arc<Resolver>, prober: TcpProber) -> TcpProbe {
        TcpProbe { resolver, prober }
    }
}

impl Probe for TcpProbe {
    type Target = Target;

    /// TCP checks end at their connect timeout, which a plan keeps shorter than the interval;
    /// the deadline the scheduler passes is that same instant.
    fn check(
        &self,
        target: &Target,
        _deadline: tokio::time::Instant,
    ) -> impl std::future::Future<Output = Vec<CheckResult>> + Send {
        check_target(target, &self.resolver, &self.prober)
    }

    fn timeout(&self, _target: &Target) -> Duration {
        self.prober.timeout()
    }

    fn not_started(&self, target: &Target, why: &str) -> Vec<CheckResult> {
        vec![CheckResult::tcp(
            target.label.clone(),
            None,
            unix_ms_now(),
            Duration::ZERO,
            Some((Reason::Other, why.to_string())),
        )]
    }
}

pub async fn check_target(
    target: &Target,
    resolver: &Resolver,
    prober: &TcpProber,
) -> Vec<CheckResult> {
    let ts = unix_ms_now();
    let check_one = |addr: SocketAddr| async move {
        let outcome = prober.check(addr).await;
        CheckResult::tcp(
            target.label.clone(),
            Some(addr),
            ts,
            outcome.latency,
            outcome.failure,
        )
    };
    // Most fleets are addresses: check them without the resolver. The resolver's and the
    // multi-address futures are boxed, so they do not make every probe task (which the
    // scheduler copies into place at spawn) the size of a DNS lookup: 1,184 bytes per task
    // before, 648 after.
    let ip = match &target.host {
        Host::Ip(ip) => *ip,
        Host::Name(_) => {
            let started = Instant::now();
            let addresses = match Box::pin(resolver.resolve(&target.host, target.port)).await {
                Ok(addresses) => addresses,
                Err(error) => {
                    return vec![CheckResult::tcp(
                        target.label.clone(),
                        None,
                        ts,
                        started.elapsed(),
                        Some((Reason::Dns, error)),
                    )];
                }
            };
            match addresses.as_slice() {
                [ip] => *ip,
                _ => {
                    return Box::pin(futures::future::join_all(
                        addresses
                            .into_iter()
                            .map(|ip| check_one(SocketAddr::new(ip, target.port))),
                    ))
                    .await;
                }
            }
        }
    };
    vec![check_one(SocketAddr::new(ip, target.port)).await]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{DnsConfig, Pin};
    use netvantage_core::Outcome;
    use std::time::Duration;

    #[tokio::test]
    async fn every_address_of_a_pinned_name_is_checked() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // 127.0.0.1 listens; 127.0.0.2 has no listener on that port and refuses.
        let dns = DnsConfig {
            pins: ["rr.test:127.0.0.1,127.0.0.2".parse::<Pin>().unwrap()]
                .into_iter()
                .collect(),
            ..DnsConfig::default()
        };
        let resolver = Resolver::new(dns, false).unwrap();
        let prober = TcpProber::new(8, Duration::from_secs(2));
        let target = Target {
            host: Host::Name("rr.test".into()),
            port,
            label: "rr.test".into(),
            line: 1,
        };
        let results = check_target(&target, &resolver, &prober).await;
        let outcomes: Vec<_> = results
            .iter()
            .map(|r| (r.address.unwrap().ip().to_string(), r.outcome, r.reason))
            .collect();
        assert_eq!(
            outcomes,
            vec![
                ("127.0.0.1".to_string(), Outcome::Up, None),
                (
                    "127.0.0.2".to_string(),
                    Outcome::Down,
                    Some(Reason::Refused)
                ),
            ]
        );
    }

    #[tokio::test]
    async fn unresolvable_name_is_one_dns_failure() {
        let resolver = Resolver::new(DnsConfig::default(), false).unwrap();
        let prober = TcpProber::new(8, Duration::from_secs(1));
        let target = Target {
            host: Host::Name("nope.test".into()),
            port: 80,
            label: "nope.test".into(),
            line: 1,
        };
        let results = check_target(&target, &resolver, &prober).await;
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].reason, Some(Reason::Dns));
        assert_eq!(results[0].address, None);
    }
}

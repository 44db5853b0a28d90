//! Which addresses may be blocked. A wrong block locks operators out of their own host, so the
//! rule is conservative: never loopback, never an address of this host, never an allow-listed
//! network, never something that is not a unicast source.

use crate::entry::normalize_ip;
use ipnet::IpNet;
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    Loopback,
    /// Unspecified, multicast or broadcast: not a real peer.
    NotUnicast,
    OwnAddress,
    Allowed(IpNet),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Loopback => f.write_str("it is a loopback address"),
            Refusal::NotUnicast => f.write_str("it is not a unicast address"),
            Refusal::OwnAddress => f.write_str("it is an address of this host"),
            Refusal::Allowed(net) => write!(f, "it is in --allow {net}"),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct BlockPolicy {
    allow: Vec<IpNet>,
    own: HashSet<IpAddr>,
}

impl BlockPolicy {
    pub fn new(allow: Vec<IpNet>) -> BlockPolicy {
        BlockPolicy {
            allow,
            own: HashSet::new(),
        }
    }

    /// Replaces the host's own addresses (re-read at every poll: interfaces come and go).
    pub fn set_own_addresses(&mut self, own: impl IntoIterator<Item = IpAddr>) {
        self.own = own.into_iter().map(normalize_ip).collect();
    }

    /// `Ok(address to block)` — normalised, so an IPv4-mapped source goes into the IPv4 set —
    /// or why it must not be blocked.
    pub fn check(&self, source: IpAddr) -> Result<IpAddr, Refusal> {
        let ip = normalize_ip(source);
        if ip.is_loopback() {
            return Err(Refusal::Loopback);
        }
        let not_unicast = match ip {
            IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
            IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
        };
        if not_unicast {
            return Err(Refusal::NotUnicast);
        }
        if self.own.contains(&ip) {
            return Err(Refusal::OwnAddress);
        }
        if let Some(net) = self.allow.iter().find(|net| net.contains(&ip)) {
            return Err(Refusal::Allowed(*net));
        }
        Ok(ip)
    }
}

impl BlockPolicy {
    /// The rules of [`BlockPolicy::check`] for a whole network (a ban decided by another host):
    /// refused when its first address is refused, or when it holds one of this host's
    /// addresses or touches an allow-listed network.
    pub fn check_target(&self, target: IpNet) -> Result<IpNet, Refusal> {
        let target = target.trunc();
        self.check(target.network())?;
        if target.prefix_len() < target.max_prefix_len() {
            if self.own.iter().any(|own| target.contains(own)) {
                return Err(Refusal::OwnAddress);
            }
            let loopback: IpAddr = match target {
                IpNet::V4(_) => IpAddr::from([127, 0, 0, 1]),
                IpNet::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            };
            if target.contains(&loopback) {
                return Err(Refusal::Loopback);
            }
            if let Some(net) = self
                .allow
                .iter()
                .find(|allowed| target.contains(*allowed) || allowed.contains(&target))
            {
                return Err(Refusal::Allowed(*net));
            }
        }
        Ok(target)
    }
}

impl BlockPolicy {
    /// What to ban for an address [`BlockPolicy::check`] allowed: an IPv4 address as is, an
    /// IPv6 address widened to its `/prefix6` (a scanner holds a whole /64 and walks it, as
    /// fail2ban's single-address IPv6 bans show) — but only the address when the prefix would
    /// hold one of this host's addresses or touch an allow-listed network, which a ban must
    /// never reach.
    pub fn ban_target(&self, address: IpAddr, prefix6: u8) -> IpNet {
        let single = IpNet::from(address);
        let IpAddr::V6(v6) = address else {
            return single;
        };
        let Ok(net) = ipnet::Ipv6Net::new(v6, prefix6.min(128)) else {
            return single;
        };
        let net = IpNet::V6(net.trunc());
        let reaches_own = self.own.iter().any(|own| net.contains(own));
        let reaches_allowed = self
            .allow
            .iter()
            .any(|allowed| net.contains(allowed) || allowed.contains(&net));
        if reaches_own || reaches_allowed {
            single
        } else {
            net
        }
    }
}

/// How long a ban lasts, growing for repeat offenders as fail2ban's `bantime.increment`:
/// the n-th ban of the same target lasts `base × factor^(n−1)`, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BanSchedule {
    pub base: Duration,
    /// 1 keeps every ban at `base`.
    pub factor: f64,
    pub max: Duration,
}

impl BanSchedule {
    /// `offense` counts from 1 (the first ban).
    pub fn ttl(&self, offense: u32) -> Duration {
        let max = self.max.max(self.base);
        let exponent = i32::try_from(offense.saturating_sub(1)).unwrap_or(i32::MAX);
        let scaled = self.base.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        if !scaled.is_finite() || scaled >= max.as_secs_f64() {
            max
        } else {
            Duration::from_secs_f64(scaled)
        }
    }
}

/// `--allow` values: a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a bare address (a /32 or /128).
pub fn parse_allow(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not a CIDR (e.g. 10.0.0.0/8) or an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn never_blocks_loopback_in_either_family_or_mapped_form() {
        let policy = BlockPolicy::default();
        for addr in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(policy.check(ip(addr)), Err(Refusal::Loopback), "{addr}");
        }
    }

    #[test]
    fn never_blocks_own_or_allowed_addresses() {
        let mut policy = BlockPolicy::new(vec![
            parse_allow("198.18.0.0/24").unwrap(),
            parse_allow("2001:db8::7").unwrap(),
        ]);
        policy.set_own_addresses([ip("203.0.113.10"), ip("2001:db8::1")]);
        assert_eq!(policy.check(ip("203.0.113.10")), Err(Refusal::OwnAddress));
        assert_eq!(
            policy.check(ip("::ffff:203.0.113.10")),
            Err(Refusal::OwnAddress)
        );
        assert_eq!(policy.check(ip("2001:db8::1")), Err(Refusal::OwnAddress));
        assert!(matches!(
            policy.check(ip("198.18.0.77")),
            Err(Refusal::Allowed(_))
        ));
        assert!(matches!(
            policy.check(ip("2001:db8::7")),
            Err(Refusal::Allowed(_))
        ));
        assert_eq!(policy.check(ip("2001:db8::8")), Ok(ip("2001:db8::8")));
        assert_eq!(policy.check(ip("::ffff:198.19.0.2")), Ok(ip("198.19.0.2")));
    }

    #[test]
    fn ipv6_bans_take_the_prefix_unless_it_reaches_our_own_or_allowed_addresses() {
        let mut policy = BlockPolicy::new(vec![parse_allow("2001:db8:2::7").unwrap()]);
        policy.set_own_addresses([ip("2001:db8::1")]);
        let ban = |a: &str, len| policy.ban_target(ip(a), len).to_string();
        assert_eq!(ban("2001:db8:1::2", 64), "2001:db8:1::/64");
        assert_eq!(ban("2001:db8:1:0:ffff::2", 48), "2001:db8:1::/48");
        assert_eq!(ban("2001:db8:1::2", 128), "2001:db8:1::2/128");
        // Same /64 as this host, or as an allowed address: only the scanner itself.
        assert_eq!(ban("2001:db8::2", 64), "2001:db8::2/128");
        assert_eq!(ban("2001:db8:2::9", 64), "2001:db8:2::9/128");
        assert_eq!(ban("198.18.0.2", 64), "198.18.0.2/32");
    }

    #[test]
    fn repeat_offenders_get_longer_bans_up_to_the_maximum() {
        let schedule = BanSchedule {
            base: Duration::from_secs(60),
            factor: 2.0,
            max: Duration::from_secs(300),
        };
        let ttls: Vec<u64> = (1..=5).map(|n| schedule.ttl(n).as_secs()).collect();
        assert_eq!(ttls, vec![60, 120, 240, 300, 300]);
        assert_eq!(schedule.ttl(u32::MAX), Duration::from_secs(300));
        let flat = BanSchedule {
            factor: 1.0,
            ..schedule
        };
        assert_eq!(flat.ttl(7), Duration::from_secs(60));
        let max_below_base = BanSchedule {
            max: Duration::from_secs(1),
            ..schedule
        };
        assert_eq!(max_below_base.ttl(3), Duration::from_secs(60));
    }

    #[test]
    fn never_blocks_non_unicast() {
        let policy = BlockPolicy::default();
        for addr in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1"] {
            assert_eq!(policy.check(ip(addr)), Err(Refusal::NotUnicast), "{addr}");
        }
    }

    #[test]
    fn allow_accepts_cidrs_and_bare_addresses_and_names_bad_input() {
        assert_eq!(parse_allow("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            parse_allow("192.0.2.1").unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert!(
            parse_allow("10.0.0.0/33")
                .unwrap_err()
                .contains("10.0.0.0/33")
        );
    }
}

//! Shared bans (`conns --block --shared`): a block decided by another host, read back from
//! the conns topic, is applied here through the same rules as a local one. This module is the
//! pure decision — apply it? for how long? — with the wall clock passed in.
//!
//! The record carries the ban's absolute expiry, so the nft element's timeout here is the time
//! left: the ban ends at the same moment on every host, however late this one reads it.

use crate::policy::{BlockPolicy, Refusal};
use ipnet::IpNet;
use std::net::IpAddr;

/// A block record as read from the topic (see `netvantage_core::ConnsEvent::Block`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedBan {
    /// The host that decided it.
    pub host: String,
    /// A network (`192.0.2.1/32`, `2001:db8:1::/64`) or a bare address.
    pub target: String,
    pub until_unix_ms: i64,
}

/// What to do with a shared ban.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedDecision {
    /// Ban `target` for `ttl_seconds` (the time left, rounded up to a whole second).
    Apply { target: IpNet, ttl_seconds: u64 },
    /// This host decided it (it is already in place here): nothing to do.
    OwnDecision,
    /// Its expiry has passed.
    Expired,
    /// This host's own rules forbid it (its allow list, loopback, its own addresses).
    Refused(Refusal),
    /// The target is not a network.
    Invalid,
}

/// Decides `ban` for the host named `this_host` at `now_unix_ms`.
pub fn decide(
    ban: &SharedBan,
    this_host: &str,
    policy: &BlockPolicy,
    now_unix_ms: i64,
) -> SharedDecision {
    if ban.host == this_host {
        return SharedDecision::OwnDecision;
    }
    let target = match ban.target.parse::<IpNet>() {
        Ok(net) => net.trunc(),
        Err(_) => match ban.target.parse::<IpAddr>() {
            Ok(addr) => IpNet::from(addr),
            Err(_) => return SharedDecision::Invalid,
        },
    };
    let left_ms = ban.until_unix_ms.saturating_sub(now_unix_ms);
    if left_ms <= 0 {
        return SharedDecision::Expired;
    }
    if let Err(refusal) = policy.check_target(target) {
        return SharedDecision::Refused(refusal);
    }
    let ttl_seconds = u64::try_from(left_ms).unwrap_or(0).div_ceil(1000);
    SharedDecision::Apply {
        target,
        ttl_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_allow;

    const NOW: i64 = 1_700_000_000_000;

    fn ban(host: &str, target: &str, until_unix_ms: i64) -> SharedBan {
        SharedBan {
            host: host.into(),
            target: target.into(),
            until_unix_ms,
        }
    }

    fn policy() -> BlockPolicy {
        let mut policy = BlockPolicy::new(vec![
            parse_allow("198.18.6.0/24").unwrap(),
            parse_allow("2001:db8:7::5").unwrap(),
        ]);
        policy.set_own_addresses([
            "198.18.0.2".parse().unwrap(),
            "2001:db8:9::1".parse().unwrap(),
        ]);
        policy
    }

    #[test]
    fn a_ban_from_another_host_lasts_until_its_own_expiry() {
        let decide = |b: &SharedBan| decide(b, "web-2", &policy(), NOW);
        assert_eq!(
            decide(&ban("web-1", "198.18.5.9/32", NOW + 3_600_000)),
            SharedDecision::Apply {
                target: "198.18.5.9/32".parse().unwrap(),
                ttl_seconds: 3600
            }
        );
        // Read late: only the time left, rounded up.
        assert_eq!(
            decide(&ban("web-1", "2001:db8:1::/64", NOW + 1_500)),
            SharedDecision::Apply {
                target: "2001:db8:1::/64".parse().unwrap(),
                ttl_seconds: 2
            }
        );
        assert_eq!(
            decide(&ban("web-1", "198.18.5.9", NOW + 1)),
            SharedDecision::Apply {
                target: "198.18.5.9/32".parse().unwrap(),
                ttl_seconds: 1
            }
        );
    }

    #[test]
    fn own_expired_and_invalid_bans_are_not_applied() {
        let p = policy();
        assert_eq!(
            decide(
                &ban("web-2", "198.18.5.9/32", NOW + 60_000),
                "web-2",
                &p,
                NOW
            ),
            SharedDecision::OwnDecision
        );
        for until in [NOW, NOW - 1, i64::MIN] {
            assert_eq!(
                decide(&ban("web-1", "198.18.5.9/32", until), "web-2", &p, NOW),
                SharedDecision::Expired
            );
        }
        assert_eq!(
            decide(
                &ban("web-1", "not-an-address", NOW + 60_000),
                "web-2",
                &p,
                NOW
            ),
            SharedDecision::Invalid
        );
    }

    #[test]
    fn this_hosts_allow_list_loopback_and_own_addresses_win() {
        let p = policy();
        let refusal =
            |target: &str| match decide(&ban("web-1", target, NOW + 60_000), "web-2", &p, NOW) {
                SharedDecision::Refused(refusal) => refusal,
                other => panic!("{target}: {other:?}"),
            };
        assert!(matches!(refusal("198.18.6.7/32"), Refusal::Allowed(_)));
        assert_eq!(refusal("198.18.0.2/32"), Refusal::OwnAddress);
        assert_eq!(refusal("127.0.0.1/32"), Refusal::Loopback);
        assert_eq!(refusal("::1/128"), Refusal::Loopback);
        assert_eq!(refusal("224.0.0.1/32"), Refusal::NotUnicast);
        // A prefix that holds one of this host's addresses, or touches its allow list.
        assert_eq!(refusal("2001:db8:9::/64"), Refusal::OwnAddress);
        assert!(matches!(refusal("2001:db8:7::/64"), Refusal::Allowed(_)));
        assert!(matches!(refusal("198.18.4.0/22"), Refusal::Allowed(_)));
        assert_eq!(refusal("198.18.0.0/16"), Refusal::OwnAddress);
    }
}

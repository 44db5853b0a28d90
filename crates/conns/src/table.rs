//! One poll's socket table and the diff between two polls.
//!
//! A connection is identified by its (local, remote) pair; its state may change between polls
//! (ESTABLISHED → TIME_WAIT) without making it new. Listening sockets are not connections; they
//! decide the direction: a connection whose local end is a listening port was accepted here.

use crate::entry::{SocketEntry, TcpState};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One end of a connection, packed: the address as 128 bits (IPv4 in its mapped form, which
/// no stored IPv6 address can have since entries are normalised), most significant word first,
/// and the port. Hashing and comparing integers instead of two `SocketAddr` enums is most of
/// what keeps a poll of 100,000 sockets fast (see bench/conns/RESULTS.md). Words of `u32`
/// rather than one `u128`: a `u128` is 16-byte aligned, which made a key 64 bytes and a table
/// slot 80; this way a slot is 44 bytes, and a snapshot of 100,000 connections touches half
/// the memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Endpoint {
    ip: [u32; 4],
    port: u16,
}

impl std::hash::Hash for Endpoint {
    /// Three integer writes, inlined into every listener lookup (as [`ConnKey`]'s).
    #[inline(always)]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(self.ip[0]) << 32 | u64::from(self.ip[1]));
        state.write_u64(u64::from(self.ip[2]) << 32 | u64::from(self.ip[3]));
        state.write_u16(self.port);
    }
}

impl Endpoint {
    fn pack(addr: SocketAddr) -> Endpoint {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => u128::from(v6),
        };
        Endpoint {
            ip: [
                (ip >> 96) as u32,
                (ip >> 64) as u32,
                (ip >> 32) as u32,
                ip as u32,
            ],
            port: addr.port(),
        }
    }

    fn ip128(self) -> u128 {
        self.ip
            .iter()
            .fold(0u128, |acc, word| acc << 32 | u128::from(*word))
    }

    fn unpack(self) -> SocketAddr {
        let v6 = Ipv6Addr::from(self.ip128());
        match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), self.port),
            None => SocketAddr::new(IpAddr::V6(v6), self.port),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ConnKey {
    local: Endpoint,
    remote: Endpoint,
}

impl std::hash::Hash for ConnKey {
    /// Five integer writes (consistent with the derived `Eq`: equal keys write equal words).
    /// Inlined into every lookup: once the crate grew more maps of `ConnKey`, the compiler
    /// stopped inlining it by itself and a poll of 100,000 sockets cost 6–19 % more
    /// instructions (bench/RESULTS.md, "conns before/after").
    #[inline(always)]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let pair = |ip: [u32; 4], at: usize| u64::from(ip[at]) << 32 | u64::from(ip[at + 1]);
        state.write_u64(pair(self.local.ip, 0));
        state.write_u64(pair(self.local.ip, 2));
        state.write_u64(pair(self.remote.ip, 0));
        state.write_u64(pair(self.remote.ip, 2));
        state.write_u32(u32::from(self.local.port) << 16 | u32::from(self.remote.port));
    }
}

impl ConnKey {
    fn reversed(self) -> ConnKey {
        ConnKey {
            local: self.remote,
            remote: self.local,
        }
    }
}

/// foldhash: several times faster than SipHash on these keys and still randomly seeded per
/// process, so remote peers cannot precompute colliding addresses and ports.
type Hasher = foldhash::fast::RandomState;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Accepted here: the local end is a listening port.
    Inbound,
    /// Opened from here.
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// A connection absent from the previous poll, oriented the way it was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NewConnection {
    /// The end that opened the connection.
    pub source: SocketAddr,
    /// The end that accepted it.
    pub destination: SocketAddr,
    pub direction: Direction,
    pub state: TcpState,
}

/// The table as of one poll. Cleared and refilled in place, so its allocations are reused and
/// memory stays flat across polls.
#[derive(Debug, Default)]
pub struct Snapshot {
    conns: HashMap<ConnKey, TcpState, Hasher>,
    /// Packed like the connections' ends: an integer hash per lookup, not a `SocketAddr`'s.
    listeners: HashSet<Endpoint, Hasher>,
}

impl Snapshot {
    pub fn clear(&mut self) {
        self.conns.clear();
        self.listeners.clear();
    }

    pub fn insert(&mut self, entry: SocketEntry) {
        if entry.state == TcpState::Listen {
            self.listeners.insert(Endpoint::pack(entry.local));
        } else if !(entry.remote.port() == 0 && entry.remote.ip().is_unspecified()) {
            self.conns.insert(
                ConnKey {
                    local: Endpoint::pack(entry.local),
                    remote: Endpoint::pack(entry.remote),
                },
                entry.state,
            );
        }
    }

    /// Connections (listening sockets excluded).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn contains(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        self.conns.contains_key(&ConnKey {
            local: Endpoint::pack(local),
            remote: Endpoint::pack(remote),
        })
    }

    /// Whether a socket listens on `local`: on that exact address, on the wildcard of its
    /// family, or on `[::]` (a dual-stack listener also accepts IPv4; `/proc` does not say
    /// whether it is v6-only, so we assume it is not).
    pub fn is_listening(&self, local: SocketAddr) -> bool {
        let port = local.port();
        let listens = |addr: SocketAddr| self.listeners.contains(&Endpoint::pack(addr));
        listens(local)
            || listens(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port))
            || (local.is_ipv4()
                && listens(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)))
    }

    /// Connections in `self` that `previous` did not hold, sorted by (source, destination) so
    /// output is stable. A connection between two sockets of this host is listed twice by the
    /// kernel (once per end); it is reported once, from the end that accepted it.
    pub fn new_since(&self, previous: &Snapshot, out: &mut Vec<NewConnection>) {
        out.clear();
        // A listener closed just after accepting still tells us the direction.
        let listening = |addr| self.is_listening(addr) || previous.is_listening(addr);
        for (&key, &state) in &self.conns {
            if previous.conns.contains_key(&key) {
                continue;
            }
            let (local, remote) = (key.local.unpack(), key.remote.unpack());
            let inbound = listening(local);
            let reverse = key.reversed();
            if self.conns.contains_key(&reverse) {
                let reverse_inbound = listening(remote);
                let keep = match (inbound, reverse_inbound) {
                    (true, false) => true,
                    (false, true) => false,
                    _ => key < reverse,
                };
                if !keep {
                    continue;
                }
            }
            out.push(if inbound {
                NewConnection {
                    source: remote,
                    destination: local,
                    direction: Direction::Inbound,
                    state,
                }
            } else {
                NewConnection {
                    source: local,
                    destination: remote,
                    direction: Direction::Outbound,
                    state,
                }
            });
        }
        out.sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(local: &str, remote: &str, state: TcpState) -> SocketEntry {
        SocketEntry {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            state,
        }
    }

    fn snapshot(entries: &[SocketEntry]) -> Snapshot {
        let mut s = Snapshot::default();
        entries.iter().for_each(|e| s.insert(*e));
        s
    }

    fn pairs(new: &[NewConnection]) -> Vec<(String, String, Direction)> {
        new.iter()
            .map(|c| (c.source.to_string(), c.destination.to_string(), c.direction))
            .collect()
    }

    const LISTEN_80: (&str, &str, TcpState) = ("0.0.0.0:80", "0.0.0.0:0", TcpState::Listen);

    #[test]
    fn inbound_prints_remote_to_local_and_outbound_local_to_remote() {
        let listen = entry(LISTEN_80.0, LISTEN_80.1, LISTEN_80.2);
        let before = snapshot(&[listen]);
        let after = snapshot(&[
            listen,
            entry("10.0.0.5:80", "192.0.2.56:5973", TcpState::Established),
            entry("10.0.0.5:41000", "198.51.100.7:443", TcpState::SynSent),
        ]);
        let mut out = Vec::new();
        after.new_since(&before, &mut out);
        assert_eq!(
            pairs(&out),
            vec![
                (
                    "10.0.0.5:41000".into(),
                    "198.51.100.7:443".into(),
                    Direction::Outbound
                ),
                (
                    "192.0.2.56:5973".into(),
                    "10.0.0.5:80".into(),
                    Direction::Inbound
                ),
            ]
        );
    }

    #[test]
    fn a_table_slot_is_44_bytes() {
        assert_eq!(std::mem::size_of::<(ConnKey, TcpState)>(), 44);
    }

    #[test]
    fn packed_endpoints_round_trip_both_families() {
        for text in [
            "10.0.0.5:80",
            "0.0.0.0:0",
            "[2001:db8::1]:443",
            "[::1]:22",
            "[::]:0",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(Endpoint::pack(addr).unpack(), addr);
            assert_eq!(
                Endpoint::pack(addr).ip128(),
                match addr.ip() {
                    IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
                    IpAddr::V6(v6) => u128::from(v6),
                }
            );
        }
        let after = snapshot(&[entry(
            "10.0.0.5:80",
            "[2001:db8::9]:1",
            TcpState::Established,
        )]);
        assert!(after.contains(
            "10.0.0.5:80".parse().unwrap(),
            "[2001:db8::9]:1".parse().unwrap()
        ));
        assert!(!after.contains(
            "10.0.0.5:81".parse().unwrap(),
            "[2001:db8::9]:1".parse().unwrap()
        ));
    }

    #[test]
    fn listening_sockets_are_not_connections() {
        let after = snapshot(&[entry(LISTEN_80.0, LISTEN_80.1, LISTEN_80.2)]);
        let mut out = Vec::new();
        after.new_since(&Snapshot::default(), &mut out);
        assert!(out.is_empty());
        assert!(after.is_empty());
    }

    #[test]
    fn a_state_change_is_not_a_new_connection_but_a_reappearance_is() {
        let est = entry("10.0.0.5:41000", "198.51.100.7:443", TcpState::Established);
        let tw = entry("10.0.0.5:41000", "198.51.100.7:443", TcpState::TimeWait);
        let mut out = Vec::new();
        snapshot(&[tw]).new_since(&snapshot(&[est]), &mut out);
        assert!(out.is_empty());
        snapshot(&[est]).new_since(&snapshot(&[]), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn a_connection_within_the_host_is_reported_once_from_the_accepting_end() {
        let listen = entry("127.0.0.1:8080", "0.0.0.0:0", TcpState::Listen);
        let server = entry("127.0.0.1:8080", "127.0.0.2:50000", TcpState::Established);
        let client = entry("127.0.0.2:50000", "127.0.0.1:8080", TcpState::Established);
        let mut out = Vec::new();
        snapshot(&[listen, server, client]).new_since(&snapshot(&[listen]), &mut out);
        assert_eq!(
            pairs(&out),
            vec![(
                "127.0.0.2:50000".into(),
                "127.0.0.1:8080".into(),
                Direction::Inbound
            )]
        );
        // Without any listener the pair is still one connection, not two.
        snapshot(&[server, client]).new_since(&snapshot(&[]), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn dual_stack_wildcard_listener_makes_ipv4_connections_inbound() {
        let listen = entry("[::]:22", "[::]:0", TcpState::Listen);
        let conn = entry("10.0.0.5:22", "192.0.2.9:40000", TcpState::Established);
        let mut out = Vec::new();
        snapshot(&[listen, conn]).new_since(&snapshot(&[listen]), &mut out);
        assert_eq!(out[0].direction, Direction::Inbound);
        // A listener on another address of the same port does not count.
        let other = entry("10.0.0.6:22", "0.0.0.0:0", TcpState::Listen);
        snapshot(&[other, conn]).new_since(&snapshot(&[other]), &mut out);
        assert_eq!(out[0].direction, Direction::Outbound);
    }

    #[test]
    fn a_listener_seen_only_in_the_previous_poll_still_gives_the_direction() {
        let listen = entry(LISTEN_80.0, LISTEN_80.1, LISTEN_80.2);
        let conn = entry("10.0.0.5:80", "192.0.2.56:5973", TcpState::TimeWait);
        let mut out = Vec::new();
        snapshot(&[conn]).new_since(&snapshot(&[listen]), &mut out);
        assert_eq!(out[0].direction, Direction::Inbound);
    }
}

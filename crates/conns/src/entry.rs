//! One row of the kernel's TCP socket table, whichever source it came from.

use std::net::{IpAddr, SocketAddr};

/// The kernel's TCP states (`include/net/tcp_states.h`), numbered as in `/proc/net/tcp`'s `st`
/// column and inet_diag's `idiag_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    NewSynRecv = 12,
}

impl TcpState {
    pub const ALL: [TcpState; 12] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
        TcpState::NewSynRecv,
    ];

    pub fn from_code(code: u8) -> Option<TcpState> {
        TcpState::ALL
            .get(usize::from(code).checked_sub(1)?)
            .copied()
    }

    /// The name `ss` uses, so logs can be compared with `ss -tan`.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTAB",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynRecv => "SYN-RECV",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::TimeWait => "TIME-WAIT",
            TcpState::Close => "UNCONN",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::LastAck => "LAST-ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
            TcpState::NewSynRecv => "NEW-SYN-RECV",
        }
    }
}

/// A socket as the kernel lists it. Addresses are already normalised: an IPv4-mapped IPv6
/// address (`::ffff:a.b.c.d`, what a dual-stack socket shows for an IPv4 peer) is stored as
/// IPv4, so the same connection compares equal whichever table it was listed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketEntry {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: TcpState,
}

/// `::ffff:a.b.c.d` → `a.b.c.d`; everything else unchanged.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_codes_round_trip_and_reject_unknown_codes() {
        for state in TcpState::ALL {
            assert_eq!(TcpState::from_code(state as u8), Some(state));
        }
        assert_eq!(TcpState::from_code(0), None);
        assert_eq!(TcpState::from_code(13), None);
    }

    #[test]
    fn ipv4_mapped_addresses_become_ipv4() {
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert_eq!(normalize_ip(mapped), "10.0.0.5".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(normalize_ip(v6), v6);
    }
}

//! A minimal NETLINK_SOCK_DIAG client for TCP (`inet_diag`, see `linux/inet_diag.h` and
//! `man 7 sock_diag`): one dump request for both address families (per family as a fallback),
//! records decoded in place from a reused buffer. Written against libc directly because only two
//! request layouts and one record type are needed and every byte of them is fixed by the kernel
//! ABI.

use crate::entry::{SocketEntry, TcpState, normalize_ip};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// The original inet_diag request (`struct inet_diag_req`, still served by 6.18): the
/// kernel treats it as family AF_UNSPEC, so one dump walks the tables once for IPv4 and IPv6,
/// where `SOCK_DIAG_BY_FAMILY` needs one walk per family.
const TCPDIAG_GETSOCK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_msg`: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue,
/// uid, inode.
const INET_DIAG_MSG_LEN: usize = 72;
/// nlmsghdr (16) + inet_diag_req_v2 (8 + 48-byte sockid).
const REQUEST_LEN: usize = 72;
/// nlmsghdr (16) + inet_diag_req (4 + 48-byte sockid + states + dbs).
const COMPAT_REQUEST_LEN: usize = 76;
/// The kernel fills dump messages of at most 32 KiB; twice that never truncates.
const RECV_BUF: usize = 64 * 1024;
/// States 1 (ESTABLISHED) to 12 (NEW_SYN_RECV): every state `TcpState` knows, the same set
/// `ss -a` asks for. Not `u32::MAX`: since Linux 6.5 bit 13 (`TCP_BOUND_INACTIVE`) makes the
/// kernel also walk the whole bind hash for sockets that are bound but neither listening nor
/// connected, which are never connections; at 100,000 sockets that walk was ~20 % of the dump.
pub const STATES: u32 = ((1 << 13) - 1) & !1;

#[derive(Debug)]
pub struct InetDiag {
    fd: OwnedFd,
    buf: Vec<u8>,
    seq: u32,
    /// Set when the kernel refused a [`TCPDIAG_GETSOCK`] request: dump per family instead.
    per_family: bool,
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

impl InetDiag {
    pub fn open() -> io::Result<InetDiag> {
        // SAFETY: plain socket(2) call; the result is checked before it is wrapped.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(last_error());
        }
        // SAFETY: fd is a fresh, valid descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(InetDiag {
            fd,
            buf: vec![0; RECV_BUF],
            seq: 0,
            per_family: false,
        })
    }

    /// `family` AF_UNSPEC builds the [`TCPDIAG_GETSOCK`] request (both families at once).
    fn request(&mut self, family: i32) -> [u8; COMPAT_REQUEST_LEN] {
        self.seq = self.seq.wrapping_add(1);
        let mut req = [0u8; COMPAT_REQUEST_LEN];
        let (kind, len) = if family == libc::AF_UNSPEC {
            // idiag_family (ignored by the kernel for this type), src_len, dst_len, idiag_ext 0
            // (no extensions: smaller records), the all-zero sockid, states, dbs 0.
            req[16] = libc::AF_INET as u8;
            req[68..72].copy_from_slice(&STATES.to_ne_bytes());
            (TCPDIAG_GETSOCK, COMPAT_REQUEST_LEN)
        } else {
            req[16] = family as u8;
            req[17] = libc::IPPROTO_TCP as u8;
            // idiag_ext 0 (no extensions: smaller records), pad 0, then the states.
            req[20..24].copy_from_slice(&STATES.to_ne_bytes());
            (SOCK_DIAG_BY_FAMILY, REQUEST_LEN)
        };
        req[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&kind.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        // nlmsg_pid 0: the kernel.
        req
    }

    /// Dumps every TCP socket of both families in this network namespace: one
    /// [`TCPDIAG_GETSOCK`] dump, or one dump per family if the kernel refuses that request.
    pub fn dump_all_tcp(&mut self, sink: &mut dyn FnMut(SocketEntry)) -> io::Result<()> {
        if !self.per_family {
            let mut delivered = false;
            let result = self.dump_tcp(libc::AF_UNSPEC, &mut |e| {
                delivered = true;
                sink(e)
            });
            match result {
                Err(err)
                    if !delivered
                        && matches!(
                            err.raw_os_error(),
                            Some(libc::EINVAL | libc::ENOENT | libc::EOPNOTSUPP)
                        ) =>
                {
                    self.per_family = true;
                }
                other => return other,
            }
        }
        self.dump_per_family(sink)
    }

    /// One `SOCK_DIAG_BY_FAMILY` dump for AF_INET, then one for AF_INET6.
    pub fn dump_per_family(&mut self, sink: &mut dyn FnMut(SocketEntry)) -> io::Result<()> {
        for family in [libc::AF_INET, libc::AF_INET6] {
            self.dump_tcp(family, sink)?;
        }
        Ok(())
    }

    /// Dumps every TCP socket of `family` (AF_INET or AF_INET6) in this network namespace;
    /// AF_UNSPEC dumps both families with one [`TCPDIAG_GETSOCK`] request.
    pub fn dump_tcp(&mut self, family: i32, sink: &mut dyn FnMut(SocketEntry)) -> io::Result<()> {
        let full = self.request(family);
        let req = &full[..u32_at(&full, 0) as usize];
        // SAFETY: an all-zero sockaddr_nl is valid; we then set the family (kernel = pid 0).
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: req and kernel outlive the call; lengths are theirs.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                (&raw const kernel).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(last_error());
        }
        loop {
            // SAFETY: buf is a live, writable buffer of buf.len() bytes.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                let err = last_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if parse_messages(&self.buf[..n as usize], self.seq, sink)? {
                return Ok(());
            }
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes one datagram of dump replies; `Ok(true)` once the dump is done. Records of another
/// sequence number (a stale reply) are ignored.
pub fn parse_messages(
    mut data: &[u8],
    seq: u32,
    sink: &mut dyn FnMut(SocketEntry),
) -> io::Result<bool> {
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_at(data, 0) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "truncated netlink message",
            ));
        }
        let kind = u16_at(data, 4);
        let msg_seq = u32_at(data, 8);
        let payload = &data[NLMSG_HDRLEN..len];
        if msg_seq == seq {
            match kind {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    // The kernel sends -errno; a value with no negation (i32::MIN, found by
                    // fuzzing: it panicked in debug builds) is a protocol error.
                    let errno = if payload.len() >= 4 {
                        (u32_at(payload, 0) as i32)
                            .checked_neg()
                            .unwrap_or(libc::EPROTO)
                    } else {
                        0
                    };
                    if errno != 0 {
                        return Err(io::Error::from_raw_os_error(errno));
                    }
                }
                SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => {
                    if let Some(entry) = decode_diag_msg(payload) {
                        sink(entry);
                    }
                }
                _ => {}
            }
        }
        // Messages are 4-byte aligned; the last one of a datagram may omit its padding.
        data = data.get((len + 3) & !3..).unwrap_or_default();
    }
    Ok(false)
}

/// `struct inet_diag_msg` → entry. Addresses and ports are in network byte order.
pub fn decode_diag_msg(p: &[u8]) -> Option<SocketEntry> {
    if p.len() < INET_DIAG_MSG_LEN {
        return None;
    }
    let family = i32::from(p[0]);
    let state = TcpState::from_code(p[1])?;
    let sport = u16::from_be_bytes([p[4], p[5]]);
    let dport = u16::from_be_bytes([p[6], p[7]]);
    let addr = |at: usize| -> Option<IpAddr> {
        match family {
            libc::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
                p[at],
                p[at + 1],
                p[at + 2],
                p[at + 3],
            ))),
            libc::AF_INET6 => {
                let bytes: [u8; 16] = p[at..at + 16].try_into().ok()?;
                Some(normalize_ip(IpAddr::V6(Ipv6Addr::from(bytes))))
            }
            _ => None,
        }
    };
    Some(SocketEntry {
        local: SocketAddr::new(addr(8)?, sport),
        remote: SocketAddr::new(addr(24)?, dport),
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(family: u8, state: u8, sport: u16, dport: u16, src: &[u8], dst: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; INET_DIAG_MSG_LEN];
        p[0] = family;
        p[1] = state;
        p[4..6].copy_from_slice(&sport.to_be_bytes());
        p[6..8].copy_from_slice(&dport.to_be_bytes());
        p[8..8 + src.len()].copy_from_slice(src);
        p[24..24 + dst.len()].copy_from_slice(dst);
        p
    }

    fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn diag_records_are_network_order_and_mapped_addresses_become_ipv4() {
        let v4 = record(
            libc::AF_INET as u8,
            1,
            80,
            5973,
            &[10, 0, 0, 5],
            &[192, 0, 2, 56],
        );
        let e = decode_diag_msg(&v4).unwrap();
        assert_eq!(e.local, "10.0.0.5:80".parse().unwrap());
        assert_eq!(e.remote, "192.0.2.56:5973".parse().unwrap());
        assert_eq!(e.state, TcpState::Established);
        let mapped: Ipv6Addr = "::ffff:10.162.15.225".parse().unwrap();
        let v6 = record(
            libc::AF_INET6 as u8,
            6,
            55474,
            443,
            &mapped.octets(),
            &Ipv6Addr::LOCALHOST.octets(),
        );
        let e = decode_diag_msg(&v6).unwrap();
        assert_eq!(e.local, "10.162.15.225:55474".parse().unwrap());
        assert_eq!(e.remote, "[::1]:443".parse().unwrap());
        assert_eq!(e.state, TcpState::TimeWait);
        assert!(decode_diag_msg(&v4[..40]).is_none());
    }

    #[test]
    fn a_datagram_yields_its_records_until_done_and_errors_are_reported() {
        let rec = record(
            libc::AF_INET as u8,
            1,
            80,
            5973,
            &[10, 0, 0, 5],
            &[192, 0, 2, 56],
        );
        let mut datagram = message(SOCK_DIAG_BY_FAMILY, 7, &rec);
        datagram.extend(message(SOCK_DIAG_BY_FAMILY, 6, &rec)); // stale sequence: ignored
        datagram.extend(message(SOCK_DIAG_BY_FAMILY, 7, &rec));
        let mut seen = 0;
        assert!(!parse_messages(&datagram, 7, &mut |_| seen += 1).unwrap());
        assert_eq!(seen, 2);
        datagram.extend(message(NLMSG_DONE, 7, &[0; 4]));
        assert!(parse_messages(&datagram, 7, &mut |_| {}).unwrap());
        let error = message(NLMSG_ERROR, 7, &(-libc::EPERM).to_ne_bytes());
        let err = parse_messages(&error, 7, &mut |_| {}).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        // Found by fuzzing (fuzz/regressions/inet_diag): an error code with no negation.
        let bogus = message(NLMSG_ERROR, 7, &i32::MIN.to_ne_bytes());
        let err = parse_messages(&bogus, 7, &mut |_| {}).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPROTO));
        let mut truncated = message(SOCK_DIAG_BY_FAMILY, 7, &rec);
        truncated.truncate(30);
        assert!(parse_messages(&truncated, 7, &mut |_| {}).is_err());
    }

    #[test]
    fn a_live_dump_lists_a_listener_of_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut diag = InetDiag::open().unwrap();
        let mut found = false;
        diag.dump_tcp(libc::AF_INET, &mut |e| {
            found |= e.local == addr && e.state == TcpState::Listen
        })
        .unwrap();
        assert!(found, "{addr} not in the inet_diag dump");
    }

    #[test]
    fn states_are_those_of_ss_without_bound_inactive() {
        assert_eq!(STATES, 0x1ffe);
        for state in TcpState::ALL {
            assert_ne!(STATES & (1 << state as u32), 0, "{state:?}");
        }
        assert_eq!(
            STATES & (1 << 13),
            0,
            "TCP_BOUND_INACTIVE walks the bind hash"
        );
    }

    #[test]
    fn the_one_request_dump_lists_the_same_sockets_as_one_dump_per_family() {
        use std::collections::BTreeSet;
        use std::net::{TcpListener, TcpStream};
        // Sockets of this process only: the host table changes under a parallel test run.
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(v4.local_addr().unwrap()).unwrap();
        let (server, _) = v4.accept().unwrap();
        let v6 = TcpListener::bind("[::1]:0").ok();
        let mut ours: Vec<SocketAddr> =
            vec![v4.local_addr().unwrap(), client.local_addr().unwrap()];
        ours.extend(v6.as_ref().map(|l| l.local_addr().unwrap()));
        let mine = |e: &SocketEntry| ours.contains(&e.local) || ours.contains(&e.remote);

        let mut diag = InetDiag::open().unwrap();
        let mut one = BTreeSet::new();
        diag.dump_all_tcp(&mut |e| {
            if mine(&e) {
                one.insert(format!("{} {} {:?}", e.local, e.remote, e.state));
            }
        })
        .unwrap();
        assert!(!diag.per_family, "the kernel refused TCPDIAG_GETSOCK");
        let mut per_family = BTreeSet::new();
        diag.dump_per_family(&mut |e| {
            if mine(&e) {
                per_family.insert(format!("{} {} {:?}", e.local, e.remote, e.state));
            }
        })
        .unwrap();
        assert_eq!(one, per_family);
        // Listener, both ends of the connection, and the IPv6 listener when there is one.
        assert_eq!(one.len(), 3 + usize::from(v6.is_some()), "{one:?}");
        drop((client, server));
    }
}

//! A small decoder for conntrack's netlink messages (ctnetlink, `linux/netfilter/nfnetlink*.h`):
//! the events of the `NFNLGRP_CONNTRACK_{NEW,UPDATE,DESTROY}` groups and the replies of a table
//! dump, which share one layout. Pure: bytes in, [`CtMessage`]s out, so it is tested on bytes
//! captured from a real kernel. Only what `conns` needs is decoded (the original tuple, TCP or
//! not); everything else is skipped by length, as netlink's rules allow.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// NLM_F_CREATE: set on the event of a conntrack entry that was just created.
const NLM_F_CREATE: u16 = 0x400;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const NLA_TYPE_MASK: u16 = 0x3fff;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const IPPROTO_TCP: u8 = 6;

/// The netlink multicast groups (`NFNLGRP_CONNTRACK_*`) as a `nl_groups` bind mask.
pub const GROUP_NEW: u32 = 1 << 0;
pub const GROUP_UPDATE: u32 = 1 << 1;
pub const GROUP_DESTROY: u32 = 1 << 2;

/// A TCP flow as conntrack keys it: its original direction, opener first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    pub source: SocketAddr,
    pub destination: SocketAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtKind {
    /// A new entry (an event with NLM_F_CREATE).
    New,
    /// A change to an entry (with `ct event set new,reply,destroy`: its first reply).
    Update,
    Destroy,
    /// One entry of a table dump.
    Dumped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtMessage {
    pub kind: CtKind,
    pub flow: Flow,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated netlink message ({0} bytes left)")]
    Truncated(usize),
    /// An NLMSG_ERROR reply; the errno is positive.
    #[error("the kernel answered with error {0}")]
    Kernel(i32),
}

/// What one datagram held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// NLMSG_DONE was seen: a dump is complete.
    pub done: bool,
    /// Conntrack messages that were not TCP (UDP, ICMP …), skipped.
    pub other_protocols: u64,
}

fn u16_ne(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_ne(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// netlink attributes are padded to 4 bytes.
fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// Iterates the attributes in `data` as (type without flags, payload).
fn attributes(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = usize::from(u16_ne(data, 0));
        if len < 4 || len > data.len() {
            return None;
        }
        let kind = u16_ne(data, 2) & NLA_TYPE_MASK;
        let payload = &data[4..len];
        data = &data[align4(len).min(data.len())..];
        Some((kind, payload))
    })
}

fn find(data: &[u8], kind: u16) -> Option<&[u8]> {
    attributes(data).find(|(k, _)| *k == kind).map(|(_, p)| p)
}

/// The original tuple, if it is TCP.
fn tcp_flow(attrs: &[u8]) -> Option<Flow> {
    let tuple = find(attrs, CTA_TUPLE_ORIG)?;
    let proto = find(tuple, CTA_TUPLE_PROTO)?;
    if find(proto, CTA_PROTO_NUM)?.first() != Some(&IPPROTO_TCP) {
        return None;
    }
    let port = |kind| {
        let b = find(proto, kind)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    };
    let ip = find(tuple, CTA_TUPLE_IP)?;
    let addr = |v4, v6| -> Option<IpAddr> {
        if let Some(b) = find(ip, v4) {
            let octets: [u8; 4] = b.get(..4)?.try_into().ok()?;
            return Some(IpAddr::V4(Ipv4Addr::from(octets)));
        }
        let octets: [u8; 16] = find(ip, v6)?.get(..16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(octets)))
    };
    Some(Flow {
        source: SocketAddr::new(
            addr(CTA_IP_V4_SRC, CTA_IP_V6_SRC)?,
            port(CTA_PROTO_SRC_PORT)?,
        ),
        destination: SocketAddr::new(
            addr(CTA_IP_V4_DST, CTA_IP_V6_DST)?,
            port(CTA_PROTO_DST_PORT)?,
        ),
    })
}

/// Decodes every message of one datagram, handing TCP flows to `sink`.
pub fn decode(mut data: &[u8], sink: &mut dyn FnMut(CtMessage)) -> Result<Decoded, DecodeError> {
    let mut decoded = Decoded::default();
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_ne(data, 0) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(DecodeError::Truncated(data.len()));
        }
        let (message, rest) = data.split_at(len);
        data = &rest[(align4(len) - len).min(rest.len())..];
        let kind = u16_ne(message, 4);
        let flags = u16_ne(message, 6);
        match kind {
            NLMSG_DONE => {
                decoded.done = true;
                continue;
            }
            NLMSG_ERROR => {
                let errno = message
                    .get(NLMSG_HDRLEN..NLMSG_HDRLEN + 4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                // errno 0 is an acknowledgement, not an error.
                if errno != 0 {
                    // A code with no negation (i32::MIN) is no errno: a protocol error.
                    return Err(DecodeError::Kernel(
                        errno.checked_neg().unwrap_or(libc::EPROTO),
                    ));
                }
                continue;
            }
            _ => {}
        }
        if kind >> 8 != NFNL_SUBSYS_CTNETLINK {
            continue;
        }
        let ct_kind = match (kind & 0xff, flags & NLM_F_CREATE != 0) {
            (IPCTNL_MSG_CT_DELETE, _) => CtKind::Destroy,
            (IPCTNL_MSG_CT_NEW, true) => CtKind::New,
            // A dump reply carries NLM_F_MULTI; an event without NLM_F_CREATE is an update.
            (IPCTNL_MSG_CT_NEW, false) if flags & 0x2 != 0 => CtKind::Dumped,
            (IPCTNL_MSG_CT_NEW, false) => CtKind::Update,
            _ => continue,
        };
        let Some(attrs) = message.get(NLMSG_HDRLEN + NFGENMSG_LEN..) else {
            continue;
        };
        match tcp_flow(attrs) {
            Some(flow) => sink(CtMessage {
                kind: ct_kind,
                flow,
            }),
            None => decoded.other_protocols += 1,
        }
    }
    Ok(decoded)
}

/// The request for a dump of the whole conntrack table (every family).
pub fn dump_request(seq: u32) -> [u8; NLMSG_HDRLEN + NFGENMSG_LEN] {
    let mut req = [0u8; NLMSG_HDRLEN + NFGENMSG_LEN];
    req[0..4].copy_from_slice(&((NLMSG_HDRLEN + NFGENMSG_LEN) as u32).to_ne_bytes());
    let kind = NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET;
    req[4..6].copy_from_slice(&kind.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nfgenmsg: family AF_UNSPEC (all), version NFNETLINK_V0, res_id 0.
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Captured on kernel 6.18 (x86_64, little endian) in a namespace with
    /// `ct state new ct event set new,reply,destroy`: a connect() from 127.0.0.1:54574 to the
    /// closed port 81 — NEW, then DESTROY as soon as the RST went back.
    const REFUSED_NEW: &str = "c4000000000100060000000000000000020000003400018014000180080001007f000001080002007f0000011c000280050001000600000006000200d52e000006000300005100003400028014000180080001007f000001080002007f0000011c0002800500010006000000060002000051000006000300d52e000008000c008424b82008000300000000080800070000000078300004802c0001800500010001000000050002000a000000050003000000000006000400030000000600050000000000";
    const REFUSED_DESTROY: &str = "a4000000020100000000000000000000020000003400018014000180080001007f000001080002007f0000011c000280050001000600000006000200d52e000006000300005100003400028014000180080001007f000001080002007f0000011c0002800500010006000000060002000051000006000300d52e000008000c008424b82008000300000002080800070000000078100004800c0001800500010008000000";
    /// IPv6: [::1]:47960 → [::1]:82 (closed).
    const REFUSED6_NEW: &str = "f40000000001000600000000000000000a0000004c0001802c000180140003000000000000000000000000000000000114000400000000000000000000000000000000011c000280050001000600000006000200bb58000006000300005200004c0002802c000180140003000000000000000000000000000000000114000400000000000000000000000000000000011c0002800500010006000000060002000052000006000300bb58000008000c00053ee18208000300000000080800070000000078300004802c0001800500010001000000050002000a000000050003000000000006000400030000000600050000000000";

    fn decode_all(bytes: &[u8]) -> (Vec<CtMessage>, Decoded) {
        let mut out = Vec::new();
        let decoded = decode(bytes, &mut |m| out.push(m)).unwrap();
        (out, decoded)
    }

    #[test]
    fn captured_new_and_destroy_events_decode_to_the_original_tuple() {
        let flow = Flow {
            source: "127.0.0.1:54574".parse().unwrap(),
            destination: "127.0.0.1:81".parse().unwrap(),
        };
        let (new, _) = decode_all(&hex(REFUSED_NEW));
        assert_eq!(
            new,
            vec![CtMessage {
                kind: CtKind::New,
                flow
            }]
        );
        let (destroy, _) = decode_all(&hex(REFUSED_DESTROY));
        assert_eq!(
            destroy,
            vec![CtMessage {
                kind: CtKind::Destroy,
                flow
            }]
        );
        let (v6, _) = decode_all(&hex(REFUSED6_NEW));
        assert_eq!(v6[0].flow.source, "[::1]:47960".parse().unwrap());
        assert_eq!(v6[0].flow.destination, "[::1]:82".parse().unwrap());
    }

    #[test]
    fn several_messages_in_one_datagram_and_the_end_of_a_dump() {
        let mut bytes = hex(REFUSED_NEW);
        bytes.extend(hex(REFUSED_DESTROY));
        // NLMSG_DONE with its 4-byte payload.
        let mut done = vec![20, 0, 0, 0, 3, 0, 2, 0];
        done.extend([0; 12]);
        bytes.extend(done);
        let (messages, decoded) = decode_all(&bytes);
        assert_eq!(messages.len(), 2);
        assert!(decoded.done);
    }

    #[test]
    fn a_dump_reply_and_an_update_are_told_apart_by_their_flags() {
        let mut dumped = hex(REFUSED_NEW);
        dumped[6..8].copy_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
        assert_eq!(decode_all(&dumped).0[0].kind, CtKind::Dumped);
        let mut update = hex(REFUSED_NEW);
        update[6..8].copy_from_slice(&0u16.to_ne_bytes());
        assert_eq!(decode_all(&update).0[0].kind, CtKind::Update);
    }

    #[test]
    fn udp_is_counted_not_reported_and_garbage_is_an_error_not_a_panic() {
        let mut udp = hex(REFUSED_NEW);
        // The first CTA_PROTO_NUM payload byte (6 → 17).
        let at = 20 + 4 + 20 + 4 + 4;
        assert_eq!(udp[at], 6, "offset of the protocol number");
        udp[at] = 17;
        let (messages, decoded) = decode_all(&udp);
        assert!(messages.is_empty());
        assert_eq!(decoded.other_protocols, 1);
        let bytes = hex(REFUSED_NEW);
        for cut in [17, 40, 100] {
            assert!(decode(&bytes[..cut], &mut |_| {}).is_err());
        }
        let mut error = vec![36, 0, 0, 0, 2, 0, 0, 0];
        error.extend([0; 8]);
        error.extend((-1i32).to_ne_bytes());
        error.extend([0; 16]);
        assert_eq!(
            decode(&error, &mut |_| {}).unwrap_err(),
            DecodeError::Kernel(1)
        );
        // The fuzz target's finding: i32::MIN has no negation.
        error[16..20].copy_from_slice(&i32::MIN.to_ne_bytes());
        assert_eq!(
            decode(&error, &mut |_| {}).unwrap_err(),
            DecodeError::Kernel(libc::EPROTO)
        );
    }

    #[test]
    fn the_dump_request_asks_ctnetlink_for_every_family() {
        let req = dump_request(7);
        assert_eq!(u32_ne(&req, 0) as usize, req.len());
        assert_eq!(u16_ne(&req, 4), 0x101);
        assert_eq!(u16_ne(&req, 6), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(u32_ne(&req, 8), 7);
        assert_eq!(req[16], 0);
    }
}

//! Decoding of `/proc/net/tcp` and `/proc/net/tcp6`.
//!
//! The kernel prints each address as the raw in-memory words of a network-order address
//! (`%08X` of a `__be32`), so on the little-endian hosts we run on `0100007F` is 127.0.0.1: the
//! word's bytes must be taken in host order. IPv6 is four such words. Ports, in contrast, are
//! printed after `ntohs`, so `0050` is 80. Getting either wrong is the classic bug of this task.

use crate::entry::{SocketEntry, TcpState, normalize_ip};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Fields up to and including `inode`, which every kernel since 2.6 prints.
const MIN_FIELDS: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("expected at least {MIN_FIELDS} fields, found {0}")]
    TooFewFields(usize),
    #[error("field {field}: {value:?} is not valid")]
    BadField { field: &'static str, value: String },
    #[error("line is not ASCII text")]
    NotText,
}

fn bad(field: &'static str, value: &[u8]) -> LineError {
    LineError::BadField {
        field,
        value: String::from_utf8_lossy(value).into_owned(),
    }
}

fn hex_digit(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'a'..=b'f' => Some(u32::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(b - b'A' + 10)),
        _ => None,
    }
}

/// Exactly `digits.len()` hex digits (at most 8) → value. No sign, no prefix, no spaces.
fn hex_u32(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    digits
        .iter()
        .try_fold(0u32, |acc, &b| Some((acc << 4) | hex_digit(b)?))
}

/// `0100007F` → 127.0.0.1 (on a little-endian host), 32 hex digits → IPv6 from four words.
pub fn decode_address(hex: &[u8]) -> Option<IpAddr> {
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(hex_u32(hex)?.to_ne_bytes()))),
        32 => {
            let mut bytes = [0u8; 16];
            for (word, out) in hex.chunks_exact(8).zip(bytes.chunks_exact_mut(4)) {
                out.copy_from_slice(&hex_u32(word)?.to_ne_bytes());
            }
            Some(normalize_ip(IpAddr::V6(Ipv6Addr::from(bytes))))
        }
        _ => None,
    }
}

/// `ADDR:PORT` as printed by the kernel → socket address (the port is big-endian hex).
pub fn decode_endpoint(field: &[u8]) -> Option<SocketAddr> {
    let colon = field.iter().position(|&b| b == b':')?;
    let (addr, port) = (&field[..colon], &field[colon + 1..]);
    if port.len() != 4 {
        return None;
    }
    let port = u16::try_from(hex_u32(port)?).ok()?;
    Some(SocketAddr::new(decode_address(addr)?, port))
}

/// One data line (not the header) → entry.
pub fn parse_line(line: &[u8]) -> Result<SocketEntry, LineError> {
    if !line.is_ascii() {
        return Err(LineError::NotText);
    }
    let mut fields = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let mut take = || fields.next();
    let (Some(sl), Some(local), Some(remote), Some(state)) = (take(), take(), take(), take())
    else {
        return Err(LineError::TooFewFields(count_fields(line)));
    };
    // Only whether enough fields follow matters; don't walk the rest of a long line.
    let rest = fields.take(MIN_FIELDS - 4).count();
    if 4 + rest < MIN_FIELDS {
        return Err(LineError::TooFewFields(4 + rest));
    }
    match sl.split_last() {
        Some((b':', digits)) if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => {}
        _ => return Err(bad("sl", sl)),
    }
    let local = decode_endpoint(local).ok_or_else(|| bad("local_address", local))?;
    let remote = decode_endpoint(remote).ok_or_else(|| bad("rem_address", remote))?;
    let state = (state.len() == 2)
        .then(|| hex_u32(state))
        .flatten()
        .and_then(|code| TcpState::from_code(u8::try_from(code).ok()?))
        .ok_or_else(|| bad("st", state))?;
    Ok(SocketEntry {
        local,
        remote,
        state,
    })
}

fn count_fields(line: &[u8]) -> usize {
    line.split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .count()
}

/// What one file held besides its entries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TableStats {
    pub entries: u64,
    pub malformed: u64,
    /// The first malformed line (1-based number and reason), so a log can name it.
    pub first_malformed: Option<(usize, LineError)>,
}

/// Parses a whole file. The header (the first line, if it names `local_address`) and blank
/// lines are skipped; a malformed line is counted and skipped, never fatal, because a kernel
/// with an unexpected format should degrade to missed entries, not a dead monitor.
pub fn parse_table(text: &[u8], mut sink: impl FnMut(SocketEntry)) -> TableStats {
    let mut stats = TableStats::default();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if index == 0 && line.windows(13).any(|w| w == b"local_address") {
            continue;
        }
        match parse_line(line) {
            Ok(entry) => {
                stats.entries += 1;
                sink(entry);
            }
            Err(err) => {
                stats.malformed += 1;
                stats.first_malformed.get_or_insert((index + 1, err));
            }
        }
    }
    stats
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    fn endpoint(text: &str) -> SocketAddr {
        decode_endpoint(text.as_bytes()).unwrap()
    }

    #[test]
    fn port_is_big_endian_address_is_host_order() {
        assert_eq!(
            endpoint("FEA9FEA9:0050"),
            "169.254.169.254:80".parse().unwrap()
        );
        assert_eq!(
            endpoint("E10FA20A:D8B2"),
            "10.162.15.225:55474".parse().unwrap()
        );
        assert_eq!(endpoint("0100007F:0035"), "127.0.0.1:53".parse().unwrap());
    }

    #[test]
    fn the_widely_copied_wrong_pairing_is_not_reproduced() {
        // 0664A8C0 is 192.168.100.6, not 10.162.15.225; port 0050 is 80, never 20480.
        assert_eq!(
            endpoint("0664A8C0:1FFE"),
            "192.168.100.6:8190".parse().unwrap()
        );
        assert_ne!(endpoint("FEA9FEA9:0050").port(), 20480);
    }

    #[test]
    fn ipv6_is_four_host_order_words() {
        assert_eq!(
            endpoint("00000000000000000000000001000000:0016"),
            "[::1]:22".parse().unwrap()
        );
        assert_eq!(
            endpoint("B80D0120000000000000000001000000:01BB"),
            "[2001:db8::1]:443".parse().unwrap()
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_prints_as_ipv4() {
        assert_eq!(
            endpoint("0000000000000000FFFF0000E10FA20A:D8B2"),
            "10.162.15.225:55474".parse().unwrap()
        );
    }

    #[test]
    fn malformed_fields_are_rejected_with_the_field_name() {
        let good = "   1: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 20185 1 0000000000000000 100 0 0 10 0";
        assert!(parse_line(good.as_bytes()).is_ok());
        let cases = [
            (
                good.replace("0100007F:0035", "0100007:0035"),
                "local_address",
            ),
            (
                good.replace("0100007F:0035", "0100007F:35"),
                "local_address",
            ),
            (
                good.replace("00000000:0000 0A", "0000000G:0000 0A"),
                "rem_address",
            ),
            (good.replace(" 0A ", " 0D "), "st"),
            (good.replace(" 0A ", " 00 "), "st"),
            (good.replace("   1:", "   1"), "sl"),
            (
                good.replace("0100007F:0035", "0100007F:+035"),
                "local_address",
            ),
        ];
        for (line, field) in cases {
            match parse_line(line.as_bytes()) {
                Err(LineError::BadField { field: got, .. }) => assert_eq!(got, field, "{line}"),
                other => panic!("{line}: expected bad {field}, got {other:?}"),
            }
        }
        assert_eq!(
            parse_line(b"   1: 0100007F:0035 00000000:0000 0A"),
            Err(LineError::TooFewFields(4))
        );
        assert_eq!(parse_line("   1: é".as_bytes()), Err(LineError::NotText));
    }

    #[test]
    fn table_skips_header_and_counts_malformed_lines() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 20185 1 0000000000000000 100 0 0 10 0\n\
garbage\n\
\n\
   1: 0100007F:1F90 0100007F:D2C4 06 00000000:00000000 03:00001718 00000000     0        0 0 3 0000000000000000\n";
        let mut entries = Vec::new();
        let stats = parse_table(text.as_bytes(), |e| entries.push(e));
        assert_eq!(stats.entries, 2);
        assert_eq!(stats.malformed, 1);
        assert_eq!(stats.first_malformed, Some((3, LineError::TooFewFields(1))));
        assert_eq!(entries[1].state, TcpState::TimeWait);
        assert_eq!(entries[1].remote, "127.0.0.1:53956".parse().unwrap());
    }

    proptest::proptest! {
        #[test]
        fn any_ipv4_endpoint_round_trips(a: u8, b: u8, c: u8, d: u8, port: u16) {
            let word = u32::from_le_bytes([a, b, c, d]);
            let text = format!("{word:08X}:{port:04X}");
            let expected = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port);
            proptest::prop_assert_eq!(decode_endpoint(text.as_bytes()), Some(expected));
        }

        #[test]
        fn arbitrary_bytes_never_panic(line: Vec<u8>) {
            let _ = parse_line(&line);
            let _ = parse_table(&line, |_| {});
        }
    }
}

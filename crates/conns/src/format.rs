//! The output lines. Pure: the timestamp is passed in as Unix seconds plus a UTC offset.

use crate::scan::ScanAlert;
use crate::table::NewConnection;
use ipnet::IpNet;
use std::fmt::Write;
use time::{OffsetDateTime, UtcOffset, macros::format_description};

/// `2021-04-28 15:28:05` at the given offset from UTC (0 for UTC).
pub fn timestamp(unix_seconds: i64, offset_seconds: i32) -> String {
    let offset = UtcOffset::from_whole_seconds(offset_seconds).unwrap_or(UtcOffset::UTC);
    let when = OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset);
    when.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

/// `<ts>: New connection: 192.0.2.56:5973 -> 10.0.0.5:80` (opener first).
pub fn new_connection(ts: &str, conn: &NewConnection) -> String {
    format!(
        "{ts}: New connection: {} -> {}",
        conn.source, conn.destination
    )
}

/// `<ts>: Port scan detected: 192.0.2.56 -> 10.0.0.5 on ports 80,81,82,83`, followed by
/// ` (3 closed)` when the source of events saw which attempts were refused.
pub fn port_scan(ts: &str, alert: &ScanAlert) -> String {
    let mut line = format!("{ts}: Port scan detected: {} -> ", alert.source);
    join(&mut line, &alert.destinations);
    line.push_str(" on ports ");
    join(&mut line, &alert.ports);
    if let Some(closed) = alert.closed {
        let _ = write!(line, " ({closed} closed)");
    }
    line
}

/// `<ts>: Blocked 192.0.2.56 for 3600s`; an IPv6 prefix ban names the prefix
/// (`Blocked 2001:db8:1::/64 for 3600s`).
pub fn blocked(ts: &str, target: IpNet, ttl_seconds: u64) -> String {
    format!("{ts}: Blocked {} for {ttl_seconds}s", ban_target(target))
}

/// A ban's target as logs and lines show it: a single address bare, a prefix as a CIDR.
pub fn ban_target(target: IpNet) -> String {
    if target.prefix_len() == target.max_prefix_len() {
        target.addr().to_string()
    } else {
        target.to_string()
    }
}

fn join<T: std::fmt::Display>(out: &mut String, items: &[T]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{item}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::TcpState;
    use crate::table::Direction;

    #[test]
    fn lines_match_the_documented_format() {
        let ts = timestamp(1_619_623_685, 0);
        assert_eq!(ts, "2021-04-28 15:28:05");
        let conn = NewConnection {
            source: "192.0.2.56:5973".parse().unwrap(),
            destination: "10.0.0.5:80".parse().unwrap(),
            direction: Direction::Inbound,
            state: TcpState::Established,
        };
        assert_eq!(
            new_connection(&ts, &conn),
            "2021-04-28 15:28:05: New connection: 192.0.2.56:5973 -> 10.0.0.5:80"
        );
        let alert = ScanAlert {
            source: "192.0.2.56".parse().unwrap(),
            destinations: vec!["10.0.0.5".parse().unwrap()],
            ports: vec![80, 81, 82, 83],
            closed: None,
        };
        assert_eq!(
            port_scan(&ts, &alert),
            "2021-04-28 15:28:05: Port scan detected: 192.0.2.56 -> 10.0.0.5 on ports 80,81,82,83"
        );
        let refused = ScanAlert {
            closed: Some(3),
            ..alert
        };
        assert!(port_scan(&ts, &refused).ends_with("on ports 80,81,82,83 (3 closed)"));
        assert_eq!(
            blocked(&ts, "2001:db8::2/128".parse().unwrap(), 60),
            "2021-04-28 15:28:05: Blocked 2001:db8::2 for 60s"
        );
        assert_eq!(
            blocked(&ts, "2001:db8:1::/64".parse().unwrap(), 60),
            "2021-04-28 15:28:05: Blocked 2001:db8:1::/64 for 60s"
        );
    }

    #[test]
    fn local_time_applies_the_offset() {
        assert_eq!(timestamp(1_619_623_685, 2 * 3600), "2021-04-28 17:28:05");
        assert_eq!(
            timestamp(1_619_623_685, -(5 * 3600 + 1800)),
            "2021-04-28 09:58:05"
        );
    }

    #[test]
    fn ipv6_endpoints_are_bracketed() {
        let conn = NewConnection {
            source: "[2001:db8::2]:40000".parse().unwrap(),
            destination: "[2001:db8::1]:22".parse().unwrap(),
            direction: Direction::Inbound,
            state: TcpState::SynRecv,
        };
        assert!(new_connection("t", &conn).ends_with("[2001:db8::2]:40000 -> [2001:db8::1]:22"));
    }
}

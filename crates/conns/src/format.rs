//! The output lines. Pure: the timestamp is passed in as Unix seconds plus a UTC offset.

use crate::scan::ScanAlert;
use crate::table::NewConnection;
use std::fmt::Write;
use std::net::IpAddr;
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

/// `<ts>: Port scan detected: 192.0.2.56 -> 10.0.0.5 on ports 80,81,82,83`.
pub fn port_scan(ts: &str, alert: &ScanAlert) -> String {
    let mut line = format!("{ts}: Port scan detected: {} -> ", alert.source);
    join(&mut line, &alert.destinations);
    line.push_str(" on ports ");
    join(&mut line, &alert.ports);
    line
}

/// `<ts>: Blocked 192.0.2.56 for 3600s`.
pub fn blocked(ts: &str, address: IpAddr, ttl_seconds: u64) -> String {
    format!("{ts}: Blocked {address} for {ttl_seconds}s")
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
        };
        assert_eq!(
            port_scan(&ts, &alert),
            "2021-04-28 15:28:05: Port scan detected: 192.0.2.56 -> 10.0.0.5 on ports 80,81,82,83"
        );
        assert_eq!(
            blocked(&ts, "2001:db8::2".parse().unwrap(), 60),
            "2021-04-28 15:28:05: Blocked 2001:db8::2 for 60s"
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

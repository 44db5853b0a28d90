//! Target lists: one host per line, as an SRE pastes them.
//!
//! Accepted forms: `host`, `1.2.3.4`, `2001:db8::1`, `host:port`, `1.2.3.4:port`, `[v6]:port`,
//! `[v6]`. Blank lines and `#` comments are skipped, CRLF and surrounding spaces are trimmed,
//! duplicates (same host and port) are checked once. A bad line is reported with its number and
//! skipped; the caller decides whether the remaining targets are enough to run.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// Longest DNS name we accept (RFC 1035: 255 octets on the wire, 253 as text).
pub const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    /// A DNS name, lower-cased, without a trailing dot.
    Name(String),
}

impl Host {
    /// An IP literal or a DNS name (lower-cased, trailing dot dropped), as on a host line.
    pub fn parse(text: &str) -> Result<Host, LineProblem> {
        parse_host(text)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// One thing to check: a host and a TCP port, with the text the user wrote (used verbatim in
/// verdict lines so the output can be joined back to the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    pub port: u16,
    /// The line as written, trimmed: `sync-124.nylas.net` or `[::1]:8080`.
    pub label: String,
    /// 1-based line number in the input.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("invalid port {0:?} (must be 1-65535)")]
    BadPort(String),
    #[error("host name longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
    #[error("invalid host {0:?}")]
    BadHost(String),
    #[error("unclosed '[' in IPv6 address")]
    UnclosedBracket,
}

/// A rejected input line: where it was and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {problem}")]
pub struct LineError {
    pub source_name: String,
    pub line: usize,
    pub problem: LineProblem,
}

/// Everything read from one input: the unique targets in input order, and the rejected lines.
#[derive(Debug, Default)]
pub struct ParsedTargets {
    pub targets: Vec<Target>,
    pub errors: Vec<LineError>,
    pub duplicates: usize,
}

/// Parses a port given on the command line or after a colon.
pub fn parse_port(text: &str) -> Result<u16, LineProblem> {
    let bad = || LineProblem::BadPort(excerpt(text));
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 5 {
        return Err(bad());
    }
    match text.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err(bad()),
    }
}

/// Longest piece of an input line quoted in an error: a 1 MB line is not echoed whole.
const QUOTED_MAX_CHARS: usize = 80;

/// `text`, or its first [`QUOTED_MAX_CHARS`] characters and how long it was.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(QUOTED_MAX_CHARS) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
    }
}

/// Parses one line. `Ok(None)` means there is nothing on it (blank or comment).
pub fn parse_line(
    raw: &[u8],
    default_port: u16,
) -> Result<Option<(Host, u16, String)>, LineProblem> {
    let text = std::str::from_utf8(raw).map_err(|_| LineProblem::NotUtf8)?;
    let text = match text.find('#') {
        Some(hash) => &text[..hash],
        None => text,
    };
    let text = text.trim_matches(|c: char| c.is_whitespace());
    if text.is_empty() {
        return Ok(None);
    }
    let (host_text, port) = split_host_port(text, default_port)?;
    let host = parse_host(host_text)?;
    Ok(Some((host, port, text.to_string())))
}

fn split_host_port(text: &str, default_port: u16) -> Result<(&str, u16), LineProblem> {
    if let Some(rest) = text.strip_prefix('[') {
        let close = rest.find(']').ok_or(LineProblem::UnclosedBracket)?;
        let inside = &rest[..close];
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err(LineProblem::BadHost(excerpt(inside)));
        }
        return match &rest[close + 1..] {
            "" => Ok((inside, default_port)),
            after => match after.strip_prefix(':') {
                Some(port) => Ok((inside, parse_port(port)?)),
                None => Err(LineProblem::BadHost(excerpt(text))),
            },
        };
    }
    match text.matches(':').count() {
        0 => Ok((text, default_port)),
        1 => {
            let (host, port) = text.split_once(':').expect("one colon");
            Ok((host, parse_port(port)?))
        }
        // Several colons and no brackets: a bare IPv6 literal, which cannot carry a port.
        _ => Ok((text, default_port)),
    }
}

fn parse_host(text: &str) -> Result<Host, LineProblem> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.len() > MAX_NAME_LEN {
        return Err(LineProblem::NameTooLong);
    }
    let bad = || LineProblem::BadHost(excerpt(text));
    if name.is_empty() {
        return Err(bad());
    }
    for label in name.split('.') {
        let label_ok = !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !label_ok {
            return Err(bad());
        }
    }
    // All-numeric dotted names that failed to parse as IPv4 (`1.2.3.999`) are typos, not names.
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    Ok(Host::Name(name.to_ascii_lowercase()))
}

/// Parses a whole input. Lines are split on `\n`; a trailing `\r` is trimmed with the other
/// whitespace. Invalid bytes only spoil their own line.
pub fn parse_targets(input: &[u8], default_port: u16, source_name: &str) -> ParsedTargets {
    let mut parsed = ParsedTargets::default();
    let mut seen: HashSet<(Host, u16)> = HashSet::new();
    for (index, raw) in input.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        match parse_line(raw, default_port) {
            Ok(None) => {}
            Ok(Some((host, port, label))) => {
                if seen.insert((host.clone(), port)) {
                    parsed.targets.push(Target {
                        host,
                        port,
                        label,
                        line,
                    });
                } else {
                    parsed.duplicates += 1;
                }
            }
            Err(problem) => parsed.errors.push(LineError {
                source_name: source_name.to_string(),
                line,
                problem,
            }),
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn one(line: &str) -> Result<Option<(Host, u16, String)>, LineProblem> {
        parse_line(line.as_bytes(), 80)
    }

    #[test]
    fn accepts_every_documented_form() {
        let v4 = Host::Ip(IpAddr::V4(Ipv4Addr::new(127, 23, 12, 67)));
        assert_eq!(one("127.23.12.67").unwrap().unwrap().0, v4);
        assert_eq!(one("127.23.12.67:8080").unwrap().unwrap().1, 8080);
        let (host, port, _) = one("sync-124.Nylas.net").unwrap().unwrap();
        assert_eq!((host, port), (Host::Name("sync-124.nylas.net".into()), 80));
        assert_eq!(one("db:5432").unwrap().unwrap().1, 5432);
        let (host, port, _) = one("2001:db8::1").unwrap().unwrap();
        assert_eq!((host, port), (Host::Ip("2001:db8::1".parse().unwrap()), 80));
        let (host, port, label) = one("  [::1]:9000\r").unwrap().unwrap();
        assert_eq!(
            (host, port, label.as_str()),
            (Host::Ip("::1".parse().unwrap()), 9000, "[::1]:9000")
        );
        assert_eq!(one("[::1]").unwrap().unwrap().1, 80);
        assert_eq!(
            one("host.example.").unwrap().unwrap().0,
            Host::Name("host.example".into())
        );
    }

    #[test]
    fn blank_and_comment_lines_are_nothing() {
        for line in ["", "   ", "\r", "# a comment", "   # indented"] {
            assert_eq!(one(line).unwrap(), None, "{line:?}");
        }
        assert_eq!(
            one("web1 # primary").unwrap().unwrap().0,
            Host::Name("web1".into())
        );
    }

    #[test]
    fn rejects_bad_ports_and_garbage() {
        assert_eq!(one("h:0"), Err(LineProblem::BadPort("0".into())));
        assert_eq!(one("h:65536"), Err(LineProblem::BadPort("65536".into())));
        assert_eq!(one("h:abc"), Err(LineProblem::BadPort("abc".into())));
        assert_eq!(one("h:"), Err(LineProblem::BadPort("".into())));
        assert_eq!(
            one("[::1]:99999"),
            Err(LineProblem::BadPort("99999".into()))
        );
        assert_eq!(one("[::1"), Err(LineProblem::UnclosedBracket));
        assert!(matches!(one("[zz]:80"), Err(LineProblem::BadHost(_))));
        assert!(matches!(one("not a host"), Err(LineProblem::BadHost(_))));
        assert!(matches!(one("-bad.example"), Err(LineProblem::BadHost(_))));
        assert!(matches!(one("a..b"), Err(LineProblem::BadHost(_))));
        assert!(matches!(one("1.2.3.999"), Err(LineProblem::BadHost(_))));
        assert_eq!(one(&"a".repeat(254)), Err(LineProblem::NameTooLong));
        assert!(matches!(one(&"a".repeat(64)), Err(LineProblem::BadHost(_))));
        // Issue 15, item 12: a huge bad line is quoted in part, with its length.
        let huge = format!("h:{}", "9".repeat(1 << 20));
        let Err(LineProblem::BadPort(quoted)) = one(&huge) else {
            panic!("a 1 MB port is a bad port");
        };
        assert!(
            quoted.len() < 200 && quoted.ends_with("(1048576 bytes)"),
            "{quoted}"
        );
        let Err(LineProblem::BadHost(quoted)) = one(&format!("[{}]", "z".repeat(1 << 20))) else {
            panic!("a 1 MB bracket is a bad host");
        };
        assert!(quoted.len() < 200, "{quoted}");
        assert_eq!(
            parse_line(b"caf\xff.example", 80),
            Err(LineProblem::NotUtf8)
        );
    }

    #[test]
    fn whole_input_keeps_order_skips_bad_lines_and_dedups() {
        let input = b"b.example\r\n# c\n\na.example:81\nbad host\nb.example\nB.example:80\n\xfe\n127.0.0.1\n";
        let parsed = parse_targets(input, 80, "stdin");
        let labels: Vec<_> = parsed.targets.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["b.example", "a.example:81", "127.0.0.1"]);
        assert_eq!(parsed.targets[1].line, 4);
        assert_eq!(parsed.duplicates, 2);
        let errors: Vec<_> = parsed.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            [
                "stdin:5: invalid host \"bad host\"",
                "stdin:8: not valid UTF-8"
            ]
        );
    }
}

//! The fuzz targets: every parser that takes outside input, as a plain function of the bytes.
//! `fuzz/` (cargo-fuzz, libFuzzer) drives each for a bounded time (`fuzz/run.sh`); the test
//! suite runs every file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through
//! the same function (`tests/corpus.rs`), so an input that once crashed stays fixed.
//!
//! A target fails by panicking: on a panic inside the parser, or when a property that must
//! hold for every input does not (each target says which).

use netvantage_core::ResultRecord;
use std::sync::OnceLock;

pub mod request;

/// A fuzz target: fails by panicking.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus folder and cargo-fuzz binary carry.
pub const TARGETS: &[(&str, Target)] = &[
    ("host_lines", host_lines),
    ("http_yaml", http_yaml),
    ("agent_yaml", agent_yaml),
    ("proc_net_tcp", proc_net_tcp),
    ("inet_diag", inet_diag),
    ("conntrack", conntrack),
    ("kafka_record", kafka_record),
    ("http_request", request::http_request),
];

/// `ports`' input (stdin or `--input`): every line is a target, a blank or comment, or an
/// error naming that line; the three never add up to more than the lines there are.
pub fn host_lines(data: &[u8]) {
    let parsed = netvantage_core::target::parse_targets(data, 443, "fuzz");
    let lines = data.split(|&b| b == b'\n').count();
    assert!(parsed.targets.len() + parsed.errors.len() + parsed.duplicates <= lines);
    for error in &parsed.errors {
        assert!(error.line >= 1 && error.line <= lines);
        // An echoed line is bounded, however long the input line was (issue 15 item 12).
        assert!(
            error.to_string().len() < 1024,
            "{} bytes",
            error.to_string().len()
        );
    }
    for target in &parsed.targets {
        assert!(!target.label.contains('\n'));
    }
}

/// `http CONFIG.yaml`: a config error names the file; a parsed endpoint has a host.
pub fn http_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match netvantage_config::endpoints::parse_config(text, "fuzz.yaml") {
        Ok(endpoints) => {
            for endpoint in endpoints {
                assert!(!endpoint.host.is_empty(), "{endpoint:?}");
            }
        }
        Err(error) => assert!(error.to_string().contains("fuzz.yaml"), "{error}"),
    }
}

/// `agent --config`: an error names the file; a parsed config never carries a secret in the
/// free-form Kafka properties (issue 15 item 8).
pub fn agent_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match netvantage_config::agent::parse_agent_config(text, "fuzz.yaml") {
        Ok(config) => {
            if let Some(kafka) = config.sinks.kafka {
                for (key, _) in &kafka.properties {
                    assert!(!netvantage_config::agent::is_secret_property(key), "{key}");
                }
            }
        }
        Err(error) => assert!(error.to_string().contains("fuzz.yaml"), "{error}"),
    }
}

/// `/proc/net/tcp{,6}` as read (or a file given for it): every non-blank line is an entry or
/// counted malformed.
pub fn proc_net_tcp(data: &[u8]) {
    let mut seen = 0u64;
    let stats = netvantage_conns::procnet::parse_table(data, |_| seen += 1);
    let lines = data.split(|&b| b == b'\n').count() as u64;
    assert_eq!(stats.entries, seen);
    assert!(stats.entries + stats.malformed <= lines);
    assert_eq!(stats.malformed == 0, stats.first_malformed.is_none());
}

/// A netlink datagram of `inet_diag` replies (the kernel's, or whatever arrives on the
/// socket), and one message payload on its own. The sequence number is the input's first
/// four bytes, so the fuzzer can match it.
pub fn inet_diag(data: &[u8]) {
    let seq = data
        .get(..4)
        .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    let rest = data.get(4..).unwrap_or_default();
    let _ = netvantage_conns::netlink::parse_messages(rest, seq, &mut |_| {});
    let _ = netvantage_conns::netlink::decode_diag_msg(rest);
}

/// conntrack netlink datagrams as `conns --source conntrack` reads them (events and dump
/// replies): every message decodes to a flow, is counted as another protocol, or the datagram
/// is an error; never a panic.
pub fn conntrack(data: &[u8]) {
    let mut flows = 0u64;
    if let Ok(decoded) = netvantage_conns::ctnetlink::decode(data, &mut |_| flows += 1) {
        // A message takes at least a netlink header.
        let most = (data.len() / netvantage_conns::ctnetlink::NLMSG_HDRLEN) as u64;
        assert!(
            flows + decoded.other_protocols <= most,
            "{flows} flows from {} bytes",
            data.len()
        );
    }
}

/// A Kafka message payload as `ingest` reads it. Whatever decodes must encode to a record
/// that decodes to itself: the store keeps what the next reader gets.
pub fn kafka_record(data: &[u8]) {
    let Ok(record) = ResultRecord::from_json(data) else {
        return;
    };
    let once = serde_json::to_vec(&record).expect("a decoded record encodes");
    let again = ResultRecord::from_json(&once).expect("an encoded record decodes");
    let twice = serde_json::to_vec(&again).expect("a decoded record encodes");
    assert_eq!(
        String::from_utf8_lossy(&once),
        String::from_utf8_lossy(&twice)
    );
}

/// One runtime for the targets that need async I/O, on a thread of its own.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

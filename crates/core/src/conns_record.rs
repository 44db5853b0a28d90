//! The connection log's records: what `conns --sink …` writes for each new connection, each
//! port scan and each block, through the same sinks as the agent's [`crate::ResultRecord`].
//!
//! One JSON object per record, flat, tagged by `record` (`connection`, `scan`, `block`) and
//! versioned by `schema` (1 today; a reader ignores fields it doesn't know, and a field added
//! later is optional). Every record carries a UUIDv7 `id` made by the `conns` instance
//! (redelivery repeats it, so stores keep each record once), the `host` that saw it and
//! `ts_unix_ms`, when it was seen. Addresses are strings as Rust prints them (`192.0.2.1`,
//! `2001:db8::1`, `[2001:db8::1]:443`); a ban's `target` is a network (`192.0.2.1/32`).
//! A check record has no `record` field, which is how a reader tells the two kinds apart.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// The schema version this build writes.
pub const CONNS_SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnsRecord {
    pub id: uuid::Uuid,
    /// `CONNS_SCHEMA` when written by this build.
    pub schema: u32,
    /// The host (`--host`; the hostname by default) whose `conns` saw it.
    pub host: String,
    pub ts_unix_ms: i64,
    #[serde(flatten)]
    pub event: ConnsEvent,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum ConnsEvent {
    /// A new TCP connection to or from this host.
    Connection {
        source: SocketAddr,
        destination: SocketAddr,
        /// `inbound` (accepted here) or `outbound`.
        direction: String,
    },
    /// A source that tried more distinct ports than the scan rule allows within its window.
    Scan {
        source: IpAddr,
        destinations: Vec<IpAddr>,
        ports: Vec<u16>,
        /// How many of `ports` refused (closed ports), when the event source can tell.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        closed: Option<u32>,
    },
    /// A ban put in place (IPv6 by prefix). `until_unix_ms` is absolute, so a ban shared with
    /// other hosts expires at the same moment everywhere.
    Block {
        target: String,
        until_unix_ms: i64,
        /// 1 for a first ban, then 2, 3, … for a repeat offender's longer ones.
        offenses: u32,
    },
}

impl ConnsEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            ConnsEvent::Connection { .. } => "connection",
            ConnsEvent::Scan { .. } => "scan",
            ConnsEvent::Block { .. } => "block",
        }
    }
}

impl ConnsRecord {
    /// A record of `event`; `id` is a UUIDv7 made by the caller (this crate reads no clock).
    pub fn new(id: uuid::Uuid, host: &str, ts_unix_ms: i64, event: ConnsEvent) -> ConnsRecord {
        ConnsRecord {
            id,
            schema: CONNS_SCHEMA,
            host: host.to_string(),
            ts_unix_ms,
            event,
        }
    }

    /// The Kafka message key: one host's records share a partition, in order.
    pub fn key(&self) -> &str {
        &self.host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(event: ConnsEvent) -> ConnsRecord {
        ConnsRecord {
            id: uuid::Uuid::parse_str("01936f4e-1c2a-7b3c-8d4e-5f6a7b8c9d0e").unwrap(),
            schema: CONNS_SCHEMA,
            host: "web-1".into(),
            ts_unix_ms: 1_700_000_000_000,
            event,
        }
    }

    #[test]
    fn each_kind_is_one_flat_tagged_object_that_reads_back() {
        let connection = record(ConnsEvent::Connection {
            source: "192.0.2.1:40000".parse().unwrap(),
            destination: "[2001:db8::5]:443".parse().unwrap(),
            direction: "inbound".into(),
        });
        let json = serde_json::to_value(&connection).unwrap();
        assert_eq!(json["record"], "connection");
        assert_eq!(json["schema"], 1);
        assert_eq!(json["host"], "web-1");
        assert_eq!(json["source"], "192.0.2.1:40000");
        assert_eq!(json["destination"], "[2001:db8::5]:443");
        assert_eq!(
            serde_json::from_value::<ConnsRecord>(json).unwrap(),
            connection
        );

        let scan = record(ConnsEvent::Scan {
            source: "192.0.2.1".parse().unwrap(),
            destinations: vec!["10.0.0.5".parse().unwrap()],
            ports: vec![22, 80, 443],
            closed: Some(2),
        });
        let json = serde_json::to_value(&scan).unwrap();
        assert_eq!(json["record"], "scan");
        assert_eq!(json["ports"], serde_json::json!([22, 80, 443]));
        assert_eq!(json["closed"], 2);
        assert_eq!(serde_json::from_value::<ConnsRecord>(json).unwrap(), scan);

        let block = record(ConnsEvent::Block {
            target: "2001:db8:1::/64".into(),
            until_unix_ms: 1_700_000_060_000,
            offenses: 2,
        });
        let mut json = serde_json::to_value(&block).unwrap();
        assert_eq!(json["record"], "block");
        assert_eq!(json["until_unix_ms"], 1_700_000_060_000i64);
        json["added_in_a_later_schema"] = serde_json::json!(true);
        assert_eq!(serde_json::from_value::<ConnsRecord>(json).unwrap(), block);
        assert_eq!(block.event.kind(), "block");
        assert_eq!(block.key(), "web-1");
    }

    #[test]
    fn a_check_record_is_not_a_connection_record() {
        let check = serde_json::json!({"id": "01936f4e-1c2a-7b3c-8d4e-5f6a7b8c9d0e", "schema": 1,
            "kind": "tcp", "target": "db:5432", "ts_unix_ms": 0});
        assert!(serde_json::from_value::<ConnsRecord>(check).is_err());
    }
}

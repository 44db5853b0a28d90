//! `ResultRecord`: a [`CheckResult`] as it leaves an agent — with a unique id and the agent and
//! vantage point that saw it. This is what the `kafka` and `stdout` sinks write (one JSON object
//! per message or line), what `ingest` reads and what the stores keep.
//!
//! The JSON is the check's own fields (versioned by `schema`, see [`crate::check`]) plus `id`,
//! `agent` and `vantage`, flat in one object, so a consumer that already reads `CheckResult`
//! reads records too. The id is a UUIDv7 made by the agent: unique across agents without
//! coordination, and time-ordered so a store's primary-key index grows at its right edge.
//! Redelivery repeats the same id, which is what makes every writer idempotent.

use crate::check::CheckResult;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub id: uuid::Uuid,
    /// The agent's name (`agent:` in its config; the hostname by default).
    pub agent: String,
    /// Where the agent checks from, e.g. a data center (`vantage:` in its config).
    pub vantage: String,
    #[serde(flatten)]
    pub check: CheckResult,
}

impl ResultRecord {
    /// The Kafka message key: records of one target share a partition, so a consumer sees each
    /// target's history in order.
    pub fn key(&self) -> &str {
        &self.check.target
    }

    /// Reads a record from a message payload (its JSON form), as `ingest` does with what any
    /// writer to the topic sent; the error says why it isn't one. Fuzzed (`fuzz/`).
    pub fn from_json(payload: &[u8]) -> Result<ResultRecord, String> {
        serde_json::from_slice(payload).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HttpDetails, Outcome, Phases, Reason};
    use std::time::Duration;

    fn tcp_record() -> ResultRecord {
        ResultRecord {
            id: uuid::Uuid::parse_str("01936f4e-1c2a-7b3c-8d4e-5f6a7b8c9d0e").unwrap(),
            agent: "probe-1".into(),
            vantage: "eu-west".into(),
            check: CheckResult::tcp(
                "db:5432".into(),
                Some("127.0.0.1:5432".parse().unwrap()),
                1_700_000_000_000,
                Duration::from_millis(3),
                Some((Reason::Refused, "connection refused".into())),
            ),
        }
    }

    #[test]
    fn json_is_the_check_fields_plus_identity_in_one_flat_object() {
        let record = tcp_record();
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["id"], "01936f4e-1c2a-7b3c-8d4e-5f6a7b8c9d0e");
        assert_eq!(json["agent"], "probe-1");
        assert_eq!(json["vantage"], "eu-west");
        assert_eq!(json["schema"], 1);
        assert_eq!(json["kind"], "tcp");
        assert_eq!(json["target"], "db:5432");
        assert_eq!(json["outcome"], "down");
        assert_eq!(json["reason"], "refused");
        assert_eq!(json["ts_unix_ms"], 1_700_000_000_000i64);
        let back: ResultRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.key(), "db:5432");
    }

    #[test]
    fn http_fields_round_trip_and_unknown_fields_are_ignored() {
        let mut record = tcp_record();
        record.check.kind = crate::CheckKind::Http;
        record.check.outcome = Outcome::Degraded;
        record.check.status = Some(200);
        record.check.body_matched = Some(true);
        record.check.phases = Some(Phases {
            dns_ms: Some(1.0),
            connect_ms: Some(2.0),
            tls_ms: Some(3.0),
            first_byte_ms: Some(4.0),
            total_ms: Some(5.0),
        });
        record.check.http = Some(HttpDetails {
            name: "home".into(),
            method: "GET".into(),
            domain: "example.org".into(),
            tls_cert_not_after_unix_ms: None,
        });
        let mut json = serde_json::to_value(&record).unwrap();
        json["added_in_a_later_schema"] = serde_json::json!(42);
        let back: ResultRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn a_latency_decodes_to_the_nearest_double_and_reads_back_the_same_every_time() {
        // The fuzzer's kafka_record finding: serde_json's default float parser is fast but not
        // exact (its `float_roundtrip` feature is). It read 3.4690007999999997 as
        // 3.4690007999999994 and that, re-encoded, as 3.469000799999999: a record drifted each
        // time it was decoded and encoded again, as ingest and the stores do.
        let payload = br#"{"id":"019ab3c4-0d1e-7a5b-9c3f-1234567890ac","agent":"a1","vantage":"iad1","schema":1,"kind":"http","target":"http://fetch.com:18080/","address":"127.0.0.1:18080","ts_unix_ms":1795466276493,"outcome":"up","latency_ms":4.1700700,"phases":{"connect_ms":0.575019,"first_byte_ms":3.4690007999999997,"tttal_ms":4.170072},"http":{"name":"fetch index page","method":"GET","domain":"fetch.com"}}"#;
        let once = ResultRecord::from_json(payload).unwrap();
        let phases = once.check.phases.clone().unwrap();
        assert_eq!(phases.first_byte_ms, Some(3.4690008));
        let again = ResultRecord::from_json(&serde_json::to_vec(&once).unwrap()).unwrap();
        assert_eq!(again, once);
        let exact: f64 = serde_json::from_str("3.4690007999999994").unwrap();
        assert_eq!(exact.to_string(), "3.4690007999999994");
    }
}

//! The sink contract: what every destination of records (stdout, SQLite, Kafka, …) promises,
//! as vector's sinks declare their acknowledgements.

use netvantage_core::{ConnsRecord, ResultRecord};
use std::sync::Arc;
use std::time::Duration;

/// What a sink promises about a record it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// Written before `send` returns, or `send` fails and nothing of the batch counts
    /// (SQLite: one committed transaction per batch).
    Durable,
    /// Acknowledged later by a remote (Kafka, `acks=all`); a record that is not acknowledged
    /// is settled as failed and goes to the spool behind the sink.
    AtLeastOnce,
    /// Written in order while someone reads (stdout); nothing is kept if the reader leaves.
    BestEffort,
}

impl Guarantee {
    pub fn as_str(self) -> &'static str {
        match self {
            Guarantee::Durable => "durable",
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::BestEffort => "best-effort",
        }
    }
}

/// What travels to sinks: check results (the agent) and the connection log (`conns`).
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Check(ResultRecord),
    Conns(ConnsRecord),
}

/// One record ready for any sink: its typed form, its JSON (serialized once, shared by every
/// sink and the spool) and its key (the Kafka key: records of one target share a partition).
#[derive(Debug, Clone)]
pub struct Envelope {
    pub key: Arc<str>,
    pub json: Arc<[u8]>,
    pub record: Arc<Record>,
}

impl Envelope {
    pub fn check(record: ResultRecord) -> Envelope {
        // Serializing a record of plain fields cannot fail.
        let json = serde_json::to_vec(&record).unwrap_or_default();
        Envelope {
            key: record.key().into(),
            json: json.into(),
            record: Arc::new(Record::Check(record)),
        }
    }

    pub fn conns(record: ConnsRecord) -> Envelope {
        let json = serde_json::to_vec(&record).unwrap_or_default();
        Envelope {
            key: record.key().into(),
            json: json.into(),
            record: Arc::new(Record::Conns(record)),
        }
    }

    /// Reads a record back from its JSON (a spooled line): a connection-log record has a
    /// `record` field, a check result has none.
    pub fn from_json(json: &[u8]) -> Result<Envelope, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Tag {
            record: Option<serde::de::IgnoredAny>,
        }
        let record = match serde_json::from_slice::<Tag>(json)?.record {
            Some(_) => Record::Conns(serde_json::from_slice(json)?),
            None => Record::Check(serde_json::from_slice(json)?),
        };
        let key: Arc<str> = match &record {
            Record::Check(r) => r.key().into(),
            Record::Conns(r) => r.key().into(),
        };
        Ok(Envelope {
            key,
            json: json.into(),
            record: Arc::new(record),
        })
    }

    pub fn id(&self) -> uuid::Uuid {
        match &*self.record {
            Record::Check(r) => r.id,
            Record::Conns(r) => r.id,
        }
    }

    pub fn as_check(&self) -> Option<&ResultRecord> {
        match &*self.record {
            Record::Check(r) => Some(r),
            Record::Conns(_) => None,
        }
    }

    pub fn as_conns(&self) -> Option<&ConnsRecord> {
        match &*self.record {
            Record::Conns(r) => Some(r),
            Record::Check(_) => None,
        }
    }
}

/// How a record a sink accepted ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// At its destination (committed, acknowledged, written).
    Delivered,
    /// It will not get there through this sink: whoever settles it decides what next (the
    /// spool wrapper writes it to disk).
    Failed(String),
}

/// Told how each accepted record ended; called on whatever thread learns it (librdkafka's
/// delivery-report thread for Kafka).
pub trait Settle: Send + Sync {
    fn settle(&self, envelope: &Envelope, settlement: Settlement);
}

/// A settler that only counts.
#[derive(Debug, Default)]
pub struct Tally {
    pub delivered: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

impl Settle for Tally {
    fn settle(&self, _: &Envelope, settlement: Settlement) {
        use std::sync::atomic::Ordering::Relaxed;
        match settlement {
            Settlement::Delivered => self.delivered.fetch_add(1, Relaxed),
            Settlement::Failed(_) => self.failed.fetch_add(1, Relaxed),
        };
    }
}

/// Why a batch was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// True when trying again later can work (a full disk, a busy database); false when it
    /// cannot (stdout closed, a database that is not ours).
    pub retryable: bool,
    pub message: String,
}

impl SinkError {
    pub fn retryable(message: impl Into<String>) -> SinkError {
        SinkError {
            retryable: true,
            message: message.into(),
        }
    }

    pub fn fatal(message: impl Into<String>) -> SinkError {
        SinkError {
            retryable: false,
            message: message.into(),
        }
    }
}

/// What a sink did, for the exit summary and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    pub name: &'static str,
    /// Records handed to the sink.
    pub received: u64,
    /// Records at their destination (rows stored, acknowledged, lines written).
    pub delivered: u64,
    /// Records new to their destination (a store skips ids it already has).
    pub new: u64,
    /// Records written to the spool (each once).
    pub spooled: u64,
    /// Records lost: the spool was full or unwritable, or the sink failed for good.
    pub dropped: u64,
    /// Records still on disk in the spool at exit, and their bytes.
    pub spool_records: u64,
    pub spool_bytes: u64,
    /// Why the sink stopped taking records, if it did.
    pub failure: Option<String>,
}

/// A destination of records. Each sink runs on a thread of its own (see [`crate::runner`]),
/// so a slow or failing one never holds up the others.
pub trait Sink: Send {
    fn name(&self) -> &'static str;
    fn guarantee(&self) -> Guarantee;

    /// Hands a batch over. `Ok`: every record is accepted and will be settled through
    /// `settle` (at once, or later for a remote). `Err`: none of the batch was accepted.
    fn send(&mut self, batch: &[Envelope], settle: &Arc<dyn Settle>) -> Result<(), SinkError>;

    /// Background work between batches (serve delivery reports, replay a spool). Called at
    /// least every [`crate::runner::TICK`].
    fn tick(&mut self) {}

    /// Pushes out what is buffered, waiting up to `within`.
    fn flush(&mut self, _within: Duration) -> Result<(), SinkError> {
        Ok(())
    }

    /// Stops, waiting up to `grace` for the destination to take what is queued (a remote's
    /// leftovers are settled as failed, so the spool keeps them), and reports.
    fn close(self: Box<Self>, grace: Duration) -> SinkReport;
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvantage_core::ConnsEvent;

    #[test]
    fn from_json_tells_connection_records_from_check_results() {
        let conns = Envelope::conns(ConnsRecord::new(
            uuid::Uuid::from_u64_pair(0, 7),
            "web-1",
            5,
            ConnsEvent::Block {
                target: "192.0.2.1/32".into(),
                until_unix_ms: 65,
                offenses: 1,
            },
        ));
        let back = Envelope::from_json(&conns.json).unwrap();
        assert_eq!(back.as_conns(), conns.as_conns());
        assert_eq!(&*back.key, "web-1");
        assert_eq!(back.id(), uuid::Uuid::from_u64_pair(0, 7));
        let check = crate::test_support::envelope(3);
        let back = Envelope::from_json(&check.json).unwrap();
        assert_eq!(back.as_check(), check.as_check());
        assert!(back.as_conns().is_none());
    }
}

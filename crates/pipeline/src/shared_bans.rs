//! The reader behind `conns --block --shared`: a Kafka consumer of the conns topic that hands
//! every block record to the caller, which applies it through its own rules.
//!
//! Each host reads in a consumer group of its own (`netvantage-conns-shared-HOST`), so every
//! instance sees every block rather than sharing the partitions out. A new group starts at the
//! earliest offset: a host that joins late still applies the bans that are in force (the
//! caller skips expired ones). Offsets are committed automatically: a ban read twice after a
//! restart is applied once more, which changes nothing.

use netvantage_core::{ConnsEvent, ConnsRecord};
use netvantage_sinks::{Envelope, Record};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;

#[derive(Debug, thiserror::Error)]
pub enum SharedBansError {
    #[error("kafka: {0}")]
    Kafka(String),
}

/// The consumer group of `host`'s shared-ban reader.
pub fn group(host: &str) -> String {
    format!("netvantage-conns-shared-{host}")
}

/// Subscribes to `topic` in `host`'s own group; `config` brings brokers, TLS and SASL.
pub fn subscribe(
    mut config: ClientConfig,
    host: &str,
    topic: &str,
) -> Result<StreamConsumer, SharedBansError> {
    let group = group(host);
    for (key, value) in [
        ("group.id", group.as_str()),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "true"),
        // The topic may be created by the first publisher after this reader starts: look
        // again within seconds, not librdkafka's default five minutes.
        ("topic.metadata.refresh.interval.ms", "2000"),
    ] {
        if config.get(key).is_none() {
            config.set(key, value);
        }
    }
    let consumer: StreamConsumer = config
        .create()
        .map_err(|e| SharedBansError::Kafka(format!("cannot create the consumer: {e}")))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| SharedBansError::Kafka(format!("cannot subscribe to {topic}: {e}")))?;
    Ok(consumer)
}

/// The block record in `payload`, if it is one (connections, scans and check records are not).
pub fn block_record(payload: &[u8]) -> Option<ConnsRecord> {
    let envelope = Envelope::from_json(payload).ok()?;
    match &*envelope.record {
        Record::Conns(record) if matches!(record.event, ConnsEvent::Block { .. }) => {
            Some(record.clone())
        }
        _ => None,
    }
}

/// Reads until the task is dropped, handing each block record to `deliver`. Broker errors are
/// logged and the reading goes on (librdkafka reconnects by itself).
pub async fn read_blocks(consumer: &StreamConsumer, mut deliver: impl FnMut(ConnsRecord)) {
    loop {
        match consumer.recv().await {
            Ok(message) => {
                if let Some(record) = message.payload().and_then(block_record) {
                    deliver(record);
                }
            }
            Err(err) => tracing::warn!("shared bans: kafka: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_block_records_are_handed_over() {
        let record = |event| {
            let record = ConnsRecord::new(uuid::Uuid::from_u64_pair(0, 7), "web-1", 5, event);
            serde_json::to_vec(&record).unwrap()
        };
        let block = record(ConnsEvent::Block {
            target: "198.18.5.9/32".into(),
            until_unix_ms: 65_000,
            offenses: 1,
        });
        let read = block_record(&block).expect("a block record");
        assert_eq!(read.host, "web-1");
        let scan = record(ConnsEvent::Scan {
            source: "198.18.5.9".parse().unwrap(),
            destinations: vec![],
            ports: vec![1, 2, 3, 4],
            closed: None,
        });
        assert_eq!(block_record(&scan), None);
        assert_eq!(block_record(b"not json"), None);
        assert_eq!(group("web-1"), "netvantage-conns-shared-web-1");
    }
}

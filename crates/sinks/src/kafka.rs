//! The Kafka sink: librdkafka's idempotent producer (`acks=all`) keyed by target, with the
//! whole Kafka lifecycle inside it — the topic is created when missing (retried in the
//! background while the broker is away), every record is settled by its delivery report, what
//! is still queued at close is purged and settled as failed (so a [`crate::Spooled`] wrapper
//! keeps it on disk), and librdkafka's own log lines are rate-limited.
//!
//! Where a record can be while the broker is away, and what moves it on:
//! 1. librdkafka's queue, up to `memory_records`, retried by librdkafka itself;
//! 2. when that queue is full, or a delivery finally fails (`message.timeout.ms`), or the agent
//!    stops with records still queued, the spool on disk, up to `spool_max_bytes`;
//! 3. past that, nowhere: the record is dropped, counted and logged.
//!
//! Anything may be sent twice (a purged in-flight batch, a crash before a replayed segment is
//! acknowledged); the record id makes every store idempotent, so twice is harmless and never
//! is not allowed.

use crate::sink::{Envelope, Guarantee, Settle, Settlement, Sink, SinkError, SinkReport};
use crate::spooled::Backlog;
use netvantage_config::agent::KafkaSettings;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long librdkafka keeps retrying a queued record before handing it to the spool.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(120);

/// The client settings shared by the producer, the consumer and the admin client: brokers, TLS
/// and SASL from the config (secrets read now, from the environment or files), the caller's
/// `defaults`, then the raw `properties` overrides (last, so they win).
pub fn client_config(
    settings: &KafkaSettings,
    defaults: &[(&str, String)],
) -> Result<ClientConfig, String> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    for (key, value) in defaults {
        config.set(*key, value);
    }
    config.set_log_level(RDKafkaLogLevel::Warning);
    let protocol = match (&settings.tls, &settings.sasl) {
        (None, None) => "plaintext",
        (Some(_), None) => "ssl",
        (None, Some(_)) => "sasl_plaintext",
        (Some(_), Some(_)) => "sasl_ssl",
    };
    config.set("security.protocol", protocol);
    if let Some(tls) = &settings.tls {
        if let Some(ca) = &tls.ca_file {
            config.set("ssl.ca.location", ca.display().to_string());
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            config.set("ssl.certificate.location", cert.display().to_string());
            config.set("ssl.key.location", key.display().to_string());
        }
        if let Some(password) = &tls.key_password {
            config.set("ssl.key.password", crate::secrets::resolve(password)?);
        }
    }
    if let Some(sasl) = &settings.sasl {
        config.set("sasl.mechanisms", &sasl.mechanism);
        config.set("sasl.username", crate::secrets::resolve(&sasl.username)?);
        config.set("sasl.password", crate::secrets::resolve(&sasl.password)?);
    }
    for (key, value) in &settings.properties {
        config.set(key, value);
    }
    Ok(config)
}

/// A record in librdkafka's hands, and who to tell how it ended.
pub struct Token {
    envelope: Envelope,
    settle: Arc<dyn Settle>,
}

/// librdkafka repeats a broker-away error several times a second; a person needs it once in a
/// while, with how often it happened.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// Delivery reports and librdkafka's log lines arrive on librdkafka's threads.
#[derive(Default)]
pub struct DeliveryContext {
    delivered: AtomicU64,
    failed: AtomicU64,
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl DeliveryContext {
    /// Whether a message should be logged now; returns how many like it were held back.
    fn admit(&self, message: &str) -> Option<u64> {
        // Messages differ in their details (offsets, timings); the first words say what it is.
        let kind: String = message.chars().take(48).collect();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match seen.get_mut(&kind) {
            Some((last, held)) if now.duration_since(*last) < LOG_EVERY => {
                *held += 1;
                None
            }
            Some((last, held)) => {
                let repeated = *held;
                *last = now;
                *held = 0;
                Some(repeated)
            }
            None => {
                seen.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

impl rdkafka::ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let Some(repeated) = self.admit(log_message) else {
            return;
        };
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(facility = fac, repeated, "kafka: {log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(facility = fac, repeated, "kafka: {log_message}")
            }
            _ => tracing::debug!(facility = fac, "kafka: {log_message}"),
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if let Some(repeated) = self.admit(reason) {
            tracing::warn!(%error, repeated, "kafka: {reason}");
        }
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Token>;

    fn delivery(&self, result: &DeliveryResult<'_>, token: Box<Token>) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                token.settle.settle(&token.envelope, Settlement::Delivered);
            }
            Err((error, _)) => {
                let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
                if failed.is_power_of_two() {
                    tracing::warn!(%error, failed, "kafka: delivery failed; the record goes to the spool");
                }
                token
                    .settle
                    .settle(&token.envelope, Settlement::Failed(error.to_string()));
            }
        }
    }
}

pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryContext>,
    topic: String,
    closing: Arc<AtomicBool>,
}

impl KafkaSink {
    /// Creates the producer and starts making sure the topic exists (in the background: the
    /// agent starts, and holds its results, even while the broker is unreachable).
    pub fn new(settings: &KafkaSettings) -> Result<KafkaSink, KafkaSetupError> {
        let defaults = [
            ("enable.idempotence", "true".to_string()),
            ("acks", "all".to_string()),
            ("linger.ms", "20".to_string()),
            (
                "queue.buffering.max.messages",
                settings.memory_records.to_string(),
            ),
            ("queue.buffering.max.kbytes", "262144".to_string()),
            (
                "message.timeout.ms",
                MESSAGE_TIMEOUT.as_millis().to_string(),
            ),
            // A monitoring agent should find a restarted broker within a second, not after
            // librdkafka's default ten-second reconnect backoff.
            ("reconnect.backoff.ms", "100".to_string()),
            ("reconnect.backoff.max.ms", "1000".to_string()),
        ];
        let producer = client_config(settings, &defaults)?
            .create_with_context(DeliveryContext::default())
            .map_err(|e| KafkaSetupError(format!("cannot create the Kafka producer: {e}")))?;
        let closing = Arc::new(AtomicBool::new(false));
        let topic_settings = settings.clone();
        let stop = closing.clone();
        std::thread::Builder::new()
            .name("kafka-topic".into())
            .spawn(move || ensure_topic_eventually(&topic_settings, &stop))
            .map_err(|e| KafkaSetupError(format!("cannot start a thread: {e}")))?;
        Ok(KafkaSink {
            producer,
            topic: settings.topic.clone(),
            closing,
        })
    }

    fn context(&self) -> &DeliveryContext {
        self.producer.context()
    }
}

impl Backlog for KafkaSink {
    fn backlog(&self) -> usize {
        self.producer.in_flight_count().max(0) as usize
    }
}

impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn guarantee(&self) -> Guarantee {
        Guarantee::AtLeastOnce
    }

    fn send(&mut self, batch: &[Envelope], settle: &Arc<dyn Settle>) -> Result<(), SinkError> {
        for envelope in batch {
            let token = Box::new(Token {
                envelope: envelope.clone(),
                settle: settle.clone(),
            });
            let record = BaseRecord::with_opaque_to(&self.topic, token)
                .key(&*envelope.key)
                .payload(&*envelope.json);
            if let Err((error, record)) = self.producer.send(record) {
                // The memory queue is full (or the record was refused): settled as failed now,
                // so the spool takes it.
                let token = record.delivery_opaque;
                token
                    .settle
                    .settle(&token.envelope, Settlement::Failed(error.to_string()));
            }
        }
        Ok(())
    }

    fn flush(&mut self, within: Duration) -> Result<(), SinkError> {
        self.producer
            .flush(within)
            .map_err(|e| SinkError::retryable(format!("kafka: {e}")))
    }

    /// Waits up to `grace` for the broker to take every queued record, then purges the rest:
    /// their delivery reports settle them as failed, which a spool wrapper writes to disk.
    fn close(self: Box<Self>, grace: Duration) -> SinkReport {
        self.closing.store(true, Ordering::Relaxed);
        if self.producer.flush(grace).is_err() {
            let waiting = self.backlog();
            tracing::warn!(
                waiting,
                "kafka: the broker did not take every record in time; spooling the rest"
            );
            self.producer
                .purge(PurgeConfig::default().queue().inflight());
            // Purged records come back through delivery reports, which a flush serves.
            let _ = self.producer.flush(Duration::from_secs(5));
        }
        let delivered = self.context().delivered.load(Ordering::Relaxed);
        SinkReport {
            name: "kafka",
            delivered,
            new: delivered,
            ..SinkReport::default()
        }
    }
}

/// The Kafka settings could not be turned into a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KafkaSetupError(pub String);

impl From<String> for KafkaSetupError {
    fn from(message: String) -> Self {
        KafkaSetupError(message)
    }
}

/// Creates the topic when it is missing. Returns `Ok(false)` when it already existed.
pub fn ensure_topic(settings: &KafkaSettings) -> Result<bool, KafkaSetupError> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings, &[])?
        .create()
        .map_err(|e| KafkaSetupError(format!("cannot create a Kafka admin client: {e}")))?;
    let topic = NewTopic::new(
        &settings.topic,
        settings.partitions,
        TopicReplication::Fixed(settings.replication),
    );
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    // librdkafka's own threads drive the admin request; this thread only waits for it.
    let results = futures::executor::block_on(admin.create_topics([&topic], &options))
        .map_err(|e| KafkaSetupError(format!("cannot create topic {}: {e}", settings.topic)))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => Ok(false),
        Some(Err((name, code))) => Err(KafkaSetupError(format!(
            "cannot create topic {name}: {code}"
        ))),
    }
}

/// Keeps trying [`ensure_topic`] until it succeeds or `stop` is set.
fn ensure_topic_eventually(settings: &KafkaSettings, stop: &AtomicBool) {
    let mut delay = Duration::from_millis(500);
    while !stop.load(Ordering::Relaxed) {
        match ensure_topic(settings) {
            Ok(true) => {
                tracing::info!(topic = %settings.topic, partitions = settings.partitions, "kafka: created the topic");
                return;
            }
            Ok(false) => return,
            Err(e) => tracing::warn!("kafka: {e}; retrying in {delay:?}"),
        }
        let until = Instant::now() + delay;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvantage_config::agent::{Sasl, Secret, Tls};

    fn settings() -> KafkaSettings {
        KafkaSettings {
            brokers: "127.0.0.1:1".into(),
            topic: "t".into(),
            partitions: 6,
            replication: 1,
            tls: None,
            sasl: None,
            memory_records: 10,
            spool_dir: "spool".into(),
            spool_max_bytes: 1 << 20,
            properties: vec![("linger.ms".into(), "5".into())],
        }
    }

    #[test]
    fn security_settings_follow_the_config_and_secrets_come_from_the_environment() {
        let plain = client_config(&settings(), &[("linger.ms", "20".into())]).unwrap();
        assert_eq!(plain.get("security.protocol"), Some("plaintext"));
        assert_eq!(
            plain.get("linger.ms"),
            Some("5"),
            "properties win over defaults"
        );

        let mut s = settings();
        s.tls = Some(Tls {
            ca_file: Some("/ca.pem".into()),
            ..Tls::default()
        });
        // SAFETY: this test alone reads this variable.
        unsafe { std::env::set_var("NV_TEST_KAFKA_PASSWORD", "s3cret") };
        s.sasl = Some(Sasl {
            mechanism: "SCRAM-SHA-512".into(),
            username: Secret::Literal("nv".into()),
            password: Secret::Env("NV_TEST_KAFKA_PASSWORD".into()),
        });
        let secure = client_config(&s, &[]).unwrap();
        assert_eq!(secure.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(secure.get("ssl.ca.location"), Some("/ca.pem"));
        assert_eq!(secure.get("sasl.password"), Some("s3cret"));

        s.sasl.as_mut().unwrap().password = Secret::Env("NV_TEST_KAFKA_UNSET".into());
        let err = client_config(&s, &[]).unwrap_err();
        assert!(err.contains("NV_TEST_KAFKA_UNSET"), "{err}");
    }
}

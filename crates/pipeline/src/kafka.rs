//! The agent's Kafka sink: librdkafka's idempotent producer (acks=all) keyed by target, with the
//! on-disk [`Spool`] behind its memory queue.
//!
//! Where a record can be while the broker is away, and what moves it on:
//! 1. librdkafka's queue, up to `memory_records`, retried by librdkafka itself;
//! 2. when that queue is full, or a delivery finally fails (`message.timeout.ms`), or the agent
//!    stops with records still queued, the spool on disk, up to `spool_max_bytes`;
//! 3. past that, nowhere: the record is dropped, counted and logged.
//!
//! A replay task hands spooled segments back to the producer whenever its queue has room, so
//! records reach the broker once it returns. Anything may be sent twice (a purged in-flight
//! batch, a crash between replay and segment removal); the record id makes every store
//! idempotent, so twice is harmless and never is not allowed.

use crate::config::KafkaSettings;
use crate::spool::Spool;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
            config.set("ssl.key.password", password.resolve()?);
        }
    }
    if let Some(sasl) = &settings.sasl {
        config.set("sasl.mechanisms", &sasl.mechanism);
        config.set("sasl.username", sasl.username.resolve()?);
        config.set("sasl.password", sasl.password.resolve()?);
    }
    for (key, value) in &settings.properties {
        config.set(key, value);
    }
    Ok(config)
}

/// Counts the sink keeps (read for the exit summary and tests).
#[derive(Debug, Default)]
pub struct ProducerCounts {
    pub delivered: AtomicU64,
    pub failed_deliveries: AtomicU64,
}

/// Delivery reports arrive on librdkafka's thread: a record that could not be delivered goes to
/// the spool from there.
pub struct SpoolingContext {
    spool: Arc<Spool>,
    counts: Arc<ProducerCounts>,
}

impl rdkafka::ClientContext for SpoolingContext {}

impl ProducerContext for SpoolingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.counts.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                let failed = self
                    .counts
                    .failed_deliveries
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                if failed.is_power_of_two() {
                    tracing::warn!(%error, failed, "kafka: delivery failed; the record goes to the spool");
                }
                if let Some(payload) = message.payload() {
                    self.spool.append(payload);
                }
            }
        }
    }
}

pub struct KafkaSink {
    producer: ThreadedProducer<SpoolingContext>,
    topic: String,
    spool: Arc<Spool>,
    counts: Arc<ProducerCounts>,
    memory_records: usize,
}

impl KafkaSink {
    pub fn new(settings: &KafkaSettings) -> anyhow::Result<KafkaSink> {
        let spool = Arc::new(
            Spool::open(&settings.spool_dir, settings.spool_max_bytes).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the spool {}: {e}",
                    settings.spool_dir.display()
                )
            })?,
        );
        let counts = Arc::new(ProducerCounts::default());
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
        ];
        let producer = client_config(settings, &defaults)
            .map_err(anyhow::Error::msg)?
            .create_with_context(SpoolingContext {
                spool: spool.clone(),
                counts: counts.clone(),
            })
            .map_err(|e| anyhow::anyhow!("cannot create the Kafka producer: {e}"))?;
        Ok(KafkaSink {
            producer,
            topic: settings.topic.clone(),
            spool,
            counts,
            memory_records: settings.memory_records,
        })
    }

    /// Queues one record; if the memory queue is full it goes to the spool.
    pub fn send(&self, key: &str, payload: &[u8]) {
        let record = BaseRecord::to(&self.topic).key(key).payload(payload);
        if let Err((error, _)) = self.producer.send(record) {
            if !matches!(
                error,
                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
            ) {
                tracing::warn!(%error, "kafka: cannot queue a record; it goes to the spool");
            }
            self.spool.append(payload);
        }
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    pub fn counts(&self) -> &Arc<ProducerCounts> {
        &self.counts
    }

    /// Records waiting in librdkafka (queued or in flight).
    pub fn in_flight(&self) -> usize {
        self.producer.in_flight_count().max(0) as usize
    }

    /// Hands spooled records back to the producer while its queue has room. Returns how many.
    pub fn replay_spool(&self) -> std::io::Result<usize> {
        let mut replayed = 0;
        while self.in_flight() < self.memory_records / 2 {
            let Some(batch) = self.spool.take_oldest()? else {
                break;
            };
            for payload in &batch.records {
                let key = record_key(payload);
                self.send(key.as_deref().unwrap_or(""), payload);
            }
            replayed += batch.records.len();
            self.spool.finish(batch)?;
        }
        Ok(replayed)
    }

    /// Replays the spool every `every` until `stop`, then returns.
    pub async fn replay_until(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            if self.spool.is_empty() {
                continue;
            }
            let sink = self.clone();
            match tokio::task::spawn_blocking(move || sink.replay_spool()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(records = n, "kafka: replayed spooled records"),
                Ok(Err(e)) => tracing::error!("kafka: cannot read the spool: {e}"),
                Err(e) => tracing::error!("kafka: spool replay failed: {e}"),
            }
        }
    }

    /// Stops the producer without losing anything: waits up to `grace` for the broker to take
    /// every queued record, then moves whatever is left to the spool (written to disk) for the
    /// next run.
    pub fn close(&self, grace: Duration) {
        let deadline = std::time::Instant::now() + grace;
        let mut flushed = self.producer.flush(grace).is_ok();
        // The broker is taking records: hand it what an outage left in the spool too.
        while flushed && !self.spool.is_empty() && std::time::Instant::now() < deadline {
            match self.replay_spool() {
                Ok(n) => tracing::info!(records = n, "kafka: replayed spooled records before exit"),
                Err(e) => {
                    tracing::error!("kafka: cannot read the spool: {e}");
                    break;
                }
            }
            flushed = self
                .producer
                .flush(deadline.saturating_duration_since(std::time::Instant::now()))
                .is_ok();
        }
        if !flushed {
            let waiting = self.in_flight();
            tracing::warn!(
                waiting,
                "kafka: broker did not take every record in time; spooling the rest"
            );
            self.producer
                .purge(PurgeConfig::default().queue().inflight());
            // Purged records come back through delivery reports, which a flush serves.
            let _ = self.producer.flush(Duration::from_secs(5));
        }
        if let Err(e) = self.spool.sync() {
            tracing::error!("kafka: cannot write the spool: {e}");
        }
    }
}

/// The Kafka key of a spooled record: its target.
fn record_key(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Key {
        target: String,
    }
    serde_json::from_slice::<Key>(payload)
        .ok()
        .map(|k| k.target)
}

/// Creates the topic when it is missing. Returns `Ok(false)` when it already existed.
pub async fn ensure_topic(settings: &KafkaSettings) -> anyhow::Result<bool> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings, &[])
        .map_err(anyhow::Error::msg)?
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create a Kafka admin client: {e}"))?;
    let topic = NewTopic::new(
        &settings.topic,
        settings.partitions,
        TopicReplication::Fixed(settings.replication),
    );
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create topic {}: {e}", settings.topic))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => Ok(false),
        Some(Err((name, code))) => anyhow::bail!("cannot create topic {name}: {code}"),
    }
}

/// Keeps trying [`ensure_topic`] until it succeeds or `stop`: the agent starts (and holds its
/// results) even while the broker is unreachable.
pub async fn ensure_topic_eventually(settings: KafkaSettings, stop: CancellationToken) {
    let mut delay = Duration::from_millis(500);
    loop {
        match ensure_topic(&settings).await {
            Ok(true) => {
                tracing::info!(topic = %settings.topic, partitions = settings.partitions, "kafka: created the topic");
                return;
            }
            Ok(false) => return,
            Err(e) => tracing::warn!("kafka: {e}; retrying in {delay:?}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Sasl, Secret, Tls};

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

    #[test]
    fn spooled_records_keep_their_target_as_key() {
        assert_eq!(
            record_key(br#"{"id":"x","target":"db:5432"}"#).as_deref(),
            Some("db:5432")
        );
        assert_eq!(record_key(b"not json"), None);
    }
}

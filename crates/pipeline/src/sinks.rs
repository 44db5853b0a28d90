//! The agent's sinks, opened from its config: SQLite (the default), stdout, and Kafka behind
//! the disk spool. Every setup problem (a directory that does not exist, a CA file that
//! cannot be read, a missing password variable) is a config error before any check runs.

use crate::agent::AgentError;
use crate::sqlite_sink::SqliteSink;
use netvantage_config::agent::Sinks;
use netvantage_sinks::kafka::KafkaSink;
use netvantage_sinks::stdout::StdoutSink;
use netvantage_sinks::{Sink, Spool, Spooled};
use std::sync::Arc;

pub struct OpenedSinks {
    pub sinks: Vec<Box<dyn Sink>>,
    /// The spool behind the Kafka sink, for the metrics.
    pub spool: Option<Arc<Spool>>,
}

/// The store's retention from the config's: a tier not given keeps the store's default.
pub fn retention_of(
    config: &netvantage_config::agent::RetentionConfig,
) -> netvantage_store::Retention {
    use netvantage_config::agent::Keep;
    let defaults = netvantage_store::Retention::default();
    let pick = |given: Option<Keep>, default: Option<i64>| match given {
        None => default,
        Some(Keep::Forever) => None,
        Some(Keep::For(d)) => Some(d.as_millis() as i64),
    };
    netvantage_store::Retention {
        raw_ms: pick(config.raw, defaults.raw_ms),
        minute_ms: pick(config.minute, defaults.minute_ms),
        hour_ms: pick(config.hour, defaults.hour_ms),
        day_ms: pick(config.day, defaults.day_ms),
    }
}

/// The connection log's retention from a config's: its records as `conns` says, its roll-ups
/// as `hour` and `day` say (the check results' tiers of the same size), each not given keeping
/// the store's default (records 30 days, hours 400, days forever).
pub fn conns_retention_of(
    config: &netvantage_config::agent::RetentionConfig,
) -> netvantage_store::ConnsRetention {
    use netvantage_config::agent::Keep;
    let defaults = netvantage_store::ConnsRetention::default();
    let pick = |given: Option<Keep>, default: Option<i64>| match given {
        None => default,
        Some(Keep::Forever) => None,
        Some(Keep::For(d)) => Some(d.as_millis() as i64),
    };
    netvantage_store::ConnsRetention {
        connections_ms: pick(config.conns, defaults.connections_ms),
        scans_ms: pick(config.conns, defaults.scans_ms),
        blocks_ms: pick(config.conns, defaults.blocks_ms),
        hour_ms: pick(config.hour, defaults.hour_ms),
        day_ms: pick(config.day, defaults.day_ms),
    }
}

pub fn open_sinks(config: &Sinks) -> Result<OpenedSinks, AgentError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let mut spool = None;
    if let Some(path) = &config.sqlite {
        let sink = SqliteSink::open(path)
            .map_err(|e| AgentError::Config(e.to_string()))?
            .with_retention(retention_of(&config.sqlite_retention))
            .with_conns_retention(conns_retention_of(&config.sqlite_retention));
        sinks.push(Box::new(sink));
    }
    if config.stdout {
        sinks.push(Box::new(StdoutSink::new()));
    }
    if let Some(settings) = &config.kafka {
        let disk = Arc::new(
            Spool::open(&settings.spool_dir, settings.spool_max_bytes).map_err(|e| {
                AgentError::Config(format!(
                    "cannot open the spool {}: {e}",
                    settings.spool_dir.display()
                ))
            })?,
        );
        let kafka = KafkaSink::new(settings).map_err(|e| AgentError::Config(e.to_string()))?;
        sinks.push(Box::new(Spooled::new(
            kafka,
            disk.clone(),
            settings.memory_records,
        )));
        spool = Some(disk);
    }
    Ok(OpenedSinks { sinks, spool })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvantage_config::agent::{Keep, RetentionConfig};
    use std::time::Duration;

    #[test]
    fn a_tier_not_configured_keeps_the_store_default() {
        let defaults = netvantage_store::Retention::default();
        assert_eq!(retention_of(&RetentionConfig::default()), defaults);
        let config = RetentionConfig {
            raw: Some(Keep::For(Duration::from_secs(3600))),
            day: Some(Keep::For(Duration::from_secs(86_400 * 3650))),
            hour: Some(Keep::Forever),
            minute: None,
            conns: Some(Keep::For(Duration::from_secs(86_400))),
        };
        let retention = retention_of(&config);
        assert_eq!(retention.raw_ms, Some(3_600_000));
        assert_eq!(retention.minute_ms, defaults.minute_ms);
        assert_eq!(retention.hour_ms, None, "forever");
        assert_eq!(retention.day_ms, Some(3650 * 86_400_000));
        let conns = conns_retention_of(&config);
        assert_eq!(
            (conns.connections_ms, conns.scans_ms, conns.blocks_ms),
            (Some(86_400_000), Some(86_400_000), Some(86_400_000))
        );
        assert_eq!(conns.hour_ms, None, "the hour tier's, forever");
        assert_eq!(conns.day_ms, Some(3650 * 86_400_000));
        assert_eq!(
            conns_retention_of(&RetentionConfig::default()),
            netvantage_store::ConnsRetention::default()
        );
    }
}

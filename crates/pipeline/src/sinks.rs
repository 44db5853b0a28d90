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

pub fn open_sinks(config: &Sinks) -> Result<OpenedSinks, AgentError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let mut spool = None;
    if let Some(path) = &config.sqlite {
        let sink = SqliteSink::open(path).map_err(|e| AgentError::Config(e.to_string()))?;
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

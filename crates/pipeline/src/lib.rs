//! netvantage's fleet pipeline: agents publish every check result, a consumer group stores them,
//! and reports judge targets across vantage points.
//!
//! - [`config`]: the agent's YAML config (pure, errors with file:line:column).
//! - [`agent`]: runs the `ports` and `http` engines and feeds the sinks.
//! - [`kafka`] and [`spool`]: the idempotent producer and the on-disk spool behind it.
//! - [`sqlite`]: the embedded store (the default sink).
//! - [`ingest`], [`postgres`], [`metrics`]: Kafka → PostgreSQL, exactly once per record id.
//! - [`report`]: verdicts across vantage points (pure).

pub mod agent;
/// The agent's config lives in `netvantage-config` (one YAML walker for every config).
pub use netvantage_config::agent as config;
pub mod ingest;
pub mod metrics;
pub mod postgres;
pub mod report;
pub mod sinks;
pub mod sqlite;
pub mod sqlite_sink;

//! netvantage's fleet pipeline: agents publish every check result, a consumer group stores them.
//!
//! - [`config`]: the agent's YAML config (pure, errors with file:line:column).
//! - [`agent`]: runs the `ports` and `http` engines and feeds the sinks ([`sinks`],
//!   [`sqlite_sink`]).
//! - [`ingest`], [`metrics`]: Kafka → PostgreSQL, exactly once per record id.
//!
//! The stores themselves (SQLite, PostgreSQL) are `netvantage_store`; the judgement across
//! vantage points is `netvantage_core::vantage`.
//!
//! It must not own machinery the crates below it provide: no scheduler of its own
//! (`netvantage_engine`), no store schema (`netvantage_store`), no sink lifecycle or spool
//! (`netvantage_sinks`), no HTTP server (`netvantage_server`), no signal handling
//! (`netvantage_runtime`).

pub mod agent;
/// The agent's config lives in `netvantage-config` (one YAML walker for every config).
pub use netvantage_config::agent as config;
pub mod ingest;
pub mod metrics;
pub mod shared_bans;
pub mod sinks;
pub mod sqlite_sink;

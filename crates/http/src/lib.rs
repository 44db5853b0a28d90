//! netvantage-http: everything `netvantage http` needs below the command line — the rules that turn one response into UP / DEGRADED / DOWN, per-domain
//! availability and the final summary (all pure, no I/O), and the HTTP(S) client that times
//! each phase, run as the engine's [`probe::HttpProbe`] under the one scheduler (the I/O).
//!
//! It must not print or exit: it returns values and errors and the CLI decides what to show.
//! It only ever talks to the URLs in the config (or the addresses the caller pins them to).

pub mod cert;
pub mod classify;
pub mod client;
pub mod probe;
pub mod report;

/// The endpoint list lives in `netvantage-config` (one YAML walker for every config).
pub use netvantage_config::endpoints as config;
pub use netvantage_config::{ConfigError, Endpoint, Scheme, StatusSet, parse_config};

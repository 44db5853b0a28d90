//! netvantage-http: everything `netvantage http` needs below the command line — the YAML
//! endpoint config, the rules that turn one response into UP / DEGRADED / DOWN, per-domain
//! availability and the final summary (all pure, no I/O), and the HTTP(S) client that times
//! each phase, run as the engine's [`probe::HttpProbe`] under the one scheduler (the I/O).
//!
//! It must not print or exit: it returns values and errors and the CLI decides what to show.
//! It only ever talks to the URLs in the config (or the addresses the caller pins them to).

pub mod cert;
pub mod classify;
pub mod client;
pub mod config;
pub mod probe;
pub mod report;
pub mod status;

pub use config::{ConfigError, Endpoint, Scheme, parse_config, parse_endpoint_list};
pub use status::StatusSet;

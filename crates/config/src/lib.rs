//! netvantage's configuration, pure: it parses text the caller has read and returns values or
//! errors that name the file, line, column and field. It never reads files, the environment or
//! the clock (secrets are *named* here and read by the caller).
//!
//! - [`yaml`]: the one YAML field walker both configs use.
//! - [`endpoints`]: the `netvantage http` endpoint list (also the agent's `http.endpoints`).
//! - [`agent`]: the agent's config (who, what to check, where results go).
//! - [`plan`]: every default and every cross-field rule, applied once, for CLI flags and YAML
//!   alike.

pub mod agent;
pub mod endpoints;
pub mod plan;
pub mod status;
pub mod yaml;

pub use endpoints::{Endpoint, Scheme, parse_config, parse_endpoint_list};
pub use status::StatusSet;
pub use yaml::ConfigError;

//! One module per subcommand: each wires its input, probes and sinks, and nothing more.

pub mod agent;
pub mod conns;
pub mod explain;
pub mod http;
pub mod ingest;
pub mod ports;
pub mod report;
pub mod serve;

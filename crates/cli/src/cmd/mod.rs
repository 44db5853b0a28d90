//! One module per subcommand: each wires its input, probes and sinks, and nothing more.

pub mod conns;
pub mod http;
pub mod ports;

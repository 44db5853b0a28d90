//! netvantage probes and their scheduler: the I/O half of the engine.
//!
//! - [`tcp`]: one TCP connect, classified (refused, timeout, unreachable, …), closed at once;
//!   on Linux through `connect_reactor`, an epoll set for connecting sockets only.
//! - [`dns`]: asynchronous, concurrent name resolution with TTL caching and `--resolve` pins.
//! - [`scheduler`]: rounds at a fixed interval, probes spread evenly across it, under a
//!   concurrency cap and an optional rate cap.
//! - [`limits`]: the open-file limit, raised and turned into a concurrency budget.
//!
//! Verdicts are not decided here: results go to `netvantage-core`, which is pure.

#[cfg(target_os = "linux")]
mod connect_reactor;
pub mod dns;
pub mod limits;
pub mod scheduler;
pub mod target_check;
pub mod tcp;

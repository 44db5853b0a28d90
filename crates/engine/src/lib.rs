//! netvantage's engine: the I/O half of "targets → scheduler → probe → CheckResult".
//!
//! - [`probe`]: the [`Probe`] trait — check one target, return its results. TCP
//!   ([`tcp_probe::TcpProbe`]) and HTTP (`netvantage-http`) are its two implementations.
//! - [`scheduler`]: the one scheduler. Fixed-rate rounds; a round's checks spread evenly over
//!   the interval (`ports`) or started together (`http`); per-target intervals; deadlines that are
//!   the check's timeout or, with [`scheduler::DeadlineRule::WithinRound`], never pass the next
//!   round's start; a concurrency cap and a rate cap.
//! - [`dns`]: the one resolver (hickory, TTL-cached, asked every round) and the one `--resolve`
//!   pin parser (`HOST:ADDR` and curl's `HOST:PORT:ADDR`), used by every probe.
//! - [`tcp`]: one TCP connect, classified and closed at once; on Linux through
//!   `connect_reactor`, an epoll set for connecting sockets only.
//!
//! Verdicts are not decided here: results go to `netvantage-core`, which is pure. This crate
//! must not print, exit or read configuration files.

#[cfg(target_os = "linux")]
mod connect_reactor;
pub mod dns;
pub mod probe;
pub mod scheduler;
pub mod tcp;
pub mod tcp_probe;

pub use probe::Probe;
pub use scheduler::{DeadlineRule, Event, RoundTracker, Schedule, Slot, Spread};

//! netvantage's sinks: where records go once a probe has produced them.
//!
//! - [`sink`]: the contract. A [`Sink`] takes batches of [`Envelope`]s, settles each record it
//!   accepted (delivered, or failed), flushes and closes with a [`SinkReport`], and declares its
//!   [`Guarantee`] (durable, at-least-once, best-effort).
//! - [`runner`]: every sink on a thread of its own behind one [`Fanout`]; a sink that cannot
//!   write retries with backoff from bounded memory, a sink that fails for good is isolated.
//! - [`spool`] and [`spooled`]: the disk spool, and [`Spooled`], the wrapper that puts it behind
//!   any sink — failed records are written to disk and replayed, and a segment is removed only
//!   once every record in it is delivered.
//! - [`stdout`] and [`kafka`]: two sinks (the SQLite sink writes through `netvantage-store`).
//! - [`secrets`]: passwords from the environment or files, never argv or config text.
//!
//! This crate must not decide what a record means: it moves bytes and counts them.

pub mod kafka;
pub mod runner;
pub mod secrets;
pub mod sink;
pub mod spool;
pub mod spooled;
pub mod stdout;

pub use runner::{Fanout, RunnerOptions, SinkHandle, SinkStats};
pub use sink::{Envelope, Guarantee, Record, Settle, Settlement, Sink, SinkError, SinkReport};
pub use spool::Spool;
pub use spooled::{Backlog, Spooled};

/// What the unit tests of several modules build their records from.
#[cfg(test)]
mod test_support {
    use crate::sink::Envelope;
    use netvantage_core::{CheckResult, ResultRecord};
    use std::time::Duration;

    /// A TCP result with a distinct id and target per `n`.
    pub fn envelope(n: u64) -> Envelope {
        Envelope::check(ResultRecord {
            id: uuid::Uuid::from_u64_pair(0, n),
            agent: "a".into(),
            vantage: "v".into(),
            check: CheckResult::tcp(format!("t{n}:1"), None, 0, Duration::ZERO, None),
        })
    }
}

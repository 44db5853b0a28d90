//! The pure model of netvantage: what a target is, what one check produced, and the rules that
//! turn a stream of checks into verdicts (down, flappy, ok) and diagnoses.
//!
//! Nothing in this crate does I/O, and only [`clock::SystemClock`] reads the time: every rule
//! takes the inputs and the time as values, so the subtle rules (five failures in a row, flap windows, Nagios' percent state
//! change) are tested exhaustively without sockets or sleeps.

pub mod check;
pub mod clock;
pub mod conns_record;
pub mod diagnosis;
pub mod duration;
pub mod findings;
pub mod flap;
pub mod fleet;
pub mod latency;
pub mod pin;
pub mod record;
pub mod status;
pub mod target;
pub mod vantage;
pub mod verdict;

pub use check::{CheckKind, CheckResult, HttpDetails, HttpObservation, Outcome, Phases, Reason};
pub use conns_record::{ConnsEvent, ConnsRecord};
pub use duration::parse_duration;
pub use record::ResultRecord;
pub use status::ExitStatus;
pub use verdict::Verdict;

/// Per-host vectors usually hold one or two items (one address, one transition, one latency
/// sample in a single sweep): grow from exactly one instead of `Vec`'s default four, which
/// saves a few hundred bytes per host on a large fleet.
pub(crate) fn push_compact<T>(items: &mut Vec<T>, item: T) {
    if items.capacity() == 0 {
        items.reserve_exact(1);
    }
    items.push(item);
}

//! The pure model of netvantage: what a target is, what one check produced, and the rules that
//! turn a stream of checks into verdicts (down, flappy, ok) and diagnoses.
//!
//! Nothing in this crate does I/O or reads a clock: every function takes the inputs and the time
//! as values, so the subtle rules (five failures in a row, flap windows, Nagios' percent state
//! change) are tested exhaustively without sockets or sleeps.

pub mod check;
pub mod diagnosis;
pub mod duration;
pub mod flap;
pub mod fleet;
pub mod latency;
pub mod target;
pub mod verdict;

pub use check::{CheckKind, CheckResult, Outcome, Reason};
pub use duration::parse_duration;
pub use verdict::Verdict;

//! The `Probe` abstraction: how one target is checked once. The scheduler decides *when* and
//! under which deadline; a probe only says what it saw.

use netvantage_core::CheckResult;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

pub trait Probe: Send + Sync + 'static {
    /// One thing to check (a host and port, an HTTP endpoint), prepared once per run.
    type Target: Send + Sync + 'static;

    /// Checks `target` once and returns what it saw: one result per address tried, or one for a
    /// name that did not resolve. Never fails — every problem is a result with a reason — and
    /// is done by `deadline`.
    fn check(
        &self,
        target: &Self::Target,
        deadline: Instant,
    ) -> impl Future<Output = Vec<CheckResult>> + Send;

    /// How long one check of `target` may take at most.
    fn timeout(&self, target: &Self::Target) -> Duration;

    /// `target` is checked every this many rounds (an endpoint with its own, longer interval).
    fn rounds_between(&self, _target: &Self::Target) -> u64 {
        1
    }

    /// What is recorded for a check that could not even start before its deadline (every
    /// socket was busy for the whole round): a failure of the check, never a silent gap.
    fn not_started(&self, target: &Self::Target, why: &str) -> Vec<CheckResult>;
}

//! The open-file limit decides how many sockets may be open at once. We raise the soft limit to
//! the hard limit at start and size concurrency from what we got, so a large fleet never fails
//! with "too many open files" and a small machine is not overcommitted.

/// File descriptors kept for everything that is not a probe socket (stdio, the resolver's
/// sockets, the runtime's epoll and eventfds, log files, the metrics server).
pub const RESERVED_FDS: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the resulting soft limit.
pub fn raise_nofile_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!("could not raise the open-file limit: {err}");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024)
        }
    }
}

/// How many sockets may be open at once under `nofile` descriptors.
pub fn socket_budget(nofile: u64) -> usize {
    nofile.saturating_sub(RESERVED_FDS).max(16) as usize
}

/// The fewest descriptors netvantage runs with: the runtime's epoll, eventfds and signal pipe,
/// stdio, a resolver socket and a few sockets to check with. Below it a run would fail in
/// confusing places (a panic inside the runtime), so it is refused up front.
pub const MINIMUM_FDS: u64 = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooFewFiles {
    pub limit: u64,
}

impl std::fmt::Display for TooFewFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the open-file limit is {} (hard limit included); netvantage needs at least {MINIMUM_FDS}: raise it with `ulimit -n` or LimitNOFILE=",
            self.limit
        )
    }
}

impl std::error::Error for TooFewFiles {}

/// Raises the limit as [`raise_nofile_limit`] does and refuses one too small to run with.
pub fn ensure_enough_files() -> Result<u64, TooFewFiles> {
    let limit = raise_nofile_limit();
    if limit < MINIMUM_FDS {
        Err(TooFewFiles { limit })
    } else {
        Ok(limit)
    }
}

/// `wanted` sockets at once, lowered (with a warning) to what the open-file limit allows.
pub fn cap_to_open_files(wanted: usize, nofile: u64) -> usize {
    let budget = socket_budget(nofile);
    if wanted > budget {
        tracing::warn!(
            wanted,
            budget,
            nofile,
            "concurrency lowered to fit the open-file limit"
        );
    }
    wanted.min(budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_leaves_reserve_and_never_hits_zero() {
        assert_eq!(socket_budget(20_000), 19_744);
        assert_eq!(socket_budget(100), 16);
    }

    #[test]
    fn concurrency_never_exceeds_the_budget() {
        assert_eq!(cap_to_open_files(256, 20_000), 256);
        assert_eq!(cap_to_open_files(50_000, 20_000), 19_744);
    }

    #[test]
    fn raising_reaches_at_least_the_old_soft_limit() {
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        let raised = raise_nofile_limit();
        assert!(raised >= soft && raised <= hard, "{soft} {raised} {hard}");
    }
}

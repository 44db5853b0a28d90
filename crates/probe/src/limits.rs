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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_leaves_reserve_and_never_hits_zero() {
        assert_eq!(socket_budget(20_000), 19_744);
        assert_eq!(socket_budget(100), 16);
    }

    #[test]
    fn raising_reaches_at_least_the_old_soft_limit() {
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        let raised = raise_nofile_limit();
        assert!(raised >= soft && raised <= hard, "{soft} {raised} {hard}");
    }
}

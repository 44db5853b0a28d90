//! Exit statuses: the one mapping from what netvantage found to the process's exit code.
//!
//! netvantage follows the Nagios plugin convention, so it drops into existing monitoring (cron
//! jobs, Nagios/Icinga checks, CI gates): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. UNKNOWN is
//! also what a usage or input error returns (the check could not judge anything), and 4 is a
//! failure of netvantage's own that is not about the input.

/// What a run ended with. Ordered: the worst status of a run is its `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExitStatus {
    /// Everything judged is fine.
    Ok,
    /// Something needs a look: flappy, degraded, down from some vantage points only.
    Warning,
    /// Something is down.
    Critical,
    /// Bad usage or input (arguments, config, input lines): nothing could be judged.
    Usage,
    /// netvantage failed on its own (the runtime could not start, a store broke mid-run).
    Internal,
}

impl ExitStatus {
    pub const fn code(self) -> i32 {
        match self {
            ExitStatus::Ok => 0,
            ExitStatus::Warning => 1,
            ExitStatus::Critical => 2,
            ExitStatus::Usage => 3,
            ExitStatus::Internal => 4,
        }
    }

    /// The worst of several statuses; `Ok` when there are none.
    pub fn worst(statuses: impl IntoIterator<Item = ExitStatus>) -> ExitStatus {
        statuses.into_iter().max().unwrap_or(ExitStatus::Ok)
    }
}

/// Anything netvantage judges maps to a status the same way everywhere.
pub trait Judged {
    fn exit_status(&self) -> ExitStatus;
}

impl Judged for crate::verdict::Verdict {
    fn exit_status(&self) -> ExitStatus {
        match self {
            crate::verdict::Verdict::Ok => ExitStatus::Ok,
            crate::verdict::Verdict::Flappy => ExitStatus::Warning,
            crate::verdict::Verdict::Down => ExitStatus::Critical,
        }
    }
}

impl Judged for crate::check::Outcome {
    fn exit_status(&self) -> ExitStatus {
        match self {
            crate::check::Outcome::Up => ExitStatus::Ok,
            crate::check::Outcome::Degraded => ExitStatus::Warning,
            crate::check::Outcome::Down => ExitStatus::Critical,
        }
    }
}

/// The exit code of a run: the worst judgement, 0 when nothing was judged.
pub fn exit_code<'a, T: Judged + 'a>(judged: impl IntoIterator<Item = &'a T>) -> i32 {
    ExitStatus::worst(judged.into_iter().map(Judged::exit_status)).code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Outcome;
    use crate::verdict::Verdict;

    #[test]
    fn nagios_codes() {
        assert_eq!(ExitStatus::Ok.code(), 0);
        assert_eq!(ExitStatus::Warning.code(), 1);
        assert_eq!(ExitStatus::Critical.code(), 2);
        assert_eq!(ExitStatus::Usage.code(), 3);
        assert_eq!(ExitStatus::Internal.code(), 4);
    }

    #[test]
    fn the_run_exits_with_the_worst_judgement() {
        assert_eq!(exit_code::<Verdict>(&[]), 0);
        assert_eq!(exit_code(&[Verdict::Ok, Verdict::Flappy]), 1);
        assert_eq!(exit_code(&[Verdict::Down, Verdict::Flappy, Verdict::Ok]), 2);
        assert_eq!(exit_code(&[Outcome::Up, Outcome::Degraded]), 1);
        assert_eq!(exit_code(&[Outcome::Down, Outcome::Up]), 2);
    }
}

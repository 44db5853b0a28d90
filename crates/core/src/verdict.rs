//! The verdict state machine of one host: down, flappy or reporting ok.
//!
//! A *round* is one check of every address of a host. Its [`RoundState`] is `Up` when every
//! address answered, `Down` when none did (or the name did not resolve), `Partial` otherwise —
//! a DNS round-robin with one dead backend is exactly the "flapping" clients see.
//!
//! - **down**: the latest `down_after` rounds were all `Down`, or every round so far was `Down`
//!   (a run shorter than `down_after` rounds whose every check failed is down, never "ok": a
//!   verdict must not read as ok for a target nothing ever answered for).
//! - **flappy** (default rule): not down, and the observation window holds both a success and a
//!   failure (a `Partial` round holds both). The window is the whole run, or the last
//!   `window` of time when one is given (`--watch` uses one so old trouble ages out).
//! - **flappy** (`--flap-detection nagios`): not down, and Nagios' weighted percent state change
//!   says flapping (see [`crate::flap`]).
//! - **reporting ok**: otherwise.

use crate::flap::{NagiosFlap, NagiosThresholds};
use serde::Serialize;
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Flappy,
    Down,
}

impl Verdict {
    /// The words after "is" in a verdict line.
    pub fn phrase(self) -> &'static str {
        match self {
            Verdict::Ok => "reporting ok",
            Verdict::Flappy => "flappy",
            Verdict::Down => "down",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::Flappy => "flappy",
            Verdict::Down => "down",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoundState {
    Up,
    Partial,
    Down,
}

impl RoundState {
    pub fn from_counts(up: usize, total: usize) -> RoundState {
        match up {
            0 => RoundState::Down,
            n if n >= total => RoundState::Up,
            _ => RoundState::Partial,
        }
    }
    fn had_success(self) -> bool {
        self != RoundState::Down
    }
    fn had_failure(self) -> bool {
        self != RoundState::Up
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlapRule {
    /// Both a success and a failure within the window (`None`: the whole run).
    Window(Option<Duration>),
    Nagios(NagiosThresholds),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VerdictRules {
    pub down_after: u32,
    pub flap: FlapRule,
}

impl Default for VerdictRules {
    fn default() -> Self {
        VerdictRules {
            down_after: 5,
            flap: FlapRule::Window(None),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct HostVerdict {
    consecutive_down: u32,
    /// Rounds observed in all.
    rounds: u32,
    /// Window rule with a bounded window: the rounds inside it.
    window: VecDeque<(Duration, RoundState)>,
    /// Window rule over the whole run: only whether each kind was ever seen.
    ever_success: bool,
    ever_failure: bool,
    nagios: NagiosFlap,
    current: Option<Verdict>,
}

impl HostVerdict {
    /// Records one round observed at `at` (time since the run began) and returns the verdict
    /// change it caused, if any. The first round always reports a change from `None`.
    pub fn observe(
        &mut self,
        at: Duration,
        state: RoundState,
        rules: &VerdictRules,
    ) -> Option<(Option<Verdict>, Verdict)> {
        self.rounds = self.rounds.saturating_add(1);
        self.consecutive_down = if state == RoundState::Down {
            self.consecutive_down.saturating_add(1)
        } else {
            0
        };
        let flapping = match rules.flap {
            FlapRule::Window(None) => {
                self.ever_success |= state.had_success();
                self.ever_failure |= state.had_failure();
                self.ever_success && self.ever_failure
            }
            FlapRule::Window(Some(width)) => {
                self.window.push_back((at, state));
                while let Some(&(oldest, _)) = self.window.front() {
                    if at.saturating_sub(oldest) >= width && self.window.len() > 1 {
                        self.window.pop_front();
                    } else {
                        break;
                    }
                }
                let success = self.window.iter().any(|(_, s)| s.had_success());
                let failure = self.window.iter().any(|(_, s)| s.had_failure());
                success && failure
            }
            FlapRule::Nagios(thresholds) => self.nagios.observe(state, thresholds),
        };
        let every_round_down = self.consecutive_down == self.rounds;
        let next = if self.consecutive_down >= rules.down_after.max(1) || every_round_down {
            Verdict::Down
        } else if flapping {
            Verdict::Flappy
        } else {
            Verdict::Ok
        };
        let previous = self.current.replace(next);
        (previous != Some(next)).then_some((previous, next))
    }

    /// The verdict so far; a host never checked is reported ok (nothing says otherwise).
    pub fn verdict(&self) -> Verdict {
        self.current.unwrap_or(Verdict::Ok)
    }

    pub fn consecutive_down(&self) -> u32 {
        self.consecutive_down
    }

    /// Rounds the verdict rests on.
    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    pub fn nagios_percent(&self) -> f64 {
        self.nagios.percent_state_change()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RoundState::{Down, Partial, Up};

    fn run(states: &[RoundState], rules: VerdictRules) -> HostVerdict {
        let mut host = HostVerdict::default();
        for (i, &s) in states.iter().enumerate() {
            host.observe(Duration::from_secs(10 * i as u64), s, &rules);
        }
        host
    }

    fn verdict(states: &[RoundState]) -> Verdict {
        run(states, VerdictRules::default()).verdict()
    }

    #[test]
    fn down_after_five_consecutive_failures() {
        assert_eq!(verdict(&[Down; 5]), Verdict::Down);
        assert_eq!(verdict(&[Up, Down, Down, Down, Down]), Verdict::Flappy);
        assert_eq!(
            verdict(&[Up, Up, Down, Down, Down, Down, Down]),
            Verdict::Down
        );
    }

    #[test]
    fn four_failures_then_success_is_flappy_not_down() {
        assert_eq!(verdict(&[Down, Down, Down, Down, Up]), Verdict::Flappy);
    }

    #[test]
    fn every_round_failed_is_down_whatever_the_count() {
        // A one-sweep run (`--rounds 1`) or a short window: nothing ever answered, so it is
        // down — never "reporting ok".
        assert_eq!(verdict(&[Down]), Verdict::Down);
        assert_eq!(verdict(&[Down, Down, Down]), Verdict::Down);
        // One success anywhere and fewer than five failures in a row: flappy, not down.
        assert_eq!(verdict(&[Up, Down, Down, Down]), Verdict::Flappy);
        assert_eq!(verdict(&[Down, Down, Up]), Verdict::Flappy);
    }

    #[test]
    fn all_up_is_ok_and_one_failure_makes_flappy() {
        assert_eq!(verdict(&[Up; 12]), Verdict::Ok);
        assert_eq!(verdict(&[Up, Up, Down, Up, Up]), Verdict::Flappy);
        assert_eq!(verdict(&[Down, Up, Up, Up, Up]), Verdict::Flappy);
    }

    #[test]
    fn partial_round_is_flappy_round_robin_with_a_dead_backend() {
        assert_eq!(verdict(&[Partial; 6]), Verdict::Flappy);
        assert_eq!(RoundState::from_counts(1, 2), Partial);
        assert_eq!(RoundState::from_counts(2, 2), Up);
        assert_eq!(RoundState::from_counts(0, 2), Down);
    }

    #[test]
    fn down_wins_over_flappy_and_recovery_returns_to_flappy() {
        let mut states = vec![Up, Down, Up];
        states.extend([Down; 5]);
        assert_eq!(verdict(&states), Verdict::Down);
        states.push(Up);
        assert_eq!(verdict(&states), Verdict::Flappy);
    }

    #[test]
    fn custom_down_after() {
        let rules = VerdictRules {
            down_after: 2,
            ..Default::default()
        };
        assert_eq!(run(&[Up, Down, Down], rules).verdict(), Verdict::Down);
    }

    #[test]
    fn bounded_window_lets_old_trouble_age_out() {
        let rules = VerdictRules {
            down_after: 5,
            flap: FlapRule::Window(Some(Duration::from_secs(30))),
        };
        // Rounds every 10 s: the failure at t=10 leaves a 30 s window by t=40.
        let host = run(&[Up, Down, Up, Up], rules);
        assert_eq!(host.verdict(), Verdict::Flappy);
        let host = run(&[Up, Down, Up, Up, Up], rules);
        assert_eq!(host.verdict(), Verdict::Ok);
    }

    #[test]
    fn transitions_are_reported_once() {
        let rules = VerdictRules::default();
        let mut host = HostVerdict::default();
        let t = Duration::ZERO;
        assert_eq!(host.observe(t, Up, &rules), Some((None, Verdict::Ok)));
        assert_eq!(host.observe(t, Up, &rules), None);
        assert_eq!(
            host.observe(t, Down, &rules),
            Some((Some(Verdict::Ok), Verdict::Flappy))
        );
        for _ in 0..3 {
            assert_eq!(host.observe(t, Down, &rules), None);
        }
        assert_eq!(
            host.observe(t, Down, &rules),
            Some((Some(Verdict::Flappy), Verdict::Down))
        );
        let mut never_up = HostVerdict::default();
        assert_eq!(
            never_up.observe(t, Down, &rules),
            Some((None, Verdict::Down))
        );
        assert_eq!(never_up.observe(t, Down, &rules), None);
        assert_eq!(
            never_up.observe(t, Up, &rules),
            Some((Some(Verdict::Down), Verdict::Flappy))
        );
    }

    #[test]
    fn nagios_rule_needs_enough_change() {
        let rules = VerdictRules {
            down_after: 5,
            flap: FlapRule::Nagios(NagiosThresholds::default()),
        };
        let mut states = vec![Up; 18];
        states.push(Down);
        states.extend([Up, Up]);
        // One change in and one out near the newest end: about 11.6%, below the 20% high mark.
        assert_eq!(run(&states, rules).verdict(), Verdict::Ok);
        let alternating: Vec<_> = (0..12)
            .map(|i| if i % 3 == 0 { Down } else { Up })
            .collect();
        assert_eq!(run(&alternating, rules).verdict(), Verdict::Flappy);
    }

    proptest::proptest! {
        #[test]
        fn down_iff_last_five_rounds_down(states in proptest::collection::vec(0u8..3, 1..40)) {
            let states: Vec<RoundState> = states.into_iter().map(|s| [Up, Partial, Down][s as usize]).collect();
            let v = verdict(&states);
            let last_five_down = states.len() >= 5 && states[states.len() - 5..].iter().all(|&s| s == Down);
            let all_down = states.iter().all(|&s| s == Down);
            proptest::prop_assert_eq!(v == Verdict::Down, last_five_down || all_down);
            let last_five_down = last_five_down || all_down;
            if !last_five_down {
                let success = states.iter().any(|&s| s != Down);
                let failure = states.iter().any(|&s| s != Up);
                proptest::prop_assert_eq!(v == Verdict::Flappy, success && failure);
            }
        }
    }
}

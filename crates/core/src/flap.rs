//! Nagios-style flap detection: weighted percent state change over the last 21 checks.
//!
//! The rule follows Nagios Core's `flapping.c` (documented in "Detection and Handling of State
//! Flapping", Nagios Core 4 manual): keep the last 21 states, look at the 20 transitions between
//! them, weight each change linearly from 0.75 (oldest) to 1.25 (newest), and express the sum as
//! a percentage of 20. A host starts flapping when the percentage reaches the high threshold and
//! stops only when it falls below the low one (hysteresis). Defaults are those of the sample
//! `nagios.cfg`: `low_service_flap_threshold=5.0`, `high_service_flap_threshold=20.0`.
//!
//! Before 21 states exist, the missing older slots count as "no change" (as Nagios' zeroed
//! history does), so a single early failure does not make a host flap.

use crate::verdict::RoundState;
use std::collections::VecDeque;

/// Nagios' `MAX_STATE_HISTORY_ENTRIES`.
pub const HISTORY: usize = 21;
const LOW_WEIGHT: f64 = 0.75;
const HIGH_WEIGHT: f64 = 1.25;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NagiosThresholds {
    pub low: f64,
    pub high: f64,
}

impl Default for NagiosThresholds {
    fn default() -> Self {
        NagiosThresholds {
            low: 5.0,
            high: 20.0,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct NagiosFlap {
    states: VecDeque<RoundState>,
    flapping: bool,
}

impl NagiosFlap {
    /// Adds a state and returns whether the host is flapping afterwards.
    pub fn observe(&mut self, state: RoundState, thresholds: NagiosThresholds) -> bool {
        if self.states.len() == HISTORY {
            self.states.pop_front();
        }
        self.states.push_back(state);
        let percent = self.percent_state_change();
        if !self.flapping && percent >= thresholds.high {
            self.flapping = true;
        } else if self.flapping && percent < thresholds.low {
            self.flapping = false;
        }
        self.flapping
    }

    pub fn is_flapping(&self) -> bool {
        self.flapping
    }

    /// The weighted percent state change over the history held now.
    pub fn percent_state_change(&self) -> f64 {
        let transitions = HISTORY - 1;
        // Right-align the history in the 21 slots: transition `x` (1 = oldest) of a full history.
        let first_slot = transitions + 1 - self.states.len();
        let mut weighted = 0.0;
        for (i, pair) in self
            .states
            .iter()
            .collect::<Vec<_>>()
            .windows(2)
            .enumerate()
        {
            if pair[0] != pair[1] {
                let x = first_slot + i + 1;
                weighted += (x - 1) as f64 * (HIGH_WEIGHT - LOW_WEIGHT) / (transitions - 1) as f64
                    + LOW_WEIGHT;
            }
        }
        weighted * 100.0 / transitions as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RoundState::{Down, Up};

    fn feed(states: &[RoundState]) -> NagiosFlap {
        let mut flap = NagiosFlap::default();
        for &s in states {
            flap.observe(s, NagiosThresholds::default());
        }
        flap
    }

    #[test]
    fn steady_state_is_zero_percent() {
        assert_eq!(feed(&[Up; 30]).percent_state_change(), 0.0);
        assert_eq!(feed(&[Down; 30]).percent_state_change(), 0.0);
    }

    #[test]
    fn alternating_full_history_is_one_hundred_percent() {
        let states: Vec<_> = (0..21)
            .map(|i| if i % 2 == 0 { Up } else { Down })
            .collect();
        let flap = feed(&states);
        assert!((flap.percent_state_change() - 100.0).abs() < 1e-9);
        assert!(flap.is_flapping());
    }

    #[test]
    fn newest_change_weighs_1_25_oldest_0_75() {
        let mut newest = vec![Up; 20];
        newest.push(Down);
        assert!((feed(&newest).percent_state_change() - 1.25 * 5.0).abs() < 1e-9);
        let mut oldest = vec![Up];
        oldest.extend([Down; 20]);
        assert!((feed(&oldest).percent_state_change() - 0.75 * 5.0).abs() < 1e-9);
    }

    #[test]
    fn one_early_failure_does_not_flap() {
        let flap = feed(&[Up, Down, Up]);
        assert!(!flap.is_flapping(), "{}", flap.percent_state_change());
    }

    #[test]
    fn hysteresis_keeps_flapping_until_below_low_threshold() {
        let mut flap = feed(&[Up, Down, Up, Down, Up, Down]);
        assert!(flap.is_flapping());
        // Steady again: the changes age out slowly; between low and high it stays flapping.
        let mut stayed_between = false;
        let mut stopped_at = None;
        for i in 0..21 {
            let flapping = flap.observe(Up, NagiosThresholds::default());
            let pct = flap.percent_state_change();
            if flapping && pct < 20.0 {
                stayed_between = true;
            }
            if !flapping && stopped_at.is_none() {
                assert!(pct < 5.0);
                stopped_at = Some(i);
            }
        }
        assert!(stayed_between, "hysteresis never held");
        assert!(stopped_at.is_some(), "never stopped flapping");
    }
}

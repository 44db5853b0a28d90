//! The state of every host of a run: its verdict machine plus the evidence an SRE needs to see
//! *why* (failures by reason, latencies, transitions with times, per-address results).
//!
//! Fed with the [`CheckResult`]s of one round of one host at a time; pure and clock-free.

use crate::check::{CheckResult, Reason};
use crate::latency::{LatencySamples, LatencySummary};
use crate::push_compact;
use crate::verdict::{HostVerdict, RoundState, Verdict, VerdictRules};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;

/// Transitions kept per host; older ones are dropped (the count says how many there were).
pub const MAX_TRANSITIONS: usize = 64;
/// Addresses tracked per host (a name rarely has more; extra ones are still checked and counted
/// in the round state, but get no row of their own).
pub const MAX_ADDRESSES: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// Time since the run began.
    #[serde(skip)]
    pub at: Duration,
    pub ts_unix_ms: i64,
    pub from: Option<Verdict>,
    pub to: Verdict,
    /// The most frequent failure reason of the round that caused it, if it had failures.
    pub reason: Option<Reason>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AddressStats {
    pub address: Option<SocketAddr>,
    pub checks: u32,
    pub failures: u32,
    pub last_reason: Option<Reason>,
    pub last_ok: bool,
}

#[derive(Debug, Clone, Default)]
pub struct HostState {
    pub verdict: HostVerdict,
    pub rounds: u32,
    pub checks: u32,
    pub failures: u32,
    pub failures_by_reason: [u32; Reason::ALL.len()],
    pub latency: LatencySamples,
    pub transitions: Vec<Transition>,
    pub transitions_total: u32,
    pub addresses: Vec<AddressStats>,
    pub last_error: Option<String>,
    pub last_reason: Option<Reason>,
}

impl HostState {
    /// Records one round of one host: the results of every address (or the one DNS failure).
    pub fn observe_round(
        &mut self,
        at: Duration,
        results: &[CheckResult],
        rules: &VerdictRules,
    ) -> Option<Transition> {
        let up = results.iter().filter(|r| r.outcome.is_up()).count();
        let state = RoundState::from_counts(up, results.len());
        self.rounds += 1;
        let mut round_reasons = [0u32; Reason::ALL.len()];
        for result in results {
            self.checks += 1;
            let slot = address_slot(&mut self.addresses, result.address);
            match result.reason.filter(|_| !result.outcome.is_up()) {
                None => {
                    self.latency.add(result.latency());
                    if let Some(slot) = slot {
                        slot.checks += 1;
                        slot.last_ok = true;
                    }
                }
                Some(reason) => {
                    self.failures += 1;
                    self.failures_by_reason[reason as usize] += 1;
                    round_reasons[reason as usize] += 1;
                    self.last_reason = Some(reason);
                    self.last_error = result.error.clone();
                    if let Some(slot) = slot {
                        slot.checks += 1;
                        slot.failures += 1;
                        slot.last_ok = false;
                        slot.last_reason = Some(reason);
                    }
                }
            }
        }
        let (from, to) = self.verdict.observe(at, state, rules)?;
        let reason = (0..Reason::ALL.len())
            .filter(|&i| round_reasons[i] > 0)
            .max_by_key(|&i| (round_reasons[i], std::cmp::Reverse(i)))
            .map(|i| Reason::ALL[i]);
        let transition = Transition {
            at,
            ts_unix_ms: results.first().map(|r| r.ts_unix_ms).unwrap_or_default(),
            from,
            to,
            reason,
        };
        self.transitions_total += 1;
        if self.transitions.len() == MAX_TRANSITIONS {
            self.transitions.remove(0);
        }
        push_compact(&mut self.transitions, transition.clone());
        Some(transition)
    }

    pub fn verdict(&self) -> Verdict {
        self.verdict.verdict()
    }

    /// Addresses that failed at least once, in the order first seen. A name that did not
    /// resolve has no address: it is not listed here (its reason is `dns`).
    pub fn failing_addresses(&self) -> Vec<SocketAddr> {
        self.addresses
            .iter()
            .filter(|a| a.failures > 0)
            .filter_map(|a| a.address)
            .collect()
    }

    pub fn latency_summary(&self) -> Option<LatencySummary> {
        self.latency.summary()
    }

    /// Failure counts by reason, only the reasons that occurred.
    pub fn reason_counts(&self) -> Vec<(Reason, u32)> {
        Reason::ALL
            .iter()
            .zip(self.failures_by_reason)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (*r, n))
            .collect()
    }
}

fn address_slot(
    addresses: &mut Vec<AddressStats>,
    address: Option<SocketAddr>,
) -> Option<&mut AddressStats> {
    if let Some(i) = addresses.iter().position(|a| a.address == address) {
        return Some(&mut addresses[i]);
    }
    if addresses.len() >= MAX_ADDRESSES {
        return None;
    }
    push_compact(
        addresses,
        AddressStats {
            address,
            ..Default::default()
        },
    );
    addresses.last_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(addr: &str) -> CheckResult {
        CheckResult::tcp(
            "h:80".into(),
            Some(addr.parse().unwrap()),
            1000,
            Duration::from_millis(2),
            None,
        )
    }
    fn failed(addr: &str, reason: Reason) -> CheckResult {
        CheckResult::tcp(
            "h:80".into(),
            Some(addr.parse().unwrap()),
            2000,
            Duration::from_millis(1),
            Some((reason, "x".into())),
        )
    }

    #[test]
    fn round_robin_with_one_dead_backend_names_it() {
        let rules = VerdictRules::default();
        let mut host = HostState::default();
        for i in 0..6 {
            let round = [ok("10.0.0.1:80"), failed("10.0.0.2:80", Reason::Refused)];
            host.observe_round(Duration::from_secs(i), &round, &rules);
        }
        assert_eq!(host.verdict(), Verdict::Flappy);
        assert_eq!(
            host.failing_addresses(),
            vec!["10.0.0.2:80".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(host.reason_counts(), vec![(Reason::Refused, 6)]);
        assert_eq!(host.checks, 12);
    }

    #[test]
    fn host_is_down_only_when_every_address_is() {
        let rules = VerdictRules::default();
        let mut host = HostState::default();
        for i in 0..5 {
            let round = [
                failed("10.0.0.1:80", Reason::Timeout),
                failed("10.0.0.2:80", Reason::Refused),
            ];
            let t = host.observe_round(Duration::from_secs(i), &round, &rules);
            // Every round so far failed: down from the first one on.
            if i == 0 {
                let t = t.expect("became down");
                assert_eq!(t.to, Verdict::Down);
                assert_eq!(t.reason, Some(Reason::Refused)); // tie broken by reason order
            } else {
                assert_eq!(t, None);
            }
        }
        assert_eq!(host.verdict(), Verdict::Down);
        assert_eq!(host.failing_addresses().len(), 2);
        assert!(host.latency_summary().is_none());
    }

    #[test]
    fn transitions_are_recorded_with_reason_and_time() {
        let rules = VerdictRules::default();
        let mut host = HostState::default();
        host.observe_round(Duration::from_secs(0), &[ok("10.0.0.1:80")], &rules);
        host.observe_round(
            Duration::from_secs(10),
            &[failed("10.0.0.1:80", Reason::Timeout)],
            &rules,
        );
        assert_eq!(host.transitions.len(), 2);
        assert_eq!(host.transitions[1].from, Some(Verdict::Ok));
        assert_eq!(host.transitions[1].to, Verdict::Flappy);
        assert_eq!(host.transitions[1].reason, Some(Reason::Timeout));
        assert_eq!(host.transitions[1].at, Duration::from_secs(10));
        assert_eq!(host.latency_summary().unwrap().max_ms, 2.0);
    }
}

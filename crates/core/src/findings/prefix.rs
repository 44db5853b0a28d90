//! Prefix search: which addresses failed *together*, and what is the smallest prefix that holds
//! them?
//!
//! Input: every checked address (sorted, with its check schedule, so the search can tell which
//! checks were due in a time window) and the failures (one per outage of one address, with its
//! time span and a reason class). Output: outages, each a prefix, a window and the figures
//! behind it.
//!
//! The search, for the failures of one reason class:
//! 1. cluster the failures by when they *began*: a failure joins a cluster when it starts
//!    before the `until_ms` of one already in it (the caller gives one check interval after the
//!    start: addresses that went dark together are each seen failing at their next check);
//! 2. the cluster's window runs from its first start to its last end, leaving out starts and
//!    ends far from the bulk (so one host that was failing already, or goes on failing, does
//!    not stretch it); its prefix is the smallest one covering its addresses (their longest common
//!    prefix). It is an outage when, inside the prefix and the window, at least
//!    [`Rules::density`] of the checks that were due failed and at least that share of the
//!    addresses checked failed, when at least one address *outside* the prefix was checked in
//!    the window and answered (otherwise everything failed: that is not a subnet), and when
//!    chance cannot explain it (below);
//! 3. otherwise split the cluster at the first bit where its addresses differ and search both
//!    halves again, each re-clustered in time.
//!
//! So a /25 outage reads as the /25, and two /24s that failed at different times as two /24s.
//! A cluster is never smaller than [`Rules::min_failing`] addresses, and never one that
//! independent failures would produce by chance: with a share `p` of the other addresses
//! failing at some point, `n` addresses failing together in a table of `N` is expected about
//! `N·p^n` times; that must stay below [`Rules::chance`]. Each recursion level partitions the
//! failures, so the work is `O(F log F)` per level, at most 32 (IPv4) or 128 (IPv6) levels, plus
//! density scans that stop as soon as the answer is known.

use std::collections::HashSet;

/// The checked addresses, ascending; one entry per address of one series (an address checked
/// on two ports, or from two vantage points, is two entries).
pub trait AddressTable {
    /// Address width: 32 (IPv4) or 128 (IPv6).
    fn bits(&self) -> u32;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn address(&self, entry: usize) -> u128;
    /// How many of the entry's checks were due within `[from_ms, to_ms]`.
    fn checks_between(&self, entry: usize, from_ms: i64, to_ms: i64) -> u64;
}

/// One outage of one entry: its `failed_checks` failed checks ran from `start_ms` to `end_ms`;
/// failures that start by `until_ms` may belong to the same event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub entry: u32,
    pub start_ms: i64,
    pub end_ms: i64,
    pub until_ms: i64,
    pub failed_checks: u32,
    /// Failures are only grouped with failures of the same class (the caller's reason groups).
    pub class: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Shortest prefix that can be a subnet (8 for IPv4, 32 for IPv6).
    pub min_len: u32,
    /// Share of the prefix's due checks (and of its checked addresses) that must have failed.
    pub density: f64,
    pub min_failing: usize,
    /// Largest expected number of chance clusters accepted (see the module docs).
    pub chance: f64,
}

impl Rules {
    pub fn for_bits(bits: u32) -> Rules {
        Rules {
            min_len: if bits == 32 { 8 } else { 32 },
            density: 0.9,
            min_failing: 4,
            chance: 1e-3,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outage {
    pub network: u128,
    pub prefix_len: u32,
    pub class: u8,
    pub from_ms: i64,
    pub to_ms: i64,
    /// The prefix's entries that failed in the window (this class), ascending.
    pub members: Vec<u32>,
    /// Entries of the prefix with a check due in the window (the failing ones included).
    pub checked: u32,
    /// Checks of the prefix in the window: failed, and due.
    pub failed_checks: u64,
    pub checks: u64,
    /// Entries outside the prefix that failed in the window (any class).
    pub outside_failed: u32,
}

/// Finds the outages among `failures` (any order).
pub fn find_outages<T: AddressTable>(
    table: &T,
    failures: &[Failure],
    rules: &Rules,
) -> Vec<Outage> {
    let mut by_entry: Vec<u32> = (0..failures.len() as u32).collect();
    by_entry.sort_unstable_by_key(|&f| failures[f as usize].entry);
    let mut search = Search {
        table,
        failures,
        rules,
        failing_by_class: failing_entries_by_class(failures),
        by_entry,
        out: Vec::new(),
    };
    let mut classes: Vec<u8> = failures.iter().map(|f| f.class).collect();
    classes.sort_unstable();
    classes.dedup();
    for class in classes {
        let mut units: Vec<usize> = (0..failures.len())
            .filter(|&i| failures[i].class == class)
            .collect();
        search.search(&mut units);
    }
    search.out.sort_by_key(|o| (o.from_ms, o.network));
    search.out
}

fn failing_entries_by_class(failures: &[Failure]) -> Vec<usize> {
    let mut pairs: Vec<(u8, u32)> = failures.iter().map(|f| (f.class, f.entry)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut counts = vec![0usize; 256];
    for (class, _) in pairs {
        counts[class as usize] += 1;
    }
    counts
}

/// The prefix mask of `len` bits in a `bits`-wide address.
pub fn mask(bits: u32, len: u32) -> u128 {
    if len == 0 {
        return 0;
    }
    let ones = if len >= 128 {
        u128::MAX
    } else {
        (1u128 << len) - 1
    };
    ones << (bits - len.min(bits))
}

/// Length of the longest common prefix of two `bits`-wide addresses.
pub fn common_prefix_len(bits: u32, a: u128, b: u128) -> u32 {
    let differ = a ^ b;
    if differ == 0 {
        bits
    } else {
        bits - (128 - differ.leading_zeros())
    }
}

/// What a prefix saw in a window: failing and checked entries, failed and due checks.
struct Density {
    members: Vec<u32>,
    checked: u32,
    failed_checks: u64,
    checks: u64,
}

struct Search<'a, T> {
    table: &'a T,
    failures: &'a [Failure],
    rules: &'a Rules,
    failing_by_class: Vec<usize>,
    /// Failure indices sorted by entry.
    by_entry: Vec<u32>,
    out: Vec<Outage>,
}

impl<T: AddressTable> Search<'_, T> {
    fn address(&self, unit: usize) -> u128 {
        self.table.address(self.failures[unit].entry as usize)
    }

    /// Could `n` addresses failing together be chance? (module docs)
    fn significant(&self, class: u8, n: usize) -> bool {
        if n < self.rules.min_failing {
            return false;
        }
        let total = self.table.len() as f64;
        let others = self.failing_by_class[class as usize].saturating_sub(n) as f64;
        let rest = (total - n as f64).max(1.0);
        let share = others / rest;
        share == 0.0 || total * share.powi(n as i32) <= self.rules.chance
    }

    /// Searches the failures `units` (indices), reordering them in place: the recursion works
    /// on sub-slices of one buffer, so its memory is the buffer, whatever the depth.
    fn search(&mut self, units: &mut [usize]) {
        units.sort_unstable_by_key(|&u| self.failures[u].start_ms);
        let mut start = 0;
        while start < units.len() {
            let mut until = self.failures[units[start]].until_ms;
            let mut end = start + 1;
            while end < units.len() && self.failures[units[end]].start_ms <= until {
                until = until.max(self.failures[units[end]].until_ms);
                end += 1;
            }
            self.cluster(&mut units[start..end]);
            start = end;
        }
    }

    fn cluster(&mut self, units: &mut [usize]) {
        let class = self.failures[units[0]].class;
        let (distinct, low, high) = {
            let mut entries: Vec<u32> = units.iter().map(|&u| self.failures[u].entry).collect();
            entries.sort_unstable();
            entries.dedup();
            let low = self.table.address(entries[0] as usize);
            let high = self.table.address(entries[entries.len() - 1] as usize);
            (entries.len(), low, high)
        };
        if !self.significant(class, distinct) {
            // A part of it has fewer addresses, so it cannot be significant either.
            return;
        }
        let bits = self.table.bits();
        let len = common_prefix_len(bits, low, high);
        if len >= self.rules.min_len {
            let (from, to) = self.window(units);
            let network = low & mask(bits, len);
            if let Some(density) = self.dense(network, len, class, from, to) {
                if let Some(outside_failed) = self.neighbours_answered(network, len, from, to) {
                    self.out.push(Outage {
                        network,
                        prefix_len: len,
                        class,
                        from_ms: from,
                        to_ms: to,
                        members: density.members,
                        checked: density.checked,
                        failed_checks: density.failed_checks,
                        checks: density.checks,
                        outside_failed,
                    });
                }
                // Dense but nothing outside answered: everything failed, which no smaller
                // prefix explains either.
                return;
            }
        }
        if len >= bits {
            return;
        }
        let shift = bits - 1 - len;
        let bit = |u: usize| (self.address(u) >> shift) & 1 == 1;
        // In-place partition: zeros first.
        let mut zeros = 0;
        for i in 0..units.len() {
            if !bit(units[i]) {
                units.swap(zeros, i);
                zeros += 1;
            }
        }
        let (low_half, high_half) = units.split_at_mut(zeros);
        self.search(low_half);
        self.search(high_half);
    }

    /// The window the cluster shares: from its first start to its last end, except that starts
    /// and ends far out from the bulk (more than a quarter of the 10th-90th percentile spread
    /// beyond it) are left out: a host that was failing already, one that goes on failing.
    fn window(&self, units: &[usize]) -> (i64, i64) {
        let mut starts: Vec<i64> = units.iter().map(|&u| self.failures[u].start_ms).collect();
        let mut ends: Vec<i64> = units.iter().map(|&u| self.failures[u].end_ms).collect();
        starts.sort_unstable();
        ends.sort_unstable();
        /// The first and last values within the bulk's margins.
        fn bulk(v: &[i64]) -> (i64, i64) {
            let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
            let (low, high) = (at(0.1), at(0.9));
            let margin = (high - low) / 4;
            let first = v
                .iter()
                .copied()
                .find(|&x| x >= low - margin)
                .unwrap_or(low);
            let last = v
                .iter()
                .rev()
                .copied()
                .find(|&x| x <= high + margin)
                .unwrap_or(high);
            (first, last)
        }
        let (from, last_start) = bulk(&starts);
        let (_, to) = bulk(&ends);
        (from, to.max(last_start).max(from))
    }

    /// Entries `[first, last)` inside the prefix.
    fn range(&self, network: u128, len: u32) -> (usize, usize) {
        let bits = self.table.bits();
        let broadcast = network | (!mask(bits, len) & mask(bits, bits));
        let first = self.partition(|a| a < network);
        let last = self.partition(|a| a <= broadcast);
        (first, last)
    }

    fn partition(&self, below: impl Fn(u128) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.table.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if below(self.table.address(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Failures (indices) of entries `[first, last)`.
    fn failures_of(&self, first: usize, last: usize) -> &[u32] {
        let lo = self
            .by_entry
            .partition_point(|&f| (self.failures[f as usize].entry as usize) < first);
        let hi = self
            .by_entry
            .partition_point(|&f| (self.failures[f as usize].entry as usize) < last);
        &self.by_entry[lo..hi]
    }

    /// The prefix's figures in the window when at least the required share of its due checks
    /// and of its checked addresses failed; `None` as soon as they cannot have.
    fn dense(&self, network: u128, len: u32, class: u8, from: i64, to: i64) -> Option<Density> {
        let (first, last) = self.range(network, len);
        // Failed checks in the window, per failing entry (this class).
        let mut failed: Vec<(u32, u64)> = Vec::new();
        for &f in self.failures_of(first, last) {
            let f = &self.failures[f as usize];
            if f.class != class || f.start_ms > to || f.end_ms < from {
                continue;
            }
            let inside = if f.start_ms >= from && f.end_ms <= to {
                u64::from(f.failed_checks)
            } else {
                let (a, b) = (f.start_ms.max(from), f.end_ms.min(to));
                self.table.checks_between(f.entry as usize, a, b).max(1)
            };
            match failed.last_mut() {
                Some((entry, n)) if *entry == f.entry => *n += inside,
                _ => failed.push((f.entry, inside)),
            }
        }
        let failed_total: u64 = failed.iter().map(|f| f.1).sum();
        let most_due = (failed_total as f64 / self.rules.density).floor() as u64;
        let most_checked = (failed.len() as f64 / self.rules.density).floor() as usize;
        let (mut due_total, mut checked) = (0u64, 0usize);
        let mut next = failed.iter().peekable();
        for entry in first..last {
            let mut due = self.table.checks_between(entry, from, to);
            if let Some(&(_, n)) = next.next_if(|f| f.0 as usize == entry) {
                due = due.max(n);
            }
            if due > 0 {
                due_total += due;
                checked += 1;
                if due_total > most_due || checked > most_checked {
                    return None;
                }
            }
        }
        if failed.is_empty() {
            return None;
        }
        Some(Density {
            members: failed.iter().map(|f| f.0).collect(),
            checked: checked as u32,
            failed_checks: failed_total,
            checks: due_total,
        })
    }

    /// When some entry outside the prefix was checked in the window and did not fail in it:
    /// the number of outside entries that did fail (any class). Looks outward from the prefix,
    /// nearest first, so it usually stops at once.
    fn neighbours_answered(&self, network: u128, len: u32, from: i64, to: i64) -> Option<u32> {
        let (first, last) = self.range(network, len);
        let failing: HashSet<u32> = self
            .failures
            .iter()
            .filter(|f| f.start_ms <= to && f.end_ms >= from)
            .map(|f| f.entry)
            .filter(|&e| (e as usize) < first || (e as usize) >= last)
            .collect();
        let answered = |entry: usize| {
            !failing.contains(&(entry as u32)) && self.table.checks_between(entry, from, to) > 0
        };
        let (mut below, mut above) = (first, last);
        while below > 0 || above < self.table.len() {
            if below > 0 {
                below -= 1;
                if answered(below) {
                    return Some(failing.len() as u32);
                }
            }
            if above < self.table.len() {
                if answered(above) {
                    return Some(failing.len() as u32);
                }
                above += 1;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every entry is checked every `step_ms` from 0 to `end_ms`.
    struct Fleet {
        bits: u32,
        addresses: Vec<u128>,
        step_ms: i64,
        end_ms: i64,
    }

    impl AddressTable for Fleet {
        fn bits(&self) -> u32 {
            self.bits
        }
        fn len(&self) -> usize {
            self.addresses.len()
        }
        fn address(&self, entry: usize) -> u128 {
            self.addresses[entry]
        }
        fn checks_between(&self, _entry: usize, from_ms: i64, to_ms: i64) -> u64 {
            let first = (from_ms.max(0) + self.step_ms - 1) / self.step_ms;
            let last = to_ms.min(self.end_ms).div_euclid(self.step_ms);
            (last - first + 1).max(0) as u64
        }
    }

    fn v4(text: &str) -> u128 {
        u128::from(u32::from(text.parse::<std::net::Ipv4Addr>().unwrap()))
    }

    /// `count` consecutive IPv4 addresses from `first`.
    fn v4_fleet(first: &str, count: u32) -> Fleet {
        let base = v4(first);
        Fleet {
            bits: 32,
            addresses: (0..u128::from(count)).map(|i| base + i).collect(),
            step_ms: 10_000,
            end_ms: 120_000,
        }
    }

    fn entry_of(fleet: &Fleet, address: u128) -> u32 {
        fleet.addresses.binary_search(&address).unwrap() as u32
    }

    /// Every address in `[first, first+count)` failed from `from` to `to` (checks every 10 s).
    fn failing(
        fleet: &Fleet,
        first: u128,
        count: u128,
        from: i64,
        to: i64,
        class: u8,
    ) -> Vec<Failure> {
        (first..first + count)
            .map(|a| Failure {
                entry: entry_of(fleet, a),
                start_ms: from,
                end_ms: to,
                until_ms: to + fleet.step_ms,
                failed_checks: ((to - from) / fleet.step_ms + 1) as u32,
                class,
            })
            .collect()
    }

    fn cidr(o: &Outage) -> String {
        format!(
            "{}/{}",
            std::net::Ipv4Addr::from(o.network as u32),
            o.prefix_len
        )
    }

    #[test]
    fn a_whole_slash_24_failing_while_its_neighbours_answer_is_that_slash_24() {
        let fleet = v4_fleet("10.1.0.0", 1024);
        let failures = failing(&fleet, v4("10.1.2.0"), 256, 30_000, 50_000, 1);
        let outages = find_outages(&fleet, &failures, &Rules::for_bits(32));
        assert_eq!(outages.len(), 1, "{outages:?}");
        let o = &outages[0];
        assert_eq!(cidr(o), "10.1.2.0/24");
        assert_eq!((o.members.len(), o.checked), (256, 256));
        assert_eq!((o.from_ms, o.to_ms), (30_000, 50_000));
        assert_eq!(o.failed_checks, 256 * 3);
        assert_eq!(o.outside_failed, 0);
    }

    #[test]
    fn the_prefix_is_found_not_fixed_at_slash_24() {
        let fleet = v4_fleet("10.1.0.0", 1024);
        let slash_26 = failing(&fleet, v4("10.1.1.64"), 64, 30_000, 50_000, 1);
        assert_eq!(
            cidr(&find_outages(&fleet, &slash_26, &Rules::for_bits(32))[0]),
            "10.1.1.64/26"
        );
        let slash_23 = failing(&fleet, v4("10.1.2.0"), 512, 30_000, 50_000, 1);
        assert_eq!(
            cidr(&find_outages(&fleet, &slash_23, &Rules::for_bits(32))[0]),
            "10.1.2.0/23"
        );
    }

    #[test]
    fn the_smallest_covering_prefix_is_reported_when_only_part_of_a_subnet_is_checked() {
        // Only .1-.20 of 10.1.9.0/24 are in the fleet, and they all fail: the evidence covers
        // 10.1.9.0/27, so that is what is claimed.
        let mut fleet = v4_fleet("10.1.8.0", 256);
        fleet.addresses.extend((1..=20).map(|i| v4("10.1.9.0") + i));
        let failures = failing(&fleet, v4("10.1.9.1"), 20, 0, 0, 1);
        let outages = find_outages(&fleet, &failures, &Rules::for_bits(32));
        assert_eq!(
            outages.iter().map(cidr).collect::<Vec<_>>(),
            ["10.1.9.0/27"]
        );
    }

    #[test]
    fn ninety_percent_failing_is_an_outage_and_eighty_is_not() {
        let fleet = v4_fleet("10.1.0.0", 1024);
        let mut ninety = failing(&fleet, v4("10.1.2.0"), 256, 30_000, 50_000, 1);
        ninety.retain(|f| f.entry % 16 != 0); // 240 of 256 = 93.75 %
        let outages = find_outages(&fleet, &ninety, &Rules::for_bits(32));
        assert_eq!(
            outages.iter().map(cidr).collect::<Vec<_>>(),
            ["10.1.2.0/24"]
        );
        assert_eq!((outages[0].members.len(), outages[0].checked), (240, 256));

        let mut eighty = failing(&fleet, v4("10.1.2.0"), 256, 30_000, 50_000, 1);
        eighty.retain(|f| f.entry % 5 != 0); // 80 %
        let outages = find_outages(&fleet, &eighty, &Rules::for_bits(32));
        assert!(outages.iter().all(|o| o.prefix_len > 24), "{outages:?}");
    }

    #[test]
    fn failures_at_different_times_are_not_one_outage() {
        let fleet = v4_fleet("10.1.0.0", 1024);
        let mut failures = failing(&fleet, v4("10.1.2.0"), 128, 10_000, 10_000, 1);
        failures.extend(failing(&fleet, v4("10.1.2.128"), 128, 80_000, 90_000, 1));
        let outages = find_outages(&fleet, &failures, &Rules::for_bits(32));
        let found: Vec<_> = outages.iter().map(|o| (cidr(o), o.from_ms)).collect();
        assert_eq!(
            found,
            [
                ("10.1.2.0/25".into(), 10_000),
                ("10.1.2.128/25".into(), 80_000)
            ]
        );
    }

    #[test]
    fn a_single_failing_address_is_never_a_subnet() {
        let fleet = v4_fleet("10.1.0.0", 1024);
        let failures = failing(&fleet, v4("10.1.2.7"), 1, 0, 120_000, 1);
        assert_eq!(find_outages(&fleet, &failures, &Rules::for_bits(32)), []);
    }

    #[test]
    fn when_everything_failed_no_subnet_is_blamed() {
        let fleet = v4_fleet("10.1.0.0", 512);
        let failures = failing(&fleet, v4("10.1.0.0"), 512, 30_000, 50_000, 1);
        assert_eq!(find_outages(&fleet, &failures, &Rules::for_bits(32)), []);
    }

    #[test]
    fn different_reasons_are_not_grouped() {
        let fleet = v4_fleet("10.1.0.0", 1024);
        let mut failures = failing(&fleet, v4("10.1.2.0"), 128, 30_000, 50_000, 1);
        failures.extend(failing(&fleet, v4("10.1.2.128"), 128, 30_000, 50_000, 0));
        let outages = find_outages(&fleet, &failures, &Rules::for_bits(32));
        let found: Vec<_> = outages
            .iter()
            .map(|o| (cidr(o), o.class, o.outside_failed))
            .collect();
        assert_eq!(
            found,
            [
                ("10.1.2.0/25".into(), 1, 128),
                ("10.1.2.128/25".into(), 0, 128)
            ]
        );
    }

    #[test]
    fn ipv6_prefixes_are_found_between_slash_32_and_slash_128() {
        let base: u128 = "2001:db8:0:1::"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .into();
        let fleet = Fleet {
            bits: 128,
            addresses: (0..64u128)
                .map(|i| base + (i << 64))
                .chain((0..16).map(|i| base + (5 << 64) + i + 1))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            step_ms: 10_000,
            end_ms: 60_000,
        };
        // 2001:db8:0:6::1 .. ::10 fail: 16 addresses of one /64, with 2001:db8:0:6:: answering
        // inside their smallest covering prefix (16 of 17 is still over 90 %).
        let failures: Vec<Failure> = (1..=16u128)
            .map(|i| Failure {
                entry: entry_of(&fleet, base + (5 << 64) + i),
                start_ms: 0,
                end_ms: 20_000,
                until_ms: 30_000,
                failed_checks: 3,
                class: 1,
            })
            .collect();
        let outages = find_outages(&fleet, &failures, &Rules::for_bits(128));
        assert_eq!(outages.len(), 1);
        let network = std::net::Ipv6Addr::from(outages[0].network);
        assert_eq!(
            format!("{network}/{}", outages[0].prefix_len),
            "2001:db8:0:6::/123"
        );
        assert_eq!((outages[0].members.len(), outages[0].checked), (16, 17));
    }

    proptest! {
        /// Any prefix from /20 to /30 inside a checked /18, failing whole while the rest
        /// answers, is found as exactly that prefix and window.
        #[test]
        fn any_failing_prefix_is_found_exactly(len in 20u32..=30, offset in 0u32..16_384, from in 0i64..6, span in 0i64..6) {
            let fleet = v4_fleet("10.64.0.0", 16_384);
            let size = 1u32 << (32 - len);
            let first = (v4("10.64.0.0") as u32 + offset) & !(size - 1);
            let (from, to) = (from * 10_000, (from + span) * 10_000);
            let failures = failing(&fleet, u128::from(first), u128::from(size), from, to, 1);
            let outages = find_outages(&fleet, &failures, &Rules::for_bits(32));
            prop_assert_eq!(outages.len(), 1);
            prop_assert_eq!(outages[0].network, u128::from(first));
            prop_assert_eq!(outages[0].prefix_len, len);
            prop_assert_eq!((outages[0].from_ms, outages[0].to_ms), (from, to));
        }

        /// A failing prefix among scattered failures of 2 % of the fleet, at random times, is
        /// still found as exactly that prefix and window, and nothing else is.
        #[test]
        fn a_failing_prefix_is_found_exactly_among_scattered_failures(
            len in 22u32..=27,
            offset in 0u32..16_384,
            at in 1i64..10,
            noise in proptest::collection::vec((0u32..16_384, 0i64..12), 0..330),
        ) {
            let fleet = v4_fleet("10.64.0.0", 16_384);
            let size = 1u32 << (32 - len);
            let first = (v4("10.64.0.0") as u32 + offset) & !(size - 1);
            let (from, to) = (at * 10_000, (at + 1) * 10_000);
            let mut failures = failing(&fleet, u128::from(first), u128::from(size), from, to, 1);
            let inside = |entry: u32| {
                let a = fleet.addresses[entry as usize] as u32;
                a >= first && a < first + size
            };
            failures.extend(noise.iter().filter(|n| !inside(n.0)).map(|&(entry, round)| Failure {
                entry,
                start_ms: round * 10_000,
                end_ms: round * 10_000,
                until_ms: (round + 1) * 10_000,
                failed_checks: 1,
                class: 1,
            }));
            let outages = find_outages(&fleet, &failures, &Rules::for_bits(32));
            let found: Vec<(u128, u32, i64, i64)> = outages.iter().map(|o| (o.network, o.prefix_len, o.from_ms, o.to_ms)).collect();
            prop_assert_eq!(found, vec![(u128::from(first), len, from, to)]);
        }

        /// Independent failures of up to 5 % of a fleet, each at its own random time, never
        /// make a subnet outage.
        #[test]
        fn scattered_independent_failures_make_no_subnet(picks in proptest::collection::vec((0u32..4096, 0i64..12, 0i64..3), 0..205)) {
            let fleet = v4_fleet("10.8.0.0", 4096);
            let mut failures: Vec<Failure> = picks.iter().map(|&(entry, round, length)| Failure {
                entry,
                start_ms: round * 10_000,
                end_ms: (round + length) * 10_000,
                until_ms: (round + length + 1) * 10_000,
                failed_checks: length as u32 + 1,
                class: 1,
            }).collect();
            failures.sort_by_key(|f| f.entry);
            failures.dedup_by_key(|f| f.entry);
            prop_assert_eq!(find_outages(&fleet, &failures, &Rules::for_bits(32)), vec![]);
        }
    }
}

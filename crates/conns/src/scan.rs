//! Port-scan detection: one sliding window of recent inbound connections per source address.
//!
//! A source is a scanner when, within the last `window`, its new inbound connections reached
//! more than `max_ports` distinct local ports. That opens a *scan episode*, reported once; the
//! episode lasts while the source keeps connecting and ends when a whole window passes without
//! any new connection from it, after which a new episode can be reported.
//!
//! Memory is bounded twice: at most `max_sources` sources are tracked (when a new source
//! arrives and the table is full, the source whose last connection is the oldest is evicted,
//! episode or not), and each source remembers at most `max_ports_per_source` distinct ports
//! (the oldest port is forgotten first). Entries older than the window are dropped at every
//! poll, so a quiet host holds nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanConfig {
    /// A scan is *more than* this many distinct local ports.
    pub max_ports: usize,
    pub window: Duration,
    pub max_sources: usize,
    pub max_ports_per_source: usize,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            max_ports: 3,
            window: Duration::from_secs(60),
            max_sources: 65_536,
            max_ports_per_source: 1_024,
        }
    }
}

/// A detection: one per episode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanAlert {
    pub source: IpAddr,
    /// The local addresses that were hit, ascending (usually one).
    pub destinations: Vec<IpAddr>,
    /// The distinct local ports within the window, ascending.
    pub ports: Vec<u16>,
    /// How many of `ports` refused the connection (closed ports), when the source of events
    /// can tell (conntrack); `None` for socket-table polls, which never see a refused attempt.
    pub closed: Option<usize>,
}

#[derive(Clone, Copy, Debug)]
struct Hit {
    at: Instant,
    destination: IpAddr,
    port: u16,
    /// The attempt was answered only by a reset: the port is closed.
    refused: bool,
}

#[derive(Debug)]
struct SourceState {
    /// Oldest first; at most one hit per port.
    hits: VecDeque<Hit>,
    in_episode: bool,
    /// Key in the recency index.
    recency: u64,
}

#[derive(Debug)]
pub struct ScanDetector {
    config: ScanConfig,
    sources: HashMap<IpAddr, SourceState>,
    /// recency stamp → source, so the least recently active source is found in O(log n).
    by_recency: BTreeMap<u64, IpAddr>,
    next_stamp: u64,
    evicted: u64,
}

impl ScanDetector {
    pub fn new(config: ScanConfig) -> ScanDetector {
        let config = ScanConfig {
            max_sources: config.max_sources.max(1),
            max_ports_per_source: config.max_ports_per_source.max(config.max_ports + 1),
            ..config
        };
        ScanDetector {
            config,
            sources: HashMap::new(),
            by_recency: BTreeMap::new(),
            next_stamp: 0,
            evicted: 0,
        }
    }

    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    /// Sources dropped because the table was full.
    pub fn evicted_sources(&self) -> u64 {
        self.evicted
    }

    /// Feeds one poll's new inbound connections, as (source, local address, local port), seen
    /// at `now`; returns the episodes that started with this poll.
    pub fn observe(
        &mut self,
        now: Instant,
        connections: impl IntoIterator<Item = (IpAddr, IpAddr, u16)>,
    ) -> Vec<ScanAlert> {
        self.observe_attempts(now, connections, std::iter::empty(), false)
    }

    /// [`ScanDetector::observe`] for a source of events that also sees refused attempts:
    /// `refused` lists (source, local port) of attempts answered only by a reset, which mark
    /// the matching hit (recorded now or earlier in the window) as a closed port. Refused
    /// attempts count towards the rule like any other; `knows_refusals` fills
    /// [`ScanAlert::closed`].
    pub fn observe_attempts(
        &mut self,
        now: Instant,
        connections: impl IntoIterator<Item = (IpAddr, IpAddr, u16)>,
        refused: impl IntoIterator<Item = (IpAddr, u16)>,
        knows_refusals: bool,
    ) -> Vec<ScanAlert> {
        self.expire(now);
        let mut touched = BTreeSet::new();
        for (source, destination, port) in connections {
            self.record(
                source,
                Hit {
                    at: now,
                    destination,
                    port,
                    refused: false,
                },
            );
            touched.insert(source);
        }
        for (source, port) in refused {
            if let Some(hit) = self
                .sources
                .get_mut(&source)
                .and_then(|state| state.hits.iter_mut().find(|h| h.port == port))
            {
                hit.refused = true;
            }
        }
        let mut alerts = Vec::new();
        for source in touched {
            let Some(state) = self.sources.get_mut(&source) else {
                continue;
            };
            if state.in_episode || state.hits.len() <= self.config.max_ports {
                continue;
            }
            state.in_episode = true;
            let mut ports: Vec<u16> = state.hits.iter().map(|h| h.port).collect();
            ports.sort_unstable();
            let destinations: BTreeSet<IpAddr> = state.hits.iter().map(|h| h.destination).collect();
            let closed = state.hits.iter().filter(|h| h.refused).count();
            alerts.push(ScanAlert {
                source,
                destinations: destinations.into_iter().collect(),
                ports,
                closed: knows_refusals.then_some(closed),
            });
        }
        alerts
    }

    /// Drops hits older than the window; a source left with none has ended its episode.
    fn expire(&mut self, now: Instant) {
        let window = self.config.window;
        let by_recency = &mut self.by_recency;
        self.sources.retain(|_, state| {
            while state
                .hits
                .front()
                .is_some_and(|h| now.saturating_duration_since(h.at) > window)
            {
                state.hits.pop_front();
            }
            let keep = !state.hits.is_empty();
            if !keep {
                by_recency.remove(&state.recency);
            }
            keep
        });
    }

    fn record(&mut self, source: IpAddr, hit: Hit) {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        if !self.sources.contains_key(&source)
            && self.sources.len() >= self.config.max_sources
            && let Some((_, oldest)) = self.by_recency.pop_first()
        {
            self.sources.remove(&oldest);
            self.evicted += 1;
        }
        let state = self.sources.entry(source).or_insert_with(|| SourceState {
            hits: VecDeque::new(),
            in_episode: false,
            recency: stamp,
        });
        self.by_recency.remove(&state.recency);
        state.recency = stamp;
        self.by_recency.insert(stamp, source);
        if let Some(pos) = state.hits.iter().position(|h| h.port == hit.port) {
            state.hits.remove(pos);
        }
        if state.hits.len() >= self.config.max_ports_per_source {
            state.hits.pop_front();
        }
        state.hits.push_back(hit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn hits(source: &str, ports: &[u16]) -> Vec<(IpAddr, IpAddr, u16)> {
        ports
            .iter()
            .map(|&p| (ip(source), ip("10.0.0.5"), p))
            .collect()
    }

    fn detector() -> ScanDetector {
        ScanDetector::new(ScanConfig::default())
    }

    #[test]
    fn more_than_three_ports_is_a_scan_reported_with_ports_ascending() {
        let mut d = detector();
        let t = Instant::now();
        let alerts = d.observe(t, hits("192.0.2.56", &[83, 80, 82, 81]));
        assert_eq!(
            alerts,
            vec![ScanAlert {
                source: ip("192.0.2.56"),
                destinations: vec![ip("10.0.0.5")],
                ports: vec![80, 81, 82, 83],
                closed: None,
            }]
        );
    }

    #[test]
    fn refused_attempts_count_towards_the_rule_and_are_reported_as_closed() {
        let mut d = detector();
        let t = Instant::now();
        // Two attempts of an earlier poll, one of them refused only now.
        assert!(
            d.observe_attempts(t, hits("192.0.2.56", &[22, 80]), [], true)
                .is_empty()
        );
        let alerts = d.observe_attempts(
            t + Duration::from_secs(1),
            hits("192.0.2.56", &[81, 82]),
            [
                (ip("192.0.2.56"), 81),
                (ip("192.0.2.56"), 82),
                (ip("192.0.2.56"), 22),
            ],
            true,
        );
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].ports, vec![22, 80, 81, 82]);
        assert_eq!(alerts[0].closed, Some(3));
        // A refusal of a port never seen (or of another source) marks nothing.
        let alerts = d.observe_attempts(
            t,
            hits("192.0.2.57", &[1, 2, 3, 4]),
            [(ip("192.0.2.57"), 9), (ip("192.0.2.58"), 1)],
            true,
        );
        assert_eq!(alerts[0].closed, Some(0));
    }

    #[test]
    fn three_ports_or_repeats_of_one_port_are_not_a_scan() {
        let mut d = detector();
        let t = Instant::now();
        assert!(d.observe(t, hits("192.0.2.56", &[80, 81, 82])).is_empty());
        assert!(
            d.observe(t, hits("192.0.2.57", &[80, 80, 80, 80, 80]))
                .is_empty()
        );
    }

    #[test]
    fn ports_spread_over_polls_within_the_window_add_up() {
        let mut d = detector();
        let t = Instant::now();
        assert!(d.observe(t, hits("192.0.2.56", &[80, 81])).is_empty());
        let alerts = d.observe(t + Duration::from_secs(50), hits("192.0.2.56", &[82, 83]));
        assert_eq!(alerts.len(), 1);
    }

    #[test]
    fn ports_older_than_the_window_do_not_count() {
        let mut d = detector();
        let t = Instant::now();
        assert!(d.observe(t, hits("192.0.2.56", &[80, 81])).is_empty());
        assert!(
            d.observe(t + Duration::from_secs(61), hits("192.0.2.56", &[82, 83]))
                .is_empty()
        );
    }

    #[test]
    fn one_report_per_episode_and_a_new_episode_after_a_quiet_window() {
        let mut d = detector();
        let t = Instant::now();
        assert_eq!(d.observe(t, hits("192.0.2.56", &[1, 2, 3, 4])).len(), 1);
        for i in 1..=10u16 {
            let later = t + Duration::from_secs(u64::from(i) * 10);
            assert!(
                d.observe(later, hits("192.0.2.56", &[100 + i])).is_empty(),
                "poll {i}"
            );
        }
        // Quiet for more than a window: the episode is over.
        let quiet = t + Duration::from_secs(100 + 61);
        assert!(d.observe(quiet, []).is_empty());
        assert_eq!(d.tracked_sources(), 0);
        assert_eq!(d.observe(quiet, hits("192.0.2.56", &[1, 2, 3, 4])).len(), 1);
    }

    #[test]
    fn sources_are_counted_separately() {
        let mut d = detector();
        let t = Instant::now();
        let mut both = hits("192.0.2.56", &[80, 81]);
        both.extend(hits("192.0.2.57", &[82, 83]));
        assert!(d.observe(t, both).is_empty());
    }

    #[test]
    fn a_flood_of_sources_is_bounded_and_evicts_the_least_recent() {
        let mut d = ScanDetector::new(ScanConfig {
            max_sources: 100,
            ..ScanConfig::default()
        });
        let t = Instant::now();
        assert!(d.observe(t, hits("192.0.2.1", &[1, 2])).is_empty());
        let flood: Vec<_> = (0..1000u32)
            .map(|i| {
                (
                    IpAddr::from((0xC633_6400u32 + i).to_be_bytes()),
                    ip("10.0.0.5"),
                    80,
                )
            })
            .collect();
        assert!(d.observe(t, flood).is_empty());
        assert_eq!(d.tracked_sources(), 100);
        assert_eq!(d.evicted_sources(), 901);
        // 192.0.2.1 was the least recent, so its two ports are forgotten.
        assert!(d.observe(t, hits("192.0.2.1", &[3, 4])).is_empty());
    }

    #[test]
    fn ports_per_source_are_bounded_keeping_the_most_recent() {
        let mut d = ScanDetector::new(ScanConfig {
            max_ports_per_source: 10,
            ..ScanConfig::default()
        });
        let t = Instant::now();
        let ports: Vec<u16> = (1..=1000).collect();
        let alerts = d.observe(t, hits("192.0.2.56", &ports));
        assert_eq!(alerts[0].ports, (991..=1000).collect::<Vec<u16>>());
    }

    proptest::proptest! {
        #[test]
        fn memory_never_exceeds_its_bounds(events in proptest::collection::vec((0u8..50, 0u16..200, 0u64..300), 0..500)) {
            let config = ScanConfig { max_sources: 8, max_ports_per_source: 16, ..ScanConfig::default() };
            let mut d = ScanDetector::new(config);
            let t = Instant::now();
            let mut sorted = events;
            sorted.sort_by_key(|e| e.2);
            for (src, port, secs) in sorted {
                d.observe(t + Duration::from_secs(secs), [(IpAddr::from([192, 0, 2, src]), ip("10.0.0.5"), port)]);
                proptest::prop_assert!(d.tracked_sources() <= 8);
                proptest::prop_assert!(d.sources.values().all(|s| s.hits.len() <= 16));
                proptest::prop_assert_eq!(d.by_recency.len(), d.sources.len());
            }
        }
    }
}

//! Latency summaries with bounded memory per host: recent samples for percentiles, the maximum
//! over the whole run.

use std::time::Duration;

/// How many recent successful-connect latencies a host keeps for p50/p95. Bounded so a
/// million-host `--watch` stays within memory; a default run (12 rounds) keeps them all.
pub const RECENT_SAMPLES: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct LatencySamples {
    recent_us: Vec<u32>,
    next: usize,
    max_us: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

impl LatencySamples {
    pub fn add(&mut self, latency: Duration) {
        let us = latency.as_micros().min(u32::MAX as u128) as u32;
        self.max_us = self.max_us.max(us);
        if self.recent_us.len() < RECENT_SAMPLES {
            crate::push_compact(&mut self.recent_us, us);
        } else {
            self.recent_us[self.next] = us;
            self.next = (self.next + 1) % RECENT_SAMPLES;
        }
    }

    pub fn summary(&self) -> Option<LatencySummary> {
        if self.recent_us.is_empty() {
            return None;
        }
        let mut sorted = self.recent_us.clone();
        sorted.sort_unstable();
        let ms = |us: u32| us as f64 / 1e3;
        Some(LatencySummary {
            p50_ms: ms(percentile(&sorted, 50.0)),
            p95_ms: ms(percentile(&sorted, 95.0)),
            max_ms: ms(self.max_us),
        })
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile<T: Copy>(sorted: &[T], pct: f64) -> T {
    assert!(!sorted.is_empty());
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 95.0), 95);
        assert_eq!(percentile(&values, 100.0), 100);
        assert_eq!(percentile(&[7], 50.0), 7);
    }

    #[test]
    fn keeps_recent_samples_and_overall_max() {
        let mut samples = LatencySamples::default();
        samples.add(Duration::from_millis(900));
        for _ in 0..RECENT_SAMPLES {
            samples.add(Duration::from_millis(1));
        }
        let summary = samples.summary().unwrap();
        assert_eq!(summary.p95_ms, 1.0);
        assert_eq!(summary.max_ms, 900.0);
        assert!(LatencySamples::default().summary().is_none());
    }
}

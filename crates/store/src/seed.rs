//! A known history to put in a store: hourly roll-ups for a span of days, then a day of raw
//! one-minute checks, with outages at chosen times, and the figures any window of it must
//! show ([`KnownHistory::expected`]), computed from the description alone, not from a store.
//!
//! For tests (availability exact per window through the store and through the status page)
//! and benchmarks (a year of history for many series, written straight into the store).

use crate::rollup::{BUCKETS, Rollup, RollupRow, Tier, bucket_of, coarsen};
use netvantage_core::{CheckResult, HttpDetails, HttpObservation, Outcome, Reason, ResultRecord};
use std::time::Duration;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// The latency of every answered check of the history.
pub const LATENCY_MS: f64 = 4.0;

/// One series of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededSeries {
    pub target: String,
    pub vantage: String,
    /// An HTTP target's domain; `None`: a TCP target.
    pub domain: Option<String>,
}

/// A span during which a series' checks failed, with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    pub target: String,
    pub vantage: String,
    pub from_unix_ms: i64,
    pub until_unix_ms: i64,
    pub reason: Reason,
}

/// One check a minute for every series: as hour roll-ups from `now - 1 day - days` to
/// `now - 1 day`, then as raw records over the last day before `now`.
#[derive(Debug, Clone)]
pub struct KnownHistory {
    /// The end of the history, on a whole hour.
    pub now_unix_ms: i64,
    /// Days of hourly history before the raw day.
    pub days: i64,
    pub series: Vec<SeededSeries>,
    /// Whole minutes; an outage in the hourly part counts the down minutes of each hour.
    pub outages: Vec<Outage>,
    /// How long before `now` the raw records start (a day unless [`KnownHistory::with_raw_hours`]).
    pub raw_ms: i64,
}

impl KnownHistory {
    pub fn new(now_unix_ms: i64, days: i64, series: Vec<SeededSeries>) -> KnownHistory {
        assert_eq!(now_unix_ms % HOUR, 0, "the history ends on a whole hour");
        KnownHistory {
            now_unix_ms,
            days,
            series,
            outages: Vec::new(),
            raw_ms: DAY,
        }
    }

    /// Adds an outage of `minutes` minutes from `from_unix_ms` (rounded down to the minute).
    pub fn outage(
        mut self,
        series: usize,
        from_unix_ms: i64,
        minutes: i64,
        reason: Reason,
    ) -> Self {
        let from = from_unix_ms - from_unix_ms.rem_euclid(MINUTE);
        let s = &self.series[series];
        self.outages.push(Outage {
            target: s.target.clone(),
            vantage: s.vantage.clone(),
            from_unix_ms: from,
            until_unix_ms: from + minutes * MINUTE,
            reason,
        });
        self
    }

    /// Where the raw day starts: everything before is hour roll-ups.
    pub fn raw_from(&self) -> i64 {
        self.now_unix_ms - self.raw_ms
    }

    /// Raw records over the last `hours` before `now` instead of a day (hour roll-ups before
    /// that): a benchmark of many series keeps its seeding time bounded this way.
    pub fn with_raw_hours(mut self, hours: i64) -> Self {
        assert!((1..=24).contains(&hours), "1 to 24 hours of raw records");
        self.raw_ms = hours * HOUR;
        self
    }

    pub fn first_unix_ms(&self) -> i64 {
        self.raw_from() - self.days * DAY
    }

    /// The reason the series' check of the minute at `minute_unix_ms` failed, if it did.
    fn down_at(&self, s: &SeededSeries, minute_unix_ms: i64) -> Option<Reason> {
        self.outages
            .iter()
            .find(|o| {
                o.target == s.target
                    && o.vantage == s.vantage
                    && o.from_unix_ms <= minute_unix_ms
                    && minute_unix_ms < o.until_unix_ms
            })
            .map(|o| o.reason)
    }

    fn down_minutes(&self, s: &SeededSeries, from: i64, until: i64) -> Vec<(i64, Reason)> {
        let mut down = Vec::new();
        for o in &self.outages {
            if o.target != s.target || o.vantage != s.vantage {
                continue;
            }
            let mut m = o.from_unix_ms.max(from);
            while m < o.until_unix_ms.min(until) {
                down.push((m, o.reason));
                m += MINUTE;
            }
        }
        down
    }

    /// The hour roll-ups of the hourly part, series by series, oldest first.
    pub fn hour_rows(&self, series: usize) -> Vec<RollupRow> {
        let s = &self.series[series];
        let mut rows = Vec::with_capacity((self.days * 24) as usize);
        let mut hour = self.first_unix_ms();
        while hour < self.raw_from() {
            let down = self.down_minutes(s, hour, hour + HOUR);
            let mut rollup = Rollup {
                checks: 60,
                down: down.len() as u64,
                up: 60 - down.len() as u64,
                ..Rollup::default()
            };
            for (_, reason) in &down {
                let i = Reason::ALL.iter().position(|r| r == reason).unwrap_or(0);
                rollup.failures[i] += 1;
            }
            if rollup.up > 0 {
                rollup.latency_min_ms = Some(LATENCY_MS);
                rollup.latency_max_ms = Some(LATENCY_MS);
                rollup.latency_sum_ms = LATENCY_MS * rollup.up as f64;
                let mut histogram = [0; BUCKETS];
                histogram[bucket_of(LATENCY_MS)] = rollup.up;
                rollup.histogram = histogram;
            }
            rows.push(RollupRow {
                target: s.target.clone(),
                vantage: s.vantage.clone(),
                start_unix_ms: hour,
                rollup,
            });
            hour += HOUR;
        }
        rows
    }

    /// The rows of each tier the hourly part gives: its hours, and its days (a day that
    /// continues into the raw day is completed by inserting the raw records).
    pub fn rollup_rows(&self, series: usize) -> Vec<(Tier, Vec<RollupRow>)> {
        let hours = self.hour_rows(series);
        let days = coarsen(&hours, Tier::Day);
        vec![(Tier::Hour, hours), (Tier::Day, days)]
    }

    /// The raw records of the last day, one a minute (at second 1) per series.
    pub fn raw_records(&self, series: usize) -> Vec<ResultRecord> {
        let s = &self.series[series];
        let mut records = Vec::with_capacity(1440);
        let mut minute = self.raw_from();
        while minute < self.now_unix_ms {
            let ts = minute + 1_000;
            let down = self.down_at(s, minute);
            let check = match &s.domain {
                None => {
                    let failure = down.map(|r| (r, format!("{r} (seeded)")));
                    let mut check = CheckResult::tcp(
                        s.target.clone(),
                        Some("127.0.0.1:5432".parse().expect("an address")),
                        ts,
                        Duration::ZERO,
                        failure,
                    );
                    check.latency_ms = LATENCY_MS;
                    check
                }
                Some(domain) => {
                    let seen = HttpObservation {
                        outcome: Some(if down.is_some() {
                            Outcome::Down
                        } else {
                            Outcome::Up
                        }),
                        reason: down,
                        error: down.map(|r| format!("{r} (seeded)")),
                        status: Some(if down.is_some() { 503 } else { 200 }),
                        ..HttpObservation::default()
                    };
                    let details = HttpDetails {
                        name: s.target.clone(),
                        method: "GET".into(),
                        domain: domain.clone(),
                        tls_cert_not_after_unix_ms: None,
                    };
                    let mut check =
                        CheckResult::http(s.target.clone(), ts, Duration::ZERO, seen, details);
                    check.latency_ms = LATENCY_MS;
                    check
                }
            };
            records.push(ResultRecord {
                id: seeded_id(series, minute),
                agent: format!("agent-{}", s.vantage),
                vantage: s.vantage.clone(),
                check,
            });
            minute += MINUTE;
        }
        records
    }

    /// Writes the history into `store`: each series' hour and day roll-ups, then its raw day
    /// through `insert` (which rolls it up as a sink's writes are).
    pub async fn write_into<S: crate::Store>(
        &self,
        store: &mut S,
    ) -> Result<(), crate::StoreError> {
        for i in 0..self.series.len() {
            for (tier, rows) in self.rollup_rows(i) {
                store.add_rollups(tier, &rows).await?;
            }
            for chunk in self.raw_records(i).chunks(500) {
                store.insert(chunk).await?;
            }
        }
        Ok(())
    }

    /// `(checks, answered)` of a series over `[from, until)` (whole minutes inside the
    /// history), from the description alone.
    pub fn expected(&self, series: usize, from_unix_ms: i64, until_unix_ms: i64) -> (u64, u64) {
        let s = &self.series[series];
        let from = from_unix_ms.max(self.first_unix_ms());
        let until = until_unix_ms.min(self.now_unix_ms);
        if from >= until {
            return (0, 0);
        }
        let checks = ((until - from) / MINUTE) as u64;
        let down = self.down_minutes(s, from, until).len() as u64;
        (checks, checks - down)
    }
}

/// A record id that is the same every time the history is made (so writing it twice is a
/// redelivery, not new records).
fn seeded_id(series: usize, minute_unix_ms: i64) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    // The high nibble of byte 6 is the UUID's version: the series' low 12 bits go in bytes 6
    // and 7, the rest in 0 to 5, so more than 4,096 series don't collide.
    bytes[..6].copy_from_slice(&((series as u64) >> 12).to_be_bytes()[2..]);
    bytes[6..8].copy_from_slice(&((series & 0xfff) as u16).to_be_bytes());
    bytes[8..].copy_from_slice(&minute_unix_ms.to_be_bytes());
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::roll_up;

    fn history() -> KnownHistory {
        let now = 20_000 * DAY + 12 * HOUR;
        let series = vec![SeededSeries {
            target: "db:5432".into(),
            vantage: "lab".into(),
            domain: None,
        }];
        KnownHistory::new(now, 3, series)
            .outage(0, now - 30 * MINUTE, 10, Reason::Refused)
            .outage(0, now - 2 * DAY - 90 * MINUTE, 120, Reason::Timeout)
    }

    #[test]
    fn the_expected_figures_agree_with_the_rows_and_records_made() {
        let h = history();
        let hours = h.hour_rows(0);
        assert_eq!(hours.len(), 3 * 24);
        let mut total = Rollup::default();
        hours.iter().for_each(|r| total.merge(&r.rollup));
        let raw = roll_up(&h.raw_records(0));
        raw[2].1.iter().for_each(|r| total.merge(&r.rollup));
        let (checks, answered) = h.expected(0, h.first_unix_ms(), h.now_unix_ms);
        assert_eq!((total.checks, total.answered()), (checks, answered));
        assert_eq!(checks, 4 * 1440);
        assert_eq!(checks - answered, 130);
        assert_eq!(total.failures_of(Reason::Timeout), 120);
        assert_eq!(h.expected(0, h.now_unix_ms - HOUR, h.now_unix_ms), (60, 50));
    }

    #[test]
    fn the_same_history_has_the_same_record_ids() {
        assert_eq!(history().raw_records(0), history().raw_records(0));
    }
}

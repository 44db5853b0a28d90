//! A small cache for the status page's store reads: each value is kept for a page time and
//! answers while it is fresh; after that it still answers (stale-while-revalidate) while one
//! background computation replaces it, and a value nobody has yet is computed once however
//! many requests ask for it at the same moment (single flight). So under load a request waits
//! for the store only when nothing usable is cached, and never two requests for one key. A
//! value that took long to compute stays fresh longer ([`SLOW_FACTOR`] times its computation),
//! so background refreshes take a bounded share of the machine however large the fleet.
//!
//! The computations are spawned tasks: a request that gives up doesn't cancel the one the
//! others wait for.

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use netvantage_server::status::{SourceError, UnixMs};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a value answers as is, and for page times within how much of its own.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    /// Answers alone while younger than this (and made for a page time this close).
    pub fresh: Duration,
    /// Answers while a replacement is computed, for this long after it stopped being fresh.
    pub stale: Duration,
}

impl Freshness {
    fn within(limit: Duration, when: UnixMs, made: Instant, at: UnixMs) -> bool {
        (when.0 - at.0).unsigned_abs() < limit.as_millis() as u64 && made.elapsed() < limit
    }
}

/// A value stays fresh at least this many times as long as it took to compute.
pub const SLOW_FACTOR: u32 = 4;

type Flight<V> = Shared<BoxFuture<'static, Result<Arc<V>, SourceError>>>;

struct Entry<V> {
    /// The value, the page time it is for, when it was made and how long that took.
    value: Option<(Arc<V>, UnixMs, Instant, Duration)>,
    /// The computation under way, if any.
    flight: Option<Flight<V>>,
}

/// Values by key (see the module's description). Bounded: when it holds `max` keys, those
/// not being computed are dropped and refilled as asked.
pub struct Memo<K, V> {
    entries: Arc<Mutex<HashMap<K, Entry<V>>>>,
    freshness: Freshness,
    max: usize,
}

/// What a lookup found, decided under the lock.
enum Found<V> {
    Value(Arc<V>),
    Wait(Flight<V>),
}

impl<K, V> Memo<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Send + Sync + 'static,
{
    pub fn new(freshness: Freshness, max: usize) -> Memo<K, V> {
        Memo {
            entries: Arc::new(Mutex::new(HashMap::new())),
            freshness,
            max,
        }
    }

    fn lock(entries: &Mutex<HashMap<K, Entry<V>>>) -> MutexGuard<'_, HashMap<K, Entry<V>>> {
        // A panic while holding it can't leave an entry half-written: each update is one
        // assignment.
        entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value kept for `key`, however old.
    pub fn peek(&self, key: &K) -> Option<Arc<V>> {
        let entries = Self::lock(&self.entries);
        Some(entries.get(key)?.value.as_ref()?.0.clone())
    }

    /// The value for `key` at page time `at`; `compute` makes a new one when needed (it is
    /// spawned, and called at most once a call).
    pub async fn get<F>(&self, key: K, at: UnixMs, compute: F) -> Result<Arc<V>, SourceError>
    where
        F: FnOnce() -> BoxFuture<'static, Result<V, SourceError>>,
    {
        let found = {
            let mut entries = Self::lock(&self.entries);
            if entries.len() >= self.max && !entries.contains_key(&key) {
                entries.retain(|_, e| e.flight.is_some());
            }
            let entry = entries.entry(key.clone()).or_insert(Entry {
                value: None,
                flight: None,
            });
            let usable = entry.value.as_ref().and_then(|(value, when, made, took)| {
                let fresh_for = self.freshness.fresh.max(*took * SLOW_FACTOR);
                let fresh = Freshness::within(fresh_for, *when, *made, at);
                // The stale window follows the fresh one, however long that was.
                let stale = Freshness::within(fresh_for + self.freshness.stale, *when, *made, at);
                (fresh || stale).then(|| (value.clone(), fresh))
            });
            match (usable, entry.flight.clone()) {
                (Some((value, true)), _) => Found::Value(value),
                (Some((value, false)), Some(_)) => Found::Value(value),
                (Some((value, false)), None) => {
                    entry.flight = Some(self.start(key, at, compute));
                    Found::Value(value)
                }
                (None, Some(flight)) => Found::Wait(flight),
                (None, None) => {
                    let flight = self.start(key, at, compute);
                    entry.flight = Some(flight.clone());
                    Found::Wait(flight)
                }
            }
        };
        match found {
            Found::Value(value) => Ok(value),
            Found::Wait(flight) => flight.await,
        }
    }

    /// Spawns `compute`; when it ends, its value replaces the entry's (an error keeps the old
    /// value and is the waiters' answer).
    fn start<F>(&self, key: K, at: UnixMs, compute: F) -> Flight<V>
    where
        F: FnOnce() -> BoxFuture<'static, Result<V, SourceError>>,
    {
        let entries = self.entries.clone();
        let work = compute();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let result = work.await.map(Arc::new);
            let took = started.elapsed();
            let mut map = Self::lock(&entries);
            if let Some(entry) = map.get_mut(&key) {
                entry.flight = None;
                if let Ok(value) = &result {
                    entry.value = Some((value.clone(), at, Instant::now(), took));
                }
            }
            result
        });
        async move {
            task.await
                .unwrap_or_else(|e| Err(SourceError(format!("a store read failed: {e}"))))
        }
        .boxed()
        .shared()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn memo(fresh_ms: u64, stale_ms: u64) -> Memo<&'static str, usize> {
        Memo::new(
            Freshness {
                fresh: Duration::from_millis(fresh_ms),
                stale: Duration::from_millis(stale_ms),
            },
            100,
        )
    }

    /// A computation that counts its runs and takes `ms` to answer the run's number.
    fn counted(
        runs: &Arc<AtomicUsize>,
        ms: u64,
    ) -> impl FnOnce() -> BoxFuture<'static, Result<usize, SourceError>> + use<> {
        let runs = runs.clone();
        move || {
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(runs.fetch_add(1, Ordering::SeqCst) + 1)
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn concurrent_misses_compute_once() {
        let memo = Arc::new(memo(60_000, 60_000));
        let runs = Arc::new(AtomicUsize::new(0));
        let asks = (0..20).map(|_| memo.get("a", UnixMs(0), counted(&runs, 30)));
        let answers = futures::future::join_all(asks).await;
        assert!(
            answers.iter().all(|a| a.as_deref() == Ok(&1)),
            "{answers:?}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stale_value_answers_while_one_refresh_runs() {
        let memo = memo(20, 60_000);
        let runs = Arc::new(AtomicUsize::new(0));
        assert_eq!(
            *memo.get("a", UnixMs(0), counted(&runs, 0)).await.unwrap(),
            1
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        // Stale now: both asks answer the old value at once; one refresh starts.
        assert_eq!(
            *memo.get("a", UnixMs(0), counted(&runs, 50)).await.unwrap(),
            1
        );
        assert_eq!(
            *memo.get("a", UnixMs(0), counted(&runs, 50)).await.unwrap(),
            1
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(
            *memo.get("a", UnixMs(0), counted(&runs, 0)).await.unwrap(),
            2
        );
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "one refresh, not one per ask"
        );
    }

    #[tokio::test]
    async fn a_slow_computation_stays_fresh_for_longer() {
        // Fresh 10 ms, but the computation takes 100 ms: fresh for 400 ms.
        let memo = memo(10, 60_000);
        let runs = Arc::new(AtomicUsize::new(0));
        assert_eq!(
            *memo.get("a", UnixMs(0), counted(&runs, 100)).await.unwrap(),
            1
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            *memo.get("a", UnixMs(0), counted(&runs, 0)).await.unwrap(),
            1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "no refresh while fresh");
    }

    #[tokio::test]
    async fn another_page_time_is_computed_anew() {
        let memo = memo(60_000, 60_000);
        let runs = Arc::new(AtomicUsize::new(0));
        assert_eq!(
            *memo.get("a", UnixMs(0), counted(&runs, 0)).await.unwrap(),
            1
        );
        let later = UnixMs(300_000);
        assert_eq!(*memo.get("a", later, counted(&runs, 0)).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn an_error_is_the_answer_and_is_not_kept() {
        let memo = memo(60_000, 60_000);
        let failing = || async { Err(SourceError("down".into())) }.boxed();
        assert_eq!(
            memo.get("a", UnixMs(0), failing).await.unwrap_err(),
            SourceError("down".into())
        );
        let runs = Arc::new(AtomicUsize::new(0));
        assert_eq!(
            *memo.get("a", UnixMs(0), counted(&runs, 0)).await.unwrap(),
            1
        );
    }
}

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
//!
//! A request run through [`tracked`] also learns what it read: each value a [`Memo::get`]
//! answered, so the page rendered from them can be kept exactly while each would still be the
//! answer ([`Provenance::is_current`]); a read outside any memo ([`untracked`]) makes the
//! request's answer one nobody may keep.

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use netvantage_server::status::{Provenance, SourceError, UnixMs};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
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

/// What one tracked request has read so far.
#[derive(Default)]
struct Reads {
    values: Vec<Box<dyn Provenance>>,
    /// (memo, value) pairs already listed: a page asks the snapshot many times.
    seen: HashSet<(usize, usize)>,
    untracked: bool,
}

tokio::task_local! {
    static READS: Arc<Mutex<Reads>>;
}

fn lock_reads(reads: &Mutex<Reads>) -> MutexGuard<'_, Reads> {
    reads.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `answer` noting every memo value it reads (in this task; the memos' own spawned
/// computations are theirs). `None` when it read something no memo keeps.
pub async fn tracked<T>(answer: impl Future<Output = T>) -> (T, Option<Arc<dyn Provenance>>) {
    let reads = Arc::new(Mutex::new(Reads::default()));
    let value = READS.scope(reads.clone(), answer).await;
    let reads = std::mem::take(&mut *lock_reads(&reads));
    let provenance: Option<Arc<dyn Provenance>> = if reads.untracked {
        None
    } else {
        Some(Arc::new(ReadSet(reads.values)))
    };
    (value, provenance)
}

/// Notes, for a request run through [`tracked`], a read no memo keeps (a store read made for
/// this request alone): its answer may not be kept.
pub fn untracked() {
    let _ = READS.try_with(|reads| lock_reads(reads).untracked = true);
}

/// Every value a request read, each still current.
struct ReadSet(Vec<Box<dyn Provenance>>);

impl Provenance for ReadSet {
    fn is_current(&self, at: UnixMs) -> bool {
        self.0.iter().all(|read| read.is_current(at))
    }
}

/// One value a request read: `key`'s entry of a memo, which answered `value`. Held weakly,
/// so a kept page doesn't keep a replaced snapshot alive (the allocation stays, so its
/// address can't be another value's).
struct Read<K, V> {
    entries: Arc<Mutex<HashMap<K, Entry<V>>>>,
    key: K,
    value: Weak<V>,
    freshness: Freshness,
}

impl<K, V> Provenance for Read<K, V>
where
    K: Hash + Eq + Send + Sync,
    V: Send + Sync,
{
    fn is_current(&self, at: UnixMs) -> bool {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = entries.get(&self.key) else {
            return false;
        };
        // What `get` would do at `at`: answer this same value without starting a refresh
        // (fresh, or stale with the refresh already under way).
        match usable(self.freshness, entry, at) {
            Some((value, fresh)) => {
                std::ptr::eq(Arc::as_ptr(&value), self.value.as_ptr())
                    && (fresh || entry.flight.is_some())
            }
            None => false,
        }
    }
}

/// The entry's value if it may answer at page time `at`, and whether it is fresh.
fn usable<V>(freshness: Freshness, entry: &Entry<V>, at: UnixMs) -> Option<(Arc<V>, bool)> {
    entry.value.as_ref().and_then(|(value, when, made, took)| {
        let fresh_for = freshness.fresh.max(*took * SLOW_FACTOR);
        let fresh = Freshness::within(fresh_for, *when, *made, at);
        // The stale window follows the fresh one, however long that was.
        let stale = Freshness::within(fresh_for + freshness.stale, *when, *made, at);
        (fresh || stale).then(|| (value.clone(), fresh))
    })
}

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
    K: Hash + Eq + Clone + Send + Sync + 'static,
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
        // The key again for the request's reads, when it is tracked.
        let noted = READS.try_with(|_| key.clone()).ok();
        let found = {
            let mut entries = Self::lock(&self.entries);
            if entries.len() >= self.max && !entries.contains_key(&key) {
                entries.retain(|_, e| e.flight.is_some());
            }
            let entry = entries.entry(key.clone()).or_insert(Entry {
                value: None,
                flight: None,
            });
            let usable = usable(self.freshness, entry, at);
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
        let value = match found {
            Found::Value(value) => value,
            Found::Wait(flight) => flight.await?,
        };
        if let Some(key) = noted {
            self.note(key, &value);
        }
        Ok(value)
    }

    /// Lists the value read for `key` with the request's reads, if it is [`tracked`].
    fn note(&self, key: K, value: &Arc<V>) {
        let _ = READS.try_with(|reads| {
            let mut reads = lock_reads(reads);
            let id = (
                Arc::as_ptr(&self.entries) as *const () as usize,
                Arc::as_ptr(value) as *const () as usize,
            );
            if reads.seen.insert(id) {
                reads.values.push(Box::new(Read {
                    entries: self.entries.clone(),
                    key,
                    value: Arc::downgrade(value),
                    freshness: self.freshness,
                }));
            }
        });
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
    async fn a_tracked_read_is_current_while_get_would_answer_it_unrefreshed() {
        let memo = memo(30, 60_000);
        let runs = Arc::new(AtomicUsize::new(0));
        let (value, read) = tracked(memo.get("a", UnixMs(0), counted(&runs, 0))).await;
        assert_eq!(*value.unwrap(), 1);
        let read = read.expect("only memo reads: kept");
        assert!(read.is_current(UnixMs(0)));
        assert!(
            !read.is_current(UnixMs(300_000)),
            "another page time reads anew"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
        // Stale and nobody refreshing: the next request must read it, which starts one.
        assert!(!read.is_current(UnixMs(0)));
        let (again, _) = tracked(memo.get("a", UnixMs(0), counted(&runs, 50))).await;
        assert_eq!(*again.unwrap(), 1, "the stale value answers meanwhile");
        assert!(
            read.is_current(UnixMs(0)),
            "stale with its refresh under way: get answers the same value"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!read.is_current(UnixMs(0)), "replaced by the refresh");
        let (fresh, now_read) = tracked(memo.get("a", UnixMs(0), counted(&runs, 0))).await;
        assert_eq!(*fresh.unwrap(), 2);
        assert!(now_read.unwrap().is_current(UnixMs(0)));
    }

    #[tokio::test]
    async fn every_value_read_counts_and_a_dropped_one_is_not_current() {
        let memo = Memo::<&'static str, usize>::new(
            Freshness {
                fresh: Duration::from_secs(60),
                stale: Duration::from_secs(60),
            },
            2,
        );
        let runs = Arc::new(AtomicUsize::new(0));
        let (_, read) = tracked(async {
            memo.get("a", UnixMs(0), counted(&runs, 0)).await.unwrap();
            memo.get("b", UnixMs(0), counted(&runs, 0)).await.unwrap();
            memo.get("a", UnixMs(0), counted(&runs, 0)).await.unwrap();
        })
        .await;
        let read = read.unwrap();
        assert!(read.is_current(UnixMs(0)));
        // A third key fills the memo: a and b are dropped, so what read them is not current.
        memo.get("c", UnixMs(0), counted(&runs, 0)).await.unwrap();
        assert!(!read.is_current(UnixMs(0)));
    }

    #[tokio::test]
    async fn a_read_outside_the_memos_gives_nothing_to_keep() {
        let memo = memo(60_000, 60_000);
        let runs = Arc::new(AtomicUsize::new(0));
        let (value, read) = tracked(async {
            let value = memo.get("a", UnixMs(0), counted(&runs, 0)).await;
            untracked();
            value
        })
        .await;
        assert_eq!(*value.unwrap(), 1);
        assert!(read.is_none());
        // Outside a tracked request, both are no-ops.
        untracked();
        assert_eq!(
            *memo.get("a", UnixMs(0), counted(&runs, 0)).await.unwrap(),
            1
        );
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

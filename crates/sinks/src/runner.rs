//! Runs each sink on a thread of its own and fans every batch out to all of them, so that one
//! failing sink is reported and isolated instead of taking the others down:
//!
//! - a batch a sink cannot take now (`SinkError { retryable: true }`: a full disk, a locked
//!   database) is kept in that sink's bounded memory and retried with backoff; the sink resumes
//!   when the cause goes away. Past the bound, the oldest records are dropped and counted.
//! - a sink that fails for good (`retryable: false`: stdout closed) is marked failed, logged
//!   once, and from then on its records are counted as dropped; the other sinks go on.
//! - closing gives every sink the same grace to write what it holds, then reports.

use crate::sink::{Envelope, Settle, Settlement, Sink, SinkReport};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// How often a sink's background work runs when no batch arrives.
pub const TICK: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy)]
pub struct RunnerOptions {
    /// Records a sink may hold in memory while it cannot write.
    pub max_pending: usize,
    /// Records handed to the sink at once.
    pub batch: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            max_pending: 200_000,
            batch: 2048,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Live counts of one sink (for metrics), shared with its thread.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub received: AtomicU64,
    pub delivered: AtomicU64,
    /// Records the sink settled as failed (a wrapper may still have spooled them).
    pub failed: AtomicU64,
    /// Records the runner dropped (memory bound reached, or the sink failed for good).
    pub dropped: AtomicU64,
    /// Write attempts that failed and will be retried.
    pub retries: AtomicU64,
    pub broken: AtomicBool,
}

impl Settle for SinkStats {
    fn settle(&self, _: &Envelope, settlement: Settlement) {
        match settlement {
            Settlement::Delivered => self.delivered.fetch_add(1, Ordering::Relaxed),
            Settlement::Failed(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

enum Message {
    Batch(Arc<[Envelope]>),
    Close(Duration),
}

pub struct SinkHandle {
    pub name: &'static str,
    pub stats: Arc<SinkStats>,
    messages: mpsc::Sender<Message>,
    thread: std::thread::JoinHandle<SinkReport>,
}

impl SinkHandle {
    pub fn start(sink: Box<dyn Sink>, options: RunnerOptions) -> std::io::Result<SinkHandle> {
        let name = sink.name();
        let stats = Arc::new(SinkStats::default());
        let (messages, incoming) = mpsc::channel();
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || drive(sink, incoming, thread_stats, options))?;
        Ok(SinkHandle {
            name,
            stats,
            messages,
            thread,
        })
    }

    pub fn send(&self, batch: Arc<[Envelope]>) {
        self.stats
            .received
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if self.messages.send(Message::Batch(batch.clone())).is_err() {
            // The thread is gone (it panicked): what it would have written is lost, and said.
            self.stats
                .dropped
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
    }

    pub fn is_broken(&self) -> bool {
        self.stats.broken.load(Ordering::Relaxed)
    }

    /// Asks the sink to write what it holds within `grace`, then to close; returns its report.
    pub fn close(self, grace: Duration) -> SinkReport {
        let _ = self.messages.send(Message::Close(grace));
        match self.thread.join() {
            Ok(report) => report,
            Err(_) => SinkReport {
                name: self.name,
                received: self.stats.received.load(Ordering::Relaxed),
                failure: Some("the sink's thread panicked".into()),
                ..SinkReport::default()
            },
        }
    }
}

/// What a sink's thread holds between messages.
struct Held {
    pending: VecDeque<Envelope>,
    /// Set once the sink failed for good: its records are dropped from then on.
    failure: Option<String>,
    /// When closing was asked for, the moment the grace ends.
    closing: Option<Instant>,
    grace: Duration,
}

impl Held {
    fn take(&mut self, message: Message, stats: &SinkStats, options: &RunnerOptions, name: &str) {
        match message {
            Message::Batch(batch) => {
                if self.failure.is_some() {
                    stats
                        .dropped
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return;
                }
                self.pending.extend(batch.iter().cloned());
                let over = self.pending.len().saturating_sub(options.max_pending);
                if over > 0 {
                    self.pending.drain(..over);
                    let total =
                        stats.dropped.fetch_add(over as u64, Ordering::Relaxed) + over as u64;
                    let before = total - over as u64;
                    // Logged when the count passes a power of two: seen, never a flood.
                    if before == 0 || before.ilog2() != total.ilog2() {
                        tracing::error!(
                            sink = name,
                            dropped = total,
                            "the sink cannot keep up and its memory bound is reached: dropping its oldest records"
                        );
                    }
                }
            }
            Message::Close(within) => {
                self.grace = within;
                self.closing = Some(Instant::now() + within);
            }
        }
    }
}

fn drive(
    mut sink: Box<dyn Sink>,
    incoming: mpsc::Receiver<Message>,
    stats: Arc<SinkStats>,
    options: RunnerOptions,
) -> SinkReport {
    let name = sink.name();
    let settle: Arc<dyn Settle> = stats.clone();
    let mut held = Held {
        pending: VecDeque::new(),
        failure: None,
        closing: None,
        grace: Duration::ZERO,
    };
    let mut backoff = options.min_backoff;
    let mut retry_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let wait = match retry_at {
            _ if held.closing.is_some() => Duration::ZERO,
            Some(at) if at > now => (at - now).min(TICK),
            Some(_) => Duration::ZERO,
            None if held.pending.is_empty() => TICK,
            None => Duration::ZERO,
        };
        match incoming.recv_timeout(wait) {
            Ok(message) => held.take(message, &stats, &options, name),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                held.closing.get_or_insert_with(Instant::now);
            }
        }
        while let Ok(message) = incoming.try_recv() {
            held.take(message, &stats, &options, name);
        }
        if held.failure.is_none() && retry_at.is_none_or(|at| Instant::now() >= at) {
            retry_at = None;
            while !held.pending.is_empty() {
                let n = held.pending.len().min(options.batch);
                let chunk: Vec<Envelope> = held.pending.iter().take(n).cloned().collect();
                match sink.send(&chunk, &settle) {
                    Ok(()) => {
                        held.pending.drain(..n);
                        if backoff > options.min_backoff {
                            tracing::info!(sink = name, "the sink writes again");
                        }
                        backoff = options.min_backoff;
                    }
                    Err(error) if error.retryable => {
                        let retries = stats.retries.fetch_add(1, Ordering::Relaxed) + 1;
                        if retries.is_power_of_two() {
                            tracing::warn!(sink = name, %error, retries, held = held.pending.len(), "cannot write; keeping the records and retrying in {backoff:?}");
                        }
                        retry_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(options.max_backoff);
                        break;
                    }
                    Err(error) => {
                        let lost = held.pending.len();
                        if error.message == crate::stdout::READER_GONE {
                            tracing::info!(
                                sink = name,
                                lost,
                                "{}; the other sinks go on",
                                error.message
                            );
                        } else {
                            tracing::error!(sink = name, %error, lost, "the sink failed; the other sinks go on");
                        }
                        stats.dropped.fetch_add(lost as u64, Ordering::Relaxed);
                        held.pending.clear();
                        stats.broken.store(true, Ordering::Relaxed);
                        held.failure = Some(error.message);
                        break;
                    }
                }
            }
        }
        sink.tick();
        if let Some(deadline) = held.closing {
            if held.pending.is_empty() || held.failure.is_some() || Instant::now() >= deadline {
                if !held.pending.is_empty() {
                    tracing::error!(
                        sink = name,
                        lost = held.pending.len(),
                        "closing with records the sink could not write"
                    );
                    stats
                        .dropped
                        .fetch_add(held.pending.len() as u64, Ordering::Relaxed);
                }
                break;
            }
            // Still writing within the grace: wait for the next retry rather than spin.
            if let Some(at) = retry_at {
                std::thread::sleep(at.saturating_duration_since(Instant::now()).min(TICK));
            }
        }
    }
    let mut report = sink.close(held.grace);
    report.received = stats.received.load(Ordering::Relaxed);
    report.dropped += stats.dropped.load(Ordering::Relaxed);
    if report.failure.is_none() {
        report.failure = held.failure;
    }
    report
}

/// Every sink of a run, fed the same batches.
#[derive(Default)]
pub struct Fanout {
    sinks: Vec<SinkHandle>,
}

impl Fanout {
    pub fn start(sinks: Vec<Box<dyn Sink>>, options: RunnerOptions) -> std::io::Result<Fanout> {
        let sinks = sinks
            .into_iter()
            .map(|sink| SinkHandle::start(sink, options))
            .collect::<Result<_, _>>()?;
        Ok(Fanout { sinks })
    }

    pub fn send(&self, batch: Vec<Envelope>) {
        let batch: Arc<[Envelope]> = batch.into();
        for sink in &self.sinks {
            sink.send(batch.clone());
        }
    }

    pub fn handles(&self) -> &[SinkHandle] {
        &self.sinks
    }

    /// True when every sink has failed for good: nothing records results any more.
    pub fn all_broken(&self) -> bool {
        !self.sinks.is_empty() && self.sinks.iter().all(SinkHandle::is_broken)
    }

    /// Closes every sink, giving each `grace` (they close in parallel).
    pub fn close(self, grace: Duration) -> Vec<SinkReport> {
        // Ask them all first, so the graces run side by side.
        for sink in &self.sinks {
            let _ = sink.messages.send(Message::Close(grace));
        }
        self.sinks.into_iter().map(|s| s.close(grace)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{Guarantee, SinkError};
    use crate::test_support::envelope;
    use std::sync::Mutex;

    /// A sink that fails the way it is told to, for the first `fail_first` sends.
    struct Scripted {
        fail_first: usize,
        retryable: bool,
        calls: usize,
        written: Arc<Mutex<Vec<u64>>>,
    }

    impl Sink for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn guarantee(&self) -> Guarantee {
            Guarantee::Durable
        }
        fn send(&mut self, batch: &[Envelope], settle: &Arc<dyn Settle>) -> Result<(), SinkError> {
            self.calls += 1;
            if self.calls <= self.fail_first {
                return Err(SinkError {
                    retryable: self.retryable,
                    message: "disk full".into(),
                });
            }
            for e in batch {
                self.written.lock().unwrap().push(e.id().as_u64_pair().1);
                settle.settle(e, Settlement::Delivered);
            }
            Ok(())
        }
        fn close(self: Box<Self>, _: Duration) -> SinkReport {
            SinkReport {
                name: "scripted",
                ..SinkReport::default()
            }
        }
    }

    fn fast() -> RunnerOptions {
        RunnerOptions {
            max_pending: 1000,
            batch: 10,
            min_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        }
    }

    #[test]
    fn a_sink_that_cannot_write_for_a_while_keeps_its_records_and_resumes() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = Scripted {
            fail_first: 5,
            retryable: true,
            calls: 0,
            written: written.clone(),
        };
        let handle = SinkHandle::start(Box::new(sink), fast()).unwrap();
        handle.send((0..25).map(envelope).collect::<Vec<_>>().into());
        let report = handle.close(Duration::from_secs(5));
        assert_eq!(*written.lock().unwrap(), (0..25).collect::<Vec<_>>());
        assert_eq!((report.received, report.dropped), (25, 0));
    }

    #[test]
    fn a_sink_that_fails_for_good_is_isolated_and_its_records_counted_as_dropped() {
        let broken_written = Arc::new(Mutex::new(Vec::new()));
        let healthy_written = Arc::new(Mutex::new(Vec::new()));
        let fanout = Fanout::start(
            vec![
                Box::new(Scripted {
                    fail_first: usize::MAX,
                    retryable: false,
                    calls: 0,
                    written: broken_written.clone(),
                }),
                Box::new(Scripted {
                    fail_first: 0,
                    retryable: true,
                    calls: 0,
                    written: healthy_written.clone(),
                }),
            ],
            fast(),
        )
        .unwrap();
        for n in 0..3 {
            fanout.send(vec![envelope(n)]);
        }
        let reports = fanout.close(Duration::from_secs(5));
        assert_eq!(reports[0].failure.as_deref(), Some("disk full"));
        assert_eq!(reports[0].dropped, 3);
        assert!(broken_written.lock().unwrap().is_empty());
        assert_eq!(*healthy_written.lock().unwrap(), vec![0, 1, 2]);
        assert_eq!(reports[1].failure, None);
    }

    #[test]
    fn past_its_memory_bound_a_stuck_sink_drops_its_oldest_records_and_counts_them() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = Scripted {
            fail_first: usize::MAX,
            retryable: true,
            calls: 0,
            written,
        };
        let options = RunnerOptions {
            max_pending: 10,
            ..fast()
        };
        let handle = SinkHandle::start(Box::new(sink), options).unwrap();
        handle.send((0..25).map(envelope).collect::<Vec<_>>().into());
        let report = handle.close(Duration::from_millis(50));
        assert_eq!(report.received, 25);
        assert_eq!(
            report.dropped, 25,
            "15 over the bound, then 10 unwritten at close"
        );
    }
}

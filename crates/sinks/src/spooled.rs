//! The disk spool as a wrapper any sink can sit behind: [`Spooled`] writes a record to the
//! [`Spool`] when its sink settles it as failed (or refuses its batch), and replays the spool
//! through the sink when it has room, deleting a segment only once every one of its records is
//! delivered.

use crate::sink::{Envelope, Guarantee, Settle, Settlement, Sink, SinkError, SinkReport};
use crate::spool::Spool;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A sink that can say how much it holds undelivered (Kafka: records queued in librdkafka):
/// the spool is replayed only while there is room.
pub trait Backlog {
    fn backlog(&self) -> usize;
}

/// After a replayed segment fails, wait this long before trying again: the destination is
/// probably still away.
const REPLAY_RETRY: Duration = Duration::from_secs(5);

pub struct Spooled<S> {
    inner: S,
    spool: Arc<Spool>,
    /// Replay only while the inner sink holds fewer than this many records.
    max_backlog: usize,
    replay: Arc<ReplayState>,
    /// The segment being replayed: its records not yet handed over, and its acknowledger.
    replaying: Option<(VecDeque<Envelope>, Arc<dyn Settle>)>,
}

#[derive(Debug, Default)]
struct ReplayState {
    retry_after: Mutex<Option<Instant>>,
}

impl<S: Sink + Backlog> Spooled<S> {
    pub fn new(inner: S, spool: Arc<Spool>, max_backlog: usize) -> Spooled<S> {
        if !spool.is_empty() {
            tracing::info!(
                sink = inner.name(),
                records = spool.records_on_disk(),
                bytes = spool.bytes(),
                "records spooled by an earlier run will be delivered"
            );
        }
        Spooled {
            inner,
            spool,
            max_backlog: max_backlog.max(2),
            replay: Arc::default(),
            replaying: None,
        }
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// Hands spooled records to the inner sink while it has room: the rest of the segment
    /// being replayed, or the oldest one not yet out. A segment larger than the sink's memory
    /// queue goes over in several steps. Returns how many records were handed over.
    pub fn replay_once(&mut self) -> usize {
        if self.replaying.is_none() && !self.start_replay() {
            return 0;
        }
        // A quarter of the memory queue stays free for fresh records.
        let room = (self.max_backlog * 3 / 4).saturating_sub(self.inner.backlog());
        let Some((left, ack)) = self.replaying.as_mut() else {
            return 0;
        };
        let n = room.min(left.len());
        if n == 0 {
            return 0;
        }
        let step: Vec<Envelope> = left.drain(..n).collect();
        let ack = ack.clone();
        if left.is_empty() {
            self.replaying = None;
        }
        if let Err(e) = self.inner.send(&step, &ack) {
            // Not taken: settle them as failed, so the segment comes back for a later replay.
            tracing::warn!("replaying the spool: {e}");
            for envelope in &step {
                ack.settle(envelope, Settlement::Failed(e.message.clone()));
            }
            if let Some((left, _)) = self.replaying.take() {
                for envelope in &left {
                    ack.settle(envelope, Settlement::Failed(e.message.clone()));
                }
            }
            return 0;
        }
        n
    }

    /// Takes the oldest segment for replay, unless one is out, the destination just failed
    /// one, or there is none.
    fn start_replay(&mut self) -> bool {
        if self.spool.replaying() {
            return false;
        }
        if self
            .replay
            .retry_after
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| Instant::now() < at)
        {
            return false;
        }
        let batch = match self.spool.take_oldest() {
            Ok(Some(batch)) => batch,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!("cannot read the spool: {e}");
                return false;
            }
        };
        let envelopes: VecDeque<Envelope> = batch
            .records
            .iter()
            .filter_map(|line| match Envelope::from_json(line) {
                Ok(envelope) => Some(envelope),
                Err(e) => {
                    // A line we cannot read will never be delivered: it is not held up for.
                    tracing::warn!("skipping an unreadable spooled record: {e}");
                    None
                }
            })
            .collect();
        if envelopes.is_empty() {
            let _ = self.spool.finish(batch.seq);
            return false;
        }
        let ack: Arc<dyn Settle> = Arc::new(SegmentAck {
            spool: self.spool.clone(),
            seq: batch.seq,
            remaining: AtomicUsize::new(envelopes.len()),
            failed: AtomicBool::new(false),
            replay: self.replay.clone(),
        });
        self.replaying = Some((envelopes, ack));
        true
    }
}

/// Settles freshly sent records: delivered ones are counted by the caller's settler, failed
/// ones are written to the spool.
struct SpoolOnFailure {
    spool: Arc<Spool>,
    outer: Arc<dyn Settle>,
}

impl Settle for SpoolOnFailure {
    fn settle(&self, envelope: &Envelope, settlement: Settlement) {
        match settlement {
            Settlement::Delivered => self.outer.settle(envelope, Settlement::Delivered),
            Settlement::Failed(_) => {
                // Counted by the spool: spooled, or dropped when it is full or unwritable.
                self.spool.append(&envelope.json);
            }
        }
    }
}

/// Settles a replayed segment's records: the segment goes once all are delivered, and comes
/// back for a later replay if any is not.
struct SegmentAck {
    spool: Arc<Spool>,
    seq: u64,
    remaining: AtomicUsize,
    failed: AtomicBool,
    replay: Arc<ReplayState>,
}

impl Settle for SegmentAck {
    fn settle(&self, _: &Envelope, settlement: Settlement) {
        if let Settlement::Failed(_) = settlement {
            self.failed.store(true, Ordering::SeqCst);
        }
        if self.remaining.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        if self.failed.load(Ordering::SeqCst) {
            *self
                .replay
                .retry_after
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + REPLAY_RETRY);
            self.spool.release(self.seq);
        } else if let Err(e) = self.spool.finish(self.seq) {
            tracing::error!("cannot remove a replayed spool segment: {e}");
            self.spool.release(self.seq);
        } else {
            tracing::info!(segment = self.seq, "spooled records delivered");
        }
    }
}

impl<S: Sink + Backlog + 'static> Sink for Spooled<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn guarantee(&self) -> Guarantee {
        self.inner.guarantee()
    }

    fn send(&mut self, batch: &[Envelope], settle: &Arc<dyn Settle>) -> Result<(), SinkError> {
        let fresh: Arc<dyn Settle> = Arc::new(SpoolOnFailure {
            spool: self.spool.clone(),
            outer: settle.clone(),
        });
        match self.inner.send(batch, &fresh) {
            Ok(()) => Ok(()),
            Err(error) => {
                // The sink took none of them: the spool does.
                for envelope in batch {
                    self.spool.append(&envelope.json);
                }
                if error.retryable { Ok(()) } else { Err(error) }
            }
        }
    }

    fn tick(&mut self) {
        self.inner.tick();
        self.replay_once();
    }

    fn flush(&mut self, within: Duration) -> Result<(), SinkError> {
        let result = self.inner.flush(within);
        if let Err(e) = self.spool.sync() {
            tracing::error!("cannot sync the spool: {e}");
        }
        result
    }

    fn close(mut self: Box<Self>, grace: Duration) -> SinkReport {
        // While the destination takes records, hand it the spool too; stop when it is empty or
        // nothing more can go now (the destination is away and the replay paused).
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !self.spool.is_empty() {
            let handed = self.replay_once();
            let flushed = self.inner.flush(Duration::from_millis(100)).is_ok();
            if flushed {
                // The destination takes records: the pause after a failed segment is moot
                // now, and this is the last chance to empty the spool before exit.
                *self
                    .replay
                    .retry_after
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = None;
            } else if handed == 0 && !self.spool.replaying() {
                break;
            }
        }
        let Spooled {
            inner,
            spool,
            replaying,
            ..
        } = *self;
        // What of a segment was never handed over counts as not delivered: it stays on disk.
        if let Some((left, ack)) = replaying {
            for envelope in &left {
                ack.settle(
                    envelope,
                    Settlement::Failed("not replayed before exit".into()),
                );
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut report = Box::new(inner).close(remaining);
        if let Err(e) = spool.sync() {
            tracing::error!("cannot sync the spool: {e}");
        }
        report.spooled = spool.spooled();
        report.dropped += spool.dropped();
        report.spool_records = spool.records_on_disk();
        report.spool_bytes = spool.bytes();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::envelope;

    /// What a remote holds: each record with who to tell how it ended.
    type Held = Arc<Mutex<Vec<(Envelope, Arc<dyn Settle>)>>>;

    /// A remote that holds what it is sent until told to acknowledge or fail it.
    #[derive(Default)]
    struct Remote {
        held: Held,
        delivered: Arc<Mutex<Vec<u64>>>,
    }

    impl Remote {
        fn answer(
            held: &Mutex<Vec<(Envelope, Arc<dyn Settle>)>>,
            delivered: Option<&Mutex<Vec<u64>>>,
        ) {
            for (envelope, settle) in held.lock().unwrap().drain(..) {
                match delivered {
                    Some(d) => {
                        d.lock().unwrap().push(envelope.id().as_u64_pair().1);
                        settle.settle(&envelope, Settlement::Delivered);
                    }
                    None => settle.settle(&envelope, Settlement::Failed("away".into())),
                }
            }
        }
    }

    impl Backlog for Remote {
        fn backlog(&self) -> usize {
            self.held.lock().unwrap().len()
        }
    }

    impl Sink for Remote {
        fn name(&self) -> &'static str {
            "remote"
        }
        fn guarantee(&self) -> Guarantee {
            Guarantee::AtLeastOnce
        }
        fn send(&mut self, batch: &[Envelope], settle: &Arc<dyn Settle>) -> Result<(), SinkError> {
            for e in batch {
                self.held.lock().unwrap().push((e.clone(), settle.clone()));
            }
            Ok(())
        }
        fn close(self: Box<Self>, _: Duration) -> SinkReport {
            SinkReport::default()
        }
    }

    #[test]
    fn failed_records_are_spooled_once_and_replayed_segments_go_only_when_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path(), 1 << 20).unwrap());
        let remote = Remote::default();
        let (held, delivered) = (remote.held.clone(), remote.delivered.clone());
        let mut sink = Spooled::new(remote, spool.clone(), 100);
        let outer: Arc<dyn Settle> = Arc::new(crate::sink::Tally::default());

        sink.send(&(0..5).map(envelope).collect::<Vec<_>>(), &outer)
            .unwrap();
        Remote::answer(&held, None); // the broker is away: all five fail
        assert_eq!((spool.spooled(), spool.records_on_disk()), (5, 5));

        // Replayed while still away: handed over, failed again, still on disk, not re-counted.
        assert_eq!(sink.replay_once(), 5);
        assert_eq!(spool.records_on_disk(), 5, "on disk while in flight");
        Remote::answer(&held, None);
        assert_eq!((spool.spooled(), spool.records_on_disk()), (5, 5));

        // Back: the next replay (after the retry pause) is acknowledged and the segment goes.
        *sink.replay.retry_after.lock().unwrap() = None;
        assert_eq!(sink.replay_once(), 5);
        Remote::answer(&held, Some(&delivered));
        assert!(spool.is_empty());
        assert_eq!(*delivered.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }
}

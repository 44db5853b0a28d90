//! The on-disk spool: where records wait while their sink cannot take them (a broker away
//! longer than memory allows). Records are JSON lines in numbered segment files, oldest first.
//!
//! What it promises, and how:
//! - **A record that reached the spool is not lost.** A segment taken for replay stays on disk
//!   until every one of its records is acknowledged by the sink's destination
//!   ([`Spool::finish`]); if any fails, or the process dies first, the segment is replayed
//!   again later. A crash can repeat records (every store is idempotent on the record id),
//!   never lose one.
//! - **Counts are what is on disk, each record once.** A record is counted as spooled when its
//!   whole line is written; a replayed record that fails again stays in its segment and is not
//!   written (nor counted) a second time. A write that fails half-way (disk full) is rolled
//!   back by truncating the segment to its last whole line, and the record is counted as
//!   dropped; a torn last line left by a crash is skipped (and counted) when the segment is
//!   read.
//! - **Bounded**: past `max_bytes`, records are dropped, counted and logged (once per power of
//!   two, so a long outage does not flood the log).
//!
//! Written lines reach the page cache at once (one `write` per record), so a `kill -9` keeps
//! them; [`Spool::sync`] (called periodically and on close) makes them durable against a crash
//! of the machine too.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Segments are closed at this size so a replay reads a bounded amount at a time.
const SEGMENT_BYTES: u64 = 4 << 20;

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    inner: Mutex<Inner>,
    spooled: AtomicU64,
    dropped: AtomicU64,
    skipped: AtomicU64,
    replayed: AtomicU64,
}

#[derive(Debug)]
struct Segment {
    records: u64,
    bytes: u64,
}

#[derive(Debug)]
struct Inner {
    /// Closed segments not being replayed, by sequence number.
    available: BTreeSet<u64>,
    /// Segments handed out for replay and not yet finished or released.
    in_flight: BTreeSet<u64>,
    /// Size of every segment on disk, by sequence number.
    segments: std::collections::BTreeMap<u64, Segment>,
    /// The segment being appended to.
    current: Option<(u64, File)>,
    next_seq: u64,
}

/// One segment's records, taken for replay. Hand it back with [`Spool::finish`] once all of
/// them are acknowledged, or [`Spool::release`] if any failed.
#[derive(Debug)]
pub struct Batch {
    pub seq: u64,
    pub records: Vec<Vec<u8>>,
}

fn segment_name(seq: u64) -> String {
    format!("segment-{seq:020}.ndjson")
}

fn segment_seq(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix("segment-")?
        .strip_suffix(".ndjson")?
        .parse()
        .ok()
}

/// Splits a segment's bytes into whole lines; a last line without its newline (a write torn by
/// a crash) is not a record.
fn whole_lines(bytes: &[u8]) -> (Vec<&[u8]>, bool) {
    let torn = !bytes.is_empty() && !bytes.ends_with(b"\n");
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    lines.pop(); // after the last newline: empty, or the torn tail
    lines.retain(|l| !l.is_empty());
    (lines, torn)
}

impl Spool {
    /// Opens (creating it 0700 if needed) the spool in `dir`, picking up segments left by an
    /// earlier run.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut segments = std::collections::BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if let Some(seq) = segment_seq(&path) {
                let bytes = fs::read(&path)?;
                let (lines, _) = whole_lines(&bytes);
                segments.insert(
                    seq,
                    Segment {
                        records: lines.len() as u64,
                        bytes: bytes.len() as u64,
                    },
                );
            }
        }
        let next_seq = segments.keys().next_back().map_or(0, |s| s + 1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            inner: Mutex::new(Inner {
                available: segments.keys().copied().collect(),
                in_flight: BTreeSet::new(),
                segments,
                current: None,
                next_seq,
            }),
            spooled: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one record (a JSON line without its newline). Returns `false` when it was
    /// dropped (the spool is full or the disk refused it): counted, logged, and nothing of it
    /// left on disk.
    pub fn append(&self, record: &[u8]) -> bool {
        let mut inner = self.lock();
        let size = record.len() as u64 + 1;
        let on_disk: u64 = inner.segments.values().map(|s| s.bytes).sum();
        if on_disk + size > self.max_bytes {
            drop(inner);
            self.note_drop("the spool is full (spool_max_bytes)");
            return false;
        }
        match self.write_locked(&mut inner, record) {
            Ok(()) => {
                self.spooled.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                drop(inner);
                self.note_drop(&format!("cannot write the spool: {e}"));
                false
            }
        }
    }

    fn write_locked(&self, inner: &mut Inner, record: &[u8]) -> io::Result<()> {
        if inner.current.is_none() {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(self.dir.join(segment_name(seq)))?;
            inner.segments.insert(
                seq,
                Segment {
                    records: 0,
                    bytes: 0,
                },
            );
            inner.current = Some((seq, file));
        }
        let (seq, file) = inner.current.as_mut().expect("opened above");
        let seq = *seq;
        let mut line = Vec::with_capacity(record.len() + 1);
        line.extend_from_slice(record);
        line.push(b'\n');
        let before = inner.segments[&seq].bytes;
        if let Err(e) = file.write_all(&line) {
            // Roll a half-written line back so the segment holds whole records only.
            let _ = file.set_len(before);
            return Err(e);
        }
        let segment = inner
            .segments
            .get_mut(&seq)
            .expect("inserted with the file");
        segment.records += 1;
        segment.bytes += line.len() as u64;
        if segment.bytes >= SEGMENT_BYTES {
            Self::close_current(inner)?;
        }
        Ok(())
    }

    fn close_current(inner: &mut Inner) -> io::Result<()> {
        if let Some((seq, file)) = inner.current.take() {
            file.sync_data()?;
            inner.available.insert(seq);
        }
        Ok(())
    }

    fn note_drop(&self, why: &str) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // One line per power of two: visible, without flooding the log during a long outage.
        if dropped.is_power_of_two() {
            tracing::error!(dropped, "dropping a record: {why}");
        }
    }

    /// Makes written records durable (called periodically and on close).
    pub fn sync(&self) -> io::Result<()> {
        if let Some((_, file)) = self.lock().current.as_ref() {
            file.sync_data()?;
        }
        Ok(())
    }

    /// Takes the oldest segment not already being replayed (closing the current one if it is
    /// all there is), or `None` when there is nothing to replay.
    pub fn take_oldest(&self) -> io::Result<Option<Batch>> {
        let mut inner = self.lock();
        if inner.available.is_empty() {
            let has_records = inner
                .current
                .as_ref()
                .is_some_and(|(seq, _)| inner.segments[seq].records > 0);
            if !has_records {
                return Ok(None);
            }
            Self::close_current(&mut inner)?;
        }
        let Some(seq) = inner.available.pop_first() else {
            return Ok(None);
        };
        let bytes = match fs::read(self.dir.join(segment_name(seq))) {
            Ok(bytes) => bytes,
            Err(e) => {
                inner.available.insert(seq);
                return Err(e);
            }
        };
        let (lines, torn) = whole_lines(&bytes);
        if torn {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                segment = seq,
                "the spool's last line was cut short (a crash while writing): skipped"
            );
        }
        inner.in_flight.insert(seq);
        self.replayed
            .fetch_add(lines.len() as u64, Ordering::Relaxed);
        Ok(Some(Batch {
            seq,
            records: lines.into_iter().map(<[u8]>::to_vec).collect(),
        }))
    }

    /// Deletes a replayed segment: every one of its records was acknowledged.
    pub fn finish(&self, seq: u64) -> io::Result<()> {
        let mut inner = self.lock();
        fs::remove_file(self.dir.join(segment_name(seq)))?;
        inner.in_flight.remove(&seq);
        inner.segments.remove(&seq);
        Ok(())
    }

    /// Gives a segment back for a later replay: some of its records were not acknowledged.
    pub fn release(&self, seq: u64) {
        let mut inner = self.lock();
        if inner.in_flight.remove(&seq) {
            inner.available.insert(seq);
        }
    }

    /// True when no record waits on disk (none available, in flight or being appended).
    pub fn is_empty(&self) -> bool {
        self.records_on_disk() == 0
    }

    /// Whether a segment is out for replay right now.
    pub fn replaying(&self) -> bool {
        !self.lock().in_flight.is_empty()
    }

    /// Records on disk now (written, not yet acknowledged after a replay).
    pub fn records_on_disk(&self) -> u64 {
        self.lock().segments.values().map(|s| s.records).sum()
    }

    /// Bytes on disk now.
    pub fn bytes(&self) -> u64 {
        self.lock().segments.values().map(|s| s.bytes).sum()
    }

    /// Records written to the spool by this process, each once.
    pub fn spooled(&self) -> u64 {
        self.spooled.load(Ordering::Relaxed)
    }

    /// Records dropped by this process because the spool was full or unwritable.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records handed back to the sink for replay (a record replayed twice counts twice).
    pub fn replayed(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }

    /// Torn lines (left by a crash mid-write) skipped when reading.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(spool.is_empty());
        for i in 0..10 {
            assert!(spool.append(format!("{{\"n\":{i}}}").as_bytes()));
        }
        spool.sync().unwrap();
        drop(spool);

        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.records_on_disk(), 10);
        assert!(spool.append(b"{\"n\":10}"));
        let first = spool.take_oldest().unwrap().unwrap();
        assert_eq!(first.records.len(), 10);
        assert_eq!(first.records[0], b"{\"n\":0}");
        spool.finish(first.seq).unwrap();
        let second = spool.take_oldest().unwrap().unwrap();
        assert_eq!(second.records, vec![b"{\"n\":10}".to_vec()]);
        spool.finish(second.seq).unwrap();
        assert!(spool.take_oldest().unwrap().is_none());
        assert!(spool.is_empty());
        assert_eq!(spool.bytes(), 0);
    }

    #[test]
    fn a_full_spool_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 20).unwrap();
        assert!(spool.append(b"0123456789"));
        assert!(!spool.append(b"0123456789"), "11 + 11 bytes exceed 20");
        assert_eq!((spool.spooled(), spool.dropped()), (1, 1));
        let batch = spool.take_oldest().unwrap().unwrap();
        spool.finish(batch.seq).unwrap();
        assert!(spool.append(b"0123456789"), "room again once replayed");
    }

    #[test]
    fn a_segment_out_for_replay_stays_on_disk_until_finished() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(spool.append(b"{}"));
        let batch = spool.take_oldest().unwrap().unwrap();
        assert_eq!(batch.records.len(), 1);
        assert!(spool.replaying());
        assert!(
            spool.take_oldest().unwrap().is_none(),
            "not handed out twice"
        );
        assert_eq!(
            spool.records_on_disk(),
            1,
            "still on disk while unacknowledged"
        );
        drop(spool); // the process dies before the broker acknowledges
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.take_oldest().unwrap().unwrap().records.len(), 1);
    }

    #[test]
    fn a_released_segment_is_replayed_again_without_being_counted_again() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for _ in 0..3 {
            assert!(spool.append(b"{}"));
        }
        for _ in 0..4 {
            let batch = spool.take_oldest().unwrap().unwrap();
            assert_eq!(batch.records.len(), 3);
            spool.release(batch.seq); // the broker rejected them again
        }
        assert_eq!(spool.spooled(), 3, "each record counted once");
        assert_eq!(spool.records_on_disk(), 3);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(segment_name(7)),
            b"{\"n\":1}\n{\"n\":2}\n{\"n\":",
        )
        .unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.records_on_disk(), 2);
        let batch = spool.take_oldest().unwrap().unwrap();
        assert_eq!(
            batch.records,
            vec![b"{\"n\":1}".to_vec(), b"{\"n\":2}".to_vec()]
        );
        assert_eq!(spool.skipped(), 1);
        // New records go to a new segment after the ones found.
        assert!(spool.append(b"{}"));
        assert!(dir.path().join(segment_name(8)).exists());
    }

    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        let spool = Spool::open(&spool_dir, 1 << 20).unwrap();
        assert!(spool.append(b"{}"));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&spool_dir), 0o700);
        assert_eq!(mode(&spool_dir.join(segment_name(0))), 0o600);
    }
}

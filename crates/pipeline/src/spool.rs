//! The on-disk spool: where records wait when the broker has been away longer than memory
//! allows. Records are NDJSON lines in numbered segment files, oldest first; a segment is
//! deleted only after every record in it has been handed back to the producer, so a crash can
//! repeat records (the stores are idempotent on the record id) but never lose one that reached
//! the spool. The spool is bounded in bytes: a record that does not fit is dropped and counted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
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
}

#[derive(Debug)]
struct Inner {
    /// Sequence numbers of closed segments, oldest first.
    closed: Vec<u64>,
    current: Option<(u64, BufWriter<File>, u64)>,
    next_seq: u64,
    bytes: u64,
}

/// One segment's records, taken for replay. Call [`Spool::finish`] once they are handed on.
#[derive(Debug)]
pub struct Batch {
    pub records: Vec<Vec<u8>>,
    path: PathBuf,
    bytes: u64,
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

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, picking up segments left by an earlier
    /// run.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut closed = Vec::new();
        let mut bytes = 0;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(seq) = segment_seq(&entry.path()) {
                bytes += entry.metadata()?.len();
                closed.push(seq);
            }
        }
        closed.sort_unstable();
        let next_seq = closed.last().map_or(0, |s| s + 1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            inner: Mutex::new(Inner {
                closed,
                current: None,
                next_seq,
                bytes,
            }),
            spooled: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Appends one record (a JSON line without its newline). Returns `false` when the spool is
    /// full or the disk refused it: the record is dropped and counted.
    pub fn append(&self, record: &[u8]) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let size = record.len() as u64 + 1;
        if inner.bytes + size > self.max_bytes {
            self.note_drop("the spool is full (spool_max_bytes)");
            return false;
        }
        match self.write_locked(&mut inner, record) {
            Ok(()) => {
                inner.bytes += size;
                self.spooled.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
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
                .open(self.dir.join(segment_name(seq)))?;
            inner.current = Some((seq, BufWriter::new(file), 0));
        }
        let (seq, writer, written) = inner.current.as_mut().expect("opened above");
        writer.write_all(record)?;
        writer.write_all(b"\n")?;
        *written += record.len() as u64 + 1;
        if *written >= SEGMENT_BYTES {
            let seq = *seq;
            Self::close_current(inner)?;
            debug_assert!(inner.closed.last().is_some_and(|&s| s == seq));
        }
        Ok(())
    }

    fn close_current(inner: &mut Inner) -> io::Result<()> {
        if let Some((seq, mut writer, _)) = inner.current.take() {
            writer.flush()?;
            writer.get_ref().sync_data()?;
            inner.closed.push(seq);
        }
        Ok(())
    }

    fn note_drop(&self, why: &str) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // One line per power of two: visible, without flooding the log during a long outage.
        if dropped.is_power_of_two() {
            tracing::error!(dropped, "dropping a result: {why}");
        }
    }

    /// Writes buffered records to disk (called on shutdown and periodically).
    pub fn sync(&self) -> io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, writer, _)) = inner.current.as_mut() {
            writer.flush()?;
            writer.get_ref().sync_data()?;
        }
        Ok(())
    }

    /// Takes the oldest segment's records for replay (closing the current segment if it is the
    /// only one), or `None` when the spool is empty.
    pub fn take_oldest(&self) -> io::Result<Option<Batch>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.closed.is_empty() {
            if inner.current.as_ref().is_some_and(|(_, _, n)| *n > 0) {
                Self::close_current(&mut inner)?;
            } else {
                return Ok(None);
            }
        }
        let seq = inner.closed[0];
        let path = self.dir.join(segment_name(seq));
        let file = File::open(&path)?;
        let bytes = file.metadata()?.len();
        let mut records = Vec::new();
        for line in BufReader::new(file).split(b'\n') {
            let line = line?;
            if !line.is_empty() {
                records.push(line);
            }
        }
        Ok(Some(Batch {
            records,
            path,
            bytes,
        }))
    }

    /// Deletes a replayed segment: its records are the producer's now.
    pub fn finish(&self, batch: Batch) -> io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        fs::remove_file(&batch.path)?;
        let seq = segment_seq(&batch.path);
        inner.closed.retain(|s| Some(*s) != seq);
        inner.bytes = inner.bytes.saturating_sub(batch.bytes);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.closed.is_empty() && inner.current.as_ref().is_none_or(|(_, _, n)| *n == 0)
    }

    /// Bytes on disk (or buffered for it).
    pub fn bytes(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }

    /// Records written to the spool since start.
    pub fn spooled(&self) -> u64 {
        self.spooled.load(Ordering::Relaxed)
    }

    /// Records dropped since start because the spool was full or unwritable.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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
        assert!(!spool.is_empty());
        assert!(spool.append(b"{\"n\":10}"));
        let first = spool.take_oldest().unwrap().unwrap();
        assert_eq!(first.records.len(), 10);
        assert_eq!(first.records[0], b"{\"n\":0}");
        spool.finish(first).unwrap();
        let second = spool.take_oldest().unwrap().unwrap();
        assert_eq!(second.records, vec![b"{\"n\":10}".to_vec()]);
        spool.finish(second).unwrap();
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
        assert_eq!(spool.spooled(), 1);
        assert_eq!(spool.dropped(), 1);
        let batch = spool.take_oldest().unwrap().unwrap();
        spool.finish(batch).unwrap();
        assert!(spool.append(b"0123456789"), "room again once replayed");
    }

    #[test]
    fn an_unfinished_batch_is_replayed_again_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(spool.append(b"{}"));
        let batch = spool.take_oldest().unwrap().unwrap();
        assert_eq!(batch.records.len(), 1);
        drop(spool); // crashed before `finish`
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.take_oldest().unwrap().unwrap().records.len(), 1);
    }
}

//! One poll: read the table from a source into a snapshot and diff it against the previous one.

use crate::source::{ReadStats, Source, SourceError};
use crate::table::{NewConnection, Snapshot};

/// Owns the two snapshots and swaps them, so steady-state polling reuses the same memory.
#[derive(Debug)]
pub struct Monitor<S> {
    source: S,
    previous: Snapshot,
    current: Snapshot,
    new: Vec<NewConnection>,
    polls: u64,
}

/// What one poll found. `new` holds every connection absent from the previous poll; on the
/// first poll (`baseline`) that is every connection, and the caller decides whether to show it.
#[derive(Debug)]
pub struct PollReport<'a> {
    pub baseline: bool,
    pub new: &'a [NewConnection],
    pub connections: usize,
    pub stats: ReadStats,
}

impl<S: Source> Monitor<S> {
    pub fn new(source: S) -> Monitor<S> {
        Monitor {
            source,
            previous: Snapshot::default(),
            current: Snapshot::default(),
            new: Vec::new(),
            polls: 0,
        }
    }

    pub fn poll(&mut self) -> Result<PollReport<'_>, SourceError> {
        self.current.clear();
        let current = &mut self.current;
        let stats = self.source.read(&mut |entry| current.insert(entry))?;
        self.current.new_since(&self.previous, &mut self.new);
        std::mem::swap(&mut self.previous, &mut self.current);
        self.polls += 1;
        Ok(PollReport {
            baseline: self.polls == 1,
            new: &self.new,
            connections: self.previous.len(),
            stats,
        })
    }

    /// The table as of the last poll.
    pub fn snapshot(&self) -> &Snapshot {
        &self.previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{SocketEntry, TcpState};

    struct Script(Vec<Vec<SocketEntry>>);

    impl Source for Script {
        fn read(&mut self, sink: &mut dyn FnMut(SocketEntry)) -> Result<ReadStats, SourceError> {
            let entries = self.0.remove(0);
            entries.iter().for_each(|e| sink(*e));
            Ok(ReadStats {
                entries: entries.len() as u64,
                ..ReadStats::default()
            })
        }
    }

    #[test]
    fn first_poll_is_the_baseline_and_later_polls_report_only_new_connections() {
        let a = SocketEntry {
            local: "10.0.0.5:41000".parse().unwrap(),
            remote: "198.51.100.7:443".parse().unwrap(),
            state: TcpState::Established,
        };
        let b = SocketEntry {
            local: "10.0.0.5:41001".parse().unwrap(),
            ..a
        };
        let mut monitor = Monitor::new(Script(vec![vec![a], vec![a, b], vec![b]]));
        let first = monitor.poll().unwrap();
        assert!(first.baseline);
        assert_eq!(first.new.len(), 1);
        let second = monitor.poll().unwrap();
        assert!(!second.baseline);
        assert_eq!(
            second.new.iter().map(|c| c.source).collect::<Vec<_>>(),
            vec![b.local]
        );
        assert_eq!(second.connections, 2);
        assert!(monitor.poll().unwrap().new.is_empty());
    }
}

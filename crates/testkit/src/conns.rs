//! The running `netvantage conns` monitor, and how its output is read: event lines on stdout
//! (`YYYY-MM-DD HH:MM:SS: New connection: …`), progress on stderr (`baseline taken`, …).

use std::path::PathBuf;
use std::time::Duration;

use crate::command::{Running, TestCommand, nv};
use crate::netns::Netns;
use crate::scratch::Scratch;

/// How long the monitor may take to reach a line a test waits for, and to exit on SIGTERM.
const WITHIN: Duration = Duration::from_secs(10);

/// `netvantage conns`, its output read as it comes. Killed on drop if the test did not stop it.
pub struct Conns {
    process: Running,
}

impl Netns {
    /// Starts `netvantage -v conns ARGS...` inside the namespace.
    pub fn conns(&self, args: &[&str]) -> Conns {
        Conns::start(nv().args(["-v", "conns"]).args(args).in_netns(self))
    }
}

impl Conns {
    /// Starts a prepared `conns` command (on the host, for `--proc-root` fixtures).
    pub fn start(command: TestCommand) -> Conns {
        Conns {
            process: command.spawn(),
        }
    }

    /// Waits until `done(stdout lines, stderr lines)` holds; fails with both streams after
    /// `limit`, or if the monitor exits first.
    pub fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl FnMut(&[String], &[String]) -> bool,
    ) {
        self.process.wait_for(limit, what, done);
    }

    /// Waits for the first poll, whose connections are the silent baseline.
    pub fn wait_baseline(&mut self) {
        self.wait_for(WITHIN, "the baseline poll", |_, err| {
            err.iter().any(|l| l.contains("baseline taken"))
        });
    }

    /// Stdout lines so far, without their timestamps.
    pub fn events(&self) -> Vec<String> {
        self.process
            .stdout_lines()
            .iter()
            .map(|l| strip_timestamp(l).to_string())
            .collect()
    }

    /// Stderr lines so far.
    pub fn err_lines(&self) -> Vec<String> {
        self.process.stderr_lines()
    }

    /// Waits until every expected event has been printed.
    pub fn wait_events(&mut self, expected: &[String]) {
        let expected = expected.to_vec();
        self.wait_for(WITHIN, &format!("events {expected:#?}"), move |out, _| {
            let got: Vec<&str> = out.iter().map(|l| strip_timestamp(l)).collect();
            expected.iter().all(|e| got.contains(&e.as_str()))
        });
    }

    /// Lets `polls` more polls happen (by the clock) and returns all events so far.
    pub fn settle(&self, interval: Duration, polls: u32) -> Vec<String> {
        std::thread::sleep(interval * polls);
        self.events()
    }

    /// SIGSTOP: the monitor stops reading (the kernel's buffers fill), until [`Conns::resume`].
    pub fn pause(&self) {
        self.process.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`Conns::pause`].
    pub fn resume(&self) {
        self.process.signal(libc::SIGCONT);
    }

    /// SIGTERM, then the exit code (waits at most 10 s).
    pub fn terminate(&mut self) -> i32 {
        self.process.terminate(WITHIN)
    }
}

/// `2021-04-28 15:28:05: New connection: ...` → `New connection: ...`, after checking the
/// timestamp's shape.
pub fn strip_timestamp(line: &str) -> &str {
    let bytes = line.as_bytes();
    let shaped = bytes.len() > 21
        && bytes[..19].iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b' ',
            13 | 16 => *b == b':',
            _ => b.is_ascii_digit(),
        })
        && &bytes[19..21] == b": ";
    assert!(
        shaped,
        "line does not start with a `YYYY-MM-DD HH:MM:SS: ` timestamp: {line:?}"
    );
    &line[21..]
}

/// A fixture `/proc` root with known socket tables (IPv4, IPv6, IPv4-mapped, every TCP state,
/// malformed lines): `before` (`net/tcp`, `net/tcp6`) and `after` (what a later poll sees).
pub fn proc_fixture(which: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/conns")
        .join(which);
    assert!(dir.is_dir(), "no fixture tables at {}", dir.display());
    dir
}

/// A scratch `/proc` root holding a copy of a fixture's tables, which a test swaps while the
/// monitor polls it; removed on drop. Starts as `before`.
pub struct ProcDir {
    root: Scratch,
}

impl Default for ProcDir {
    fn default() -> ProcDir {
        ProcDir::new()
    }
}

impl ProcDir {
    pub fn new() -> ProcDir {
        let root = Scratch::new();
        std::fs::create_dir_all(root.join("net")).expect("create net/");
        let proc_dir = ProcDir { root };
        proc_dir.load("before");
        proc_dir
    }

    /// Replaces the tables with fixture `which`'s, atomically (write + rename): a poll must
    /// never see half a file.
    pub fn load(&self, which: &str) {
        for file in ["tcp", "tcp6"] {
            let from = proc_fixture(which).join("net").join(file);
            let tmp = self.root.join(format!("net/.{file}.new"));
            std::fs::copy(&from, &tmp)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), tmp.display()));
            std::fs::rename(&tmp, self.root.join("net").join(file))
                .unwrap_or_else(|e| panic!("rename {}: {e}", tmp.display()));
        }
    }

    /// The root to give `--proc-root`.
    pub fn path(&self) -> &str {
        self.root.path().to_str().expect("a UTF-8 temporary path")
    }
}

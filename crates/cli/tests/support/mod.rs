//! Fixtures for end-to-end tests: run the real binary, and build a real test fleet inside a
//! network namespace this test creates and always deletes. Nothing here touches the host's own
//! firewall or sends traffic outside 127.0.0.0/8, ::1 or the test's namespace.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn netvantage() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netvantage"))
}

/// The fleet simulator is a binary of the workspace's `netvantage-testfleet` package, built
/// next to ours by `cargo build --workspace` / `cargo nextest run --workspace`.
pub fn testfleet() -> PathBuf {
    let path = netvantage().with_file_name("nv-testfleet");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p netvantage-testfleet` (the README's test command does)",
        path.display()
    );
    path
}

#[path = "netns.rs"]
mod netns;
pub use netns::*;

impl Netns {
    /// Starts `nv-testfleet` in the namespace and waits for it to say it is ready.
    pub fn fleet(&self, args: &[&str]) -> Fleet {
        let mut child = self
            .command(testfleet())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nv-testfleet");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("read fleet stdout");
        assert_eq!(
            line.trim(),
            "ready",
            "nv-testfleet did not start (args {args:?})"
        );
        Fleet { child }
    }
}

pub struct Fleet {
    child: Child,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

/// Runs a prepared command with `stdin` fed in, bounded by `limit`.
pub fn run_with_input(mut command: Command, stdin: &[u8], limit: Duration) -> Run {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn netvantage");
    // A child that rejects its arguments exits before reading: a broken pipe is not our failure.
    let _ = child.stdin.take().expect("piped").write_all(stdin);
    let output = wait_bounded(child, limit);
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Starts `netvantage ARGS` on the host with `input` on stdin (then closed), stdout and stderr
/// piped, for tests that signal the process while it runs.
pub fn spawn_netvantage(args: &[&str], input: &str) -> Child {
    let mut command = Command::new(netvantage());
    command.args(args);
    spawn_with_stdin(command, input)
}

/// `netvantage ARGS` on the host (loopback targets only), stdin from `input`.
pub fn netvantage_run(args: &[&str], input: &str) -> Run {
    let mut command = Command::new(netvantage());
    command.args(args);
    run_with_input(command, input.as_bytes(), Duration::from_secs(60))
}

pub fn wait_bounded(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("wait for child"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("command did not finish within {limit:?}");
        }
    }
}

/// Polls `condition` every 20 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

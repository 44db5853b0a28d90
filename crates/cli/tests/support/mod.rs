//! Fixtures for end-to-end tests: run the real binary, and build a real test fleet inside a
//! network namespace this test creates and always deletes. Nothing here touches the host's own
//! firewall or sends traffic outside 127.0.0.0/8, ::1 or the test's namespace.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
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

fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success());
    assert!(
        found.unwrap_or(false),
        "`{tool}` is required by this test: apt-get install {package}"
    );
}

/// A network namespace of this test's own, with `lo` up; deleted on drop (even on panic).
pub struct Netns {
    pub name: String,
}

static NEXT_NS: AtomicUsize = AtomicUsize::new(0);

impl Netns {
    pub fn new() -> Netns {
        require_tool("ip", "iproute2");
        require_tool("nft", "nftables");
        let name = format!(
            "nvt-{}-{}",
            std::process::id(),
            NEXT_NS.fetch_add(1, Ordering::SeqCst)
        );
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip");
        assert!(
            status.success(),
            "`ip netns add {name}` failed: these tests need root (CI runs as root)"
        );
        let ns = Netns { name };
        let status = Command::new("ip")
            .args(["-n", &ns.name, "link", "set", "lo", "up"])
            .status()
            .expect("run ip");
        assert!(status.success(), "cannot bring lo up in {}", ns.name);
        ns
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

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

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|out| {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
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
    let mut child = Command::new(netvantage())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn netvantage");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child
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

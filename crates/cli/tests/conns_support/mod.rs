//! Fixtures for the `conns` end-to-end tests: network namespaces that remove themselves, code
//! run inside a namespace, and the real binary launched with `ip netns exec` whose output is
//! read line by line with deadlines.
//!
//! Everything a test creates lives in namespaces named `nvt-<pid>-<n>`; nothing here touches
//! the host's own network or firewall.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_netvantage");

#[path = "../support/netns.rs"]
mod netns;
pub use netns::*;

/// Fails (never skips) when the system tools the tests drive are missing.
pub fn require_tools(tools: &[&str]) {
    for tool in tools {
        require_tool(tool, "nftables iproute2 prometheus");
    }
}

impl Netns {
    /// Starts the real binary inside the namespace: `netvantage -v conns ARGS...`.
    pub fn start_conns(&self, args: &[&str]) -> Conns {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, BIN, "-v", "conns"])
            .args(args);
        Conns::spawn(cmd)
    }

    /// The members of an nftables set in this namespace (empty if the table is absent).
    pub fn nft_set(&self, set: &str) -> Vec<String> {
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "nft",
                "-j",
                "list",
                "set",
                "inet",
                "netvantage",
                set,
            ])
            .output()
            .expect("nft");
        if !output.status.success() {
            return Vec::new();
        }
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("nft json");
        json["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["set"]["elem"].as_array())
            .flatten()
            .filter_map(|e| e["elem"]["val"].as_str().or(e.as_str()).map(str::to_string))
            .collect()
    }

    pub fn nft_tables(&self) -> String {
        self.exec(&["nft", "list", "tables"])
    }
}

/// Two namespaces joined by a veth pair: `host` (198.18.0.1, 2001:db8::1) runs the monitor,
/// `peer` (198.18.0.2-3, 2001:db8::2-3) plays the remote clients. 198.18.0.0/15 is reserved for
/// benchmarking and 2001:db8::/32 for documentation; both exist only inside these namespaces.
pub struct Pair {
    pub peer: Netns,
    pub host: Netns,
}

pub fn pair() -> Pair {
    let host = Netns::new();
    let peer = Netns::new();
    host.ip(&[
        "link", "add", "nvh", "type", "veth", "peer", "name", "nvp", "netns", &peer.name,
    ]);
    host.ip(&["addr", "add", "198.18.0.1/24", "dev", "nvh"]);
    host.ip(&["-6", "addr", "add", "2001:db8::1/64", "dev", "nvh", "nodad"]);
    host.ip(&["link", "set", "nvh", "up"]);
    for addr in ["198.18.0.2/24", "198.18.0.3/24"] {
        peer.ip(&["addr", "add", addr, "dev", "nvp"]);
    }
    for addr in ["2001:db8::2/64", "2001:db8::3/64"] {
        peer.ip(&["-6", "addr", "add", addr, "dev", "nvp", "nodad"]);
    }
    peer.ip(&["link", "set", "nvp", "up"]);
    Pair { peer, host }
}

fn lines(reader: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The running binary. Killed on drop if the test did not stop it.
pub struct Conns {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stdout line so far.
    pub out: Vec<String>,
    /// Every stderr line so far.
    pub err: Vec<String>,
}

impl Conns {
    /// Starts `cmd` (the binary, possibly behind `ip netns exec`) with both streams captured.
    pub fn spawn(mut cmd: Command) -> Conns {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn netvantage");
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        Conns {
            child,
            stdout,
            stderr,
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    fn drain(&mut self) {
        self.out.extend(self.stdout.try_iter());
        self.err.extend(self.stderr.try_iter());
    }

    /// Waits until `done(stdout, stderr)` holds; panics with both streams after `timeout`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[String], &[String]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if done(&self.out, &self.err) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what}\nstdout:\n{}\nstderr:\n{}",
                    self.out.join("\n"),
                    self.err.join("\n")
                );
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader threads deliver the last lines before judging.
                std::thread::sleep(Duration::from_millis(100));
                self.drain();
                if done(&self.out, &self.err) {
                    return;
                }
                panic!(
                    "netvantage exited ({status}) while waiting for {what}\nstdout:\n{}\nstderr:\n{}",
                    self.out.join("\n"),
                    self.err.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_baseline(&mut self) {
        self.wait_for(Duration::from_secs(10), "the baseline poll", |_, err| {
            err.iter().any(|l| l.contains("baseline taken"))
        });
    }

    /// Stdout lines without their timestamps.
    pub fn events(&mut self) -> Vec<String> {
        self.drain();
        self.out
            .iter()
            .map(|l| strip_timestamp(l).to_string())
            .collect()
    }

    /// Waits until every expected event has been printed.
    pub fn wait_events(&mut self, expected: &[String]) {
        let expected = expected.to_vec();
        self.wait_for(
            Duration::from_secs(10),
            &format!("events {expected:#?}"),
            move |out, _| {
                let got: Vec<&str> = out.iter().map(|l| strip_timestamp(l)).collect();
                expected.iter().all(|e| got.contains(&e.as_str()))
            },
        );
    }

    /// Lets `polls` more polls happen (by the clock) and returns all events so far.
    pub fn settle(&mut self, interval: Duration, polls: u32) -> Vec<String> {
        std::thread::sleep(interval * polls);
        self.events()
    }

    /// SIGTERM, then the exit status (waits at most 10 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid (ip netns exec execs the binary in place).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                self.drain();
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "netvantage did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Conns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// Connects from `from` (port chosen by the kernel) to `to`; the socket stays open while the
/// stream lives.
pub fn connect_from(
    from: SocketAddr,
    to: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let domain = socket2::Domain::for_address(to);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.bind(&from.into())?;
    socket.connect_timeout(&to.into(), timeout)?;
    Ok(socket.into())
}

pub fn listen(addr: &str) -> TcpListener {
    TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
}

pub fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

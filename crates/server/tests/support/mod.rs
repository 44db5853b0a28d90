//! What the server's integration tests add to `netvantage-testkit`: a raw HTTP/1.1 client over a
//! real socket (any method, any header, the body's bytes as sent), the fixture binary in a child
//! process, the links of a page, and a process's CPU time.
#![allow(dead_code)]

pub use netvantage_testkit::{Answer, parse_answer};
use netvantage_testkit::{Running, TestCommand, require_tool};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET path` with extra header lines (`"Accept: x"`), on a fresh connection, within 10 s.
pub async fn get_with(addr: SocketAddr, path: &str, extra: &[&str]) -> Answer {
    request(addr, "GET", path, extra).await
}

pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    get_with(addr, path, &[]).await
}

pub async fn request(addr: SocketAddr, method: &str, path: &str, extra: &[&str]) -> Answer {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for line in extra {
            head.push_str(line);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        parse_answer(&raw)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within 10 s"))
}

/// The fixture server in a child process; killed when dropped.
pub struct Fixture {
    pub process: Running,
    pub addr: SocketAddr,
}

impl Fixture {
    /// Starts `nv-server-fixture` with `args` and waits until it listens.
    pub fn start(args: &[&str]) -> Fixture {
        Fixture::start_with_env(args, &[])
    }

    /// As [`Fixture::start`], with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Fixture {
        let mut command = TestCommand::new(env!("CARGO_BIN_EXE_nv-server-fixture")).args(args);
        for (key, value) in env {
            command = command.env(key, value);
        }
        let mut process = command.spawn();
        process.wait_for(
            Duration::from_secs(20),
            "the fixture to listen",
            |out, _| !out.is_empty(),
        );
        let first = process.stdout_lines().first().cloned().unwrap_or_default();
        let addr = first
            .trim()
            .strip_prefix("listening http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("fixture said {first:?}"));
        Fixture { process, addr }
    }

    /// What it logged so far (stderr).
    pub fn log(&self) -> String {
        self.process.stderr_text()
    }

    /// User plus system CPU time the process has used so far, from `/proc/PID/stat`.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.process.pid())
    }
}

pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let after_name = &stat[stat.rfind(')').expect("comm field") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// A Python test tool (schemathesis, openapi-spec-validator): on `PATH`, or in
/// `~/.local/nv-venv/bin`, where docs/server.md's `pip install` puts it.
pub fn python_tool(names: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".local/nv-venv/bin"));
    }
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|path| path.is_file())
}

/// Asserts `promtool check metrics` finds nothing to say about `exposition` (saved in `dir`).
pub fn assert_promtool_clean(exposition: &str, dir: &Path) {
    require_tool("promtool", "prometheus");
    std::fs::write(dir.join("metrics.txt"), exposition).expect("save the exposition");
    let run = TestCommand::new("promtool")
        .args(["check", "metrics"])
        .stdin(exposition.as_bytes().to_vec())
        .timeout(Duration::from_secs(30))
        .run();
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        run.code == 0 && said.trim().is_empty(),
        "promtool check metrics exited {}:\n{said}\non {}",
        run.code,
        dir.join("metrics.txt").display()
    );
}

/// A folder for this test's output under the target directory.
pub fn output_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("netvantage-server")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("output dir");
    dir
}

//! What the server's integration tests share: a raw HTTP/1.1 client over a real socket, the
//! fixture binary in a child process, and a bounded `wait_for`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP answer as the wire carried it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy).
    pub body: String,
    /// The body's bytes as sent (gzip stays gzip).
    pub raw_body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a whole `Connection: close` answer.
pub fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]);
    let raw_body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&raw_body).into_owned(),
        raw_body,
    }
}

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

/// Polls `condition` every 20 ms until it holds or `limit` passes.
pub async fn wait_for<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The fixture server in a child process; killed when dropped.
pub struct Fixture {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr_path: PathBuf,
}

impl Fixture {
    /// Starts `nv-server-fixture` with `args`; its stderr (the log) goes to a file in `dir`.
    pub fn start(dir: &Path, args: &[&str]) -> Fixture {
        Fixture::start_with_env(dir, args, &[])
    }

    /// As [`Fixture::start`], with extra environment variables.
    pub fn start_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Fixture {
        std::fs::create_dir_all(dir).expect("test dir");
        let stderr_path = dir.join("server.log");
        let stderr = std::fs::File::create(&stderr_path).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_nv-server-fixture"))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn nv-server-fixture");
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("read the fixture's first line");
        let addr = first
            .trim()
            .strip_prefix("listening http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("fixture said {first:?}"));
        Fixture {
            child,
            addr,
            stderr_path,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// User plus system CPU time the process has used so far, from `/proc/PID/stat`.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.child.id())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// The `href`, `src` and `action` values of an HTML document, unescaped.
pub fn links(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["href=\"", "src=\"", "action=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attribute) {
            rest = &rest[at + attribute.len()..];
            let end = rest.find('"').unwrap_or(rest.len());
            found.push(rest[..end].replace("&amp;", "&"));
            rest = &rest[end..];
        }
    }
    found
}

/// The first of `names` on `PATH`, or in `~/.local/nv-venv/bin` (where the README's
/// `pip install` puts the Python test tools).
pub fn find_tool(names: &[&str]) -> Option<PathBuf> {
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

/// Runs `command` to completion within `limit`; kills it past that.
pub fn run_bounded(command: &mut Command, limit: Duration) -> std::process::Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let pid = child.id();
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match wait.recv_timeout(limit) {
        Ok(output) => output.expect("wait"),
        Err(_) => {
            // SAFETY: kill(2) on the pid of the child this function spawned.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{command:?} ran past {limit:?}");
        }
    }
}

/// Asserts `promtool check metrics` finds nothing to say about `exposition` (saved in `dir`).
pub fn assert_promtool_clean(exposition: &str, dir: &Path) {
    let promtool = find_tool(&["promtool"]).unwrap_or_else(|| {
        panic!(
            "promtool is not installed: `apt-get install -y --no-install-recommends prometheus` \
             (Debian) or download it from https://prometheus.io/download/"
        )
    });
    let saved = dir.join("metrics.txt");
    std::fs::write(&saved, exposition).expect("save the exposition");
    let output = run_bounded(
        Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(&saved).expect("open the exposition")),
        Duration::from_secs(30),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool check metrics: {:?}\n{said}\non {}",
        output.status,
        saved.display()
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

//! Running a program under test. [`TestCommand`] builds the invocation (arguments, stdin bytes,
//! environment, directory, wrappers such as `ip netns exec` or `prlimit`, a time bound);
//! [`TestCommand::run`] waits for it and returns a [`Run`] to assert on; [`TestCommand::spawn`]
//! returns a [`Running`] process for tests that read its output while it runs, or signal it.
//!
//! Every wait is bounded: a process that outlives its bound is killed and the test fails with
//! what it printed so far. A process is killed when its [`Running`] is dropped.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::wait::wait_until;

/// How long [`TestCommand::run`] may take unless the test says otherwise.
const DEFAULT_LIMIT: Duration = Duration::from_secs(60);

/// After a process exits, how long its output may take to reach us. Only a grandchild that
/// kept the pipe open makes this wait; then what arrived so far is what the test sees.
const OUTPUT_AFTER_EXIT: Duration = Duration::from_secs(5);

/// A binary of the workspace: under nextest the path it gives the package's own binaries
/// (`NEXTEST_BIN_EXE_<name>`), otherwise the file next to the test executable
/// (`target/<profile>/NAME`, where cargo puts every binary it builds). Fails, naming the build
/// command, when the binary has not been built.
pub fn binary(name: &str, package: &str) -> PathBuf {
    let variable = format!("NEXTEST_BIN_EXE_{name}");
    if let Some(path) = std::env::var_os(&variable)
        .or_else(|| std::env::var_os(variable.replace('-', "_")))
        .map(PathBuf::from)
        .filter(|path| path.exists())
    {
        return path;
    }
    let test_executable = std::env::current_exe().expect("the test executable's path");
    let mut dir = test_executable
        .parent()
        .expect("the test executable is in a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p {package}` (the README's test command does)",
        path.display()
    );
    path
}

/// `netvantage` itself, found by [`binary`]. Cargo builds it before the cli crate's
/// integration tests; another crate's tests need `cargo build -p netvantage` first.
pub fn nv() -> TestCommand {
    TestCommand::new(binary("netvantage", "netvantage"))
}

/// One invocation of a program under test.
#[derive(Clone, Debug)]
pub struct TestCommand {
    /// Argv that runs the program (`ip netns exec NS`, `prlimit … --`), outermost first.
    wrappers: Vec<OsString>,
    program: OsString,
    args: Vec<OsString>,
    stdin: Vec<u8>,
    env: Vec<(OsString, Option<OsString>)>,
    current_dir: Option<PathBuf>,
    limit: Duration,
}

impl TestCommand {
    /// `program` with no arguments, empty stdin, and `RUST_LOG` removed from its environment
    /// (so the developer's own setting never changes what a test sees on stderr).
    pub fn new(program: impl AsRef<OsStr>) -> TestCommand {
        TestCommand {
            wrappers: Vec::new(),
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            stdin: Vec::new(),
            env: vec![("RUST_LOG".into(), None)],
            current_dir: None,
            limit: DEFAULT_LIMIT,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> TestCommand {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> TestCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// The bytes written to the program's stdin, which is then closed.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> TestCommand {
        self.stdin = bytes.into();
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> TestCommand {
        self.env.push((
            key.as_ref().to_os_string(),
            Some(value.as_ref().to_os_string()),
        ));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> TestCommand {
        self.env.push((key.as_ref().to_os_string(), None));
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> TestCommand {
        self.current_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// How long [`run`](Self::run) may take before the process is killed and the test fails.
    pub fn timeout(mut self, limit: Duration) -> TestCommand {
        self.limit = limit;
        self
    }

    /// Runs the command under `argv` (e.g. `["prlimit", "--nofile=256:20000", "--"]`). Each
    /// call wraps what is there already: the last wrapper is the outermost. The wrappers used
    /// here exec the program in place, so its pid is the one [`Running`] signals.
    pub fn wrap<I, S>(mut self, argv: I) -> TestCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut wrappers: Vec<OsString> = argv
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        wrappers.append(&mut self.wrappers);
        self.wrappers = wrappers;
        self
    }

    /// Runs the command inside a namespace (`ip netns exec NS …`).
    pub fn in_netns(self, ns: &Netns) -> TestCommand {
        self.wrap(["ip", "netns", "exec", &ns.name])
    }

    /// Runs to completion (within the time bound) and returns what happened.
    pub fn run(self) -> Run {
        let limit = self.limit;
        self.spawn().finish(limit)
    }

    /// [`run`](Self::run), with `Err` when the program cannot be started (it is not
    /// installed), for callers that explain how to install it.
    pub fn try_run(self) -> std::io::Result<Run> {
        let limit = self.limit;
        Ok(self.try_spawn()?.finish(limit))
    }

    /// Starts the program with its output captured as it comes.
    pub fn spawn(self) -> Running {
        let description = self.to_string();
        self.try_spawn()
            .unwrap_or_else(|e| panic!("cannot start `{description}`: {e}"))
    }

    /// [`spawn`](Self::spawn), with `Err` when the program cannot be started.
    pub fn try_spawn(self) -> std::io::Result<Running> {
        let description = self.to_string();
        let argv: Vec<&OsString> = self
            .wrappers
            .iter()
            .chain([&self.program])
            .chain(&self.args)
            .collect();
        let mut command = Command::new(argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        let started = Instant::now();
        let mut child = command.spawn()?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let bytes = self.stdin;
        // On a thread of its own: a child may print a lot before it reads all its input. A
        // child that rejects its arguments exits before reading: a broken pipe is not our
        // failure.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
        let stdout = Stream::new(child.stdout.take().expect("stdout is piped"));
        let stderr = Stream::new(child.stderr.take().expect("stderr is piped"));
        Ok(Running {
            description,
            child,
            started,
            status: None,
            stdout: Mutex::new(stdout),
            stderr: Mutex::new(stderr),
        })
    }
}

impl std::fmt::Display for TestCommand {
    /// The command line, for failure messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words: Vec<String> = self
            .wrappers
            .iter()
            .chain([&self.program])
            .chain(&self.args)
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        f.write_str(&words.join(" "))
    }
}

/// A finished run: exit code, output, and how long it took.
#[derive(Clone, Debug)]
pub struct Run {
    /// The command line, for failure messages.
    pub command: String,
    /// The exit code, or -1 when a signal ended the process.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// From just before the process started until it had exited and closed its output.
    pub elapsed: Duration,
}

impl Run {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Stdout as NDJSON: every line must be a JSON value.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        json_lines(&self.stdout)
    }

    /// Fails unless the process exited with `expected`, showing both streams.
    pub fn assert_code(&self, expected: i32) -> &Run {
        assert_eq!(
            self.code, expected,
            "`{}` exited {}, expected {expected}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.code, self.stdout, self.stderr
        );
        self
    }

    /// Fails unless the process exited 0, showing both streams.
    pub fn assert_success(&self) -> &Run {
        self.assert_code(0)
    }
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// One output stream of a running process, read on a thread of its own so the process never
/// blocks on a full pipe.
struct Stream {
    chunks: Receiver<Vec<u8>>,
    bytes: Vec<u8>,
    closed: bool,
}

impl Stream {
    fn new(mut reader: impl std::io::Read + Send + 'static) -> Stream {
        let (tx, chunks) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Stream {
            chunks,
            bytes: Vec::new(),
            closed: false,
        }
    }

    /// Takes what has arrived.
    fn drain(&mut self) {
        loop {
            match self.chunks.try_recv() {
                Ok(chunk) => self.bytes.extend_from_slice(&chunk),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.closed = true;
                    break;
                }
            }
        }
    }

    /// Takes everything until the stream closes or `deadline` passes.
    fn drain_to_end(&mut self, deadline: Instant) {
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.bytes.extend_from_slice(&chunk),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => self.closed = true,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
            }
        }
    }

    /// Complete lines, without their `\n` or `\r\n`; the unterminated last one only once the
    /// stream has closed (so a condition never judges half a line).
    fn lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.bytes);
        text.split_inclusive('\n')
            .filter(|l| self.closed || l.ends_with('\n'))
            .map(|l| {
                let l = l.strip_suffix('\n').unwrap_or(l);
                l.strip_suffix('\r').unwrap_or(l).to_string()
            })
            .collect()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// A process started by [`TestCommand::spawn`]. Its stdout and stderr are collected as they
/// come; it is killed (SIGKILL) when dropped, if it still runs.
pub struct Running {
    description: String,
    child: Child,
    started: Instant,
    status: Option<ExitStatus>,
    stdout: Mutex<Stream>,
    stderr: Mutex<Stream>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`); fails the test if it cannot be delivered.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}) for `{}`: {}",
            self.description,
            std::io::Error::last_os_error()
        );
    }

    /// SIGINT, then the exit code (see [`wait`](Self::wait)).
    pub fn interrupt(&mut self, limit: Duration) -> i32 {
        self.signal(libc::SIGINT);
        self.wait(limit)
    }

    /// SIGTERM, then the exit code (see [`wait`](Self::wait)).
    pub fn terminate(&mut self, limit: Duration) -> i32 {
        self.signal(libc::SIGTERM);
        self.wait(limit)
    }

    /// Waits at most `limit` for the process to exit, then for its output to close, and
    /// returns the exit code (-1 when a signal ended it). A process still running after
    /// `limit` is killed and the test fails with its output.
    pub fn wait(&mut self, limit: Duration) -> i32 {
        if self.status.is_none() {
            let child = &mut self.child;
            let mut status = None;
            let exited = wait_until(limit, || {
                status = child.try_wait().expect("wait for the child");
                status.is_some()
            });
            if !exited {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.drain_to_end();
                panic!(
                    "`{}` did not exit within {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
                    self.description,
                    self.stdout_text(),
                    self.stderr_text()
                );
            }
            self.status = status;
            self.drain_to_end();
        }
        self.code().expect("the process has exited")
    }

    /// Kills the process (SIGKILL: no clean shutdown) and waits for it.
    pub fn kill9(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
            self.drain_to_end();
        }
    }

    /// The exit code once the process has been waited for: -1 when a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.map(|s| s.code().unwrap_or(-1))
    }

    /// Waits (at most `limit`) and returns the whole run.
    pub fn finish(mut self, limit: Duration) -> Run {
        let code = self.wait(limit);
        let elapsed = self.started.elapsed();
        let utf8 = |stream: &Mutex<Stream>, name: &str| {
            let bytes = std::mem::take(&mut stream.lock().expect("stream lock").bytes);
            String::from_utf8(bytes)
                .unwrap_or_else(|e| panic!("`{}` wrote non-UTF-8 to {name}: {e}", self.description))
        };
        Run {
            command: self.description.clone(),
            code,
            stdout: utf8(&self.stdout, "stdout"),
            stderr: utf8(&self.stderr, "stderr"),
            elapsed,
        }
    }

    /// Waits until `done(stdout lines, stderr lines)` holds. Fails with both streams after
    /// `limit`, or as soon as the process exits without it holding.
    pub fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&[String], &[String]) -> bool,
    ) {
        let mut exited = None;
        let (child, stdout, stderr) = (&mut self.child, &self.stdout, &self.stderr);
        let held = wait_until(limit, || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return true;
            }
            done(&lines_so_far(stdout), &lines_so_far(stderr))
        });
        if let Some(status) = exited {
            // Judge the last lines too, which may have come with the exit.
            self.status = Some(status);
            self.drain_to_end();
            if done(&self.stdout_lines(), &self.stderr_lines()) {
                return;
            }
            panic!(
                "`{}` exited ({status}) while waiting for {what}\n--- stdout\n{}\n--- stderr\n{}",
                self.description,
                self.stdout_text(),
                self.stderr_text()
            );
        }
        if !held {
            panic!(
                "timed out after {limit:?} waiting for {what} from `{}`\n--- stdout\n{}\n--- stderr\n{}",
                self.description,
                self.stdout_text(),
                self.stderr_text()
            );
        }
    }

    /// The complete stdout lines so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        lines_so_far(&self.stdout)
    }

    /// The complete stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        lines_so_far(&self.stderr)
    }

    /// Stdout so far.
    pub fn stdout_text(&self) -> String {
        text_so_far(&self.stdout)
    }

    /// Stderr so far.
    pub fn stderr_text(&self) -> String {
        text_so_far(&self.stderr)
    }

    /// Stdout so far as NDJSON: every complete line must be a JSON value.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        json_lines(&self.stdout_lines().join("\n"))
    }

    fn drain_to_end(&mut self) {
        let deadline = Instant::now() + OUTPUT_AFTER_EXIT;
        for stream in [&self.stdout, &self.stderr] {
            stream.lock().expect("stream lock").drain_to_end(deadline);
        }
    }
}

fn lines_so_far(stream: &Mutex<Stream>) -> Vec<String> {
    let mut stream = stream.lock().expect("stream lock");
    stream.drain();
    stream.lines()
}

fn text_so_far(stream: &Mutex<Stream>) -> String {
    let mut stream = stream.lock().expect("stream lock");
    stream.drain();
    stream.text()
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

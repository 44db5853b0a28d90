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
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use crate::netns::Netns;

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
        let output = Output::new(
            child.stdout.take().expect("stdout is piped"),
            child.stderr.take().expect("stderr is piped"),
        );
        Ok(Running {
            description,
            child,
            started,
            status: None,
            output: Mutex::new(output),
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

/// Which output stream a chunk came from.
#[derive(Clone, Copy)]
enum Which {
    Stdout,
    Stderr,
}

/// What a reader thread reports: bytes, or that its stream has closed.
type Chunk = (Which, Option<Vec<u8>>);

/// Reads `reader` on a thread of its own, so the process never blocks on a full pipe.
fn read_into(mut reader: impl std::io::Read + Send + 'static, which: Which, tx: Sender<Chunk>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((which, Some(buf[..n].to_vec()))).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send((which, None));
    });
}

/// One output stream as received so far.
#[derive(Default)]
struct Stream {
    bytes: Vec<u8>,
    closed: bool,
}

impl Stream {
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

/// Both output streams of a process, fed by their reader threads through one channel, so a
/// wait wakes as soon as either stream has something new (or closes).
struct Output {
    chunks: Receiver<Chunk>,
    stdout: Stream,
    stderr: Stream,
}

impl Output {
    fn new(
        stdout: impl std::io::Read + Send + 'static,
        stderr: impl std::io::Read + Send + 'static,
    ) -> Output {
        let (tx, chunks) = channel();
        read_into(stdout, Which::Stdout, tx.clone());
        read_into(stderr, Which::Stderr, tx);
        Output {
            chunks,
            stdout: Stream::default(),
            stderr: Stream::default(),
        }
    }

    fn take(&mut self, (which, chunk): Chunk) {
        let stream = match which {
            Which::Stdout => &mut self.stdout,
            Which::Stderr => &mut self.stderr,
        };
        match chunk {
            Some(bytes) => stream.bytes.extend_from_slice(&bytes),
            None => stream.closed = true,
        }
    }

    fn closed(&self) -> bool {
        self.stdout.closed && self.stderr.closed
    }

    /// Takes what has arrived, without waiting.
    fn drain(&mut self) {
        while let Ok(chunk) = self.chunks.try_recv() {
            self.take(chunk);
        }
    }

    /// Waits until something arrives (or `until` passes), then takes all that has arrived.
    fn wait_for_more(&mut self, until: Instant) {
        if self.closed() {
            return;
        }
        let left = until.saturating_duration_since(Instant::now());
        match self.chunks.recv_timeout(left) {
            Ok(chunk) => self.take(chunk),
            Err(RecvTimeoutError::Timeout) => return,
            // Both readers are gone (one may have panicked): nothing more will come.
            Err(RecvTimeoutError::Disconnected) => {
                self.stdout.closed = true;
                self.stderr.closed = true;
                return;
            }
        }
        self.drain();
    }

    /// Takes everything until both streams close or `until` passes.
    fn drain_to_end(&mut self, until: Instant) {
        while !self.closed() && Instant::now() < until {
            self.wait_for_more(until);
        }
        self.drain();
    }
}

/// A process started by [`TestCommand::spawn`]. Its stdout and stderr are collected as they
/// come; it is killed (SIGKILL) when dropped, if it still runs.
pub struct Running {
    description: String,
    child: Child,
    started: Instant,
    status: Option<ExitStatus>,
    output: Mutex<Output>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`); fails the test if it cannot be delivered, or if
    /// the process was already seen to exit (its pid may belong to another process by now).
    pub fn signal(&self, signal: i32) {
        if let Some(code) = self.code() {
            panic!(
                "cannot send signal {signal} to `{}`: it exited already ({code})",
                self.description
            );
        }
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

    /// SIGHUP (a config reload for `agent`); the process keeps running.
    pub fn hangup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// SIGINT, then the exit code (see [`wait`](Self::wait)); just the exit code if the
    /// process was already seen to exit.
    pub fn interrupt(&mut self, limit: Duration) -> i32 {
        self.stop_with(libc::SIGINT, limit)
    }

    /// SIGTERM, then the exit code (see [`wait`](Self::wait)); just the exit code if the
    /// process was already seen to exit.
    pub fn terminate(&mut self, limit: Duration) -> i32 {
        self.stop_with(libc::SIGTERM, limit)
    }

    fn stop_with(&mut self, signal: i32, limit: Duration) -> i32 {
        if self.status.is_none() {
            self.signal(signal);
        }
        self.wait(limit)
    }

    /// Waits at most `limit` for the process to exit and its output to close, and returns the
    /// exit code (-1 when a signal ended it). A process still running after `limit` is killed
    /// and the test fails with its output.
    pub fn wait(&mut self, limit: Duration) -> i32 {
        if self.status.is_none() {
            let deadline = Instant::now() + limit;
            let status = loop {
                if let Some(status) = self.child.try_wait().expect("wait for the child") {
                    break Some(status);
                }
                if Instant::now() >= deadline {
                    break None;
                }
                self.wait_for_news(deadline);
            };
            let Some(status) = status else {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.drain_after_exit();
                panic!(
                    "`{}` did not exit within {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
                    self.description,
                    self.stdout_text(),
                    self.stderr_text()
                );
            };
            self.status = Some(status);
            self.drain_after_exit();
        }
        self.code().expect("the process has exited")
    }

    /// Kills the process (SIGKILL: no clean shutdown) and waits for it.
    pub fn kill9(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
            self.drain_after_exit();
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
        let (stdout, stderr) = {
            let mut output = self.output();
            (
                std::mem::take(&mut output.stdout.bytes),
                std::mem::take(&mut output.stderr.bytes),
            )
        };
        let utf8 = |bytes: Vec<u8>, name: &str| {
            String::from_utf8(bytes)
                .unwrap_or_else(|e| panic!("`{}` wrote non-UTF-8 to {name}: {e}", self.description))
        };
        Run {
            command: self.description.clone(),
            code,
            stdout: utf8(stdout, "stdout"),
            stderr: utf8(stderr, "stderr"),
            elapsed,
        }
    }

    /// Waits until `done(stdout lines, stderr lines)` holds, checking again as soon as new
    /// output arrives. Fails with both streams after `limit`, or as soon as the process exits
    /// without it holding.
    pub fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&[String], &[String]) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            {
                let mut output = self.output();
                output.drain();
                if done(&output.stdout.lines(), &output.stderr.lines()) {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Judge the last lines too, which may have come with the exit.
                self.status = Some(status);
                self.drain_after_exit();
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
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {limit:?} waiting for {what} from `{}`\n--- stdout\n{}\n--- stderr\n{}",
                    self.description,
                    self.stdout_text(),
                    self.stderr_text()
                );
            }
            self.wait_for_news(deadline);
        }
    }

    /// The complete stdout lines so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        let mut output = self.output();
        output.drain();
        output.stdout.lines()
    }

    /// The complete stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        let mut output = self.output();
        output.drain();
        output.stderr.lines()
    }

    /// Stdout so far.
    pub fn stdout_text(&self) -> String {
        let mut output = self.output();
        output.drain();
        output.stdout.text()
    }

    /// Stderr so far.
    pub fn stderr_text(&self) -> String {
        let mut output = self.output();
        output.drain();
        output.stderr.text()
    }

    /// Stdout so far as NDJSON: every complete line must be a JSON value.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        json_lines(&self.stdout_lines().join("\n"))
    }

    /// Sleeps until new output arrives, the process may have exited, or `deadline`. Exit
    /// closes the output, which wakes this at once; a process whose output stays open (a
    /// child of its inherited it) or is already closed is checked on a short period.
    fn wait_for_news(&self, deadline: Instant) {
        /// How often an exit that closes no output is looked for.
        const EXIT_CHECK: Duration = Duration::from_millis(50);
        /// The pause while the output has closed and the exit is due any moment.
        const EXIT_DUE: Duration = Duration::from_millis(2);
        let now = Instant::now();
        let mut output = self.output();
        if output.closed() {
            drop(output);
            std::thread::sleep(EXIT_DUE.min(deadline.saturating_duration_since(now)));
        } else {
            output.wait_for_more(deadline.min(now + EXIT_CHECK));
        }
    }

    fn output(&self) -> std::sync::MutexGuard<'_, Output> {
        self.output.lock().expect("output lock")
    }

    fn drain_after_exit(&self) {
        self.output()
            .drain_to_end(Instant::now() + OUTPUT_AFTER_EXIT);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

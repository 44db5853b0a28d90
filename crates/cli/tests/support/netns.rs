//! A network namespace of the test's own, shared by the `ports` and `conns` end-to-end tests.
//! It is named `nvt-<pid>-<n>`, has `lo` up, and is deleted on drop (also when the test
//! panics), after killing whatever still runs in it. Nothing here touches the host's own network
//! or firewall.

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Fails (never skips) when a system tool a test drives is missing, naming the package.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{tool}` is required by this test: apt-get install {package} (tests run as root)"
    );
}

/// Runs a command that must succeed and returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Spawns `command` with stdout and stderr piped and `stdin` written to its input, which is then
/// closed.
pub fn spawn_with_stdin(mut command: Command, stdin: &str) -> std::process::Child {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child
}

static NEXT_NS: AtomicUsize = AtomicUsize::new(0);

pub struct Netns {
    pub name: String,
}

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
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// `ip -n NS ARGS...`, which must succeed; returns its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Runs a program inside the namespace and returns its stdout (it must succeed).
    pub fn exec(&self, program: &[&str]) -> String {
        run_ok(self.command(program[0]).args(&program[1..]))
    }

    pub fn exec_with_stdin(&self, program: &[&str], stdin: &str) -> std::process::Output {
        let mut command = self.command(program[0]);
        command.args(&program[1..]);
        spawn_with_stdin(command, stdin)
            .wait_with_output()
            .expect("wait")
    }

    /// Runs `f` on a thread that has entered the namespace: sockets it creates belong there.
    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on a valid namespace fd; it only affects this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in namespace panicked")
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

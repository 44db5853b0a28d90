//! A network namespace of the test's own. It is named `nvt-<pid>-<n>`, has `lo` up, and is
//! deleted on drop (also when the test panics), after killing whatever still runs in it.
//! Nothing here touches the host's own network or firewall: nftables tables are created inside
//! the namespace and disappear with it.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::command::TestCommand;
use crate::net::connect_from;
use crate::tools::require_tool;

static NEXT_NS: AtomicUsize = AtomicUsize::new(0);

pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates the namespace (needs root; fails, never skips, without `ip` or `nft`).
    #[allow(clippy::new_without_default)] // creating a namespace is an act, not a default value
    pub fn new() -> Netns {
        require_tool("ip", "iproute2");
        require_tool("nft", "nftables");
        let name = format!(
            "nvt-{}-{}",
            std::process::id(),
            NEXT_NS.fetch_add(1, Ordering::SeqCst)
        );
        let added = TestCommand::new("ip").args(["netns", "add", &name]).run();
        assert_eq!(
            added.code, 0,
            "`ip netns add {name}` failed: these tests need root (CI runs as root)\n{}",
            added.stderr
        );
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS...`, which must succeed; returns its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        TestCommand::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .run()
            .assert_success()
            .stdout
            .clone()
    }

    /// Runs a program inside the namespace and returns its stdout (it must succeed).
    pub fn exec(&self, program: &[&str]) -> String {
        TestCommand::new(program[0])
            .args(&program[1..])
            .in_netns(self)
            .run()
            .assert_success()
            .stdout
            .clone()
    }

    /// Runs `f` on a thread that has entered the namespace: sockets it creates belong there.
    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        run_in_netns(&self.name, f)
    }

    /// The members of the set `inet netvantage SET` in this namespace (empty if the table is
    /// absent): addresses, and prefixes as `addr/len`.
    pub fn nft_set(&self, set: &str) -> Vec<String> {
        let listed = TestCommand::new("nft")
            .args(["-j", "list", "set", "inet", "netvantage", set])
            .in_netns(self)
            .run();
        if listed.code != 0 {
            return Vec::new();
        }
        let json: serde_json::Value = serde_json::from_str(&listed.stdout).expect("nft json");
        json["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["set"]["elem"].as_array())
            .flatten()
            .filter_map(|e| {
                let val = if e["elem"]["val"].is_null() {
                    e
                } else {
                    &e["elem"]["val"]
                };
                // A prefix of an interval set (`blocked_v6`) as `addr/len`.
                let prefix = &val["prefix"];
                match val.as_str() {
                    Some(addr) => Some(addr.to_string()),
                    None => Some(format!("{}/{}", prefix["addr"].as_str()?, prefix["len"])),
                }
            })
            .collect()
    }

    /// Connects from `source` (an address of this namespace) to each of `ports` on `target` and
    /// keeps the connections open: a scanner that completes its handshakes.
    pub fn connect_ports(&self, source: &str, target: &str, ports: &[u16]) -> Vec<TcpStream> {
        let from = SocketAddr::new(source.parse().expect("an IP address"), 0);
        let target: IpAddr = target.parse().expect("an IP address");
        let ports = ports.to_vec();
        self.run_in(move || {
            ports
                .iter()
                .map(|port| {
                    let to = SocketAddr::new(target, *port);
                    connect_from(from, to, Duration::from_secs(2))
                        .unwrap_or_else(|e| panic!("{from} -> {to}: {e}"))
                })
                .collect()
        })
    }

    /// Joins this namespace to `other` by a veth pair, each end `(name, addresses)` up with its
    /// addresses (IPv6 ones without duplicate address detection, so they work at once).
    pub fn veth(&self, other: &Netns, here: (&str, &[&str]), there: (&str, &[&str])) {
        self.ip(&[
            "link",
            "add",
            here.0,
            "type",
            "veth",
            "peer",
            "name",
            there.0,
            "netns",
            &other.name,
        ]);
        for (ns, (device, addrs)) in [(self, here), (other, there)] {
            for addr in addrs {
                if addr.contains(':') {
                    ns.ip(&["-6", "addr", "add", addr, "dev", device, "nodad"]);
                } else {
                    ns.ip(&["addr", "add", addr, "dev", device]);
                }
            }
            ns.ip(&["link", "set", device, "up"]);
        }
    }

    /// Seconds until `addr`'s element of `inet netvantage SET` expires (the kernel's count
    /// down), or None when it is not there.
    pub fn nft_expires(&self, set: &str, addr: &str) -> Option<u64> {
        let listed = TestCommand::new("nft")
            .args(["-j", "list", "set", "inet", "netvantage", set])
            .in_netns(self)
            .run();
        let json: serde_json::Value = serde_json::from_str(&listed.stdout).ok()?;
        json["nftables"]
            .as_array()?
            .iter()
            .filter_map(|item| item["set"]["elem"].as_array())
            .flatten()
            .find(|e| e["elem"]["val"].as_str() == Some(addr))
            .and_then(|e| e["elem"]["expires"].as_u64())
    }

    /// `nft list tables` in this namespace.
    pub fn nft_tables(&self) -> String {
        self.exec(&["nft", "list", "tables"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Plain commands whose failures are ignored: a drop must not panic. A process may be
        // entering the namespace (`ip netns exec`) while the first one is killed, so the list
        // is taken again until it is empty (a bounded number of times).
        for _ in 0..20 {
            let pids: Vec<libc::pid_t> = Command::new("ip")
                .args(["netns", "pids", &self.name])
                .output()
                .map(|out| {
                    String::from_utf8_lossy(&out.stdout)
                        .split_whitespace()
                        .filter_map(|pid| pid.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                // SAFETY: kill(2) with a pid that `ip netns pids` just listed in our namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `f` on a thread that has entered the namespace named `name` (see [`Netns::run_in`]).
pub fn run_in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{name}");
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

/// Two namespaces joined by a veth pair: `host` (198.18.0.1, 2001:db8::1) runs the monitor,
/// `peer` (198.18.0.2-3, 2001:db8::2-3) plays the remote clients. 198.18.0.0/15 is reserved for
/// benchmarking and 2001:db8::/32 for documentation; both exist only inside these namespaces.
pub struct Pair {
    pub peer: Netns,
    pub host: Netns,
}

impl Pair {
    #[allow(clippy::new_without_default)] // creating namespaces is an act, not a default value
    pub fn new() -> Pair {
        let host = Netns::new();
        let peer = Netns::new();
        host.veth(
            &peer,
            ("nvh", &["198.18.0.1/24", "2001:db8::1/64"]),
            (
                "nvp",
                &[
                    "198.18.0.2/24",
                    "198.18.0.3/24",
                    "2001:db8::2/64",
                    "2001:db8::3/64",
                ],
            ),
        );
        Pair { peer, host }
    }
}

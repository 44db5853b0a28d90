//! Benchmark for `netvantage conns` (driven by `run.sh`, which creates the namespace).
//!
//! `hold ADDR N`: listen on ADDR, open N loopback connections to it and hold both ends, so one
//! process contributes 2N socket-table entries (the fd limit caps N per process).
//! `measure [--runs R] [--polls P]`: in the current network namespace, time one poll-and-diff
//! of each netvantage source, `ss -tan` listing the same table, and the procfs crate's parser,
//! interleaved R times (medians reported, with ratios); then RSS across P polls per source.
//! `serve`, `generate`, `watch`: the event-rate benchmark driven by `events.sh` (see
//! `events.rs`).

mod events;

use netvantage_conns::{Monitor, NetlinkSource, ProcSource, Snapshot, Source};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("hold") if args.len() == 3 => hold(&args[1], args[2].parse().expect("N")),
        // For profiling the dump alone: `perf record conns-bench dump 20`.
        Some("dump") if args.len() == 2 => {
            let mut source = NetlinkSource::open().expect("netlink");
            for _ in 0..args[1].parse::<usize>().expect("N") {
                let mut n = 0;
                source.read(&mut |_| n += 1).expect("dump");
                std::hint::black_box(n);
            }
        }
        Some("serve") if args.len() == 3 => events::serve(&args[1], args[2].parse().expect("S")),
        Some("generate") if args.len() == 4 => events::generate(
            &args[1],
            args[2].parse().expect("RATE"),
            args[3].parse().expect("SECONDS"),
        ),
        Some("watch") if args.len() == 4 => events::watch(
            &args[1],
            args[2].parse().expect("PORT"),
            args[3].parse().expect("SECONDS"),
        ),
        // For instruction counts (callgrind) of the library call alone: `conns-bench poll
        // proc|netlink N` polls a monitor N times, nothing else.
        Some("poll") if args.len() == 3 => {
            let polls: usize = args[2].parse().expect("N");
            let mut entries = 0;
            match args[1].as_str() {
                "proc" => {
                    let mut monitor = Monitor::new(ProcSource::new("/proc"));
                    for _ in 0..polls {
                        entries += monitor.poll().expect("proc").stats.entries;
                    }
                }
                _ => {
                    let mut monitor = Monitor::new(NetlinkSource::open().expect("netlink"));
                    for _ in 0..polls {
                        entries += monitor.poll().expect("netlink").stats.entries;
                    }
                }
            }
            println!("{entries}");
        }
        Some("measure") => {
            let flag = |name: &str, default: usize| {
                args.iter()
                    .position(|a| a == name)
                    .and_then(|i| args.get(i + 1))
                    .map_or(default, |v| v.parse().expect("number"))
            };
            measure(flag("--runs", 15), flag("--polls", 1000));
        }
        _ => {
            eprintln!(
                "usage: conns-bench hold ADDR N | measure [--runs R] [--polls P] | serve ADDR S | generate ADDR RATE S | watch SOURCE PORT S"
            );
            std::process::exit(3);
        }
    }
}

fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

fn hold(addr: &str, n: usize) {
    raise_fd_limit();
    let listener = TcpListener::bind(addr).expect("bind");
    let mut held: Vec<TcpStream> = Vec::with_capacity(2 * n);
    for _ in 0..n {
        // Accept right after each connect so the backlog never fills.
        held.push(TcpStream::connect(addr).expect("connect"));
        held.push(listener.accept().expect("accept").0);
    }
    println!("ready {}", held.len());
    std::io::stdout().flush().ok();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

fn ss_once() -> Duration {
    time(|| {
        let status = Command::new("ss")
            .arg("-tan")
            .stdout(Stdio::null())
            .status()
            .expect("run ss");
        assert!(status.success());
    })
    .0
}

fn measure(runs: usize, polls: usize) {
    let ss_lines = Command::new("ss").arg("-tan").output().expect("ss").stdout;
    let ss_entries = ss_lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
        - 1;
    let mut proc = Monitor::new(ProcSource::new("/proc"));
    let mut netlink = Monitor::new(NetlinkSource::open().expect("netlink"));
    // The first poll is the baseline (every connection is "new"); time steady-state polls.
    let proc_entries = proc.poll().expect("proc").stats.entries;
    let netlink_entries = netlink.poll().expect("netlink").stats.entries;
    let procfs_entries =
        procfs::net::tcp().expect("procfs").len() + procfs::net::tcp6().expect("procfs").len();
    println!(
        "table: proc {proc_entries} entries, netlink {netlink_entries}, ss -tan {ss_entries}, procfs {procfs_entries}; {} connections",
        proc.snapshot().len()
    );

    let (mut t_proc, mut t_netlink, mut t_ss, mut t_procfs) = (vec![], vec![], vec![], vec![]);
    // Where the time goes: the kernel's part (reading the text / receiving the dump, entries
    // handed to a callback that only counts them) versus our decoding, snapshot and diff.
    let (mut t_proc_read, mut t_netlink_read) = (vec![], vec![]);
    let mut raw_netlink = NetlinkSource::open().expect("netlink");
    let mut buf = Vec::new();
    let mut entries = Vec::new();
    raw_netlink.read(&mut |e| entries.push(e)).expect("dump");
    let (mut snap_a, mut snap_b, mut new) = (Snapshot::default(), Snapshot::default(), Vec::new());
    entries.iter().for_each(|e| snap_a.insert(*e));
    let mut t_user = vec![];
    for _ in 0..runs {
        t_user.push(
            time(|| {
                snap_b.clear();
                entries.iter().for_each(|e| snap_b.insert(*e));
                snap_b.new_since(&snap_a, &mut new);
                assert!(new.is_empty());
            })
            .0,
        );
        t_proc_read.push(
            time(|| {
                for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
                    buf.clear();
                    let mut f = std::fs::File::open(file).expect("open");
                    std::io::Read::read_to_end(&mut f, &mut buf).expect("read");
                }
            })
            .0,
        );
        t_netlink_read.push(time(|| raw_netlink.read(&mut |_| {}).expect("dump")).0);
        t_proc.push(time(|| assert!(proc.poll().expect("proc").new.len() < 1000)).0);
        t_netlink.push(time(|| assert!(netlink.poll().expect("netlink").new.len() < 1000)).0);
        t_ss.push(ss_once());
        t_procfs.push(
            time(|| {
                let v4 = procfs::net::tcp().expect("procfs tcp");
                let v6 = procfs::net::tcp6().expect("procfs tcp6");
                assert!(v4.len() + v6.len() > 0);
            })
            .0,
        );
    }
    let (proc_ms, netlink_ms, ss_ms, procfs_ms) = (
        ms(median(&mut t_proc)),
        ms(median(&mut t_netlink)),
        ms(median(&mut t_ss)),
        ms(median(&mut t_procfs)),
    );
    println!("median of {runs} interleaved runs (ms):");
    println!(
        "  netvantage proc    poll+diff {proc_ms:9.1}   ratio to ss {:5.2}",
        proc_ms / ss_ms
    );
    println!(
        "  netvantage netlink poll+diff {netlink_ms:9.1}   ratio to ss {:5.2}",
        netlink_ms / ss_ms
    );
    println!(
        "  ss -tan > /dev/null          {ss_ms:9.1}   ratio to ss {:5.2}",
        1.0
    );
    println!(
        "  procfs crate tcp()+tcp6()    {procfs_ms:9.1}   ratio to ss {:5.2}",
        procfs_ms / ss_ms
    );
    println!(
        "  proc poll+diff / procfs parse: {:5.2}",
        proc_ms / procfs_ms
    );
    println!(
        "  of which kernel: reading /proc/net/tcp{{,6}} text {:.1} ms; netlink dump received and decoded, no snapshot {:.1} ms",
        ms(median(&mut t_proc_read)),
        ms(median(&mut t_netlink_read))
    );
    println!(
        "  of which ours: snapshot + diff of {} entries already in memory {:.1} ms",
        entries.len(),
        ms(median(&mut t_user))
    );
    drop((proc, netlink));

    memory(
        "netlink",
        Monitor::new(NetlinkSource::open().expect("netlink")),
        polls,
    );
    memory("proc", Monitor::new(ProcSource::new("/proc")), polls);
}

fn memory<S: Source>(name: &str, mut monitor: Monitor<S>, polls: usize) {
    let checkpoints = [1, 10, 100, polls / 2, polls];
    let mut line = format!("memory, {name} source, {polls} polls: RSS KiB at poll");
    let start = Instant::now();
    for i in 1..=polls {
        monitor.poll().expect("poll");
        if checkpoints.contains(&i) {
            line.push_str(&format!(" {i}={}", rss_kib().0));
        }
    }
    let (rss, hwm) = rss_kib();
    println!(
        "{line}; peak {hwm} KiB, final {rss} KiB, {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

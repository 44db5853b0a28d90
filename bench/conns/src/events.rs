//! The event-rate benchmark (driven by `events.sh`, which creates the namespaces):
//!
//! `serve ADDR SECONDS`: accept and drop connections on ADDR for SECONDS.
//! `generate ADDR RATE SECONDS`: open RATE connections per second to ADDR for SECONDS, paced
//! over 4 threads, each closed at once with a reset (`SO_LINGER` 0: no TIME_WAIT, so the
//! client's ports last); prints how many were made and at what rate.
//! `watch SOURCE PORT SECONDS`: runs netvantage's watcher (`netvantage_conns::Watcher`, the
//! loop the CLI runs) with SOURCE `conntrack`, `proc` or `netlink` and a 1 s interval until
//! SIGTERM (at most SECONDS), counts the new connections to PORT it reports, and prints them with the CPU
//! seconds the process used (user + system, reader thread included) and the overruns counted.

use netvantage_conns::conntrack::{self, ConntrackSource};
use netvantage_conns::nft::Firewall;
use netvantage_conns::scan::ScanConfig;
use netvantage_conns::watch::{ConntrackFeed, LineSink, WatchPlan};
use netvantage_conns::{
    Feed, Monitor, NetlinkSource, ProcSource, Source, Watcher, hostaddrs, metrics::Metrics,
};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub fn serve(addr: &str, seconds: u64) {
    let listener = TcpListener::bind(addr).expect("bind");
    // std listens with a backlog of 128; a burst of 30,000/s needs the namespace's somaxconn.
    // SAFETY: listen(2) again on our listening socket only resizes its backlog.
    unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 65_535) };
    listener.set_nonblocking(true).expect("nonblocking");
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        match listener.accept() {
            Ok((stream, _)) => drop(stream),
            Err(_) => std::thread::sleep(Duration::from_micros(200)),
        }
    }
}

pub fn generate(addr: &str, rate: u64, seconds: u64) {
    const THREADS: u64 = 4;
    let to: SocketAddr = addr.parse().expect("ADDR");
    let made = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let per_thread = rate * seconds / THREADS;
    let gap = Duration::from_secs_f64(THREADS as f64 / rate as f64);
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (made, failed) = (made.clone(), failed.clone());
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let due = started + gap * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
                        Ok(stream) => {
                            reset_on_close(&stream);
                            made.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let made = made.load(Ordering::Relaxed);
    println!(
        "made {made} failed {} in {elapsed:.2} s ({:.0}/s)",
        failed.load(Ordering::Relaxed),
        made as f64 / elapsed
    );
}

/// SO_LINGER 0: the close sends a reset and leaves no TIME_WAIT.
fn reset_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: linger outlives the call; its size is given.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Counts the reported new connections to one port.
struct Count {
    suffix: String,
    seen: Arc<AtomicU64>,
}

impl LineSink for Count {
    fn write_lines(&mut self, lines: &[String]) -> std::io::Result<()> {
        let n = lines.iter().filter(|l| l.ends_with(&self.suffix)).count();
        self.seen.fetch_add(n as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage on a local struct.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

pub fn watch(source: &str, port: u16, seconds: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let firewall = Firewall::default();
    let feed = match source {
        "conntrack" => {
            let events =
                ConntrackSource::open(conntrack::DEFAULT_BUFFER).expect("conntrack events");
            firewall
                .track_connections()
                .expect("nft: switch conntrack on");
            Feed::Conntrack(ConntrackFeed::new(events, conntrack::DEFAULT_BUFFER))
        }
        "proc" => Feed::Table(Monitor::new(
            Box::new(ProcSource::new("/proc")) as Box<dyn Source>
        )),
        "netlink" => Feed::Table(Monitor::new(
            Box::new(NetlinkSource::open().expect("netlink")) as Box<dyn Source>,
        )),
        other => panic!("unknown source {other}"),
    };
    let seen = Arc::new(AtomicU64::new(0));
    let metrics = Metrics::new();
    let plan = WatchPlan {
        interval: Duration::from_secs(1),
        count: None,
        include_existing: false,
        local_time: false,
        scan: ScanConfig::default(),
        block: None,
    };
    let sink = Count {
        suffix: format!(":{port}"),
        seen: seen.clone(),
    };
    let mut watcher = Watcher::new(
        plan,
        feed,
        metrics.clone(),
        Box::new(sink),
        None,
        Box::new(hostaddrs::own_addresses),
    );
    let before = cpu_seconds();
    runtime.block_on(async {
        let shutdown = netvantage_runtime::Shutdown::new();
        // The script stops it with SIGTERM once the generator is done; SECONDS bounds the run.
        shutdown.stop_on_signals().expect("signals");
        shutdown.stop_after(Duration::from_secs(seconds));
        watcher.run(&shutdown).await.expect("watch");
    });
    drop(watcher);
    let cpu = cpu_seconds() - before;
    if source == "conntrack" {
        let _ = firewall.teardown();
    }
    println!(
        "{source} seen {} cpu {cpu:.3} overruns {}",
        seen.load(Ordering::Relaxed),
        metrics.conntrack_overruns.get()
    );
}

//! `conns --source conntrack` against a real kernel: conntrack events inside two namespaces
//! joined by a veth pair (the monitored `host`, the `peer` that connects and scans). Conntrack
//! is switched on by netvantage's own table inside the host namespace and disappears with it;
//! the machine's own firewall and conntrack settings are never touched.

use netvantage_testkit::*;
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Accepts and drops connections on `addr` in `ns` until the returned flag is set (bounded:
/// the listener is non-blocking and the loop ends with the flag).
fn accept_and_drop(ns: &Netns, addr: &'static str) -> Arc<AtomicBool> {
    let listener: TcpListener = ns.run_in(move || listen(addr));
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => drop(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    });
    stop
}

/// `count` connections from `ns` to `to`, each closed as soon as it is connected; returns the
/// client addresses, the longest a connection stayed open after its handshake, and the slowest
/// handshake (a SYN the busy machine dropped is retried after a second).
fn short_connections(
    ns: &Netns,
    to: &'static str,
    count: usize,
) -> (Vec<SocketAddr>, Duration, Duration) {
    ns.run_in(move || {
        let to: SocketAddr = to.parse().unwrap();
        let mut clients = Vec::with_capacity(count);
        let (mut longest, mut slowest_connect) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..count {
            let started = Instant::now();
            let stream = TcpStream::connect_timeout(&to, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connect {to}: {e}"));
            let connected = Instant::now();
            clients.push(stream.local_addr().unwrap());
            drop(stream);
            longest = longest.max(connected.elapsed());
            slowest_connect = slowest_connect.max(connected - started);
        }
        (clients, longest, slowest_connect)
    })
}

fn new_connection_lines<'a>(events: &'a [String], to: &str) -> Vec<&'a String> {
    let suffix = format!(" -> {to}");
    events
        .iter()
        .filter(|e| e.starts_with("New connection: ") && e.ends_with(&suffix))
        .collect()
}

#[test]
fn conntrack_reports_every_one_of_ten_thousand_short_connections_with_its_direction() {
    const INBOUND: usize = 10_000;
    const OUTBOUND: usize = 100;
    let Pair { peer, host } = Pair::new();
    let stop_in = accept_and_drop(&host, "198.18.0.1:7100");
    let stop_out = accept_and_drop(&peer, "198.18.0.2:7200");
    let mut conntrack = host.conns(&[
        "--source",
        "conntrack",
        "--interval",
        "1s",
        "--metrics-addr",
        "127.0.0.1:9465",
        "--scan-ports",
        "1000",
    ]);
    // The socket-table sources poll every 10 s: the connections are made between two polls.
    const POLL: Duration = Duration::from_secs(10);
    let mut polled: Vec<(&str, Conns)> = ["proc", "netlink"]
        .iter()
        .map(|source| {
            (
                *source,
                host.conns(&["--source", source, "--interval", "10s"]),
            )
        })
        .collect();
    conntrack.wait_baseline();
    for (_, conns) in &mut polled {
        conns.wait_baseline();
    }
    let after_baselines = Instant::now();

    let (clients, longest, slowest) = short_connections(&peer, "198.18.0.1:7100", INBOUND);
    let (outbound, _, _) = short_connections(&host, "198.18.0.2:7200", OUTBOUND);
    let between_polls = after_baselines.elapsed() < POLL - Duration::from_secs(1);
    eprintln!(
        "10,000 connections in {:?}; each open at most {longest:?} after its handshake (slowest handshake {slowest:?})",
        after_baselines.elapsed()
    );
    conntrack.wait_for(
        Duration::from_secs(60),
        "every connection reported",
        |out, _| out.len() >= INBOUND + OUTBOUND,
    );
    // One more poll: nothing arrives twice.
    let events = conntrack.settle(Duration::from_secs(1), 2);
    let inbound_lines = new_connection_lines(&events, "198.18.0.1:7100");
    assert_eq!(inbound_lines.len(), INBOUND);
    let expected: HashSet<String> = clients
        .iter()
        .map(|c| format!("New connection: {c} -> 198.18.0.1:7100"))
        .collect();
    let reported: HashSet<String> = inbound_lines.iter().map(|l| l.to_string()).collect();
    assert_eq!(reported, expected, "each client exactly once");
    let outbound_reported: HashSet<String> = new_connection_lines(&events, "198.18.0.2:7200")
        .into_iter()
        .cloned()
        .collect();
    let outbound_expected: HashSet<String> = outbound
        .iter()
        .map(|c| format!("New connection: {c} -> 198.18.0.2:7200"))
        .collect();
    assert_eq!(
        outbound_reported, outbound_expected,
        "each outbound connection once"
    );
    assert_eq!(
        events.len(),
        INBOUND + OUTBOUND,
        "no other line: {:#?}",
        &events[..events.len().min(20)]
    );

    let response = host.run_in(|| scrape("127.0.0.1:9465"));
    assert_eq!(
        metric(
            &response,
            "netvantage_new_connections_total{direction=\"inbound\"}"
        ),
        INBOUND as f64
    );
    assert_eq!(
        metric(
            &response,
            "netvantage_new_connections_total{direction=\"outbound\"}"
        ),
        OUTBOUND as f64
    );
    assert_eq!(
        metric(&response, "netvantage_conntrack_overruns_total"),
        0.0
    );

    // What the polling sources saw of the same 10,000 at their next poll (printed, not
    // asserted: TIME_WAIT entries of the sockets this host closed first stay listed).
    std::thread::sleep((POLL + Duration::from_secs(1)).saturating_sub(after_baselines.elapsed()));
    for (source, conns) in &mut polled {
        let events = conns.events();
        let seen = new_connection_lines(&events, "198.18.0.1:7100").len();
        println!(
            "--source {source}: {seen} of {INBOUND} inbound connections seen (made between two polls: {between_polls})"
        );
        assert_eq!(conns.terminate(), 0);
    }
    assert_eq!(conntrack.terminate(), 0, "{:#?}", conntrack.err_lines());
    assert!(
        !host.nft_tables().contains("netvantage"),
        "conntrack's table left behind"
    );
    stop_in.store(true, Ordering::Relaxed);
    stop_out.store(true, Ordering::Relaxed);
}

fn can_connect(peer: &Netns, source: &'static str, target: &'static str) -> bool {
    peer.run_in(move || {
        let to = SocketAddr::new(target.parse().unwrap(), 7001);
        let from = SocketAddr::new(source.parse().unwrap(), 0);
        connect_from(from, to, Duration::from_millis(400)).is_ok()
    })
}

fn scan_lines(events: &[String], source: &str) -> Vec<String> {
    let prefix = format!("Port scan detected: {source} -> ");
    events
        .iter()
        .filter(|e| e.starts_with(&prefix))
        .cloned()
        .collect()
}

/// `Port scan detected: … on ports 7001,… (N closed)` → N.
fn closed_count(line: &str) -> usize {
    let tail = line.rsplit_once(" (").expect("a closed count").1;
    tail.strip_suffix(" closed)")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no closed count in {line:?}"))
}

#[test]
fn nmap_connect_and_syn_scans_of_closed_ports_are_detected_once_and_blocked() {
    require_tool("nmap", "nmap");
    let Pair { peer, host } = Pair::new();
    // Two of the thirty scanned ports are open.
    let stop = [
        accept_and_drop(&host, "198.18.0.1:7001"),
        accept_and_drop(&host, "198.18.0.1:7002"),
    ];
    let mut conns = host.conns(&[
        "--source",
        "conntrack",
        "--interval",
        "300ms",
        "--block",
        "--block-ttl",
        "1m",
    ]);
    conns.wait_baseline();
    assert!(
        can_connect(&peer, "198.18.0.2", "198.18.0.1"),
        "port 7001 reachable"
    );

    let scans: [(&str, Vec<&str>); 2] = [
        // 198.18.0.2 is the peer's first address: connect() uses it.
        ("198.18.0.2", vec!["-sT"]),
        ("198.18.0.3", vec!["-sS", "-S", "198.18.0.3", "-e", "nvp"]),
    ];
    for (source, kind) in scans {
        let mut argv = vec!["nmap", "-n", "-Pn", "--max-retries", "0", "-p", "7001-7030"];
        argv.extend(kind);
        argv.push("198.18.0.1");
        let report = peer.exec(&argv);
        assert!(report.contains("7001/tcp open"), "{report}");
        conns.wait_for(
            Duration::from_secs(10),
            &format!("the block of {source}"),
            |out, _| {
                out.iter()
                    .any(|l| l.ends_with(&format!("Blocked {source} for 60s")))
            },
        );
        let events = conns.settle(Duration::from_millis(300), 2);
        let lines = scan_lines(&events, source);
        assert_eq!(lines.len(), 1, "one scan line for {source}: {events:#?}");
        println!("{}", lines[0]);
        let closed = closed_count(&lines[0]);
        // The line comes from the poll that crossed the rule, which may not hold all 28.
        assert!(
            (1..=28).contains(&closed),
            "closed ports counted: {}",
            lines[0]
        );
        assert!(
            !can_connect(&peer, source, "198.18.0.1"),
            "{source} still connects after its block"
        );
        assert_eq!(
            host.nft_set("blocked_v4")
                .iter()
                .filter(|a| *a == source)
                .count(),
            1
        );
    }
    // The refused attempts are counted as such; the block holds for the whole episode.
    let err = conns.err_lines();
    assert!(!err.iter().any(|l| l.contains("ERROR")), "{err:#?}");
    assert_eq!(conns.terminate(), 0);
    assert!(!host.nft_tables().contains("netvantage"));
    for flag in stop {
        flag.store(true, Ordering::Relaxed);
    }
}

#[test]
fn an_overrun_is_counted_logged_and_recovered_with_no_connection_reported_twice() {
    let Pair { peer, host } = Pair::new();
    let stop = accept_and_drop(&host, "198.18.0.1:7300");
    let mut conns = host.conns(&[
        "--source",
        "conntrack",
        "--interval",
        "500ms",
        "--conntrack-buffer",
        "1024",
        "--metrics-addr",
        "127.0.0.1:9466",
        "--scan-ports",
        "1000",
    ]);
    conns.wait_baseline();
    // Bursts from four threads at once until the tiny buffer overflows (bounded: 5 bursts).
    // From the second burst on the monitor is stopped meanwhile (SIGSTOP), so even a reader
    // that keeps up on an idle machine falls behind.
    let mut clients: Vec<SocketAddr> = Vec::new();
    let mut overrun = false;
    for burst_number in 0..5 {
        let stall = burst_number > 0;
        if stall {
            conns.pause();
        }
        let burst: Vec<Vec<SocketAddr>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| short_connections(&peer, "198.18.0.1:7300", 250).0))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        if stall {
            conns.resume();
        }
        clients.extend(burst.into_iter().flatten());
        overrun = wait_until(Duration::from_secs(3), || {
            conns
                .err_lines()
                .iter()
                .any(|l| l.contains("conntrack events were lost"))
        });
        if overrun {
            break;
        }
    }
    assert!(overrun, "no overrun after 5 bursts with a 1 KiB buffer");
    let made = clients.len();
    conns.wait_for(
        Duration::from_secs(30),
        "every connection reported after the re-sync",
        |out, _| out.len() >= made,
    );
    let events = conns.settle(Duration::from_millis(500), 3);
    let lines = new_connection_lines(&events, "198.18.0.1:7300");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for line in &lines {
        *seen.entry(line.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "reported twice: {twice:#?}");
    let expected: HashSet<String> = clients
        .iter()
        .map(|c| format!("New connection: {c} -> 198.18.0.1:7300"))
        .collect();
    let reported: HashSet<String> = lines.iter().map(|l| l.to_string()).collect();
    assert_eq!(
        reported.len(),
        made,
        "every connection recovered (missing {:?})",
        expected.difference(&reported).take(5).collect::<Vec<_>>()
    );
    assert_eq!(reported, expected);
    let err = conns.err_lines();
    assert!(
        err.iter().any(|l| l.contains("conntrack re-sync done")),
        "{err:#?}"
    );
    let response = host.run_in(|| scrape("127.0.0.1:9466"));
    let overruns = metric(&response, "netvantage_conntrack_overruns_total");
    assert!(overruns >= 1.0, "{response}");
    println!("{made} connections, {overruns} overrun(s), every one reported once");
    assert_eq!(conns.terminate(), 0);
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn without_cap_net_admin_conntrack_exits_3_naming_what_is_missing_and_the_alternatives() {
    require_tool("setpriv", "util-linux");
    let ns = Netns::new();
    let run = nv()
        .args(["conns", "--source", "conntrack", "--count", "1"])
        .wrap([
            "setpriv",
            "--bounding-set=-net_admin",
            "--inh-caps=-net_admin",
            "--",
        ])
        .in_netns(&ns)
        .run();
    assert_eq!(run.code, 3, "{}", run.stderr);
    for needle in ["CAP_NET_ADMIN", "--source netlink", "--source proc"] {
        assert!(run.stderr.contains(needle), "{needle:?} in {}", run.stderr);
    }
    assert!(
        !ns.nft_tables().contains("netvantage"),
        "a table was created without the privilege"
    );
}

fn count_rows(db: &rusqlite::Connection, sql: &str) -> usize {
    db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as usize
}

#[test]
fn connections_a_scan_and_its_block_reach_sqlite_as_records_exactly_once() {
    require_tool("nmap", "nmap");
    const CONNECTIONS: usize = 40;
    let Pair { peer, host } = Pair::new();
    let stop = accept_and_drop(&host, "198.18.0.1:7001");
    let dir = Scratch::new();
    let db_path = dir.join("conns.db");
    let sink = format!("sqlite:{}", db_path.display());
    let mut conns = host.conns(&[
        "--source",
        "conntrack",
        "--interval",
        "300ms",
        "--block",
        "--block-ttl",
        "1m",
        "--host",
        "web-1",
        "--sink",
        &sink,
    ]);
    conns.wait_baseline();
    let (clients, _, _) = short_connections(&peer, "198.18.0.1:7001", CONNECTIONS);
    conns.wait_for(
        Duration::from_secs(30),
        "every connection reported",
        |out, _| {
            let suffix = "New connection: 198.18.0.2:";
            out.iter().filter(|l| l.contains(suffix)).count() >= CONNECTIONS
        },
    );
    // Closed ports only: a connect scan of them makes refused attempts, no connections.
    let report = peer.exec(&[
        "nmap",
        "-n",
        "-Pn",
        "--max-retries",
        "0",
        "-sT",
        "-p",
        "7010-7030",
        "198.18.0.1",
    ]);
    assert!(report.contains("7010/tcp closed"), "{report}");
    conns.wait_for(Duration::from_secs(10), "the block", |out, _| {
        out.iter()
            .any(|l| l.ends_with("Blocked 198.18.0.2 for 60s"))
    });
    let events = conns.settle(Duration::from_millis(300), 2);
    assert_eq!(conns.terminate(), 0, "{:#?}", conns.err_lines());
    // The conntrack source reports every new flow, a refused attempt too (the scan's 21), as
    // the text output does: one row per line.
    let lines = new_connection_lines(&events, "198.18.0.1:7001");
    assert_eq!(lines.len(), CONNECTIONS, "{events:#?}");
    let all_lines = events
        .iter()
        .filter(|e| e.starts_with("New connection: "))
        .count();
    assert_eq!(all_lines, CONNECTIONS + 21, "{events:#?}");

    let db = rusqlite::Connection::open(&db_path).unwrap();
    assert_eq!(
        count_rows(&db, "SELECT count(*) FROM connections"),
        all_lines
    );
    assert_eq!(
        count_rows(
            &db,
            "SELECT count(DISTINCT destination) FROM connections WHERE destination <> '198.18.0.1:7001'"
        ),
        21,
        "one row per scanned port"
    );
    let mut statement = db
        .prepare("SELECT source, destination, direction, host, schema FROM connections WHERE destination = '198.18.0.1:7001'")
        .unwrap();
    let rows: HashSet<(String, String, String, String, i64)> = statement
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: HashSet<_> = clients
        .iter()
        .map(|c| {
            let c = c.to_string();
            (
                c,
                "198.18.0.1:7001".into(),
                "inbound".into(),
                "web-1".into(),
                1,
            )
        })
        .collect();
    assert_eq!(rows, expected, "each connection once, as it was made");
    assert_eq!(count_rows(&db, "SELECT count(*) FROM scans"), 1);
    let (source, closed): (String, i64) = db
        .query_row("SELECT source, closed_ports FROM scans", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(source, "198.18.0.2");
    assert!(closed >= 1, "closed ports counted: {closed}");
    assert_eq!(count_rows(&db, "SELECT count(*) FROM blocks"), 1);
    let (target, ts, expires, offenses): (String, i64, i64, i64) = db
        .query_row(
            "SELECT target, ts_unix_ms, expires_unix_ms, offenses FROM blocks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(target, "198.18.0.2/32");
    assert_eq!(expires - ts, 60_000, "the ban's absolute expiry");
    assert_eq!(offenses, 1);
    assert_eq!(count_rows(&db, "SELECT count(*) FROM results"), 0);
    stop.store(true, Ordering::Relaxed);
}

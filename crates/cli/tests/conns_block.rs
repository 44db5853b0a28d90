//! Port-scan detection and nftables blocking against a real kernel. The monitored "host" and
//! the scanning "peer" are two namespaces joined by a veth pair; the nftables table is created
//! inside the host namespace and disappears with it. The machine's own firewall is never used.

use netvantage_testkit::*;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const PORTS: [u16; 5] = [7001, 7002, 7003, 7004, 7005];

/// Connects from `source` to every port of `target` and keeps the connections open.
fn scan(peer: &Netns, source: &'static str, target: &'static str) -> Vec<TcpStream> {
    peer.connect_ports(source, target, &PORTS)
}

fn can_connect(peer: &Netns, source: &'static str, target: &'static str) -> bool {
    peer.run_in(move || {
        let to = std::net::SocketAddr::new(target.parse().unwrap(), PORTS[0]);
        let from = std::net::SocketAddr::new(source.parse().unwrap(), 0);
        connect_from(from, to, Duration::from_millis(400)).is_ok()
    })
}

fn scan_lines(source: &str, target: &str, streams: &[TcpStream]) -> Vec<String> {
    let mut lines: Vec<String> = streams
        .iter()
        .map(|s| {
            let from = s.local_addr().unwrap();
            let to = s.peer_addr().unwrap();
            format!("New connection: {from} -> {to}")
        })
        .collect();
    lines.push(format!(
        "Port scan detected: {source} -> {target} on ports 7001,7002,7003,7004,7005"
    ));
    lines
}

fn listeners(host: &Netns) -> Vec<std::net::TcpListener> {
    // `[::]` listeners are dual-stack: IPv4 clients show up as IPv4-mapped entries in tcp6.
    host.run_in(|| PORTS.iter().map(|p| listen(&format!("[::]:{p}"))).collect())
}

#[test]
fn a_five_port_scan_is_detected_once_blocked_for_its_ttl_and_the_table_removed_on_exit() {
    let Pair { peer, host } = Pair::new();
    let _listeners = listeners(&host);
    let mut conns = host.conns(&[
        "--interval",
        "200ms",
        "--block",
        "--block-ttl",
        "3s",
        "--allow",
        "198.18.0.3",
        "--scan-window",
        "30s",
    ]);
    conns.wait_baseline();
    assert!(
        host.nft_tables().contains("table inet netvantage"),
        "table created at start"
    );

    // IPv4 scanner: detected once, blocked, its next connection attempt fails.
    let v4 = scan(&peer, "198.18.0.2", "198.18.0.1");
    let mut expected = scan_lines("198.18.0.2", "198.18.0.1", &v4);
    expected.push("Blocked 198.18.0.2 for 3s".to_string());
    conns.wait_events(&expected);
    let blocked_at = Instant::now();
    assert_eq!(host.nft_set("blocked_v4"), vec!["198.18.0.2".to_string()]);
    assert!(
        !can_connect(&peer, "198.18.0.2", "198.18.0.1"),
        "a blocked source still connects"
    );

    // The allow-listed source scans too: reported, never blocked.
    let allowed = scan(&peer, "198.18.0.3", "198.18.0.1");
    let allowed_lines = scan_lines("198.18.0.3", "198.18.0.1", &allowed);
    conns.wait_events(&allowed_lines);
    conns.wait_for(
        Duration::from_secs(5),
        "the allow-list refusal",
        |_, err| {
            err.iter()
                .any(|l| l.contains("not blocking 198.18.0.3: it is in --allow 198.18.0.3/32"))
        },
    );
    assert!(
        can_connect(&peer, "198.18.0.3", "198.18.0.1"),
        "allow-listed source was blocked"
    );
    assert!(
        !host
            .nft_set("blocked_v4")
            .contains(&"198.18.0.3".to_string())
    );

    // IPv6 scanner goes into the IPv6 set.
    let v6 = scan(&peer, "2001:db8::2", "2001:db8::1");
    let mut v6_lines = scan_lines("2001:db8::2", "2001:db8::1", &v6);
    v6_lines.push("Blocked 2001:db8::2 for 3s".to_string());
    conns.wait_events(&v6_lines);
    assert_eq!(host.nft_set("blocked_v6"), vec!["2001:db8::2".to_string()]);

    // The kernel expires the entry after its TTL; the source gets through again.
    let deadline = blocked_at + Duration::from_secs(8);
    assert!(
        wait_until(deadline.saturating_duration_since(Instant::now()), || {
            !host
                .nft_set("blocked_v4")
                .contains(&"198.18.0.2".to_string())
        }),
        "198.18.0.2 still blocked 8 s after a 3 s TTL"
    );
    assert!(
        blocked_at.elapsed() >= Duration::from_millis(2500),
        "expired before its TTL"
    );
    assert!(
        can_connect(&peer, "198.18.0.2", "198.18.0.1"),
        "still blocked after the TTL"
    );

    // One detection per episode: later polls add no second scan line for anyone.
    let events = conns.events();
    for source in ["198.18.0.2", "198.18.0.3", "2001:db8::2"] {
        let scans = events
            .iter()
            .filter(|e| e.starts_with(&format!("Port scan detected: {source} ")))
            .count();
        assert_eq!(scans, 1, "{source}: {events:#?}");
    }
    let blocks = events.iter().filter(|e| e.starts_with("Blocked ")).count();
    assert_eq!(blocks, 2, "{events:#?}");

    assert_eq!(conns.terminate(), 0, "stderr: {:#?}", conns.err_lines());
    assert!(
        !host.nft_tables().contains("netvantage"),
        "table left behind after a clean exit"
    );
    drop((v4, allowed, v6));
}

#[test]
fn keep_rules_leaves_the_table_and_dry_run_never_touches_nftables() {
    let Pair { peer, host } = Pair::new();
    let _listeners = listeners(&host);

    let mut dry = host.conns(&["--interval", "200ms", "--block", "--dry-run"]);
    dry.wait_baseline();
    let streams = scan(&peer, "198.18.0.2", "198.18.0.1");
    dry.wait_events(&scan_lines("198.18.0.2", "198.18.0.1", &streams));
    dry.wait_for(Duration::from_secs(5), "the dry-run log", |_, err| {
        err.iter()
            .any(|l| l.contains("dry run: would block 198.18.0.2 for 3600s"))
    });
    assert!(
        !host.nft_tables().contains("netvantage"),
        "--dry-run created a table"
    );
    assert!(can_connect(&peer, "198.18.0.2", "198.18.0.1"));
    assert!(!dry.events().iter().any(|e| e.starts_with("Blocked")));
    assert_eq!(dry.terminate(), 0);
    drop(streams);

    let mut kept = host.conns(&["--interval", "200ms", "--block", "--keep-rules"]);
    kept.wait_baseline();
    assert_eq!(kept.terminate(), 0);
    assert!(
        host.nft_tables().contains("table inet netvantage"),
        "--keep-rules removed the table"
    );
}

#[test]
fn the_hosts_own_addresses_and_loopback_are_never_blocked() {
    let ns = Netns::new();
    ns.ip(&["addr", "add", "198.18.1.1/24", "dev", "lo"]);
    let _listeners = ns.run_in(|| {
        PORTS
            .iter()
            .map(|p| listen(&format!("0.0.0.0:{p}")))
            .collect::<Vec<_>>()
    });
    let mut conns = ns.conns(&["--interval", "200ms", "--block", "--block-ttl", "5s"]);
    conns.wait_baseline();
    let own = scan(&ns, "198.18.1.1", "198.18.1.1");
    let lo = scan(&ns, "127.0.0.5", "127.0.0.1");
    conns.wait_for(Duration::from_secs(5), "both refusals", |_, err| {
        err.iter()
            .any(|l| l.contains("not blocking 198.18.1.1: it is an address of this host"))
            && err
                .iter()
                .any(|l| l.contains("not blocking 127.0.0.5: it is a loopback address"))
    });
    assert!(ns.nft_set("blocked_v4").is_empty());
    // A poll logs its refusals before it prints its lines: wait for the lines too.
    let scans = |out: &[String]| {
        out.iter()
            .filter(|l| l.contains("Port scan detected"))
            .count()
    };
    conns.wait_for(Duration::from_secs(5), "both scan lines", |out, _| {
        scans(out) >= 2
    });
    let events = conns.settle(Duration::from_millis(200), 2);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("Port scan detected"))
            .count(),
        2,
        "{events:#?}"
    );
    assert_eq!(conns.terminate(), 0);
    drop((own, lo));
}

/// Connects from `source` to each of `ports` on `target` (each closed at once); returns how
/// many connected.
fn touch(peer: &Netns, source: &'static str, target: &'static str) -> usize {
    peer.run_in(move || {
        PORTS
            .iter()
            .filter(|port| {
                let to = std::net::SocketAddr::new(target.parse().unwrap(), **port);
                let from = std::net::SocketAddr::new(source.parse().unwrap(), 0);
                connect_from(from, to, Duration::from_millis(400)).is_ok()
            })
            .count()
    })
}

#[test]
fn ipv6_scanners_are_banned_by_prefix_and_repeat_offenders_for_longer() {
    let Pair { peer, host } = Pair::new();
    // A /64 of the peer's that holds none of the host's addresses (2001:db8::/64 does).
    for addr in ["2001:db8:1::2/64", "2001:db8:1::3/64"] {
        peer.ip(&["-6", "addr", "add", addr, "dev", "nvp", "nodad"]);
    }
    host.ip(&["-6", "route", "add", "2001:db8:1::/64", "dev", "nvh"]);
    let _listeners = listeners(&host);
    let mut conns = host.conns(&[
        "--source",
        "netlink",
        "--interval",
        "200ms",
        "--block",
        "--block-ttl",
        "2s",
        "--ban-factor",
        "2",
        "--ban-max",
        "1m",
        "--scan-window",
        "1s",
    ]);
    conns.wait_baseline();
    let streams = scan(&peer, "2001:db8:1::2", "2001:db8::1");
    conns.wait_for(Duration::from_secs(10), "the /64 ban", |out, _| {
        out.iter()
            .any(|l| l.ends_with("Blocked 2001:db8:1::/64 for 2s"))
    });
    let banned_at = Instant::now();
    assert_eq!(
        host.nft_set("blocked_v6"),
        vec!["2001:db8:1::/64".to_string()]
    );
    // The neighbour in the same /64 is kept out too; the peer's other /64 is not.
    assert!(!can_connect(&peer, "2001:db8:1::3", "2001:db8::1"));
    assert!(can_connect(&peer, "2001:db8::3", "2001:db8::1"));
    drop(streams);

    // Expiry: the kernel drops the element after its TTL.
    assert!(
        wait_until(Duration::from_secs(8), || host
            .nft_set("blocked_v6")
            .is_empty()),
        "the /64 still banned 8 s after a 2 s ban"
    );
    assert!(banned_at.elapsed() >= Duration::from_millis(1500));
    // A second episode from the same /64 (after a quiet scan window): twice as long.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(touch(&peer, "2001:db8:1::3", "2001:db8::1"), PORTS.len());
    conns.wait_for(
        Duration::from_secs(10),
        "the second, longer ban",
        |out, _| {
            out.iter()
                .any(|l| l.ends_with("Blocked 2001:db8:1::/64 for 4s"))
        },
    );
    let events = conns.events();
    let bans = events.iter().filter(|e| e.starts_with("Blocked ")).count();
    assert_eq!(bans, 2, "{events:#?}");
    assert_eq!(conns.terminate(), 0);
    assert!(
        !host.nft_tables().contains("netvantage"),
        "table left behind after a clean exit"
    );
}

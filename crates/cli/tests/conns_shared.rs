//! Shared bans across a fleet (`conns --block --shared`), with real components only: two
//! "hosts" are namespaces A and B joined by a veth pair (198.18.0.1 and 198.18.0.2), a real
//! tansu broker runs inside A on 198.18.0.1, and a scanner namespace C is joined to A
//! (198.19.0.0/24). A decides the bans; B must apply them in its own nftables table, except
//! the one its `--allow` list covers. Everything lives in the namespaces and goes with them.

use netvantage_testkit::*;
use std::net::TcpStream;
use std::time::Duration;

const PORTS: [u16; 5] = [7001, 7002, 7003, 7004, 7005];
/// How long a shared ban may take to show up in the second host (a consumer group join on a
/// loaded machine takes seconds).
const SHARED_WITHIN: Duration = Duration::from_secs(60);
/// How much later than A the second host starts (more than the 2 s the expiry check allows).
const LATE_START: Duration = Duration::from_secs(5);

fn scan(scanner: &Netns, source: &str, target: &str) -> Vec<TcpStream> {
    scanner.connect_ports(source, target, &PORTS)
}

fn shared_conns(ns: &Netns, host: &str, spool: &std::path::Path, allow: &str) -> Conns {
    let spool = spool.display().to_string();
    ns.conns(&[
        "--interval",
        "200ms",
        "--block",
        "--block-ttl",
        "10m",
        "--shared",
        "--sink",
        "kafka:198.18.0.1:19092",
        "--spool-dir",
        &spool,
        "--host",
        host,
        "--allow",
        allow,
    ])
}

#[test]
fn a_ban_decided_in_one_namespace_is_applied_in_the_other_unless_its_allow_list_covers_it() {
    let Pair { peer: b, host: a } = Pair::new();
    let scanner = Netns::new();
    a.veth(
        &scanner,
        ("nvs", &["198.19.0.1/24"]),
        ("nvc", &["198.19.0.9/24", "198.19.0.10/24"]),
    );
    let broker = Broker::start_in(&a, "198.18.0.1");
    let created = TestCommand::new(tansu())
        .args([
            "topic",
            "create",
            "--broker",
            &format!("tcp://{}", broker.address()),
            "--partitions",
            "1",
            "netvantage.conns",
        ])
        .in_netns(&a)
        .timeout(Duration::from_secs(30))
        .run();
    assert_eq!(
        created.code,
        0,
        "topic create: {}\n{}",
        created.stderr,
        broker.log()
    );
    let _listeners = a.run_in(|| {
        PORTS
            .iter()
            .map(|p| listen(&format!("0.0.0.0:{p}")))
            .collect::<Vec<_>>()
    });
    let scratch = Scratch::new();

    // A allows nothing of C; B allows the second scanner.
    let mut in_a = shared_conns(&a, "site-a", &scratch.join("spool-a"), "203.0.113.0/24");
    in_a.wait_baseline();

    let _first = scan(&scanner, "198.19.0.9", "198.19.0.1");
    let _second = scan(&scanner, "198.19.0.10", "198.19.0.1");
    in_a.wait_events(&[
        "Blocked 198.19.0.9 for 600s".to_string(),
        "Blocked 198.19.0.10 for 600s".to_string(),
    ]);
    let mut a_set = a.nft_set("blocked_v4");
    a_set.sort();
    assert_eq!(a_set, vec!["198.19.0.10", "198.19.0.9"]);

    // B joins the fleet a few seconds later: it reads the topic from the start, and a ban
    // applied now must end when A's ends, not 600 s from now (the check below sees the gap).
    std::thread::sleep(LATE_START);
    let mut in_b = shared_conns(&b, "site-b", &scratch.join("spool-b"), "198.19.0.10");
    in_b.wait_baseline();

    // B applies A's first ban (its own rules let it), within seconds, and says where from.
    in_b.wait_for(SHARED_WITHIN, "the shared ban applied in B", |out, _| {
        out.iter()
            .any(|l| l.contains("Blocked 198.19.0.9 for ") && l.ends_with("(shared by site-a)"))
    });
    assert_eq!(b.nft_set("blocked_v4"), vec!["198.19.0.9"]);
    // The same expiry in both: B's timeout is the time left of A's ban, not a new 600 s.
    let (in_a_left, in_b_left) = (
        a.nft_expires("blocked_v4", "198.19.0.9")
            .expect("in A's set"),
        b.nft_expires("blocked_v4", "198.19.0.9")
            .expect("in B's set"),
    );
    assert!(
        in_a_left.abs_diff(in_b_left) <= 2,
        "expires in {in_a_left}s in A but {in_b_left}s in B"
    );
    // The second is refused by B's allow list: logged, never in B's table.
    in_b.wait_for(SHARED_WITHIN, "the allow-list refusal in B", |_, err| {
        err.iter().any(|l| {
            l.contains("not applying the shared ban of 198.19.0.10/32 from site-a: it is in --allow 198.19.0.10/32")
        })
    });
    assert_eq!(b.nft_set("blocked_v4"), vec!["198.19.0.9"]);
    // A does not apply its own bans a second time.
    assert!(
        !in_a.events().iter().any(|l| l.contains("(shared by")),
        "{:#?}",
        in_a.events()
    );

    assert_eq!(in_b.terminate(), 0);
    assert_eq!(in_a.terminate(), 0);
    assert!(
        !b.nft_tables().contains("netvantage"),
        "B's table removed on exit"
    );
    assert!(
        !a.nft_tables().contains("netvantage"),
        "A's table removed on exit"
    );
}

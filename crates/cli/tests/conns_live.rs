//! `netvantage conns` against a real kernel, inside network namespaces these tests create:
//! listeners and clients on several addresses, the exact lines within a short interval, and a
//! short-lived connection that is still reported because the kernel still lists it.

use netvantage_testkit::*;
use std::time::Duration;

const INTERVAL: Duration = Duration::from_millis(200);

fn new_connections_on_several_addresses(source: &str) {
    let ns = Netns::new();
    let listeners = ns.run_in(|| {
        vec![
            listen("127.0.0.1:8080"),
            listen("[::1]:8443"),
            listen("127.0.0.2:9090"),
        ]
    });
    let mut conns = ns.conns(&["--interval", "200ms", "--source", source]);
    conns.wait_baseline();

    let (held, short_lived) = ns.run_in(|| {
        let timeout = Duration::from_secs(2);
        let a = connect_from(addr("127.0.0.3:0"), addr("127.0.0.1:8080"), timeout).unwrap();
        let b = connect_from(addr("[::1]:0"), addr("[::1]:8443"), timeout).unwrap();
        // Opened and closed at once: only its TIME_WAIT / CLOSE_WAIT entries remain to be seen.
        let c = connect_from(addr("127.0.0.4:0"), addr("127.0.0.2:9090"), timeout).unwrap();
        let c_addr = c.local_addr().unwrap();
        drop(c);
        (vec![a, b], c_addr)
    });
    let a = held[0].local_addr().unwrap();
    let b = held[1].local_addr().unwrap();
    let expected = vec![
        format!("New connection: {a} -> 127.0.0.1:8080"),
        format!("New connection: {short_lived} -> 127.0.0.2:9090"),
        format!("New connection: {b} -> [::1]:8443"),
    ];
    conns.wait_events(&expected);
    // A few more polls: each connection is reported exactly once (one line, not one per end).
    let mut events = conns.settle(INTERVAL, 3);
    events.sort();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(events, sorted);
    assert_eq!(conns.terminate(), 0);
    drop(listeners);
}

#[test]
fn proc_source_reports_each_new_connection_once_including_short_lived_ones() {
    new_connections_on_several_addresses("proc");
}

#[test]
fn netlink_source_reports_the_same_lines_as_proc() {
    new_connections_on_several_addresses("netlink");
}

#[test]
fn existing_connections_are_the_silent_baseline_unless_include_existing() {
    let ns = Netns::new();
    let (_listener, _client, client_addr) = ns.run_in(|| {
        let l = listen("127.0.0.1:7000");
        let c = connect_from(
            addr("127.0.0.9:0"),
            addr("127.0.0.1:7000"),
            Duration::from_secs(2),
        )
        .unwrap();
        let local = c.local_addr().unwrap();
        (l, c, local)
    });
    let line = format!("New connection: {client_addr} -> 127.0.0.1:7000");

    let mut quiet = ns.conns(&["--interval", "100ms", "--count", "3"]);
    quiet.wait_baseline();
    assert_eq!(quiet.terminate(), 0);
    assert_eq!(quiet.events(), Vec::<String>::new());

    let mut loud = ns.conns(&["--interval", "100ms", "--include-existing"]);
    loud.wait_events(std::slice::from_ref(&line));
    assert_eq!(loud.settle(INTERVAL, 2), vec![line]);
    assert_eq!(loud.terminate(), 0);
}

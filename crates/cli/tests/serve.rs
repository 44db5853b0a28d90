//! `netvantage serve` over real stores (issue 13): both backends seeded with a known history
//! (a year of hourly roll-ups, a day of raw one-minute checks, outages at known times); the
//! availability of every window exact through the JSON API of the real process; the overview
//! in headless Chromium from a real store, screenshot saved; `/readyz` false once the store
//! goes away; a store that can't be read is an error at start (exit 3).

use netvantage_core::Reason;
use netvantage_store::seed::{KnownHistory, SeededSeries};
use netvantage_store::{AnyStore, Location, Store};
use netvantage_testkit::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// 2026-11-23T15:00:00Z: the end of the seeded history and the page's "now".
const NOW: i64 = 1_795_446_000_000;
const WINDOWS: [(&str, i64); 5] = [
    ("1h", HOUR),
    ("24h", DAY),
    ("7d", 7 * DAY),
    ("30d", 30 * DAY),
    ("365d", 365 * DAY),
];

fn series(target: &str, vantage: &str, domain: Option<&str>) -> SeededSeries {
    SeededSeries {
        target: target.into(),
        vantage: vantage.into(),
        domain: domain.map(str::to_string),
    }
}

/// Three series of two targets: a database seen from two vantage points (down from one of
/// them for the last 20 minutes: partly down) and a web shop, with outages at known times.
fn history() -> KnownHistory {
    let series = vec![
        series("db.test:5432", "fra1", None),
        series("db.test:5432", "iad1", None),
        series("https://shop.test/health", "fra1", Some("shop.test")),
    ];
    KnownHistory::new(NOW, 365, series)
        .outage(0, NOW - 20 * MINUTE, 20, Reason::Timeout)
        .outage(0, NOW - 9 * HOUR, 45, Reason::Refused)
        .outage(1, NOW - 3 * DAY, 180, Reason::Timeout)
        .outage(2, NOW - 2 * HOUR, 13, Reason::Status)
        .outage(2, NOW - 100 * DAY, 1440, Reason::Status)
        .outage(0, NOW - 300 * DAY + 7 * MINUTE, 333, Reason::Unreachable)
}

async fn seed(location: &Location) {
    let mut store = AnyStore::open_writer(location).await.expect("a writer");
    history().write_into(&mut store).await.expect("seeded");
}

/// `netvantage serve` on a free port of 127.0.0.1; returns the process and its address.
fn serve(args: &[&str], env: &[(&str, &str)]) -> (Running, SocketAddr) {
    let mut command = nv()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--as-of",
            &NOW.to_string(),
        ])
        .args(args);
    for (key, value) in env {
        command = command.env(key, value);
    }
    let mut process = command.spawn();
    process.wait_for(Duration::from_secs(30), "serve to listen", |out, _| {
        out.iter().any(|l| l.starts_with("listening http://"))
    });
    let line = process.stdout_lines()[0].clone();
    let addr = line
        .trim_start_matches("listening http://")
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("serve said {line:?}"));
    (process, addr)
}

/// The targets as the API lists them, by name.
fn targets(addr: SocketAddr) -> Vec<serde_json::Value> {
    let answer = http_get(addr, "/api/v1/targets?per_page=100", &[]);
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["items"].as_array().expect("items").clone()
}

/// Every window's availability of every target, through the API, equals the seeded
/// history's, summed over the target's vantage points.
fn assert_exact_availability(addr: SocketAddr) {
    let history = history();
    let listed = targets(addr);
    assert_eq!(listed.len(), 2, "{listed:?}");
    for target in ["db.test:5432", "https://shop.test/health"] {
        let item = listed
            .iter()
            .find(|t| t["name"] == target)
            .unwrap_or_else(|| panic!("{target} not listed: {listed:?}"));
        for (key, window) in WINDOWS {
            let (mut checks, mut answered) = (0, 0);
            for (i, s) in history.series.iter().enumerate() {
                if s.target == target {
                    let (c, a) = history.expected(i, NOW - window, NOW);
                    checks += c;
                    answered += a;
                }
            }
            let expected = answered as f64 / checks as f64;
            let got = item["availability"][key].as_f64().expect("a figure");
            // serde_json's parser may be off by one unit in the last place; one check more or
            // less in a year (two series) moves the figure by 1e-6.
            assert!(
                (got - expected).abs() < 1e-12,
                "{target} {key}: {got} is not {answered}/{checks}: {}",
                item["availability"]
            );
        }
    }
    let db = listed.iter().find(|t| t["name"] == "db.test:5432").unwrap();
    assert_eq!(db["verdict"], "partial", "down from fra1 only: {db}");
    let shop = listed
        .iter()
        .find(|t| t["name"] == "https://shop.test/health")
        .unwrap();
    assert_eq!(shop["verdict"], "ok", "{shop}");
    assert_eq!(shop["domain"], "shop.test");
    // The figures are what they must be, not just equal to a recomputation.
    let db_hour = db["availability"]["1h"].as_f64().unwrap();
    assert!(
        (db_hour - 100.0 / 120.0).abs() < 1e-12,
        "20 of fra1's 60 minutes down, iad1 up: {db_hour}"
    );
}

fn sqlite_store(dir: &Path) -> PathBuf {
    let path = dir.join("netvantage.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(seed(&Location::Sqlite(path.clone())));
    path
}

#[test]
fn serve_answers_exact_availability_per_window_from_a_seeded_sqlite_store() {
    let dir = Scratch::new();
    let db = sqlite_store(dir.path());
    let (mut process, addr) = serve(&["--sqlite", db.to_str().unwrap()], &[]);
    assert_exact_availability(addr);
    let ready = http_get(addr, "/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    // The target page and its history come from the tiers too.
    let id = targets(addr)[0]["id"].as_str().unwrap().to_string();
    let history = http_get(
        addr,
        &format!("/api/v1/targets/{id}/history?range=365d"),
        &[],
    );
    assert_eq!(history.status, 200, "{}", history.body);
    let points = history.json()["points"].as_array().unwrap().len();
    assert!((365..=367).contains(&points), "{points} daily points");
    // The store goes away: not ready any more, and it says why.
    std::fs::remove_file(&db).unwrap();
    let gone = http_get(addr, "/readyz", &[]);
    assert_eq!(gone.status, 503, "{}", gone.body);
    assert_eq!(process.terminate(Duration::from_secs(20)), 0);
}

#[test]
fn serve_answers_exact_availability_per_window_from_a_seeded_postgres_database() {
    let database = Database::new("nvserve");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(seed(&Location::Postgres(database.url())));
    let (mut process, addr) = serve(&["--postgres", &database.url()], &[]);
    assert_exact_availability(addr);
    assert_eq!(http_get(addr, "/readyz", &[]).status, 200);
    // The database goes away (connections ended, then dropped): not ready.
    drop(database);
    wait_for(Duration::from_secs(20), "/readyz to turn false", || {
        http_get(addr, "/readyz", &[]).status == 503
    });
    assert_eq!(process.terminate(Duration::from_secs(20)), 0);
}

/// `netvantage serve ARGS` that must stop at start with exit 3, saying `why`.
fn refused(args: &[&str], why: &str) {
    let run = nv()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .timeout(Duration::from_secs(30))
        .run();
    run.assert_code(3);
    assert!(run.stderr.contains(why), "{why:?} not in {}", run.stderr);
}

#[test]
fn serve_refuses_at_start_what_it_cannot_read() {
    let dir = Scratch::new();
    let missing = dir.join("missing.db");
    refused(&["--sqlite", missing.to_str().unwrap()], "no such file");
    let foreign = dir.join("foreign.db");
    std::fs::write(&foreign, b"not a database at all, just text\n").unwrap();
    refused(
        &["--sqlite", foreign.to_str().unwrap()],
        "not a netvantage store",
    );
    // Nothing listens on this port of loopback.
    let url = format!(
        "host=127.0.0.1 port={} user=postgres dbname=none connect_timeout=5",
        free_port()
    );
    refused(&["--postgres", &url], "postgres");
    refused(
        &["--postgres", "host=127.0.0.1 user=postgres password=secret"],
        "PGPASSWORD",
    );
}

/// The output folder of a test, kept under the target directory for a person to look at.
fn output_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("netvantage-serve")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_served_overview_of_a_real_store_renders_in_chromium() {
    let dir = output_dir("overview");
    let store_dir = Scratch::new();
    let db = sqlite_store(store_dir.path());
    let (mut process, addr) = serve(
        &["--sqlite", db.to_str().unwrap(), "--base-path", "/status"],
        &[],
    );
    let url = format!("http://{addr}/status/");
    let dom = dump_dom(&dir, &url, false);
    std::fs::write(dir.join("overview.html"), &dom).unwrap();
    assert!(
        dom.contains(r#"data-verdict="partial" data-count="1""#),
        "the db is partly down"
    );
    assert!(
        dom.contains(r#"data-verdict="ok" data-count="1""#),
        "the shop is ok"
    );
    let rows = dom.split(r#"<tr class="target""#).skip(1).count();
    assert!(rows >= 2, "{rows} target rows");
    assert!(
        dom.matches(r#"<rect class="d "#).count() >= 2 * 90,
        "90 daily bars a target"
    );
    // The shop's 24 h: 13 minutes down of 1440.
    let shop_day = netvantage_server::status::format::percent(Some(1427.0 / 1440.0));
    assert!(
        dom.contains(&format!(r#"data-window="24h">{shop_day}</td>"#)),
        "{shop_day} not in the overview"
    );
    // Under the base path, every link of the rendered page resolves.
    let found = links(&dom);
    assert!(found.len() > 5, "{found:?}");
    for link in found {
        assert!(link.starts_with("/status/"), "the overview links to {link}");
        let answer = http_get(addr, &link, &[]);
        assert_eq!(
            answer.status, 200,
            "the overview links to {link}: {}",
            answer.body
        );
    }
    screenshot(&dir, &url, true, "overview.png", "1280,1200");
    assert_eq!(process.terminate(Duration::from_secs(20)), 0);
}

#[test]
fn agent_listen_serves_the_page_from_the_agents_own_store() {
    let dir = Scratch::new();
    let listener = listen("127.0.0.1:0");
    let port = listener.local_addr().unwrap().port();
    let config = dir.join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "vantage: lab\ninterval: 200ms\ntimeout: 100ms\ntcp:\n  - name: up\n    port: {port}\n    hosts: [127.0.0.1]\n"
        ),
    )
    .unwrap();
    let page_port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{page_port}").parse().unwrap();
    let mut agent = nv()
        .args([
            "agent",
            "--config",
            config.to_str().unwrap(),
            "--run-for",
            "60s",
        ])
        .args(["--listen", &addr.to_string()])
        .current_dir(dir.path())
        .spawn();
    let target = format!("127.0.0.1:{port}");
    wait_for(
        Duration::from_secs(40),
        "the agent's page to list its target as ok",
        || {
            std::net::TcpStream::connect(addr).is_ok()
                && targets(addr)
                    .iter()
                    .any(|t| t["name"] == target.as_str() && t["verdict"] == "ok")
        },
    );
    let overview = http_get(addr, "/", &[]);
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains(&target), "{}", overview.body);
    assert_eq!(http_get(addr, "/readyz", &[]).status, 200);
    assert_eq!(agent.terminate(Duration::from_secs(60)), 0);
    drop(listener);
}

#[test]
fn serve_enforces_read_only_auth_from_the_environment_and_leaves_healthz_open() {
    let dir = Scratch::new();
    let db = sqlite_store(dir.path());
    let token = "0123456789abcdef-serve-test";
    let (mut process, addr) = serve(
        &[
            "--sqlite",
            db.to_str().unwrap(),
            "--auth-env",
            "NV_TEST_READERS",
        ],
        &[("NV_TEST_READERS", &format!("token {token}"))],
    );
    assert_eq!(http_get(addr, "/api/v1/targets", &[]).status, 401);
    assert_eq!(http_get(addr, "/", &[]).status, 401);
    let bearer = format!("Authorization: Bearer {token}");
    let answer = http_get(addr, "/api/v1/targets", &[&bearer]);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["total"], 2);
    assert_eq!(http_get(addr, "/healthz", &[]).status, 200);
    assert_eq!(process.terminate(Duration::from_secs(20)), 0);
}

#[test]
fn the_status_page_shows_the_findings_of_the_stored_last_hour() {
    // Issue 12 on the page: an agent in a namespace checks two /24s, one of which refuses
    // everything; `serve` over its SQLite store lists the subnet outage in /api/v1/findings
    // and on the overview, and blames nothing in the healthy /24.
    let ns = Netns::new();
    let _fleet = ns.fleet(&["--port", "80", "--refused", "127.22.1.0/24"]);
    let dir = Scratch::new();
    let hosts: Vec<String> = (1..=20)
        .flat_map(|i| [format!("127.22.1.{i}"), format!("127.22.2.{i}")])
        .collect();
    let config = dir.write(
        "agent.yaml",
        format!(
            "vantage: lab\ntcp:\n  - name: web\n    port: 80\n    hosts: [{}]\n    interval: 300ms\n    timeout: 150ms\nsinks:\n  sqlite: {{path: nv.db}}\n",
            hosts.join(", ")
        ),
    );
    nv().args([
        "agent",
        "--config",
        config.to_str().unwrap(),
        "--run-for",
        "2s",
    ])
    .current_dir(dir.path())
    .in_netns(&ns)
    .run()
    .assert_code(0);
    let db = dir.path().join("nv.db");
    let mut process = nv()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--sqlite",
            db.to_str().unwrap(),
        ])
        .spawn();
    process.wait_for(Duration::from_secs(30), "serve to listen", |out, _| {
        out.iter().any(|l| l.starts_with("listening http://"))
    });
    let line = process.stdout_lines()[0].clone();
    let addr: SocketAddr = line
        .trim_start_matches("listening http://")
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("serve said {line:?}"));
    let answer = http_get(addr, "/api/v1/findings", &[]);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let findings = answer.json()["findings"]
        .as_array()
        .expect("findings")
        .clone();
    let subnet = findings
        .iter()
        .find(|f| f["kind"] == "subnet_outage")
        .unwrap_or_else(|| panic!("no subnet outage in {findings:?}"));
    assert!(
        subnet["scope"]
            .as_str()
            .unwrap_or_default()
            .starts_with("127.22.1.0/"),
        "{subnet}"
    );
    assert!(
        !findings.iter().any(|f| f["scope"]
            .as_str()
            .is_some_and(|s| s.starts_with("127.22.2."))),
        "the healthy subnet is blamed for nothing: {findings:?}"
    );
    let overview = http_get(addr, "/", &[]);
    assert_eq!(overview.status, 200);
    assert!(
        overview.body.contains(r#"id="findings""#),
        "{}",
        overview.body
    );
    assert!(overview.body.contains("127.22.1.0/"), "{}", overview.body);
    assert_eq!(process.terminate(Duration::from_secs(30)), 0);
}

/// The connection log's records put in the store: two scans and a block within the page's
/// last 24 h (one host's name needing escaping), a scan two days old, and three new
/// connections.
fn conns_records() -> Vec<netvantage_core::ConnsRecord> {
    use netvantage_core::{ConnsEvent, ConnsRecord};
    let record =
        |host: &str, ts: i64, event| ConnsRecord::new(uuid::Uuid::now_v7(), host, ts, event);
    let scan = |host: &str, ts: i64, source: &str, ports: Vec<u16>, closed| {
        record(
            host,
            ts,
            ConnsEvent::Scan {
                source: source.parse().unwrap(),
                destinations: vec!["10.0.0.5".parse().unwrap()],
                ports,
                closed,
            },
        )
    };
    let connection = |ts: i64, destination: &str, direction: &str| {
        record(
            "edge-1",
            ts,
            ConnsEvent::Connection {
                source: "192.0.2.50:40000".parse().unwrap(),
                destination: destination.parse().unwrap(),
                direction: direction.into(),
            },
        )
    };
    vec![
        scan(
            "edge-1",
            NOW - 2 * HOUR,
            "198.51.100.7",
            vec![22, 80, 443, 8080],
            Some(3),
        ),
        scan(
            "<b>edge&2</b>",
            NOW - HOUR,
            "2001:db8:9::7",
            (1..=30).collect(),
            None,
        ),
        scan("edge-1", NOW - 2 * DAY, "198.51.100.8", vec![25], Some(1)),
        record(
            "edge-1",
            NOW - 2 * HOUR + 1_000,
            ConnsEvent::Block {
                target: "198.51.100.7/32".into(),
                until_unix_ms: NOW + 8 * HOUR,
                offenses: 2,
            },
        ),
        connection(NOW - 3 * HOUR, "10.0.0.5:22", "inbound"),
        connection(NOW - 3 * HOUR + 5, "10.0.0.5:22", "inbound"),
        connection(NOW - 30 * MINUTE, "203.0.113.9:443", "outbound"),
    ]
}

/// The overview and `/api/v1/scans|blocks` of `serve` over `location` (seeded with the known
/// history): no section before the connection log holds anything; then the newest scans and
/// blocks of the last 24 h, escaped, on the page and in the API, with time range, host and
/// pagination parameters, and 400 problem documents naming a bad parameter.
fn assert_the_connection_log_is_served(location: Location, args: &[&str]) {
    use netvantage_store::ConnsLog;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut writer = runtime.block_on(async {
        let mut store = AnyStore::open_writer(&location).await.expect("a writer");
        history().write_into(&mut store).await.expect("seeded");
        store
    });
    let (mut process, addr) = serve(args, &[]);
    let before = http_get(addr, "/", &[]);
    assert_eq!(before.status, 200);
    assert!(
        !before.body.contains(r#"id="conns""#),
        "no connection log yet"
    );
    let records = conns_records();
    let written = runtime
        .block_on(writer.insert_conns(&records))
        .expect("the connection log written");
    assert_eq!(written.inserted, 7);
    // Redelivered: stored and counted once.
    let again = runtime.block_on(writer.insert_conns(&records)).unwrap();
    assert_eq!(again.duplicates, 7);

    let page = http_get(addr, "/", &[]);
    assert_eq!(page.status, 200);
    let body = &page.body;
    assert!(body.contains("<h2>Recent scans and blocks</h2>"), "{body}");
    assert!(
        body.contains(r#"data-count-scans="2""#),
        "two in the last 24 h"
    );
    assert!(body.contains(r#"data-count-blocks="1""#));
    assert!(
        body.contains(r#"data-count-inbound="2""#),
        "from the hourly roll-ups"
    );
    assert!(body.contains(r#"data-count-outbound="1""#));
    let scans_table = &body[body.find(r#"<table id="scans">"#).expect("a scans table")..];
    let scans_table = &scans_table[..scans_table.find("</table>").unwrap()];
    assert_eq!(scans_table.matches(r#"<tr class="scan""#).count(), 2);
    assert!(
        scans_table.find("2001:db8:9::7").unwrap() < scans_table.find("198.51.100.7").unwrap(),
        "newest first"
    );
    assert!(scans_table.contains("22, 80, 443, 8080"));
    assert!(scans_table.contains("… 18 more"), "30 ports, 12 shown");
    assert!(
        !body.contains("198.51.100.8"),
        "two days old: not on the page"
    );
    assert!(body.contains("&lt;b&gt;edge&amp;2&lt;/b&gt;"), "escaped");
    assert!(!body.contains("<b>edge"), "never raw");
    assert!(body.contains(r#"<table id="blocks">"#) && body.contains("198.51.100.7/32"));

    let scans = http_get(addr, "/api/v1/scans", &[]);
    assert_eq!(scans.status, 200, "{}", scans.body);
    let json = scans.json();
    assert_eq!(json["total"], 2);
    assert_eq!(json["items"][0]["source"], "2001:db8:9::7");
    assert_eq!(json["items"][0]["host"], "<b>edge&2</b>");
    assert_eq!(json["items"][0]["closed_ports"], serde_json::Value::Null);
    assert_eq!(
        json["items"][1]["ports"],
        serde_json::json!([22, 80, 443, 8080])
    );
    assert_eq!(json["items"][1]["closed_ports"], 3);
    assert_eq!(json["items"][1]["at"], "2026-11-23T13:00:00Z");
    assert_eq!(json["items"][1]["id"], records[0].id.to_string());
    let week = http_get(
        addr,
        "/api/v1/scans?range=7d&host=edge-1&per_page=1&page=2",
        &[],
    );
    assert_eq!(week.status, 200, "{}", week.body);
    let week = week.json();
    assert_eq!(week["total"], 2);
    assert_eq!(week["page"], 2);
    assert_eq!(
        week["items"][0]["source"], "198.51.100.8",
        "the older of edge-1's two"
    );
    let blocks = http_get(addr, "/api/v1/blocks", &[]).json();
    assert_eq!(blocks["total"], 1);
    assert_eq!(blocks["items"][0]["target"], "198.51.100.7/32");
    assert_eq!(blocks["items"][0]["until"], "2026-11-23T23:00:00Z");
    assert_eq!(blocks["items"][0]["offenses"], 2);
    for (path, parameter) in [
        ("/api/v1/scans?range=yesterday", "range"),
        ("/api/v1/blocks?per_page=0", "per_page"),
        ("/api/v1/scans?host=", "host"),
        ("/api/v1/blocks?since=1h", "since"),
    ] {
        let refused = http_get(addr, path, &[]);
        assert_eq!(refused.status, 400, "{path}: {}", refused.body);
        assert_eq!(
            refused.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(refused.json()["parameter"], parameter, "{path}");
    }
    assert_eq!(process.terminate(Duration::from_secs(20)), 0);
}

#[test]
fn serve_lists_the_stored_scans_and_blocks_of_a_sqlite_store() {
    let dir = Scratch::new();
    let db = dir.join("netvantage.db");
    assert_the_connection_log_is_served(
        Location::Sqlite(db.clone()),
        &["--sqlite", db.to_str().unwrap()],
    );
}

#[test]
fn serve_lists_the_stored_scans_and_blocks_of_a_postgres_database() {
    let database = Database::new("nvserveconns");
    assert_the_connection_log_is_served(
        Location::Postgres(database.url()),
        &["--postgres", &database.url()],
    );
}

/// A rendered answer is kept (issue 13's page cache) only behind the readers' auth and per
/// base path and query; it carries a weak `ETag` that gets a bodiless 304; and it gives way
/// to a new one once the store's figures change (a new target seeded while serving).
#[test]
fn serve_keeps_a_rendered_page_behind_auth_until_the_store_changes() {
    let database = Database::new("nvcache");
    let location = Location::Postgres(database.url());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(seed(&location));
    let mut writer = runtime
        .block_on(AnyStore::open_writer(&location))
        .expect("a writer");
    let token = "0123456789abcdef-cache-test";
    let (mut process, addr) = serve(
        &[
            "--postgres",
            &database.url(),
            "--auth-env",
            "NV_TEST_READERS",
            "--base-path",
            "/status",
        ],
        &[("NV_TEST_READERS", &format!("token {token}"))],
    );
    let bearer = format!("Authorization: Bearer {token}");
    let listed = http_get(addr, "/status/api/v1/targets", &[&bearer]);
    assert_eq!(listed.status, 200, "{}", listed.body);
    let id = listed.json()["items"][0]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let page = format!("/status/targets/{id}");

    let first = http_get(addr, &page, &[&bearer]);
    assert_eq!(first.status, 200, "{}", first.body);
    let etag = first.header("etag").expect("an ETag").to_string();
    assert!(etag.starts_with("W/\""), "{etag}");
    assert!(
        first.body.contains("href=\"/status/"),
        "links under the base path"
    );
    let second = http_get(addr, &page, &[&bearer]);
    assert_eq!(second.status, 200);
    assert_eq!(second.header("etag"), Some(etag.as_str()));
    assert_eq!(second.body, first.body, "the same figures: the same page");
    let zipped = http_get(addr, &page, &[&bearer, "Accept-Encoding: gzip"]);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert_eq!(zipped.header("etag"), Some(etag.as_str()));
    assert_eq!(zipped.raw_body[..2], [0x1f, 0x8b], "gzip's magic");
    assert!(zipped.raw_body.len() * 4 < first.raw_body.len());

    let revalidated = http_get(addr, &page, &[&bearer, &format!("If-None-Match: {etag}")]);
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.raw_body.is_empty(), "{:?}", revalidated.body);
    assert_eq!(revalidated.header("etag"), Some(etag.as_str()));

    // Auth is checked before the cache: without it, neither the kept page nor its 304.
    for extra in [vec![], vec![format!("If-None-Match: {etag}")]] {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let refused = http_get(addr, &page, &extra);
        assert_eq!(refused.status, 401, "{}", refused.body);
        assert!(refused.header("etag").is_none());
        assert!(!refused.body.contains(&id), "{}", refused.body);
    }
    let wrong = http_get(addr, &page, &["Authorization: Bearer not-the-token"]);
    assert_eq!(wrong.status, 401);
    // The same page outside the base path is no page.
    assert_eq!(
        http_get(addr, &format!("/targets/{id}"), &[&bearer]).status,
        404
    );
    // Another query is another page (a week's chart, not a day's).
    let week = http_get(addr, &format!("{page}?range=7d"), &[&bearer]);
    assert_eq!(week.status, 200, "{}", week.body);
    assert_ne!(week.header("etag"), Some(etag.as_str()));

    let api = "/status/api/v1/targets?per_page=100";
    let before = http_get(addr, api, &[&bearer]);
    assert_eq!(before.json()["total"], 2);
    let api_etag = before.header("etag").expect("an ETag").to_string();
    assert_eq!(
        http_get(addr, api, &[&bearer]).header("etag"),
        Some(api_etag.as_str())
    );

    // A third target, written while serving: once the figures are read again (they stay
    // fresh for 5 s), the kept answer gives way to the new one.
    // Its records only (the seed's record ids go by series index: the fourth is new).
    let mut with_new = history().series;
    with_new.push(series("new.test:22", "fra1", None));
    let newer = KnownHistory::new(NOW, 2, with_new);
    runtime.block_on(async {
        writer.insert(&newer.raw_records(3)).await.expect("written");
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let after = loop {
        let answer = http_get(addr, api, &[&bearer]);
        assert_eq!(answer.status, 200, "{}", answer.body);
        if answer.json()["total"] == 3 || std::time::Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(after.json()["total"], 3, "{}", after.body);
    assert_ne!(after.header("etag"), Some(api_etag.as_str()));
    assert_eq!(process.terminate(Duration::from_secs(20)), 0);
}

//! The status page over real loopback sockets, served by the fixture binary over the demo
//! fleet: read-only auth (from a file and from an environment variable), `--base-path` with
//! every link resolving, problem+json errors, gzip, and `/metrics` that promtool accepts.

mod support;

use netvantage_testkit::links;
use std::collections::{BTreeSet, VecDeque};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use support::{Fixture, get, get_with, output_dir};

/// 2025-03-01T12:00:00Z.
const AT: &str = "1740830400000";

fn demo(extra: &[&str]) -> Fixture {
    let mut args = vec!["--status-demo", "120", "--now", AT];
    args.extend_from_slice(extra);
    Fixture::start(&args)
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

const TOKEN: &str = "s3cr3t-reader-token-0123";

/// Every path a reader may ask for, and `/healthz`.
const PATHS: [&str; 9] = [
    "/",
    "/targets/t00007",
    "/incidents",
    "/api/v1/overview",
    "/api/v1/targets",
    "/badge/t00007/status.svg",
    "/metrics",
    "/readyz",
    "/static/style.css",
];

async fn assert_auth_enforced(addr: std::net::SocketAddr) {
    assert_eq!(
        get(addr, "/healthz").await.status,
        200,
        "/healthz stays open"
    );
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let alice = basic("alice", "correct horse battery");
    for path in PATHS {
        let refused = get(addr, path).await;
        assert_eq!(refused.status, 401, "{path} without credentials");
        assert_eq!(
            refused.header("content-type"),
            Some("application/problem+json")
        );
        let challenges: Vec<&str> = refused
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(
            challenges.iter().any(|c| c.starts_with("Basic ")),
            "{challenges:?}"
        );
        assert_eq!(
            get_with(addr, path, &[&bearer]).await.status,
            200,
            "{path} with the token"
        );
        assert_eq!(
            get_with(addr, path, &[&alice]).await.status,
            200,
            "{path} as alice"
        );
        for wrong in [
            format!("Authorization: Bearer {TOKEN}x"),
            basic("alice", "wrong"),
            basic("mallory", "correct horse battery"),
        ] {
            assert_eq!(
                get_with(addr, path, &[&wrong]).await.status,
                401,
                "{path} {wrong}"
            );
        }
    }
}

fn credentials() -> String {
    let hash = bcrypt::hash("correct horse battery", 4).expect("bcrypt");
    format!("# readers of the status page\ntoken {TOKEN}\nalice:{hash}\n")
}

#[tokio::test]
async fn auth_from_a_file_guards_every_path_but_healthz() {
    let dir = output_dir("auth-file");
    let file = dir.join("auth.txt");
    std::fs::write(&file, credentials()).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let fixture = demo(&["--auth-file", file.to_str().unwrap()]);
    assert_auth_enforced(fixture.addr).await;
}

#[tokio::test]
async fn auth_from_an_environment_variable_guards_every_path_but_healthz() {
    let entries = credentials().replace('\n', ";");
    let fixture = Fixture::start_with_env(
        &[
            "--status-demo",
            "120",
            "--now",
            AT,
            "--auth-env",
            "NV_TEST_AUTH",
        ],
        &[("NV_TEST_AUTH", &entries)],
    );
    assert_auth_enforced(fixture.addr).await;
}

#[tokio::test]
async fn a_plain_password_in_the_auth_file_is_refused_at_start() {
    let dir = output_dir("auth-plain");
    let file = dir.join("auth.txt");
    std::fs::write(&file, "alice:hunter2\n").unwrap();
    let run = netvantage_testkit::TestCommand::new(env!("CARGO_BIN_EXE_nv-server-fixture"))
        .args(["--status-demo", "3", "--auth-file", file.to_str().unwrap()])
        .timeout(std::time::Duration::from_secs(10))
        .run();
    run.assert_code(3);
    let said = &run.stderr;
    assert!(said.contains("auth.txt:1"), "{said}");
    assert!(said.contains("bcrypt"), "{said}");
}

#[tokio::test]
async fn under_a_base_path_every_link_resolves() {
    let fixture = demo(&["--base-path", "/status"]);
    let addr = fixture.addr;
    assert_eq!(
        get(addr, "/").await.status,
        404,
        "nothing outside the base path"
    );
    assert_eq!(get(addr, "/healthz").await.status, 404);
    assert_eq!(get(addr, "/status/healthz").await.status, 200);
    // Every link from the overview, breadth first: each must answer 200. Pages are followed
    // further, except that of the many target pages only the first one's links are.
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from(["/status/".to_string()]);
    let mut followed_a_target_page = false;
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) {
            continue;
        }
        assert!(seen.len() <= 2000, "more than 2,000 distinct links");
        let answer = get(addr, &path).await;
        assert_eq!(
            answer.status, 200,
            "{path} (a link) answered {}",
            answer.status
        );
        let is_html = answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html"));
        let is_target_page = path.starts_with("/status/targets/");
        if !is_html || (is_target_page && followed_a_target_page) {
            continue;
        }
        followed_a_target_page |= is_target_page;
        for link in links(&answer.body) {
            assert!(
                link.starts_with("/status/"),
                "{path} links to {link}, outside the base path"
            );
            queue.push_back(link);
        }
    }
    let checked = seen.len();
    assert!(checked > 150, "only {checked} links followed");
    for must in [
        "/status/domains",
        "/status/flappy",
        "/status/incidents",
        "/status/static/style.css",
        "/status/static/app.js",
        "/status/api/v1/overview",
    ] {
        assert!(seen.contains(must), "{must} never linked");
    }
}

#[tokio::test]
async fn bad_parameters_get_a_400_problem_naming_the_parameter() {
    let fixture = demo(&[]);
    for (path, parameter) in [
        ("/api/v1/targets?per_page=0", "per_page"),
        ("/api/v1/targets/t00007/history?from=yesterday", "from"),
        ("/api/v1/incidents?range=1y", "range"),
    ] {
        let answer = get(fixture.addr, path).await;
        assert_eq!(answer.status, 400, "{path}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json")
        );
        let problem: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(problem["parameter"], parameter, "{}", answer.body);
    }
}

#[tokio::test]
async fn pages_are_gzipped_for_clients_that_take_it() {
    let fixture = demo(&[]);
    let plain = get(fixture.addr, "/").await;
    let zipped = get_with(fixture.addr, "/", &["Accept-Encoding: gzip, br"]).await;
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert_eq!(zipped.header("vary"), Some("accept-encoding"));
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(zipped.raw_body.as_slice())
        .read_to_string(&mut unzipped)
        .expect("gunzip");
    assert_eq!(unzipped, plain.body);
    assert!(
        zipped.raw_body.len() * 5 < plain.raw_body.len(),
        "{} bytes gzipped from {}",
        zipped.raw_body.len(),
        plain.raw_body.len()
    );
}

#[tokio::test]
async fn status_metrics_pass_promtool() {
    let dir = output_dir("status-metrics");
    let fixture = demo(&[]);
    let answer = get(fixture.addr, "/metrics").await;
    assert_eq!(answer.status, 200);
    for line in [
        "netvantage_status_targets{verdict=\"down\"} 3",
        "netvantage_status_targets{verdict=\"flappy\"} 5",
        "netvantage_status_source_up 1",
    ] {
        assert!(answer.body.lines().any(|l| l == line), "missing {line}");
    }
    let availability = answer
        .body
        .lines()
        .filter(|l| l.starts_with("netvantage_status_availability_ratio{"))
        .count();
    assert_eq!(availability, 120 * 5, "a gauge per target and window");
    support::assert_promtool_clean(&answer.body, &dir);
}

//! The status app's pages and API answers, rendered from a small in-memory source with known
//! figures (no sockets: the integration tests cover those).

use super::*;
use http_body_util::BodyExt;
use netvantage_core::clock::ManualClock;

/// 2025-03-01T12:00:00Z.
const AT: UnixMs = UnixMs(1_740_830_400_000);
const BASE: &str = "/status";

fn ago(ms: i64) -> UnixMs {
    UnixMs(AT.0 - ms)
}

/// Three targets: `alpha` ok with a 36-minute outage three days ago (30 d: 99.91 %), `beta`
/// down for the last two hours (24 h: 91.66 %), and `gamma` flappy with a name full of markup.
fn source() -> MemorySource {
    let year_ago = ago(400 * UnixMs::DAY);
    let alpha = MemoryTarget::new("alpha", "db.internal:5432", "db", CheckKind::Tcp, year_ago)
        .outage(
            ago(3 * UnixMs::DAY),
            ago(3 * UnixMs::DAY - 36 * UnixMs::MINUTE),
        )
        .settle(AT);
    let mut beta = MemoryTarget::new(
        "beta",
        "https://shop.example/health",
        "web",
        CheckKind::Http,
        year_ago,
    )
    .domain("shop.example")
    .outage(ago(2 * UnixMs::HOUR), UnixMs(AT.0 + 1))
    .verdict(Verdict::Down, Some("HTTP 503"))
    .settle(AT);
    beta.summary.since = Some(ago(2 * UnixMs::HOUR));
    beta.recent = vec![RawCheck {
        at: ago(UnixMs::MINUTE),
        vantage: "fra1".to_string(),
        address: Some("192.0.2.7:443".to_string()),
        outcome: Outcome::Down,
        reason: Some(Reason::Status),
        error: Some("HTTP 503 Service Unavailable".to_string()),
        latency_ms: Some(41.0),
        status_code: Some(503),
        phases: Some(Phases {
            dns_ms: Some(1.5),
            connect_ms: Some(10.0),
            tls_ms: Some(12.0),
            first_byte_ms: Some(40.0),
            total_ms: Some(41.0),
        }),
    }];
    let mut gamma = MemoryTarget::new(
        "gamma",
        "<b>cache</b>:6379",
        "web",
        CheckKind::Tcp,
        year_ago,
    )
    .verdict(Verdict::Flappy, Some("timeout"))
    .settle(AT);
    gamma.summary.state_changes_24h = 9;
    let mut source = MemorySource::new(vec![alpha, beta, gamma]);
    source.changes = vec![StateChange {
        at: ago(2 * UnixMs::HOUR),
        target_id: "beta".to_string(),
        target_name: "https://shop.example/health".to_string(),
        from: Verdict::Ok,
        to: Verdict::Down,
        reason: Some("HTTP 503".to_string()),
        vantage: None,
    }];
    source
}

fn app() -> StatusApp<MemorySource> {
    StatusApp::new(Arc::new(source()), Arc::new(ManualClock::new(AT.0)))
}

/// Answers `uri` (a path below the base, with its query) as the server would.
async fn get(app: &StatusApp<MemorySource>, uri: &str) -> (StatusCode, String, String) {
    let full = format!("{BASE}{uri}");
    let head = hyper::Request::builder()
        .uri(full.as_str())
        .body(())
        .expect("request")
        .into_parts()
        .0;
    let path = head
        .uri
        .path()
        .strip_prefix(BASE)
        .unwrap_or("/")
        .to_string();
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    let request = Request {
        head: &head,
        path: &path,
        base_path: BASE,
    };
    let Some(response) = app.handle(request).await else {
        // Not the app's path: the server answers 404.
        return (StatusCode::NOT_FOUND, String::new(), String::new());
    };
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn the_overview_states_the_worst_verdict_and_every_figure() {
    let (status, content_type, html) = get(&app(), "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(html.contains(r#"<section id="overall" class="state v-down" data-verdict="down">"#));
    assert!(html.contains("2 of 3 targets need attention: 1 down, 1 flappy"));
    assert!(html.contains(r#"data-verdict="down" data-count="1""#));
    // alpha: 36 minutes down in 30 days; beta: 2 hours down in 24.
    assert!(html.contains(r#"<td class="num a-fair" data-window="7d">99.64%</td>"#));
    assert!(html.contains(r#"<td class="num a-good" data-window="30d">99.91%</td>"#));
    assert!(html.contains(r#"<td class="num a-bad" data-window="24h">91.66%</td>"#));
    // Grouped by group, then name: db before web.
    let db = html.find(
        r#"<tr class="group"><th colspan="8" scope="rowgroup"><a href="/status/?group=db">db</a>"#,
    );
    let web = html.find(r#"<a href="/status/?group=web">web</a>"#);
    assert!(db.is_some() && web.is_some() && db < web);
    // Markup in a name is text, not markup.
    assert!(html.contains("&lt;b&gt;cache&lt;/b&gt;:6379"));
    assert!(!html.contains("<b>cache</b>"));
}

#[tokio::test]
async fn every_row_has_ninety_daily_bars_and_a_sparkline() {
    let (_, _, html) = get(&app(), "/?sort=worst").await;
    let table = &html[html.find(r#"<table id="targets">"#).expect("targets table")..];
    let table = &table[..table.find("</table>").expect("end of table")];
    assert_eq!(table.matches(r#"<tr class="target""#).count(), 3);
    assert_eq!(table.matches(r#"<rect class="d "#).count(), 3 * 90);
    assert_eq!(table.matches(r#"<svg class="spark""#).count(), 3);
    // alpha's outage day, with its figures in the tooltip.
    assert!(
        table.contains(
            r#"<rect class="d a-poor" x="344" width="3" height="20"><title>2025-02-26 97.50% · 1404/1440 up, 36 down</title></rect>"#
        )
    );
}

#[tokio::test]
async fn every_link_stays_under_the_base_path() {
    let (_, _, html) = get(&app(), "/").await;
    let links: Vec<&str> = html
        .split(['"'])
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0].ends_with("href=") || w[0].ends_with("src=") || w[0].ends_with("action="))
        .map(|w| w[1])
        .collect();
    assert!(links.len() > 10, "{links:?}");
    for link in links {
        assert!(link.starts_with("/status/"), "{link} escapes the base path");
    }
}

#[tokio::test]
async fn pages_of_the_target_list_link_to_each_other() {
    let (_, _, first) = get(&app(), "/?per_page=1").await;
    assert!(first.contains("Page 1 of 3 · 3 targets"));
    assert!(first.contains(r#"<a rel="next" href="/status/?per_page=1&amp;page=2">"#));
    assert!(!first.contains(r#"rel="prev""#));
    let (_, _, last) = get(&app(), "/?per_page=1&page=3").await;
    assert!(last.contains(r#"<a rel="prev" href="/status/?per_page=1&amp;page=2">"#));
    assert!(!last.contains(r#"rel="next""#));
    let (_, _, filtered) = get(&app(), "/?group=web&verdict=").await;
    assert_eq!(filtered.matches(r#"<tr class="target""#).count(), 2);
    assert!(
        !filtered.contains("Needs attention"),
        "no problems list on a filtered page"
    );
}

#[tokio::test]
async fn a_bad_parameter_is_a_400_page_naming_it() {
    let (status, _, html) = get(&app(), "/?page=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("Bad parameter: page"));
    assert!(html.contains("expected a whole number from 1 to 1000000, got &quot;abc&quot;"));
    let (status, _, html) = get(&app(), "/?colour=red").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("Bad parameter: colour"));
}

#[tokio::test]
async fn the_target_page_shows_history_from_the_tier_that_fits_the_range() {
    let app = app();
    let (status, _, html) = get(&app, "/targets/beta").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"data-tier="minute""#),
        "24 h comes from minutes"
    );
    assert!(html.contains(
        r#"<section id="target" class="state v-down" data-id="beta" data-verdict="down">"#
    ));
    assert!(
        html.contains("HTTP 503 Service Unavailable"),
        "the raw check's error"
    );
    assert!(
        html.contains("1.5 ms · 10 ms · 12 ms · 40 ms · 41 ms"),
        "HTTP phases"
    );
    assert!(html.contains(r#"<tr data-to="down">"#), "the state change");
    let (_, _, week) = get(&app, "/targets/beta?range=7d").await;
    assert!(week.contains(r#"data-tier="hour""#));
    assert!(week.contains("<strong>7d</strong>"));
    let (_, _, year) = get(&app, "/targets/beta?range=365d").await;
    assert!(year.contains(r#"data-tier="day""#));
    assert_eq!(
        year.matches(r#"<rect class="bucket "#).count(),
        366,
        "a bucket a day, the first one partial"
    );
    let (status, _, _) = get(&app, "/targets/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, html) = get(&app, "/targets/beta?range=1h&from=2025-03-01T00:00:00Z").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("Bad parameter: range"));
}

#[tokio::test]
async fn domains_flappy_and_incidents_pages() {
    let app = app();
    let (_, _, domains) = get(&app, "/domains").await;
    assert!(domains.contains(r#"<tr data-domain="shop.example">"#));
    assert!(domains.contains(r#"data-window="24h">91.66%</td>"#));
    let (_, _, flappy) = get(&app, "/flappy").await;
    assert!(flappy.contains(r#"data-id="gamma" data-verdict="flappy""#));
    assert!(flappy.contains(r#"<td class="num">9</td>"#));
    let (_, _, incidents) = get(&app, "/incidents?range=24h").await;
    assert!(
        incidents.contains(r#"<a href="/status/targets/beta">https://shop.example/health</a>"#)
    );
    let (_, _, none) = get(
        &app,
        "/incidents?from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z",
    )
    .await;
    assert!(none.contains("No state change in this range."));
}

#[tokio::test]
async fn badges_show_status_and_availability() {
    let app = app();
    let (status, content_type, svg) = get(&app, "/badge/alpha/availability/30d.svg").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "image/svg+xml; charset=utf-8");
    assert!(svg.contains("availability 30d: 99.91%"), "{svg}");
    let (_, _, svg) = get(&app, "/badge/beta/status.svg").await;
    assert!(svg.contains("status: down"));
    let (status, _, svg) = get(&app, "/badge/nobody/status.svg").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(svg.contains("unknown target"));
    let (status, _, _) = get(&app, "/badge/alpha/availability/2d.svg").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_api_gives_the_same_figures_as_json() {
    let app = app();
    let (status, content_type, body) = get(&app, "/api/v1/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    let overview = json(&body);
    assert_eq!(overview["overall"], "down");
    assert_eq!(overview["counts"]["down"], 1);
    assert_eq!(overview["generated_at"], "2025-03-01T12:00:00Z");

    let targets = json(
        &get(&app, "/api/v1/targets?verdict=down,flappy&sort=worst")
            .await
            .2,
    );
    assert_eq!(targets["total"], 2);
    assert_eq!(targets["items"][0]["id"], "beta");
    assert_eq!(targets["items"][0]["availability"]["24h"], 1320.0 / 1440.0);
    assert!(targets["items"][0].get("visuals").is_none());
    let with_visuals = json(&get(&app, "/api/v1/targets?visuals=true&per_page=1").await.2);
    assert_eq!(
        with_visuals["items"][0]["visuals"]["days"]
            .as_array()
            .map(Vec::len),
        Some(90)
    );

    let history = json(&get(&app, "/api/v1/targets/beta/history?range=7d").await.2);
    assert_eq!(history["tier"], "hour");
    assert_eq!(history["points"].as_array().map(Vec::len), Some(168));

    let checks = json(&get(&app, "/api/v1/targets/beta/checks?limit=5").await.2);
    assert_eq!(checks["checks"][0]["status_code"], 503);
    assert_eq!(checks["checks"][0]["phases"]["tls_ms"], 12.0);

    let incidents = json(&get(&app, "/api/v1/incidents?target=beta").await.2);
    assert_eq!(incidents["items"][0]["to"], "down");
    let domains = json(&get(&app, "/api/v1/domains").await.2);
    assert_eq!(domains["domains"][0]["domain"], "shop.example");
    let flappy = json(&get(&app, "/api/v1/flappy").await.2);
    assert_eq!(flappy["items"][0]["id"], "gamma");
    let (_, content_type, yaml) = get(&app, "/api/v1/openapi.yaml").await;
    assert_eq!(content_type, "application/yaml");
    assert!(yaml.starts_with("openapi: 3."));
}

#[tokio::test]
async fn api_errors_are_problem_documents_naming_the_parameter() {
    let app = app();
    for (uri, parameter) in [
        ("/api/v1/targets?page=0", "page"),
        ("/api/v1/targets?per_page=9999", "per_page"),
        ("/api/v1/targets?verdict=sad", "verdict"),
        ("/api/v1/targets?kind=udp", "kind"),
        ("/api/v1/targets?sort=random", "sort"),
        ("/api/v1/targets?visuals=yes", "visuals"),
        ("/api/v1/targets?group=", "group"),
        ("/api/v1/targets?pgae=2", "pgae"),
        ("/api/v1/targets/beta/history?range=forever", "range"),
        (
            "/api/v1/targets/beta/history?from=2025-03-02T00:00:00Z&to=2025-03-01T00:00:00Z",
            "from",
        ),
        ("/api/v1/targets/beta/history?range=30d&tier=minute", "tier"),
        ("/api/v1/targets/beta/checks?limit=101", "limit"),
        ("/api/v1/incidents?to=tomorrow", "to"),
    ] {
        let (status, content_type, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(content_type, "application/problem+json", "{uri}");
        let problem = json(&body);
        assert_eq!(problem["parameter"], parameter, "{uri}: {body}");
        assert_eq!(problem["status"], 400);
        assert_eq!(problem["title"], "Bad Request");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with(&format!("{parameter}: "))),
            "{body}"
        );
    }
    let (status, content_type, body) = get(&app, "/api/v1/targets/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type, "application/problem+json");
    assert!(body.contains(r#"no target with id \"nobody\""#), "{body}");
    let (status, _, _) = get(&app, "/api/v1/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_count_targets_by_verdict_and_give_availability_per_window() {
    let source = Arc::new(source());
    let metrics = StatusMetrics {
        source: source.clone(),
        clock: Arc::new(ManualClock::new(AT.0)),
    };
    let registry = metrics.collect().await;
    let text = crate::metrics::render(&[&registry], crate::metrics::Exposition::Text);
    for line in [
        r#"netvantage_status_targets{verdict="down"} 1"#,
        r#"netvantage_status_targets{verdict="ok"} 1"#,
        r#"netvantage_status_targets{verdict="unknown"} 0"#,
        r#"netvantage_status_availability_ratio{target="db.internal:5432",group="db",window="1h"} 1.0"#,
        "netvantage_status_source_up 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    assert!(text.contains(r#"window="30d"} 0.99916"#), "{text}");
    source.set_unready(Some("gone"));
    assert_eq!(
        StatusReadiness(source.clone()).check().await,
        Err("gone".to_string())
    );
}

/// The source with a connection log: 25 scans an hour apart (one host's name full of markup),
/// a block, and a day of connection counts.
fn source_with_conns() -> MemorySource {
    let mut source = source();
    source.scans = (0..25)
        .map(|k| ScanEvent {
            id: format!("s{k:02}"),
            at: ago(k * UnixMs::HOUR + UnixMs::MINUTE),
            host: if k == 0 {
                "<i>edge</i>".to_string()
            } else {
                "edge-1".to_string()
            },
            source: format!("198.51.100.{k}"),
            destinations: vec!["203.0.113.1".to_string()],
            ports: (1..=(k as u16 + 3)).collect(),
            closed_ports: (k % 2 == 0).then_some(2),
        })
        .collect();
    source.blocks = vec![BlockEvent {
        id: "b0".to_string(),
        at: ago(UnixMs::MINUTE),
        host: "edge-1".to_string(),
        target: "198.51.100.0/32".to_string(),
        until: UnixMs(AT.0 + UnixMs::HOUR),
        offenses: 3,
    }];
    source.connections = vec![(
        ago(UnixMs::HOUR),
        ConnectionCounts {
            inbound: 7,
            outbound: 2,
        },
    )];
    source
}

#[tokio::test]
async fn the_overview_lists_the_newest_scans_and_blocks_only_when_there_are_any() {
    let (_, _, without) = get(&app(), "/").await;
    assert!(!without.contains(r#"id="conns""#), "no connection log");
    let app = StatusApp::new(
        Arc::new(source_with_conns()),
        Arc::new(ManualClock::new(AT.0)),
    );
    let (status, _, html) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Recent scans and blocks"), "{html}");
    // The last 24 h hold 24 of the 25 scans; 20 are listed, newest first.
    assert!(html.contains(r#"data-count-scans="24">24 scans"#), "{html}");
    assert!(html.contains(r#"data-count-inbound="7">7 new connections inbound"#));
    let rows: Vec<&str> = html
        .split(r#"<tr class="scan" data-id=""#)
        .skip(1)
        .collect();
    assert_eq!(rows.len(), CONNS_SHOWN as usize);
    assert!(rows[0].starts_with("s00") && rows[19].starts_with("s19"));
    assert!(html.contains("The newest 20 of 24 scans"));
    assert!(html.contains(r#"href="/status/api/v1/scans""#));
    assert!(html.contains("&lt;i&gt;edge&lt;/i&gt;") && !html.contains("<i>edge"));
    assert!(html.contains("198.51.100.0/32"));
    // A filtered list leaves it out.
    let (_, _, filtered) = get(&app, "/?verdict=down").await;
    assert!(!filtered.contains(r#"id="conns""#));
}

#[tokio::test]
async fn scans_and_blocks_are_listed_newest_first_in_a_range_by_host_and_page() {
    let app = StatusApp::new(
        Arc::new(source_with_conns()),
        Arc::new(ManualClock::new(AT.0)),
    );
    let (status, content_type, body) = get(&app, "/api/v1/scans").await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, "application/json")
    );
    let scans = json(&body);
    assert_eq!(scans["total"], 24, "the last 24 h by default");
    assert_eq!(scans["items"][0]["id"], "s00");
    assert_eq!(scans["items"][0]["closed_ports"], 2);
    assert_eq!(scans["items"][1]["closed_ports"], serde_json::Value::Null);
    let (_, _, body) = get(
        &app,
        "/api/v1/scans?range=2d&host=edge-1&per_page=10&page=3",
    )
    .await;
    let page = json(&body);
    assert_eq!(page["total"], 24, "s01 … s24");
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    assert_eq!(page["items"][3]["id"], "s24");
    let (_, _, body) = get(&app, "/api/v1/blocks").await;
    let blocks = json(&body);
    assert_eq!(blocks["items"][0]["until"], "2025-03-01T13:00:00Z");
    assert_eq!(blocks["items"][0]["offenses"], 3);
    for (uri, parameter) in [
        ("/api/v1/scans?range=soon", "range"),
        ("/api/v1/blocks?page=0", "page"),
        ("/api/v1/scans?host=", "host"),
        ("/api/v1/blocks?from=2025-03-02T00:00:00Z", "from"),
        ("/api/v1/scans?target=x", "target"),
    ] {
        let (status, content_type, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(json(&body)["parameter"], parameter, "{uri}");
    }
}

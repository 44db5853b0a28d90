//! The status page in a real browser: Debian's headless Chromium loads pages served on
//! loopback by the fixture binary; the tests read the DOM it rendered (`--dump-dom`) and save
//! PNG screenshots under the test's output folder, with JavaScript on and off, and at a base
//! path. See /work/shared/notes/web-and-alerting.md for the flags and the gotchas.

mod support;

use netvantage_testkit::links;
use netvantage_testkit::{dump_dom, screenshot};
use support::{Fixture, get, output_dir};

/// 2025-03-01T12:00:00Z.
const AT: &str = "1740830400000";

/// The text between `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in the DOM"));
    let rest = &text[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

/// What the demo fleet of 120 targets must show, whichever way the page was rendered.
fn assert_overview(dom: &str) {
    let overall = between(dom, r#"<section id="overall""#, "</section>");
    assert!(overall.contains(r#"data-verdict="down""#), "{overall}");
    for (verdict, count) in [
        ("ok", 106),
        ("degraded", 4),
        ("flappy", 5),
        ("partial", 2),
        ("down", 3),
    ] {
        assert!(
            overall.contains(&format!(r#"data-verdict="{verdict}" data-count="{count}""#)),
            "{verdict}: {overall}"
        );
    }
    let table = between(dom, r#"<table id="targets">"#, "</table>");
    let rows: Vec<&str> = table.split(r#"<tr class="target""#).skip(1).collect();
    assert_eq!(rows.len(), 50, "the first page holds 50 targets");
    for row in &rows {
        assert_eq!(
            row.matches(r#"<rect class="d "#).count(),
            90,
            "90 daily bars a row"
        );
        assert_eq!(row.matches(r#"<svg class="spark""#).count(), 1);
    }
    // Target 7 is down for the last two hours: 22 of 24 hours up.
    let problems = between(dom, r#"<table id="problems">"#, "</table>");
    let down = between(problems, r#"data-id="t00007""#, "</tr>");
    assert!(down.contains(r#"data-verdict="down""#), "{down}");
    assert!(down.contains(r#"data-window="24h">91.66%</td>"#), "{down}");
    assert!(dom.contains("Page 1 of 3 · 120 targets"));
}

#[test]
fn the_overview_renders_verdicts_figures_and_bars_with_javascript_on_and_off() {
    let dir = output_dir("browser-overview");
    let fixture = Fixture::start(&["--status-demo", "120", "--now", AT]);
    let url = format!("http://{}/", fixture.addr);

    let with_js = dump_dom(&dir, &url, true);
    assert!(
        with_js.contains(r#"data-js="on""#),
        "app.js did not run with JavaScript on"
    );
    assert_overview(&with_js);
    std::fs::write(dir.join("overview-js.html"), &with_js).unwrap();
    screenshot(&dir, &url, true, "overview.png", "1280,1600");
    screenshot(&dir, &url, true, "overview-phone.png", "390,1600");

    let without_js = dump_dom(&dir, &url, false);
    assert!(
        !without_js.contains(r#"data-js="on""#),
        "scripts ran although JavaScript was off"
    );
    assert_overview(&without_js);
    // Without the script, times stay as the server wrote them.
    assert!(without_js.contains("2025-03-01 12:00 UTC"));
    std::fs::write(dir.join("overview-nojs.html"), &without_js).unwrap();
    screenshot(&dir, &url, false, "overview-nojs.png", "1280,1600");
}

#[test]
fn the_target_page_renders_history_vantage_points_and_checks() {
    let dir = output_dir("browser-target");
    let fixture = Fixture::start(&["--status-demo", "120", "--now", AT]);
    // Target 21 is down from one vantage point of three.
    let url = format!("http://{}/targets/t00021?range=7d", fixture.addr);
    let dom = dump_dom(&dir, &url, false);
    let head = between(&dom, r#"<section id="target""#, "</section>");
    assert!(head.contains(r#"data-verdict="partial""#), "{head}");
    let vantage = between(&dom, r#"<table id="vantage-points">"#, "</table>");
    assert_eq!(vantage.matches("<tr data-vantage=").count(), 3);
    assert!(vantage.contains(r#"<tr data-vantage="sin1" data-verdict="down">"#));
    let history = between(&dom, r#"<section id="history">"#, "</section>");
    assert!(history.contains(r#"data-tier="hour""#));
    assert_eq!(
        history.matches(r#"<rect class="bucket "#).count(),
        168,
        "7 days of hours"
    );
    assert!(dom.contains(r#"<li data-kind="path_problem">"#));
    assert_eq!(
        between(&dom, r#"<table id="checks">"#, "</table>")
            .matches("<tr data-outcome=")
            .count(),
        10
    );
    screenshot(&dir, &url, true, "target.png", "1280,1800");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_base_path_every_link_in_the_rendered_pages_resolves() {
    let dir = output_dir("browser-base-path");
    let fixture = Fixture::start(&[
        "--status-demo",
        "120",
        "--now",
        AT,
        "--base-path",
        "/status",
    ]);
    let addr = fixture.addr;
    let mut checked = 0;
    for page in [
        "/status/",
        "/status/targets/t00007",
        "/status/incidents",
        "/status/domains",
    ] {
        let url = format!("http://{addr}{page}");
        let dom = tokio::task::block_in_place(|| dump_dom(&dir, &url, true));
        let found = links(&dom);
        assert!(found.len() > 5, "{page}: {found:?}");
        for link in found {
            assert!(link.starts_with("/status/"), "{page} links to {link}");
            let answer = get(addr, &link).await;
            assert_eq!(
                answer.status, 200,
                "{page} links to {link}: {}",
                answer.status
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} links checked");
    tokio::task::block_in_place(|| {
        screenshot(
            &dir,
            &format!("http://{addr}/status/"),
            true,
            "base-path.png",
            "1280,900",
        )
    });
}

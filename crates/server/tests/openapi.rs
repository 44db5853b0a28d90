//! `docs/openapi.yaml` is a valid OpenAPI 3 document (openapi-spec-validator) and the API
//! answers as it says (schemathesis, a schema-driven tester, with a bounded number of
//! examples), both from PyPI.

mod support;

use netvantage_testkit::TestCommand;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{Fixture, get, output_dir, python_tool};

fn openapi_document() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.yaml")
}

fn tool(name: &str) -> PathBuf {
    python_tool(&[name]).unwrap_or_else(|| {
        panic!(
            "{name} is not installed. Install the Python test tools with:\n  \
             python3 -m venv ~/.local/nv-venv && \
             ~/.local/nv-venv/bin/pip install schemathesis openapi-spec-validator\n\
             (the tests look on PATH, then in ~/.local/nv-venv/bin)"
        )
    })
}

#[test]
fn the_openapi_document_is_valid() {
    let run = TestCommand::new(tool("openapi-spec-validator"))
        .arg(openapi_document())
        .timeout(Duration::from_secs(120))
        .run();
    run.assert_success();
    assert!(run.stdout.contains(": OK"), "{}", run.stdout);
}

#[tokio::test]
async fn the_served_document_is_the_one_in_the_repository() {
    let fixture = Fixture::start(&["--status-demo", "10"]);
    let served = get(fixture.addr, "/api/v1/openapi.yaml").await;
    assert_eq!(served.status, 200);
    assert_eq!(
        served.body,
        std::fs::read_to_string(openapi_document()).unwrap()
    );
}

#[test]
fn every_endpoint_answers_as_the_document_says() {
    let dir = output_dir("schemathesis");
    let fixture = Fixture::start(&["--status-demo", "60", "--now", "1740830400000"]);
    let run = TestCommand::new(tool("schemathesis"))
        .current_dir(&dir)
        .arg("run")
        .arg(openapi_document())
        .args([
            "--url",
            &format!("http://{}/api/v1", fixture.addr),
            // Every check but `positive_data_acceptance`: some rules span parameters (`range`
            // or `from`/`to`, `from` before `to`, at most 3,660 days, at most 1,500 buckets) and
            // OpenAPI 3.0 cannot state them, so a request the schema allows may rightly get a
            // 400; the tests above check those 400s.
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "25",
            "--seed",
            "20250301",
            "--workers",
            "2",
            "--no-color",
            "--generation-database",
            "none",
            "--report",
            "junit",
            "--report-dir",
        ])
        .arg(dir.join("report"))
        .timeout(Duration::from_secs(480))
        .run();
    std::fs::write(dir.join("schemathesis.txt"), &run.stdout).unwrap();
    let tail: Vec<&str> = run.stdout.lines().rev().take(60).collect();
    assert_eq!(
        run.code,
        0,
        "schemathesis found problems; the last lines:\n{}\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        run.stderr
    );
    assert!(run.stdout.contains("No issues found"), "{}", run.stdout);
}

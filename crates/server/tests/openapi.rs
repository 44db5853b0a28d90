//! `docs/openapi.yaml` is a valid OpenAPI 3 document (openapi-spec-validator) and the API
//! answers as it says (schemathesis, a schema-driven tester, with a bounded number of
//! examples), both from PyPI.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{Fixture, find_tool, get, output_dir, run_bounded};

fn openapi_document() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.yaml")
}

fn python_tool(name: &str) -> PathBuf {
    find_tool(&[name]).unwrap_or_else(|| {
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
    let output = run_bounded(
        Command::new(python_tool("openapi-spec-validator")).arg(openapi_document()),
        Duration::from_secs(120),
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.contains(": OK"),
        "openapi-spec-validator: {:?}\n{said}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_served_document_is_the_one_in_the_repository() {
    let dir = output_dir("openapi-served");
    let fixture = Fixture::start(&dir, &["--status-demo", "10"]);
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
    let fixture = Fixture::start(&dir, &["--status-demo", "60", "--now", "1740830400000"]);
    let output = run_bounded(
        Command::new(python_tool("schemathesis"))
            .current_dir(&dir)
            .args(["run"])
            .arg(openapi_document())
            .args([
                "--url",
                &format!("http://{}/api/v1", fixture.addr),
                // Every check but `positive_data_acceptance`: some rules span parameters
                // (`range` or `from`/`to`, `from` before `to`, at most 3,660 days, at most
                // 1,500 buckets) and OpenAPI 3.0 cannot state them, so a request the schema
                // allows may rightly get a 400; the tests above check those 400s.
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
            .arg(dir.join("report")),
        Duration::from_secs(480),
    );
    let said = String::from_utf8_lossy(&output.stdout);
    std::fs::write(dir.join("schemathesis.txt"), said.as_bytes()).unwrap();
    let tail: Vec<&str> = said.lines().rev().take(60).collect();
    assert!(
        output.status.success(),
        "schemathesis found problems ({:?}); the last lines:\n{}\n{}",
        output.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("No issues found"), "{said}");
}

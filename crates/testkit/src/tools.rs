//! System tools the tests drive (ip, nft, promtool, psql, prlimit …).

use std::process::{Command, Stdio};

/// Fails (never skips) when a system tool a test drives is missing, naming the apt package that
/// provides it.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{tool}` is required by this test: apt-get install {package} (tests run as root)"
    );
}

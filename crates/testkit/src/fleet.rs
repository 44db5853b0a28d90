//! `nv-testfleet`, the simulated fleet (up, refused, blackholed, unreachable and flapping
//! hosts, a DNS server), run inside a namespace the test created.

use std::path::PathBuf;
use std::time::Duration;

use crate::command::{Running, TestCommand, binary};
use crate::netns::Netns;

/// How long the fleet may take to bind everything it was asked to simulate.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The fleet simulator, a binary of the workspace's `netvantage-testfleet` package, built next
/// to ours by `cargo build --workspace` / `cargo nextest run --workspace`.
pub fn testfleet() -> PathBuf {
    binary("nv-testfleet", "netvantage-testfleet")
}

/// A running fleet, stopped on drop.
pub struct Fleet {
    _process: Running,
}

impl Netns {
    /// Starts `nv-testfleet ARGS` in the namespace and waits for it to say it is ready.
    pub fn fleet(&self, args: &[&str]) -> Fleet {
        let mut process = TestCommand::new(testfleet())
            .args(args)
            .in_netns(self)
            .spawn();
        process.wait_for(READY_WITHIN, "nv-testfleet to say `ready`", |out, _| {
            !out.is_empty()
        });
        assert_eq!(
            process.stdout_lines()[0].trim(),
            "ready",
            "nv-testfleet did not start (args {args:?}); stderr:\n{}",
            process.stderr_text()
        );
        Fleet { _process: process }
    }
}

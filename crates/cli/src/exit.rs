//! Exit statuses, following the Nagios plugin convention so netvantage drops into existing
//! monitoring: 0 OK, 1 WARNING (flappy / degraded), 2 CRITICAL (down), 3 UNKNOWN (usage or input
//! error). Failures of our own making that are not about the input use 4.

use netvantage_core::ExitStatus;

pub const USAGE: i32 = ExitStatus::Usage.code();
pub const INTERNAL: i32 = ExitStatus::Internal.code();

/// An error caused by what the user gave us (arguments, input lines, config): exit 3.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand: `return Err(usage(format!(...)))`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// Prints an error that ended the run and returns its exit status: 3 for the user's own
/// mistakes, whether said here ([`UsageError`]) or by the store (a missing directory, a file
/// that isn't a store, a refused role, a missing database or privilege), 4 for the rest.
pub fn report(err: &anyhow::Error) -> i32 {
    eprintln!("netvantage: {err:#}");
    let store_usage = err.chain().any(|cause| {
        cause
            .downcast_ref::<netvantage_store::StoreError>()
            .is_some_and(netvantage_store::StoreError::is_usage)
            || cause
                .downcast_ref::<netvantage_pipeline::ingest::IngestError>()
                .is_some_and(netvantage_pipeline::ingest::IngestError::is_usage)
    });
    if err.downcast_ref::<UsageError>().is_some() || store_usage {
        USAGE
    } else {
        INTERNAL
    }
}

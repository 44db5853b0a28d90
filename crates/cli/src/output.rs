//! Writing results to stdout the way Unix tools do: a reader that goes away (`| head`) ends
//! the run quietly; any other write failure (a closed or full stdout) is an error, never a
//! silent exit 0.

use netvantage_runtime::{Shutdown, StopReason};
use std::io;

/// What became of a write of results.
#[derive(Debug)]
pub enum Written {
    Ok,
    /// The reader left (EPIPE): the run stops quietly.
    ReaderGone,
}

/// Maps a write's result: EPIPE stops the run (quietly), other errors are returned.
pub fn check(result: io::Result<()>, shutdown: &Shutdown) -> anyhow::Result<Written> {
    match result {
        Ok(()) => Ok(Written::Ok),
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
            shutdown.stop(StopReason::OutputClosed);
            Ok(Written::ReaderGone)
        }
        Err(err) => Err(anyhow::anyhow!("cannot write results to stdout: {err}")),
    }
}

/// True when a write failed only because the reader of stdout left.
pub fn reader_gone(err: &anyhow::Error) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

//! The stdout sink: one JSON record per line (NDJSON), for pipes into `jq`, vector or a log
//! shipper. Best effort: a reader that goes away (EPIPE) ends this sink, quietly, and no other.

use crate::sink::{Envelope, Guarantee, Settle, Settlement, Sink, SinkError, SinkReport};
use std::io::{self, Write};
use std::sync::Arc;

#[derive(Default)]
pub struct StdoutSink {
    written: u64,
}

impl StdoutSink {
    pub fn new() -> StdoutSink {
        StdoutSink::default()
    }
}

/// The message for a stdout whose reader left: a sink failure, but not the agent's fault.
pub const READER_GONE: &str = "stdout: the reader went away";

impl Sink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn guarantee(&self) -> Guarantee {
        Guarantee::BestEffort
    }

    fn send(&mut self, batch: &[Envelope], settle: &Arc<dyn Settle>) -> Result<(), SinkError> {
        let mut out = io::stdout().lock();
        let written = batch
            .iter()
            .try_for_each(|e| out.write_all(&e.json).and_then(|()| out.write_all(b"\n")))
            .and_then(|()| out.flush());
        match written {
            Ok(()) => {
                for envelope in batch {
                    settle.settle(envelope, Settlement::Delivered);
                }
                self.written += batch.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(SinkError::fatal(READER_GONE)),
            Err(e) => Err(SinkError::fatal(format!("cannot write to stdout: {e}"))),
        }
    }

    fn close(self: Box<Self>, _grace: std::time::Duration) -> SinkReport {
        SinkReport {
            name: "stdout",
            delivered: self.written,
            new: self.written,
            ..SinkReport::default()
        }
    }
}

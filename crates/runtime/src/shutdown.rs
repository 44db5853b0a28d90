//! One shutdown, as mini-redis hands one `Shutdown` to every task: a cheap clone that says
//! "stop starting new work" ([`Shutdown::stop`]) and, later and only if asked, "stop waiting for
//! the work in flight" ([`Shutdown::force`]).
//!
//! How a command knows everything is done: engines return once they stop scheduling, and each
//! check in flight holds a sender of its results channel, so the channel closes when the last
//! one finishes; sinks are closed after that channel closes; servers end when their accept loop
//! sees the stop. Nobody polls a flag in a loop.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Why the run is stopping (the first reason given wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT or SIGTERM.
    Signal(&'static str),
    /// `--run-for` (or `-r`) elapsed.
    RunFor,
    /// The reader of stdout went away (a closed pipe): nothing left to report to.
    OutputClosed,
    /// The work ran out (a finite number of rounds).
    Finished,
    /// Something failed and the run cannot go on; the text says what.
    Failed(String),
}

#[derive(Debug, Default)]
struct Inner {
    stop: CancellationToken,
    force: CancellationToken,
    reason: Mutex<Option<StopReason>>,
}

#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// A shutdown of its own that also stops when this one does (one engine of several, which
    /// a config reload stops alone).
    pub fn child(&self) -> Shutdown {
        Shutdown {
            inner: Arc::new(Inner {
                stop: self.inner.stop.child_token(),
                force: self.inner.force.child_token(),
                reason: Mutex::new(None),
            }),
        }
    }

    /// Stops starting new work. The first reason is kept; later calls only repeat the stop.
    pub fn stop(&self, reason: StopReason) {
        {
            let mut slot = self.inner.reason.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                tracing::info!(?reason, "stopping");
                *slot = Some(reason);
            }
        }
        self.inner.stop.cancel();
    }

    /// Stops waiting for work in flight too (a second Ctrl-C). Implies [`Shutdown::stop`].
    pub fn force(&self) {
        self.stop(StopReason::Signal("second signal"));
        self.inner.force.cancel();
    }

    pub fn is_stopping(&self) -> bool {
        self.inner.stop.is_cancelled()
    }

    pub fn is_forced(&self) -> bool {
        self.inner.force.is_cancelled()
    }

    /// Resolves once [`Shutdown::stop`] has been called.
    pub async fn stopped(&self) {
        self.inner.stop.cancelled().await
    }

    /// Resolves once [`Shutdown::force`] has been called.
    pub async fn forced(&self) {
        self.inner.force.cancelled().await
    }

    /// The stop as a cancellation token, for libraries that take one (servers, hyper).
    pub fn token(&self) -> CancellationToken {
        self.inner.stop.clone()
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.inner
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops after `duration` (`--run-for`), unless something stopped the run before.
    pub fn stop_after(&self, duration: Duration) {
        let shutdown = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(duration) => shutdown.stop(StopReason::RunFor),
                _ = shutdown.stopped() => {}
            }
        });
    }

    /// Installs SIGINT and SIGTERM handlers now (so a signal that arrives early is not lost):
    /// the first one stops, a second one forces.
    pub fn stop_on_signals(&self) -> std::io::Result<()> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let shutdown = self.clone();
        tokio::spawn(async move {
            let mut seen = 0u32;
            loop {
                let name = tokio::select! {
                    Some(()) = interrupt.recv() => "SIGINT",
                    Some(()) = terminate.recv() => "SIGTERM",
                    else => return,
                };
                seen += 1;
                if seen == 1 {
                    shutdown.stop(StopReason::Signal(name));
                } else {
                    tracing::warn!("{name} again: not waiting for checks in flight");
                    shutdown.force();
                    return;
                }
            }
        });
        Ok(())
    }
}

/// SIGHUP, as a stream of reload requests.
pub struct Reloads {
    hangup: Signal,
}

impl Reloads {
    /// Installs the SIGHUP handler now.
    pub fn install() -> std::io::Result<Reloads> {
        Ok(Reloads {
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next SIGHUP; `None` if the handler went away.
    pub async fn next(&mut self) -> Option<()> {
        self.hangup.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_wins_and_clones_see_the_stop() {
        let shutdown = Shutdown::new();
        let clone = shutdown.clone();
        assert!(!clone.is_stopping());
        shutdown.stop(StopReason::RunFor);
        shutdown.stop(StopReason::Signal("SIGTERM"));
        clone.stopped().await;
        assert_eq!(clone.reason(), Some(StopReason::RunFor));
        assert!(!clone.is_forced());
        clone.force();
        shutdown.forced().await;
    }

    #[tokio::test]
    async fn a_child_stops_with_its_parent_or_alone() {
        let parent = Shutdown::new();
        let alone = parent.child();
        alone.stop(StopReason::Finished);
        assert!(alone.is_stopping());
        assert!(!parent.is_stopping(), "a child's stop is its own");
        let child = parent.child();
        parent.stop(StopReason::RunFor);
        child.stopped().await;
    }

    #[tokio::test(start_paused = true)]
    async fn stop_after_stops_once_the_time_is_up() {
        let shutdown = Shutdown::new();
        shutdown.stop_after(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(4_900)).await;
        assert!(!shutdown.is_stopping());
        tokio::time::sleep(Duration::from_millis(200)).await;
        tokio::task::yield_now().await;
        assert_eq!(shutdown.reason(), Some(StopReason::RunFor));
    }

    #[tokio::test]
    async fn sigterm_stops_and_a_second_signal_forces() {
        let shutdown = Shutdown::new();
        shutdown.stop_on_signals().unwrap();
        // SAFETY: raising a signal at ourselves; the handler above is installed.
        unsafe { libc::raise(libc::SIGTERM) };
        tokio::time::timeout(Duration::from_secs(5), shutdown.stopped())
            .await
            .expect("SIGTERM stops");
        assert_eq!(shutdown.reason(), Some(StopReason::Signal("SIGTERM")));
        unsafe { libc::raise(libc::SIGINT) };
        tokio::time::timeout(Duration::from_secs(5), shutdown.forced())
            .await
            .expect("a second signal forces");
    }
}

//! One TCP connect check: open, wait for the handshake (or its failure), close at once.
//!
//! The close is an ordinary FIN: the target sees a connection accepted and closed with no data,
//! exactly what `nmap -sT` or a load balancer's TCP health check does.

#[cfg(target_os = "linux")]
use crate::connect_reactor::ConnectReactorHandle;
use netvantage_core::Reason;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;

/// What one connect saw: how long it took, and why it failed if it did.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectOutcome {
    pub latency: Duration,
    pub failure: Option<(Reason, String)>,
}

/// Local shortages are ours, not the target's: they are retried a few times before being
/// recorded, so a busy prober does not report healthy hosts as failing.
const LOCAL_RETRIES: u32 = 5;
const LOCAL_BACKOFF: Duration = Duration::from_millis(20);

/// Connects under a shared socket budget (one permit per open socket).
#[derive(Clone)]
pub struct TcpProber {
    sockets: Arc<Semaphore>,
    timeout: Duration,
    /// Made on the first check, inside the runtime that runs the checks, and bound to that
    /// runtime (its driver task runs there): a prober serves one runtime. `None` when it could
    /// not be made: checks then go through tokio's own sockets.
    reactor: Arc<OnceLock<Option<Reactor>>>,
}

#[cfg(target_os = "linux")]
type Reactor = ConnectReactorHandle;
#[cfg(not(target_os = "linux"))]
type Reactor = ();

impl TcpProber {
    pub fn new(socket_budget: usize, timeout: Duration) -> Self {
        TcpProber {
            sockets: Arc::new(Semaphore::new(socket_budget)),
            timeout,
            reactor: Arc::new(OnceLock::new()),
        }
    }

    /// How long a connect may take before it is a timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn reactor(&self) -> Option<&Reactor> {
        self.reactor
            .get_or_init(|| {
                #[cfg(target_os = "linux")]
                match ConnectReactorHandle::start() {
                    Ok(reactor) => Some(reactor),
                    Err(err) => {
                        tracing::warn!("no connect reactor ({err}); using tokio's sockets");
                        None
                    }
                }
                #[cfg(not(target_os = "linux"))]
                None
            })
            .as_ref()
    }

    pub async fn check(&self, addr: SocketAddr) -> ConnectOutcome {
        let _socket_permit = self
            .sockets
            .acquire()
            .await
            .expect("socket semaphore is never closed");
        let mut attempt = 0;
        loop {
            let outcome = connect_once(addr, self.timeout, self.reactor()).await;
            match outcome {
                Err(err) if is_local_shortage(&err) && attempt < LOCAL_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(LOCAL_BACKOFF * attempt).await;
                }
                Err(err) => {
                    return ConnectOutcome {
                        latency: Duration::ZERO,
                        failure: Some((Reason::Other, format!("local error: {err}"))),
                    };
                }
                Ok(outcome) => return outcome,
            }
        }
    }
}

/// `Err` only for errors on our side before the target was involved.
async fn connect_once(
    addr: SocketAddr,
    timeout: Duration,
    reactor: Option<&Reactor>,
) -> io::Result<ConnectOutcome> {
    let start = Instant::now();
    let result = match reactor {
        #[cfg(target_os = "linux")]
        Some(reactor) => {
            let connecting = reactor.connect(addr)?;
            tokio::time::timeout(timeout, connecting).await
        }
        _ => {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            tokio::time::timeout(timeout, async move { socket.connect(addr).await.map(drop) }).await
        }
    };
    let latency = start.elapsed();
    let failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(err)) if is_local_shortage(&err) => return Err(err),
        Ok(Err(err)) => Some((classify(&err), err.to_string())),
        Err(_) => Some((Reason::Timeout, format!("no answer within {timeout:?}"))),
    };
    Ok(ConnectOutcome { latency, failure })
}

fn classify(err: &io::Error) -> Reason {
    match err.raw_os_error() {
        Some(libc::ECONNREFUSED) | Some(libc::ECONNRESET) => Reason::Refused,
        Some(libc::ETIMEDOUT) => Reason::Timeout,
        Some(libc::EHOSTUNREACH)
        | Some(libc::ENETUNREACH)
        | Some(libc::EHOSTDOWN)
        | Some(libc::ENETDOWN) => Reason::Unreachable,
        _ => Reason::Other,
    }
}

fn is_local_shortage(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE)
            | Some(libc::ENFILE)
            | Some(libc::EADDRNOTAVAIL)
            | Some(libc::ENOBUFS)
            | Some(libc::ENOMEM)
            | Some(libc::ENOSPC)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listening_port_is_up_and_closed_port_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let prober = TcpProber::new(16, Duration::from_secs(2));
        let up = prober.check(addr).await;
        assert_eq!(up.failure, None);
        drop(listener);
        let refused = prober.check(addr).await;
        assert_eq!(refused.failure.map(|f| f.0), Some(Reason::Refused));
    }

    #[tokio::test]
    async fn without_the_connect_reactor_tokio_sockets_answer_the_same() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let prober = TcpProber::new(16, Duration::from_secs(2));
        assert!(prober.reactor.set(None).is_ok(), "no check has run yet");
        assert_eq!(prober.check(addr).await.failure, None);
        drop(listener);
        let refused = prober.check(addr).await;
        assert_eq!(refused.failure.map(|f| f.0), Some(Reason::Refused));
    }

    #[test]
    fn errors_map_to_reasons() {
        let e = |code| io::Error::from_raw_os_error(code);
        assert_eq!(classify(&e(libc::ECONNREFUSED)), Reason::Refused);
        assert_eq!(classify(&e(libc::EHOSTUNREACH)), Reason::Unreachable);
        assert_eq!(classify(&e(libc::ENETUNREACH)), Reason::Unreachable);
        assert_eq!(classify(&e(libc::ETIMEDOUT)), Reason::Timeout);
        assert_eq!(classify(&e(libc::EPROTO)), Reason::Other);
        assert!(is_local_shortage(&e(libc::EMFILE)));
        assert!(!is_local_shortage(&e(libc::ECONNREFUSED)));
    }
}

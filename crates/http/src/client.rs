//! One HTTP(S) check with per-phase timings (DNS, connect, TLS, first byte, total), the way
//! blackbox_exporter reports them. This is the I/O half: hyper's connection-level API is used
//! directly (not a pooled client) so that each phase can be timed and a fresh connection is
//! opened per check unless keep-alive is asked for. Names resolve through the engine's one
//! [`Resolver`] (the same hickory resolver and `--resolve` pins as TCP), timed as the DNS phase.

use crate::cert;
use crate::classify::{Classified, Rules, classify_response};
use crate::config::{Endpoint, Scheme};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use netvantage_core::clock::unix_ms_now;
use netvantage_core::target::Host;
use netvantage_core::{CheckResult, HttpDetails, HttpObservation, Phases, Reason};
use netvantage_engine::dns::Resolver;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{
    self, RootCertStore, pki_types::CertificateDer, pki_types::ServerName,
    pki_types::pem::PemObject,
};

/// Bodies are read up to this size for `body_regex`; the rest is not waited for.
pub const MAX_BODY_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("CA file {path} holds no certificate")]
    CaFileEmpty { path: PathBuf },
    #[error("CA file {path}: {source}")]
    CaCert {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Extra trusted CAs (PEM), on top of the bundled Mozilla roots.
    pub ca_file: Option<PathBuf>,
    pub keep_alive: bool,
    /// Sent unless the endpoint sets its own `user-agent`.
    pub user_agent: String,
}

/// A kept-alive connection to one endpoint, reused by its next check (`--keep-alive`).
#[derive(Default)]
pub struct ConnSlot(Mutex<Option<SendRequest<Full<Bytes>>>>);

pub struct Checker {
    tls: TlsConnector,
    resolver: Arc<Resolver>,
    keep_alive: bool,
    user_agent: HeaderValue,
}

fn load_roots(ca_file: Option<&Path>) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<_, _>>())
            .map_err(|source| ClientError::CaFile {
                path: path.to_path_buf(),
                source,
            })?;
        if certs.is_empty() {
            return Err(ClientError::CaFileEmpty {
                path: path.to_path_buf(),
            });
        }
        for cert in certs {
            roots.add(cert).map_err(|source| ClientError::CaCert {
                path: path.to_path_buf(),
                source,
            })?;
        }
    }
    Ok(roots)
}

impl Checker {
    pub fn new(options: ClientOptions, resolver: Arc<Resolver>) -> Result<Self, ClientError> {
        let roots = load_roots(options.ca_file.as_deref())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        // A fresh connection per check should cost what a first-time client pays: a full
        // handshake, not a resumed session.
        if !options.keep_alive {
            tls.resumption = rustls::client::Resumption::disabled();
        }
        let user_agent = HeaderValue::from_str(&options.user_agent)
            .unwrap_or_else(|_| HeaderValue::from_static("netvantage"));
        Ok(Checker {
            tls: TlsConnector::from(Arc::new(tls)),
            resolver,
            keep_alive: options.keep_alive,
            user_agent,
        })
    }

    /// Checks `endpoint` once. Never fails: every problem becomes a DOWN result with a reason.
    /// `deadline` bounds the whole check, from name lookup to the last body byte.
    pub async fn check(
        &self,
        endpoint: &Endpoint,
        rules: &Rules,
        slot: &ConnSlot,
        deadline: tokio::time::Instant,
    ) -> CheckResult {
        let ts_unix_ms = unix_ms_now();
        let started = Instant::now();
        let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
        let mut progress = Progress::default();
        let attempt =
            tokio::time::timeout_at(deadline, self.attempt(endpoint, rules, slot, &mut progress))
                .await;
        let total = started.elapsed();
        let classified = match attempt {
            Ok(Ok(classified)) => classified,
            Ok(Err((reason, error))) => Classified::down(reason, error),
            Err(_) => Classified::down(
                Reason::Timeout,
                format!("no answer within {} ({})", fmt_ms(budget), progress.stage),
            ),
        };
        let mut phases = progress.phases;
        phases.total_ms = Some(ms(total));
        CheckResult::http(
            endpoint.url.clone(),
            ts_unix_ms,
            total,
            HttpObservation {
                outcome: Some(classified.outcome),
                reason: classified.reason,
                error: classified.error,
                address: progress.address,
                status: progress.status,
                phases: Some(phases),
                body_matched: progress.body_matched,
            },
            HttpDetails {
                tls_cert_not_after_unix_ms: progress.cert_not_after,
                ..details(endpoint)
            },
        )
    }

    async fn attempt(
        &self,
        ep: &Endpoint,
        rules: &Rules,
        slot: &ConnSlot,
        progress: &mut Progress,
    ) -> Result<Classified, (Reason, String)> {
        let started = Instant::now();
        let mut sender = match self.reusable(slot).await {
            Some(sender) => sender,
            None => self.connect(ep, progress).await?,
        };
        progress.stage = "waiting for the response";
        let request = self.request(ep);
        let sent = Instant::now();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| (Reason::Other, describe_hyper(&e)))?;
        progress.phases.first_byte_ms = Some(ms(sent.elapsed()));
        let status = response.status().as_u16();
        progress.status = Some(status);
        progress.stage = "reading the body";
        let mut body = response.into_body();
        let mut kept = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| (Reason::Other, describe_hyper(&e)))?;
            if let Some(data) = frame.data_ref()
                && ep.body_regex.is_some()
                && kept.len() < MAX_BODY_BYTES
            {
                let room = MAX_BODY_BYTES - kept.len();
                kept.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
        let latency = started.elapsed();
        let body_matched = ep
            .body_regex
            .as_ref()
            .map(|re| re.is_match(&String::from_utf8_lossy(&kept)));
        progress.body_matched = body_matched;
        if self.keep_alive {
            *slot.0.lock().await = Some(sender);
        }
        Ok(classify_response(rules, status, body_matched, latency))
    }

    async fn reusable(&self, slot: &ConnSlot) -> Option<SendRequest<Full<Bytes>>> {
        if !self.keep_alive {
            return None;
        }
        let mut sender = slot.0.lock().await.take()?;
        // A kept connection the server has since closed is not an error: open a new one.
        match sender.ready().await {
            Ok(()) => Some(sender),
            Err(_) => None,
        }
    }

    async fn connect(
        &self,
        ep: &Endpoint,
        progress: &mut Progress,
    ) -> Result<SendRequest<Full<Bytes>>, (Reason, String)> {
        progress.stage = "resolving the name";
        let host = Host::parse(&ep.host).map_err(|e| (Reason::Dns, format!("{}: {e}", ep.host)))?;
        let t = Instant::now();
        let resolved = self.resolver.resolve(&host, ep.port).await;
        if self.resolver.asks_dns(&host, ep.port) {
            progress.phases.dns_ms = Some(ms(t.elapsed()));
        }
        let addrs: Vec<SocketAddr> = resolved
            .map_err(|e| (Reason::Dns, format!("cannot resolve {e}")))?
            .into_iter()
            .map(|ip| SocketAddr::new(ip, ep.port))
            .collect();
        progress.stage = "connecting";
        let t = Instant::now();
        let mut last_error = None;
        let mut stream = None;
        for addr in addrs {
            progress.address = Some(addr);
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => {
                    last_error = Some((connect_reason(&e), format!("connect to {addr}: {e}")))
                }
            }
        }
        let stream = match stream {
            Some(s) => s,
            None => {
                return Err(
                    last_error.unwrap_or((Reason::Other, "no address to connect to".into()))
                );
            }
        };
        progress.phases.connect_ms = Some(ms(t.elapsed()));
        let _ = stream.set_nodelay(true);
        match ep.scheme {
            Scheme::Http => handshake(TokioIo::new(stream)).await,
            Scheme::Https => {
                progress.stage = "TLS handshake";
                let name = ServerName::try_from(ep.host.clone()).map_err(|e| {
                    (
                        Reason::Tls,
                        format!("{:?} cannot be a TLS server name: {e}", ep.host),
                    )
                })?;
                let t = Instant::now();
                let tls = self
                    .tls
                    .connect(name, stream)
                    .await
                    .map_err(|e| (Reason::Tls, describe_tls(&e)))?;
                progress.phases.tls_ms = Some(ms(t.elapsed()));
                progress.cert_not_after = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(|leaf| cert::not_after_unix_ms(leaf));
                handshake(TokioIo::new(tls)).await
            }
        }
    }

    fn request(&self, ep: &Endpoint) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(
            ep.body.clone().map(Bytes::from).unwrap_or_default(),
        ));
        *request.method_mut() = ep.method.clone();
        // Origin-form target: the path and query are validated when the config is read.
        *request.uri_mut() = ep
            .path_and_query
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("/"));
        let headers = request.headers_mut();
        if let Ok(host) = HeaderValue::from_str(&ep.host_header()) {
            headers.insert(HOST, host);
        }
        for (name, value) in &ep.headers {
            headers.append(name.clone(), value.clone());
        }
        if !headers.contains_key(USER_AGENT) {
            headers.insert(USER_AGENT, self.user_agent.clone());
        }
        if ep.body.is_some() && !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        request
    }
}

async fn handshake<T>(io: TokioIo<T>) -> Result<SendRequest<Full<Bytes>>, (Reason, String)>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = http1::handshake(io)
        .await
        .map_err(|e| (Reason::Other, describe_hyper(&e)))?;
    // The connection task ends when the sender is dropped (fresh connection per check) or
    // when the server closes it.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

#[derive(Default)]
struct Progress {
    phases: Phases,
    address: Option<SocketAddr>,
    status: Option<u16>,
    body_matched: Option<bool>,
    cert_not_after: Option<i64>,
    /// Where a timeout struck, for the error text.
    stage: &'static str,
}

fn connect_reason(e: &io::Error) -> Reason {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Reason::Refused,
        io::ErrorKind::TimedOut => Reason::Timeout,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => Reason::Unreachable,
        _ => Reason::Other,
    }
}

/// hyper's top-level message is terse ("connection closed before message completed" is
/// fine, but "error trying to connect" is not); add its cause.
/// A failed handshake in words a person can act on: rustls's own (`InvalidCertificate(Other(
/// OtherError(CaUsedAsEndEntity)))`) say what the code saw, not what to do.
fn describe_tls(e: &io::Error) -> String {
    let Some(error) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return format!("TLS handshake: {e}");
    };
    let rustls::Error::InvalidCertificate(cert) = error else {
        return format!("TLS handshake: {error}");
    };
    describe_certificate_error(cert)
}

fn describe_certificate_error(cert: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    let words = match cert {
        // webpki's words for a certificate that is its own CA: the usual self-signed one.
        E::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            "self-signed certificate; pass --ca-file with it (or its CA) to trust it".to_string()
        }
        E::UnknownIssuer => "certificate signed by an unknown authority (or self-signed); pass --ca-file with the CA that signed it".to_string(),
        E::Expired | E::ExpiredContext { .. } => "certificate expired".to_string(),
        E::NotValidYet | E::NotValidYetContext { .. } => "certificate not valid yet (check this host's clock)".to_string(),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "certificate not valid for this host name".to_string()
        }
        E::Revoked => "certificate revoked".to_string(),
        other => format!("invalid certificate: {other}"),
    };
    format!("TLS handshake: {words}")
}

fn describe_hyper(e: &hyper::Error) -> String {
    use std::error::Error;
    match e.source() {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

/// What every result of `endpoint` says about it, whatever happened.
pub fn details(endpoint: &Endpoint) -> HttpDetails {
    HttpDetails {
        name: endpoint.name.clone(),
        method: endpoint.method.to_string(),
        domain: endpoint.domain.clone(),
        tls_cert_not_after_unix_ms: None,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn fmt_ms(d: Duration) -> String {
    netvantage_core::duration::format_duration(Duration::from_millis(d.as_millis() as u64))
}

//! netvantage's one HTTP server: `/metrics`, `/healthz` and `/readyz` for every long-running
//! command (`conns`, `ingest`, `agent`), and the status page with its JSON API.
//!
//! It exists so that every listener gets the same protections: accept errors back off and are
//! logged rate-limited, open connections are capped, slow headers and slow requests time out,
//! and shutdown is graceful on one cancellation token ([`server`] says how each works).
//!
//! What it must not do: listen beyond loopback unless the caller gives such an address, accept
//! writes (only `GET` and `HEAD` are served, bodies are never read), or know where its figures
//! come from — registries, readiness checks and applications are handed in.
//!
//! Replacing the old bare `/metrics` loop is one call:
//!
//! ```no_run
//! # async fn demo(registry: std::sync::Arc<prometheus_client::registry::Registry>) {
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let addr = "127.0.0.1:9100".parse().unwrap();
//! let server = netvantage_server::serve_metrics(addr, registry, shutdown.clone())
//!     .await
//!     .expect("listen");
//! println!("serving /metrics on {}", server.local_addr());
//! # }
//! ```

pub mod accept;
pub mod auth;
pub mod handler;
pub mod metrics;
pub mod server;
mod stall;
pub mod status;

pub use auth::{AuthError, ReadOnlyAuth};
pub use handler::{
    Authorize, Handler, MetricsCollector, ReadinessCheck, Request, Response, problem, respond, text,
};
pub use metrics::{Exposition, openmetrics_to_text, render_openmetrics};
pub use server::{
    DEFAULT_LISTEN, Limits, RunningServer, ServeSummary, ServerBuilder, ServerError, serve_metrics,
};

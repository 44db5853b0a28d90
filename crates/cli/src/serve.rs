//! Where the CLI serves `/metrics` from. One server for every command (`conns`, `ingest`, the
//! agent) so a fix to it reaches all of them.

use netvantage_runtime::Shutdown;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;

/// Binds `addr` and serves `registry` on `/metrics` until `shutdown`. Returns the bound address.
pub async fn metrics(
    addr: SocketAddr,
    registry: Arc<Registry>,
    _shutdown: &Shutdown,
) -> std::io::Result<SocketAddr> {
    netvantage_conns::metrics::serve_registry(addr, registry).await
}

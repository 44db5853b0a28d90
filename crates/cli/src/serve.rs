//! Where the CLI serves `/metrics` from. One server for every command (`conns`, `ingest`, the
//! agent) so a fix to it reaches all of them.

use netvantage_runtime::Shutdown;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;

/// Binds `addr` and serves `registry` on `/metrics` (with `/healthz` and `/readyz`) until
/// `shutdown`, through the hardened server of `netvantage-server`. Returns the bound address.
pub async fn metrics(
    addr: SocketAddr,
    registry: Arc<Registry>,
    shutdown: &Shutdown,
) -> Result<SocketAddr, netvantage_server::ServerError> {
    let server = netvantage_server::serve_metrics(addr, registry, shutdown.token()).await?;
    Ok(server.local_addr())
}

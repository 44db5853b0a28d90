//! `netvantage serve`: the status page, its JSON API, badges and /metrics over the stored
//! results (SQLite by default, or PostgreSQL), read-only. Wiring only: the page is
//! `netvantage_server::status`, the answers come from [`crate::store_status::StoreStatus`].

use crate::exit;
use crate::store_status::StoreStatus;
use netvantage_core::clock::{Clock, ManualClock, SystemClock};
use netvantage_runtime::Shutdown;
use netvantage_server::{ReadOnlyAuth, RunningServer, ServerBuilder};
use netvantage_store::{Location, Retention};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

const EXAMPLE: &str = "\
Example:
  netvantage serve                                  # netvantage.db on http://127.0.0.1:8080/
  netvantage serve --sqlite /var/lib/netvantage/netvantage.db --base-path /status
  PGPASSWORD=… netvantage serve --postgres 'host=127.0.0.1 user=nv dbname=netvantage'
  netvantage serve --auth-file /etc/netvantage/readers   # bearer tokens / bcrypt users
  netvantage serve --as-of 2026-11-23T12:00:00Z         # the page as it was then

Pages: / (overview), /domains, /flappy, /incidents, /targets/{id}; badges under /badge/;
JSON under /api/v1/ (OpenAPI document at /api/v1/openapi.yaml); /metrics, /healthz, /readyz.
The store is opened read-only: a missing file, a file that isn't a netvantage store or an
unreachable database is an error at start (exit 3); /readyz turns false if it goes away later.
A PostgreSQL password comes from PGPASSWORD, or from the password file PGPASSFILE or
~/.pgpass (libpq's format), never from the command line. See docs/serve.md.";

/// Where the page is served and who may read it: shared by `serve` and `agent --listen`.
#[derive(clap::Args, Debug, Clone)]
pub struct PageArgs {
    /// Prefix every path with this (`/status`): for a reverse proxy's sub-path.
    #[arg(long, value_name = "PATH", default_value = "")]
    pub base_path: String,
    /// Read-only credentials (bearer tokens, `user:bcrypt-hash` lines) from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "auth_env")]
    pub auth_file: Option<PathBuf>,
    /// Read-only credentials from this environment variable (entries separated by `;`).
    #[arg(long, value_name = "VAR")]
    pub auth_env: Option<String>,
}

#[derive(clap::Args, Debug)]
#[command(
    about = "Serve the status page, JSON API and badges over the stored results",
    after_help = EXAMPLE
)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: crate::args::StoreArgs,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub page: PageArgs,
    /// Show the page as of this time (RFC 3339 or Unix milliseconds) instead of now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub as_of: Option<i64>,
}

/// RFC 3339 (`2026-11-23T12:00:00Z`) or Unix milliseconds.
fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!("{text:?}: expected RFC 3339 (2026-11-23T12:00:00Z) or Unix milliseconds: {e}")
        })?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Starts the status page over `location` on `listen` until `shutdown`. The store is opened
/// read-only first: any failure there is the user's (exit 3).
pub async fn start_page(
    location: Location,
    listen: SocketAddr,
    page: &PageArgs,
    clock: Arc<dyn Clock>,
    shutdown: &Shutdown,
) -> anyhow::Result<RunningServer> {
    let auth = match (&page.auth_file, &page.auth_env) {
        (Some(path), _) => Some(ReadOnlyAuth::from_file(path)),
        (None, Some(var)) => Some(ReadOnlyAuth::from_env(var)),
        (None, None) => None,
    };
    // Whatever keeps the store from being read at start is for the user to fix: exit 3.
    let source = StoreStatus::open(location, Retention::default())
        .await
        .map_err(|e| exit::usage(e.to_string()))?;
    let mut builder = ServerBuilder::new()
        .listen(listen)
        .base_path(page.base_path.clone());
    if let Some(auth) = auth {
        builder = builder.auth(Arc::new(auth.map_err(|e| exit::usage(e.to_string()))?));
    }
    let server = netvantage_server::status::mount(builder, Arc::new(source), clock)
        .start(shutdown.token())
        .await
        .map_err(|e| exit::usage(format!("--listen {listen}: {e}")))?;
    Ok(server)
}

pub async fn run(args: ServeArgs) -> anyhow::Result<i32> {
    let location = args.store.location()?;
    let clock: Arc<dyn Clock> = match args.as_of {
        Some(at) => Arc::new(ManualClock::new(at)),
        None => Arc::new(SystemClock),
    };
    let shutdown = Shutdown::new();
    shutdown.stop_on_signals()?;
    let server = start_page(location, args.listen, &args.page, clock, &shutdown).await?;
    let bound = server.local_addr();
    let base = args.page.base_path.trim_end_matches('/');
    // The address on stdout (a result: which port `--listen 127.0.0.1:0` got), logs on stderr.
    println!("listening http://{bound}{base}/");
    tracing::info!(%bound, "serving the status page");
    // Returns once the shutdown signal came and the open connections were drained.
    let summary = server.stopped().await;
    tracing::info!(connections = summary.connections, "stopped");
    Ok(0)
}

//! The floor of issue 13's page benchmark: the same hardened server as `netvantage serve`
//! ([`ServerBuilder`], default limits, a multi-threaded runtime) answering every path with one
//! pre-rendered page read from a file, so a page's time beyond this is the status source's and
//! the rendering's.
//!
//!   static_page FILE [ADDR]        (ADDR defaults to 127.0.0.1:0; prints `listening URL`)

use futures::future::BoxFuture;
use hyper::StatusCode;
use hyper::body::Bytes;
use netvantage_server::ServerBuilder;
use netvantage_server::handler::{Handler, Request, Response, respond};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Every path: the saved page.
struct SavedPage(Bytes);

impl Handler for SavedPage {
    fn handle<'a>(&'a self, _request: Request<'a>) -> BoxFuture<'a, Option<Response>> {
        let body = self.0.clone();
        Box::pin(async move { Some(respond(StatusCode::OK, "text/html; charset=utf-8", body)) })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(file) = args.first() else {
        return Err("usage: static_page FILE [ADDR]".into());
    };
    let listen: SocketAddr = args.get(1).map_or("127.0.0.1:0", String::as_str).parse()?;
    let page = Bytes::from(std::fs::read(file)?);
    let shutdown = CancellationToken::new();
    let server = ServerBuilder::new()
        .listen(listen)
        .app(Arc::new(SavedPage(page)))
        .start(shutdown.clone())
        .await?;
    println!("listening http://{}/", server.local_addr());
    tokio::signal::ctrl_c().await?;
    shutdown.cancel();
    server.stopped().await;
    Ok(())
}

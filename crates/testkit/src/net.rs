//! Sockets for tests: a free loopback port, a listener, a connection from a chosen source.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A loopback TCP port that nothing listened on a moment ago: a closed port to probe, or one
/// to hand to a server the test starts.
pub fn free_port() -> u16 {
    listen("127.0.0.1:0")
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

pub fn listen(addr: &str) -> TcpListener {
    TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
}

pub fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Connects from `from` (port 0: chosen by the kernel) to `to`; the connection stays open
/// while the stream lives.
pub fn connect_from(
    from: SocketAddr,
    to: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let domain = socket2::Domain::for_address(to);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.bind(&from.into())?;
    socket.connect_timeout(&to.into(), timeout)?;
    Ok(socket.into())
}

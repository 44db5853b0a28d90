//! Reading a Prometheus `/metrics` endpoint the way a scraper does.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

/// `GET /metrics` over HTTP/1.0 from `addr` (a local address); the whole response, head and
/// body.
pub fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap_or_else(|e| panic!("send to {addr}: {e}"));
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("read from {addr}: {e}"));
    response
}

/// The value of the sample `name` (the whole series name, labels included) in an exposition.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
}

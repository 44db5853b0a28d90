//! Test support for netvantage's integration tests, shared by every crate's `tests/`.
//!
//! What it is for: one way to run a program under test and assert on it ([`TestCommand`], in
//! the spirit of ripgrep's `tests/util.rs`), one way to wait ([`wait_until`], [`wait_for`]), one
//! free port, and the real fixtures the tests stand on, each written once: a network namespace
//! ([`Netns`], [`Pair`]), the simulated fleet ([`Fleet`]), a PostgreSQL database of the test's
//! own ([`Database`]), the tansu Kafka-API broker ([`Broker`]), loopback HTTP(S) servers
//! ([`TestServer`]) and a raw client ([`http_get`]), headless Chromium ([`dump_dom`], [`screenshot`]), the running `conns` monitor ([`Conns`]) and its fixture socket tables
//! ([`proc_fixture`], [`ProcDir`]), and scratch directories ([`Scratch`]).
//!
//! What it must not do: skip a test (a missing tool fails it, naming the package to install),
//! send traffic anywhere but 127.0.0.0/8, ::1 or a namespace the test created, touch the host's
//! own firewall or conntrack, or outlive the test (every fixture cleans up on drop, also when
//! the test panics). It is a dev-dependency only, never part of the shipped binary.

mod broker;
mod browser;
mod command;
mod conns;
mod fleet;
mod http_client;
mod http_server;
mod metrics;
mod net;
mod netns;
mod postgres;
mod scratch;
mod tools;
mod wait;

pub use broker::{Broker, tansu};
pub use browser::{browse, chromium, dump_dom, links, screenshot};
pub use command::{Run, Running, TestCommand, binary, nv};
pub use conns::{Conns, ProcDir, proc_fixture, strip_timestamp};
pub use fleet::{Fleet, testfleet};
pub use http_client::{Answer, http_get, parse_answer};
pub use http_server::{
    Reply, Seen, TestCert, TestServer, hang, pin, private_loopback, reply, reply_body,
};
pub use metrics::{metric, scrape};
pub use net::{addr, connect_from, free_port, listen};
pub use netns::{Netns, Pair};
pub use postgres::{Database, psql};
pub use scratch::{Scratch, unique_name};
pub use tools::require_tool;
pub use wait::{wait_for, wait_until};

//! The engine behind `netvantage conns`: it turns the kernel's TCP socket table into "new
//! connection" and "port scan" events, and keeps scanners out through nftables.
//!
//! Pure parts (no I/O, no clock; time is passed in): [`procnet`] decodes `/proc/net/tcp{,6}`
//! lines, [`table`] diffs two polls, [`ctnetlink`] decodes conntrack's netlink messages,
//! [`flows`] turns them into connections and refused attempts, [`scan`] runs bounded sliding
//! windows per source, [`policy`] decides what may be blocked (and for how long), [`nft`]'s
//! builders produce the JSON commands and [`format`] renders output lines. I/O parts, kept
//! apart so the rules above stay testable without a kernel: [`source`] (the proc reader and
//! the NETLINK_SOCK_DIAG dump), [`conntrack`] (the event socket and its reader thread),
//! [`nft::Firewall`] (runs `nft -j`), [`hostaddrs`], [`clock`] and [`metrics`]. [`watch`] is
//! the loop that ties them together, stopped by `netvantage_runtime::Shutdown`.
//!
//! This crate must not print results (the CLI owns stdout), must never build a shell command,
//! and must never touch a firewall table other than its own `inet netvantage`.

pub mod clock;
pub mod conntrack;
pub mod ctnetlink;
pub mod entry;
pub mod flows;
pub mod format;
pub mod hostaddrs;
pub mod metrics;
pub mod monitor;
pub mod netlink;
pub mod nft;
pub mod policy;
pub mod procnet;
pub mod scan;
pub mod shared;
pub mod source;
pub mod table;
pub mod watch;

pub use entry::{SocketEntry, TcpState};
pub use monitor::{Monitor, PollReport};
pub use source::{NetlinkSource, ProcSource, Source, SourceError};
pub use table::{Direction, NewConnection, Snapshot};
pub use watch::{Feed, Watcher};

//! netvantage's process plumbing, shared by every front door:
//!
//! - [`Shutdown`]: the one way anything stops. Every engine, sink and server is handed a clone;
//!   SIGINT/SIGTERM, `--run-for`, a closed stdout or a fatal error all end up as a call to
//!   [`Shutdown::stop`], and a second signal forces what is still waiting to give up.
//! - [`Reloads`]: SIGHUP as a stream, for configs that change without a restart.
//! - [`limits`]: the open-file limit, raised and turned into a socket budget.
//!
//! This crate must not decide anything about checks or results: it only says *when* to stop.

pub mod limits;
mod shutdown;

pub use shutdown::{Reloads, Shutdown, StopReason};

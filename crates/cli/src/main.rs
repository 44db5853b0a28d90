//! `netvantage`: one binary, several front doors over one engine. This file only parses the
//! command line, sets up logging and the runtime, and maps results to exit codes.
//!
//! It must not hold rules or machinery: verdicts, schedules, stores, sinks and servers live in
//! the library crates (see the README's Architecture section), the CLI only wires them.

mod args;
mod cmd;
mod exit;
mod logging;
mod memo;
mod output;
mod serve;
mod store_status;

use clap::{Parser, Subcommand};

/// A sweep allocates a probe task per target while per-host state accumulates; glibc's malloc
/// left the heap three times the size of the live data on a 100,000-host sweep (holes between
/// long-lived small blocks), mimalloc keeps it close to it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "netvantage",
    version,
    about = "Which services are up, down or flapping — and who is connecting to this host.",
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    log: logging::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Ports(Box<cmd::ports::PortsArgs>),
    Http(cmd::http::HttpArgs),
    Conns(cmd::conns::ConnsArgs),
    Agent(cmd::agent::AgentArgs),
    Ingest(cmd::ingest::IngestArgs),
    Report(cmd::report::ReportArgs),
    Serve(cmd::serve::ServeArgs),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { exit::USAGE } else { 0 };
            let _ = err.print();
            std::process::exit(code);
        }
    };
    logging::init(&cli.log);
    // The runtime itself needs descriptors (epoll, eventfds, the signal pipe): under
    // `ulimit -n 8` it would fail (or a worker panic) before any command could say why.
    if let Err(too_few) = netvantage_runtime::limits::ensure_enough_files() {
        eprintln!("netvantage: {too_few}");
        std::process::exit(exit::USAGE);
    }
    // `ports` spends its time in the kernel (connect, close): one thread drives 10k+ connects/s
    // and leaves the other cores to the network stack; a second worker only adds cross-thread
    // wake-ups (measured: a futex call per 0.6 connects). The others do TLS and parsing and use
    // every core.
    let mut builder = match &cli.command {
        Command::Ports(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("netvantage: cannot start the async runtime: {err}");
            std::process::exit(exit::INTERNAL);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Ports(args) => cmd::ports::run(*args).await,
            Command::Http(args) => cmd::http::run(args).await,
            Command::Conns(args) => cmd::conns::run(args).await,
            Command::Agent(args) => cmd::agent::run(args).await,
            Command::Ingest(args) => cmd::ingest::run(args).await,
            Command::Report(args) => cmd::report::run(args).await,
            Command::Serve(args) => cmd::serve::run(args).await,
        }
    });
    let code = match result {
        Ok(code) => code,
        Err(err) => exit::report(&err),
    };
    // Don't wait for lingering probe tasks (timeouts in flight) once the answer is printed.
    runtime.shutdown_background();
    std::process::exit(code);
}

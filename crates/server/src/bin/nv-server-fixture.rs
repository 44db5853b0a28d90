//! `nv-server-fixture`: the server as the tests run it in a child process (never shipped).
//!
//! A child process lets a test give the server a small open-file limit (`--nofile`) and read
//! its CPU time and log lines from outside. It serves a registry with one metric of each kind,
//! `/slow` (an application path that answers after `--slow-ms`), and prints
//! `listening http://ADDR` on stdout once bound. SIGTERM or SIGINT shut it down gracefully and
//! it prints `stopped: N connections, M accept errors`.
//!
//! With `--status-demo N` it serves the status page over [`MemorySource::demo`] instead: N
//! targets as of `--now UNIX_MS` (default: the start), under `--base-path`, behind
//! `--auth-file` or `--auth-env` credentials when given.

use futures::future::BoxFuture;
use netvantage_core::clock::{ManualClock, unix_ms_now};
use netvantage_runtime::Shutdown;
use netvantage_server::status::{self, MemorySource, UnixMs};
use netvantage_server::{Handler, Limits, ReadOnlyAuth, Request, Response, ServerBuilder, text};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

struct Options {
    listen: SocketAddr,
    nofile: Option<u64>,
    limits: Limits,
    slow: Duration,
    status_demo: Option<usize>,
    now: Option<i64>,
    base_path: String,
    auth_file: Option<std::path::PathBuf>,
    auth_env: Option<String>,
}

fn usage(message: &str) -> ExitCode {
    eprintln!(
        "nv-server-fixture: {message}\nusage: nv-server-fixture [--listen ADDR] [--nofile N] \
         [--max-connections N] [--header-timeout-ms N] [--request-timeout-ms N] [--slow-ms N] \
         [--status-demo N] [--now UNIX_MS] [--base-path PATH] [--auth-file F] [--auth-env VAR]"
    );
    ExitCode::from(3)
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        nofile: None,
        limits: Limits::default(),
        slow: Duration::from_millis(0),
        status_demo: None,
        now: None,
        base_path: String::new(),
        auth_file: None,
        auth_env: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{flag} {value:?}: {e}"))
        };
        match flag.as_str() {
            "--listen" => {
                options.listen = value
                    .parse()
                    .map_err(|e| format!("--listen {value:?}: {e}"))?
            }
            "--nofile" => options.nofile = Some(number()?),
            "--max-connections" => options.limits.max_connections = number()? as usize,
            "--header-timeout-ms" => {
                options.limits.header_read_timeout = Duration::from_millis(number()?)
            }
            "--request-timeout-ms" => {
                options.limits.request_timeout = Duration::from_millis(number()?)
            }
            "--slow-ms" => options.slow = Duration::from_millis(number()?),
            "--status-demo" => options.status_demo = Some(number()? as usize),
            "--now" => options.now = Some(number()? as i64),
            "--base-path" => options.base_path = value.clone(),
            "--auth-file" => options.auth_file = Some(value.into()),
            "--auth-env" => options.auth_env = Some(value.clone()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(options)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

fn registry() -> Registry {
    let mut registry = Registry::default();
    let checks = Family::<KindLabel, Counter>::default();
    checks.get_or_create(&KindLabel { kind: "tcp" }).inc_by(3);
    checks.get_or_create(&KindLabel { kind: "http" }).inc();
    registry.register("nv_fixture_checks", "Checks run, by kind", checks);
    let targets = Gauge::<i64>::default();
    targets.set(4);
    registry.register("nv_fixture_targets", "Targets configured", targets);
    let latency = Histogram::new(exponential_buckets(0.001, 2.0, 8));
    latency.observe(0.003);
    registry.register("nv_fixture_latency_seconds", "Check latency", latency);
    registry
}

struct Slow(Duration);

impl Handler for Slow {
    fn handle<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a, Option<Response>> {
        Box::pin(async move {
            if request.path != "/slow" {
                return None;
            }
            tokio::time::sleep(self.0).await;
            Some(text(hyper::StatusCode::OK, "slow answer\n"))
        })
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(options) => options,
        Err(message) => return usage(&message),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // Before the runtime exists, so its own descriptors count against the limit too.
    if let Some(nofile) = options.nofile
        && let Err(err) = rlimit::setrlimit(rlimit::Resource::NOFILE, nofile, nofile)
    {
        eprintln!("nv-server-fixture: cannot set RLIMIT_NOFILE to {nofile}: {err}");
        return ExitCode::from(4);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("nv-server-fixture: cannot start the runtime: {err}");
            return ExitCode::from(4);
        }
    };
    runtime.block_on(run(options))
}

async fn run(options: Options) -> ExitCode {
    let shutdown = Shutdown::new();
    let mut builder = ServerBuilder::new()
        .listen(options.listen)
        .limits(options.limits)
        .base_path(options.base_path.clone());
    let auth = match (&options.auth_file, &options.auth_env) {
        (Some(path), _) => Some(ReadOnlyAuth::from_file(path)),
        (None, Some(var)) => Some(ReadOnlyAuth::from_env(var)),
        (None, None) => None,
    };
    match auth {
        Some(Ok(auth)) => builder = builder.auth(Arc::new(auth)),
        Some(Err(err)) => {
            eprintln!("nv-server-fixture: {err}");
            return ExitCode::from(3);
        }
        None => {}
    }
    let builder = match options.status_demo {
        Some(count) => {
            let now = options.now.unwrap_or_else(unix_ms_now);
            let source = Arc::new(MemorySource::demo(UnixMs(now), count));
            status::mount(builder, source, Arc::new(ManualClock::new(now)))
        }
        None => builder
            .metrics(Arc::new(registry()))
            .app(Arc::new(Slow(options.slow))),
    };
    let server = builder.start(shutdown.token()).await;
    let server = match server {
        Ok(server) => server,
        Err(err) => {
            eprintln!("nv-server-fixture: {err}");
            return ExitCode::from(3);
        }
    };
    println!("listening http://{}", server.local_addr());
    let _ = std::io::stdout().flush();
    if let Err(err) = shutdown.stop_on_signals() {
        eprintln!("nv-server-fixture: cannot watch signals: {err}");
        return ExitCode::from(4);
    }
    // The server stops when the token is cancelled; this waits for that and its draining.
    let summary = server.stopped().await;
    println!(
        "stopped: {} connections, {} accept errors",
        summary.connections, summary.accept_errors
    );
    ExitCode::SUCCESS
}

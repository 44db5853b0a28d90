//! `netvantage http CONFIG.yaml`: checks every endpoint of a YAML list at a fixed rate and
//! prints each domain's cumulative availability after every cycle, then a summary at the end.
//! Wiring only: the config, the rules and the client live in `netvantage-http`.

use crate::exit;
use anyhow::Context;
use clap::ValueEnum;
use netvantage_http::client::{Checker, ClientOptions};
use netvantage_http::cycle::{self, CycleOptions, Ended, Event};
use netvantage_http::pin::Pin;
use netvantage_http::report::{Report, Rounding};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

const EXAMPLE: &str = "\
Example:
  netvantage http endpoints.yaml
  netvantage http -f 5s -r 1m --format json endpoints.yaml | jq .
  netvantage http --resolve fetch.com:443:127.0.0.1 --ca-file test-ca.pem endpoints.yaml

endpoints.yaml:
  - name: fetch index page
    url: https://fetch.com/
    headers:
      user-agent: fetch-synthetic-monitor
  - name: fetch some fake post endpoint
    url: https://fetch.com/some/post/endpoint
    method: POST
    body: '{\"foo\":\"bar\"}'
    latency_threshold: 300ms      # optional: DEGRADED above this
    expect_status: [200, 201]     # optional: codes, \"200-299\" or \"2xx\"
    body_regex: '\"ok\":\\s*true'   # optional: DOWN when the body does not match

Output: after each cycle, `DOMAIN has N% availability percentage` per domain (cumulative).
Exit status when the run ends (-r or SIGINT/SIGTERM): 0 every endpoint's last check UP,
1 some DEGRADED, 2 some DOWN, 3 bad input. See docs/http.md.";

#[derive(clap::Args, Debug)]
#[command(
    about = "Check HTTP(S) endpoints from a YAML list and report each domain's availability",
    after_help = EXAMPLE
)]
pub struct HttpArgs {
    /// YAML list of endpoints (`name`, `url`, optional `method`, `headers`, `body`, ...).
    #[arg(value_name = "CONFIG.yaml")]
    pub config: PathBuf,
    /// Time between cycle starts (fixed rate): 500ms, 15s, 1m; a bare number is seconds.
    #[arg(short = 'f', long, value_name = "DURATION", default_value = "15s", value_parser = crate::args::positive_duration)]
    pub health_check_frequency: Duration,
    /// Stop after this long and print the summary (default: run until SIGINT/SIGTERM).
    #[arg(short = 'r', long, value_name = "DURATION", value_parser = crate::args::positive_duration)]
    pub run_duration: Option<Duration>,
    /// Per-check timeout unless the entry sets `timeout`; never past the next cycle's start.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::args::positive_duration)]
    pub timeout: Duration,
    /// A response slower than this is DEGRADED, unless the entry sets `latency_threshold`.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = crate::args::positive_duration)]
    pub latency_threshold: Duration,
    /// A latency equal to the threshold is still UP (default: it must be below).
    #[arg(long)]
    pub latency_inclusive: bool,
    /// How availability percentages are made whole.
    #[arg(long, value_enum, default_value_t = RoundArg::Nearest)]
    pub round: RoundArg,
    /// `text`: availability lines; `json`: one JSON object per check (NDJSON) on stdout,
    /// availability lines and the summary on stderr.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Pin HOST:PORT to ADDR (as curl does), bypassing DNS. Repeatable.
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<Pin>,
    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Reuse each endpoint's connection between checks (default: a fresh one per check).
    #[arg(long)]
    pub keep_alive: bool,
    /// Most checks in flight at once (capped by the open-file limit). More in flight than
    /// the CPU can serve inflates measured latency; raise it for many slow remote endpoints.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoundArg {
    Nearest,
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub async fn run(args: HttpArgs) -> anyhow::Result<i32> {
    let file = args.config.display().to_string();
    let text = std::fs::read(&args.config)
        .map_err(|e| exit::usage(format!("{file}: cannot read: {e}")))?;
    let text =
        String::from_utf8(text).map_err(|_| exit::usage(format!("{file}: not valid UTF-8")))?;
    let endpoints =
        netvantage_http::parse_config(&text, &file).map_err(|e| exit::usage(e.to_string()))?;
    let checker = Checker::new(ClientOptions {
        ca_file: args.ca_file.clone(),
        pins: args.resolve.clone(),
        keep_alive: args.keep_alive,
        user_agent: format!("netvantage/{}", env!("CARGO_PKG_VERSION")),
    })
    .map_err(|e| exit::usage(e.to_string()))?;
    let concurrency = concurrency_for_open_files(args.concurrency as usize);
    let rounding = match args.round {
        RoundArg::Nearest => Rounding::Nearest,
        RoundArg::Down => Rounding::Down,
    };
    let options = CycleOptions {
        frequency: args.health_check_frequency,
        run_duration: args.run_duration,
        concurrency,
        default_timeout: args.timeout,
        default_latency_threshold: args.latency_threshold,
        latency_inclusive: args.latency_inclusive,
    };
    tracing::info!(endpoints = endpoints.len(), concurrency, "starting");

    let shutdown = shutdown_signal().context("cannot install signal handlers")?;
    let mut report = Report::new(&endpoints);
    let json = args.format == Format::Json;
    let stdout = std::io::stdout();
    let (ended, cycles) = cycle::run(endpoints, checker, options, shutdown, |event| match event {
        Event::Result { index, result, .. } => {
            report.record(index, &result);
            if json {
                let mut out = stdout.lock();
                let _ = serde_json::to_writer(&mut out, &result);
                let _ = out.write_all(b"\n");
            }
        }
        Event::CycleEnd { cycle, elapsed } => {
            tracing::info!(
                cycle,
                elapsed_ms = elapsed.as_secs_f64() * 1e3,
                "cycle done"
            );
            let lines = report.availability_lines(rounding);
            if json {
                let mut err = std::io::stderr().lock();
                for line in lines {
                    let _ = writeln!(err, "{line}");
                }
            } else {
                let mut out = stdout.lock();
                for line in lines {
                    let _ = writeln!(out, "{line}");
                }
                let _ = out.flush();
            }
        }
    })
    .await;
    if ended == Ended::Shutdown {
        tracing::info!("stopping on signal");
    }
    let summary = report.summary_lines(cycles, rounding).join("\n");
    if json {
        eprintln!("{summary}");
    } else {
        let mut out = stdout.lock();
        writeln!(out, "{summary}")?;
        out.flush()?;
    }
    Ok(report.exit_status())
}

/// Resolves on SIGINT or SIGTERM. Handlers are installed now, before any request, so a signal
/// that arrives early still ends the run with a summary.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Each check in flight holds one socket: raise the soft open-file limit to the hard one and
/// keep the concurrency under it, with room for the runtime and stdio.
fn concurrency_for_open_files(wanted: usize) -> usize {
    const RESERVED: u64 = 64;
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!("cannot read the open-file limit: {e}");
            return wanted;
        }
    };
    let cap = limit.saturating_sub(RESERVED).max(1) as usize;
    if wanted > cap {
        tracing::warn!(
            wanted,
            cap,
            "--concurrency lowered to fit the open-file limit"
        );
    }
    wanted.min(cap)
}

//! `netvantage report`: per target, down from everywhere, down from some vantage points only,
//! flappy or ok, over the stored results (SQLite by default, or PostgreSQL).

use clap::ValueEnum;
use netvantage_core::status::exit_code;
use netvantage_core::vantage::judge;
use netvantage_core::verdict::{FlapRule, VerdictRules};
use netvantage_store::{AnyStore, Store, TimeRange};
use std::io::Write;
use std::time::Duration;

const EXAMPLE: &str = "\
Example:
  netvantage report                      # netvantage.db, the last hour
  netvantage report --since 24h --format json
  netvantage report --postgres 'host=127.0.0.1 user=postgres dbname=netvantage'
  netvantage report --since 24h --explain   # and why: subnets, bursts, paths, periods, DNS

Output, one line per target:
  db1:5432 is down from every vantage point (fra1, iad1): refused ×10
  api:443 is down from fra1 only, reachable from iad1: a path problem, not the host (timeout ×5)
  cache:6379 is flappy from iad1 (timeout ×2)
  web:443 reporting ok
Exit status: 0 all ok, 1 something flappy or down from some vantage points, 2 something down
from everywhere, 3 bad input.";

#[derive(clap::Args, Debug)]
#[command(
    about = "Judge every target across vantage points from stored results",
    after_help = EXAMPLE
)]
pub struct ReportArgs {
    #[command(flatten)]
    pub store: crate::args::StoreArgs,
    /// How far back to look.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::args::positive_duration)]
    pub since: Duration,
    /// Failed rounds in a row that make a target down from a vantage point.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub down_after: u32,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Add the findings of the window: what failed together (a subnet, the whole fleet, a
    /// path from some vantage points), on a period, by name resolution, and why.
    #[arg(long)]
    pub explain: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub async fn run(args: ReportArgs) -> anyhow::Result<i32> {
    let since = netvantage_core::clock::unix_ms_now() - args.since.as_millis() as i64;
    // Read-only: never migrates, never writes, refuses what isn't a netvantage store.
    let location = args.store.location()?;
    let store = AnyStore::open_reader(&location).await?;
    let observations = store.observations(TimeRange::since(since)).await?;
    let rules = VerdictRules {
        down_after: args.down_after,
        flap: FlapRule::Window(None),
    };
    let findings = args
        .explain
        .then(|| netvantage_core::findings::findings_of_observations(&observations));
    let reports = judge(observations, &rules);
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Text => {
            for report in &reports {
                writeln!(out, "{}", crate::output::escape_line(&report.line()))?;
            }
        }
        Format::Json => {
            for report in &reports {
                serde_json::to_writer(&mut out, report)?;
                writeln!(out)?;
            }
        }
    }
    if let Some(findings) = &findings {
        match args.format {
            Format::Text => write!(out, "\n{}", crate::cmd::explain::findings_text(findings))?,
            Format::Json => {
                crate::cmd::explain::write_finding_events(&mut std::io::stderr().lock(), findings)?
            }
        }
    }
    out.flush()?;
    if reports.is_empty() {
        eprintln!("report: no results in the last {:?}", args.since);
    }
    Ok(exit_code(reports.iter().map(|r| &r.verdict)))
}

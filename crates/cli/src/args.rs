//! Value parsers shared by every subcommand, so `10s` means the same everywhere.

use netvantage_store::Location;
use std::path::PathBuf;
use std::time::Duration;

/// clap value parser for durations: `500ms`, `10s`, `1m`; a bare number is seconds.
pub fn duration(text: &str) -> Result<Duration, String> {
    netvantage_core::parse_duration(text).map_err(|e| e.to_string())
}

/// Like [`duration`], but zero is refused.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        d if d.is_zero() => Err(format!("{text:?} must be greater than zero")),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_share_one_syntax() {
        assert_eq!(super::duration("1m").unwrap().as_secs(), 60);
        assert!(super::positive_duration("0s").is_err());
        assert!(super::duration("soon").unwrap_err().contains("soon"));
    }
}

/// Which store a reader (`report`, `serve`) opens: the agent's SQLite file by default, or
/// PostgreSQL.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// The SQLite file the agent writes (the default store).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "netvantage.db",
        conflicts_with = "postgres"
    )]
    pub sqlite: PathBuf,
    /// Read PostgreSQL (what `ingest` writes) instead; without a password in it.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
}

impl StoreArgs {
    /// The store to open; a password in `--postgres` is refused (exit 3), as `ps` shows argv.
    pub fn location(&self) -> anyhow::Result<Location> {
        Ok(match &self.postgres {
            Some(url) if netvantage_store::postgres::has_password(url) => {
                return Err(crate::exit::usage(
                    "--postgres: the connection string holds a password, which `ps` would show; put it in PGPASSWORD or in a password file (PGPASSFILE or ~/.pgpass)",
                ));
            }
            Some(url) => Location::Postgres(url.clone()),
            None => Location::Sqlite(self.sqlite.clone()),
        })
    }
}

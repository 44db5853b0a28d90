//! A PostgreSQL database of the test's own on the machine's server (127.0.0.1:5432, trust
//! authentication for `postgres`), created empty and dropped on drop.

use std::path::Path;

use crate::command::TestCommand;
use crate::scratch::unique_name;

/// Runs SQL with `psql` as the `postgres` user on 127.0.0.1 and returns its unaligned output
/// (`Err` carries psql's message).
pub fn psql(database: &str, sql: &str) -> Result<String, String> {
    let run = TestCommand::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-tAq",
            "-c",
            sql,
        ])
        .try_run()
        .map_err(|e| {
            format!("cannot run psql ({e}): apt-get install postgresql-client, and run PostgreSQL on 127.0.0.1:5432")
        })?;
    if run.code == 0 {
        Ok(run.stdout.trim().to_string())
    } else {
        Err(run.stderr.trim().to_string())
    }
}

/// A database of this test's own, dropped (connections and all) on drop.
pub struct Database {
    pub name: String,
}

impl Database {
    /// `CREATE DATABASE PREFIX_PID_N`; `prefix` must be a plain SQL identifier.
    pub fn new(prefix: &str) -> Database {
        let name = unique_name(prefix);
        psql("postgres", &format!("CREATE DATABASE {name}")).unwrap_or_else(|e| {
            panic!("cannot create a test database on 127.0.0.1:5432 ({e}); the test script installs and starts PostgreSQL")
        });
        Database { name }
    }

    /// A libpq / tokio-postgres connection string.
    pub fn url(&self) -> String {
        format!("host=127.0.0.1 user=postgres dbname={}", self.name)
    }

    /// Runs SQL that must succeed and returns psql's unaligned output (`a|b` per row).
    pub fn query(&self, sql: &str) -> String {
        psql(&self.name, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Rows in `table`, or 0 while the table does not exist (or the database refuses
    /// connections).
    pub fn count_rows(&self, table: &str) -> usize {
        psql(&self.name, &format!("SELECT count(*) FROM {table}"))
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Runs an SQL file (`\i`), which must succeed.
    pub fn apply_file(&self, file: &Path) {
        if let Err(e) = psql(&self.name, &format!("\\i '{}'", file.display())) {
            panic!("applying {}: {e}", file.display());
        }
    }

    /// Makes the database refuse every connection and ends the open ones: PostgreSQL is
    /// unavailable to its clients, while the rest of the server runs on.
    pub fn block_connections(&self) {
        self.admin(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
            self.name
        ));
        self.admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
            self.name
        ));
    }

    pub fn allow_connections(&self) {
        self.admin(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
            self.name
        ));
    }

    fn admin(&self, sql: &str) {
        psql("postgres", sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

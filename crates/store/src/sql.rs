//! The queries both backends run, written once and spelled per dialect (column names and
//! placeholders): one query layer over two schemas generated from [`crate::columns`].

use crate::columns::{Dialect, column, list};

fn placeholder(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("?{n}"),
        Dialect::Postgres => format!("${n}"),
    }
}

fn ts(dialect: Dialect) -> std::borrow::Cow<'static, str> {
    column("ts").name_in(dialect)
}

/// Results of one target in a time range, oldest first, ties by id, `LIMIT` rows.
/// Parameters: target, from, until, [after ts, after id,] limit.
pub(crate) fn results(dialect: Dialect, version: i32, with_cursor: bool) -> String {
    let ts = ts(dialect);
    let p = |n| placeholder(dialect, n);
    let (cursor, limit) = if with_cursor {
        (format!(" AND ({ts}, id) > ({}, {})", p(4), p(5)), p(6))
    } else {
        (String::new(), p(4))
    };
    format!(
        "SELECT {} FROM results WHERE target = {} AND {ts} >= {} AND {ts} < {}{cursor}
         ORDER BY {ts}, id LIMIT {limit}",
        list(dialect, version),
        p(1),
        p(2),
        p(3),
    )
}

/// Every record in a time range (parameters: from, until[, target]), in no particular order:
/// what the roller recomputes a minute from.
pub(crate) fn records_between(dialect: Dialect, version: i32, one_target: bool) -> String {
    let ts = ts(dialect);
    let target = if one_target {
        format!(" AND target = {}", placeholder(dialect, 3))
    } else {
        String::new()
    };
    format!(
        "SELECT {} FROM results WHERE {ts} >= {} AND {ts} < {}{target}",
        list(dialect, version),
        placeholder(dialect, 1),
        placeholder(dialect, 2)
    )
}

/// What a verdict needs of every check in a time range. Parameters: from, until.
pub(crate) fn observations(dialect: Dialect) -> String {
    let ts = ts(dialect);
    format!(
        "SELECT target, vantage, {ts}, outcome, reason, address, error FROM results WHERE {ts} >= {} AND {ts} < {}",
        placeholder(dialect, 1),
        placeholder(dialect, 2)
    )
}

/// What [`observations`] selects, as read from a row.
pub(crate) struct ObservationRow<'a> {
    pub target: String,
    pub vantage: String,
    pub ts_unix_ms: i64,
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub address: Option<&'a str>,
    pub error: Option<String>,
}

/// An observation from the values [`observations`] selects. An outcome other than `down` is
/// up (degraded answered); a reason this build doesn't know reads as `other`; an address that
/// does not parse is left out.
pub(crate) fn observation(row: ObservationRow<'_>) -> crate::Observation {
    use netvantage_core::{Outcome, Reason};
    crate::Observation {
        target: row.target,
        vantage: row.vantage,
        ts_unix_ms: row.ts_unix_ms,
        up: row.outcome != Outcome::Down.as_str(),
        reason: row.reason.map(|r| r.parse().unwrap_or(Reason::Other)),
        address: row.address.and_then(|a| a.parse().ok()),
        error: row.error,
    }
}

pub(crate) const MIGRATIONS_APPLIED: &str =
    "SELECT version FROM netvantage_migrations ORDER BY version";

pub(crate) fn record_migration(dialect: Dialect) -> String {
    format!(
        "INSERT INTO netvantage_migrations (version, description) VALUES ({}, {})",
        placeholder(dialect, 1),
        placeholder(dialect, 2)
    )
}

//! The roll-up tables and their statements, generated for both dialects from one list of
//! figures ([`figures`]), as `columns.rs` does for `results`.
//!
//! Each tier is a table `rollups_{minute,hour,day}` keyed by (target, vantage, start_unix_ms)
//! with an index on the bucket start (for windows across every target and for retention).
//! Times are `start_unix_ms` integers in both dialects: a bucket start is a number to compare,
//! never shown as it is. `series` holds one row per (target, vantage): what a list of targets
//! needs (kind, HTTP domain and endpoint, the latest check) without reading raw rows.

use crate::columns::Dialect;
use crate::rollup::{BUCKETS, Rollup, RollupRow, Tier};
use netvantage_core::Reason;

/// How a stored figure takes in the figures of the same bucket written later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merge {
    Add,
    Least,
    Greatest,
}

pub(crate) struct Figure {
    pub name: String,
    /// A float (latency) rather than a count.
    pub float: bool,
    pub merge: Merge,
}

/// A figure's value, as bound to or read from a statement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i64),
    Float(Option<f64>),
}

/// The figures of a roll-up row, in table order.
pub(crate) fn figures() -> Vec<Figure> {
    let count = |name: String| Figure {
        name,
        float: false,
        merge: Merge::Add,
    };
    let mut figures: Vec<Figure> = ["checks", "up", "degraded", "down"]
        .into_iter()
        .map(|n| count(n.to_string()))
        .collect();
    figures.extend(
        Reason::ALL
            .iter()
            .map(|r| count(format!("fail_{}", r.as_str()))),
    );
    for (name, merge) in [
        ("latency_min_ms", Merge::Least),
        ("latency_max_ms", Merge::Greatest),
        ("latency_sum_ms", Merge::Add),
    ] {
        figures.push(Figure {
            name: name.to_string(),
            float: true,
            merge,
        });
    }
    figures.extend((0..BUCKETS).map(|k| count(format!("h{k:02}"))));
    figures
}

/// A roll-up's values in [`figures`] order.
pub(crate) fn values(r: &Rollup) -> Vec<Num> {
    let int = |n: u64| Num::Int(n as i64);
    let mut values = vec![int(r.checks), int(r.up), int(r.degraded), int(r.down)];
    values.extend(r.failures.iter().map(|n| int(*n)));
    values.push(Num::Float(r.latency_min_ms));
    values.push(Num::Float(r.latency_max_ms));
    values.push(Num::Float(Some(r.latency_sum_ms)));
    values.extend(r.histogram.iter().map(|n| int(*n)));
    values
}

/// The inverse of [`values`].
pub(crate) fn rollup_of(values: &[Num]) -> Rollup {
    let int = |i: usize| match values.get(i) {
        Some(Num::Int(n)) => (*n).max(0) as u64,
        _ => 0,
    };
    let float = |i: usize| match values.get(i) {
        Some(Num::Float(x)) => *x,
        _ => None,
    };
    let reasons = Reason::ALL.len();
    let mut r = Rollup {
        checks: int(0),
        up: int(1),
        degraded: int(2),
        down: int(3),
        latency_min_ms: float(4 + reasons),
        latency_max_ms: float(5 + reasons),
        latency_sum_ms: float(6 + reasons).unwrap_or(0.0),
        ..Rollup::default()
    };
    for (k, slot) in r.failures.iter_mut().enumerate() {
        *slot = int(4 + k);
    }
    for (k, slot) in r.histogram.iter_mut().enumerate() {
        *slot = int(7 + reasons + k);
    }
    r
}

fn int_type(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "INTEGER",
        Dialect::Postgres => "bigint",
    }
}

fn text_type(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "TEXT",
        Dialect::Postgres => "text",
    }
}

pub(crate) fn placeholder(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("?{n}"),
        Dialect::Postgres => format!("${n}"),
    }
}

/// The tables of migration 3.
pub(crate) fn create_tables(dialect: Dialect) -> Vec<String> {
    let (int, text) = (int_type(dialect), text_type(dialect));
    let float = match dialect {
        Dialect::Sqlite => "REAL",
        Dialect::Postgres => "double precision",
    };
    let mut statements = Vec::new();
    for tier in Tier::ALL {
        let table = tier.table();
        let mut definitions = vec![
            format!("target {text} NOT NULL"),
            format!("vantage {text} NOT NULL"),
            format!("start_unix_ms {int} NOT NULL"),
        ];
        for figure in figures() {
            definitions.push(match (figure.float, figure.merge) {
                (true, Merge::Add) => format!("{} {float} NOT NULL DEFAULT 0", figure.name),
                (true, _) => format!("{} {float}", figure.name),
                (false, _) => format!("{} {int} NOT NULL DEFAULT 0", figure.name),
            });
        }
        definitions.push("PRIMARY KEY (target, vantage, start_unix_ms)".into());
        // SQLite: the rows are kept in key order in the table itself, not in a table and a
        // second copy of the key in its index (a third less space per series-year).
        let clustered = match dialect {
            Dialect::Sqlite => " WITHOUT ROWID",
            Dialect::Postgres => "",
        };
        statements.push(format!(
            "CREATE TABLE {table} (\n    {}\n){clustered}",
            definitions.join(",\n    ")
        ));
        statements.push(format!(
            "CREATE INDEX {table}_start ON {table} (start_unix_ms)"
        ));
    }
    statements.push(format!(
        "CREATE TABLE series (
    target {text} NOT NULL,
    vantage {text} NOT NULL,
    kind {text} NOT NULL,
    domain {text},
    endpoint {text},
    last_unix_ms {int} NOT NULL,
    last_outcome {text} NOT NULL,
    last_reason {text},
    PRIMARY KEY (target, vantage)
)"
    ));
    statements
}

/// `ON CONFLICT … DO UPDATE`: a stored bucket takes in the new figures.
fn merge_clause(dialect: Dialect, tier: Tier) -> String {
    let table = tier.table();
    let updates: Vec<String> = figures()
        .iter()
        .map(|f| {
            let (old, new) = (
                format!("{table}.{}", f.name),
                format!("excluded.{}", f.name),
            );
            let merged = match (f.merge, dialect) {
                (Merge::Add, _) => format!("{old} + {new}"),
                (Merge::Least, Dialect::Postgres) => format!("LEAST({old}, {new})"),
                (Merge::Greatest, Dialect::Postgres) => format!("GREATEST({old}, {new})"),
                // SQLite's scalar min/max are NULL when either side is.
                (Merge::Least, Dialect::Sqlite) => {
                    format!("coalesce(min({old}, {new}), {old}, {new})")
                }
                (Merge::Greatest, Dialect::Sqlite) => {
                    format!("coalesce(max({old}, {new}), {old}, {new})")
                }
            };
            format!("{} = {merged}", f.name)
        })
        .collect();
    format!(
        "ON CONFLICT (target, vantage, start_unix_ms) DO UPDATE SET {}",
        updates.join(", ")
    )
}

/// `target, vantage, start_unix_ms, checks, …`: every column of a roll-up table.
pub(crate) fn all_columns() -> String {
    let names: Vec<String> = figures().into_iter().map(|f| f.name).collect();
    format!("target, vantage, start_unix_ms, {}", names.join(", "))
}

/// Adds `rows` rows to a tier: new buckets are inserted, stored ones take in the figures.
/// Parameters per row: target, vantage, start, then the [`figures`].
pub(crate) fn upsert(dialect: Dialect, tier: Tier, rows: usize) -> String {
    let per_row = 3 + figures().len();
    let tuples: Vec<String> = (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=per_row)
                .map(|n| placeholder(dialect, row * per_row + n))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES {}\n         {}",
        tier.table(),
        all_columns(),
        tuples.join(", "),
        merge_clause(dialect, tier)
    )
}

/// Adds every row of `staging` (a table of the same columns) to a tier, as [`upsert`] does.
pub(crate) fn upsert_from(dialect: Dialect, tier: Tier, staging: &str) -> String {
    let columns = all_columns();
    format!(
        "INSERT INTO {} ({columns}) SELECT {columns} FROM {staging}\n         {}",
        tier.table(),
        merge_clause(dialect, tier)
    )
}

fn replace_clause() -> String {
    let updates: Vec<String> = figures()
        .iter()
        .map(|f| format!("{0} = excluded.{0}", f.name))
        .collect();
    format!(
        "ON CONFLICT (target, vantage, start_unix_ms) DO UPDATE SET {}",
        updates.join(", ")
    )
}

/// The aggregates that add up a series' rows of a tier: counts summed, extremes kept.
fn aggregates() -> Vec<String> {
    figures()
        .iter()
        .map(|f| match (f.merge, f.float) {
            (Merge::Least, _) => format!("min({})", f.name),
            (Merge::Greatest, _) => format!("max({})", f.name),
            (Merge::Add, true) => format!("sum({})", f.name),
            // PostgreSQL's sum of bigint is numeric.
            (Merge::Add, false) => format!("CAST(sum({}) AS bigint)", f.name),
        })
        .collect()
}

/// Recomputes one bucket of `tier` (start: parameter 1, end: parameter 2) from the rows of the
/// next finer tier inside it, every series at once, replacing what the bucket held.
pub(crate) fn roll_from_finer(dialect: Dialect, tier: Tier) -> String {
    let finer = tier.finer().expect("minutes are rolled from the raw rows");
    let (from, until) = (placeholder(dialect, 1), placeholder(dialect, 2));
    format!(
        "INSERT INTO {} ({})
         SELECT target, vantage, CAST({from} AS bigint), {} FROM {}
         WHERE start_unix_ms >= {from} AND start_unix_ms < {until}
         GROUP BY target, vantage
         {}",
        tier.table(),
        all_columns(),
        aggregates().join(", "),
        finer.table(),
        replace_clause()
    )
}

/// The figures of a bucket as aggregates over its raw rows' groups ([`raw_groups`]), in
/// [`figures`] order: the same rules as [`crate::rollup::Rollup::add`] (a down check counts under its reason, one
/// this build doesn't know as `other`; latency and histogram over the checks that answered;
/// bucket bounds are [`crate::rollup::bucket_lower_ms`]'s, written out exactly).
fn raw_aggregates() -> Vec<String> {
    let count = |condition: String| format!("sum(CASE WHEN {condition} THEN n ELSE 0 END)");
    let mut aggregates = vec![
        "sum(n)".to_string(),
        count("outcome = 'up'".into()),
        count("outcome = 'degraded'".into()),
        count("outcome = 'down'".into()),
    ];
    let known: Vec<String> = Reason::ALL
        .iter()
        .filter(|r| **r != Reason::Other)
        .map(|r| format!("'{}'", r.as_str()))
        .collect();
    for reason in Reason::ALL {
        aggregates.push(count(if reason == Reason::Other {
            format!(
                "outcome = 'down' AND (reason IS NULL OR reason NOT IN ({}))",
                known.join(", ")
            )
        } else {
            format!("outcome = 'down' AND reason = '{}'", reason.as_str())
        }));
    }
    let answered = "outcome <> 'down'";
    aggregates.push(format!("min(CASE WHEN {answered} THEN lmin END)"));
    aggregates.push(format!("max(CASE WHEN {answered} THEN lmax END)"));
    aggregates.push(format!(
        "coalesce(sum(CASE WHEN {answered} THEN lsum END), 0)"
    ));
    for k in 0..BUCKETS {
        aggregates.push(count(format!("{answered} AND b = {k}")));
    }
    // One type per figure in both dialects (PostgreSQL's sums of integers are numeric).
    aggregates
        .into_iter()
        .zip(figures())
        .map(|(a, f)| {
            let ty = if f.float {
                "double precision"
            } else {
                "bigint"
            };
            format!("CAST({a} AS {ty})")
        })
        .collect()
}

/// The time column of `results` in `dialect`.
fn ts_column(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "ts_unix_ms",
        Dialect::Postgres => "ts",
    }
}

/// Recomputes one bucket of `tier` (start: parameter 1) from the raw rows in
/// `[parameter 2, parameter 3)` (the bucket's span, as `results` keeps time), every series at
/// once, replacing what the bucket held.
pub(crate) fn roll_from_raw(dialect: Dialect, tier: Tier) -> String {
    let p = |n| placeholder(dialect, n);
    format!(
        "INSERT INTO {} ({})
         SELECT target, vantage, CAST({} AS bigint), {} FROM ({}) g
         GROUP BY target, vantage
         {}",
        tier.table(),
        all_columns(),
        p(1),
        raw_aggregates().join(", "),
        raw_groups(dialect, None, &p(2), &p(3)),
        replace_clause()
    )
}

/// Writes the minute roll-ups of the raw rows in `[parameter 1, parameter 2)`: what retention
/// keeps of raw rows once they go (minutes are read from the raw rows while those last).
pub(crate) fn roll_minutes_from_raw(dialect: Dialect) -> String {
    let p = |n| placeholder(dialect, n);
    let minute = match dialect {
        Dialect::Sqlite => "(ts_unix_ms / 60000) * 60000".to_string(),
        Dialect::Postgres => {
            "CAST(floor(extract(epoch FROM ts) / 60) * 60000 AS bigint)".to_string()
        }
    };
    format!(
        "INSERT INTO rollups_minute ({})
         SELECT target, vantage, minute, {} FROM ({}) g
         GROUP BY target, vantage, minute
         {}",
        all_columns(),
        raw_aggregates().join(", "),
        raw_groups(dialect, Some(&minute), &p(1), &p(2)),
        replace_clause()
    )
}

/// The raw rows in `[from, until)` grouped by series (and `minute`, if given), outcome, reason
/// and latency bucket: `n` checks, their latency's min, max and sum. [`raw_aggregates`] adds
/// these up per bucket of a tier. Two steps because the per-row work is then one bucket search
/// and four aggregates, not the 45 conditional sums of a roll-up row (which made rolling an
/// hour of 10,000 series cost about as much as writing it).
fn raw_groups(dialect: Dialect, minute: Option<&str>, from: &str, until: &str) -> String {
    let ts = ts_column(dialect);
    // `{:?}` writes the shortest decimal that reads back as the same double.
    let bound = |k: usize| format!("{:?}", crate::rollup::bucket_lower_ms(k));
    let mut search = String::from("CASE WHEN latency_ms IS NULL THEN NULL");
    for k in 1..BUCKETS {
        search.push_str(&format!(" WHEN latency_ms < {} THEN {}", bound(k), k - 1));
    }
    search.push_str(&format!(" ELSE {} END", BUCKETS - 1));
    let (minute_column, minute_key) = match minute {
        Some(expression) => (format!(", {expression} AS minute"), ", minute"),
        None => (String::new(), ""),
    };
    format!(
        "SELECT target, vantage{minute_column}, outcome, reason, {search} AS b, count(*) AS n,
                min(latency_ms) AS lmin, max(latency_ms) AS lmax, sum(latency_ms) AS lsum
         FROM results WHERE {ts} >= {from} AND {ts} < {until}
         GROUP BY target, vantage{minute_key}, outcome, reason, b"
    )
}

/// Migration 7: a table per packed tier ([`crate::pack`]), keyed by series and span start,
/// with an index on the span start (reads across every series, retention).
pub(crate) fn create_packed_tables(dialect: Dialect) -> Vec<String> {
    let (int, text) = (int_type(dialect), text_type(dialect));
    let blob = match dialect {
        Dialect::Sqlite => "BLOB",
        Dialect::Postgres => "bytea",
    };
    let mut statements = Vec::new();
    for tier in Tier::ALL {
        let Some(table) = crate::pack::table(tier) else {
            continue;
        };
        // A rowid table in SQLite: a packed row is about a kilobyte, more than a key-ordered
        // (WITHOUT ROWID) table keeps in its pages without overflow.
        statements.push(format!(
            "CREATE TABLE {table} (
    target {text} NOT NULL,
    vantage {text} NOT NULL,
    span_start_unix_ms {int} NOT NULL,
    data {blob} NOT NULL,
    UNIQUE (target, vantage, span_start_unix_ms)
)"
        ));
        statements.push(format!(
            "CREATE INDEX {table}_start ON {table} (span_start_unix_ms)"
        ));
    }
    statements
}

/// A packed tier's rows whose span starts in `[parameter 1, parameter 2)`, of one target
/// (parameter 3) or all.
pub(crate) fn select_packed(dialect: Dialect, table: &str, one_target: bool) -> String {
    let filter = if one_target {
        format!(" AND target = {}", placeholder(dialect, 3))
    } else {
        String::new()
    };
    format!(
        "SELECT target, vantage, span_start_unix_ms, data FROM {table}
         WHERE span_start_unix_ms >= {} AND span_start_unix_ms < {}{filter}",
        placeholder(dialect, 1),
        placeholder(dialect, 2)
    )
}

/// Writes one packed row (parameters: target, vantage, span start, data), replacing it.
pub(crate) fn upsert_packed(dialect: Dialect, table: &str) -> String {
    let p = |n| placeholder(dialect, n);
    format!(
        "INSERT INTO {table} (target, vantage, span_start_unix_ms, data) VALUES ({}, {}, {}, {})
         ON CONFLICT (target, vantage, span_start_unix_ms) DO UPDATE SET data = excluded.data",
        p(1),
        p(2),
        p(3),
        p(4)
    )
}

/// Migration 5: the buckets whose stored figures don't yet hold every record, and how far
/// retention has dropped each source (see [`crate::roller`]).
pub(crate) fn create_pending_tables(dialect: Dialect) -> Vec<String> {
    let (int, text) = (int_type(dialect), text_type(dialect));
    let mut statements = vec![
        format!(
            "CREATE TABLE rollup_pending (
    tier {text} NOT NULL,
    start_unix_ms {int} NOT NULL,
    version {int} NOT NULL,
    PRIMARY KEY (tier, start_unix_ms)
)"
        ),
        format!(
            "CREATE TABLE rollup_pruned (
    source {text} PRIMARY KEY,
    until_unix_ms {int} NOT NULL
)"
        ),
    ];
    if dialect == Dialect::Postgres {
        // The roller reads a minute of raw rows across every target: a block-range index on
        // the time is a few pages per day partition and costs the `COPY` next to nothing,
        // where a b-tree would be a third copy of every row's key.
        statements.push("CREATE INDEX results_ts_brin ON results USING brin (ts) WITH (pages_per_range = 32, autosummarize = on)".into());
    }
    statements
}

/// Marks `rows` buckets pending (parameters per row: tier, start). A bucket marked already
/// gets a new version, so a roller that read it before this write leaves it marked.
pub(crate) fn mark_pending(dialect: Dialect, rows: usize) -> String {
    let tuples: Vec<String> = (0..rows)
        .map(|row| {
            format!(
                "({}, {}, 1)",
                placeholder(dialect, 2 * row + 1),
                placeholder(dialect, 2 * row + 2)
            )
        })
        .collect();
    format!(
        "INSERT INTO rollup_pending (tier, start_unix_ms, version) VALUES {}
         ON CONFLICT (tier, start_unix_ms) DO UPDATE SET version = rollup_pending.version + 1",
        tuples.join(", ")
    )
}

pub(crate) const SELECT_PENDING: &str =
    "SELECT tier, start_unix_ms, version FROM rollup_pending ORDER BY tier, start_unix_ms";

/// Unmarks a bucket (tier, start: parameters 1, 2) unless a write marked it again since its
/// version (parameter 3) was read.
pub(crate) fn unmark_pending(dialect: Dialect) -> String {
    let p = |n| placeholder(dialect, n);
    format!(
        "DELETE FROM rollup_pending WHERE tier = {} AND start_unix_ms = {} AND version = {}",
        p(1),
        p(2),
        p(3)
    )
}

pub(crate) const SELECT_PRUNED: &str = "SELECT source, until_unix_ms FROM rollup_pruned";

/// Records that retention dropped a source (parameter 1: `raw` or a tier) before parameter 2.
pub(crate) fn record_pruned(dialect: Dialect) -> String {
    let p = |n| placeholder(dialect, n);
    let greatest = match dialect {
        Dialect::Sqlite => "max",
        Dialect::Postgres => "GREATEST",
    };
    format!(
        "INSERT INTO rollup_pruned (source, until_unix_ms) VALUES ({}, {})
         ON CONFLICT (source) DO UPDATE SET until_unix_ms =
           {greatest}(rollup_pruned.until_unix_ms, excluded.until_unix_ms)",
        p(1),
        p(2)
    )
}

/// The parameters of [`upsert`] for `rows`.
pub(crate) fn upsert_params(rows: &[RollupRow]) -> Vec<Param<'_>> {
    let mut params = Vec::with_capacity(rows.len() * (3 + figures().len()));
    for row in rows {
        params.push(Param::Text(&row.target));
        params.push(Param::Text(&row.vantage));
        params.push(Param::Num(Num::Int(row.start_unix_ms)));
        params.extend(values(&row.rollup).into_iter().map(Param::Num));
    }
    params
}

/// One bound parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    Num(Num),
}

/// Rows of a tier in `[from, until)` (parameters 1 and 2), of one target (parameter 3) or all.
/// `summed`: one row per series with the figures added up (the bucket column is the first
/// bucket's start), else every bucket, oldest first. `in_key_order`: read the table in its key
/// order (series, then time) instead of through its index on the bucket start — SQLite's
/// choice for a long range across every series, see [`reads_in_key_order`].
pub(crate) fn select(
    dialect: Dialect,
    tier: Tier,
    summed: bool,
    one_target: bool,
    in_key_order: bool,
) -> String {
    let table = tier.table();
    let filter = if one_target {
        format!(" AND target = {}", placeholder(dialect, 3))
    } else {
        String::new()
    };
    let (from, until) = (placeholder(dialect, 1), placeholder(dialect, 2));
    // A unary `+` keeps the planner off the start index for these terms.
    let start = if in_key_order {
        "+start_unix_ms"
    } else {
        "start_unix_ms"
    };
    let range = format!("{start} >= {from} AND {start} < {until}{filter}");
    if summed {
        format!(
            "SELECT target, vantage, min(start_unix_ms), {} FROM {table}
             WHERE {range}
             GROUP BY target, vantage ORDER BY target, vantage",
            aggregates().join(", ")
        )
    } else {
        let names: Vec<String> = figures().into_iter().map(|f| f.name).collect();
        format!(
            "SELECT target, vantage, start_unix_ms, {} FROM {table}
             WHERE {range}
             ORDER BY target, vantage, start_unix_ms",
            names.join(", ")
        )
    }
}

/// Whether SQLite should read `query` in key order: a sum across every series over more than
/// a few weeks of days. Through the start index, each of the range's rows is a lookup in the
/// key-ordered table and the sums then need a sort by series: a 365-day window over 10,000
/// series took 16 s that way and 3.5 s in key order (which yields the rows grouped already).
/// For a short range the index reads far fewer rows.
pub(crate) fn reads_in_key_order(query: &crate::RollupQuery) -> bool {
    const DAY_MS: i64 = 86_400_000;
    query.summed
        && query.target.is_none()
        && query.tier == Tier::Day
        && query
            .range
            .until_unix_ms
            .saturating_sub(query.range.from_unix_ms)
            > 20 * DAY_MS
}

/// How stale a series' latest-check time may get while nothing about it changes: a row is
/// rewritten at once when its outcome, reason or labels change, and for its time alone once
/// it moved on this much — of data time in the SQLite sink's statement ([`upsert_series`]),
/// of wall time in the PostgreSQL writer's [`SeriesMemo`]. A page's "last checked" is then at
/// most about a minute behind, and most batches rewrite no series row.
pub(crate) const SERIES_REFRESH_MS: i64 = 60_000;

/// Keeps the latest check of one series (SQLite's sink, a statement per series). Parameters:
/// target, vantage, kind, domain, endpoint, last time, outcome, reason. (PostgreSQL binds the
/// same columns as arrays: [`UPSERT_SERIES_UNNEST`].)
pub(crate) fn upsert_series() -> String {
    format!(
        "INSERT INTO series (target, vantage, kind, domain, endpoint, last_unix_ms, last_outcome, last_reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         {}",
        series_conflict()
    )
}

/// [`upsert_series`] for PostgreSQL with one array per column: one statement text whatever the
/// batch's size, so the server parses and plans eight parameters, not eight per series. How
/// often a row is rewritten is [`SeriesMemo`]'s business; here a newer (or as new) check wins,
/// so a flush of checks that moved on less than [`SERIES_REFRESH_MS`] is not refused.
pub(crate) const UPSERT_SERIES_UNNEST: &str =
    "INSERT INTO series (target, vantage, kind, domain, endpoint, last_unix_ms, last_outcome, last_reason)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                          $6::bigint[], $7::text[], $8::text[])
     ON CONFLICT (target, vantage) DO UPDATE SET kind = excluded.kind, domain = excluded.domain,
       endpoint = excluded.endpoint, last_unix_ms = excluded.last_unix_ms,
       last_outcome = excluded.last_outcome, last_reason = excluded.last_reason
     WHERE excluded.last_unix_ms >= series.last_unix_ms";

/// A stored series takes a newer latest check only when something a page shows changed or its
/// time moved on by [`SERIES_REFRESH_MS`].
fn series_conflict() -> String {
    format!(
        "ON CONFLICT (target, vantage) DO UPDATE SET kind = excluded.kind, domain = excluded.domain,
           endpoint = excluded.endpoint, last_unix_ms = excluded.last_unix_ms,
           last_outcome = excluded.last_outcome, last_reason = excluded.last_reason
         WHERE excluded.last_unix_ms >= series.last_unix_ms
           AND (excluded.last_outcome <> series.last_outcome
             OR excluded.last_reason IS DISTINCT FROM series.last_reason
             OR excluded.kind <> series.kind
             OR excluded.domain IS DISTINCT FROM series.domain
             OR excluded.endpoint IS DISTINCT FROM series.endpoint
             OR excluded.last_unix_ms >= series.last_unix_ms + {SERIES_REFRESH_MS})"
    )
}

pub(crate) const SELECT_SERIES: &str =
    "SELECT target, vantage, kind, domain, endpoint, last_unix_ms, last_outcome, last_reason
     FROM series ORDER BY target, vantage";

/// One series' latest check as `series` stores it: what [`UPSERT_SERIES_UNNEST`] binds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SeriesRow {
    pub target: String,
    pub vantage: String,
    pub kind: &'static str,
    pub domain: Option<String>,
    pub endpoint: Option<String>,
    pub ts_unix_ms: i64,
    pub outcome: netvantage_core::Outcome,
    pub reason: Option<Reason>,
}

impl SeriesRow {
    pub(crate) fn of(r: &netvantage_core::ResultRecord) -> SeriesRow {
        let http = r.check.http.as_ref();
        SeriesRow {
            target: r.check.target.clone(),
            vantage: r.vantage.clone(),
            kind: r.check.kind.as_str(),
            domain: http.map(|h| h.domain.clone()),
            endpoint: http.map(|h| h.name.clone()),
            ts_unix_ms: r.check.ts_unix_ms,
            outcome: r.check.outcome,
            reason: r.check.reason,
        }
    }

    /// Whether a page would show something else than `before` apart from the time.
    fn changed_from(&self, before: &SeriesRow) -> bool {
        self.outcome != before.outcome
            || self.reason != before.reason
            || self.kind != before.kind
            || self.domain != before.domain
            || self.endpoint != before.endpoint
    }
}

/// The PostgreSQL writer's view of each series' latest check. A batch sends a series at once
/// when it is new to this writer or its outcome, reason or labels changed (a state change a
/// page shows); a series whose check only moved on in time waits here, newest first, and all
/// of those go in one statement once [`SERIES_REFRESH_MS`] of wall time passed since the last
/// such flush (the roller's pass asks, and shutdown flushes the rest). So a page's "last
/// checked" is at most about a minute behind, and replaying an hour's backlog rewrites each
/// series row once, not once per minute of the backlog (each rewrite is a new row version that
/// cost PostgreSQL about a third of the batch's raw rows). The statement's own `WHERE` keeps a
/// stored row that is newer (another writer's) whatever this memo says.
#[derive(Debug)]
pub(crate) struct SeriesMemo {
    written: std::collections::HashMap<(String, String), SeriesRow>,
    waiting: std::collections::HashMap<(String, String), SeriesRow>,
    last_flush: std::time::Instant,
}

impl Default for SeriesMemo {
    fn default() -> Self {
        SeriesMemo {
            written: Default::default(),
            waiting: Default::default(),
            last_flush: std::time::Instant::now(),
        }
    }
}

impl SeriesMemo {
    /// Of the latest records of a batch, those the store needs now; the others wait.
    pub(crate) fn take_batch(
        &mut self,
        latest: Vec<&netvantage_core::ResultRecord>,
    ) -> Vec<SeriesRow> {
        let mut now = Vec::new();
        for r in latest {
            let key = (r.check.target.clone(), r.vantage.clone());
            let row = SeriesRow::of(r);
            match self.written.get(&key) {
                None => {
                    self.waiting.remove(&key);
                    now.push(row);
                }
                Some(before) if row.ts_unix_ms < before.ts_unix_ms => {}
                Some(before) if row.changed_from(before) => {
                    self.waiting.remove(&key);
                    now.push(row);
                }
                Some(before) if row.ts_unix_ms > before.ts_unix_ms => {
                    let newer = self
                        .waiting
                        .get(&key)
                        .is_none_or(|w| row.ts_unix_ms >= w.ts_unix_ms);
                    if newer {
                        self.waiting.insert(key, row);
                    }
                }
                Some(_) => {}
            }
        }
        now
    }

    /// Whether the waiting checks are due ([`SERIES_REFRESH_MS`] of wall time since the last
    /// flush), or `force`d (shutdown): then they are taken, to be written.
    pub(crate) fn take_waiting(&mut self, now: std::time::Instant, force: bool) -> Vec<SeriesRow> {
        let due =
            now.saturating_duration_since(self.last_flush).as_millis() >= SERIES_REFRESH_MS as u128;
        if self.waiting.is_empty() || !(due || force) {
            return Vec::new();
        }
        self.last_flush = now;
        self.waiting.drain().map(|(_, row)| row).collect()
    }

    /// The rows the store took (after the commit).
    pub(crate) fn wrote(&mut self, rows: &[SeriesRow]) {
        for row in rows {
            self.written
                .insert((row.target.clone(), row.vantage.clone()), row.clone());
        }
    }

    /// Rows taken for a flush that failed: they wait again (unless newer ones came meanwhile).
    pub(crate) fn put_back(&mut self, rows: Vec<SeriesRow>) {
        for row in rows {
            let key = (row.target.clone(), row.vantage.clone());
            if self
                .waiting
                .get(&key)
                .is_none_or(|w| w.ts_unix_ms < row.ts_unix_ms)
            {
                self.waiting.insert(key, row);
            }
        }
    }
}

/// The latest record of each series in a batch: what [`upsert_series`] binds.
pub(crate) fn latest_per_series<'r>(
    records: impl IntoIterator<Item = &'r netvantage_core::ResultRecord>,
) -> Vec<&'r netvantage_core::ResultRecord> {
    let mut latest: std::collections::BTreeMap<(&str, &str), &netvantage_core::ResultRecord> =
        Default::default();
    for r in records {
        let slot = latest
            .entry((r.check.target.as_str(), r.vantage.as_str()))
            .or_insert(r);
        if r.check.ts_unix_ms >= slot.check.ts_unix_ms {
            *slot = r;
        }
    }
    latest.into_values().collect()
}

/// Deletes at most `LIMIT` (parameter 2) rows of `table` whose `column` is below parameter 1.
pub(crate) fn delete_batch(dialect: Dialect, table: &str, column: &str) -> String {
    match dialect {
        Dialect::Sqlite if table == "results" => format!(
            "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {column} < ?1 LIMIT ?2)"
        ),
        // The roll-up tables have no rowid: their key picks the rows.
        Dialect::Sqlite => format!(
            "DELETE FROM {table} WHERE (target, vantage, start_unix_ms) IN
             (SELECT target, vantage, start_unix_ms FROM {table} WHERE {column} < ?1 LIMIT ?2)"
        ),
        Dialect::Postgres => format!(
            "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {column} < $1 LIMIT $2))"
        ),
    }
}

/// The first start a tier keeps when it keeps `keep_ms` as of `now`: a bucket goes once it
/// ended at or before `now - keep_ms`.
pub(crate) fn first_kept_start(tier: Tier, now_unix_ms: i64, keep_ms: i64) -> i64 {
    now_unix_ms - keep_ms - tier.millis() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_the_figures() {
        let mut r = Rollup::default();
        r.add(netvantage_core::Outcome::Up, None, 12.5);
        r.add(netvantage_core::Outcome::Down, Some(Reason::Dns), 0.0);
        let values = values(&r);
        assert_eq!(values.len(), figures().len());
        assert_eq!(rollup_of(&values), r);
    }

    #[test]
    fn upserts_add_counts_and_keep_extremes_in_each_dialect() {
        let sqlite = upsert(Dialect::Sqlite, Tier::Hour, 2);
        let per_row = 3 + figures().len();
        assert!(sqlite.contains(&format!("?{}", 2 * per_row)));
        assert!(!sqlite.contains(&format!("?{}", 2 * per_row + 1)));
        assert!(sqlite.contains("checks = rollups_hour.checks + excluded.checks"));
        assert!(sqlite.contains("coalesce(min(rollups_hour.latency_min_ms"));
        let pg = upsert(Dialect::Postgres, Tier::Day, 1);
        assert!(pg.contains("LEAST(rollups_day.latency_min_ms, excluded.latency_min_ms)"));
        assert!(pg.contains("h27 = rollups_day.h27 + excluded.h27"));
    }

    fn check(target: &str, ts_unix_ms: i64, down: bool) -> netvantage_core::ResultRecord {
        let failure = down.then(|| (Reason::Refused, "refused".to_string()));
        netvantage_core::ResultRecord {
            id: uuid::Uuid::nil(),
            agent: "a".into(),
            vantage: "v".into(),
            check: netvantage_core::CheckResult::tcp(
                target.into(),
                None,
                ts_unix_ms,
                std::time::Duration::from_millis(3),
                failure,
            ),
        }
    }

    fn times(rows: &[SeriesRow]) -> Vec<(&str, i64)> {
        let mut t: Vec<(&str, i64)> = rows
            .iter()
            .map(|r| (r.target.as_str(), r.ts_unix_ms))
            .collect();
        t.sort();
        t
    }

    #[test]
    fn a_year_across_every_series_is_read_in_key_order_and_a_week_through_the_index() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(&create_tables(Dialect::Sqlite).join(";\n"))
            .unwrap();
        let plan = |in_key_order: bool| -> String {
            let text = select(Dialect::Sqlite, Tier::Day, true, false, in_key_order);
            let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {text}")).unwrap();
            let rows = statement
                .query_map((0i64, 1i64), |row| row.get::<_, String>(3))
                .unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        assert!(
            plan(false).contains("USING INDEX rollups_day_start"),
            "{}",
            plan(false)
        );
        let scan = plan(true);
        assert!(
            scan.contains("SCAN rollups_day") && !scan.contains("TEMP B-TREE"),
            "{scan}"
        );
        const DAY: i64 = 86_400_000;
        let query =
            |tier: Tier, days: i64, target: Option<&str>, summed: bool| crate::RollupQuery {
                tier,
                range: crate::TimeRange {
                    from_unix_ms: 100 * DAY,
                    until_unix_ms: (100 + days) * DAY,
                },
                target: target.map(str::to_string),
                summed,
            };
        assert!(reads_in_key_order(&query(Tier::Day, 364, None, true)));
        assert!(reads_in_key_order(&query(Tier::Day, 29, None, true)));
        assert!(!reads_in_key_order(&query(Tier::Day, 6, None, true)));
        assert!(!reads_in_key_order(&query(Tier::Day, 364, Some("a"), true)));
        assert!(!reads_in_key_order(&query(Tier::Day, 364, None, false)));
        assert!(!reads_in_key_order(&query(Tier::Hour, 364, None, true)));
    }

    #[test]
    fn the_series_memo_sends_new_and_changed_series_at_once_and_mere_time_once_a_minute() {
        let start = std::time::Instant::now();
        let mut memo = SeriesMemo {
            last_flush: start,
            ..SeriesMemo::default()
        };
        let (a0, b0) = (check("a", 1_000, false), check("b", 1_000, false));
        let first = memo.take_batch(vec![&a0, &b0]);
        assert_eq!(
            times(&first),
            [("a", 1_000), ("b", 1_000)],
            "new series go at once"
        );
        memo.wrote(&first);
        // a only moves on (twice), b goes down: b at once, a waits with its newest check.
        let (a1, a2, b1) = (
            check("a", 61_000, false),
            check("a", 121_000, false),
            check("b", 61_000, true),
        );
        assert_eq!(times(&memo.take_batch(vec![&a1, &b1])), [("b", 61_000)]);
        memo.wrote(&[SeriesRow::of(&b1)]);
        assert!(memo.take_batch(vec![&a2]).is_empty());
        // An older check than the one written is ignored.
        assert!(memo.take_batch(vec![&a0]).is_empty());
        let soon = start + std::time::Duration::from_millis(SERIES_REFRESH_MS as u64 - 1);
        assert!(
            memo.take_waiting(soon, false).is_empty(),
            "not due before a minute"
        );
        let due = start + std::time::Duration::from_millis(SERIES_REFRESH_MS as u64);
        let flushed = memo.take_waiting(due, false);
        assert_eq!(
            times(&flushed),
            [("a", 121_000)],
            "the newest waiting check"
        );
        assert!(
            memo.take_waiting(due, true).is_empty(),
            "nothing waits after a flush"
        );
        // A failed flush puts its rows back; force takes them before the minute.
        memo.put_back(flushed);
        assert_eq!(times(&memo.take_waiting(due, true)), [("a", 121_000)]);
    }
}

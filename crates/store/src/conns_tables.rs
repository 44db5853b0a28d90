//! The connection log's tables (`connections`, `scans`, `blocks`): one description per table,
//! from which both dialects' `CREATE TABLE` and insert are generated, as [`crate::columns`]
//! does for `results`. Each table is keyed by the record's id, so a redelivered record is
//! skipped, never stored twice. Created by migration 3.

use crate::columns::{Dialect, SqlType, Value};
use netvantage_core::{ConnsEvent, ConnsRecord};
use std::borrow::Cow;

/// One column of a connection-log table: name (SQLite appends `_unix_ms` to timestamps, as in
/// `results`), type, nullability.
pub struct ConnsColumn {
    pub name: &'static str,
    pub ty: SqlType,
    pub nullable: bool,
}

const fn col(name: &'static str, ty: SqlType, nullable: bool) -> ConnsColumn {
    ConnsColumn { name, ty, nullable }
}

/// The columns every record has, first in every table.
const COMMON: [ConnsColumn; 4] = [
    col("id", SqlType::Uuid, false),
    col("ts", SqlType::Timestamp, false),
    col("host", SqlType::Text, false),
    col("schema", SqlType::Integer, false),
];

pub struct ConnsTable {
    pub name: &'static str,
    /// The record kind (`ConnsEvent::kind`) stored here.
    pub kind: &'static str,
    /// The columns after [`COMMON`].
    pub columns: &'static [ConnsColumn],
}

pub const TABLES: &[ConnsTable] = &[
    ConnsTable {
        name: "connections",
        kind: "connection",
        columns: &[
            col("source", SqlType::Text, false),
            col("destination", SqlType::Text, false),
            col("direction", SqlType::Text, false),
        ],
    },
    ConnsTable {
        name: "scans",
        kind: "scan",
        columns: &[
            col("source", SqlType::Text, false),
            // Comma-separated, ascending, as the output line prints them.
            col("destinations", SqlType::Text, false),
            col("ports", SqlType::Text, false),
            col("closed_ports", SqlType::Integer, true),
        ],
    },
    ConnsTable {
        name: "blocks",
        kind: "block",
        columns: &[
            col("target", SqlType::Text, false),
            col("expires", SqlType::Timestamp, false),
            col("offenses", SqlType::Integer, false),
        ],
    },
];

fn name_in(column: &ConnsColumn, dialect: Dialect) -> Cow<'static, str> {
    match (dialect, column.ty) {
        (Dialect::Sqlite, SqlType::Timestamp) => format!("{}_unix_ms", column.name).into(),
        _ => column.name.into(),
    }
}

impl ConnsTable {
    fn all_columns(&self) -> impl Iterator<Item = &ConnsColumn> {
        COMMON.iter().chain(self.columns)
    }

    /// The table and its time index.
    pub fn create(&self, dialect: Dialect) -> Vec<String> {
        let mut definitions: Vec<String> = self
            .all_columns()
            .map(|c| {
                let not_null = if c.nullable { "" } else { " NOT NULL" };
                format!("{} {}{not_null}", name_in(c, dialect), c.ty.sql(dialect))
            })
            .collect();
        definitions.push("PRIMARY KEY (id)".into());
        let ts = name_in(&COMMON[1], dialect);
        vec![
            format!(
                "CREATE TABLE {} (\n    {}\n)",
                self.name,
                definitions.join(",\n    ")
            ),
            format!("CREATE INDEX {name}_ts ON {name} ({ts})", name = self.name),
        ]
    }

    /// The insert that skips an id already stored (only the key conflict is skipped).
    pub fn insert(&self, dialect: Dialect) -> String {
        let names: Vec<_> = self.all_columns().map(|c| name_in(c, dialect)).collect();
        let mark = match dialect {
            Dialect::Sqlite => '?',
            Dialect::Postgres => '$',
        };
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("{mark}{i}")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING",
            self.name,
            names.join(", "),
            placeholders.join(", ")
        )
    }
}

/// The table a record goes to.
pub fn table_of(record: &ConnsRecord) -> &'static ConnsTable {
    table_named(record.event.kind())
}

fn joined<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn int(n: u32) -> Value<'static> {
    i32::try_from(n).map_or(Value::Null, Value::Integer)
}

/// A record's values in its table's column order.
pub fn values(record: &ConnsRecord) -> Vec<Value<'_>> {
    let mut values = vec![
        Value::Uuid(record.id),
        Value::Timestamp(record.ts_unix_ms),
        Value::Text(Cow::Borrowed(&record.host)),
        int(record.schema),
    ];
    match &record.event {
        ConnsEvent::Connection {
            source,
            destination,
            direction,
        } => values.extend([
            Value::Text(source.to_string().into()),
            Value::Text(destination.to_string().into()),
            Value::Text(Cow::Borrowed(direction)),
        ]),
        ConnsEvent::Scan {
            source,
            destinations,
            ports,
            closed,
        } => values.extend([
            Value::Text(source.to_string().into()),
            Value::Text(joined(destinations).into()),
            Value::Text(joined(ports).into()),
            closed.map_or(Value::Null, int),
        ]),
        ConnsEvent::Block {
            target,
            until_unix_ms,
            offenses,
        } => values.extend([
            Value::Text(Cow::Borrowed(target)),
            Value::Timestamp(*until_unix_ms),
            int(*offenses),
        ]),
    }
    values
}

/// The table of a kind of record (`connection`, `scan`, `block`).
pub fn table_named(kind: &str) -> &'static ConnsTable {
    TABLES
        .iter()
        .find(|t| t.kind == kind)
        .unwrap_or_else(|| panic!("no table for {kind:?} records"))
}

impl ConnsTable {
    /// Every column's name in `dialect`, in table order: the `SELECT` list [`record_of`] reads.
    pub fn select_list(&self, dialect: Dialect) -> String {
        let names: Vec<_> = self.all_columns().map(|c| name_in(c, dialect)).collect();
        names.join(", ")
    }

    /// Every column's type, in table order.
    pub fn types(&self) -> impl Iterator<Item = SqlType> + '_ {
        self.all_columns().map(|c| c.ty)
    }

    /// The time column's name in `dialect`.
    pub fn ts(dialect: Dialect) -> Cow<'static, str> {
        name_in(&COMMON[1], dialect)
    }
}

fn uuid_of(value: &Value<'_>) -> Result<uuid::Uuid, String> {
    match value {
        Value::Uuid(u) => Ok(*u),
        other => Err(format!("expected a uuid, found {other:?}")),
    }
}

fn ms_of(value: &Value<'_>) -> Result<i64, String> {
    match value {
        Value::Timestamp(ms) => Ok(*ms),
        other => Err(format!("expected a timestamp, found {other:?}")),
    }
}

fn text_of<'v>(value: &'v Value<'_>) -> Result<&'v str, String> {
    match value {
        Value::Text(t) => Ok(t),
        other => Err(format!("expected text, found {other:?}")),
    }
}

fn count_of(value: &Value<'_>) -> Result<Option<u32>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Integer(i) => u32::try_from(*i)
            .map(Some)
            .map_err(|_| format!("{i} is negative")),
        other => Err(format!("expected an integer, found {other:?}")),
    }
}

/// Each item of a comma-separated list (empty: none), parsed.
fn list_of<T: std::str::FromStr>(text: &str) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    text.split(',')
        .filter(|item| !item.is_empty())
        .map(|item| item.parse().map_err(|e| format!("{item:?}: {e}")))
        .collect()
}

fn parsed<T: std::str::FromStr>(text: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| format!("{text:?}: {e}"))
}

/// The inverse of [`values`]: a record of `table`'s kind from a row's values in column order.
/// A value that doesn't parse is the error (naming it), never a record with a field dropped.
pub fn record_of(table: &ConnsTable, values: &[Value<'_>]) -> Result<ConnsRecord, String> {
    let expected = table.all_columns().count();
    if values.len() != expected {
        return Err(format!(
            "{} values for {expected} columns of {}",
            values.len(),
            table.name
        ));
    }
    let schema = count_of(&values[3])?.ok_or("schema is NULL")?;
    let event = match table.kind {
        "connection" => ConnsEvent::Connection {
            source: parsed(text_of(&values[4])?)?,
            destination: parsed(text_of(&values[5])?)?,
            direction: text_of(&values[6])?.to_string(),
        },
        "scan" => ConnsEvent::Scan {
            source: parsed(text_of(&values[4])?)?,
            destinations: list_of(text_of(&values[5])?)?,
            ports: list_of(text_of(&values[6])?)?,
            closed: count_of(&values[7])?,
        },
        "block" => ConnsEvent::Block {
            target: text_of(&values[4])?.to_string(),
            until_unix_ms: ms_of(&values[5])?,
            offenses: count_of(&values[6])?.ok_or("offenses is NULL")?,
        },
        other => return Err(format!("no record kind {other:?}")),
    };
    Ok(ConnsRecord {
        id: uuid_of(&values[0])?,
        schema,
        host: text_of(&values[2])?.to_string(),
        ts_unix_ms: ms_of(&values[1])?,
        event,
    })
}

/// Migration 6's indexes: each table by host and time, for one host's newest records.
pub fn host_indexes(dialect: Dialect) -> Vec<String> {
    let ts = ConnsTable::ts(dialect);
    TABLES
        .iter()
        .map(|t| {
            format!(
                "CREATE INDEX {name}_host_ts ON {name} (host, {ts})",
                name = t.name
            )
        })
        .collect()
}

/// Every table's statements, for the migration.
pub fn create_all(dialect: Dialect) -> Vec<String> {
    TABLES.iter().flat_map(|t| t.create(dialect)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_table_and_values_match_its_columns() {
        let id = uuid::Uuid::nil();
        let events = [
            ConnsEvent::Connection {
                source: "192.0.2.1:4000".parse().unwrap(),
                destination: "10.0.0.5:80".parse().unwrap(),
                direction: "inbound".into(),
            },
            ConnsEvent::Scan {
                source: "192.0.2.1".parse().unwrap(),
                destinations: vec!["10.0.0.5".parse().unwrap()],
                ports: vec![1, 2],
                closed: None,
            },
            ConnsEvent::Block {
                target: "192.0.2.1/32".into(),
                until_unix_ms: 9,
                offenses: 1,
            },
        ];
        for event in events {
            let record = ConnsRecord::new(id, "h", 1, event);
            let table = table_of(&record);
            assert_eq!(table.kind, record.event.kind());
            assert_eq!(values(&record).len(), table.all_columns().count());
            assert_eq!(record_of(table, &values(&record)).unwrap(), record);
        }
    }

    #[test]
    fn ddl_names_timestamps_by_dialect() {
        let blocks = &TABLES[2];
        let sqlite = blocks.create(Dialect::Sqlite).join(";");
        assert!(
            sqlite.contains("expires_unix_ms INTEGER NOT NULL"),
            "{sqlite}"
        );
        assert!(sqlite.contains("PRIMARY KEY (id)"));
        let postgres = blocks.create(Dialect::Postgres).join(";");
        assert!(
            postgres.contains("expires timestamptz NOT NULL"),
            "{postgres}"
        );
        assert!(
            blocks
                .insert(Dialect::Sqlite)
                .ends_with("VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING")
        );
    }
}

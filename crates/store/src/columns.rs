//! The one description of a stored [`ResultRecord`]: each column's name, type, nullability, the
//! migration that added it, how its value is read from a record and how it is written back.
//!
//! Everything else is generated from [`COLUMNS`]: the `CREATE TABLE` and `ALTER TABLE` of the
//! migrations in both dialects, SQLite's `INSERT`, PostgreSQL's binary `COPY`, the `SELECT`
//! lists and the row mappers. Adding a field to the record is one entry here (with the next
//! migration's version in `since`) and one [`crate::migrations::Step::AddColumns`].

use netvantage_core::{HttpDetails, Phases, ResultRecord};
use std::borrow::Cow;

/// The SQL dialects netvantage stores into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A column's type, named for what it holds; [`SqlType::sql`] gives each dialect's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    Uuid,
    /// A point in time. PostgreSQL: `timestamptz`. SQLite has no such type: milliseconds since
    /// the Unix epoch in an `INTEGER` column whose name ends in `_unix_ms`.
    Timestamp,
    Text,
    /// 32-bit.
    Integer,
    Float,
    Bool,
}

impl SqlType {
    pub fn sql(self, dialect: Dialect) -> &'static str {
        match (dialect, self) {
            (Dialect::Postgres, SqlType::Uuid) => "uuid",
            (Dialect::Postgres, SqlType::Timestamp) => "timestamptz",
            (Dialect::Postgres, SqlType::Text) => "text",
            (Dialect::Postgres, SqlType::Integer) => "integer",
            (Dialect::Postgres, SqlType::Float) => "double precision",
            (Dialect::Postgres, SqlType::Bool) => "boolean",
            (Dialect::Sqlite, SqlType::Uuid | SqlType::Text) => "TEXT",
            (Dialect::Sqlite, SqlType::Timestamp | SqlType::Integer | SqlType::Bool) => "INTEGER",
            (Dialect::Sqlite, SqlType::Float) => "REAL",
        }
    }

    /// The PostgreSQL wire type, for binary `COPY`.
    pub fn postgres_type(self) -> tokio_postgres::types::Type {
        use tokio_postgres::types::Type;
        match self {
            SqlType::Uuid => Type::UUID,
            SqlType::Timestamp => Type::TIMESTAMPTZ,
            SqlType::Text => Type::TEXT,
            SqlType::Integer => Type::INT4,
            SqlType::Float => Type::FLOAT8,
            SqlType::Bool => Type::BOOL,
        }
    }
}

/// One column's value, borrowed from a record (writing) or from a row (reading).
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Uuid(uuid::Uuid),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Text(Cow<'a, str>),
    Integer(i32),
    Float(f64),
    Bool(bool),
}

impl<'a> Value<'a> {
    fn text_of(text: Option<&'a str>) -> Value<'a> {
        text.map_or(Value::Null, |t| Value::Text(Cow::Borrowed(t)))
    }

    fn float_of(x: Option<f64>) -> Value<'a> {
        x.map_or(Value::Null, Value::Float)
    }

    fn wrong(&self, want: &str) -> String {
        format!("expected {want}, found {self:?}")
    }

    fn uuid(&self) -> Result<uuid::Uuid, String> {
        match self {
            Value::Uuid(u) => Ok(*u),
            other => Err(other.wrong("a uuid")),
        }
    }

    fn timestamp(&self) -> Result<i64, String> {
        match self {
            Value::Timestamp(ms) => Ok(*ms),
            other => Err(other.wrong("a timestamp")),
        }
    }

    fn text(&self) -> Result<&str, String> {
        match self {
            Value::Text(t) => Ok(t),
            other => Err(other.wrong("text")),
        }
    }

    fn integer(&self) -> Result<i32, String> {
        match self {
            Value::Integer(i) => Ok(*i),
            other => Err(other.wrong("an integer")),
        }
    }

    fn float(&self) -> Result<f64, String> {
        match self {
            Value::Float(x) => Ok(*x),
            other => Err(other.wrong("a number")),
        }
    }

    fn bool(&self) -> Result<bool, String> {
        match self {
            Value::Bool(b) => Ok(*b),
            other => Err(other.wrong("a boolean")),
        }
    }
}

/// One column of `results`.
pub struct Column {
    /// The name in PostgreSQL; SQLite's is the same, with `_unix_ms` appended for timestamps.
    pub name: &'static str,
    pub ty: SqlType,
    pub nullable: bool,
    /// The migration that added the column: a store at an older version doesn't have it, and a
    /// record read from it has the field's default.
    pub since: i32,
    /// The column's value for a record.
    pub get: fn(&ResultRecord) -> Value<'_>,
    /// Writes a stored (non-null) value back into a record.
    pub set: fn(&mut ResultRecord, &Value<'_>) -> Result<(), String>,
}

impl Column {
    pub fn name_in(&self, dialect: Dialect) -> Cow<'static, str> {
        match (dialect, self.ty) {
            (Dialect::Sqlite, SqlType::Timestamp) => format!("{}_unix_ms", self.name).into(),
            _ => self.name.into(),
        }
    }

    /// `name type [NOT NULL]`, for `CREATE TABLE` and `ALTER TABLE … ADD COLUMN`.
    pub fn definition(&self, dialect: Dialect) -> String {
        let not_null = if self.nullable { "" } else { " NOT NULL" };
        format!(
            "{} {}{not_null}",
            self.name_in(dialect),
            self.ty.sql(dialect)
        )
    }
}

fn phases(r: &mut ResultRecord) -> &mut Phases {
    r.check.phases.get_or_insert_with(Phases::default)
}

fn http(r: &mut ResultRecord) -> &mut HttpDetails {
    r.check.http.get_or_insert_with(HttpDetails::default)
}

fn phase(r: &ResultRecord, pick: fn(&Phases) -> Option<f64>) -> Value<'_> {
    Value::float_of(r.check.phases.as_ref().and_then(pick))
}

fn http_text(r: &ResultRecord, pick: fn(&HttpDetails) -> &str) -> Value<'_> {
    Value::text_of(r.check.http.as_ref().map(pick))
}

/// Every column of `results`, in table order. Never remove or retype one: add the next.
pub const COLUMNS: &[Column] = &[
    Column {
        name: "id",
        ty: SqlType::Uuid,
        nullable: false,
        since: 1,
        get: |r| Value::Uuid(r.id),
        set: |r, v| {
            r.id = v.uuid()?;
            Ok(())
        },
    },
    Column {
        name: "ts",
        ty: SqlType::Timestamp,
        nullable: false,
        since: 1,
        get: |r| Value::Timestamp(r.check.ts_unix_ms),
        set: |r, v| {
            r.check.ts_unix_ms = v.timestamp()?;
            Ok(())
        },
    },
    Column {
        name: "agent",
        ty: SqlType::Text,
        nullable: false,
        since: 1,
        get: |r| Value::Text(Cow::Borrowed(&r.agent)),
        set: |r, v| {
            r.agent = v.text()?.to_string();
            Ok(())
        },
    },
    Column {
        name: "vantage",
        ty: SqlType::Text,
        nullable: false,
        since: 1,
        get: |r| Value::Text(Cow::Borrowed(&r.vantage)),
        set: |r, v| {
            r.vantage = v.text()?.to_string();
            Ok(())
        },
    },
    Column {
        name: "kind",
        ty: SqlType::Text,
        nullable: false,
        since: 1,
        get: |r| Value::Text(Cow::Borrowed(r.check.kind.as_str())),
        set: |r, v| {
            r.check.kind = v.text()?.parse()?;
            Ok(())
        },
    },
    Column {
        name: "target",
        ty: SqlType::Text,
        nullable: false,
        since: 1,
        get: |r| Value::Text(Cow::Borrowed(&r.check.target)),
        set: |r, v| {
            r.check.target = v.text()?.to_string();
            Ok(())
        },
    },
    Column {
        name: "address",
        ty: SqlType::Text,
        nullable: true,
        since: 1,
        get: |r| {
            r.check
                .address
                .map_or(Value::Null, |a| Value::Text(a.to_string().into()))
        },
        set: |r, v| {
            let text = v.text()?;
            let address = text.parse().map_err(|e| format!("address {text:?}: {e}"))?;
            r.check.address = Some(address);
            Ok(())
        },
    },
    Column {
        name: "outcome",
        ty: SqlType::Text,
        nullable: false,
        since: 1,
        get: |r| Value::Text(Cow::Borrowed(r.check.outcome.as_str())),
        set: |r, v| {
            r.check.outcome = v.text()?.parse()?;
            Ok(())
        },
    },
    Column {
        name: "reason",
        ty: SqlType::Text,
        nullable: true,
        since: 1,
        get: |r| Value::text_of(r.check.reason.map(|reason| reason.as_str())),
        set: |r, v| {
            r.check.reason = Some(v.text()?.parse()?);
            Ok(())
        },
    },
    Column {
        name: "latency_ms",
        ty: SqlType::Float,
        nullable: false,
        since: 1,
        get: |r| Value::Float(r.check.latency_ms),
        set: |r, v| {
            r.check.latency_ms = v.float()?;
            Ok(())
        },
    },
    Column {
        name: "error",
        ty: SqlType::Text,
        nullable: true,
        since: 1,
        get: |r| Value::text_of(r.check.error.as_deref()),
        set: |r, v| {
            r.check.error = Some(v.text()?.to_string());
            Ok(())
        },
    },
    Column {
        name: "status",
        ty: SqlType::Integer,
        nullable: true,
        since: 1,
        get: |r| {
            r.check
                .status
                .map_or(Value::Null, |s| Value::Integer(s.into()))
        },
        set: |r, v| {
            let status = v.integer()?;
            let status = u16::try_from(status).map_err(|_| format!("status {status}"))?;
            r.check.status = Some(status);
            Ok(())
        },
    },
    Column {
        name: "dns_ms",
        ty: SqlType::Float,
        nullable: true,
        since: 1,
        get: |r| phase(r, |p| p.dns_ms),
        set: |r, v| {
            phases(r).dns_ms = Some(v.float()?);
            Ok(())
        },
    },
    Column {
        name: "connect_ms",
        ty: SqlType::Float,
        nullable: true,
        since: 1,
        get: |r| phase(r, |p| p.connect_ms),
        set: |r, v| {
            phases(r).connect_ms = Some(v.float()?);
            Ok(())
        },
    },
    Column {
        name: "tls_ms",
        ty: SqlType::Float,
        nullable: true,
        since: 1,
        get: |r| phase(r, |p| p.tls_ms),
        set: |r, v| {
            phases(r).tls_ms = Some(v.float()?);
            Ok(())
        },
    },
    Column {
        name: "first_byte_ms",
        ty: SqlType::Float,
        nullable: true,
        since: 1,
        get: |r| phase(r, |p| p.first_byte_ms),
        set: |r, v| {
            phases(r).first_byte_ms = Some(v.float()?);
            Ok(())
        },
    },
    Column {
        name: "total_ms",
        ty: SqlType::Float,
        nullable: true,
        since: 1,
        get: |r| phase(r, |p| p.total_ms),
        set: |r, v| {
            phases(r).total_ms = Some(v.float()?);
            Ok(())
        },
    },
    Column {
        name: "body_matched",
        ty: SqlType::Bool,
        nullable: true,
        since: 1,
        get: |r| r.check.body_matched.map_or(Value::Null, Value::Bool),
        set: |r, v| {
            r.check.body_matched = Some(v.bool()?);
            Ok(())
        },
    },
    Column {
        name: "endpoint",
        ty: SqlType::Text,
        nullable: true,
        since: 1,
        get: |r| http_text(r, |h| &h.name),
        set: |r, v| {
            http(r).name = v.text()?.to_string();
            Ok(())
        },
    },
    Column {
        name: "schema",
        ty: SqlType::Integer,
        nullable: true,
        since: 2,
        get: |r| i32::try_from(r.check.schema).map_or(Value::Null, Value::Integer),
        set: |r, v| {
            let schema = v.integer()?;
            let schema = u32::try_from(schema).map_err(|_| format!("schema {schema}"))?;
            r.check.schema = schema;
            Ok(())
        },
    },
    Column {
        name: "http_method",
        ty: SqlType::Text,
        nullable: true,
        since: 2,
        get: |r| http_text(r, |h| &h.method),
        set: |r, v| {
            http(r).method = v.text()?.to_string();
            Ok(())
        },
    },
    Column {
        name: "http_domain",
        ty: SqlType::Text,
        nullable: true,
        since: 2,
        get: |r| http_text(r, |h| &h.domain),
        set: |r, v| {
            http(r).domain = v.text()?.to_string();
            Ok(())
        },
    },
    Column {
        name: "tls_cert_not_after",
        ty: SqlType::Timestamp,
        nullable: true,
        since: 2,
        get: |r| {
            let not_after = r.check.http.as_ref();
            let not_after = not_after.and_then(|h| h.tls_cert_not_after_unix_ms);
            not_after.map_or(Value::Null, Value::Timestamp)
        },
        set: |r, v| {
            http(r).tls_cert_not_after_unix_ms = Some(v.timestamp()?);
            Ok(())
        },
    },
];

/// The columns a store at schema `version` has.
pub fn columns_at(version: i32) -> impl Iterator<Item = &'static Column> {
    COLUMNS.iter().filter(move |c| c.since <= version)
}

/// The column named `name` (a name from [`COLUMNS`]; anything else is a bug here).
pub(crate) fn column(name: &str) -> &'static Column {
    COLUMNS
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column {name:?} in COLUMNS"))
}

/// `a, b, c` in `dialect`, for the columns of schema `version`.
pub(crate) fn list(dialect: Dialect, version: i32) -> String {
    columns_at(version)
        .map(|c| c.name_in(dialect))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds a record from a row's values, given in the order of [`columns_at`]. A field whose
/// column is missing (an older store) or NULL keeps its default: no address, no phases, no
/// HTTP details, schema 1 (the only one before the column existed).
pub fn record_from<'v>(
    values: impl IntoIterator<Item = (&'static Column, Value<'v>)>,
) -> Result<ResultRecord, String> {
    let mut record = ResultRecord {
        id: uuid::Uuid::nil(),
        agent: String::new(),
        vantage: String::new(),
        check: netvantage_core::CheckResult::tcp(
            String::new(),
            None,
            0,
            std::time::Duration::ZERO,
            None,
        ),
    };
    record.check.schema = 1;
    for (column, value) in values {
        match value {
            Value::Null if column.nullable => {}
            Value::Null => return Err(format!("{}: NULL in a NOT NULL column", column.name)),
            value => {
                (column.set)(&mut record, &value).map_err(|e| format!("{}: {e}", column.name))?
            }
        }
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_unique_and_versions_only_grow() {
        let mut names: Vec<_> = COLUMNS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COLUMNS.len());
        assert!(COLUMNS.windows(2).all(|w| w[0].since <= w[1].since));
        assert!(
            COLUMNS.iter().filter(|c| c.since > 1).all(|c| c.nullable),
            "a column added later must be nullable: older rows have no value"
        );
    }

    #[test]
    fn sqlite_names_timestamps_by_their_unit() {
        assert_eq!(column("ts").name_in(Dialect::Sqlite), "ts_unix_ms");
        assert_eq!(column("ts").name_in(Dialect::Postgres), "ts");
        assert_eq!(
            column("status").definition(Dialect::Postgres),
            "status integer"
        );
        assert_eq!(
            column("agent").definition(Dialect::Sqlite),
            "agent TEXT NOT NULL"
        );
    }
}

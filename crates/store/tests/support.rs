//! Fixtures for the store tests: a fresh store of either backend — a SQLite file in a
//! directory of its own, or a PostgreSQL database of its own (`netvantage_testkit::Database`,
//! on 127.0.0.1:5432, dropped afterwards) — and records to put in it.
#![allow(dead_code, unused_macros)] // each test file uses its own part of it

use netvantage_core::{
    CheckResult, HttpDetails, HttpObservation, Outcome, Phases, Reason, ResultRecord,
};
use netvantage_store::{AnyStore, Location, ResultsQuery, Store, TimeRange};
use netvantage_testkit::{Database, Scratch, psql};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Instantiates each listed test (an `async fn NAME(Fixture)` of the including file) once
/// per backend, as `sqlite::NAME` and `postgres::NAME`.
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Fixture::new(super::Backend::Sqlite).await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Fixture::new(super::Backend::Postgres).await).await
                }
            )*
        }
    };
}

/// The server the tests use, as the `postgres` superuser (testkit's [`Database`] lives there).
pub const POSTGRES: &str = "host=127.0.0.1 port=5432 user=postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs SQL that must succeed as the superuser in `database`; psql's unaligned output.
pub fn sql(database: &str, sql: &str) -> String {
    psql(database, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A fresh, empty store of one backend: nothing is created until a writer opens it.
pub struct Fixture {
    pub backend: Backend,
    pub location: Location,
    pub dir: Scratch,
    pub database: Option<Database>,
}

impl Fixture {
    pub async fn new(backend: Backend) -> Fixture {
        let dir = Scratch::new();
        let (location, database) = match backend {
            Backend::Sqlite => (Location::Sqlite(dir.join("netvantage.db")), None),
            Backend::Postgres => {
                let database = Database::new("nvstore");
                (Location::Postgres(database.url()), Some(database))
            }
        };
        Fixture {
            backend,
            location,
            dir,
            database,
        }
    }

    pub fn sqlite_path(&self) -> PathBuf {
        match &self.location {
            Location::Sqlite(path) => path.clone(),
            Location::Postgres(_) => panic!("not a SQLite fixture"),
        }
    }

    pub async fn writer(&self) -> AnyStore {
        AnyStore::open_writer(&self.location)
            .await
            .unwrap_or_else(|e| panic!("open a writer: {e}"))
    }

    pub async fn reader(&self) -> AnyStore {
        AnyStore::open_reader(&self.location)
            .await
            .unwrap_or_else(|e| panic!("open a reader: {e}"))
    }

    /// Runs SQL straight on the store, around netvantage (to lay out an earlier release's
    /// store, or to look at what is there).
    pub async fn execute(&self, sql: &str) {
        match &self.database {
            Some(db) => {
                db.query(sql);
            }
            None => rusqlite::Connection::open(self.sqlite_path())
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
        }
    }

    /// The first column of every row of `sql`, as text.
    pub async fn column(&self, sql: &str) -> Vec<String> {
        match &self.database {
            Some(db) => db.query(sql).lines().map(str::to_string).collect(),
            None => {
                let conn = rusqlite::Connection::open(self.sqlite_path()).unwrap();
                let mut statement = conn.prepare(sql).unwrap();
                statement
                    .query_map([], |row| {
                        let value: rusqlite::types::Value = row.get(0)?;
                        Ok(match value {
                            rusqlite::types::Value::Null => "NULL".to_string(),
                            rusqlite::types::Value::Integer(i) => i.to_string(),
                            rusqlite::types::Value::Real(x) => x.to_string(),
                            rusqlite::types::Value::Text(t) => t,
                            rusqlite::types::Value::Blob(b) => format!("{b:?}"),
                        })
                    })
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            }
        }
    }

    /// `(version, description)` of every migration the store recorded, in order.
    pub async fn migrations_recorded(&self) -> Vec<String> {
        self.column(
            "SELECT version || ' ' || description FROM netvantage_migrations ORDER BY version",
        )
        .await
    }

    /// Lays out the store as the release before this crate made it
    /// (`tests/fixtures/legacy_v1.*.sql`), holding `record` (as its agent, `a` at `lab`, up in
    /// 1.5 ms).
    pub async fn lay_out_legacy_version_1(&self, record: &ResultRecord) {
        let (layout, insert) = match self.backend {
            Backend::Sqlite => (
                include_str!("fixtures/legacy_v1.sqlite.sql"),
                format!(
                    "INSERT INTO results (id, ts_unix_ms, agent, vantage, kind, target, outcome,
                     latency_ms) VALUES ('{}', {}, 'a', 'lab', 'tcp', '{}', 'up', 1.5)",
                    record.id, record.check.ts_unix_ms, record.check.target
                ),
            ),
            Backend::Postgres => {
                // The day partition that release created for the record's day.
                let day = record.check.ts_unix_ms.div_euclid(86_400_000);
                let name = netvantage_store::postgres::partition_name(day).unwrap();
                let from = time::OffsetDateTime::from_unix_timestamp(day * 86_400)
                    .unwrap()
                    .date();
                let to = from.next_day().unwrap();
                (
                    include_str!("fixtures/legacy_v1.postgres.sql"),
                    format!(
                        "CREATE TABLE {name} PARTITION OF results
                         FOR VALUES FROM ('{from} 00:00:00+00') TO ('{to} 00:00:00+00');
                         INSERT INTO results (id, ts, agent, vantage, kind, target, outcome,
                         latency_ms) VALUES ('{}', to_timestamp({} / 1000.0), 'a', 'lab',
                         'tcp', '{}', 'up', 1.5)",
                        record.id, record.check.ts_unix_ms, record.check.target
                    ),
                )
            }
        };
        self.execute(layout).await;
        self.execute(&insert).await;
    }
}

/// Every record of `target` in `range`, walking all pages of `page` records.
pub async fn all_results(
    store: &impl Store,
    target: &str,
    range: TimeRange,
    page: u32,
) -> Vec<ResultRecord> {
    let mut query = ResultsQuery::new(target, range, page);
    let mut all = Vec::new();
    for _ in 0..10_000 {
        let got = store.results(&query).await.unwrap();
        assert!(got.records.len() <= page as usize);
        all.extend(got.records);
        match got.next {
            Some(next) => query.after = Some(next),
            None => return all,
        }
    }
    panic!("more than 10,000 pages");
}

/// A TCP check of `target` at `ts`: up, or failed for `failure`.
pub fn tcp(target: &str, ts: i64, failure: Option<Reason>) -> ResultRecord {
    let address: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    ResultRecord {
        id: uuid::Uuid::now_v7(),
        agent: "agent-1".into(),
        vantage: "lab".into(),
        check: CheckResult::tcp(
            target.into(),
            Some(address),
            ts,
            Duration::from_micros(1500),
            failure.map(|r| (r, format!("{r} (test)"))),
        ),
    }
}

/// An HTTPS check with every field a record can carry filled in.
pub fn https(target: &str, ts: i64, outcome: Outcome) -> ResultRecord {
    let seen = HttpObservation {
        outcome: Some(outcome),
        reason: (outcome == Outcome::Down).then_some(Reason::Status),
        error: (outcome == Outcome::Down).then(|| "503 Service Unavailable".to_string()),
        address: Some("[::1]:8443".parse().unwrap()),
        status: Some(if outcome == Outcome::Down { 503 } else { 200 }),
        phases: Some(Phases {
            dns_ms: Some(0.25),
            connect_ms: Some(1.5),
            tls_ms: Some(4.125),
            first_byte_ms: Some(9.0),
            total_ms: Some(10.5),
        }),
        body_matched: Some(true),
    };
    let details = HttpDetails {
        name: "api".into(),
        method: "GET".into(),
        domain: "example.test".into(),
        tls_cert_not_after_unix_ms: Some(1_800_000_000_000),
    };
    ResultRecord {
        id: uuid::Uuid::now_v7(),
        agent: "agent-2".into(),
        vantage: "fra1".into(),
        check: CheckResult::http(target.into(), ts, Duration::from_millis(10), seen, details),
    }
}

/// Runs `f` with this thread's file-system identity switched to `uid:gid` (Linux's
/// `setfsuid`, which is per thread, and drops the root capabilities that bypass file
/// permissions), as another user would.
pub fn as_user<T>(uid: u32, gid: u32, f: impl FnOnce() -> T) -> T {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: plain syscalls on this thread's credentials.
            unsafe {
                libc::setfsuid(0);
                libc::setfsgid(0);
            }
        }
    }
    // SAFETY: as above.
    unsafe {
        libc::setfsgid(gid);
        libc::setfsuid(uid);
    }
    let _restore = Restore;
    f()
}

pub fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

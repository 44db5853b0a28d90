//! What only the PostgreSQL backend does: day partitions and retention, and which server
//! errors are fatal at start and which heal (issue 15, item 11).

mod support;

use netvantage_store::{PgStore, Store, StoreError, TimeRange};
use netvantage_testkit::{Database, psql, unique_name};
use support::{POSTGRES, sql, tcp};

const DAY_MS: i64 = 86_400_000;
/// 2026-11-23T00:00:00Z.
const NOV_23: i64 = 1_795_392_000_000;

#[tokio::test]
async fn records_land_in_the_partition_of_their_utc_day() {
    let db = Database::new("nvstore");
    let mut store = PgStore::connect_writer(&db.url()).await.unwrap();
    let records = [
        tcp("a:1", NOV_23 - 1, None),
        tcp("a:1", NOV_23, None),
        tcp("a:1", NOV_23 + DAY_MS - 1, None),
    ];
    store.insert(&records).await.unwrap();
    let partitions =
        db.query("SELECT tableoid::regclass::text, count(*) FROM results GROUP BY 1 ORDER BY 1");
    assert_eq!(partitions, "results_20261122|1\nresults_20261123|2");
}

#[tokio::test]
async fn retention_drops_whole_days_before_the_cutoff_and_nothing_else() {
    let db = Database::new("nvstore");
    let mut store = PgStore::connect_writer(&db.url()).await.unwrap();
    let records: Vec<_> = (0..4)
        .map(|day| tcp("a:1", NOV_23 + day * DAY_MS + 1_000, None))
        .collect();
    store.insert(&records).await.unwrap();
    // A cutoff inside the third day: the first two ended before it, the third didn't.
    let cutoff = NOV_23 + 2 * DAY_MS + 500;
    let dropped = store.drop_partitions_before(cutoff).await.unwrap();
    assert_eq!(dropped, vec!["results_20261123", "results_20261124"]);
    let left = store
        .observations(TimeRange::since(i64::MIN))
        .await
        .unwrap();
    let mut left: Vec<i64> = left.iter().map(|o| o.ts_unix_ms).collect();
    left.sort();
    assert_eq!(
        left,
        vec![records[2].check.ts_unix_ms, records[3].check.ts_unix_ms]
    );
    assert!(
        store
            .drop_partitions_before(cutoff)
            .await
            .unwrap()
            .is_empty()
    );
    // A day dropped is recreated when a (late) record for it arrives.
    store.insert(&records[..1]).await.unwrap();
}

#[tokio::test]
async fn a_missing_database_is_fatal_at_start_with_the_server_s_words() {
    let url = format!("{POSTGRES} dbname={}", unique_name("nvstore_missing"));
    let refused = PgStore::connect_writer(&url).await.err().expect("refused");
    let text = refused.to_string();
    assert!(refused.is_usage() && !refused.heals(), "{text}");
    assert!(
        text.contains("3D000") && text.contains("does not exist"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unknown_role_is_an_authentication_failure_fatal_at_start() {
    let url = format!(
        "host=127.0.0.1 port=5432 dbname=postgres user={}",
        unique_name("nvstore_nobody")
    );
    let refused = PgStore::connect_writer(&url).await.err().expect("refused");
    let text = refused.to_string();
    assert!(refused.is_usage() && !refused.heals(), "{text}");
    assert!(
        text.contains("28000") && text.contains("does not exist"),
        "{text}"
    );
}

/// A login role without privileges, dropped afterwards.
struct Role {
    name: String,
}

impl Role {
    fn create() -> Role {
        let name = unique_name("nvstore_role");
        sql("postgres", &format!("CREATE ROLE {name} LOGIN"));
        Role { name }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = psql("postgres", &format!("DROP ROLE IF EXISTS {}", self.name));
    }
}

#[tokio::test]
async fn a_role_without_privileges_is_fatal_at_start() {
    let role = Role::create();
    let db = Database::new("nvstore");
    // PostgreSQL 15 and later: only the owner may create in `public`.
    db.query(&format!(
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC, {}",
        role.name
    ));
    let url = format!("{} user={}", db.url(), role.name);
    let refused = PgStore::connect_writer(&url).await.err().expect("refused");
    let text = refused.to_string();
    assert!(refused.is_usage() && !refused.heals(), "{text}");
    assert!(
        text.contains("42501") && text.contains("permission denied"),
        "{text}"
    );
    drop(db);
}

#[tokio::test]
async fn a_connection_refused_heals() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    let refused = PgStore::connect_writer(&url).await.err().expect("refused");
    let text = refused.to_string();
    assert!(refused.heals() && !refused.is_usage(), "{text}");
    assert!(text.contains("refused"), "{text}");
}

#[tokio::test]
async fn a_session_ended_by_the_server_heals() {
    let db = Database::new("nvstore");
    let mut store = PgStore::connect_writer(&db.url()).await.unwrap();
    db.query(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = '{}' AND pid <> pg_backend_pid()",
        db.name
    ));
    let failed = store
        .insert(&[tcp("a:1", NOV_23, None)])
        .await
        .expect_err("the session is gone");
    assert!(failed.heals() && !failed.is_usage(), "{failed}");
}

#[tokio::test]
async fn a_bad_connection_string_is_a_usage_error() {
    let refused = PgStore::connect_writer("host=127.0.0.1 port=notaport")
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(refused, StoreError::BadConnectionString(_)),
        "{refused}"
    );
    assert!(refused.is_usage());
}

#[tokio::test]
async fn a_reader_s_session_cannot_write_even_by_mistake() {
    let db = Database::new("nvstore");
    drop(PgStore::connect_writer(&db.url()).await.unwrap());
    let reader = PgStore::connect_reader(&db.url()).await.unwrap();
    let refused = reader
        .client()
        .batch_execute("CREATE TABLE sneaky (x int)")
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
    );
}

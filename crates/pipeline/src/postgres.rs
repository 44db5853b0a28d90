//! The PostgreSQL store: versioned migrations, the batch writer `ingest` uses, and the reader
//! behind `report --postgres`.
//!
//! `results` is partitioned by day on `ts`, so retention is `DROP TABLE` of a day's partition
//! (no bulk DELETE, no vacuum debt); partitions are created as records for a new day arrive.
//! Its primary key is `(id, ts)` — PostgreSQL requires the partition key in it — and a record's
//! `ts` never changes, so the key is as unique as the id: a redelivered record is skipped by
//! `ON CONFLICT DO NOTHING`. `(target, ts)` serves the time-range queries of `report`.

use crate::report::Observation;
use netvantage_core::ResultRecord;
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Statement};

/// Schema versions in order. Never edit one that has shipped: add the next.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "results partitioned by day, rejected messages",
    "CREATE TABLE results (
        id uuid NOT NULL,
        ts timestamptz NOT NULL,
        agent text NOT NULL,
        vantage text NOT NULL,
        kind text NOT NULL,
        target text NOT NULL,
        address text,
        outcome text NOT NULL,
        reason text,
        latency_ms double precision NOT NULL,
        error text,
        status integer,
        dns_ms double precision,
        connect_ms double precision,
        tls_ms double precision,
        first_byte_ms double precision,
        total_ms double precision,
        body_matched boolean,
        endpoint text,
        ingested_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (id, ts)
    ) PARTITION BY RANGE (ts);
    CREATE INDEX results_target_ts ON results (target, ts);
    CREATE TABLE rejected_messages (
        topic text NOT NULL,
        kafka_partition integer NOT NULL,
        kafka_offset bigint NOT NULL,
        payload bytea,
        error text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (topic, kafka_partition, kafka_offset)
    );",
)];

/// Any two processes running migrations or creating partitions take this lock first.
const SCHEMA_LOCK: i64 = 0x6e76_7363_6865_6d61; // "nvschema"

pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("postgres: connection closed: {e}");
        }
    });
    Ok(client)
}

/// Applies the migrations not applied yet, each in its own transaction, under an advisory lock
/// so that several `ingest` processes starting together apply each exactly once. Returns the
/// versions applied now.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, tokio_postgres::Error> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS netvantage_migrations (
                version integer PRIMARY KEY,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .or_else(ignore_concurrent_create)?;
    let mut applied_now = Vec::new();
    for (version, description, sql) in MIGRATIONS {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM netvantage_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if !done {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO netvantage_migrations (version, description) VALUES ($1, $2)",
                &[version, description],
            )
            .await?;
            applied_now.push(*version);
        }
        tx.commit().await?;
    }
    Ok(applied_now)
}

/// Two processes racing on `CREATE TABLE IF NOT EXISTS` can still collide in the catalog; the
/// loser's table exists all the same.
fn ignore_concurrent_create(e: tokio_postgres::Error) -> Result<(), tokio_postgres::Error> {
    match e.code() {
        Some(code)
            if *code == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                || *code == tokio_postgres::error::SqlState::DUPLICATE_TABLE =>
        {
            Ok(())
        }
        _ => Err(e),
    }
}

const DAY_MS: i64 = 86_400_000;

/// `results_20261123` for the day holding `day` (days since the Unix epoch).
pub fn partition_name(day: i64) -> String {
    let date =
        time::Date::from_julian_day(UNIX_EPOCH_JULIAN_DAY + day as i32).unwrap_or(time::Date::MIN);
    format!(
        "results_{:04}{:02}{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

fn system_time(unix_ms: i64) -> SystemTime {
    if unix_ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(unix_ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(unix_ms.unsigned_abs())
    }
}

/// A message that could not be read as a record: kept, with why, instead of dropped.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub payload: Option<Vec<u8>>,
    pub error: String,
}

/// Writes batches of records, one transaction per batch.
pub struct PgWriter {
    client: Client,
    insert: Statement,
    known_days: HashSet<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows that were new.
    pub inserted: u64,
    /// Records already stored (redelivered): skipped.
    pub duplicates: u64,
}

impl PgWriter {
    pub async fn new(client: Client) -> Result<PgWriter, tokio_postgres::Error> {
        // One statement for the whole batch: arrays of each column, unnested into rows.
        let insert = client
            .prepare_typed(
                "INSERT INTO results (id, ts, agent, vantage, kind, target, address, outcome,
                    reason, latency_ms, error, status, dns_ms, connect_ms, tls_ms, first_byte_ms,
                    total_ms, body_matched, endpoint)
                 SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[],
                    $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::float8[],
                    $11::text[], $12::int4[], $13::float8[], $14::float8[], $15::float8[],
                    $16::float8[], $17::float8[], $18::bool[], $19::text[])
                 ON CONFLICT DO NOTHING",
                &[
                    Type::UUID_ARRAY,
                    Type::TIMESTAMPTZ_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::FLOAT8_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::INT4_ARRAY,
                    Type::FLOAT8_ARRAY,
                    Type::FLOAT8_ARRAY,
                    Type::FLOAT8_ARRAY,
                    Type::FLOAT8_ARRAY,
                    Type::FLOAT8_ARRAY,
                    Type::BOOL_ARRAY,
                    Type::TEXT_ARRAY,
                ],
            )
            .await?;
        Ok(PgWriter {
            client,
            insert,
            known_days: HashSet::new(),
        })
    }

    /// Creates the day partitions this batch needs (once per day per process).
    async fn ensure_partitions(
        &mut self,
        records: &[ResultRecord],
    ) -> Result<(), tokio_postgres::Error> {
        let days: HashSet<i64> = records
            .iter()
            .map(|r| r.check.ts_unix_ms.div_euclid(DAY_MS))
            .filter(|d| !self.known_days.contains(d))
            .collect();
        for day in days {
            let tx = self.client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                .await?;
            let from = time::OffsetDateTime::from_unix_timestamp(day * 86_400)
                .map(|t| t.date())
                .unwrap_or(time::Date::MIN);
            let to = from.next_day().unwrap_or(from);
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF results
                 FOR VALUES FROM ('{from} 00:00:00+00') TO ('{to} 00:00:00+00')",
                partition_name(day)
            ))
            .await?;
            tx.commit().await?;
            self.known_days.insert(day);
        }
        Ok(())
    }

    /// Writes records and rejected messages in one transaction.
    pub async fn write(
        &mut self,
        records: &[ResultRecord],
        rejected: &[Rejected],
    ) -> Result<Written, tokio_postgres::Error> {
        self.ensure_partitions(records).await?;
        let n = records.len();
        let mut ids = Vec::with_capacity(n);
        let mut ts = Vec::with_capacity(n);
        let mut agents = Vec::with_capacity(n);
        let mut vantages = Vec::with_capacity(n);
        let mut kinds = Vec::with_capacity(n);
        let mut targets = Vec::with_capacity(n);
        let mut addresses = Vec::with_capacity(n);
        let mut outcomes = Vec::with_capacity(n);
        let mut reasons = Vec::with_capacity(n);
        let mut latencies = Vec::with_capacity(n);
        let mut errors = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut dns = Vec::with_capacity(n);
        let mut connect = Vec::with_capacity(n);
        let mut tls = Vec::with_capacity(n);
        let mut first_byte = Vec::with_capacity(n);
        let mut total = Vec::with_capacity(n);
        let mut body = Vec::with_capacity(n);
        let mut endpoints = Vec::with_capacity(n);
        for r in records {
            let c = &r.check;
            let phases = c.phases.as_ref();
            ids.push(r.id);
            ts.push(system_time(c.ts_unix_ms));
            agents.push(r.agent.as_str());
            vantages.push(r.vantage.as_str());
            kinds.push(c.kind.as_str());
            targets.push(c.target.as_str());
            addresses.push(c.address.map(|a| a.to_string()));
            outcomes.push(c.outcome.as_str());
            reasons.push(c.reason.map(|r| r.as_str()));
            latencies.push(c.latency_ms);
            errors.push(c.error.as_deref());
            statuses.push(c.status.map(i32::from));
            dns.push(phases.and_then(|p| p.dns_ms));
            connect.push(phases.and_then(|p| p.connect_ms));
            tls.push(phases.and_then(|p| p.tls_ms));
            first_byte.push(phases.and_then(|p| p.first_byte_ms));
            total.push(phases.and_then(|p| p.total_ms));
            body.push(c.body_matched);
            endpoints.push(c.http.as_ref().map(|h| h.name.as_str()));
        }
        let tx = self.client.transaction().await?;
        let inserted = if n > 0 {
            tx.execute(
                &self.insert,
                &[
                    &ids,
                    &ts,
                    &agents,
                    &vantages,
                    &kinds,
                    &targets,
                    &addresses,
                    &outcomes,
                    &reasons,
                    &latencies,
                    &errors,
                    &statuses,
                    &dns,
                    &connect,
                    &tls,
                    &first_byte,
                    &total,
                    &body,
                    &endpoints,
                ],
            )
            .await?
        } else {
            0
        };
        for r in rejected {
            tx.execute(
                "INSERT INTO rejected_messages (topic, kafka_partition, kafka_offset, payload, error)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&r.topic, &r.partition, &r.offset, &r.payload, &r.error],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Written {
            inserted,
            duplicates: n as u64 - inserted,
        })
    }

    /// Drops day partitions that ended before `cutoff_unix_ms` (retention). Returns their names.
    pub async fn drop_partitions_before(
        &mut self,
        cutoff_unix_ms: i64,
    ) -> Result<Vec<String>, tokio_postgres::Error> {
        let rows = self
            .client
            .query(
                "SELECT c.relname FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent
                 WHERE p.relname = 'results' AND c.relname ~ '^results_[0-9]{8}$'",
                &[],
            )
            .await?;
        let cutoff_day = cutoff_unix_ms.div_euclid(DAY_MS);
        let mut dropped = Vec::new();
        for row in rows {
            let name: String = row.get(0);
            // A partition is dropped only when all of its day is before the cutoff.
            let expired = (cutoff_day - 400..cutoff_day).any(|day| partition_name(day) == name);
            if expired {
                self.client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                    .await?;
                self.known_days.retain(|d| partition_name(*d) != name);
                dropped.push(name);
            }
        }
        Ok(dropped)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// Every check at or after `since_unix_ms`, for `report`.
pub async fn observations(
    client: &Client,
    since_unix_ms: i64,
) -> Result<Vec<Observation>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT target, vantage, (extract(epoch FROM ts) * 1000)::int8, outcome, reason
             FROM results WHERE ts >= $1",
            &[&system_time(since_unix_ms)],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let outcome: &str = row.get(3);
            let reason: Option<&str> = row.get(4);
            Observation {
                target: row.get(0),
                vantage: row.get(1),
                ts_unix_ms: row.get(2),
                up: outcome != "down",
                reason: reason.and_then(|r| r.parse().ok()),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_by_utc_day() {
        assert_eq!(partition_name(0), "results_19700101");
        // 2026-11-23T23:59:59.999Z and the next millisecond.
        let last_ms = 1_795_478_399_999i64;
        assert_eq!(
            partition_name(last_ms.div_euclid(DAY_MS)),
            "results_20261123"
        );
        assert_eq!(
            partition_name((last_ms + 1).div_euclid(DAY_MS)),
            "results_20261124"
        );
    }
}

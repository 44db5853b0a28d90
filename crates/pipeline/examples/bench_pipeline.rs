//! Benchmark of the fleet pipeline; `bench/pipeline/run.sh` sets up the broker and databases and
//! runs it. Three rates from one run, each against the reference that bounds it:
//!
//! 1. the broker's bare consume rate (a plain librdkafka consumer, no database);
//! 2. the store's PostgreSQL writer (`PgStore::write`) in ingest's batches, against one binary
//!    `COPY … FROM STDIN` of the same rows; then the same batches again, as a redelivery after
//!    a crash would bring them (every record skipped);
//! 3. end to end: `KafkaSink` → broker → `netvantage ingest` → PostgreSQL, against the slower of
//!    1 and 2, with the delay from check to stored row.
//!
//! `--rows 2` runs row 2 alone, without a broker. Every row is checked for loss and
//! duplication; the exit status is 1 when any check fails.

use netvantage_core::clock::unix_ms_now;
use netvantage_core::{CheckResult, Reason, ResultRecord};
use netvantage_pipeline::config::KafkaSettings;
use netvantage_sinks::kafka::{KafkaSink, ensure_topic};
use netvantage_sinks::{Envelope, Settle, Sink, Spool, Spooled};
use netvantage_store::PgStore;
use netvantage_store::columns::COLUMNS;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;

const TARGETS: u64 = 1000;
/// What ingest uses by default (`--batch`).
const BATCH: usize = netvantage_pipeline::ingest::DEFAULT_BATCH as usize;
/// A stage that makes no progress for this long has failed.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// A rate, and what the check for lost and duplicated records behind it found.
struct Measured {
    rate: f64,
    ok: bool,
    check: String,
}

struct Args {
    /// Which rows to run (1, 2, 3).
    rows: BTreeSet<u8>,
    brokers: String,
    consume_topic: String,
    e2e_topic: String,
    writer_db: String,
    copy_db: String,
    e2e_db: String,
    ingest_bin: PathBuf,
    workdir: PathBuf,
    n: usize,
    e2e_n: usize,
    /// Records per second for the end-to-end producer; 0 = as fast as the sink takes them.
    e2e_rate: f64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut map = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let Some(key) = flag.strip_prefix("--") else {
            anyhow::bail!("unexpected argument {flag:?}");
        };
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        map.insert(key.to_string(), value);
    }
    let rows: BTreeSet<u8> = match map.remove("rows") {
        Some(list) => list
            .split(',')
            .map(|row| match row.trim() {
                "1" => Ok(1),
                "2" => Ok(2),
                "3" => Ok(3),
                other => Err(anyhow::anyhow!("--rows: no row {other:?} (1, 2 or 3)")),
            })
            .collect::<anyhow::Result<_>>()?,
        None => BTreeSet::from([1, 2, 3]),
    };
    // What a row doesn't need may be left out.
    let needed = |key: &str| match key {
        "brokers" | "consume-topic" => rows.contains(&1) || rows.contains(&3),
        "writer-db" | "copy-db" => rows.contains(&2),
        "e2e-topic" | "e2e-db" | "ingest-bin" | "e2e-n" => rows.contains(&3),
        _ => true,
    };
    let mut take = |key: &str| match map.remove(key) {
        Some(value) => Ok(value),
        None if !needed(key) => Ok(String::new()),
        None => Err(anyhow::anyhow!("missing --{key}")),
    };
    let args = Args {
        brokers: take("brokers")?,
        consume_topic: take("consume-topic")?,
        e2e_topic: take("e2e-topic")?,
        writer_db: take("writer-db")?,
        copy_db: take("copy-db")?,
        e2e_db: take("e2e-db")?,
        ingest_bin: take("ingest-bin")?.into(),
        workdir: take("workdir")?.into(),
        n: take("n")?.parse()?,
        e2e_n: take("e2e-n")?.parse().unwrap_or(0),
        e2e_rate: take("e2e-rate").unwrap_or_else(|_| "0".into()).parse()?,
        rows,
    };
    if let Some(key) = map.keys().next() {
        anyhow::bail!("unknown option --{key}");
    }
    Ok(args)
}

/// Record `i` of a fleet checking `TARGETS` endpoints; one target in ten is down (refused), so
/// the nullable columns are both filled and empty.
fn record(i: u64, ts_unix_ms: i64) -> ResultRecord {
    let t = i % TARGETS;
    let addr = SocketAddr::from((Ipv4Addr::new(10, 0, (t / 250) as u8, (t % 250) as u8), 443));
    let failure = (t % 10 == 3).then(|| (Reason::Refused, "connection refused".to_string()));
    let latency = Duration::from_micros(150 + (i * 7919) % 40_000);
    ResultRecord {
        id: uuid::Uuid::now_v7(),
        agent: format!("bench-agent-{}", i % 4),
        vantage: "bench".into(),
        check: CheckResult::tcp(addr.to_string(), Some(addr), ts_unix_ms, latency, failure),
    }
}

fn kafka_settings(args: &Args, topic: &str, spool: &str) -> KafkaSettings {
    KafkaSettings {
        brokers: args.brokers.clone(),
        topic: topic.into(),
        partitions: 6,
        replication: 1,
        tls: None,
        sasl: None,
        memory_records: 100_000,
        spool_dir: args.workdir.join(spool),
        spool_max_bytes: 1 << 30,
        properties: Vec::new(),
    }
}

/// Creates the topic the way an agent does, and prints how many partitions the broker made.
async fn create_topic(settings: &KafkaSettings) -> anyhow::Result<()> {
    ensure_topic(settings)?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .create()?;
    let metadata = tokio::task::block_in_place(|| {
        consumer.fetch_metadata(Some(&settings.topic), Duration::from_secs(10))
    })?;
    let partitions = metadata
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len());
    println!("# topic {}: {partitions} partitions", settings.topic);
    Ok(())
}

struct Produced {
    first_unix_ms: i64,
    seconds: f64,
    ok: bool,
    summary: String,
}

/// Sends records through the agent's sink. `make(i)` builds record `i` just before it is sent,
/// so a record's `ts` can be its production time. `rate` 0 means unpaced.
fn produce(
    settings: &KafkaSettings,
    n: usize,
    rate: f64,
    make: impl Fn(usize) -> ResultRecord,
) -> anyhow::Result<Produced> {
    let spool = Arc::new(Spool::open(&settings.spool_dir, settings.spool_max_bytes)?);
    let mut sink = Spooled::new(
        KafkaSink::new(settings)?,
        spool.clone(),
        settings.memory_records,
    );
    let tally = Arc::new(netvantage_sinks::sink::Tally::default());
    let settle: Arc<dyn Settle> = tally.clone();
    // Staying under the memory queue keeps every record out of the disk spool, which is for
    // outages and would add its own delay to the measured one.
    let high_water = settings.memory_records * 9 / 10;
    let first_unix_ms = unix_ms_now();
    let started = Instant::now();
    for i in 0..n {
        if rate > 0.0 {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let settled =
            || tally.delivered.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed);
        while i as u64 - settled() >= high_water as u64 {
            std::thread::sleep(Duration::from_millis(1));
        }
        sink.send(&[Envelope::check(make(i))], &settle)?;
    }
    let report = Box::new(sink).close(Duration::from_secs(300));
    let delivered = report.delivered;
    let failed = tally.failed.load(Ordering::Relaxed);
    let spooled = !spool.is_empty();
    Ok(Produced {
        first_unix_ms,
        seconds: started.elapsed().as_secs_f64(),
        ok: delivered == n as u64 && failed == 0 && !spooled,
        summary: format!("produced: {delivered} delivered, {failed} failed, spooled {spooled}"),
    })
}

/// serde writes `id` first; reading it in place keeps JSON parsing out of the broker's rate.
fn message_id(payload: &[u8]) -> Option<u128> {
    let text = payload.strip_prefix(b"{\"id\":\"")?.get(..36)?;
    uuid::Uuid::try_parse_ascii(text).ok().map(|u| u.as_u128())
}

fn consume(brokers: &str, topic: &str, n: usize) -> anyhow::Result<Measured> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("nvbench-bare-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last_message = Instant::now();
    let mut ids = HashSet::with_capacity(n);
    let (mut messages, mut unreadable) = (0u64, 0u64);
    while ids.len() < n {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                last_message = Instant::now();
                messages += 1;
                match m.payload().and_then(message_id) {
                    Some(id) => _ = ids.insert(id),
                    None => unreadable += 1,
                }
            }
            Some(Err(e)) => eprintln!("consume: {e}"),
            None => {}
        }
        if last_message.elapsed() > IDLE_LIMIT {
            let distinct = ids.len();
            anyhow::bail!("consume: idle {IDLE_LIMIT:?} at {messages} messages, {distinct} ids");
        }
    }
    // The clock starts at the first message: joining the group is not reading.
    let first = first.unwrap_or(started);
    let join = (first - started).as_secs_f64();
    Ok(Measured {
        rate: messages as f64 / first.elapsed().as_secs_f64(),
        ok: messages == n as u64 && unreadable == 0,
        check: format!(
            "{messages} messages, {} distinct ids, {unreadable} unreadable; group join {join:.1} s (not counted)",
            ids.len()
        ),
    })
}

/// Flushes what earlier stages left dirty, so a checkpoint does not land inside a timed stage.
async fn checkpoint(client: &Client) -> anyhow::Result<()> {
    Ok(client.batch_execute("CHECKPOINT").await?)
}

/// `(rows, distinct ids)` in `results`.
async fn counts(client: &Client) -> anyhow::Result<(i64, i64)> {
    let row = client
        .query_one("SELECT count(*), count(DISTINCT id) FROM results", &[])
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Checks the table holds exactly the `n` records a stage wrote (`written` by its own count).
async fn verify_table(client: &Client, n: usize, written: u64) -> anyhow::Result<(bool, String)> {
    let (rows, distinct) = counts(client).await?;
    let ok = written == n as u64 && rows == n as i64 && distinct == n as i64;
    Ok((
        ok,
        format!("{written} written; {rows} rows, {distinct} distinct ids"),
    ))
}

/// Row 2: the batches as ingest writes them; then the roller until it has caught up (row 2+:
/// the write rate with the roll-ups, as ingest's roller keeps them); then the same batches
/// again (a redelivery: every record is skipped).
async fn write_with_store(
    url: &str,
    records: &[ResultRecord],
) -> anyhow::Result<(Measured, Measured, Measured)> {
    let mut store = PgStore::connect_writer(url).await?;
    checkpoint(store.client()).await?;
    let started = Instant::now();
    let mut inserted = 0;
    for batch in records.chunks(BATCH) {
        inserted += store.write(batch, &[]).await?.inserted;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (ok, check) = verify_table(store.client(), records.len(), inserted).await?;
    let first = Measured {
        rate: records.len() as f64 / seconds,
        ok,
        check,
    };
    let rolled = roll_until_caught_up(&mut store, records.len(), seconds).await?;
    checkpoint(store.client()).await?;
    let started = Instant::now();
    let (mut inserted, mut skipped) = (0, 0);
    for batch in records.chunks(BATCH) {
        let written = store.write(batch, &[]).await?;
        inserted += written.inserted;
        skipped += written.duplicates;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (rows, distinct) = counts(store.client()).await?;
    let n = records.len();
    let again = Measured {
        rate: n as f64 / seconds,
        ok: inserted == 0 && skipped == n as u64 && rows == n as i64 && distinct == n as i64,
        check: format!(
            "{inserted} written, {skipped} skipped; {rows} rows, {distinct} distinct ids"
        ),
    };
    Ok((first, rolled, again))
}

/// Runs the roller (as ingest does between batches) until a pass finds nothing that ended;
/// the rate is the records over the write time plus the roller's. Checks that the hour
/// roll-ups, stored plus derived for the still-open hour, count every record once.
async fn roll_until_caught_up(
    store: &mut PgStore,
    n: usize,
    write_seconds: f64,
) -> anyhow::Result<Measured> {
    use netvantage_store::{RollupQuery, Store, Tier, TimeRange};
    // As a day later: every hour and day these records fall in has ended, so the roller does
    // all the work they will ever cost it (the open hour would otherwise be left for later).
    let later = unix_ms_now() + 26 * 3_600_000;
    let started = Instant::now();
    let mut rolled = [0u64; 3];
    loop {
        let pass = store.roll_up(later).await?;
        for (sum, k) in rolled.iter_mut().zip(pass.rolled) {
            *sum += k;
        }
        if pass.total() == 0 {
            break;
        }
    }
    let roll_seconds = started.elapsed().as_secs_f64();
    let stored: i64 = store
        .client()
        .query_one(
            "SELECT CAST(coalesce(sum(checks), 0) AS bigint) FROM rollups_hour",
            &[],
        )
        .await?
        .get(0);
    let everything = TimeRange {
        from_unix_ms: i64::MIN,
        until_unix_ms: i64::MAX,
    };
    let read: u64 = store
        .rollups(&RollupQuery {
            tier: Tier::Hour,
            range: everything,
            target: None,
            summed: true,
        })
        .await?
        .iter()
        .map(|r| r.rollup.checks)
        .sum();
    Ok(Measured {
        rate: n as f64 / (write_seconds + roll_seconds),
        ok: read == n as u64 && stored == n as i64,
        check: format!(
            "roller {roll_seconds:.2} s for {} hours and {} days; hour roll-ups count {read} \
             checks ({stored} of them stored)",
            rolled[1], rolled[2]
        ),
    })
}

/// The reference: one plain binary `COPY` of the same rows into a table laid out the same way
/// (migrated by the store, with the same day partitions).
async fn write_with_copy(url: &str, records: &[ResultRecord]) -> anyhow::Result<Measured> {
    let mut store = PgStore::connect_writer(url).await?;
    store.ensure_partitions(records).await?;
    let client = store.client();
    checkpoint(client).await?;
    let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
    let types: Vec<_> = COLUMNS.iter().map(|c| c.ty.postgres_type()).collect();
    let copy = format!(
        "COPY results ({}) FROM STDIN (FORMAT binary)",
        names.join(", ")
    );
    let started = Instant::now();
    let sink = client.copy_in(&copy).await?;
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
    for r in records {
        writer
            .as_mut()
            .write_raw(COLUMNS.iter().map(|c| (c.get)(r)))
            .await?;
    }
    let copied = writer.as_mut().finish().await?;
    let seconds = started.elapsed().as_secs_f64();
    let (ok, check) = verify_table(client, records.len(), copied).await?;
    let rate = records.len() as f64 / seconds;
    Ok(Measured { rate, ok, check })
}

/// The `netvantage ingest` process; killed if the benchmark fails before stopping it.
struct Ingest {
    child: Child,
    log: PathBuf,
}

impl Ingest {
    fn start(args: &Args) -> anyhow::Result<Ingest> {
        let log = args.workdir.join("ingest.log");
        let child = Command::new(&args.ingest_bin)
            .args([
                "ingest",
                "--kafka",
                &args.brokers,
                "--postgres",
                &args.e2e_db,
            ])
            .args(["--topic", &args.e2e_topic, "--group", "nvbench-ingest"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Ingest { child, log })
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Production starts only once ingest owns the partitions, so the group join (seconds on
    /// some brokers) is not counted as pipeline time.
    async fn wait_assigned(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + IDLE_LIMIT;
        while !self.log_text().contains("assigned partitions") {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("ingest exited ({status}):\n{}", self.log_text());
            }
            anyhow::ensure!(Instant::now() < deadline, "ingest got no partitions");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// SIGTERM, as an operator stops it; returns its exit line.
    async fn stop(&mut self) -> anyhow::Result<String> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + IDLE_LIMIT;
        while self.child.try_wait()?.is_none() {
            anyhow::ensure!(Instant::now() < deadline, "ingest did not stop");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = self.log_text();
        let line = log.lines().rfind(|l| l.starts_with("ingest: "));
        Ok(line.unwrap_or("ingest: (no exit line)").to_string())
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Row 3, and a line on the delay from check to stored row.
async fn end_to_end(args: &Args) -> anyhow::Result<(Measured, String)> {
    let settings = kafka_settings(args, &args.e2e_topic, "spool-e2e");
    create_topic(&settings).await?;
    let mut ingest = Ingest::start(args)?;
    ingest.wait_assigned().await?;
    let (db, connection) = tokio_postgres::connect(&args.e2e_db, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    checkpoint(&db).await?;

    let n = args.e2e_n;
    let produced = tokio::task::block_in_place(|| {
        produce(&settings, n, args.e2e_rate, |i| {
            record(i as u64, unix_ms_now())
        })
    })?;
    let mut landed = (0, Instant::now());
    while landed.0 < n as i64 {
        // Seldom: each count scans the table, a load the measured pipeline should not carry.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (rows, _) = counts(&db).await?;
        if rows != landed.0 {
            landed = (rows, Instant::now());
        }
        anyhow::ensure!(
            landed.1.elapsed() < IDLE_LIMIT,
            "e2e: stuck at {rows} of {n} rows"
        );
    }
    let ingest_line = ingest.stop().await?;

    let delay = "extract(epoch FROM ingested_at - ts)::float8 * 1000";
    let stats = db
        .query_one(
            &format!(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {delay}),
                        percentile_cont(0.99) WITHIN GROUP (ORDER BY {delay}),
                        max({delay}),
                        extract(epoch FROM max(ingested_at))::float8 * 1000
                 FROM results"
            ),
            &[],
        )
        .await?;
    let (p50, p99, max, last_landed_ms): (f64, f64, f64, f64) =
        (stats.get(0), stats.get(1), stats.get(2), stats.get(3));
    let seconds = (last_landed_ms - produced.first_unix_ms as f64) / 1e3;
    // `ingest: N rows written, D duplicates skipped, …`: its own count of what it stored.
    let mut words = ingest_line.split(' ');
    let written = words.nth(1).and_then(|w| w.parse().ok()).unwrap_or(0);
    let (table_ok, table) = verify_table(&db, n, written).await?;
    let ingest_ok = ingest_line.contains(" rows written, 0 duplicates skipped, 0 rejected");
    let pacing = match args.e2e_rate {
        0.0 => "unpaced, so the delay is mostly backlog".to_string(),
        rate => format!("paced at {rate:.0}/s"),
    };
    let delays = format!(
        "e2e delay check -> row (ingested_at - ts): p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms; producer alone {:.0}/s ({pacing})",
        n as f64 / produced.seconds
    );
    let measured = Measured {
        rate: n as f64 / seconds,
        ok: produced.ok && table_ok && ingest_ok,
        check: format!("{}; {table}; {ingest_line}", produced.summary),
    };
    Ok((measured, delays))
}

/// A line of the table; `against` is the reference rate and the goal for the ratio to it.
fn table_row(row: &str, rate: f64, reference: &str, against: Option<(f64, f64)>) {
    let Some((reference_rate, goal)) = against else {
        return println!("{row:<42} {rate:>9.0}  {reference}");
    };
    let ratio = rate / reference_rate;
    let verdict = if ratio >= goal { "met" } else { "MISSED" };
    println!(
        "{row:<42} {rate:>9.0}  {reference:<24} {reference_rate:>10.0}  {ratio:>5.2}  >={goal:<3}  {verdict}"
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let n = args.n;
    std::fs::create_dir_all(&args.workdir)?;

    // A check per target every 10 s, ending now: realistic timestamps, all in the past.
    let now = unix_ms_now();
    let rounds = (n as u64).div_ceil(TARGETS) as i64;
    let records: Vec<ResultRecord> = (0..n as u64)
        .map(|i| record(i, now - (rounds - (i / TARGETS) as i64) * 10_000))
        .collect();

    // Row 1: the records are all in the topic before the consumer starts.
    let consume = if args.rows.contains(&1) {
        let settings = kafka_settings(&args, &args.consume_topic, "spool-consume");
        create_topic(&settings).await?;
        let filled =
            tokio::task::block_in_place(|| produce(&settings, n, 0.0, |i| records[i].clone()))?;
        let fill_rate = n as f64 / filled.seconds;
        println!(
            "# filled the topic in {:.1} s ({fill_rate:.0}/s)",
            filled.seconds
        );
        let mut consume =
            tokio::task::block_in_place(|| consume(&args.brokers, &args.consume_topic, n))?;
        consume.ok &= filled.ok;
        consume.check = format!("{}; {}", filled.summary, consume.check);
        Some(consume)
    } else {
        None
    };

    // Row 2: the same rows, from memory, each into a fresh database.
    let written = if args.rows.contains(&2) {
        let (writer, rolled, again) = write_with_store(&args.writer_db, &records).await?;
        let copy = write_with_copy(&args.copy_db, &records).await?;
        Some((writer, rolled, again, copy))
    } else {
        None
    };
    drop(records);

    let e2e = if args.rows.contains(&3) {
        Some(end_to_end(&args).await?)
    } else {
        None
    };

    let head = ["row", "rate/s", "reference", "ref rate/s", "ratio", "goal"];
    let [h0, h1, h2, h3, h4, h5] = head;
    println!("\n{h0:<42} {h1:>9}  {h2:<24} {h3:>10}  {h4:>5}  {h5:<5}  verdict");
    let mut checks: Vec<(&str, usize, &Measured)> = Vec::new();
    if let Some(consume) = &consume {
        table_row(
            "(1) broker bare consume (librdkafka)",
            consume.rate,
            "-",
            None,
        );
        checks.push(("(1) consume", n, consume));
    }
    if let Some((writer, rolled, again, copy)) = &written {
        table_row(
            "(2) PgStore::write, ingest's batches",
            writer.rate,
            "COPY (binary), same rows",
            Some((copy.rate, 0.8)),
        );
        table_row(
            "(2+) write + roller caught up",
            rolled.rate,
            "(2), no roll-ups",
            Some((writer.rate, 0.8)),
        );
        table_row(
            "(2+) write + roller caught up",
            rolled.rate,
            "COPY (binary), same rows",
            Some((copy.rate, 0.8)),
        );
        table_row(
            "(2r) the same batches redelivered",
            again.rate,
            "(all skipped; no goal)",
            None,
        );
        checks.push(("(2) PgStore::write", n, writer));
        checks.push(("(2+) roller", n, rolled));
        checks.push(("(2r) redelivered", n, again));
        checks.push(("(2) COPY", n, copy));
    }
    if let Some((e2e, delays)) = &e2e {
        match (&consume, &written) {
            (Some(consume), Some((writer, _, _, _))) => table_row(
                "(3) KafkaSink->broker->ingest->PostgreSQL",
                e2e.rate,
                "min((1), (2))",
                Some((consume.rate.min(writer.rate), 0.8)),
            ),
            _ => table_row(
                "(3) KafkaSink->broker->ingest->PostgreSQL",
                e2e.rate,
                "-",
                None,
            ),
        }
        println!("\n{delays}");
        checks.push(("(3) e2e", args.e2e_n, e2e));
    }
    for (name, n, m) in &checks {
        let verdict = if m.ok { "ok" } else { "FAILED" };
        println!("{name} n={n}: {verdict}: {}", m.check);
    }
    if checks.iter().any(|(_, _, m)| !m.ok) {
        eprintln!("verification FAILED: records lost or duplicated (see above)");
        std::process::exit(1);
    }
    Ok(())
}

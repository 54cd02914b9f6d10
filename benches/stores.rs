//! The cost of the stores: one protected step through each store, against its floor
//! measured in the same run. Run with `cargo bench --bench stores`; see
//! `docs/benchmarks.md`.
//!
//! A protected step is two compare-and-swaps on the same row: the write-ahead (the record
//! with its request in flight) and then the answer (the record settled), as a driver does
//! around one send. The record holds a real `Challenge` (started from the fixture
//! `start_direct_otp.json`), so its JSON is the size and shape of a stored payment.
//!
//! * `<store>/store`: `replace` twice through our store (serializing the record each
//!   time, checking the key and revisions, taking a pooled connection, the cached
//!   statement);
//! * `<store>/floor`: the same two `UPDATE` statements, with the same parameters and the
//!   JSON serialized beforehand, issued directly with the database client on a connection
//!   of its own with the statement prepared once: what a hand-written integration costs at
//!   least;
//! * `memory/store`: the in-memory store, as a reference.
//!
//! SQLite runs on a temporary file in `std::env::temp_dir()`, with the store's settings
//! (WAL, `synchronous = FULL`). PostgreSQL runs only when `DATABASE_URL` is set, on a table
//! of its own (dropped afterwards). The binary ends with the ratios, read back from
//! criterion's estimates of this run.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, Criterion};
use direct_otp::store::{MemoryStore, PgStore, Record, SqliteStore, Store};
use direct_otp::{Challenge, Policy, Started};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::runtime::Runtime;

mod support;
use support::{criterion_dir, median_ns, ns, ratio};

/// A stored payment's shape: the three indexed facts and a challenge.
#[derive(Clone, Serialize, Deserialize)]
struct Payment {
    key: String,
    revision: u64,
    in_flight_ms: Option<i64>,
    challenge: Challenge,
}

impl Record for Payment {
    fn key(&self) -> &str {
        &self.key
    }
    fn revision(&self) -> u64 {
        self.revision
    }
    fn in_flight_since(&self) -> Option<OffsetDateTime> {
        self.in_flight_ms.map(|ms| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
        })
    }
}

const T0_MS: i64 = 1_795_600_800_000;

fn payment(key: &str) -> Payment {
    let path = format!(
        "{}/tests/fixtures/start_direct_otp.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let t0 = OffsetDateTime::from_unix_timestamp(T0_MS / 1000).unwrap();
    let challenge = match Started::from_response("customer_1122", Policy::default(), 200, &body, t0)
    {
        Ok(Started::Challenge(c)) => *c,
        other => panic!("expected a challenge, got {other:?}"),
    };
    Payment {
        key: key.to_owned(),
        revision: 1,
        in_flight_ms: None,
        challenge,
    }
}

/// The write-ahead and the answer that follow `p`.
fn step(p: &Payment) -> (Payment, Payment) {
    let mut ahead = p.clone();
    ahead.revision += 1;
    ahead.in_flight_ms = Some(T0_MS);
    let mut answer = ahead.clone();
    answer.revision += 1;
    answer.in_flight_ms = None;
    (ahead, answer)
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// The statement our stores issue for a compare-and-swap (SQLite's placeholders).
const SQLITE_REPLACE: &str = "UPDATE direct_otp_records \
     SET revision = ?3, in_flight_since = ?4, state = ?5, updated_at = ?6 \
     WHERE key = ?1 AND revision = ?2";

/// The same, in PostgreSQL's placeholders, for a table name.
fn pg_replace(table: &str) -> String {
    format!(
        "UPDATE {table} SET revision = $3, in_flight_since = $4, state = $5, updated_at = $6 \
         WHERE key = $1 AND revision = $2"
    )
}

/// The JSON texts of a step, serialized ahead for the floors.
fn texts(p: &Payment) -> (String, String) {
    let (ahead, answer) = step(p);
    (
        serde_json::to_string(&ahead).unwrap(),
        serde_json::to_string(&answer).unwrap(),
    )
}

// ----- Memory ------------------------------------------------------------------------------

fn memory(c: &mut Criterion) {
    let store = MemoryStore::new();
    let mut p = payment("order_bench/1");
    store.insert(&p).unwrap();
    let mut g = c.benchmark_group("memory");
    g.bench_function("store", |b| {
        b.iter(|| {
            let (ahead, answer) = step(&p);
            store.replace(p.revision, &ahead).unwrap();
            store.replace(ahead.revision, &answer).unwrap();
            p = black_box(answer);
        })
    });
    g.finish();
}

// ----- SQLite ------------------------------------------------------------------------------

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

fn sqlite(c: &mut Criterion) {
    let file = TempFile(
        std::env::temp_dir().join(format!("direct_otp_bench_{}.sqlite3", std::process::id())),
    );
    let store = SqliteStore::open(&file.0).unwrap();
    let mut p = payment("order_bench/1");
    store.insert(&p).unwrap();
    // The floor's row, and its own connection with the store's settings.
    let floor_row = payment("order_floor/1");
    store.insert(&floor_row).unwrap();
    let conn = rusqlite::Connection::open(&file.0).unwrap();
    conn.busy_timeout(SqliteStore::DEFAULT_BUSY_TIMEOUT)
        .unwrap();
    let mut stmt = conn.prepare(SQLITE_REPLACE).unwrap();
    let (ahead_text, answer_text) = texts(&floor_row);
    let mut floor_rev: i64 = 1;

    let mut g = c.benchmark_group("sqlite");
    g.bench_function("store", |b| {
        b.iter(|| {
            let (ahead, answer) = step(&p);
            store.replace(p.revision, &ahead).unwrap();
            store.replace(ahead.revision, &answer).unwrap();
            p = black_box(answer);
        })
    });
    g.bench_function("floor", |b| {
        b.iter(|| {
            let changed = stmt
                .execute(rusqlite::params![
                    "order_floor/1",
                    floor_rev,
                    floor_rev + 1,
                    Some(T0_MS),
                    ahead_text,
                    now_ms()
                ])
                .unwrap();
            assert_eq!(changed, 1);
            let changed = stmt
                .execute(rusqlite::params![
                    "order_floor/1",
                    floor_rev + 1,
                    floor_rev + 2,
                    None::<i64>,
                    answer_text,
                    now_ms()
                ])
                .unwrap();
            assert_eq!(changed, 1);
            floor_rev += 2;
        })
    });
    g.finish();
}

// ----- PostgreSQL --------------------------------------------------------------------------

fn postgres(c: &mut Criterion) {
    use direct_otp::store::AsyncStore;
    let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("SKIPPED: PostgreSQL store benchmark (set DATABASE_URL=postgres://...)");
        return;
    };
    let rt = Runtime::new().unwrap();
    let table = format!("dotp_bench_{}", std::process::id());
    let store = rt
        .block_on(PgStore::connect(&url))
        .unwrap()
        .with_table(&table)
        .unwrap();
    rt.block_on(store.migrate()).unwrap();
    let mut p = payment("order_bench/1");
    rt.block_on(store.insert(&p)).unwrap();
    let floor_row = payment("order_floor/1");
    rt.block_on(store.insert(&floor_row)).unwrap();
    // The floor: one tokio-postgres connection of its own, the statement prepared once.
    let (client, connection) = rt
        .block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))
        .unwrap();
    rt.spawn(connection);
    let stmt = rt.block_on(client.prepare(&pg_replace(&table))).unwrap();
    let (ahead_text, answer_text) = texts(&floor_row);
    let mut floor_rev: i64 = 1;

    let mut g = c.benchmark_group("postgres");
    g.bench_function("store", |b| {
        b.iter(|| {
            let (ahead, answer) = step(&p);
            rt.block_on(async {
                store.replace(p.revision, &ahead).await.unwrap();
                store.replace(ahead.revision, &answer).await.unwrap();
            });
            p = black_box(answer);
        })
    });
    g.bench_function("floor", |b| {
        b.iter(|| {
            rt.block_on(async {
                let changed = client
                    .execute(
                        &stmt,
                        &[
                            &"order_floor/1",
                            &floor_rev,
                            &(floor_rev + 1),
                            &Some(T0_MS),
                            &ahead_text,
                            &now_ms(),
                        ],
                    )
                    .await
                    .unwrap();
                assert_eq!(changed, 1);
                let changed = client
                    .execute(
                        &stmt,
                        &[
                            &"order_floor/1",
                            &(floor_rev + 1),
                            &(floor_rev + 2),
                            &None::<i64>,
                            &answer_text,
                            &now_ms(),
                        ],
                    )
                    .await
                    .unwrap();
                assert_eq!(changed, 1);
            });
            floor_rev += 2;
        })
    });
    g.finish();
    rt.block_on(client.batch_execute(&format!("DROP TABLE {table}")))
        .unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .output_directory(&criterion_dir());
    targets = memory, sqlite, postgres
}

fn main() {
    let since = SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    let step_json = serde_json::to_string(&step(&payment("order_bench/1")).0)
        .unwrap()
        .len();
    println!("\n== One protected step (two compare-and-swaps, {step_json} B of JSON each), median of this run");
    println!("| store | floor ns | store ns | store / floor (target <= 1.3) |");
    println!("|---|---:|---:|---:|");
    for store in ["sqlite", "postgres"] {
        let floor = median_ns(store, "floor", since);
        let ours = median_ns(store, "store", since);
        println!(
            "| {store} | {} | {} | {} |",
            ns(floor),
            ns(ours),
            ratio(ours, floor)
        );
    }
    let memory = median_ns("memory", "store", since);
    println!("| memory (reference) | - | {} | - |", ns(memory));
}

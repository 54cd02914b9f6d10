//! The cost of the stores: one protected step through each store, against its floor
//! measured in the same run, the two interleaved. Run with `cargo bench -p
//! direct-otp-benches --bench stores`; see `docs/benchmarks.md`.
//!
//! A protected step is two compare-and-swaps on the same row: the write-ahead (the record
//! with its request in flight) and then the answer (the record settled), as a driver does
//! around one send. The record holds a real `Challenge` (started from the fixture
//! `start_direct_otp.json`), so its JSON is the size and shape of a stored payment.
//!
//! * **store**: `replace` twice through our store, the records made beforehand (the store
//!   serializes each, checks the key and revisions, takes a pooled connection and its
//!   cached statement);
//! * **floor**: the same two `UPDATE` statements, with the same parameters and the
//!   JSON serialized beforehand, issued directly with the database client on a connection
//!   of its own with the statement prepared once: what a hand-written integration costs at
//!   least;
//! * the in-memory store, as a reference.
//!
//! Every commit waits for the disk (SQLite `synchronous = FULL`, PostgreSQL
//! `synchronous_commit = on`), whose latency on a shared machine drifts by ten times within a
//! minute. So the store and its floor are not measured one after the other (as criterion
//! would) but in alternating pairs, one step of each per round, the order swapped every
//! round, and each is reported by its median over the same rounds. Each database runs twice:
//! as configured ("durable"), and with the disk wait taken out ("no fsync": the SQLite file
//! on tmpfs, `/dev/shm`; PostgreSQL with `synchronous_commit = off` on every connection),
//! which leaves the store's own cost visible next to the statements'.
//!
//! **Concurrent writers** (SQLite): 8 and then 16 threads on one durable SQLite file, each
//! taking protected steps on a payment of its own, all at once: through the store, and
//! through the floor (a rusqlite connection of its own per thread, the plain `UPDATE`s with
//! the store's busy timeout: a hand-written integration). The phases alternate in blocks
//! of 10 steps per thread, all threads in the same phase (so each is measured under its own
//! contention), the order swapped every block: the latency of one step under write
//! contention, p50 and p99, and the steps that failed (`database is locked`).
//! `STORES_BENCH_CONTENDED_ROUNDS` sets the steps per thread and phase (default 200, after
//! 20 of warm-up).
//!
//! SQLite's durable file is in `std::env::temp_dir()`. PostgreSQL runs only when
//! `DATABASE_URL` is set, on a table of its own (dropped afterwards). `STORES_BENCH_ROUNDS`
//! sets the rounds (default 1,000, after 100 rounds of warm-up).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use direct_otp::store::{MemoryStore, PgStore, Record, SqliteStore, Store};
use direct_otp::{Challenge, Policy, Started};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::runtime::Runtime;

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
        "{}/../tests/fixtures/start_direct_otp.json",
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

// ----- Measuring -------------------------------------------------------------------------

/// The records of every step a run takes, made beforehand (making them is the caller's
/// work, not the store's): the write-ahead and the answer, revisions 2 and 3, 4 and 5, ...
fn chain(first: &Payment, steps: usize) -> std::vec::IntoIter<(Payment, Payment)> {
    let mut last = first.clone();
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        let (ahead, answer) = step(&last);
        last = answer.clone();
        out.push((ahead, answer));
    }
    out.into_iter()
}

/// Rounds measured, after the warm-up.
fn rounds() -> usize {
    std::env::var("STORES_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1000)
}

const WARM_UP: usize = 100;

/// Times of one kind of step, in ns.
struct Times(Vec<u64>);

impl Times {
    fn quantile(&self, q: f64) -> u64 {
        let mut v = self.0.clone();
        v.sort_unstable();
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
    fn median(&self) -> u64 {
        self.quantile(0.5)
    }
    fn mean(&self) -> u64 {
        let n = u64::try_from(self.0.len()).unwrap().max(1);
        self.0.iter().sum::<u64>() / n
    }
}

fn time(f: &mut impl FnMut()) -> u64 {
    let start = Instant::now();
    f();
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Runs `store` and `floor` in alternating pairs, the order swapped every round.
fn pairs(mut store: impl FnMut(), mut floor: impl FnMut()) -> (Times, Times) {
    for _ in 0..WARM_UP {
        store();
        floor();
    }
    let n = rounds();
    let (mut s, mut f) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for round in 0..n {
        if round % 2 == 0 {
            s.push(time(&mut store));
            f.push(time(&mut floor));
        } else {
            f.push(time(&mut floor));
            s.push(time(&mut store));
        }
    }
    (Times(s), Times(f))
}

/// One line of the table.
struct Line {
    store: &'static str,
    mode: &'static str,
    ours: Times,
    floor: Option<Times>,
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

// ----- Memory ------------------------------------------------------------------------------

fn memory() -> Line {
    let store = MemoryStore::new();
    let p = payment("order_bench/1");
    store.insert(&p).unwrap();
    let mut steps = chain(&p, WARM_UP + rounds());
    let mut step_once = || {
        let (ahead, answer) = steps.next().unwrap();
        store.replace(ahead.revision - 1, &ahead).unwrap();
        store.replace(ahead.revision, &answer).unwrap();
        black_box(answer);
    };
    for _ in 0..WARM_UP {
        step_once();
    }
    let ours = Times((0..rounds()).map(|_| time(&mut step_once)).collect());
    Line {
        store: "memory (reference)",
        mode: "-",
        ours,
        floor: None,
    }
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

fn sqlite(dir: &Path, mode: &'static str) -> Line {
    let file = TempFile(dir.join(format!("direct_otp_bench_{}.sqlite3", std::process::id())));
    let store = SqliteStore::open(&file.0).unwrap();
    let p = payment("order_bench/1");
    store.insert(&p).unwrap();
    let mut steps = chain(&p, WARM_UP + rounds());
    // The floor's row, and its own connection with the store's settings.
    let floor_row = payment("order_floor/1");
    store.insert(&floor_row).unwrap();
    let conn = rusqlite::Connection::open(&file.0).unwrap();
    conn.busy_timeout(SqliteStore::DEFAULT_BUSY_TIMEOUT)
        .unwrap();
    let mut stmt = conn.prepare(SQLITE_REPLACE).unwrap();
    let (ahead_text, answer_text) = texts(&floor_row);
    let mut floor_rev: i64 = 1;

    let (ours, floor) = pairs(
        || {
            let (ahead, answer) = steps.next().unwrap();
            store.replace(ahead.revision - 1, &ahead).unwrap();
            store.replace(ahead.revision, &answer).unwrap();
            black_box(answer);
        },
        || {
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
        },
    );
    Line {
        store: "sqlite",
        mode,
        ours,
        floor: Some(floor),
    }
}

// ----- SQLite, concurrent writers -----------------------------------------------------------

/// Steps per writer thread, after the warm-up.
fn contended_rounds() -> usize {
    std::env::var("STORES_BENCH_CONTENDED_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200)
}

const CONTENDED_WARM_UP: usize = 20;

/// One line of the contention table.
struct Contended {
    writers: usize,
    ours: Times,
    floor: Times,
    /// Steps that failed (a replace answered an error): through the store, the floor.
    failed: (usize, usize),
}

/// What one writer thread measured.
struct Writer {
    ours: Vec<u64>,
    floor: Vec<u64>,
    failed: (usize, usize),
}

fn nanos(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Steps each writer takes in one block of one phase.
const BLOCK: usize = 10;

/// One writer: its own payment through the store, its own row through the floor. The
/// writers run the same phase at once (all through the store, then all through the floor,
/// the order swapped every block), so each phase is measured under its own contention.
fn writer(store: &SqliteStore, path: &Path, id: usize, barrier: &std::sync::Barrier) -> Writer {
    let mut last = payment(&format!("order_w{id}/1"));
    store.insert(&last).unwrap();
    let floor_key = format!("order_f{id}/1");
    let floor_row = payment(&floor_key);
    store.insert(&floor_row).unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(SqliteStore::DEFAULT_BUSY_TIMEOUT)
        .unwrap();
    let mut stmt = conn.prepare(SQLITE_REPLACE).unwrap();
    let (ahead_text, answer_text) = texts(&floor_row);
    let mut floor_rev: i64 = 1;
    let mut out = Writer {
        ours: Vec::new(),
        floor: Vec::new(),
        failed: (0, 0),
    };
    let blocks = (CONTENDED_WARM_UP + contended_rounds()).div_ceil(BLOCK);
    for block in 0..blocks {
        let measured = block * BLOCK >= CONTENDED_WARM_UP;
        for part in [block % 2, 1 - block % 2] {
            barrier.wait();
            for _ in 0..BLOCK {
                if part == 0 {
                    let (ahead, answer) = step(&last);
                    let start = Instant::now();
                    let ok = store.replace(last.revision, &ahead).is_ok()
                        && store.replace(ahead.revision, &answer).is_ok();
                    let took = nanos(start);
                    if ok {
                        last = answer;
                    } else {
                        out.failed.0 += 1;
                        last = store.load(&last.key).unwrap().unwrap();
                    }
                    if measured {
                        out.ours.push(took);
                    }
                } else {
                    let start = Instant::now();
                    let first = stmt.execute(rusqlite::params![
                        floor_key,
                        floor_rev,
                        floor_rev + 1,
                        Some(T0_MS),
                        ahead_text,
                        now_ms()
                    ]);
                    let second = first.is_ok().then(|| {
                        stmt.execute(rusqlite::params![
                            floor_key,
                            floor_rev + 1,
                            floor_rev + 2,
                            None::<i64>,
                            answer_text,
                            now_ms()
                        ])
                    });
                    let took = nanos(start);
                    match (first, second) {
                        (Ok(1), Some(Ok(1))) => floor_rev += 2,
                        _ => {
                            out.failed.1 += 1;
                            floor_rev = conn
                                .query_row(
                                    "SELECT revision FROM direct_otp_records WHERE key = ?1",
                                    [&floor_key],
                                    |r| r.get(0),
                                )
                                .unwrap();
                        }
                    }
                    if measured {
                        out.floor.push(took);
                    }
                }
            }
        }
    }
    out
}

fn sqlite_contended(dir: &Path, writers: usize) -> Contended {
    let file = TempFile(dir.join(format!(
        "direct_otp_bench_contended_{}_{writers}.sqlite3",
        std::process::id()
    )));
    let store = SqliteStore::open(&file.0).unwrap();
    let barrier = std::sync::Barrier::new(writers);
    let each: Vec<Writer> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..writers)
            .map(|id| {
                let (store, path, barrier) = (&store, &file.0, &barrier);
                s.spawn(move || writer(store, path, id, barrier))
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut line = Contended {
        writers,
        ours: Times(Vec::new()),
        floor: Times(Vec::new()),
        failed: (0, 0),
    };
    for w in each {
        line.ours.0.extend(w.ours);
        line.floor.0.extend(w.floor);
        line.failed.0 += w.failed.0;
        line.failed.1 += w.failed.1;
    }
    line
}

fn ms(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1e6)
}

fn print_contended(lines: &[Contended]) {
    if lines.is_empty() {
        return;
    }
    println!(
        "\n== Concurrent writers on one durable SQLite file: one protected step each, {} steps per writer and phase, store and floor phases alternated in blocks",
        contended_rounds()
    );
    println!("| writers | floor p50 ms | store p50 ms | p50 store / floor | floor p99 ms | store p99 ms | p99 store / floor | floor mean ms | store mean ms | failed steps (floor) | failed steps (store) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for l in lines {
        let ratio = |q: f64| l.ours.quantile(q) as f64 / l.floor.quantile(q) as f64;
        println!(
            "| {} | {} | {} | {:.2}x | {} | {} | {:.2}x | {} | {} | {} of {} | {} of {} |",
            l.writers,
            ms(l.floor.median()),
            ms(l.ours.median()),
            ratio(0.5),
            ms(l.floor.quantile(0.99)),
            ms(l.ours.quantile(0.99)),
            ratio(0.99),
            ms(l.floor.mean()),
            ms(l.ours.mean()),
            l.failed.1,
            l.floor.0.len(),
            l.failed.0,
            l.ours.0.len(),
        );
    }
}

// ----- PostgreSQL --------------------------------------------------------------------------

fn postgres(url: &str, mode: &'static str) -> Line {
    use direct_otp::store::AsyncStore;

    let rt = Runtime::new().unwrap();
    let table = format!("dotp_bench_{}", std::process::id());
    let store = rt
        .block_on(PgStore::connect(url))
        .unwrap()
        .with_table(&table)
        .unwrap();
    rt.block_on(store.migrate()).unwrap();
    let p = payment("order_bench/1");
    rt.block_on(store.insert(&p)).unwrap();
    let mut steps = chain(&p, WARM_UP + rounds());
    let floor_row = payment("order_floor/1");
    rt.block_on(store.insert(&floor_row)).unwrap();
    // The floor: one tokio-postgres connection of its own, the statement prepared once.
    let (client, connection) = rt
        .block_on(tokio_postgres::connect(url, tokio_postgres::NoTls))
        .unwrap();
    rt.spawn(connection);
    let stmt = rt.block_on(client.prepare(&pg_replace(&table))).unwrap();
    let (ahead_text, answer_text) = texts(&floor_row);
    let mut floor_rev: i64 = 1;

    let (ours, floor) = pairs(
        || {
            let (ahead, answer) = steps.next().unwrap();
            rt.block_on(async {
                store.replace(ahead.revision - 1, &ahead).await.unwrap();
                store.replace(ahead.revision, &answer).await.unwrap();
            });
            black_box(answer);
        },
        || {
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
        },
    );
    rt.block_on(client.batch_execute(&format!("DROP TABLE {table}")))
        .unwrap();
    Line {
        store: "postgres",
        mode,
        ours,
        floor: Some(floor),
    }
}

/// `url` with `synchronous_commit = off` for every connection made from it.
fn without_fsync(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csynchronous_commit%3Doff")
}

fn main() {
    // `cargo bench` passes `--bench`; a filter word picks the stores whose name has it.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let mut lines = Vec::new();
    if wanted("sqlite") {
        lines.push(sqlite(&std::env::temp_dir(), "durable"));
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            lines.push(sqlite(shm, "no fsync (tmpfs)"));
        } else {
            eprintln!("SKIPPED: SQLite on tmpfs (no /dev/shm)");
        }
    }
    if wanted("postgres") {
        match std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            Some(url) => {
                lines.push(postgres(&url, "durable"));
                lines.push(postgres(&without_fsync(&url), "synchronous_commit off"));
            }
            None => {
                eprintln!("SKIPPED: PostgreSQL store benchmark (set DATABASE_URL=postgres://...)")
            }
        }
    }
    if wanted("memory") {
        lines.push(memory());
    }
    let mut contended = Vec::new();
    if wanted("sqlite-contended") {
        for writers in [8, 16] {
            contended.push(sqlite_contended(&std::env::temp_dir(), writers));
        }
    }

    if !lines.is_empty() {
        print_lines(&lines);
    }
    print_contended(&contended);
}

fn print_lines(lines: &[Line]) {
    let json = serde_json::to_string(&step(&payment("order_bench/1")).0)
        .unwrap()
        .len();
    println!(
        "\n== One protected step: two compare-and-swaps of {json} B of JSON; {} rounds, store and floor interleaved",
        rounds()
    );
    println!("| store | disk wait | floor median µs | store median µs | store / floor (target <= 1.3) | floor p90 µs | store p90 µs |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for line in lines {
        let (floor_med, floor_p90, r) = match &line.floor {
            Some(f) => (
                us(f.median()),
                us(f.quantile(0.9)),
                format!("{:.2}x", line.ours.median() as f64 / f.median() as f64),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {floor_med} | {} | {r} | {floor_p90} | {} |",
            line.store,
            line.mode,
            us(line.ours.median()),
            us(line.ours.quantile(0.9)),
        );
    }
}

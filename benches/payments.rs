//! Whole payments through the driver: payments per second and latency percentiles, with 1
//! and 8 workers, for each store. Run with `cargo bench -p direct-otp-benches --bench
//! payments`; see `docs/benchmarks.md`.
//!
//! A payment is what a cardholder does most: `Driver::start` (`POST /txns`), a wrong OTP,
//! then the right one (`Outcome::Approved`): three exchanges with the sandbox server over
//! loopback HTTP, each with its write-ahead and its answer stored (one insert, five
//! compare-and-swaps, three loads). Its latency is timed from the start to the approval.
//! Workers are threads (blocking driver, `UreqTransport`) or tokio tasks on a runtime of two
//! threads (async driver, `HyperTransport`); each pays its own orders, one after another.
//!
//! * memory: `MemoryStore`, both drivers: the cost of the bank, HTTP and the driver alone;
//! * SQLite: a file in `std::env::temp_dir()`, as configured (`synchronous = FULL`);
//! * PostgreSQL, when `DATABASE_URL` is set: a table of its own, dropped afterwards.
//!
//! `PAYMENTS_BENCH_N` sets the payments per run (default 400, after 40 of warm-up); a word
//! after `--` picks the stores whose name has it (`memory`, `sqlite`, `postgres`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use direct_otp::driver::{AsyncDriver, AsyncSend, BlockingSend, Command, Driver};
use direct_otp::sandbox::{OtpSource, Sandbox, SandboxConfig, SandboxServer};
use direct_otp::store::{AsyncStore, MemoryStore, PgStore, SqliteStore, Store};
use direct_otp::transport::{HyperTransport, UreqTransport};
use direct_otp::{Config, Otp, Outcome, Payment, PaymentSource, StartRequest};
use tokio::runtime::Runtime;

const KEY: &str = "sk_test_BENCHKEY";
const OTP: &str = "123456";
const WRONG: &str = "999999";
const WARM_UP: usize = 40;

fn payments() -> usize {
    std::env::var("PAYMENTS_BENCH_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400)
}

fn start_request(run: &str, i: usize) -> StartRequest {
    let card = PaymentSource::Token {
        card_token: "tok_visa".into(),
        cvv: None,
    };
    StartRequest::new(&format!("{run}_{i}"), "acme", &format!("cust_{i}"), card).unwrap()
}

fn wrong() -> Command {
    Command::Submit(Otp::new(WRONG).unwrap())
}

fn right() -> Command {
    Command::Submit(Otp::new(OTP).unwrap())
}

/// One whole payment, blocking; its latency.
fn pay<S: Store<Payment>, T: BlockingSend>(d: &Driver<S, T>, run: &str, i: usize) -> Duration {
    let t = Instant::now();
    let key = d
        .start(&start_request(run, i), 1)
        .unwrap()
        .payment
        .key()
        .to_owned();
    let done = d.run(&key, wrong()).unwrap();
    assert!(
        matches!(done.outcome, Outcome::WrongOtp { .. }),
        "{:?}",
        done.outcome
    );
    let done = d.run(&key, right()).unwrap();
    assert!(
        matches!(done.outcome, Outcome::Approved(_)),
        "{:?}",
        done.outcome
    );
    t.elapsed()
}

/// The same, async.
async fn pay_async<S: AsyncStore<Payment>, T: AsyncSend>(
    d: &AsyncDriver<S, T>,
    run: &str,
    i: usize,
) -> Duration {
    let t = Instant::now();
    let key = d
        .start(&start_request(run, i), 1)
        .await
        .unwrap()
        .payment
        .key()
        .to_owned();
    let done = d.run(&key, wrong()).await.unwrap();
    assert!(
        matches!(done.outcome, Outcome::WrongOtp { .. }),
        "{:?}",
        done.outcome
    );
    let done = d.run(&key, right()).await.unwrap();
    assert!(
        matches!(done.outcome, Outcome::Approved(_)),
        "{:?}",
        done.outcome
    );
    t.elapsed()
}

/// What one run measured.
struct Line {
    store: &'static str,
    disk: &'static str,
    driver: &'static str,
    workers: usize,
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Line {
    fn quantile(&self, q: f64) -> f64 {
        let mut v = self.latencies.clone();
        v.sort_unstable();
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        v[i].as_secs_f64() * 1000.0
    }
}

/// `n` payments split over `workers` threads, each paying its share one after another.
fn blocking<S: Store<Payment> + Sync, T: BlockingSend + Sync>(
    d: &Driver<S, T>,
    run: &str,
    workers: usize,
) -> (Duration, Vec<Duration>) {
    let n = payments();
    for i in 0..WARM_UP {
        pay(d, &format!("{run}_warm"), i);
    }
    let t = Instant::now();
    let latencies = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || {
                    (w..n)
                        .step_by(workers)
                        .map(|i| pay(d, run, i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    (t.elapsed(), latencies)
}

/// `n` payments split over `workers` tasks.
fn tasks<S, T>(
    rt: &Runtime,
    d: Arc<AsyncDriver<S, T>>,
    run: &str,
    workers: usize,
) -> (Duration, Vec<Duration>)
where
    S: AsyncStore<Payment> + Send + Sync + 'static,
    T: AsyncSend + Send + Sync + 'static,
{
    let n = payments();
    rt.block_on(async {
        for i in 0..WARM_UP {
            pay_async(&d, &format!("{run}_warm"), i).await;
        }
        let t = Instant::now();
        let mut handles = Vec::new();
        for w in 0..workers {
            let (d, run) = (d.clone(), run.to_owned());
            handles.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for i in (w..n).step_by(workers) {
                    out.push(pay_async(&d, &run, i).await);
                }
                out
            }));
        }
        let mut latencies = Vec::new();
        for h in handles {
            latencies.extend(h.await.unwrap());
        }
        (t.elapsed(), latencies)
    })
}

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

/// `url` with `synchronous_commit = off` for every connection made from it.
fn without_fsync(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csynchronous_commit%3Doff")
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let server = SandboxServer::start(Sandbox::new(
        SandboxConfig::new(KEY).with_otp(OtpSource::Fixed(OTP.into())),
    ))
    .unwrap();
    let config = Config::new(server.base_url(), KEY).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let database_url = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty());
    if wanted("postgres") && database_url.is_none() {
        eprintln!("SKIPPED: PostgreSQL payments benchmark (set DATABASE_URL=postgres://...)");
    }
    let mut lines = Vec::new();
    let mut runs = 0;
    let mut run_name = || {
        runs += 1;
        format!("bench{}_{runs}", std::process::id())
    };

    for workers in [1, 8] {
        if wanted("memory") {
            let ureq = UreqTransport::with_default_agent();
            let d = Driver::new(MemoryStore::new(), ureq, config.clone());
            let (wall, latencies) = blocking(&d, &run_name(), workers);
            lines.push(Line {
                store: "memory",
                disk: "-",
                driver: "blocking, ureq",
                workers,
                wall,
                latencies,
            });
            let hyper = HyperTransport::plain_http();
            let d = Arc::new(AsyncDriver::new(MemoryStore::new(), hyper, config.clone()));
            let (wall, latencies) = tasks(&rt, d, &run_name(), workers);
            lines.push(Line {
                store: "memory",
                disk: "-",
                driver: "async, hyper",
                workers,
                wall,
                latencies,
            });
        }
        if wanted("sqlite") {
            let dirs = [
                (std::env::temp_dir(), "durable"),
                (PathBuf::from("/dev/shm"), "none (tmpfs)"),
            ];
            for (dir, disk) in dirs.into_iter().filter(|(dir, _)| dir.is_dir()) {
                let name = format!("direct_otp_payments_{}.sqlite3", std::process::id());
                let file = TempFile(dir.join(name));
                let ureq = UreqTransport::with_default_agent();
                let d = Driver::new(SqliteStore::open(&file.0).unwrap(), ureq, config.clone());
                let (wall, latencies) = blocking(&d, &run_name(), workers);
                lines.push(Line {
                    store: "sqlite",
                    disk,
                    driver: "blocking, ureq",
                    workers,
                    wall,
                    latencies,
                });
            }
        }
        if let Some(url) = database_url.as_ref().filter(|_| wanted("postgres")) {
            for (url, disk) in [
                (url.clone(), "durable"),
                (without_fsync(url), "synchronous_commit off"),
            ] {
                let table = format!("dotp_payments_{}", std::process::id());
                let store = rt.block_on(PgStore::connect(&url)).unwrap();
                let store = store.with_table(&table).unwrap();
                rt.block_on(store.migrate()).unwrap();
                let hyper = HyperTransport::plain_http();
                let d = Arc::new(AsyncDriver::new(store.clone(), hyper, config.clone()));
                let (wall, latencies) = tasks(&rt, d, &run_name(), workers);
                lines.push(Line {
                    store: "postgres",
                    disk,
                    driver: "async, hyper",
                    workers,
                    wall,
                    latencies,
                });
                rt.block_on(async {
                    let client = store.pool().get().await.unwrap();
                    let drop = format!("DROP TABLE {table}");
                    client.batch_execute(&drop).await.unwrap();
                });
            }
        }
    }

    println!(
        "\n== Whole payments (start, wrong OTP, right OTP) through the driver, against the sandbox server on loopback; {} payments per line",
        payments()
    );
    println!("| store | disk wait | driver | workers | payments/s | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    for l in &lines {
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
            l.store,
            l.disk,
            l.driver,
            l.workers,
            l.latencies.len() as f64 / l.wall.as_secs_f64(),
            l.quantile(0.5),
            l.quantile(0.99),
            l.quantile(1.0),
        );
    }
}

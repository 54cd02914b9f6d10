//! Load proof: 250 shoppers at once paying through `AsyncDriver` over `SqliteStore`
//! against the sandbox server on loopback (hyper transport), each its own order; then the
//! checks of `tests/it/shoppers_support` (no payment stranded, no order shared) and p50/p99/max
//! of each step. Run with `cargo bench --bench shoppers`; see `docs/benchmarks.md`.
//!
//! `SHOPPERS_BENCH_N` sets the shoppers (default 250); `SHOPPERS_BENCH_RUNS` the runs
//! (default 1), each on a fresh bank and SQLite file. Each shopper gets at most 120 s. The
//! runtime has two worker threads (the machine's cores); SQLite calls run on tokio's
//! blocking pool. Exits with status 1 when a check fails.

#[path = "../tests/it/shoppers_support/mod.rs"]
mod shoppers_support;

use std::time::Duration;

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter word is ignored (one benchmark here).
    let shoppers = var("SHOPPERS_BENCH_N", 250);
    let runs = var("SHOPPERS_BENCH_RUNS", 1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut failed = false;
    for run in 1..=runs {
        let dir = std::env::temp_dir().join(format!(
            "direct-otp-bench-shoppers-{}-{run}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let report = runtime.block_on(shoppers_support::run(
            shoppers,
            Duration::from_secs(120),
            &dir,
        ));
        let _ = std::fs::remove_dir_all(&dir);
        println!("run {run}/{runs}: {report}");
        failed |= !report.ok();
    }
    if failed {
        eprintln!("shoppers: a check failed (see above)");
        std::process::exit(1);
    }
}

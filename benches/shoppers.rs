//! Load proof: 250 shoppers at once paying through `AsyncDriver` over `SqliteStore`
//! against the sandbox server on loopback (hyper transport), each its own order; then the
//! checks of `tests/it/shoppers_support` (no payment stranded, no order shared) and p50/p99/max
//! of each step. Run with `cargo bench -p direct-otp-benches --bench shoppers`; see
//! `docs/benchmarks.md`.
//!
//! Each run first sends `SHOPPERS_BENCH_BASELINE` shoppers (default 25) one after another,
//! the baseline without contention, then the burst, and prints each step's p50 and p99 as a
//! ratio to the baseline's.
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
    let baseline = var("SHOPPERS_BENCH_BASELINE", 25);
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
        std::fs::create_dir_all(dir.join("baseline")).expect("a temp dir");
        let alone = runtime.block_on(shoppers_support::run_with(
            baseline,
            1,
            Duration::from_secs(120),
            &dir.join("baseline"),
            |_| {},
        ));
        let report = runtime.block_on(shoppers_support::run(
            shoppers,
            Duration::from_secs(120),
            &dir,
        ));
        let _ = std::fs::remove_dir_all(&dir);
        println!("run {run}/{runs}, baseline: {alone}");
        println!("run {run}/{runs}: {report}");
        println!("| step | p50 / baseline p50 | p99 / baseline p99 |");
        println!("|---|---:|---:|");
        for step in shoppers_support::STEPS {
            let (Some(burst), Some(base)) = (report.steps.get(step), alone.steps.get(step)) else {
                continue;
            };
            let (b50, b99, _) = shoppers_support::percentiles(burst);
            let (a50, a99, _) = shoppers_support::percentiles(base);
            let ratio = |b: Duration, a: Duration| b.as_secs_f64() / a.as_secs_f64().max(1e-9);
            println!(
                "| {step} | {:.1} | {:.1} |",
                ratio(b50, a50),
                ratio(b99, a99)
            );
        }
        println!();
        failed |= !report.ok() || !alone.ok();
    }
    if failed {
        eprintln!("shoppers: a check failed (see above)");
        std::process::exit(1);
    }
}

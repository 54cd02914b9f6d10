//! The load harness (`shoppers_support`), short: 30 shoppers at once paying through the
//! async driver over SQLite against the sandbox server. `benches/shoppers.rs` runs 250.

use crate::shoppers_support;

use std::time::Duration;

use direct_otp::sandbox::{Endpoint, Fault};

/// Shoppers in the short run.
const SHOPPERS: usize = 30;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("direct-otp-shoppers-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_shoppers_at_once_strand_no_payment_and_share_no_order() {
    let dir = temp_dir("thirty");
    let report = shoppers_support::run(SHOPPERS, Duration::from_secs(60), &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{report}");
    assert!(report.ok(), "{report}");
    // Every shopper but those who left at the OTP page (i % 10 == 8) paid.
    let left = (0..SHOPPERS).filter(|i| i % 10 == 8).count();
    assert_eq!(report.continuable, left, "{report}");
    assert_eq!(
        report.settled.get("CHARGED"),
        Some(&(SHOPPERS - left)),
        "{report}"
    );
    assert_eq!(report.steps["start"].len(), SHOPPERS);
}

/// The checks catch a stranded payment: the bank acts on a submit and drops its answer, so
/// the stored payment waits for an order-status check nobody makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_left_unsure_is_reported_stranded() {
    let dir = temp_dir("dropped");
    let drop_one = |bank: &mut direct_otp::sandbox::Sandbox| {
        bank.inject(Endpoint::Submit, Fault::DropResponse);
    };
    let report = shoppers_support::run_with(5, 5, Duration::from_secs(60), &dir, drop_one).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!report.ok());
    assert_eq!(report.stranded.len(), 1, "{report}");
    // The right OTP (bank CHARGED) or a wrong one first (bank PENDING_VBV): whichever
    // submit came first.
    let stranded = &report.stranded[0];
    assert!(
        stranded.ends_with("stored check_status / bank CHARGED")
            || stranded.ends_with("stored check_status / bank PENDING_VBV"),
        "{report}"
    );
    assert!(report.problems.is_empty(), "{report}");
}

//! Heap allocations of the core's hot paths, counted by a global allocator.
//!
//! Allocation counts are deterministic (unlike timings), so these limits hold in CI: building
//! a request allocates at most 4 times, a state change that parses nothing never allocates,
//! an answer that changes nothing the challenge keeps allocates nothing, and an error envelope
//! costs one allocation. Only the test's own thread is counted. `benches/core.rs` reports
//! the same counts next to the timings.

#[path = "it/common/mod.rs"]
mod common;
#[path = "it/invariants/mod.rs"]
mod invariants;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use direct_otp::{
    CardDetails, Challenge, Otp, Outcome, PaymentSource, Refusal, ResponseError, SendFailure,
    StartRequest, Token,
};

/// The system allocator, counting the allocations of threads that asked for it.
struct Counting;

thread_local! {
    /// (counting on this thread, allocations counted).
    static COUNT: Cell<(bool, u64)> = const { Cell::new((false, 0)) };
}

fn note() {
    let _ = COUNT.try_with(|c| {
        let (on, n) = c.get();
        if on {
            c.set((on, n + 1));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations (and reallocations) made by `f` on this thread; its result is dropped after
/// counting stops.
fn allocations<R>(f: impl FnOnce() -> R) -> (R, u64) {
    COUNT.with(|c| c.set((true, 0)));
    let r = f();
    let (_, n) = COUNT.with(|c| c.replace((false, 0)));
    (r, n)
}

fn otp() -> Otp {
    Otp::new("123456").unwrap()
}

/// A challenge whose resend cooldown has just ended, and that moment.
fn rested() -> (Challenge, time::OffsetDateTime) {
    let c = challenge();
    let at = c.resend_available_at().unwrap();
    (c, at)
}

/// A challenge with a resend in flight, its token and the time.
fn resend_in_flight() -> (Challenge, Token, time::OffsetDateTime) {
    let (mut c, at) = rested();
    let out = c.resend(&config(), at).unwrap();
    (c, out.token, at)
}

#[test]
fn building_a_request_allocates_at_most_four_times() {
    let config = config();
    let start = StartRequest::new(
        "ord_dotp_1001",
        "acme",
        ROUTING,
        PaymentSource::Card(CardDetails {
            number: "4111111111111111".into(),
            expiry_month: "12".into(),
            expiry_year: "2030".into(),
            cvv: "123".into(),
            name_on_card: Some("Asha Rao".into()),
        }),
    )
    .unwrap();
    let otp = otp();
    // Once before counting: the first form body initializes a shared header value.
    drop(start.request(&config));

    let (request, n) = allocations(|| start.request(&config));
    assert_eq!(request.url(), "https://sandbox.juspay.in/txns");
    // At least one: a request owns its URL (this also shows the counter works).
    assert!((1..=4).contains(&n), "start: {n} allocations");

    for (name, command) in [("resend", 0), ("submit", 1), ("order status", 2)] {
        let (mut c, at) = rested();
        let (out, n) = allocations(|| match command {
            0 => c.resend(&config, at),
            1 => c.submit(&config, &otp, at),
            _ => c.check_status(&config, at),
        });
        assert!(out.is_ok(), "{name}: {out:?}");
        assert!((1..=4).contains(&n), "{name}: {n} allocations");
    }
}

#[test]
fn state_changes_without_parsing_never_allocate() {
    let config = config();
    let otp = otp();
    let (mut c, at) = rested();
    let cooling = T0 + time::Duration::seconds(1);
    let mut fresh = challenge();

    let (r, n) = allocations(|| fresh.resend(&config, cooling));
    assert!(matches!(r, Err(Refusal::Cooldown { .. })), "{r:?}");
    assert_eq!(n, 0, "resend refused during the cooldown");

    let (r, n) = allocations(|| fresh.handle_timeout(cooling));
    assert_eq!(r, None);
    assert_eq!(n, 0, "handle_timeout with nothing due");

    let (r, n) = allocations(|| {
        (
            fresh.poll_timeout(),
            fresh.next_step(cooling),
            fresh.may_submit(cooling).is_ok(),
            fresh.may_resend(cooling).is_ok(),
            fresh.resend_available_at(),
            fresh.sends_left(),
            fresh.attempts_left(),
        )
    });
    assert!(r.0.is_some());
    assert_eq!(n, 0, "poll_timeout and the getters");

    let (r, n) = allocations(|| c.handle_timeout(at));
    assert!(r.is_some());
    assert_eq!(n, 0, "handle_timeout firing the cooldown");

    let (r, n) = allocations(|| c.go_to_bank_page(at));
    assert!(r.is_ok());
    assert_eq!(n, 1, "go_to_bank_page: only the URL handed out");

    let (mut c, token, at) = resend_in_flight();
    let stale: Token = invariants::other_token(c.in_flight());
    let body = fixture("resend_counters");
    let (r, n) = allocations(|| {
        (
            c.submit(&config, &otp, at),
            c.resend(&config, at),
            c.check_status(&config, at),
            c.handle_response(stale, 200, &body, at),
        )
    });
    assert!(matches!(r.0, Err(Refusal::InFlight(_))), "{r:?}");
    assert!(r.1.is_err() && r.2.is_err() && r.3.is_err(), "{r:?}");
    assert_eq!(n, 0, "commands refused while in flight, a stale answer");

    for failure in [SendFailure::NotSent, SendFailure::MaybeSent] {
        let (mut c, token, at) = resend_in_flight();
        let (r, n) = allocations(|| c.handle_send_failure(token, failure, at));
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(n, 0, "handle_send_failure({failure:?})");
    }
    drop((c, token));
}

#[test]
fn answers_that_change_no_kept_text_do_not_allocate() {
    let config = config();

    // Same card and fallback as at start: nothing to copy.
    let (mut c, token, at) = resend_in_flight();
    let body = fixture("resend_counters");
    let (r, n) = allocations(|| c.handle_response(token, 200, &body, at));
    assert!(matches!(r, Ok(Outcome::OtpSent { .. })), "{r:?}");
    assert_eq!(n, 0, "resend 200");

    // The send limit envelope is classified without building an error.
    let (mut c, token, at) = resend_in_flight();
    let body = fixture("resend_limit_exceeded");
    let (r, n) = allocations(|| c.handle_response(token, 400, &body, at));
    assert_eq!(r, Ok(Outcome::SendLimitReached));
    assert_eq!(n, 0, "resend 400 max_limit_exceeded");

    for (name, status, body) in [
        ("submit 200 PENDING_VBV", 200, "submit_pending_wrong_otp"),
        ("submit 400 wrong OTP", 400, "submit_wrong_otp_400"),
    ] {
        let mut c = challenge();
        let out = c.submit(&config, &otp(), T0).unwrap();
        let body = fixture(body);
        let (r, n) = allocations(|| c.handle_response(out.token, status, &body, T0));
        assert!(matches!(r, Ok(Outcome::WrongOtp { .. })), "{name}: {r:?}");
        assert_eq!(n, 0, "{name}");
    }
}

#[test]
fn an_error_envelope_costs_one_allocation_whatever_its_texts() {
    // The error's texts share one allocation; the error itself is returned by value.
    let config = config();
    // (Texts with JSON escapes cost the parser its own allocations to unescape them.)
    let long = format!(
        r#"{{"error_message":"{}é","status":"Ünknown"}}"#,
        "x".repeat(300)
    );
    for body in [
        fixture("order_not_found"),
        fixture("error_duplicate_request"),
        long.into_bytes(),
    ] {
        let mut c = challenge();
        let out = c.check_status(&config, T0).unwrap();
        let (r, n) = allocations(|| c.handle_response(out.token, 404, &body, T0));
        let Ok(Outcome::Rejected(ResponseError::Api(e))) = &r else {
            panic!("{r:?}");
        };
        assert_eq!(e.http_status(), 404);
        assert_eq!(n, 1, "{e:?}");
    }
}

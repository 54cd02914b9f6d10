//! Every response kind, read from the fixtures (and variants derived from them).

mod common;
mod invariants;

use common::*;
use direct_otp::{
    ApiError, Challenge, InputError, Malformed, NextStep, OrderStatusCheck, Otp, Outcome, Policy,
    Refusal, ResponseError, SendFailure, StartError, Started, Status, Token, Uncertainty,
};
use serde_json::json;

fn submit(c: &mut Challenge) -> Token {
    c.submit(&config(), &Otp::new("123456").unwrap(), secs(5))
        .unwrap()
        .token
}

fn resend(c: &mut Challenge) -> Token {
    c.resend(&config(), secs(40)).unwrap().token
}

fn answer(c: &mut Challenge, token: Token, status: u16, name: &str) -> Outcome {
    c.handle_response(token, status, &fixture(name), secs(6))
        .unwrap()
}

fn api(outcome: &Outcome) -> &ApiError {
    match outcome {
        Outcome::Rejected(ResponseError::Api(e))
        | Outcome::CheckStatus(Uncertainty::Response(ResponseError::Api(e))) => e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

// ----- Start --------------------------------------------------------------------------

#[test]
fn start_direct_otp() {
    let c = challenge();
    assert_eq!(c.order_id(), "ord_dotp_1001");
    assert_eq!(c.txn_id(), "txn_36dc6eada1d0463da91dc56c8262a8c3");
    assert_eq!(c.challenge_id(), "ch_7f3a9c2e");
    assert_eq!(c.status(), &Status::PendingVbv);
    assert_eq!((c.otp_sends(), c.send_limit(), c.sends_left()), (1, 4, 3));
    assert_eq!(
        (c.attempts(), c.attempt_limit(), c.attempts_left()),
        (0, 4, 4)
    );
    assert!(c
        .fallback_url()
        .unwrap()
        .starts_with("https://sandbox.juspay.in/v2/pay/start/"));
    let card = c.card();
    assert_eq!(card.isin.as_deref(), Some("411111"));
    assert_eq!(card.last_four.as_deref(), Some("1111"));
    assert_eq!(card.brand.as_deref(), Some("VISA"));
    assert_eq!(card.issuer.as_deref(), Some("HDFC Bank"));
    assert!(c.may_submit(T0).is_ok());
    assert!(
        c.may_resend(T0).is_err(),
        "the first OTP starts the cooldown"
    );
    assert_eq!(c.resend_available_at(), Some(secs(30)));
    assert_eq!(c.next_step(T0), NextStep::EnterOtp);
}

#[test]
fn start_3ds_failover_is_a_redirect() {
    let started = Started::from_response(
        ROUTING,
        Policy::default(),
        200,
        &fixture("start_3ds_failover"),
        T0,
    )
    .unwrap();
    assert_eq!(
        started,
        Started::Redirect {
            url: "https://sandbox.juspay.in/v2/pay/start/guest/eulk2m9x0a7b3c4d".into(),
            method: "GET".into()
        }
    );
}

#[test]
fn start_with_a_final_status_or_an_error() {
    let declined = Started::from_response(
        ROUTING,
        Policy::default(),
        200,
        &fixture("submit_juspay_declined"),
        T0,
    )
    .unwrap();
    assert_eq!(declined, Started::Finished(Status::JuspayDeclined));

    let err = Started::from_response(
        ROUTING,
        Policy::default(),
        401,
        &fixture("error_access_denied_401"),
        T0,
    )
    .unwrap_err();
    match err {
        StartError::Response(ResponseError::Api(e)) => {
            assert_eq!(e.http_status(), 401);
            assert_eq!(e.error_code(), Some("access_denied"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn start_refuses_unsafe_or_missing_ids() {
    let mut body = fixture_json("start_direct_otp");
    body["payment"]["authentication"]["params"]["id"] = json!("../../admin");
    let err = Started::from_response(
        ROUTING,
        Policy::default(),
        200,
        body.to_string().as_bytes(),
        T0,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        StartError::Response(ResponseError::Malformed {
            problem: Malformed::BadId("payment.authentication.params.id"),
            ..
        })
    ));

    let mut body = fixture_json("start_direct_otp");
    body.as_object_mut().unwrap().remove("order_id");
    let err = Started::from_response(
        ROUTING,
        Policy::default(),
        200,
        body.to_string().as_bytes(),
        T0,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        StartError::Response(ResponseError::Malformed {
            problem: Malformed::Missing("order_id"),
            ..
        })
    ));
    assert!(Started::from_response(ROUTING, Policy::default(), 200, b"{not json", T0).is_err());
}

#[test]
fn start_reads_the_seed_sample_as_direct_otp() {
    // The seed's sample says method GET, but carries challenge_id and auth_type OTP.
    let started =
        Started::from_response(ROUTING, Policy::default(), 200, &fixture("resend_seed"), T0)
            .unwrap();
    let Started::Challenge(c) = started else {
        panic!("{started:?}")
    };
    assert_eq!(c.txn_id(), "txn_uuid");
    assert_eq!(c.challenge_id(), "ch_xyz");
    assert_eq!(c.order_id(), "DOTP312312");
    assert_eq!(c.card().last_four.as_deref(), Some("2986"));
    assert_eq!(c.card().brand.as_deref(), Some("VISA"));
    assert_eq!(c.card().issuer.as_deref(), Some("Axis Bank"));
}

#[test]
fn start_accepts_lenient_variants() {
    let mut body = fixture_json("start_direct_otp");
    let params = &mut body["payment"]["authentication"]["params"];
    params["submit_otp_allowed"] = json!("true");
    params["resend_otp_allowed"] = json!("false");
    params["max_otp_send_limit"] = json!("3");
    params["max_attempts"] = json!(2);
    params.as_object_mut().unwrap().remove("auth_type");
    params["auth_method"] = json!("OTP");
    params["something_new"] = json!({"nested": [1, 2, 3]});
    let Started::Challenge(c) = Started::from_response(
        ROUTING,
        Policy::default(),
        200,
        body.to_string().as_bytes(),
        T0,
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!((c.send_limit(), c.attempt_limit()), (3, 2));
    assert_eq!(c.may_resend(secs(60)), Err(Refusal::ResendNotAllowed));
}

// ----- Resend -------------------------------------------------------------------------

#[test]
fn resend_200_with_counters_as_strings() {
    let mut c = challenge();
    let t = resend(&mut c);
    assert_eq!(
        answer(&mut c, t, 200, "resend_counters"),
        Outcome::OtpSent { sends_left: 2 }
    );
    assert_eq!((c.otp_sends(), c.send_limit()), (2, 4));
    assert_eq!(c.attempts(), 0);
}

#[test]
fn resend_200_seed_sample_without_counters_counts_locally() {
    let mut c = challenge();
    let t = resend(&mut c);
    // The documented sample names its own order and transaction: answer as ours.
    let mut seed = fixture_json("resend_seed");
    seed["order_id"] = json!(c.order_id());
    seed["payment"]["authentication"]["params"]["id"] = json!(c.txn_id());
    assert_eq!(
        c.handle_response(t, 200, seed.to_string().as_bytes(), secs(6)),
        Ok(Outcome::OtpSent { sends_left: 2 })
    );
    assert_eq!(c.otp_sends(), 2);
    // The next resend waits for the cooldown, counted from the answer; the answer's time
    // (6 s) is earlier than the resend's (40 s), so the later one counts.
    assert_eq!(
        c.may_resend(secs(50)),
        Err(Refusal::Cooldown { until: secs(70) })
    );
    assert!(c.may_resend(secs(70)).is_ok());
}

#[test]
fn resend_400_max_limit_exceeded() {
    let mut c = challenge();
    let t = resend(&mut c);
    let outcome = answer(&mut c, t, 400, "resend_limit_exceeded");
    assert_eq!(outcome, Outcome::SendLimitReached);
    assert_eq!(c.sends_left(), 0);
    assert_eq!(
        c.may_resend(secs(500)),
        Err(Refusal::SendLimitReached { limit: 4 })
    );
    assert!(
        c.may_submit(secs(7)).is_ok(),
        "the OTP already sent can still be entered"
    );
    assert_eq!(
        c.poll_timeout(),
        Some(c.expires_at()),
        "no cooldown timer any more"
    );
}

// ----- Submit -------------------------------------------------------------------------

#[test]
fn submit_charged_and_authorized_are_final_successes() {
    for (name, status) in [
        ("submit_charged", Status::Charged),
        ("submit_authorized", Status::Authorized),
    ] {
        let mut c = challenge();
        let t = submit(&mut c);
        assert_eq!(
            answer(&mut c, t, 200, name),
            Outcome::Approved(status.clone())
        );
        assert!(c.is_final());
        assert_eq!(c.next_step(secs(7)), NextStep::Finished(status.clone()));
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(
            c.may_submit(secs(7)),
            Err(Refusal::AlreadyFinal(status.clone()))
        );
        assert_eq!(
            c.check_status(&config(), secs(7)),
            Err(Refusal::AlreadyFinal(status))
        );
    }
}

#[test]
fn submit_failures_are_final_declines() {
    for (name, status) in [
        ("submit_authentication_failed", Status::AuthenticationFailed),
        ("submit_juspay_declined", Status::JuspayDeclined),
    ] {
        let mut c = challenge();
        let t = submit(&mut c);
        assert_eq!(answer(&mut c, t, 200, name), Outcome::Declined(status));
        assert!(c.is_final());
    }
    let mut body = fixture_json("submit_charged");
    body["status"] = json!("AUTHORIZATION_FAILED");
    let mut c = challenge();
    let t = submit(&mut c);
    let outcome = c
        .handle_response(t, 200, body.to_string().as_bytes(), secs(6))
        .unwrap();
    assert_eq!(outcome, Outcome::Declined(Status::AuthorizationFailed));
}

#[test]
fn submit_pending_vbv_is_a_wrong_otp() {
    let mut c = challenge();
    let t = submit(&mut c);
    assert_eq!(
        answer(&mut c, t, 200, "submit_pending_wrong_otp"),
        Outcome::WrongOtp { attempts_left: 3 }
    );
    assert_eq!(c.attempts(), 1);
    assert!(c.may_submit(secs(7)).is_ok());
    assert_eq!(c.status(), &Status::PendingVbv);
}

#[test]
fn submit_pending_vbv_with_no_tries_left() {
    let mut c = challenge();
    let t = submit(&mut c);
    assert_eq!(
        answer(&mut c, t, 200, "submit_pending_exhausted"),
        Outcome::AttemptLimitReached
    );
    assert_eq!(c.attempts_left(), 0);
    assert_eq!(
        c.may_submit(secs(7)),
        Err(Refusal::AttemptLimitReached { limit: 4 })
    );
    assert_eq!(
        c.may_resend(secs(100)),
        Err(Refusal::ResendNotAllowed),
        "resend_otp_allowed false"
    );
    assert!(
        matches!(c.next_step(secs(7)), NextStep::BankPage(url) if url.contains("/v2/pay/start/"))
    );
}

#[test]
fn submit_400_wrong_otp_code_counts_an_attempt() {
    let mut c = challenge();
    let t = submit(&mut c);
    assert_eq!(
        answer(&mut c, t, 400, "submit_wrong_otp_400"),
        Outcome::WrongOtp { attempts_left: 3 }
    );
    assert_eq!(c.attempts(), 1);
}

#[test]
fn submit_400_limit_exceeded_exhausts_attempts() {
    let mut c = challenge();
    let t = submit(&mut c);
    assert_eq!(
        answer(&mut c, t, 400, "resend_limit_exceeded"),
        Outcome::AttemptLimitReached
    );
    assert_eq!(c.attempts_left(), 0);
}

#[test]
fn submit_authorizing_needs_a_status_check() {
    let mut c = challenge();
    let t = submit(&mut c);
    assert_eq!(
        answer(&mut c, t, 200, "submit_authorizing"),
        Outcome::Pending(Status::Authorizing)
    );
    assert_eq!(c.next_step(secs(7)), NextStep::CheckStatus);
    assert_eq!(c.may_submit(secs(7)), Err(Refusal::CheckStatus));
}

#[test]
fn submit_unknown_status_is_kept_and_not_final() {
    let mut body = fixture_json("submit_charged");
    body["status"] = json!("PARTIALLY_CHARGED");
    let mut c = challenge();
    let t = submit(&mut c);
    let outcome = c
        .handle_response(t, 200, body.to_string().as_bytes(), secs(6))
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Pending(Status::Other("PARTIALLY_CHARGED".into()))
    );
    assert!(!c.is_final());
    assert_eq!(c.status().as_str(), "PARTIALLY_CHARGED");
    assert_eq!(c.next_step(secs(7)), NextStep::CheckStatus);
}

#[test]
fn submit_client_errors_are_rejections_that_change_nothing() {
    for (status, name) in [
        (401, "error_access_denied_401"),
        (403, "error_forbidden_403"),
        (404, "error_not_found_404"),
        (400, "error_missing_routing_id"),
    ] {
        let mut c = challenge();
        let before = c.clone();
        let t = submit(&mut c);
        let outcome = answer(&mut c, t, status, name);
        assert!(
            matches!(outcome, Outcome::Rejected(_)),
            "{name}: {outcome:?}"
        );
        assert_eq!(api(&outcome).http_status(), status);
        assert_eq!(c.attempts(), before.attempts());
        assert!(c.may_submit(secs(7)).is_ok(), "{name}");
    }
}

#[test]
fn submit_server_errors_and_duplicates_need_reconciliation() {
    for (status, name, code) in [
        (500, "error_internal_500", "INTERNAL_SERVER_ERROR"),
        (400, "error_duplicate_request", "DUPLICATE_REQUEST"),
    ] {
        let mut c = challenge();
        let t = submit(&mut c);
        let outcome = answer(&mut c, t, status, name);
        assert!(matches!(outcome, Outcome::CheckStatus(_)), "{outcome:?}");
        assert_eq!(api(&outcome).code(), Some(code));
        assert_eq!(c.next_step(secs(7)), NextStep::CheckStatus);
        assert_eq!(
            c.attempts(),
            1,
            "a maybe-processed OTP counts as an attempt"
        );
    }
}

#[test]
fn submit_unreadable_answers_need_reconciliation() {
    for (status, body) in [
        (200, &b"<html>gateway timeout</html>"[..]),
        (200, b"{\"status\":"),
        (200, b"{}"),
        (200, b"{\"status\":\"\"}"),
        (302, b""),
        (502, b"Bad gateway"),
    ] {
        let mut c = challenge();
        let t = submit(&mut c);
        let outcome = c.handle_response(t, status, body, secs(6)).unwrap();
        assert!(
            matches!(outcome, Outcome::CheckStatus(Uncertainty::Response(_))),
            "{outcome:?}"
        );
        assert_eq!(c.next_step(secs(7)), NextStep::CheckStatus);
        assert!(c.check_status(&config(), secs(7)).is_ok());
    }
}

// ----- Order status -------------------------------------------------------------------

fn lost_submit() -> Challenge {
    let mut c = challenge();
    let t = submit(&mut c);
    assert_eq!(
        c.handle_send_failure(t, SendFailure::MaybeSent, secs(6)),
        Ok(Outcome::CheckStatus(Uncertainty::MaybeSent))
    );
    c
}

#[test]
fn order_status_charged_settles_a_lost_submit() {
    let mut c = lost_submit();
    let t = c.check_status(&config(), secs(7)).unwrap().token;
    assert_eq!(
        answer(&mut c, t, 200, "order_status_charged"),
        Outcome::Approved(Status::Charged)
    );
    assert!(c.is_final());
}

#[test]
fn order_status_pending_reopens_the_otp_page() {
    let mut c = lost_submit();
    let t = c.check_status(&config(), secs(7)).unwrap().token;
    assert_eq!(
        answer(&mut c, t, 200, "order_status_pending"),
        Outcome::Pending(Status::PendingVbv)
    );
    assert_eq!(c.next_step(secs(8)), NextStep::EnterOtp);
    assert_eq!(c.attempts(), 1);
    assert!(c.may_submit(secs(8)).is_ok());
}

#[test]
fn order_status_errors_change_nothing() {
    for (status, body) in [
        (400, fixture("order_not_found")),
        (401, fixture("error_access_denied_401")),
        (500, fixture("error_internal_500")),
        (200, b"not json".to_vec()),
        (200, b"{\"order_id\":\"ord_dotp_1001\"}".to_vec()),
        (301, Vec::new()),
    ] {
        let mut c = lost_submit();
        let before = c.clone();
        let t = c.check_status(&config(), secs(7)).unwrap().token;
        let outcome = c.handle_response(t, status, &body, secs(6)).unwrap();
        assert!(matches!(outcome, Outcome::Rejected(_)), "{outcome:?}");
        assert_eq!(c.next_step(secs(8)), NextStep::CheckStatus);
        assert_eq!(c.attempts(), before.attempts());
    }
    let mut c = lost_submit();
    let t = c.check_status(&config(), secs(7)).unwrap().token;
    let outcome = answer(&mut c, t, 400, "order_not_found");
    assert_eq!(api(&outcome).code(), Some("RESOURCE_NOT_FOUND"));
}

#[test]
fn answers_with_the_wrong_token_change_nothing() {
    let mut c = challenge();
    let out = c
        .submit(&config(), &Otp::new("1234").unwrap(), secs(5))
        .unwrap();
    let before = c.clone();
    let stale = out.token;
    let fake: Token = invariants::other_token(Some(stale));
    assert_eq!(
        c.handle_response(fake, 200, &fixture("submit_charged"), secs(6)),
        Err(InputError::StaleToken {
            got: fake,
            in_flight: stale
        })
    );
    assert_eq!(c, before);
    let _ = c.handle_response(stale, 200, &fixture("submit_charged"), secs(6));
    let after = c.clone();
    assert_eq!(
        c.handle_response(
            stale,
            200,
            &fixture("submit_authentication_failed"),
            secs(6)
        ),
        Err(InputError::AlreadyFinal { got: stale })
    );
    assert_eq!(c, after);
}

#[test]
fn an_order_status_check_reads_what_a_challenge_reads() {
    let check = OrderStatusCheck::new("ord_dotp_1001", ROUTING).unwrap();
    assert_eq!(
        check.handle_response(200, &fixture("order_status_charged")),
        Ok(Status::Charged)
    );
    assert_eq!(
        check.handle_response(200, &fixture("order_status_pending")),
        Ok(Status::PendingVbv)
    );
    let unknown = check.handle_response(200, br#"{"status": "NEW_STATE_2027"}"#);
    assert!(
        matches!(&unknown, Ok(s) if !s.is_final() && s.to_string() == "NEW_STATE_2027"),
        "{unknown:?}"
    );

    let Err(ResponseError::Api(e)) = check.handle_response(400, &fixture("order_not_found")) else {
        panic!("an error envelope");
    };
    assert_eq!(
        (e.http_status(), e.code()),
        (400, Some("RESOURCE_NOT_FOUND"))
    );
    for (status, body, problem) in [
        (200, &b"{}"[..], Some(Malformed::Missing("status"))),
        (
            200,
            br#"{"status": ""}"#,
            Some(Malformed::Missing("status")),
        ),
        (200, b"<html>", None),
        (302, b"", None),
    ] {
        let e = check.handle_response(status, body).unwrap_err();
        match (problem, &e) {
            (Some(p), ResponseError::Malformed { problem, .. }) => assert_eq!(*problem, p),
            (None, ResponseError::Malformed { .. } | ResponseError::UnexpectedStatus(302)) => {}
            _ => panic!("{status} {body:?}: {e:?}"),
        }
    }

    // A challenge checking its order reads the same answers the same way.
    for name in [
        "order_status_charged",
        "order_status_pending",
        "order_not_found",
    ] {
        let status = if name == "order_not_found" { 400 } else { 200 };
        let mut c = challenge();
        let token = c.check_status(&config(), secs(5)).unwrap().token;
        let outcome = c
            .handle_response(token, status, &fixture(name), secs(6))
            .unwrap();
        match check.handle_response(status, &fixture(name)) {
            Ok(s) if s.is_final() => assert_eq!(outcome, Outcome::Approved(s)),
            Ok(s) => assert_eq!(outcome, Outcome::Pending(s)),
            Err(e) => assert_eq!(outcome, Outcome::Rejected(e)),
        }
    }
}

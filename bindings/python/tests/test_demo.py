"""The demo's three payments (examples/demo.rs), over real HTTP against the sandbox, through
the Driver and a SqliteStore, with each transport:

1. a resend, then a wrong OTP, then the right one: CHARGED;
2. no SMS arrives: resends up to the limit, the bank page, the signed return, confirmed;
3. the answer to the right OTP is lost (DropResponse): the status check settles it, and the
   bank's counters show the submit reached it once.
"""

from __future__ import annotations

import http.client
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

import direct_otp as d

from conftest import RESPONSE_KEY, RETURN_URL, order_id, start_request


def make_driver(config: d.Config, db: d.SqliteStore, http: d.Http) -> d.Driver:
    return d.Driver(config, db, http, timeout=timedelta(seconds=5))


def start(driver: d.Driver, order: str, card: str = "tok_visa") -> str:
    done = driver.start(start_request(order, card))
    assert done.outcome.code == "otp_sent", done.outcome
    assert done.view.next == "enter_otp"
    assert done.view.can_submit and done.view.key == done.payment.key
    assert done.transport_error is None
    # What the driver stored is what it returned.
    stored = driver.store.load(done.payment.key)
    assert stored == done.payment.to_record()
    return done.payment.key


def test_resend_then_wrong_then_right_otp(
    bank: d.Sandbox, config: d.Config, db: d.SqliteStore, http: d.Http
) -> None:
    driver = make_driver(config, db, http)
    order = order_id("demo1")
    key = start(driver, order)
    first = bank.otp(order)

    done = driver.resend(key)
    assert done.outcome.code == "otp_sent"
    assert done.outcome.sends_left is not None and done.outcome.sends_left >= 1
    second = bank.otp(order)
    # The sandbox's resend replaces the OTP: the first SMS's code is now wrong.
    wrong = first if first != second else ("0" if second[0] != "0" else "1") + second[1:]

    done = driver.submit(key, wrong)
    assert done.outcome.code == "wrong_otp", done.outcome
    assert done.outcome.attempts_left == 3
    assert done.view.can_submit and not done.view.is_final

    done = driver.submit(key, second)
    assert done.outcome.code == "approved"
    assert done.outcome.status == "CHARGED"
    assert done.view.is_final and done.view.paid and done.view.next == "finished"
    payment = driver.load(key)
    assert payment is not None and payment.is_paid and payment.status == "CHARGED"

    # A final payment refuses more commands, with the registry's code.
    with pytest.raises(d.DriveError) as refused:
        driver.resend(key)
    assert refused.value.code == "already_final"
    counters = bank.order(order)["requests"]
    assert counters["start"] == 1 and counters["resend"] == 1 and counters["submit"] == 2


def test_no_sms_resends_to_the_limit_then_bank_page_and_signed_return(
    bank: d.Sandbox, config: d.Config, db: d.SqliteStore, http: d.Http
) -> None:
    driver = make_driver(config, db, http)
    bank.set_card("tok_no_sms", "no_sms")
    order = order_id("demo2")
    key = start(driver, order, "tok_no_sms")
    with pytest.raises(d.SandboxError) as no_otp:
        bank.otp(order)  # nothing to read: no SMS arrives
    assert no_otp.value.code == "no_otp"

    outcomes = []
    while True:
        payment = driver.load(key)
        assert payment is not None
        if not payment.view().can_resend:
            break
        outcome = driver.resend(key).outcome
        outcomes.append(outcome.code)
        if outcome.code != "otp_sent":
            break
    # 4 sends at most, the first at the start: three resends, the last one uses up the limit.
    assert outcomes[:3] == ["otp_sent"] * 3, outcomes
    with pytest.raises(d.DriveError) as refused:
        driver.resend(key)
    assert refused.value.code == "send_limit_reached"
    assert bank.order(order)["transaction"]["otp_sends"] == 4

    page = driver.bank_page(key)
    assert page.url.startswith(bank.url + "/")
    assert page.view.next in ("await_bank_page", "bank_page")

    # The browser on the bank page: "Authenticate"; the answer redirects to the shop.
    location = post_bank_page(page.url)
    assert location.startswith(RETURN_URL + "?")
    query = urlsplit(location).query

    settled = driver.settle_return(query, RESPONSE_KEY)
    assert settled.outcome.code in ("approved", "confirming"), settled.outcome
    assert settled.payment.key == key
    # The return is only a hint: the status check (made by settle, or now) confirms it.
    if settled.check is None:
        done = driver.check_status(key)
        assert done.outcome.code in ("approved", "confirmed")
    final = driver.load(key)
    assert final is not None
    view = final.view()
    assert view.status == "CHARGED" and view.paid and view.is_final and view.confirmed


def post_bank_page(url: str) -> str:
    """POSTs "Authenticate" on the sandbox's bank page; the redirect's location."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("POST", parts.path + ("?" + parts.query if parts.query else ""),
                     body="result=success",
                     headers={"content-type": "application/x-www-form-urlencoded"})
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 302, answer.status
        return str(answer.getheader("location"))
    finally:
        conn.close()


def test_lost_answer_is_settled_by_the_status_check(
    bank: d.Sandbox, config: d.Config, db: d.SqliteStore, http: d.Http
) -> None:
    driver = make_driver(config, db, http)
    order = order_id("demo3")
    key = start(driver, order)
    otp = bank.otp(order)
    bank.fault("drop_response", endpoint="submit", order_id=order)

    done = driver.submit(key, otp)
    assert done.outcome.code == "check_status", done.outcome
    assert done.outcome.fields["why"] == "maybe_sent"
    assert done.transport_error is not None
    assert not done.view.is_final

    # Submitting again is refused: only the status check may follow a maybe-sent submit.
    with pytest.raises(d.DriveError) as refused:
        driver.submit(key, otp)
    assert refused.value.code == "check_status"

    done = driver.check_status(key)
    assert done.outcome.code in ("approved", "confirmed")
    assert done.outcome.status == "CHARGED"
    assert done.view.paid and done.view.is_final
    # The bank charged once: the submit reached it once, the status check told the rest.
    requests = bank.order(order)["requests"]
    assert requests["submit"] == 1 and requests["order_status"] == 1

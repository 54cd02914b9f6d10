"""Settlement through Driver.settle: a signed return URL (the browser back from the bank page)
and a webhook (the bank's event), each verified by the core; tampered or wrongly signed ones
are refused with their codes and change nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import direct_otp as d

from conftest import (
    RESPONSE_KEY,
    WEBHOOK_PASSWORD,
    WEBHOOK_USER,
    order_id,
    start_request,
)


def test_signed_return_url_settles_a_3ds_payment(
    bank: d.Sandbox, driver: d.Driver
) -> None:
    bank.set_card("tok_3ds", "three_ds_failover")
    order = order_id("ret")
    done = driver.start(start_request(order, "tok_3ds"))
    assert done.outcome.code == "bank_page"
    key = done.payment.key
    page = driver.bank_page(key)
    assert page.url.startswith(bank.url)

    finished = bank.complete_bank_page(order, success=True)
    assert finished["status"] == "CHARGED"
    query = bank.return_url(order)["query"]

    # Tampered: the signature no longer matches. Refused before anything is stored.
    before = driver.store.load(key)
    tampered = query.replace("status=CHARGED", "status=AUTHORIZED")
    with pytest.raises(d.WireError) as bad:
        driver.settle_return(tampered, RESPONSE_KEY)
    assert bad.value.code == "return_bad_signature"
    with pytest.raises(d.WireError) as wrong_key:
        driver.settle_return(query, "rk_someone_else")
    assert wrong_key.value.code == "return_bad_signature"
    assert RESPONSE_KEY not in str(wrong_key.value) and "rk_someone_else" not in repr(
        wrong_key.value)
    assert driver.store.load(key) == before

    settled = driver.settle(d.ReturnUrl(query=query, response_key=RESPONSE_KEY))
    assert settled.outcome.code in ("approved", "confirming"), settled.outcome
    assert settled.payment.key == key
    view = settled.view
    if settled.check is not None:
        # The settlement led to a status check at once: its outcome confirms the return.
        assert isinstance(settled.check, d.Outcome), settled.check
        assert settled.check.status == "CHARGED"
    else:
        view = driver.check_status(key).view
    assert view.status == "CHARGED" and view.paid and view.confirmed
    assert view.settled_by is not None

    # The same return again (the back button): changes nothing.
    again = driver.settle_return(query, RESPONSE_KEY)
    assert again.payment.to_record() == driver.store.load(key)
    assert again.view.paid


def test_webhook_settles_a_payment_whose_answer_was_lost(
    bank: d.Sandbox, driver: d.Driver
) -> None:
    order = order_id("hook")
    key = driver.start(start_request(order)).payment.key
    otp = bank.otp(order)
    bank.fault("drop_response", endpoint="submit", order_id=order)
    assert driver.submit(key, otp).outcome.code == "check_status"
    hooks = bank.take_webhooks(order)
    assert hooks, "the sandbox queues the order's events"
    final_hook = hooks[-1]
    headers = final_hook["headers"]
    body = final_hook["body"]

    # Wrong credentials, no credentials, a tampered body: refused, nothing stored.
    before = driver.store.load(key)
    with pytest.raises(d.WireError) as bad:
        driver.settle_webhook(headers, body, username=WEBHOOK_USER, password="not_it")
    assert bad.value.code == "webhook_bad_credentials"
    assert "not_it" not in str(bad.value) and "not_it" not in repr(bad.value)
    with pytest.raises(d.WireError) as missing:
        driver.settle_webhook({}, body, username=WEBHOOK_USER, password=WEBHOOK_PASSWORD)
    assert missing.value.code == "webhook_missing_authorization"
    with pytest.raises(d.WireError) as malformed:
        driver.settle_webhook(headers, "{not json", username=WEBHOOK_USER,
                              password=WEBHOOK_PASSWORD)
    assert malformed.value.code == "webhook_malformed"
    assert driver.store.load(key) == before

    settled = driver.settle_webhook(
        {"Authorization": headers["authorization"], "Content-Type": "application/json"},
        body, username=WEBHOOK_USER, password=WEBHOOK_PASSWORD,
    )
    assert settled.outcome.code in ("approved", "confirming"), settled.outcome
    assert settled.payment.key == key
    view = driver.load(key)
    assert view is not None
    if not view.view().confirmed:
        assert driver.check_status(key).view.paid
    assert driver.load(key) is not None and driver.load(key).is_paid  # type: ignore[union-attr]

    # The same event again (a retry by the bank): a duplicate, nothing changes.
    stored = driver.store.load(key)
    again = driver.settle(d.Webhook(body=body, username=WEBHOOK_USER,
                                    password=WEBHOOK_PASSWORD,
                                    authorization=headers["authorization"]))
    assert again.outcome.code in ("duplicate", "agrees"), again.outcome
    assert driver.store.load(key) == stored


def test_settlement_for_an_unknown_order_is_a_coded_error(
    bank: d.Sandbox, driver: d.Driver, tmp_path: Path
) -> None:
    order = order_id("elsewhere")
    # An order paid without this store knowing it (another shop's, say).
    other = d.Driver(driver.config, d.SqliteStore(tmp_path / "other.sqlite3"), d.UrllibHttp(),
                     timeout=timedelta(seconds=5))
    key = other.start(start_request(order)).payment.key
    other.submit(key, bank.otp(order))
    query = bank.return_url(order)["query"]
    with pytest.raises(d.DriveError) as unknown:
        driver.settle_return(query, RESPONSE_KEY)
    assert unknown.value.code in {c.code for c in d.codes()}
    assert unknown.value.code == "unknown_order"

"""The Payment's sans-IO steps (begin, command, handle) for a host without the driver, over
real HTTP against the sandbox; the values' Python idiom (frozen results, aware datetimes,
timedeltas, redacted reprs); the refusals as RefusedError with their codes."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import datetime, timedelta, timezone

import pytest

import direct_otp as d

from conftest import KEY, order_id, start_request


def send(http: d.Http, request: d.Request) -> d.Reply:
    """What a host does with a request: send it as is; its reply."""
    result = http(
        d.HttpRequest(request.method, request.url,
                      tuple((h.name, h.value) for h in request.headers),
                      (request.body or "").encode()),
        10,
    )
    if isinstance(result, d.HttpAnswer):
        return d.Answer(result.status, result.body)
    return d.MaybeSent() if result.maybe_sent else d.NotSent()


def test_a_payment_without_the_driver(bank: d.Sandbox, config: d.Config) -> None:
    http = d.UrllibHttp()
    order = order_id("sansio")
    payment, request = d.Payment.begin(config, start_request(order, card="tok_visa"))
    assert request.kind == "start" and request.method == "POST"
    assert request.url == f"{bank.url}/txns"
    # The request carries the key: never shown.
    auth = [h for h in request.headers if h.name == "authorization"]
    assert auth and auth[0].sensitive and KEY not in repr(request)
    assert payment.view().next == "wait"

    # A second command while the start is in flight is refused, and changes nothing.
    before = payment.to_record()
    with pytest.raises(d.RefusedError) as refused:
        payment.command(config, d.Resend())
    assert refused.value.code == "in_flight"
    assert payment.to_record() == before

    outcome = payment.handle(request, send(http, request))
    assert outcome.code == "otp_sent" and outcome.sends_left == 3
    view = payment.view()
    assert view.next == "enter_otp" and view.can_submit
    assert view.card is not None and view.card.last_four is not None
    assert view.expires_in is not None and timedelta(0) < view.expires_in <= timedelta(
        minutes=10)

    # Stored and loaded back: the same payment.
    again = d.Payment.from_record(payment.to_record())
    assert again == payment and hash(again) == hash(payment)
    assert again.key == f"{order}/1" and again.order_id == order and again.attempt == 1

    wrong = payment.command(config, d.Submit("000000"))
    assert "000000" not in repr(wrong) and "000000" not in repr(d.Submit("000000"))
    assert wrong.body_sensitive
    outcome = payment.handle(wrong, send(http, wrong))
    assert outcome.code == "wrong_otp" and outcome.attempts_left == 3

    right = payment.command(config, d.Submit(bank.otp(order)))
    # An answer handed with another request's token is refused; the request stays.
    with pytest.raises(d.DirectOtpError) as stale:
        payment.handle(wrong, d.Answer(200, "{}"))
    assert stale.value.code in {c.code for c in d.codes()}
    outcome = payment.handle(right.token, send(http, right))
    assert outcome.code == "approved" and outcome.status == "CHARGED"
    assert payment.is_paid and payment.is_final and payment.status == "CHARGED"
    assert payment.next_step().code == "finished" and payment.next_step().status == "CHARGED"
    with pytest.raises(d.RefusedError) as final:
        payment.command(config, d.Resend())
    assert final.value.code == "already_final" and final.value.fields["status"] == "CHARGED"


def test_cooldown_refusal_has_an_aware_datetime(bank: d.Sandbox, config: d.Config) -> None:
    http = d.UrllibHttp()
    order = order_id("cool")
    now = d.utc_now()
    payment, request = d.Payment.begin(
        config, start_request(order, policy=d.Policy(
            max_sends=4, max_attempts=4, resend_cooldown=timedelta(seconds=30),
            lifetime=timedelta(minutes=10))), now=now)
    payment.handle(request, send(http, request), now=now)
    view = payment.view(now)
    assert not view.can_resend and view.resend_in == timedelta(seconds=30)
    with pytest.raises(d.RefusedError) as cooldown:
        payment.command(config, d.Resend(), now=now + timedelta(seconds=10))
    e = cooldown.value
    assert e.code == "cooldown"
    assert e.until is not None and e.until.tzinfo is not None
    assert e.until == d.from_ms(d.to_ms(now)) + timedelta(seconds=30)
    # Past the cooldown, a resend goes.
    later = now + timedelta(seconds=31)
    request = payment.command(config, d.Resend(), now=later)
    assert payment.handle(request, send(http, request), now=later).code == "otp_sent"


def test_values_are_idiomatic() -> None:
    config = d.Config(base_url="https://api.juspay.in", api_key="sk_live_secret")
    assert "sk_live_secret" not in repr(config) and "sk_live_secret" not in str(config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.api_key = "x"  # type: ignore[misc]
    card = d.CardNumber("4111111111111111", "12", "2030", "123", "A Person")
    assert "4111" not in repr(card) and "123" not in repr(card)
    start = d.StartRequest(order_id="o", merchant_id="m", routing_id="r", source=card)
    assert "4111" not in repr(start)
    assert "rk_x" not in repr(d.ReturnUrl(query="a=b", response_key="rk_x"))
    assert "pw" not in repr(d.Webhook(body="{}", username="u", password="pw"))
    when = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert d.from_ms(d.to_ms(when)) == when and d.from_ms(0).tzinfo is not None
    # Errors pickle (multiprocessing hands them between processes).
    e = d.RefusedError({"code": "cooldown", "until_ms": 5}, "cooldown")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is d.RefusedError and back.code == "cooldown" and back.fields == {
        "until_ms": 5}


def test_wrong_python_types_are_coded(db: d.SqliteStore) -> None:
    config = d.Config(base_url="https://api.juspay.in", api_key="sk")
    payment, _ = d.Payment.begin(config, start_request("typed"))
    for bad_now in (5, "2026-01-01", 1.5):
        with pytest.raises(d.TypeMismatch) as e:
            payment.view(bad_now)  # type: ignore[arg-type]
        assert e.value.code == "wire_shape" and isinstance(e.value, TypeError)
    driver = d.Driver(config, db, timeout=5)  # type: ignore[arg-type]
    with pytest.raises(d.TypeMismatch):
        driver.resend("k/1")


def test_sandbox_started_with_settings() -> None:
    with d.Sandbox.start(api_key="sk_s", otp="424242", return_url="https://shop.example/r",
                         response_key="rk_s", max_sends=2, max_attempts=2,
                         webhook_username="u", webhook_password="p") as sb:
        settings = sb.settings()
        assert settings["max_sends"] == 2 and settings["max_attempts"] == 2
        assert settings["return_url"] == "https://shop.example/r"
        assert settings["otp"] == "fixed"
        assert "rk_s" not in str(settings) and "424242" not in str(settings)
        assert "sk_s" not in repr(sb)
        assert sb.running
    assert not sb.running
    sb.stop()  # a second stop does nothing
    with pytest.raises(d.SandboxError) as gone:
        sb.counters()
    assert gone.value.code == "unreachable"


def test_a_sans_io_host_with_its_own_store(
    bank: d.Sandbox, config: d.Config, db: d.SqliteStore
) -> None:
    """Payment.new, then the write-ahead by compare-and-swap on row().revision, as
    docs/concurrency.md has it: the second copy of the same revision sends nothing."""
    http = d.UrllibHttp()
    order = order_id("own")
    payment = d.Payment.new(start_request(order))
    assert payment.next_step().code == "start"
    assert db.insert(payment.row()) and not db.insert(payment.row())
    stored = db.load(payment.key)
    assert stored is not None

    mine = d.Payment.from_record(stored)
    theirs = d.Payment.from_record(stored)  # another worker, same revision
    before = mine.revision
    request = mine.command(config, d.StartAgain(d.CardToken("tok_visa")))
    row = mine.row()
    assert row.revision > before and row.in_flight_since is not None
    assert row.in_flight_since.tzinfo is not None
    assert db.replace(before, row)  # the write-ahead wins: send
    theirs.command(config, d.StartAgain(d.CardToken("tok_visa")))
    assert not db.replace(before, theirs.row())  # loses: sends nothing
    assert db.list_in_flight(d.utc_now() + timedelta(seconds=1), 10) == [row.key]

    outcome = mine.handle(request, send(http, request))
    assert outcome.code == "otp_sent"
    assert db.replace(row.revision, mine.row())
    assert db.load(mine.key) == mine.to_record()
    assert db.list_in_flight(d.utc_now() + timedelta(seconds=1), 10) == []
    assert bank.order(order)["requests"]["start"] == 1

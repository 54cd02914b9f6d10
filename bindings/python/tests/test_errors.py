"""Errors: every one raised is a DirectOtpError whose code is in the registry (codes()), and
hostile input (bad JSON through the raw API, wrong types, huge strings, NUL bytes, lone
surrogates, non-str values, random bytes) gives a coded error, never a crash: no
PanicException (a BaseException, so caught here explicitly) and no other exception type."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List

import pytest

import direct_otp as d
from direct_otp import _native

from conftest import KEY, start_request

CODES = {c.code for c in d.codes()}
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
NOW_MS = d.to_ms(NOW)
CONFIG = {"base_url": "http://127.0.0.1:9", "api_key": "sk_secret_key_xyz"}
CARD_NUMBER = "4111111111111111"
START = {
    "order_id": "ord_hostile",
    "merchant_id": "acme",
    "routing_id": "cust_1",
    "source": {"type": "card", "number": CARD_NUMBER, "expiry_month": "12",
               "expiry_year": "2030", "cvv": "987"},
}
SECRETS = ["sk_secret_key_xyz", CARD_NUMBER, "987654"]


def test_the_registry() -> None:
    codes = d.codes()
    assert len(codes) > 100
    assert len(CODES) == len(codes), "each code listed once"
    for c in codes:
        assert c.code and c.code == c.code.lower() and " " not in c.code
        assert c.types and c.meaning
    for needed in ("wire_syntax", "wire_shape", "bad_record", "otp_not_digits", "cooldown",
                   "check_status", "store_conflict", "return_bad_signature"):
        assert needed in CODES


def raw_outcome(f: Callable[[], Any]) -> str:
    """Runs a raw native call: its JSON text, or the code of the WireError it raised. Any
    other exception (PanicException included: it is a BaseException) fails the test."""
    try:
        out = f()
    except _native.WireError as e:
        message, wire_text = e.args
        wire = json.loads(wire_text)
        assert wire["code"] in CODES, wire
        assert isinstance(message, str) and message
        for secret in SECRETS:
            assert secret not in message and secret not in wire_text
        return str(wire["code"])
    except BaseException as e:  # noqa: B036 - a panic must fail the test, not escape it
        pytest.fail(f"{type(e).__module__}.{type(e).__name__}: {e!r}")
    assert isinstance(out, str)
    json.loads(out)
    return "ok"


HOSTILE: List[Any] = [
    None, 0, -1, 2**63, -(2**63) - 1, 2**64, 1.5, float("inf"), True, [], {}, [None], "",
    "\x00", "a\x00b", "x" * 1_000_000, "\ud800", "\U0001f600", "12\u0663456", "../..",
    {"code": "approved"}, "  ", "null", "{}",
]


@pytest.mark.parametrize("text", [
    "", "{", "}", "null", "[]", "1", "\"fn\"", "{\"fn\":1}", "{\"fn\":\"nope\"}",
    "{\"fn\":\"view\"}", "{\"fn\":\"view\",\"record\":\"{}\",\"now_ms\":0}",
    "{\"fn\":\"codes\",\"extra\":1}", "\x00", "{\"fn\":\"view\",\"record\":\"\\u0000\",\"now_ms\":1}",
    "[" * 100_000, "{\"fn\":\"version\"}" + " " * 100, "\ufeff{\"fn\":\"version\"}",
])
def test_raw_call_bad_json(text: str) -> None:
    raw_outcome(lambda: _native.call(text))
    raw_outcome(lambda: _native.call(text.encode("utf-8")))


@pytest.mark.parametrize("value", [None, 1, 1.5, [], {}, object(), bytearray(b"{}"),
                                   memoryview(b"{}"), NOW])
def test_raw_call_non_text(value: Any) -> None:
    # Not text at all: not JSON text (`wire_syntax`), as in the Node binding.
    assert raw_outcome(lambda: _native.call(value)) == "wire_syntax"
    assert raw_outcome(lambda: _native.HostSteps(value)) == "wire_syntax"
    assert raw_outcome(lambda: _native.SandboxServer(value)) == "wire_syntax"


def test_raw_bytes_and_surrogates() -> None:
    for raw in [b"\xff\xfe", b"{\"fn\":\"version\"\xff}", b"\x00" * 10, bytes(range(256))]:
        assert raw_outcome(lambda: _native.call(raw)) != "ok"
    # A lone surrogate in a str cannot be UTF-8: refused like any text that is not.
    assert raw_outcome(lambda: _native.call('{"fn":"\ud800"}')) == "wire_syntax"
    code = raw_outcome(lambda: _native.call(
        json.dumps({"fn": "command", "config": CONFIG, "record": "{}",
                    "command": {"command": "submit", "otp": "\udc00\udc00"}, "now_ms": 0},
                   ensure_ascii=False)))
    assert code in ("wire_syntax", "bad_record")


def _valid_calls() -> List[Dict[str, Any]]:
    payment, request = d.Payment.begin(CONFIG, START, now=NOW)
    record = payment.to_record()
    payment.handle(request, d.MaybeSent(), now=NOW)
    uncertain = payment.to_record()  # its start may have left: a status check is next
    return [
        {"fn": "codes"},
        {"fn": "version"},
        {"fn": "view", "record": record, "now_ms": NOW_MS},
        {"fn": "next_step", "record": record, "now_ms": NOW_MS},
        {"fn": "begin", "config": CONFIG, "start": START, "attempt": 1, "now_ms": NOW_MS},
        {"fn": "command", "config": CONFIG, "record": uncertain,
         "command": {"command": "check_status"}, "now_ms": NOW_MS},
        {"fn": "new", "start": START, "attempt": 2, "now_ms": NOW_MS},
        {"fn": "handle", "record": record, "token": request.token,
         "reply": {"kind": "answer", "status": 200, "body": "{}"}, "now_ms": NOW_MS},
        {"fn": "handle", "record": record, "token": request.token,
         "reply": {"kind": "maybe_sent"}, "now_ms": NOW_MS},
    ]


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict) and value and depth < 4:
        out = dict(value)
        key = rng.choice(sorted(out))
        action = rng.randrange(4)
        if action == 0:
            del out[key]
        elif action == 1:
            out[key] = rng.choice(HOSTILE)
        elif action == 2:
            out[key] = _mutate(rng, out[key], depth + 1)
        else:
            out[rng.choice(["extra", "fn", "code", key + "_"])] = rng.choice(HOSTILE)
        return out
    if isinstance(value, str) and value and rng.random() < 0.5:
        i = rng.randrange(len(value))
        return value[:i] + rng.choice(["\x00", "\ud800", "\"", "\\", "%", "9" * 40, ""]) + \
            value[i + 1:]
    return rng.choice(HOSTILE)


def test_raw_call_fuzz_never_panics() -> None:
    rng = random.Random(20260420)
    seeds = _valid_calls()
    for form in seeds:
        assert raw_outcome(lambda: _native.call(json.dumps(form))) == "ok", form["fn"]
    seen = set()
    for _ in range(2500):
        form = _mutate(rng, rng.choice(seeds))
        try:
            text = json.dumps(form, ensure_ascii=rng.random() < 0.5)
        except ValueError:
            continue
        if rng.random() < 0.1:  # cut it short or garble a byte
            cut = rng.randrange(len(text) + 1)
            text = text[:cut]
        seen.add(raw_outcome(lambda: _native.call(text)))
    assert "wire_shape" in seen and "ok" in seen


def test_host_steps_fuzz_never_panics() -> None:
    rng = random.Random(7)
    spec = {"config": CONFIG, "timeout_ms": 1000, "call": "run", "key": "ord_x/1",
            "command": {"command": "resend"}}
    assert isinstance(_native.HostSteps(json.dumps(spec)), _native.HostSteps)
    for _ in range(800):
        text = json.dumps(_mutate(rng, spec), ensure_ascii=False)
        raw_outcome(lambda: _native.HostSteps(text).resume('{"result":"begin"}', NOW_MS))
    inputs: List[Any] = [
        '{"result":"loaded","record":null}', '{"result":"loaded","record":"{}"}',
        '{"result":"loaded","record":5}', '{"result":"stored"}', '{"result":"nope"}',
        '{"result":"answer","status":200,"body":"{}"}', '{"result":"send_failed"}',
        '{"result":"store_failed","transient":true,"message":"x"}', "", "{", "\x00",
        None, 5, b"\xff", '{"result":"listed","keys":[1,2]}',
    ]
    for _ in range(800):
        steps = _native.HostSteps(json.dumps(spec))
        steps.resume('{"result":"begin"}', NOW_MS)
        for _ in range(rng.randrange(1, 5)):
            value = rng.choice(inputs)
            now: Any = rng.choice([NOW_MS, 0, -1, 2**63 - 1, -(2**63), 2**64, None, 1.5, "1",
                                   True])
            raw_outcome(lambda: steps.resume(value, now))


def assert_coded(e: BaseException) -> d.DirectOtpError:
    assert isinstance(e, d.DirectOtpError), repr(e)
    assert e.code in CODES, e.code
    text = str(e) + repr(e) + json.dumps(e.wire)
    for secret in SECRETS + [KEY]:
        assert secret not in text
    return e


def coded(f: Callable[[], Any]) -> str:
    try:
        f()
    except BaseException as e:  # noqa: B036
        return assert_coded(e).code
    pytest.fail("no error raised")


def test_python_layer_hostile_values() -> None:
    good = d.Config(base_url="http://127.0.0.1:9", api_key="sk_secret_key_xyz")
    assert coded(lambda: d.Payment("not a record")) == "bad_record"
    assert coded(lambda: d.Payment("{}")) in ("bad_record", "wire_shape")
    assert coded(lambda: d.Payment(b"\xff\xfe")) == "wire_syntax"
    assert coded(lambda: d.Payment(5)) == "wire_shape"  # type: ignore[arg-type]
    assert coded(lambda: d.Payment("x" * 5_000_000)) == "bad_record"
    assert coded(lambda: d.Payment('"\x00"')) in ("bad_record", "wire_shape")
    payment, _ = d.Payment.begin(good, start_request("ord_p"), now=NOW)
    assert coded(lambda: payment.command(good, d.Submit("12x456"), now=NOW)) in (
        "otp_not_digits", "in_flight")
    p2 = d.Payment(payment.to_record())
    p2.handle(_, d.NotSent(), now=NOW)
    assert coded(lambda: p2.command(good, d.Submit("12x456"), now=NOW)) == "otp_not_digits"
    assert coded(lambda: p2.command(good, d.Submit("987654\x00"), now=NOW)) in (
        "otp_not_digits", "otp_length")
    assert coded(lambda: p2.command(good, d.Submit(None), now=NOW)) == "wire_shape"  # type: ignore[arg-type]
    assert coded(lambda: p2.command(good, d.Submit(object()), now=NOW)) == "wire_shape"  # type: ignore[arg-type]
    assert coded(lambda: p2.command(good, {"command": "teleport"}, now=NOW)) == "wire_shape"
    assert coded(lambda: p2.handle("not a token", d.MaybeSent(), now=NOW)) == "bad_token"
    assert coded(lambda: p2.handle(_, d.Answer(200, b"\xff"), now=NOW)) in CODES
    # A configuration is checked when it is made, by the core.
    assert coded(lambda: d.Config(base_url="ftp://bank", api_key="k")) == "base_url_scheme"
    assert coded(lambda: d.Payment.begin(
        d.Config(base_url="ftp://bank", api_key="k"), start_request("o"), now=NOW)
    ).startswith("base_url_")
    assert coded(lambda: d.Payment.begin(
        d.Config(base_url="https://bank", api_key=""), start_request("o"), now=NOW)
    ) in ("bad_api_key", "secret_empty")
    assert coded(lambda: d.Payment.begin(
        d.Config(base_url="https://bank", api_key=123), start_request("o"), now=NOW)  # type: ignore[arg-type]
    ) == "wire_shape"
    assert coded(lambda: d.Payment.begin(good, start_request("o" * 100_000), now=NOW)) == \
        "id_too_long"
    assert coded(lambda: d.Payment.begin(good, start_request("o\x00k"), now=NOW)) == \
        "id_forbidden_character"
    assert coded(lambda: d.Payment.begin(good, start_request(""), now=NOW)) == "id_empty"
    assert coded(lambda: d.Payment.begin(good, start_request("ord", policy=d.Policy(
        max_sends=-1, max_attempts=4, resend_cooldown=timedelta(0),
        lifetime=timedelta(minutes=1))), now=NOW)) == "wire_shape"
    assert coded(lambda: d.Payment.begin(good, start_request(
        "ord", expected_amount=d.ExpectedAmount("-1", "INR")), now=NOW)).startswith("amount_")
    assert coded(lambda: d.Payment.begin(good, start_request(
        "ord", expected_amount=d.ExpectedAmount("1", "rupees")), now=NOW)) == "bad_currency"
    assert coded(lambda: d.Payment.begin(good, start_request("ord"), now=NOW,
                                         attempt=2**70)) == "wire_shape"
    nan = float("nan")
    assert coded(lambda: d.Payment.begin(good, start_request("ord"), now=NOW,
                                         attempt=nan)) == "wire_shape"  # type: ignore[arg-type]
    # A value with no JSON form is refused before the core: a TypeMismatch, also a TypeError.
    with pytest.raises(TypeError) as mismatch:
        p2.command(good, d.Submit(object()), now=NOW)  # type: ignore[arg-type]
    assert isinstance(mismatch.value, d.TypeMismatch) and mismatch.value.code == "wire_shape"


def test_driver_hostile_values(driver: d.Driver) -> None:
    for key in ["", "\x00", "a" * 100_000, "../x", "\ud800"]:
        code = coded(lambda: driver.resend(key))
        assert code in CODES
    assert coded(lambda: driver.resend(5)) == "wire_shape"  # type: ignore[arg-type]
    assert coded(lambda: driver.run("k/1", {"command": "submit", "otp": 123456})) == "wire_shape"
    assert coded(lambda: driver.sweep(limit=-1)) == "wire_shape"
    assert coded(lambda: driver.settle_return("order_id=x", "")) in ("secret_empty",
                                                                     "return_missing_signature")


def test_the_sandbox_refuses_bad_settings() -> None:
    assert coded(lambda: d.Sandbox.start(api_key="k", webhook_url="http://example.com/x")) \
        == "sandbox_webhook_url"
    assert coded(lambda: d.Sandbox.start(api_key=5)) == "wire_shape"  # type: ignore[arg-type]

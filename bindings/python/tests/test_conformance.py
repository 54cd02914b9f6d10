"""The transport conformance table (tests/conformance/transport.json, docs/conformance.md)
for UrllibHttp and HttpxHttp, against the sandbox's scripted faults, as the file's harness
rules say: reset, queue the case's faults, send POST {base}/txns with the case's deadline
and body limit, check the result, then the bank's counters and whether it acted."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

import direct_otp as d

from conftest import REPO

TABLE_PATH = REPO / "tests" / "conformance" / "transport.json"
TABLE: Dict[str, Any] = json.loads(TABLE_PATH.read_text())
CASES: List[Dict[str, Any]] = TABLE["cases"]
API_KEY = TABLE["harness"]["api_key"]


def test_the_table_is_the_one_documented() -> None:
    assert TABLE["version"] == 1
    assert len(CASES) >= 18
    assert {"answer", "not_sent", "maybe_sent"} == set(TABLE["results"])


@pytest.fixture(scope="module")
def conformance_sandbox() -> Iterator[d.Sandbox]:
    with d.Sandbox.start(api_key=API_KEY) as sb:
        yield sb


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def transport(name: str, body_limit: int) -> d.Http:
    if name == "urllib":
        return d.UrllibHttp(body_limit=body_limit)
    httpx = pytest.importorskip("httpx")
    return d.HttpxHttp(httpx.Client(trust_env=False), body_limit=body_limit)


@pytest.mark.parametrize("transport_name", ["urllib", "httpx"])
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(conformance_sandbox: d.Sandbox, transport_name: str, case: Dict[str, Any]) -> None:
    sb = conformance_sandbox
    sb.reset()
    for fault in case["faults"]:
        sb.control("POST", "faults", fault)
    base = sb.url
    if case["target"] == "closed_port":
        base = f"http://127.0.0.1:{closed_port()}"
    elif case["target"] == "https_on_plain_port":
        base = sb.url.replace("http://", "https://")
    client = case["client"]
    http = transport(transport_name, int(client.get("body_limit", d.DEFAULT_BODY_LIMIT)))
    form = (f"order_id={case['id']}&merchant_id=acme&payment_method_type=CARD"
            "&card_token=tok_visa&auth_type=OTP&format=json")
    auth = "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()
    request = d.HttpRequest(
        method="POST",
        url=f"{base}/txns",
        headers=(("authorization", auth), ("x-routing-id", "cust_1"),
                 ("content-type", "application/x-www-form-urlencoded")),
        body=form.encode(),
    )
    result = http(request, client["timeout_ms"] / 1000)
    expect = case["expect"]

    if isinstance(result, d.HttpAnswer):
        got = "answer"
    else:
        assert isinstance(result, d.HttpFailure), result
        got = "maybe_sent" if result.maybe_sent else "not_sent"
    allowed = [expect["result"], *expect.get("may_report", [])]
    assert got in allowed, f"{case['id']}: {got} ({result!r}), expected one of {allowed}"
    if got == "answer":
        assert isinstance(result, d.HttpAnswer)
        assert result.status == expect["status"]
        if result.status == 200:
            json.loads(result.body)  # read whole
    else:
        assert isinstance(result, d.HttpFailure) and result.message

    counters = sb.counters()
    assert counters["requests"]["start"] == expect["bank_requests"], counters["requests"]
    try:
        sb.order(case["id"])
        applied = True
    except d.SandboxError as e:
        assert e.code == "not_found" and e.status == 404
        applied = False
    assert applied == expect["applied"]

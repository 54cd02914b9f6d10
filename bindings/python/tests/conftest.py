"""Shared fixtures: one sandbox per test module (reset before each test), drivers over a
fresh SQLite file, unique order ids. Nothing here reaches the network: the sandbox listens
on 127.0.0.1 and every URL the tests use is its own."""

from __future__ import annotations

import itertools
import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import direct_otp as d

KEY = "sk_test_python"
RESPONSE_KEY = "rk_test_python"
RETURN_URL = "https://shop.example/pay/return"
WEBHOOK_USER = "hook_user"
WEBHOOK_PASSWORD = "hook_password_9"

#: The repository's root (tests/conformance, tests/golden live there).
REPO = Path(os.environ.get("DIRECT_OTP_REPO", Path(__file__).resolve().parents[3]))

_orders = itertools.count(1)


def order_id(prefix: str = "ord") -> str:
    """A fresh order id (unique within the run)."""
    return f"{prefix}_{os.getpid()}_{next(_orders)}"


def policy(cooldown: timedelta = timedelta(0)) -> d.Policy:
    """The sandbox's limits (4 sends, 4 attempts), without the resend cooldown so the tests
    need not wait 30 s (the demo skips it on its clock)."""
    return d.Policy(max_sends=4, max_attempts=4, resend_cooldown=cooldown,
                    lifetime=timedelta(minutes=10))


def start_request(order: str, card: str = "tok_visa", **extra: Any) -> d.StartRequest:
    return d.StartRequest(order_id=order, merchant_id="acme", routing_id="cust_1",
                          source=d.CardToken(card), policy=extra.pop("policy", policy()),
                          **extra)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[d.Sandbox]:
    with d.Sandbox.start(api_key=KEY) as sb:
        yield sb


@pytest.fixture()
def bank(sandbox: d.Sandbox) -> d.Sandbox:
    """The module's sandbox, reset, with a signed return URL and webhook credentials."""
    sandbox.reset()
    sandbox.update_settings(
        max_sends=4, max_attempts=4, return_url=RETURN_URL, response_key=RESPONSE_KEY,
        webhook_credentials={"username": WEBHOOK_USER, "password": WEBHOOK_PASSWORD},
    )
    return sandbox


@pytest.fixture()
def config(bank: d.Sandbox) -> d.Config:
    return d.Config(base_url=bank.url, api_key=KEY)


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[d.SqliteStore]:
    store = d.SqliteStore(tmp_path / "payments.sqlite3")
    yield store
    store.close()


HTTPS: dict[str, Callable[[], d.Http]] = {
    "urllib": lambda: d.UrllibHttp(),
    "httpx": lambda: _httpx(),
}


def _httpx() -> d.Http:
    httpx = pytest.importorskip("httpx")
    return d.HttpxHttp(httpx.Client(trust_env=False))


@pytest.fixture(params=sorted(HTTPS))
def http(request: pytest.FixtureRequest) -> d.Http:
    """Each transport in turn."""
    return HTTPS[request.param]()


@pytest.fixture()
def driver(config: d.Config, db: d.SqliteStore) -> d.Driver:
    return d.Driver(config, db, d.UrllibHttp(), timeout=timedelta(seconds=5))

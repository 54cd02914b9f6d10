"""The worker of the multi-process race (test_race.py), and the watched store and transport
every process of it uses. A worker process drives the same payments as the others through
its own Driver on the one SQLite file, at random, and may be SIGKILLed (by the test, or by
itself between its write-ahead and its answer). What it does goes to a ledger file of its
own, one line per event, written before the event (so a process killed leaves its lines):

* ``wa KEY TOKEN``: a store write with a request in flight won (a write-ahead);
* ``sending KIND KEY TOKEN``: a request is about to leave (after its write-ahead);
* ``sent KIND TOKEN RESULT``: what came back;
* ``code CODE``: a driver call's outcome or error code; ``recovered KEY``: a sweep's;
* ``kill``: the worker kills itself; ``violation TEXT``: something that must never happen.
"""

from __future__ import annotations

import os
import random
import signal
import time
from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional

import direct_otp as d

KEY = "sk_test_race"
OTP = "123456"
WRONG = "999999"
MAX_SENDS = 3
MAX_ATTEMPTS = 3
TIMEOUT = timedelta(seconds=1)
GRACE = timedelta(seconds=2)
CARDS = [("tok_otp", "direct_otp"), ("tok_3ds", "three_ds_failover"),
         ("tok_decline", "decline_after_otp"), ("tok_slow", "slow_authorization")]


class Ledger:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def note(self, *words: object) -> None:
        line = " ".join(str(w).replace("\n", " ") for w in words) + "\n"
        os.write(self.fd, line.encode("utf-8", "replace"))


class Watch:
    """What the store and the transport of one process share: the last write-ahead (the
    only request this process may send next), the kills, the clock."""

    def __init__(self, ledger: Ledger, kill_one_in: int, seed: int) -> None:
        self.ledger = ledger
        self.kill_one_in = kill_one_in
        self.rng = random.Random(seed)
        self.written_ahead: Optional[tuple[str, str]] = None
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return d.utc_now() + self.offset

    def maybe_die(self) -> None:
        if self.kill_one_in and self.rng.randrange(2 * self.kill_one_in) == 0:
            self.ledger.note("kill")
            os.kill(os.getpid(), signal.SIGKILL)


class WatchedStore:
    def __init__(self, inner: d.SqliteStore, watch: Watch) -> None:
        self.inner = inner
        self.watch = watch

    def load(self, key: str) -> Optional[str]:
        return self.inner.load(key)

    def latest_for_order(self, order_id: str) -> Optional[str]:
        return self.inner.latest_for_order(order_id)

    def list_in_flight(self, before: datetime, limit: int) -> List[str]:
        return self.inner.list_in_flight(before, limit)

    def insert(self, row: d.Row) -> bool:
        won = self.inner.insert(row)
        if won:
            self._wrote(row, None)
        return won

    def replace(self, expected: int, row: d.Row) -> bool:
        before = self.inner.load(row.key)
        won = self.inner.replace(expected, row)
        if won:
            self._wrote(row, before)
        return won

    def _wrote(self, row: d.Row, before: Optional[str]) -> None:
        now = self.watch.now()
        if before is not None:
            # A final record stays final, with its status (it may be written again).
            old = d.Payment(before).view(now)
            new = d.Payment(row.record).view(now)
            if old.is_final and (not new.is_final or new.status != old.status):
                self.watch.ledger.note("violation", f"final record {row.key} reverted:",
                                       old.status, "->", new.status)
        if row.in_flight_since is not None:
            step = d.Payment(row.record).next_step(now)
            token = step.token or "?"
            self.watch.written_ahead = (row.key, token)
            self.watch.ledger.note("wa", row.key, token)


def kind_of(url: str) -> str:
    path = url.split("://", 1)[-1].split("/", 1)[-1]
    if path.startswith("txns"):
        return "start"
    if path.endswith("/resend"):
        return "resend"
    if "/authenticate" in path:
        return "submit"
    if path.startswith("orders/"):
        return "order_status"
    return "other"


class WatchedHttp:
    def __init__(self, inner: d.Http, watch: Watch) -> None:
        self.inner = inner
        self.watch = watch

    def __call__(self, request: d.HttpRequest, timeout: float) -> d.HttpResult:
        kind = kind_of(request.url)
        ahead = self.watch.written_ahead
        self.watch.written_ahead = None
        if ahead is None:
            self.watch.ledger.note("violation", f"a {kind} request sent without a write-ahead")
            token = "?"
            key = "?"
        else:
            key, token = ahead
            if not token.startswith(kind + "@") and kind != "other":
                self.watch.ledger.note("violation", f"sent {kind} after writing ahead {token}")
        self.watch.maybe_die()  # dies before the request leaves
        self.watch.ledger.note("sending", kind, key, token)
        result = self.inner(request, timeout)
        if isinstance(result, d.HttpAnswer):
            if b"max_limit_exceeded" in result.body:
                self.watch.ledger.note("violation", f"the bank refused {kind} for its limits")
            self.watch.ledger.note("sent", kind, token, result.status)
        else:
            self.watch.ledger.note("sent", kind, token,
                                   "maybe_sent" if result.maybe_sent else "not_sent")
        self.watch.maybe_die()  # dies with the answer in hand, not stored
        return result


def make_driver(url: str, db: str, ledger_path: str, seed: int, kill_one_in: int
                ) -> tuple[d.Driver, Watch]:
    ledger = Ledger(ledger_path)
    watch = Watch(ledger, kill_one_in, seed)
    store = WatchedStore(d.SqliteStore(db, busy_timeout=timedelta(seconds=30)), watch)
    http = WatchedHttp(d.UrllibHttp(), watch)
    driver = d.Driver(d.Config(base_url=url, api_key=KEY), store, http, timeout=TIMEOUT,
                      grace=GRACE, clock=watch.now)
    return driver, watch


def order(prefix: str, i: int) -> str:
    return f"{prefix}{i}"


def key(prefix: str, i: int) -> str:
    return f"{order(prefix, i)}/1"


def start_request(prefix: str, i: int) -> d.StartRequest:
    return d.StartRequest(
        order_id=order(prefix, i), merchant_id="acme", routing_id=f"cust_{i}",
        source=d.CardToken(CARDS[i % len(CARDS)][0]),
        policy=d.Policy(max_sends=MAX_SENDS, max_attempts=MAX_ATTEMPTS,
                        resend_cooldown=timedelta(0), lifetime=timedelta(minutes=10)),
    )


def note(ledger: Ledger, f: Any) -> Any:
    """Runs one driver call, noting its outcome's or error's code."""
    try:
        result = f()
    except d.DirectOtpError as e:
        ledger.note("code", e.code)
        if e.code in ("store", "unanswerable"):
            ledger.note("violation", f"driver: {e!r}")
        return None
    if isinstance(result, d.Done):
        ledger.note("code", result.outcome.code)
    elif isinstance(result, list):
        for s in result:
            note_swept(ledger, s)
    return result


def note_swept(ledger: Ledger, s: d.Swept) -> None:
    if s.code == "recovered":
        ledger.note("recovered", s.key)
        if isinstance(s.check, d.Done):
            ledger.note("code", s.check.outcome.code)
    elif s.code == "moved":
        ledger.note("code", "moved")
    else:
        ledger.note("violation", f"sweep of {s.key}: {s.error!r}")


def worker(spec: Dict[str, Any]) -> None:
    """One worker process: starts every payment (in its own order), then random commands
    on random payments until the deadline (wall clock, seconds since the epoch)."""
    driver, watch = make_driver(spec["url"], spec["db"], spec["ledger"], spec["seed"],
                                spec["kill_one_in"])
    ledger = watch.ledger
    rng = random.Random(spec["seed"])
    prefix, n = spec["prefix"], spec["payments"]
    sequence = list(range(n))
    rng.shuffle(sequence)
    for i in sequence:
        note(ledger, lambda: driver.start(start_request(prefix, i)))
    while time.time() < spec["until"]:
        i = rng.randrange(n)
        k = key(prefix, i)
        roll = rng.randrange(20)
        if roll <= 1:
            note(ledger, lambda: driver.start(start_request(prefix, i)))
        elif roll <= 6:
            for _ in range(rng.randrange(1, 4)):  # a burst of resends
                note(ledger, lambda: driver.resend(k))
        elif roll <= 9:
            note(ledger, lambda: driver.submit(k, WRONG))
        elif roll == 10:
            note(ledger, lambda: driver.submit(k, OTP))
        elif roll <= 13:
            note(ledger, lambda: driver.check_status(k))
        elif roll == 14:
            note(ledger, lambda: driver.bank_page(k))
        else:
            note(ledger, lambda: driver.sweep(limit=64, check=True))
    os.close(ledger.fd)


__all__ = ["worker", "make_driver", "key", "order", "start_request", "note", "note_swept",
           "KEY", "OTP", "WRONG", "MAX_SENDS", "MAX_ATTEMPTS", "GRACE", "CARDS"]

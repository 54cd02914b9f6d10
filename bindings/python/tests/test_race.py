"""The proof under load and faults, across processes (the idea of tests/workers.rs): several
``multiprocessing`` processes (spawn) race on the same payments in ONE SQLite file, through
the Python Driver, against the sandbox over loopback HTTP. Workers are SIGKILLed at random:
by the test from outside, at any instant, and by themselves between their write-ahead and
their answer. The bank drops answers, answers late (past the deadline), refuses with 500 or
DUPLICATE_REQUEST. Then the clock jumps past the grace, a sweep recovers what the dead left
in flight, every payment is driven to its end, and the bank's own counters are checked:

* no request reached the bank twice: every request the bank counted per endpoint was sent
  right after the write-ahead of its own token won, and no token was sent twice;
* no limit was exceeded: one transaction per order, at most MAX_SENDS OTPs sent and
  MAX_ATTEMPTS tries, and the bank never answered ``max_limit_exceeded``;
* no final record reverted, no store failure; no record is lost or left in flight, and every
  final record says what the bank says.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List

import pytest

import direct_otp as d

sys.path.insert(0, str(Path(__file__).resolve().parent))
import race_worker as rw  # noqa: E402

PAYMENTS = 16
PROCESSES = 4
STORM = 4.0
#: One send in KILL_ONE_IN kills its own worker (half before the request leaves, half after).
KILL_ONE_IN = 12


def test_processes_race_on_one_sqlite_file(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    db = str(tmp_path / "race.sqlite3")
    d.SqliteStore(db).close()
    ledgers = tmp_path / "ledgers"
    ledgers.mkdir()
    prefix = f"race{os.getpid()}_"
    rng = random.Random(2026)

    with d.Sandbox.start(api_key=rw.KEY, otp=rw.OTP) as bank:
        bank.update_settings(max_sends=rw.MAX_SENDS, max_attempts=rw.MAX_ATTEMPTS)
        for card, flow in rw.CARDS:
            bank.set_card(card, flow)

        started = time.monotonic()
        until = time.time() + STORM
        seeds = iter(range(1000, 100_000))

        def spawn() -> Any:
            seed = next(seeds)
            spec = {"url": bank.url, "db": db, "ledger": str(ledgers / f"w{seed}.log"),
                    "seed": seed, "prefix": prefix, "payments": PAYMENTS, "until": until,
                    "kill_one_in": KILL_ONE_IN}
            p = ctx.Process(target=rw.worker, args=(spec,), daemon=True)
            p.start()
            return p

        procs = [spawn() for _ in range(PROCESSES)]
        killed_from_outside = 0
        all_procs = list(procs)
        while time.time() < until:
            time.sleep(rng.uniform(0.15, 0.4))
            # A fault for the next request to some endpoint (one at a time).
            if not bank.faults() and rng.random() < 0.7:
                fault = rng.choice(["drop_response", "drop_request",
                                    "internal_error_after_apply", "duplicate", "slow"])
                # "slow": past the transport's 1 s deadline.
                bank.fault(fault,
                           endpoint=rng.choice(["start", "resend", "submit", "order_status"]),
                           delay=timedelta(milliseconds=1300) if fault == "slow" else None)
            # Kill a worker from outside, wherever it is, and start another.
            alive = [p for p in procs if p.is_alive()]
            if alive and rng.random() < 0.6:
                victim = rng.choice(alive)
                os.kill(victim.pid, signal.SIGKILL)
                victim.join()
                killed_from_outside += 1
            procs = [p for p in procs if p.is_alive()]
            while len(procs) < PROCESSES and time.time() < until - 0.5:
                p = spawn()
                procs.append(p)
                all_procs.append(p)
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                os.kill(p.pid, signal.SIGKILL)
                p.join()
        storm_done = time.monotonic() - started
        bank.clear_faults()

        # Settle: nobody else is sending; the clock jumps past the grace, the sweep recovers
        # what the dead left in flight, then each payment is driven to its end.
        driver, watch = rw.make_driver(bank.url, db, str(ledgers / "settle.log"), 0, 0)
        watch.offset = rw.GRACE + timedelta(seconds=1)
        rw.note(watch.ledger, lambda: driver.sweep(limit=64, check=True))
        never_reached = 0
        for i in range(PAYMENTS):
            never_reached += settle(driver, bank, prefix, i)
        rw.note(watch.ledger, lambda: driver.sweep(limit=64, check=True))

        events = read_ledgers(ledgers)
        failures = check(driver, bank, prefix, events)
        counters = bank.counters()

    tally = Counter(e[0] for e in events)
    sends = Counter(e[1] for e in events if e[0] == "sending")
    codes = Counter(e[1] for e in events if e[0] == "code")
    print(
        f"\nrace: {len(all_procs)} worker processes ({PROCESSES} at a time), {PAYMENTS} "
        f"payments, storm {storm_done:.1f} s; {killed_from_outside} SIGKILLed from outside, "
        f"{tally['kill']} killed themselves, {tally['recovered']} recovered by sweeps, "
        f"{never_reached} never reached the bank; sends {dict(sends)}; bank "
        f"{counters['requests']}; answers {dict(codes)}",
        file=sys.stderr,
    )
    assert not failures, "\n".join(failures)
    assert killed_from_outside + tally["kill"] > 0, "no worker was killed"
    assert tally["recovered"] > 0, "no sweep recovered anything"


def settle(driver: d.Driver, bank: d.Sandbox, prefix: str, i: int) -> int:
    """Drives payment i to its end, as the cardholder and the bank would; 1 if it never
    reached the bank."""
    key, order = rw.key(prefix, i), rw.order(prefix, i)
    ledger = driver.store.watch.ledger  # type: ignore[attr-defined]
    pending_checks = 0
    for _ in range(30):
        p = driver.load(key)
        if p is None:
            rw.note(ledger, lambda: driver.start(rw.start_request(prefix, i)))
            continue
        step = p.next_step(driver.clock()).code
        if step == "finished":
            return 0
        if step == "start":
            rw.note(ledger, lambda: driver.start(rw.start_request(prefix, i)))
        elif step == "enter_otp":
            rw.note(ledger, lambda: driver.submit(key, rw.OTP))
        elif step == "bank_page":
            rw.note(ledger, lambda: driver.bank_page(key))
        elif step == "await_bank_page":
            browser(bank, order, True)
            rw.note(ledger, lambda: driver.check_status(key))
        elif step == "wait":
            rw.note(ledger, lambda: driver.sweep(limit=64, check=True))
        else:
            view = p.view(driver.clock())
            if view.card is None and pending_checks > 0:
                # A start whose answer was lost opened no OTP page: the bank gives up on it.
                browser(bank, order, False)
            done = rw.note(ledger, lambda: driver.check_status(key))
            code = done.outcome.code if isinstance(done, d.Done) else ""
            if code == "pending":
                pending_checks += 1
            elif code == "rejected" and not bank_knows(bank, order):
                return 1
    return 0


def browser(bank: d.Sandbox, order: str, success: bool) -> None:
    try:
        bank.complete_bank_page(order, success)
    except d.SandboxError:
        pass  # not waiting for the bank page (any more)


def bank_knows(bank: d.Sandbox, order: str) -> bool:
    try:
        bank.order(order)
        return True
    except d.SandboxError:
        return False


def read_ledgers(folder: Path) -> List[List[str]]:
    events = []
    for f in sorted(folder.iterdir()):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                events.append(line.split(" "))
    return events


def check(driver: d.Driver, bank: d.Sandbox, prefix: str, events: List[List[str]]
          ) -> List[str]:
    failures = [" ".join(e[1:]) for e in events if e[0] == "violation"]
    sending = [e for e in events if e[0] == "sending"]
    tokens = Counter(e[3] for e in sending)
    twice = [t for t, n in tokens.items() if n > 1 or t == "?"]
    if twice:
        failures.append(f"tokens sent twice (or without a write-ahead): {twice}")
    written = {e[2] for e in events if e[0] == "wa"}
    for e in sending:
        if e[3] not in written:
            failures.append(f"{e[1]} {e[3]} sent without its write-ahead")
    answered = Counter(e[1] for e in events if e[0] == "sent" and e[3].isdigit())
    requests: Dict[str, int] = bank.counters()["requests"]
    for kind in ("start", "resend", "submit", "order_status"):
        sent = sum(1 for e in sending if e[1] == kind)
        got = requests.get(kind, 0)
        # Every request the bank got left right after its own write-ahead (a worker killed
        # between its "sending" line and the send leaves one line more than the bank got).
        if got > sent:
            failures.append(f"{kind}: the bank got {got} requests, only {sent} were sent")
        if got < answered[kind]:
            failures.append(f"{kind}: {answered[kind]} answered but the bank counted {got}")

    for i in range(PAYMENTS):
        key, order = rw.key(prefix, i), rw.order(prefix, i)
        try:
            info = bank.order(order)
        except d.SandboxError:
            info = None
        if info is not None:
            txns = info["transactions"]
            if len(txns) != 1 or not txns[0]["txn_id"].endswith(f"{order}-1"):
                failures.append(f"{order}: {len(txns)} transactions")
            for t in txns:
                if t["otp_sends"] > rw.MAX_SENDS or t["attempts"] > rw.MAX_ATTEMPTS:
                    failures.append(f"{order}: over the limits: {t}")
        p = driver.load(key)
        if p is None:
            failures.append(f"{key}: lost")
            continue
        view = p.view(driver.clock())
        if view.next == "wait":
            failures.append(f"{key}: left in flight")
        if view.is_final:
            if info is None or info["status"] != view.status:
                failures.append(f"{key}: stored {view.status}, the bank says "
                                f"{info and info['status']}")
        elif info is not None:
            failures.append(f"{key}: not final ({view.status}, next {view.next}), bank "
                            f"{info['status']}")
    for row in driver.store.inner.rows():  # type: ignore[attr-defined]
        if row.in_flight_since is not None:
            failures.append(f"{row.key}: in flight since {row.in_flight_since}")
    return failures


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-s"])

"""One sans-IO step through the Python binding, timed: the step of
tests/golden/bench_step.json, the Rust host baseline's (benches/wire.rs): the record as text
in (as a store hands it back), the command (a submit) -> its request -> the canned answer
handled -> the outcome, the record as text out (as a store takes it). No I/O.

    maturin develop --release -m bindings/python/Cargo.toml   # a release build: the numbers
    python bindings/python/bench/step.py [ITERATIONS]

prints ``{"lang":"python","us_per_step":X,"raw_us":Y}``: the median of 7 runs through the
package's classes (Payment, Submit, Answer, Outcome) and through the raw native calls (JSON
text in and out, as the classes make it), in microseconds per step.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict

import direct_otp as d
from direct_otp import _native

RUNS = 7


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    repo = Path(os.environ.get("DIRECT_OTP_REPO", Path(__file__).resolve().parents[3]))
    step: Dict[str, Any] = json.loads(
        (repo / "tests" / "golden" / "bench_step.json").read_text(encoding="utf-8")
    )
    if step["command"]["command"] != "submit":
        raise SystemExit(f"bench_step.json: a {step['command']['command']}, expected a submit")
    config = d.Config(base_url=step["config"]["base_url"], api_key=step["config"]["api_key"])
    reply = step["reply"]
    answer = d.Answer(reply["status"], reply.get("body", ""))
    command = d.Submit(step["command"]["otp"])
    now = d.from_ms(step["now_ms"])
    record: str = step["record"]
    sink = [0]

    def classes() -> None:
        # The record as the store hands it back (written by the core: no load check).
        payment = d.Payment.from_record(record, check=False)
        request = payment.command(config, command, now=now)
        outcome = payment.handle(request, answer, now=now)
        sink[0] += len(outcome.code) + len(payment.to_record())

    def raw() -> None:
        out = json.loads(_native.call(json.dumps(
            {"fn": "command", "config": step["config"], "record": record,
             "command": step["command"], "now_ms": step["now_ms"]})))
        done = json.loads(_native.call(json.dumps(
            {"fn": "handle", "record": out["record"], "token": out["request"]["token"],
             "reply": reply, "now_ms": step["now_ms"]})))
        sink[0] += len(done["outcome"]["code"]) + len(done["record"])

    probe = d.Payment.from_record(record)
    outcome = probe.handle(probe.command(config, command, now=now), answer, now=now)
    if outcome.code != "wrong_otp":
        raise SystemExit(f"the canned answer gave {outcome.code}, expected wrong_otp")

    def median(f: Callable[[], None]) -> float:
        for _ in range(min(iterations, 2_000)):
            f()
        runs = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            for _ in range(iterations):
                f()
            runs.append((time.perf_counter() - t0) / iterations * 1e6)
        return sorted(runs)[RUNS // 2]

    us = median(classes)
    raw_us = median(raw)
    if not sink[0]:
        raise SystemExit("nothing measured")
    print(json.dumps({"lang": "python", "us_per_step": round(us, 2), "raw_us": round(raw_us, 2)},
                     separators=(",", ":")))


if __name__ == "__main__":
    main()

"""One sans-IO step through the Python binding, timed: the record as text in (as a store
gives it), the command ``resend`` -> its request -> the canned resend answer handled -> the
outcome, the record as text out (as a store takes it). The answers are the sandbox's, caught
once over loopback; the loop itself does no I/O.

    maturin develop --release -m bindings/python/Cargo.toml   # a release build: the numbers
    python bench/step.py [--iterations N]

prints ``{"lang":"python","us_per_step":X}`` (the median of 5 runs of N steps).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import timedelta

import direct_otp as d

KEY = "sk_bench"


def canned() -> tuple[d.Config, str, str]:
    """A payment waiting for its OTP (its record text) and the bank's answer to a resend."""
    with d.Sandbox.start(api_key=KEY) as bank:
        config = d.Config(base_url=bank.url, api_key=KEY)
        start = d.StartRequest(
            order_id="bench_1", merchant_id="acme", routing_id="cust_1",
            source=d.CardToken("tok_visa"),
            policy=d.Policy(max_sends=1000, max_attempts=4, resend_cooldown=timedelta(0),
                            lifetime=timedelta(days=1)),
        )
        http = d.UrllibHttp()
        payment, request = d.Payment.begin(config, start)
        payment.handle(request, reply(http(to_http(request), 10)))
        record = payment.to_record()
        request = payment.command(config, d.Resend())
        answer = http(to_http(request), 10)
        assert isinstance(answer, d.HttpAnswer) and answer.status == 200
        return config, record, answer.body.decode("utf-8")


def to_http(request: d.Request) -> d.HttpRequest:
    return d.HttpRequest(request.method, request.url,
                         tuple((h.name, h.value) for h in request.headers),
                         (request.body or "").encode())


def reply(result: d.HttpResult) -> d.Reply:
    if isinstance(result, d.HttpAnswer):
        return d.Answer(result.status, result.body)
    return d.MaybeSent() if result.maybe_sent else d.NotSent()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    config, record, body = canned()
    resend = d.Resend()
    answer = d.Answer(200, body)
    now = d.utc_now()

    def step(text: str) -> str:
        payment = d.Payment._trusted(text)
        request = payment.command(config, resend, now=now)
        outcome = payment.handle(request, answer, now=now)
        assert outcome.code == "otp_sent"
        return payment.to_record()

    step(record)  # warm up (and check it works)
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(args.iterations):
            step(record)
        runs.append((time.perf_counter() - t0) / args.iterations * 1e6)
    print(json.dumps({"lang": "python", "us_per_step": round(statistics.median(runs), 2)},
                     separators=(",", ":")))


if __name__ == "__main__":
    main()

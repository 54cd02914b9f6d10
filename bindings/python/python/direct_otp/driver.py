"""The driver: the safety protocol of docs/concurrency.md (write-ahead, compare-and-swap,
retries, recovery sweep) for your store and HTTP client.

Every decision is the core's (``HostSteps``, a sans-IO step machine): this loop only does
the I/O it is asked for and hands back what happened.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from . import _native
from ._time import Clock, duration_ms, from_ms, to_ms, utc_now
from ._wire import dumps, native_error
from .errors import DriveError, error_from_wire
from .http import Http, HttpAnswer, HttpFailure, HttpRequest, default_http
from .inputs import (
    CheckStatus,
    Command,
    Config,
    Resend,
    ReturnUrl,
    Settlement,
    StartRequest,
    Submit,
    Webhook,
    command_wire,
)
from .payment import Payment
from .results import BankPage, Done, Settled, Swept
from .store import Row, Store

__all__ = ["Driver"]

_BEGIN = '{"result":"begin"}'
_STORED = '{"result":"stored"}'
_CONFLICT = '{"result":"conflict"}'
_PAUSED = '{"result":"paused"}'


def _wire_of(value: Any) -> Any:
    to_wire = getattr(value, "to_wire", None)
    return to_wire() if callable(to_wire) else value


class Driver:
    """Runs payments against Juspay (or a :class:`~direct_otp.Sandbox`) through ``store``
    and ``http``, safely with any number of threads and processes on the same store.

    ``timeout``: the transport's deadline for a whole exchange; ``grace``: how long a
    request may stay in flight before a sweep takes it as abandoned (default: the core's,
    twice the timeout). ``clock``: the time now (an aware datetime); ``sleep``: how a pause
    waits (seconds).
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        http: Optional[Http] = None,
        *,
        timeout: timedelta = timedelta(seconds=30),
        grace: Optional[timedelta] = None,
        clock: Clock = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.store = store
        self.http: Http = http if http is not None else default_http()
        self.timeout = timeout
        self.grace = grace
        self.clock = clock
        self.sleep = sleep

    def __repr__(self) -> str:
        return f"Driver({self.config!r}, store={self.store!r}, http={self.http!r})"

    # ----- The calls ---------------------------------------------------------------------

    def start(self, start: StartRequest, attempt: int = 1) -> Done:
        """Starts attempt ``attempt`` of an order (``POST /txns``)."""
        return Done.from_wire(
            self._drive({"call": "start", "start": _wire_of(start), "attempt": attempt})
        )

    def start_next(self, start: StartRequest) -> Done:
        """Starts the order's next attempt (after a failed one)."""
        return Done.from_wire(self._drive({"call": "start_next", "start": _wire_of(start)}))

    def run(self, key: str, command: Union[Command, Mapping[str, Any]]) -> Done:
        """Runs ``command`` on the stored payment ``key``."""
        return Done.from_wire(
            self._drive({"call": "run", "key": key, "command": command_wire(command)})
        )

    def submit(self, key: str, otp: str) -> Done:
        """The cardholder's OTP."""
        return self.run(key, Submit(otp))

    def resend(self, key: str) -> Done:
        """Sends the OTP again."""
        return self.run(key, Resend())

    def check_status(self, key: str) -> Done:
        """Asks the bank for the order's status and settles the payment with it."""
        return self.run(key, CheckStatus())

    def bank_page(self, key: str) -> BankPage:
        """Moves the payment to the bank page: where to send the browser."""
        return BankPage.from_wire(self._drive({"call": "bank_page", "key": key}))

    def settle(self, settlement: Settlement) -> Settled:
        """Settles a payment with a signed return URL or a webhook (verified by the core)."""
        return Settled.from_wire(
            self._drive({"call": "settle", "settlement": _wire_of(settlement)})
        )

    def settle_return(self, query: str, response_key: str) -> Settled:
        """The browser back from the bank page: the return URL's query (or POST form body)."""
        return self.settle(ReturnUrl(query=query, response_key=response_key))

    def settle_webhook(
        self, headers: Mapping[str, str], body: Union[str, bytes], *, username: str,
        password: str
    ) -> Settled:
        """A webhook as received (headers and body), with your webhook credentials."""
        return self.settle(
            Webhook.from_request(headers, body, username=username, password=password)
        )

    def sweep(self, limit: int = 64, check: bool = True) -> List[Swept]:
        """Recovers payments in flight for longer than the grace (their worker died or lost
        the answer), at most ``limit``; with ``check``, checks their status at once."""
        finished = self._drive({"call": "sweep", "limit": limit, "check": check})
        return [Swept.from_wire(s) for s in finished.get("swept", ())]

    def load(self, key: str) -> Optional[Payment]:
        """The stored payment ``key`` (None if absent)."""
        text = self.store.load(key)
        return None if text is None else Payment(text, clock=self.clock)

    # ----- The loop ----------------------------------------------------------------------

    def _now_ms(self) -> int:
        return to_ms(self.clock())

    def _drive(self, call: Dict[str, Any]) -> Dict[str, Any]:
        spec: Dict[str, Any] = {
            "config": _wire_of(self.config),
            "timeout_ms": duration_ms(self.timeout),
            **call,
        }
        if self.grace is not None:
            spec["grace_ms"] = duration_ms(self.grace)
        try:
            steps = _native.HostSteps(dumps(spec))
            answer = _BEGIN
            while True:
                step = json.loads(steps.resume(answer, self._now_ms()))
                if "finished" in step:
                    finished = step["finished"]
                    if isinstance(finished, dict) and "error" in finished and len(finished) == 1:
                        raise error_from_wire(finished["error"], kind=DriveError)
                    return finished if isinstance(finished, dict) else {}
                answer = self._do(step["io"])
        except _native.WireError as e:
            raise native_error(e) from None

    def _do(self, io: Dict[str, Any]) -> str:
        op = io.get("op")
        if op == "send":
            return self._send(io)
        if op == "pause":
            self.sleep(max(0, int(io.get("wait", 0))) / 1000)
            return _PAUSED
        try:
            if op == "load":
                return _loaded(self.store.load(io["key"]))
            if op == "latest_for_order":
                return _loaded(self.store.latest_for_order(io["order_id"]))
            if op == "insert":
                return _STORED if self.store.insert(_row(io)) else _CONFLICT
            if op == "replace":
                return _STORED if self.store.replace(int(io["expected"]), _row(io)) else _CONFLICT
            if op == "list_in_flight":
                keys = self.store.list_in_flight(from_ms(int(io["before"])), int(io["limit"]))
                return dumps({"result": "listed", "keys": list(keys)})
        except Exception as e:  # the database failed: the core retries, then reports it
            return dumps(
                {"result": "store_failed", "transient": True,
                 "message": f"{type(e).__name__}: {e}"}
            )
        # An I/O this version does not know: hand back nothing it could take as done.
        return dumps({"result": "unknown_op"})

    def _send(self, io: Dict[str, Any]) -> str:
        if self._now_ms() > int(io.get("send_by", 0)):
            return dumps({"result": "send_failed", "maybe_sent": False,
                          "message": "send_by passed"})
        r = io.get("request", {})
        request = HttpRequest(
            method=str(r.get("method", "")),
            url=str(r.get("url", "")),
            headers=tuple((str(n), str(v)) for n, v in r.get("headers", ())),
            body=_body(r.get("body")),
        )
        timeout = int(io.get("timeout_ms", duration_ms(self.timeout))) / 1000
        try:
            result = self.http(request, timeout)
        except Exception as e:  # a transport that raised: it may have sent
            result = HttpFailure(True, f"{type(e).__name__}")
        if isinstance(result, HttpAnswer):
            try:
                return dumps({"result": "answer", "status": result.status,
                              "body": result.body.decode("utf-8")})
            except UnicodeDecodeError:  # not UTF-8: its bytes, as the host form takes them
                return dumps({"result": "answer", "status": result.status,
                              "body": list(result.body)})
        if isinstance(result, HttpFailure):
            return dumps({"result": "send_failed", "maybe_sent": bool(result.maybe_sent),
                          "message": result.message})
        return dumps({"result": "send_failed", "maybe_sent": True,
                      "message": "the transport gave no result"})


def _body(body: Any) -> bytes:
    # A request body is text, or its bytes as an array when not UTF-8.
    if isinstance(body, list):
        return bytes(body)
    return str(body or "").encode("utf-8")


def _loaded(record: Optional[str]) -> str:
    return dumps({"result": "loaded", "record": record})


def _row(io: Mapping[str, Any]) -> Row:
    since = io.get("in_flight_since")
    return Row(
        key=str(io["key"]),
        order_id=str(io["order_id"]),
        attempt=int(io["attempt"]),
        revision=int(io["revision"]),
        in_flight_since=None if since is None else from_ms(int(since)),
        record=str(io["record"]),
    )

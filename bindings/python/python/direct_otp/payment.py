"""A payment: its stored record, and the sans-IO steps for a host without the driver."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Optional, Tuple, Union

from . import _wire
from ._time import Clock, from_ms, ms_of, utc_now
from .inputs import Command, Config, Reply, StartRequest, command_wire
from .results import NextStep, Outcome, Request, View
from .store import Row

__all__ = ["Payment"]


def _wire_of(value: Any) -> Any:
    to_wire = getattr(value, "to_wire", None)
    return to_wire() if callable(to_wire) else value


def _text(record: Union[str, bytes, Any]) -> Any:
    if isinstance(record, (bytes, bytearray)):
        # Not UTF-8: kept as is (surrogates), for the core to refuse as it refuses such text.
        return bytes(record).decode("utf-8", "surrogateescape")
    return record


class Payment:
    """One payment attempt as stored: the record text the core writes (store it verbatim)
    and reads back. Everything shown about it comes from the core (``view``).

    Without the :class:`~direct_otp.Driver` (your own store and HTTP client), a payment
    moves by three sans-IO steps, each changing the record in place::

        payment, request = Payment.begin(config, start)   # store, send the request, then
        outcome = payment.handle(request, reply)          # store again
        request = payment.command(config, Resend())       # ... and so on

    and docs/concurrency.md says how to store between them (write-ahead, compare-and-swap
    on ``payment.row().revision``; ``row()`` gives every column a store keeps).
    """

    __slots__ = ("_record", "_clock")

    def __init__(self, record: Union[str, bytes], *, clock: Clock = utc_now) -> None:
        """Loads a stored record; one that does not load is ``bad_record`` (inspect it,
        never overwrite it)."""
        self._record: str = _text(record)
        self._clock = clock
        self.view()  # the core reads it, or refuses it

    @classmethod
    def from_record(
        cls, record: Union[str, bytes], *, clock: Clock = utc_now, check: bool = True
    ) -> "Payment":
        """The payment of a stored record (see ``__init__``). ``check=False`` skips the load
        check (one call to the core) for a record your store hands back as the core wrote
        it: a record that does not load is then refused by the first call that reads it."""
        if check:
            return cls(record, clock=clock)
        return cls._trusted(_text(record), clock)

    @classmethod
    def _trusted(cls, record: str, clock: Clock = utc_now) -> "Payment":
        # A record the core has just written.
        p = cls.__new__(cls)
        p._record = record
        p._clock = clock
        return p

    def to_record(self) -> str:
        """The record text to store, verbatim."""
        return self._record

    # ----- What the core says about it ---------------------------------------------

    def view(self, now: Optional[datetime] = None) -> View:
        """What a page shows, at ``now`` (default: the clock)."""
        return View.from_wire(
            _wire.call("view", record=self._record, now_ms=ms_of(now, self._clock))
        )

    def view_json(self, now: Optional[datetime] = None) -> str:
        """The view's wire form as the core writes it (JSON text), e.g. for a page's script."""
        return _wire.call_text("view", record=self._record, now_ms=ms_of(now, self._clock))

    def next_step(self, now: Optional[datetime] = None) -> NextStep:
        """What to do next, at ``now``."""
        return NextStep.from_wire(
            _wire.call("next_step", record=self._record, now_ms=ms_of(now, self._clock))
        )

    @property
    def key(self) -> str:
        """The payment's key (``order_id/attempt``): its row in a store."""
        return self.view().key

    @property
    def order_id(self) -> str:
        return self.view().order_id

    @property
    def attempt(self) -> int:
        return self.view().attempt

    @property
    def status(self) -> str:
        """The API's status text (``PENDING_VBV``, ``CHARGED``, ...)."""
        return self.view().status

    @property
    def is_paid(self) -> bool:
        """Whether the money is taken (as the core judges, amount checks included)."""
        return self.view().paid

    @property
    def is_final(self) -> bool:
        return self.view().is_final

    def row(self) -> Row:
        """The row a store keeps for it: the record text and the columns beside it (key,
        order, attempt, revision, in flight since), as the core reads them."""
        c = _wire.call("columns", record=self._record)
        since = c.get("in_flight_since")
        return Row(
            key=str(c["key"]),
            order_id=str(c["order_id"]),
            attempt=int(c["attempt"]),
            revision=int(c["revision"]),
            in_flight_since=None if since is None else from_ms(int(since)),
            record=str(c["record"]),
        )

    @property
    def revision(self) -> int:
        """The record's revision: one more with every change (compare-and-swap on it)."""
        return self.row().revision

    # ----- Sans-IO steps -----------------------------------------------------------

    @classmethod
    def new(
        cls,
        start: Union[StartRequest, Mapping[str, Any]],
        *,
        attempt: int = 1,
        now: Optional[datetime] = None,
        clock: Clock = utc_now,
    ) -> "Payment":
        """A new payment, nothing sent: store it, then start it with the command
        ``StartAgain(source)`` (the card is never kept in the record)."""
        out = _wire.call("new", start=_wire_of(start), attempt=attempt, now_ms=ms_of(now, clock))
        return cls._trusted(out["record"], clock)

    @classmethod
    def begin(
        cls,
        config: Union[Config, Mapping[str, Any]],
        start: Union[StartRequest, Mapping[str, Any]],
        *,
        attempt: int = 1,
        now: Optional[datetime] = None,
        clock: Clock = utc_now,
    ) -> Tuple["Payment", Request]:
        """A new payment and its start request (``POST /txns``): store the payment first,
        then send the request and :meth:`handle` the reply."""
        out = _wire.call(
            "begin",
            config=_wire_of(config),
            start=_wire_of(start),
            attempt=attempt,
            now_ms=ms_of(now, clock),
        )
        return cls._trusted(out["record"], clock), Request.from_wire(out["request"])

    def command(
        self,
        config: Union[Config, Mapping[str, Any]],
        command: Union[Command, Mapping[str, Any]],
        *,
        now: Optional[datetime] = None,
    ) -> Request:
        """Issues ``command`` (``Submit``, ``Resend``, ``CheckStatus``, ``StartAgain``): the
        record now has the request in flight (store it before sending). A command the payment
        refuses raises :class:`~direct_otp.RefusedError` and changes nothing."""
        out = _wire.call(
            "command",
            config=_wire_of(config),
            record=self._record,
            command=command_wire(command),
            now_ms=ms_of(now, self._clock),
        )
        self._record = out["record"]
        return Request.from_wire(out["request"])

    def handle(
        self,
        request: Union[Request, str],
        reply: Union[Reply, Mapping[str, Any]],
        *,
        now: Optional[datetime] = None,
    ) -> Outcome:
        """Hands the reply to ``request`` (or its token) to the payment: what it did."""
        token = request.token if isinstance(request, Request) else request
        out = _wire.call(
            "handle",
            record=self._record,
            token=token,
            reply=_wire_of(reply),
            now_ms=ms_of(now, self._clock),
        )
        self._record = out["record"]
        return Outcome.from_wire(out["outcome"])

    # ----- Python protocol ---------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Payment) and other._record == self._record

    def __hash__(self) -> int:
        return hash(self._record)

    def __repr__(self) -> str:
        try:
            v = self.view()
            return f"Payment(key={v.key!r}, status={v.status!r}, next={v.next!r})"
        except Exception:  # a record that does not load: say so, show nothing of it
            return "Payment(<record that does not load>)"

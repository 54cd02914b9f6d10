"""What the core hands back, as frozen values built from the wire forms of
docs/protocol.md. Each keeps its raw wire form in ``wire`` (a dict), for logging or for a
field this version does not name yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple, Union

from .errors import DirectOtpError, error_from_wire

if TYPE_CHECKING:
    from .payment import Payment

__all__ = [
    "Header",
    "Request",
    "Outcome",
    "Card",
    "View",
    "NextStep",
    "Done",
    "BankPage",
    "Settled",
    "Swept",
]


def _dict(value: Any) -> Dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Header:
    """One request header; ``sensitive`` ones (``authorization``) are never shown."""

    name: str
    value: str = field(repr=False)
    sensitive: bool = False

    def __repr__(self) -> str:
        shown = "<redacted>" if self.sensitive else repr(self.value)
        return f"Header({self.name!r}, {shown})"


@dataclass(frozen=True)
class Request:
    """A request to send as is, then hand back (its ``token``) with the reply. It carries
    the API key and, for a start or a submit, card data or the OTP: never log it (its
    ``repr`` does not show them)."""

    token: str
    kind: str
    method: str
    url: str
    headers: Tuple[Header, ...]
    body: Optional[str]
    body_sensitive: bool
    wire: Dict[str, Any] = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> "Request":
        headers = tuple(
            Header(str(h.get("name", "")), str(h.get("value", "")), bool(h.get("sensitive")))
            for h in wire.get("headers", ())
            if isinstance(h, Mapping)
        )
        body = wire.get("body")
        return cls(
            token=str(wire.get("token", "")),
            kind=str(wire.get("kind", "")),
            method=str(wire.get("method", "")),
            url=str(wire.get("url", "")),
            headers=headers,
            body=body if isinstance(body, str) else None,
            body_sensitive=bool(wire.get("body_sensitive")),
            wire=_dict(wire),
        )

    def __repr__(self) -> str:
        body = "<redacted>" if self.body_sensitive and self.body is not None else repr(self.body)
        return (
            f"Request(kind={self.kind!r}, method={self.method!r}, url={self.url!r}, "
            f"headers={list(self.headers)!r}, body={body})"
        )


@dataclass(frozen=True)
class Outcome:
    """What an answer (or a settlement) did: ``code`` (``otp_sent``, ``wrong_otp``,
    ``approved``, ``check_status``, ...) and its ``fields`` (``sends_left``,
    ``attempts_left``, ``status``, ``why``, ...)."""

    code: str
    fields: Dict[str, Any] = field(compare=True, hash=False)
    wire: Dict[str, Any] = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_wire(cls, wire: Any) -> "Outcome":
        form = _dict(wire)
        return cls(
            code=str(form.get("code", "")),
            fields={k: v for k, v in form.items() if k != "code"},
            wire=form,
        )

    @property
    def status(self) -> Optional[str]:
        """The API's status text (``CHARGED``, ...) when the outcome has one."""
        s = self.fields.get("status")
        return s if isinstance(s, str) else None

    @property
    def sends_left(self) -> Optional[int]:
        v = self.fields.get("sends_left")
        return v if isinstance(v, int) else None

    @property
    def attempts_left(self) -> Optional[int]:
        v = self.fields.get("attempts_left")
        return v if isinstance(v, int) else None


@dataclass(frozen=True)
class Card:
    """The card as the bank shows it (masked BIN, last four digits, brand, issuer)."""

    isin: Optional[str]
    last_four: Optional[str]
    brand: Optional[str]
    issuer: Optional[str]


def _seconds(value: Any) -> Optional[timedelta]:
    return timedelta(seconds=value) if isinstance(value, int) else None


def _opt_str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def _opt_int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class View:
    """What a page shows for a payment, as the core computes it (``next`` is the next step's
    code: ``enter_otp``, ``bank_page``, ``finished``, ...)."""

    key: str
    order_id: str
    attempt: int
    next: str
    message: str
    status: str
    is_final: bool
    paid: bool
    confirmed: bool
    settled_by: Optional[str]
    settlement_issue: Optional[str]
    can_submit: bool
    can_resend: bool
    resend_in: Optional[timedelta]
    sends_left: Optional[int]
    attempts_left: Optional[int]
    expires_in: Optional[timedelta]
    bank_page_url: Optional[str]
    bank_page_available: bool
    card: Optional[Card]
    wire: Dict[str, Any] = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_wire(cls, wire: Any) -> "View":
        w = _dict(wire)
        card = w.get("card")
        return cls(
            key=str(w.get("key", "")),
            order_id=str(w.get("order_id", "")),
            attempt=int(w.get("attempt", 0)),
            next=str(w.get("next", "")),
            message=str(w.get("message", "")),
            status=str(w.get("status", "")),
            is_final=bool(w.get("is_final")),
            paid=bool(w.get("paid")),
            confirmed=bool(w.get("confirmed")),
            settled_by=_opt_str(w.get("settled_by")),
            settlement_issue=_opt_str(w.get("settlement_issue")),
            can_submit=bool(w.get("can_submit")),
            can_resend=bool(w.get("can_resend")),
            resend_in=_seconds(w.get("resend_in_seconds")),
            sends_left=_opt_int(w.get("sends_left")),
            attempts_left=_opt_int(w.get("attempts_left")),
            expires_in=_seconds(w.get("expires_in_seconds")),
            bank_page_url=_opt_str(w.get("bank_page_url")),
            bank_page_available=bool(w.get("bank_page_available")),
            card=(
                Card(
                    isin=_opt_str(card.get("isin")),
                    last_four=_opt_str(card.get("last_four")),
                    brand=_opt_str(card.get("brand")),
                    issuer=_opt_str(card.get("issuer")),
                )
                if isinstance(card, Mapping)
                else None
            ),
            wire=w,
        )


@dataclass(frozen=True)
class NextStep:
    """What to do next: ``code`` (``enter_otp``, ``wait``, ``bank_page``, ``finished``, ...)
    with its ``token`` (wait), ``url`` (bank page) or ``status`` (finished)."""

    code: str
    token: Optional[str]
    url: Optional[str]
    status: Optional[str]
    wire: Dict[str, Any] = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_wire(cls, wire: Any) -> "NextStep":
        w = _dict(wire)
        return cls(
            code=str(w.get("code", "")),
            token=_opt_str(w.get("token")),
            url=_opt_str(w.get("url")),
            status=_opt_str(w.get("status")),
            wire=w,
        )


def _transport_error(value: Any) -> Optional[DirectOtpError]:
    return error_from_wire(value) if isinstance(value, Mapping) else None


@dataclass(frozen=True)
class Done:
    """A driver step that went through: the ``payment`` as stored, its ``view``, the
    ``outcome``, and the transport's error when the request failed (not raised: the outcome
    says what it means)."""

    payment: "Payment"
    view: View
    outcome: Outcome
    transport_error: Optional[DirectOtpError]
    wire: Dict[str, Any] = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_wire(cls, wire: Any) -> "Done":
        from .payment import Payment

        w = _dict(wire)
        return cls(
            payment=Payment._trusted(str(w.get("record", ""))),
            view=View.from_wire(w.get("view")),
            outcome=Outcome.from_wire(w.get("outcome")),
            transport_error=_transport_error(w.get("transport_error")),
            wire=w,
        )


@dataclass(frozen=True)
class BankPage:
    """Where to send the browser (``url``), with the payment as stored."""

    url: str
    payment: "Payment"
    view: View
    wire: Dict[str, Any] = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_wire(cls, wire: Any) -> "BankPage":
        from .payment import Payment

        w = _dict(wire)
        return cls(
            url=str(w.get("url", "")),
            payment=Payment._trusted(str(w.get("record", ""))),
            view=View.from_wire(w.get("view")),
            wire=w,
        )


@dataclass(frozen=True)
class Settled:
    """What a return URL or webhook did: the settle ``outcome`` (``approved``,
    ``confirming``, ``duplicate``, ...), and the status check it led to (``check``: its
    outcome, or its error), with the payment as stored."""

    payment: "Payment"
    view: View
    outcome: Outcome
    check: Union[Outcome, DirectOtpError, None]
    transport_error: Optional[DirectOtpError]
    wire: Dict[str, Any] = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_wire(cls, wire: Any) -> "Settled":
        from .payment import Payment

        w = _dict(wire)
        check_form = w.get("check")
        check: Union[Outcome, DirectOtpError, None] = None
        if isinstance(check_form, Mapping):
            if "error" in check_form:
                check = error_from_wire(check_form.get("error"))
            elif "outcome" in check_form:
                check = Outcome.from_wire(check_form.get("outcome"))
        return cls(
            payment=Payment._trusted(str(w.get("record", ""))),
            view=View.from_wire(w.get("view")),
            outcome=Outcome.from_wire(w.get("outcome")),
            check=check,
            transport_error=_transport_error(w.get("transport_error")),
            wire=w,
        )


@dataclass(frozen=True)
class Swept:
    """One payment of a sweep: ``recovered`` (with its ``outcome`` and the status ``check``
    that followed, or its error), ``moved`` (someone else moved it on), or ``sweep_failed``
    (``error``)."""

    code: str
    key: str
    outcome: Optional[Outcome]
    check: Union[Done, DirectOtpError, None]
    error: Optional[DirectOtpError]
    wire: Dict[str, Any] = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_wire(cls, wire: Any) -> "Swept":
        w = _dict(wire)
        code = str(w.get("code", ""))
        check_form = w.get("check")
        check: Union[Done, DirectOtpError, None] = None
        if isinstance(check_form, Mapping):
            if "error" in check_form:
                check = error_from_wire(check_form.get("error"))
            else:
                check = Done.from_wire(check_form)
        error = None
        if code == "sweep_failed":
            # The failure's own code is its `reason` (docs/protocol.md, nested errors).
            error = error_from_wire(w)
        outcome = w.get("outcome")
        return cls(
            code=code,
            key=str(w.get("key", "")),
            outcome=Outcome.from_wire(outcome) if isinstance(outcome, Mapping) else None,
            check=check,
            error=error,
            wire=w,
        )

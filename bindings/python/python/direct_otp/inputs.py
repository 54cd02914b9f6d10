"""What you hand to the core: the configuration, a start request and its card source,
commands, replies and settlement hints. Each is a frozen value with ``to_wire()``, the wire
form of docs/protocol.md; none checks anything itself (the core does, and refuses with a
coded error). Secrets (the API key, card data, the CVV, the OTP, the response key, webhook
credentials) never appear in a ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Dict, Mapping, Optional, Union

from ._time import duration_ms
from ._wire import call_text

__all__ = [
    "Config",
    "CardToken",
    "CardNumber",
    "CardSource",
    "Policy",
    "ExpectedAmount",
    "StartRequest",
    "Submit",
    "Resend",
    "CheckStatus",
    "StartAgain",
    "Command",
    "Answer",
    "NotSent",
    "MaybeSent",
    "Reply",
    "ReturnUrl",
    "Webhook",
    "Settlement",
]

_HIDDEN = "'<redacted>'"


@dataclass(frozen=True, repr=False)
class Config:
    """Where and as whom to call Juspay: ``base_url`` (``https://api.juspay.in``, or a
    :class:`~direct_otp.Sandbox`'s ``url``), ``api_key`` (never shown), and optionally
    ``merchant_id``, ``version`` (``YYYY-MM-DD``) and ``auto_capture``."""

    base_url: str
    api_key: str
    merchant_id: Optional[str] = None
    version: Optional[str] = None
    auto_capture: Optional[bool] = None

    def __post_init__(self) -> None:
        # The core checks the configuration now (its code, never the key, if refused).
        call_text("check", config=self.to_wire())

    def to_wire(self) -> Dict[str, Any]:
        form: Dict[str, Any] = {"base_url": self.base_url, "api_key": self.api_key}
        if self.merchant_id is not None:
            form["merchant_id"] = self.merchant_id
        if self.version is not None:
            form["version"] = self.version
        if self.auto_capture is not None:
            form["auto_capture"] = self.auto_capture
        return form

    def __repr__(self) -> str:
        return (
            f"Config(base_url={self.base_url!r}, api_key={_HIDDEN}, "
            f"merchant_id={self.merchant_id!r}, version={self.version!r}, "
            f"auto_capture={self.auto_capture!r})"
        )


@dataclass(frozen=True, repr=False)
class CardToken:
    """A saved card: its ``card_token`` (and the ``cvv`` if your account requires it)."""

    card_token: str
    cvv: Optional[str] = None

    def to_wire(self) -> Dict[str, Any]:
        form: Dict[str, Any] = {"type": "token", "card_token": self.card_token}
        if self.cvv is not None:
            form["cvv"] = self.cvv
        return form

    def __repr__(self) -> str:
        return "CardToken(<redacted>)"


@dataclass(frozen=True, repr=False)
class CardNumber:
    """A card typed in: number, expiry, CVV and (optionally) the name on it."""

    number: str
    expiry_month: str
    expiry_year: str
    cvv: str
    name_on_card: Optional[str] = None

    def to_wire(self) -> Dict[str, Any]:
        form: Dict[str, Any] = {
            "type": "card",
            "number": self.number,
            "expiry_month": self.expiry_month,
            "expiry_year": self.expiry_year,
            "cvv": self.cvv,
        }
        if self.name_on_card is not None:
            form["name_on_card"] = self.name_on_card
        return form

    def __repr__(self) -> str:
        return "CardNumber(<redacted>)"


#: The card a payment is made with.
CardSource = Union[CardToken, CardNumber]


@dataclass(frozen=True)
class Policy:
    """The limits the client counts against when the bank's answers do not state them
    (docs/concurrency.md, rule 6): set them to your account's."""

    max_sends: int
    max_attempts: int
    resend_cooldown: timedelta
    lifetime: timedelta

    def to_wire(self) -> Dict[str, Any]:
        return {
            "max_sends": self.max_sends,
            "max_attempts": self.max_attempts,
            "resend_cooldown_ms": _ms(self.resend_cooldown),
            "lifetime_ms": _ms(self.lifetime),
        }


def _ms(d: Any) -> Any:
    # A timedelta in ms; anything else is handed on as it is, for the core to refuse.
    return duration_ms(d) if isinstance(d, timedelta) else d


@dataclass(frozen=True)
class ExpectedAmount:
    """The amount the order is for (``"1499.00"`` or a ``Decimal``) and its currency: the
    core checks what the bank charged against it before a payment counts as paid."""

    amount: Union[str, Decimal]
    currency: str

    def to_wire(self) -> Dict[str, Any]:
        amount = str(self.amount) if isinstance(self.amount, Decimal) else self.amount
        return {"amount": amount, "currency": self.currency}


@dataclass(frozen=True)
class StartRequest:
    """Everything a payment starts with (``POST /txns``). The ``source`` (card data) is
    used once and never stored."""

    order_id: str
    merchant_id: str
    routing_id: str
    source: CardSource
    payment_method: Optional[str] = None
    save_to_locker: Optional[bool] = None
    gateway_id: Optional[str] = None
    policy: Optional[Policy] = None
    expected_amount: Optional[ExpectedAmount] = None

    def to_wire(self) -> Dict[str, Any]:
        form: Dict[str, Any] = {
            "order_id": self.order_id,
            "merchant_id": self.merchant_id,
            "routing_id": self.routing_id,
            "source": _wire_of(self.source),
        }
        for name in ("payment_method", "save_to_locker", "gateway_id"):
            value = getattr(self, name)
            if value is not None:
                form[name] = value
        if self.policy is not None:
            form["policy"] = _wire_of(self.policy)
        if self.expected_amount is not None:
            form["expected_amount"] = _wire_of(self.expected_amount)
        return form


def _wire_of(value: Any) -> Any:
    to_wire = getattr(value, "to_wire", None)
    return to_wire() if callable(to_wire) else value


# ----- Commands ------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Submit:
    """The cardholder's OTP (never shown)."""

    otp: str

    def to_wire(self) -> Dict[str, Any]:
        return {"command": "submit", "otp": self.otp}

    def __repr__(self) -> str:
        return "Submit(otp=<redacted>)"


@dataclass(frozen=True)
class Resend:
    """Send the OTP again."""

    def to_wire(self) -> Dict[str, Any]:
        return {"command": "resend"}


@dataclass(frozen=True)
class CheckStatus:
    """Ask the order's status (``GET /orders/{order_id}``): what reconciles an answer lost."""

    def to_wire(self) -> Dict[str, Any]:
        return {"command": "check_status"}


@dataclass(frozen=True)
class StartAgain:
    """A start that surely did not leave (or that the bank refused), made again with only the
    card: the record kept the rest of its start request."""

    source: CardSource

    def to_wire(self) -> Dict[str, Any]:
        return {"command": "start", "source": _wire_of(self.source)}


#: A command on a started payment.
Command = Union[Submit, Resend, CheckStatus, StartAgain]


def command_wire(command: Any) -> Any:
    """A command's wire form (a dict given as is: the raw form)."""
    return _wire_of(command)


# ----- Replies (sans-IO): what became of a request ------------------------------------


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: its status and body (bytes or text)."""

    status: int
    body: Union[bytes, str] = b""

    def to_wire(self) -> Dict[str, Any]:
        body = self.body
        if isinstance(body, str):
            if not body:
                return {"kind": "answer", "status": self.status}
            return {"kind": "answer", "status": self.status, "body": body}
        if isinstance(body, (bytes, bytearray, memoryview)):
            raw = bytes(body)
            if not raw:
                return {"kind": "answer", "status": self.status}
            try:
                return {"kind": "answer", "status": self.status, "body": raw.decode("utf-8")}
            except UnicodeDecodeError:
                import base64

                return {
                    "kind": "answer",
                    "status": self.status,
                    "body_base64": base64.b64encode(raw).decode("ascii"),
                }
        return {"kind": "answer", "status": self.status, "body": body}


@dataclass(frozen=True)
class NotSent:
    """The request surely did not leave (connection refused, DNS failure)."""

    def to_wire(self) -> Dict[str, Any]:
        return {"kind": "not_sent"}


@dataclass(frozen=True)
class MaybeSent:
    """The request may have reached the bank (timeout, reset): when unsure, this."""

    def to_wire(self) -> Dict[str, Any]:
        return {"kind": "maybe_sent"}


#: What became of a request.
Reply = Union[Answer, NotSent, MaybeSent]


# ----- Settlement hints ----------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ReturnUrl:
    """The browser back from the bank page: the return URL's query string (or POST form
    body) as received, and your response key (never shown)."""

    query: str
    response_key: str

    def to_wire(self) -> Dict[str, Any]:
        return {"kind": "return_url", "query": self.query, "response_key": self.response_key}

    def __repr__(self) -> str:
        return f"ReturnUrl(query={self.query!r}, response_key=<redacted>)"


@dataclass(frozen=True, repr=False)
class Webhook:
    """A webhook as received (its ``Authorization`` header and body) and your webhook
    credentials (never shown)."""

    body: str
    username: str
    password: str
    authorization: Optional[str] = None

    @classmethod
    def from_request(
        cls,
        headers: Mapping[str, str],
        body: Union[str, bytes],
        *,
        username: str,
        password: str,
    ) -> "Webhook":
        """From the request's headers (any case) and body."""
        authorization = None
        for name, value in headers.items():
            if isinstance(name, str) and name.lower() == "authorization":
                authorization = value
        text = body.decode("utf-8", "surrogateescape") if isinstance(body, bytes) else body
        return cls(body=text, username=username, password=password, authorization=authorization)

    def to_wire(self) -> Dict[str, Any]:
        form: Dict[str, Any] = {
            "kind": "webhook",
            "body": self.body,
            "username": self.username,
            "password": self.password,
        }
        if self.authorization is not None:
            form["authorization"] = self.authorization
        return form

    def __repr__(self) -> str:
        return "Webhook(<redacted>)"


#: A settlement hint: a signed return URL or a webhook.
Settlement = Union[ReturnUrl, Webhook]

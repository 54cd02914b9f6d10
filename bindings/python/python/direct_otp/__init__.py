"""direct_otp: Juspay Direct OTP card payments, over the Rust sans-IO core ``direct-otp``.

* :class:`Driver` runs payments safely (docs/concurrency.md) through a :class:`Store`
  (:class:`SqliteStore` ready) and an HTTP transport (:class:`UrllibHttp`,
  :class:`HttpxHttp`).
* :class:`Payment` is the stored record, with sans-IO steps for a host without the driver.
* :class:`Sandbox` is a local simulated Juspay server for tests (no network, no key).
* :func:`codes` lists every code an error or result carries (docs/codes.md).

Every decision is the core's; this package moves values across and adds Python idiom.
"""

from __future__ import annotations

from ._native import __version__
from ._time import Clock, from_ms, to_ms, utc_now
from ._wire import CodeInfo, TypeMismatch, codes
from .driver import Driver
from .errors import DirectOtpError, DriveError, RefusedError, WireError
from .http import (
    DEFAULT_BODY_LIMIT,
    Http,
    HttpAnswer,
    HttpFailure,
    HttpRequest,
    HttpResult,
    HttpxHttp,
    UrllibHttp,
    default_http,
)
from .inputs import (
    Answer,
    CardNumber,
    CardSource,
    CardToken,
    CheckStatus,
    Command,
    Config,
    ExpectedAmount,
    MaybeSent,
    NotSent,
    Policy,
    Reply,
    Resend,
    ReturnUrl,
    Settlement,
    StartAgain,
    StartRequest,
    Submit,
    Webhook,
)
from .payment import Payment
from .results import (
    BankPage,
    Card,
    Done,
    Header,
    NextStep,
    Outcome,
    Request,
    Settled,
    Swept,
    View,
)
from .sandbox import Sandbox, SandboxError
from .store import Row, SqliteStore, Store

__all__ = [
    "__version__",
    "Answer",
    "BankPage",
    "Card",
    "CardNumber",
    "CardSource",
    "CardToken",
    "CheckStatus",
    "Clock",
    "CodeInfo",
    "Command",
    "Config",
    "DEFAULT_BODY_LIMIT",
    "DirectOtpError",
    "Done",
    "DriveError",
    "Driver",
    "ExpectedAmount",
    "Header",
    "Http",
    "HttpAnswer",
    "HttpFailure",
    "HttpRequest",
    "HttpResult",
    "HttpxHttp",
    "MaybeSent",
    "NextStep",
    "NotSent",
    "Outcome",
    "Payment",
    "Policy",
    "RefusedError",
    "Reply",
    "Request",
    "Resend",
    "ReturnUrl",
    "Row",
    "Sandbox",
    "SandboxError",
    "Settled",
    "Settlement",
    "SqliteStore",
    "StartAgain",
    "StartRequest",
    "Store",
    "Submit",
    "Swept",
    "TypeMismatch",
    "UrllibHttp",
    "View",
    "Webhook",
    "WireError",
    "codes",
    "default_http",
    "from_ms",
    "to_ms",
    "utc_now",
]

"""Errors: one base, :class:`DirectOtpError`, carrying the registry's ``code`` and fields.

Every error the package raises for a payment is a :class:`DirectOtpError` whose ``code`` is
in :func:`direct_otp.codes` (docs/codes.md) and whose ``fields`` are the rest of its wire
form (docs/protocol.md). Its message never holds a secret: the core writes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, Mapping, Optional

from ._time import from_ms

__all__ = [
    "DirectOtpError",
    "WireError",
    "RefusedError",
    "DriveError",
]


class DirectOtpError(Exception):
    """A coded error of the core: ``code`` (stable, snake_case), ``fields`` (the other
    fields of its wire form) and ``wire`` (the whole wire form, as the core gave it)."""

    code: str
    fields: Mapping[str, Any]
    wire: Mapping[str, Any]

    def __init__(self, wire: Mapping[str, Any], message: Optional[str] = None) -> None:
        code = wire.get("code")
        self.code = code if isinstance(code, str) else "unknown"
        self.wire = dict(wire)
        self.fields = {k: v for k, v in wire.items() if k != "code"}
        self.message = message if message is not None else _describe(self.code, self.fields)
        super().__init__(self.message)

    @property
    def until(self) -> Optional[datetime]:
        """``until_ms`` (a cooldown's end) as an aware UTC datetime, if the error has it."""
        ms = self.fields.get("until_ms")
        return from_ms(ms) if isinstance(ms, int) else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, fields={self.fields!r})"

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> Any:
        # Picklable (multiprocessing hands errors between processes).
        return (type(self), (self.wire, self.message))


class WireError(DirectOtpError):
    """Input the core refused at its entry point: JSON of the wrong shape (``wire_shape``),
    a record that does not load (``bad_record``), an OTP, an id, a base URL, a settlement
    that does not verify, ..."""


class RefusedError(DirectOtpError):
    """A command the payment refused without a request (``cooldown``, ``in_flight``,
    ``check_status``, ``send_limit_reached``, ...): show the payment's view."""


class DriveError(DirectOtpError):
    """A :class:`~direct_otp.Driver` call that finished with an error (``busy``,
    ``not_found``, ``store``, a refusal's code, ...)."""


def _describe(code: str, fields: Mapping[str, Any]) -> str:
    if not fields:
        return code
    parts = ", ".join(f"{k}={v!r}" for k, v in fields.items())
    return f"{code} ({parts})"


def error_from_wire(
    wire: Any, message: Optional[str] = None, kind: type[DirectOtpError] = DirectOtpError
) -> DirectOtpError:
    """The error of a wire form (an object with ``code``)."""
    form: Dict[str, Any] = dict(wire) if isinstance(wire, Mapping) else {"code": "unknown"}
    return kind(form, message)

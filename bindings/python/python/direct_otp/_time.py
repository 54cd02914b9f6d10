"""Times across the wire: Unix milliseconds <-> aware UTC datetimes, ms <-> timedelta."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

__all__ = ["Clock", "utc_now", "to_ms", "from_ms", "ms_of", "duration_ms"]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MS = timedelta(milliseconds=1)

#: A clock: a callable giving the time now (an aware datetime).
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock: now, in UTC."""
    return datetime.now(timezone.utc)


def _mismatch(what: str, value: object) -> Exception:
    from ._wire import TypeMismatch  # (a cycle at import time otherwise)

    return TypeMismatch({"code": "wire_shape", "line": 0, "column": 0},
                        f"wire_shape: {what} must be a {'datetime' if what == 'a time' else 'timedelta'}, not {type(value).__name__}")


def to_ms(when: datetime) -> int:
    """Unix milliseconds of ``when`` (a naive datetime is local time, as Python's own
    ``datetime.timestamp`` takes it)."""
    if not isinstance(when, datetime):
        raise _mismatch("a time", when)
    if when.tzinfo is None:
        when = when.astimezone()
    return (when - EPOCH) // MS


def from_ms(ms: int) -> datetime:
    """The aware UTC datetime of Unix milliseconds."""
    return EPOCH + timedelta(milliseconds=ms)


def ms_of(now: Optional[datetime], clock: Clock = utc_now) -> int:
    """``now`` (or the clock's time) as Unix milliseconds."""
    return to_ms(now if now is not None else clock())


def duration_ms(d: timedelta) -> int:
    """A duration in whole milliseconds."""
    if not isinstance(d, timedelta):
        raise _mismatch("a duration", d)
    return d // MS

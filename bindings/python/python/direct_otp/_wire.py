"""The one door to the native module: JSON text in, JSON text out, errors mapped.

Nothing here decides anything about a payment: values become the wire forms of
docs/protocol.md, the core answers, and a refusal becomes a :class:`DirectOtpError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, List, Mapping, NoReturn, Tuple

from . import _native
from .errors import DirectOtpError, RefusedError, WireError

__all__ = ["dumps", "call", "codes", "CodeInfo", "native_error", "TypeMismatch"]


class TypeMismatch(WireError, TypeError):
    """A Python value of a type no wire form takes (an object, a float NaN, bytes where
    text goes): refused as ``wire_shape`` before it reaches the core. Also a ``TypeError``."""


def _type_mismatch(what: str) -> NoReturn:
    raise TypeMismatch({"code": "wire_shape", "line": 0, "column": 0}, f"wire_shape: {what}")


def _default(value: Any) -> Any:
    _type_mismatch(f"{type(value).__name__} has no JSON form")


def dumps(value: Any) -> str:
    """``value`` as compact JSON text, for the core."""
    try:
        return json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default
        )
    except ValueError as e:  # NaN or infinity, or a circular structure
        raise TypeMismatch(
            {"code": "wire_shape", "line": 0, "column": 0}, f"wire_shape: {e}"
        ) from None
    except RecursionError:
        _type_mismatch("nested too deep")


def native_error(e: Exception) -> DirectOtpError:
    """The :class:`DirectOtpError` of the native module's ``WireError(message, wire)``."""
    message, wire_text = e.args if len(e.args) == 2 else (str(e), '{"code":"unknown"}')
    try:
        wire = json.loads(wire_text)
    except (TypeError, ValueError):
        wire = {"code": "unknown"}
    if not isinstance(wire, dict):
        wire = {"code": "unknown"}
    kind = RefusedError if "Refusal" in _types_of(str(wire.get("code"))) else WireError
    if kind is WireError and wire.get("code") == "wire_shape" and wire.get("line") == 0:
        kind = TypeMismatch
    return kind(wire, str(message))


def call_text(fn: str, **fields: Any) -> str:
    """One stateless call of the host API (``{"fn": fn, ...fields}``); its JSON text."""
    text = dumps({"fn": fn, **fields})
    try:
        return _native.call(text)
    except _native.WireError as e:
        raise native_error(e) from None


def call(fn: str, **fields: Any) -> Any:
    """One stateless call of the host API; its JSON answer, parsed."""
    return json.loads(call_text(fn, **fields))


@dataclass(frozen=True)
class CodeInfo:
    """One code of the registry (docs/codes.md)."""

    code: str
    types: Tuple[str, ...]
    meaning: str
    action: str
    http: Any


@lru_cache(maxsize=1)
def _registry() -> Tuple[CodeInfo, ...]:
    rows = json.loads(_native.call('{"fn":"codes"}'))
    return tuple(
        CodeInfo(
            code=r["code"],
            types=tuple(r.get("types", ())),
            meaning=r.get("meaning", ""),
            action=r.get("action", ""),
            http=r.get("http"),
        )
        for r in rows
    )


@lru_cache(maxsize=1)
def _by_code() -> Mapping[str, CodeInfo]:
    return {c.code: c for c in _registry()}


def _types_of(code: str) -> Tuple[str, ...]:
    info = _by_code().get(code)
    return info.types if info is not None else ()


def codes() -> List[CodeInfo]:
    """The code registry, as the core has it (every ``code`` an error or result carries)."""
    return list(_registry())


def code_info(code: str) -> Dict[str, Any]:
    """One code's registry entry as a dict (empty if unknown)."""
    info = _by_code().get(code)
    if info is None:
        return {}
    return {"code": info.code, "types": list(info.types), "meaning": info.meaning,
            "action": info.action, "http": info.http}

"""Type stubs of the native module (Rust, over PyO3): the core's host API as JSON text."""

from types import TracebackType
from typing import Optional, Type, Union

__version__: str

class WireError(Exception):
    """A refusal of the core. ``args`` is ``(message, wire_json)``: ``wire_json`` is the
    error's wire form (``{"code": ..., ...}``) as text."""

def call(json: Union[str, bytes]) -> str:
    """One stateless call: ``{"fn": "codes" | "version" | "view" | "begin" | "command" |
    "handle" | "next_step", ...}`` in, its JSON text out."""

class HostSteps:
    """One driver call as sans-IO steps (``{"config", "timeout_ms", "call", ...}``)."""

    def __init__(self, json: Union[str, bytes]) -> None: ...
    def resume(self, input: Union[str, bytes], now_ms: int) -> str:
        """The last I/O's result in (first ``{"result":"begin"}``); ``{"io": ...}`` or
        ``{"finished": ...}`` out."""

class SandboxServer:
    """The Rust sandbox on 127.0.0.1, control API on; stops on ``stop()`` or ``with`` exit."""

    def __init__(self, json: Union[str, bytes]) -> None: ...
    @property
    def url(self) -> str: ...
    @property
    def running(self) -> bool: ...
    def stop(self) -> None: ...
    def __enter__(self) -> "SandboxServer": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

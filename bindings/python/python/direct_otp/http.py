"""HTTP transports: the :class:`Http` protocol the :class:`~direct_otp.Driver` sends through,
:class:`UrllibHttp` (standard library only) and :class:`HttpxHttp` (when ``httpx`` is
installed).

A transport sends one request and reports one of three results (docs/conformance.md):
an :class:`HttpAnswer` (any status, the body read whole within the limit; a redirect is an
answer, never followed), or an :class:`HttpFailure` saying whether the request may have
reached the bank: ``maybe_sent=False`` only when it surely did not (no connection was
made), ``True`` for anything after the request began to go out (reset, closed, a deadline
passed, a body over the limit). When in doubt, ``maybe_sent``.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Tuple, Union
from urllib.parse import urlsplit

__all__ = [
    "HttpRequest",
    "HttpAnswer",
    "HttpFailure",
    "HttpResult",
    "Http",
    "UrllibHttp",
    "HttpxHttp",
    "default_http",
    "DEFAULT_BODY_LIMIT",
]

#: The largest answer body read by default (64 KiB; Juspay's answers are a few kB).
DEFAULT_BODY_LIMIT = 65_536


@dataclass(frozen=True)
class HttpRequest:
    """A request to send as is. It holds the API key (``authorization``) and maybe card
    data or the OTP (the body): its ``repr`` shows neither; never log it."""

    method: str
    url: str
    headers: Tuple[Tuple[str, str], ...] = field(repr=False)
    body: bytes = field(repr=False, default=b"")

    def __repr__(self) -> str:
        names = [n for n, _ in self.headers]
        return f"HttpRequest({self.method} {self.url}, headers={names}, body=<{len(self.body)} bytes>)"


@dataclass(frozen=True)
class HttpAnswer:
    """An HTTP answer: status and body (read whole)."""

    status: int
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class HttpFailure:
    """No whole answer. ``maybe_sent``: whether the request may have reached the server."""

    maybe_sent: bool
    message: str


HttpResult = Union[HttpAnswer, HttpFailure]


class Http(Protocol):
    """A transport: sends ``request`` within ``timeout`` seconds for the whole exchange
    (connect, send, answer, body), never follows a redirect, and reports what happened.
    It returns an :class:`HttpFailure` rather than raising (an exception it raises anyway is
    taken as ``maybe_sent``)."""

    def __call__(self, request: HttpRequest, timeout: float) -> HttpResult: ...


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + max(0.0, seconds)

    def left(self) -> float:
        """Seconds left; raises ``socket.timeout`` once past."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise socket.timeout("the deadline passed")
        return left


class _BodyTooLarge(Exception):
    pass


class UrllibHttp:
    """A transport on the standard library alone (``urllib.parse`` and ``http.client``,
    the engine under ``urllib.request``, used directly so that one deadline covers the
    whole exchange and no redirect is ever followed). One connection per request; no
    proxy (environment proxies are not read); TLS with the default, verifying context.

    ``body_limit``: the largest body read (a larger one is refused without reading it all:
    ``maybe_sent``). ``ssl_context``: for ``https`` (default: ``ssl.create_default_context()``).
    """

    def __init__(
        self, *, body_limit: int = DEFAULT_BODY_LIMIT, ssl_context: Optional[ssl.SSLContext] = None
    ) -> None:
        self.body_limit = body_limit
        self._ssl = ssl_context

    def __repr__(self) -> str:
        return f"UrllibHttp(body_limit={self.body_limit})"

    def __call__(self, request: HttpRequest, timeout: float) -> HttpResult:
        deadline = _Deadline(timeout)
        try:
            parts = urlsplit(request.url)
            host = parts.hostname
            port = parts.port
        except ValueError as e:
            return HttpFailure(False, f"bad URL: {e}")
        if parts.scheme not in ("http", "https") or not host:
            return HttpFailure(False, f"unsupported URL scheme {parts.scheme!r}")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        conn: http.client.HTTPConnection
        try:
            if parts.scheme == "https":
                context = self._ssl if self._ssl is not None else ssl.create_default_context()
                conn = http.client.HTTPSConnection(
                    host, port, timeout=deadline.left(), context=context
                )
            else:
                conn = http.client.HTTPConnection(host, port, timeout=deadline.left())
        except (socket.timeout, ValueError, http.client.HTTPException) as e:
            return HttpFailure(False, f"not connected: {type(e).__name__}")
        try:
            # Connecting (and the TLS handshake): a failure here means nothing was sent.
            try:
                conn.connect()
            except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                return HttpFailure(False, f"connect: {type(e).__name__}: {e}")
            # From here on the request may reach the server.
            try:
                sock = conn.sock
                if sock is None:
                    return HttpFailure(True, "no socket after connect")
                sock.settimeout(deadline.left())
                conn.putrequest(request.method, target, skip_host=False, skip_accept_encoding=True)
                for name, value in request.headers:
                    conn.putheader(name, value)
                if request.body or request.method not in ("GET", "HEAD"):
                    conn.putheader("Content-Length", str(len(request.body)))
                conn.endheaders(request.body if request.body else None)
                sock.settimeout(deadline.left())
                response = conn.getresponse()
                length = response.getheader("content-length")
                if length is not None and length.strip().isdigit():
                    if int(length) > self.body_limit:
                        raise _BodyTooLarge()
                chunks = []
                size = 0
                while True:
                    sock.settimeout(deadline.left())
                    chunk = response.read1(16_384) if hasattr(response, "read1") else response.read(16_384)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > self.body_limit:
                        raise _BodyTooLarge()
                    chunks.append(chunk)
                if length is not None and length.strip().isdigit() and size != int(length):
                    return HttpFailure(True, "body cut short")
                return HttpAnswer(response.status, b"".join(chunks))
            except _BodyTooLarge:
                return HttpFailure(True, f"body over the limit ({self.body_limit} bytes)")
            except socket.timeout:
                return HttpFailure(True, "timeout: the deadline passed")
            except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as e:
                return HttpFailure(True, f"{type(e).__name__}: {e}")
        finally:
            conn.close()


class HttpxHttp:
    """A transport over an ``httpx.Client`` (``pip install httpx``): redirects never
    followed, one deadline for the whole exchange (checked between body chunks; each wait
    at most the time left), the body read within ``body_limit``. Pass your own ``client``
    (its ``follow_redirects`` is overridden per request) or let it make one."""

    def __init__(self, client: Any = None, *, body_limit: int = DEFAULT_BODY_LIMIT) -> None:
        import httpx

        self._httpx = httpx
        self._client = client if client is not None else httpx.Client()
        self.body_limit = body_limit

    def __repr__(self) -> str:
        return f"HttpxHttp(body_limit={self.body_limit})"

    def close(self) -> None:
        self._client.close()

    def __call__(self, request: HttpRequest, timeout: float) -> HttpResult:
        httpx = self._httpx
        deadline = _Deadline(timeout)
        try:
            left = deadline.left()
        except socket.timeout:
            return HttpFailure(False, "the deadline passed before sending")
        try:
            built = self._client.build_request(
                request.method,
                request.url,
                headers=list(request.headers),
                content=request.body if request.body else None,
                timeout=httpx.Timeout(left),
            )
            response = self._client.send(built, stream=True, follow_redirects=False)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol,
                httpx.InvalidURL) as e:
            return HttpFailure(False, f"connect: {type(e).__name__}")
        except httpx.TimeoutException as e:
            return HttpFailure(True, f"timeout: {type(e).__name__}")
        except (httpx.HTTPError, OSError, ValueError) as e:
            return HttpFailure(True, f"{type(e).__name__}: {e}")
        try:
            length = response.headers.get("content-length")
            if length is not None and length.strip().isdigit() and int(length) > self.body_limit:
                return HttpFailure(True, f"body over the limit ({self.body_limit} bytes)")
            chunks = []
            size = 0
            for chunk in response.iter_raw(16_384):
                size += len(chunk)
                if size > self.body_limit:
                    return HttpFailure(True, f"body over the limit ({self.body_limit} bytes)")
                chunks.append(chunk)
                deadline.left()
            return HttpAnswer(response.status_code, b"".join(chunks))
        except socket.timeout:
            return HttpFailure(True, "timeout: the deadline passed")
        except httpx.TimeoutException as e:
            return HttpFailure(True, f"timeout: {type(e).__name__}")
        except (httpx.HTTPError, OSError, ValueError) as e:
            return HttpFailure(True, f"{type(e).__name__}: {e}")
        finally:
            response.close()


def default_http() -> Http:
    """:class:`HttpxHttp` when httpx is installed, else :class:`UrllibHttp`."""
    try:
        import httpx  # noqa: F401
    except ImportError:
        return UrllibHttp()
    return HttpxHttp()

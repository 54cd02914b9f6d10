"""The local sandbox: the core's simulated Juspay Direct OTP server on 127.0.0.1 (shipped in
this package: no Rust toolchain, no network, no API key), and its control API (read the
OTP, script faults, set card flows and settings, finish the bank page, take webhooks, read
the counters, reset). docs/sandbox.md describes both.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from typing import Any, Dict, List, Optional

from . import _native
from ._time import duration_ms
from ._wire import dumps, native_error

__all__ = ["Sandbox", "SandboxError", "CARD_FLOWS", "FAULTS", "ENDPOINTS"]

#: The card flows a card can be given (``set_card``).
CARD_FLOWS = ("direct_otp", "three_ds_failover", "decline_after_otp", "slow_authorization",
              "no_sms")
#: The faults the sandbox can inject (``fault``).
FAULTS = ("internal_error", "internal_error_after_apply", "duplicate", "slow", "drop_response",
          "drop_request", "reset", "truncate_body", "stall_body", "oversized", "redirect")
#: The endpoints a fault can be limited to.
ENDPOINTS = ("start", "resend", "submit", "order_status", "bank_page", "card_bin")


class SandboxError(Exception):
    """A refusal of the sandbox's control API: ``code`` (its own table in docs/sandbox.md:
    ``no_otp``, ``invalid_value``, ``not_found``, ...; ``unreachable`` with ``status`` 0 when
    the sandbox does not answer), ``status`` (HTTP) and ``message``.
    Not a payment error: these codes are the sandbox's, not the core's registry."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.code = code
        self.status = status
        self.message = message


class Sandbox:
    """A running sandbox. ``url`` is its base URL (``http://127.0.0.1:PORT``), to use as
    :class:`~direct_otp.Config`'s ``base_url`` with ``api_key``. A context manager: it stops
    on leaving the ``with`` block (or on :meth:`stop`)."""

    def __init__(self, server: Any, api_key: str) -> None:
        self._server = server
        self.url: str = server.url
        self.api_key = api_key
        self._auth = "Basic " + base64.b64encode(f"{api_key}:".encode()).decode("ascii")
        # Loopback only: never through a proxy from the environment.
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _NoRedirect()
        )

    @classmethod
    def start(
        cls,
        api_key: str = "sk_sandbox",
        otp: Optional[str] = None,
        webhook_url: Optional[str] = None,
        *,
        port: int = 0,
        response_key: Optional[str] = None,
        return_url: Optional[str] = None,
        webhook_username: Optional[str] = None,
        webhook_password: Optional[str] = None,
        max_sends: Optional[int] = None,
        max_attempts: Optional[int] = None,
    ) -> "Sandbox":
        """Starts a sandbox on 127.0.0.1 (``port`` 0: any free one) that accepts
        ``api_key``; every OTP is ``otp`` if given (else a seeded sequence); webhooks are
        delivered to ``webhook_url`` (``http://`` on loopback) if given, with
        ``webhook_username``/``webhook_password``; the bank page returns to ``return_url``
        signed with ``response_key``; ``max_sends``/``max_attempts`` per transaction. The
        same settings can change later (:meth:`update_settings`)."""
        spec: Dict[str, Any] = {"api_key": api_key}
        optional = {
            "otp": otp, "webhook_url": webhook_url, "response_key": response_key,
            "return_url": return_url, "webhook_username": webhook_username,
            "webhook_password": webhook_password, "max_sends": max_sends,
            "max_attempts": max_attempts,
        }
        spec.update({k: v for k, v in optional.items() if v is not None})
        if port:
            spec["port"] = port
        try:
            server = _native.SandboxServer(dumps(spec))
        except _native.WireError as e:
            raise native_error(e) from None
        return cls(server, api_key)

    def stop(self) -> None:
        """Stops the server (a second stop does nothing)."""
        self._server.stop()

    @property
    def running(self) -> bool:
        return bool(self._server.running)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Sandbox({self.url!r}, api_key=<redacted>)"

    # ----- The control API -----------------------------------------------------------------

    def control(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        """One call of the control API (``/_sandbox/`` + ``path``); its JSON answer."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            f"{self.url}/_sandbox/{path.lstrip('/')}", data=data, method=method
        )
        request.add_header("Authorization", self._auth)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                form = json.loads(raw)
                code, message = str(form.get("code")), str(form.get("message"))
            except (ValueError, AttributeError):
                code, message = "http_error", raw.decode("utf-8", "replace")[:200]
            raise SandboxError(code, e.code, message) from None
        except (urllib.error.URLError, OSError) as e:
            raise SandboxError("unreachable", 0, f"{type(e).__name__}: {e}") from None

    @staticmethod
    def _seg(text: str) -> str:
        return urllib.parse.quote(text, safe="")

    def otp(self, order_id: str) -> str:
        """The OTP the bank sent last for the order ("read the SMS"); ``SandboxError``
        ``no_otp`` when none can be submitted."""
        return str(self.control("GET", f"orders/{self._seg(order_id)}/otp")["otp"])

    def settings(self) -> Dict[str, Any]:
        """The settings in force (without secrets)."""
        return dict(self.control("GET", "settings"))

    def update_settings(self, **fields: Any) -> Dict[str, Any]:
        """Changes settings (``max_sends``, ``max_attempts``, ``otp``, ``auto_capture``,
        ``return_url``, ``response_key``, ``webhook_url``, ...): see docs/sandbox.md."""
        return dict(self.control("PATCH", "settings", fields))

    def set_card(self, card: str, flow: str) -> None:
        """The flow of a ``card_token`` or card number (one of :data:`CARD_FLOWS`)."""
        self.control("PUT", f"cards/{self._seg(card)}", {"flow": flow})

    def set_bin(self, prefix: str, eligible: bool) -> None:
        """Whether cards with this BIN prefix support Direct OTP."""
        self.control("PUT", f"bins/{self._seg(prefix)}", {"eligible": eligible})

    def fault(
        self,
        fault: str,
        *,
        endpoint: Optional[str] = None,
        order_id: Optional[str] = None,
        times: Optional[int] = None,
        delay: Optional[timedelta] = None,
        size: Optional[int] = None,
        status: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Queues a fault (one of :data:`FAULTS`) for the next matching request(s)."""
        body: Dict[str, Any] = {"fault": fault}
        if endpoint is not None:
            body["endpoint"] = endpoint
        if order_id is not None:
            body["order_id"] = order_id
        if times is not None:
            body["times"] = times
        if delay is not None:
            body["delay_ms"] = duration_ms(delay)
        if size is not None:
            body["bytes"] = size
        if status is not None:
            body["status"] = status
        return dict(self.control("POST", "faults", body))

    def faults(self) -> List[Dict[str, Any]]:
        """The faults queued, in the order they will be used."""
        return list(self.control("GET", "faults")["faults"])

    def clear_faults(self) -> int:
        """Forgets the queued faults; how many there were."""
        return int(self.control("DELETE", "faults")["cleared"])

    def webhook_fault(
        self, fault: str, *, delay: Optional[timedelta] = None, times: Optional[int] = None
    ) -> Dict[str, Any]:
        """Queues a webhook delivery fault (``duplicate``, ``deliver_after_next``, ``delay``)."""
        body: Dict[str, Any] = {"fault": fault}
        if delay is not None:
            body["delay_ms"] = duration_ms(delay)
        if times is not None:
            body["times"] = times
        return dict(self.control("POST", "webhook-faults", body))

    def add_order(self, order_id: str, amount: Optional[str] = None) -> Dict[str, Any]:
        """Creates an order (for ``orders: known_only``), with its amount."""
        body: Dict[str, Any] = {"order_id": order_id}
        if amount is not None:
            body["amount"] = amount
        return dict(self.control("POST", "orders", body))

    def order(self, order_id: str) -> Dict[str, Any]:
        """The order: status, transactions (sends, attempts), requests per endpoint."""
        return dict(self.control("GET", f"orders/{self._seg(order_id)}"))

    def return_url(self, order_id: str) -> Dict[str, Any]:
        """The signed return parameters (``query``) and URL (``return_url``) for the order."""
        return dict(self.control("GET", f"orders/{self._seg(order_id)}/return-url"))

    def complete_bank_page(self, order_id: str, success: bool = True) -> Dict[str, Any]:
        """The cardholder finishes on the bank page (``status``, ``return_url``)."""
        return dict(
            self.control(
                "POST",
                f"orders/{self._seg(order_id)}/bank-page",
                {"result": "success" if success else "failure"},
            )
        )

    def take_webhooks(self, order_id: str) -> List[Dict[str, Any]]:
        """The order's queued webhooks (``headers``, ``body``), oldest first; taken."""
        return list(
            self.control("POST", f"orders/{self._seg(order_id)}/webhooks/take")["webhooks"]
        )

    def counters(self) -> Dict[str, Any]:
        """Requests per endpoint, OTPs sent, orders, faults pending, webhooks, ..."""
        return dict(self.control("GET", "counters"))

    def log(self) -> List[Dict[str, Any]]:
        """The most recent requests answered."""
        return list(self.control("GET", "log")["log"])

    def reset(self) -> None:
        """Forgets every order, transaction, webhook, fault and counter (settings stay)."""
        self.control("POST", "reset")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None

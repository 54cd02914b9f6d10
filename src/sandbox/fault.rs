//! Scripted faults: what the next request to an endpoint (or to an order) suffers.

use std::time::Duration;

/// The endpoints the sandbox answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /txns`.
    Start,
    /// `POST /v2/txns/{id}/authenticate/{challenge_id}/resend`.
    Resend,
    /// `POST /v2/txns/{id}/authenticate`.
    Submit,
    /// `GET /orders/{order_id}`.
    OrderStatus,
    /// `GET`/`POST /v2/pay/start/{merchant}/{txn_uuid}`: the bank page a browser is sent to
    /// (`fallback_url`, or the 3DS failover `url`). No API key needed.
    BankPage,
    /// `GET /cardbins/{bin}`: card eligibility for Direct OTP.
    CardBin,
}

impl Endpoint {
    /// Every endpoint, in the order above.
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Start,
        Endpoint::Resend,
        Endpoint::Submit,
        Endpoint::OrderStatus,
        Endpoint::BankPage,
        Endpoint::CardBin,
    ];

    /// The endpoint a library request kind goes to.
    pub fn of(kind: crate::RequestKind) -> Endpoint {
        match kind {
            crate::RequestKind::Start => Endpoint::Start,
            crate::RequestKind::Resend => Endpoint::Resend,
            crate::RequestKind::Submit => Endpoint::Submit,
            crate::RequestKind::OrderStatus => Endpoint::OrderStatus,
            crate::RequestKind::CardBin => Endpoint::CardBin,
        }
    }

    /// Its name in the control API and in logs: `start`, `resend`, `submit`,
    /// `order_status`, `bank_page`, `card_bin`.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Start => "start",
            Endpoint::Resend => "resend",
            Endpoint::Submit => "submit",
            Endpoint::OrderStatus => "order_status",
            Endpoint::BankPage => "bank_page",
            Endpoint::CardBin => "card_bin",
        }
    }

    /// The endpoint with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// A fault for the next request to one endpoint, queued with
/// [`Sandbox::inject`](super::Sandbox::inject) (or
/// [`Sandbox::inject_matching`](super::Sandbox::inject_matching), for any endpoint or one
/// order). Each fault is used once, by the next request that matches (whatever its headers
/// and body), in the order the faults were queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer 500 with the internal-error envelope; the request is not acted on.
    InternalError,
    /// Act on the request (an OTP is sent, checked, ...), then answer 500 anyway.
    InternalErrorAfterApply,
    /// Answer 400 `DUPLICATE_REQUEST` ("another request is in progress"); not acted on.
    Duplicate,
    /// Act on the request and answer it after this delay.
    Slow(Duration),
    /// Act on the request, then close the connection without answering: the state changed
    /// and the client never learns it. Reconciling (`GET /orders/{id}`) tells.
    DropResponse,
    /// Close the connection without acting on the request: it "never arrived".
    DropRequest,
    /// Act on the request, then reset the connection (a TCP RST, no answer): the request
    /// was written, the client sees "connection reset".
    Reset,
    /// Act on the request, send the head (with the whole body's `content-length`) and half
    /// of the body, then close the connection: a truncated answer.
    TruncateBody,
    /// Act on the request, send the head and half of the body at once, the rest after this
    /// delay: a client whose deadline is shorter times out after the head.
    StallBody(Duration),
    /// Act on the request and answer it with its JSON body padded with spaces to this many
    /// bytes (still valid JSON): an answer larger than a client's body limit.
    Oversized(usize),
    /// Answer this redirect status (`301`, `302`, `303`, `307`, `308`) with a `location` of
    /// the request's own target, without acting on the request: a client that follows it
    /// sends the request a second time, which the counters show.
    Redirect(u16),
}

impl Fault {
    /// The most bytes [`Fault::Oversized`] pads to: 16 MiB.
    pub const MAX_OVERSIZED: usize = 16 * 1024 * 1024;

    /// True if the request is acted on despite the fault.
    pub fn applies_request(self) -> bool {
        matches!(
            self,
            Fault::InternalErrorAfterApply
                | Fault::Slow(_)
                | Fault::DropResponse
                | Fault::Reset
                | Fault::TruncateBody
                | Fault::StallBody(_)
                | Fault::Oversized(_)
        )
    }

    /// Its name in the control API: `internal_error`, `internal_error_after_apply`,
    /// `duplicate`, `slow`, `drop_response`, `drop_request`, `reset`, `truncate_body`,
    /// `stall_body`, `oversized`, `redirect`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::InternalError => "internal_error",
            Fault::InternalErrorAfterApply => "internal_error_after_apply",
            Fault::Duplicate => "duplicate",
            Fault::Slow(_) => "slow",
            Fault::DropResponse => "drop_response",
            Fault::DropRequest => "drop_request",
            Fault::Reset => "reset",
            Fault::TruncateBody => "truncate_body",
            Fault::StallBody(_) => "stall_body",
            Fault::Oversized(_) => "oversized",
            Fault::Redirect(_) => "redirect",
        }
    }
}

/// A queued fault and the requests it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scripted {
    /// `None`: any endpoint.
    pub(crate) endpoint: Option<Endpoint>,
    /// `None`: any order (or none).
    pub(crate) order_id: Option<String>,
    pub(crate) fault: Fault,
}

impl Scripted {
    pub(crate) fn matches(&self, endpoint: Endpoint, order_id: Option<&str>) -> bool {
        self.endpoint.is_none_or(|e| e == endpoint)
            && self.order_id.as_deref().is_none_or(|o| Some(o) == order_id)
    }
}

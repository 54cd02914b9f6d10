//! Scripted faults: what the next request to an endpoint suffers.

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
}

/// A fault for the next request to one endpoint, queued with
/// [`Sandbox::inject`](super::Sandbox::inject). Each fault is used once, by the next request
/// whose method and path match the endpoint (whatever its headers and body), in the order
/// the faults were queued.
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
}

impl Fault {
    /// True if the request is acted on despite the fault.
    pub fn applies_request(self) -> bool {
        matches!(
            self,
            Fault::InternalErrorAfterApply | Fault::Slow(_) | Fault::DropResponse
        )
    }
}

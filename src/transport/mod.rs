//! Moving requests over HTTP: the transport error type shared by every adapter, conversions
//! to and from the [`http`] crate's types, and the adapters themselves.
//!
//! * [`TransportError`]: what went wrong while sending, as a [`TransportErrorKind`] plus the
//!   underlying error as its [`source`](std::error::Error::source). The kind says whether
//!   the request may have reached the server ([`TransportError::send_failure`]), which is
//!   what [`Challenge::handle_send_failure`] needs.
//! * Conversions (feature `http`): `http::Request::<Vec<u8>>::try_from(request)` and
//!   [`response_parts`], for callers who drive the challenge with their own HTTP client.
#![cfg_attr(
    feature = "hyper",
    doc = "* [`HyperTransport`] (feature `hyper`): async, over a `hyper_util` legacy client you build."
)]
#![cfg_attr(
    not(feature = "hyper"),
    doc = "* `HyperTransport` (feature `hyper`): async, over a `hyper_util` legacy client you build."
)]
#![cfg_attr(
    feature = "ureq",
    doc = "* [`UreqTransport`] (feature `ureq`): blocking, over a `ureq::Agent`."
)]
#![cfg_attr(
    not(feature = "ureq"),
    doc = "* `UreqTransport` (feature `ureq`): blocking, over a `ureq::Agent`."
)]
//!
//! Both adapters have a `send` for the start request (which has no challenge yet) and a
//! `drive` that sends a challenge's [`Outgoing`](crate::Outgoing) request and hands the
//! answer, or the failure, back to the challenge. Both take the same [`Settings`] (deadline,
//! body limit, clock). See `docs/adapters.md` for the defaults and the table of which
//! failures count as "not sent".

use std::error::Error as StdError;
use std::fmt;

use crate::outcome::{Outcome, SendFailure};

#[cfg(feature = "hyper")]
mod deadline;
#[cfg(feature = "hyper")]
mod hyper;
mod interop;
mod settings;
#[cfg(feature = "ureq")]
mod ureq;

#[cfg(feature = "hyper")]
pub use self::hyper::HyperTransport;
pub use self::interop::response_parts;
pub use self::settings::{Settings, DEFAULT_BODY_LIMIT, DEFAULT_TIMEOUT, MAX_TIMEOUT};
#[cfg(feature = "ureq")]
pub use self::ureq::UreqTransport;

#[cfg(doc)]
use crate::Challenge;

/// The connect timeout of the clients the crate builds
/// (`HyperTransport::plain_http`, `UreqTransport::with_default_agent`): 10 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What kind of failure a [`TransportError`] is, and so whether the request may have been
/// sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The HTTP client refused the request before sending anything (a URL or header value
    /// it does not accept). **Not sent.**
    InvalidRequest,
    /// No connection could be made: connection refused, host not found, TLS handshake
    /// failure, or the deadline passed while still connecting. **Not sent.**
    Connect,
    /// The deadline passed after the connection was made. **Maybe sent.**
    Timeout,
    /// The connection failed after the request began to go out: reset, closed before the
    /// answer was complete. **Maybe sent.**
    Io,
    /// The answer is not valid HTTP. **Maybe sent.**
    Protocol,
    /// The async runtime cannot run the exchange: no Tokio runtime (the future was polled
    /// by another executor, or outside one), or the transport's deadline thread could not
    /// be started. Found before anything is sent. **Not sent.**
    Runtime,
    /// The response body is larger than the limit; it was not read. **Maybe sent** (it was
    /// answered, but the answer is unknown).
    BodyTooLarge,
    /// Any other failure. Treated as **maybe sent**.
    Other,
}

impl TransportErrorKind {
    /// False only when the request surely did not reach the server.
    pub fn may_have_been_sent(self) -> bool {
        !matches!(
            self,
            TransportErrorKind::InvalidRequest
                | TransportErrorKind::Connect
                | TransportErrorKind::Runtime
        )
    }

    /// The input for [`Challenge::handle_send_failure`].
    pub fn send_failure(self) -> SendFailure {
        if self.may_have_been_sent() {
            SendFailure::MaybeSent
        } else {
            SendFailure::NotSent
        }
    }

    /// A stable snake_case code, `transport_` and the kind (`transport_connect`,
    /// `transport_timeout`, ...). Codes never change meaning; new ones may be added.
    pub fn code(self) -> &'static str {
        match self {
            TransportErrorKind::InvalidRequest => "transport_invalid_request",
            TransportErrorKind::Connect => "transport_connect",
            TransportErrorKind::Timeout => "transport_timeout",
            TransportErrorKind::Io => "transport_io",
            TransportErrorKind::Protocol => "transport_protocol",
            TransportErrorKind::Runtime => "transport_runtime",
            TransportErrorKind::BodyTooLarge => "transport_body_too_large",
            TransportErrorKind::Other => "transport_other",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            TransportErrorKind::InvalidRequest => "the HTTP client refused the request (not sent)",
            TransportErrorKind::Connect => "could not connect (the request was not sent)",
            TransportErrorKind::Timeout => "timed out (the request may have been sent)",
            TransportErrorKind::Io => {
                "the connection failed during the exchange (the request may have been sent)"
            }
            TransportErrorKind::Protocol => {
                "the answer is not valid HTTP (the request may have been sent)"
            }
            TransportErrorKind::Runtime => {
                "no Tokio runtime (or no deadline thread) to run the exchange (the request was not sent)"
            }
            TransportErrorKind::BodyTooLarge => {
                "the response body exceeds the size limit (the request was answered, unread)"
            }
            TransportErrorKind::Other => "the exchange failed (the request may have been sent)",
        }
    }
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Sending a request failed. The [`kind`](Self::kind) says whether it may have been sent;
/// the underlying error (from the HTTP client, the timer or the body limit) is the
/// [`source`](std::error::Error::source).
///
/// No HTTP client's type appears in this type's API. The message never holds the API key,
/// an OTP or a body.
///
/// ```
/// use direct_otp::transport::{TransportError, TransportErrorKind};
/// use direct_otp::SendFailure;
///
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let e = TransportError::new(TransportErrorKind::Connect, refused);
/// assert_eq!(e.send_failure(), SendFailure::NotSent);
/// assert!(std::error::Error::source(&e).is_some());
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct TransportError {
    kind: TransportErrorKind,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl TransportError {
    /// An error of `kind` caused by `source`. Public so that your own transports can report
    /// failures the same way.
    pub fn new(
        kind: TransportErrorKind,
        source: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        TransportError {
            kind,
            source: Some(source.into()),
        }
    }

    /// An error of `kind` with no underlying error.
    pub fn from_kind(kind: TransportErrorKind) -> Self {
        TransportError { kind, source: None }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// The kind's stable snake_case code ([`TransportErrorKind::code`]).
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// False only when the request surely did not reach the server.
    pub fn may_have_been_sent(&self) -> bool {
        self.kind.may_have_been_sent()
    }

    /// The input for [`Challenge::handle_send_failure`].
    pub fn send_failure(&self) -> SendFailure {
        self.kind.send_failure()
    }

    /// The same error as seen once the response head had arrived: the request was surely
    /// sent, so a kind that says "not sent" becomes [`TransportErrorKind::Io`].
    #[cfg(any(test, feature = "ureq"))]
    pub(crate) fn after_response(mut self) -> Self {
        if !self.kind.may_have_been_sent() {
            self.kind = TransportErrorKind::Io;
        }
        self
    }
}

/// What a `drive` call did: the record's [`Outcome`], and the transport failure behind it,
/// if there was one (for logs; the record has already taken it into account).
#[derive(Debug)]
#[non_exhaustive]
pub struct Driven {
    /// What the answer (or the failure) did to the challenge.
    pub outcome: Outcome,
    /// The transport failure, when the request got no usable HTTP answer. The outcome is
    /// then [`Outcome::NotDelivered`] (surely not sent, or a status check) or
    /// [`Outcome::CheckStatus`] (a submit or resend that may have been sent).
    pub transport_error: Option<TransportError>,
}

/// Hands the result of an exchange to the record, as the one input every caller uses: a
/// [`Reply`](crate::Reply).
#[cfg(any(feature = "hyper", feature = "ureq"))]
pub(crate) fn feed<R: crate::Requester + ?Sized>(
    record: &mut R,
    token: crate::Token,
    result: Result<(u16, Vec<u8>), TransportError>,
    now: time::OffsetDateTime,
) -> Result<Driven, crate::InputError> {
    let (reply, transport_error) = match result {
        Ok((status, body)) => (crate::Reply::Answer { status, body }, None),
        Err(e) => (crate::Reply::Failed(e.send_failure()), Some(e)),
    };
    Ok(Driven {
        outcome: record.handle(token, reply, now)?,
        transport_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connect_invalid_request_and_runtime_are_not_sent() {
        use TransportErrorKind::*;
        for (kind, sent) in [
            (InvalidRequest, false),
            (Connect, false),
            (Runtime, false),
            (Timeout, true),
            (Io, true),
            (Protocol, true),
            (BodyTooLarge, true),
            (Other, true),
        ] {
            assert_eq!(kind.may_have_been_sent(), sent, "{kind:?}");
            let want = if sent {
                SendFailure::MaybeSent
            } else {
                SendFailure::NotSent
            };
            assert_eq!(TransportError::from_kind(kind).send_failure(), want);
        }
    }

    #[test]
    fn after_response_never_says_not_sent() {
        let e = TransportError::from_kind(TransportErrorKind::Connect).after_response();
        assert_eq!(e.kind(), TransportErrorKind::Io);
        let e = TransportError::from_kind(TransportErrorKind::BodyTooLarge).after_response();
        assert_eq!(e.kind(), TransportErrorKind::BodyTooLarge);
    }

    #[test]
    fn message_and_source() {
        let e = TransportError::new(
            TransportErrorKind::Timeout,
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        );
        assert_eq!(e.to_string(), "timed out (the request may have been sent)");
        assert!(StdError::source(&e).is_some());
        assert!(StdError::source(&TransportError::from_kind(TransportErrorKind::Other)).is_none());
    }
}

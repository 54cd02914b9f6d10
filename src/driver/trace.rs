//! The drivers' events and spans (feature `tracing`), in the vocabulary of the codes:
//! a span per call (`direct_otp.drive`, with the call and the key), an event per I/O (the
//! operation, the key, the revisions, the request's kind) and one for the result (the
//! [`Outcome`](crate::Outcome), [`SettleOutcome`](crate::SettleOutcome),
//! [`Refusal`](crate::Refusal) or [`DriveError`] code). They carry no secret: never the
//! payment's JSON, a request's headers or body, an answer's body, an OTP, card data or a
//! message of an error (only its code). Without the feature, nothing here does anything.

use super::{BankPage, Done, DriveError, Io, Settled, Swept};

#[cfg(feature = "tracing")]
mod on {
    use super::*;
    use tracing::{debug, info, warn};

    /// The span of one call.
    pub(in crate::driver) fn span(call: &'static str, key: &str) -> tracing::Span {
        tracing::info_span!("direct_otp.drive", call, key)
    }

    /// The I/O a machine asks for.
    pub(in crate::driver) fn io(io: &Io) {
        match io {
            Io::Load { key } => debug!(op = "load", key = key.as_str(), "direct_otp io"),
            Io::LatestForOrder { order_id } => {
                debug!(
                    op = "latest_for_order",
                    order_id = order_id.as_str(),
                    "direct_otp io"
                )
            }
            Io::Insert { payment } => debug!(
                op = "insert",
                key = payment.key(),
                revision = payment.revision(),
                in_flight = payment.in_flight().map(|t| t.kind().code()),
                "direct_otp io"
            ),
            Io::Replace { expected, payment } => debug!(
                op = "replace",
                key = payment.key(),
                expected = *expected,
                revision = payment.revision(),
                in_flight = payment.in_flight().map(|t| t.kind().code()),
                "direct_otp io"
            ),
            Io::ListInFlight { limit, .. } => {
                debug!(op = "list_in_flight", limit = *limit, "direct_otp io")
            }
            Io::Send { key, request, .. } => info!(
                op = "send",
                key = key.as_str(),
                kind = request.kind().code(),
                "direct_otp io"
            ),
            Io::Pause { wait } => warn!(
                op = "pause",
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "direct_otp: the store failed after the answer; retrying its write"
            ),
        }
    }

    /// A call that failed.
    pub(in crate::driver) fn error(e: &DriveError) {
        let refusal = match e {
            DriveError::Refused { refusal, .. } => Some(refusal.code()),
            _ => None,
        };
        warn!(
            key = e.key(),
            code = e.code(),
            refusal,
            http_status = e.http_status(),
            "direct_otp drive error"
        );
    }

    pub(in crate::driver) fn done(r: &Result<Done, DriveError>) {
        match r {
            Ok(d) => info!(
                key = d.payment.key(),
                revision = d.payment.revision(),
                outcome = d.outcome.code(),
                terminal = d.outcome.is_terminal(),
                "direct_otp done"
            ),
            Err(e) => error(e),
        }
    }

    pub(in crate::driver) fn bank_page(r: &Result<BankPage, DriveError>) {
        match r {
            Ok(p) => info!(
                key = p.payment.key(),
                revision = p.payment.revision(),
                "direct_otp bank page"
            ),
            Err(e) => error(e),
        }
    }

    pub(in crate::driver) fn settled(r: &Result<Settled, DriveError>) {
        match r {
            Ok(s) => info!(
                key = s.payment.key(),
                revision = s.payment.revision(),
                settle = s.outcome.code(),
                check = s.check.as_ref().map(|c| match c {
                    Ok(o) => o.code(),
                    Err(e) => e.code(),
                }),
                "direct_otp settled"
            ),
            Err(e) => error(e),
        }
    }

    pub(in crate::driver) fn swept(r: &Result<Vec<Swept>, DriveError>) {
        match r {
            Ok(swept) => {
                for s in swept {
                    match s {
                        Swept::Recovered {
                            key,
                            outcome,
                            check,
                        } => info!(
                            key = key.as_str(),
                            swept = "recovered",
                            outcome = outcome.code(),
                            check = check.as_ref().map(|c| match c {
                                Ok(d) => d.outcome.code(),
                                Err(e) => e.code(),
                            }),
                            "direct_otp swept"
                        ),
                        Swept::Moved { key } => {
                            debug!(key = key.as_str(), swept = "moved", "direct_otp swept")
                        }
                        Swept::Failed { key, error } => warn!(
                            key = key.as_str(),
                            swept = "failed",
                            code = error.code(),
                            "direct_otp swept"
                        ),
                    }
                }
                info!(count = swept.len(), "direct_otp sweep done");
            }
            Err(e) => error(e),
        }
    }
}

#[cfg(not(feature = "tracing"))]
mod on {
    use super::*;

    /// No span without the feature.
    #[derive(Debug, Clone, Default)]
    pub(in crate::driver) struct Span;

    pub(in crate::driver) fn span(_: &'static str, _: &str) -> Span {
        Span
    }
    pub(in crate::driver) fn io(_: &Io) {}
    pub(in crate::driver) fn done(_: &Result<Done, DriveError>) {}
    pub(in crate::driver) fn bank_page(_: &Result<BankPage, DriveError>) {}
    pub(in crate::driver) fn settled(_: &Result<Settled, DriveError>) {}
    pub(in crate::driver) fn swept(_: &Result<Vec<Swept>, DriveError>) {}
}

pub(super) use on::*;

/// A call's span (with the feature, `tracing::Span`).
#[cfg(feature = "tracing")]
pub(super) type Span = tracing::Span;

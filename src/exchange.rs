//! The result of one exchange, and what takes it: the one input every transport, and every
//! caller with its own HTTP client, hands back.

use time::OffsetDateTime;

use crate::error::InputError;
use crate::outcome::{Outcome, SendFailure};
use crate::token::Token;

/// The result of one exchange, as any HTTP client can report it: the answer (status and
/// body), or how sending failed. The one input [`Payment::handle`](crate::Payment::handle)
/// and [`Challenge::handle`](crate::Challenge::handle) take; the transports build it too.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// An HTTP answer: its status code and body.
    Answer {
        /// The HTTP status code.
        status: u16,
        /// The body, read in full (with a size limit).
        body: Vec<u8>,
    },
    /// No usable answer: the request surely was not sent, or may have been.
    Failed(SendFailure),
}

/// A record that issues requests and takes their results back: a
/// [`Payment`](crate::Payment) or a [`Challenge`](crate::Challenge). The transports' `drive`
/// takes either. Sealed: only this crate's records implement it.
pub trait Requester: sealed::Sealed {
    /// Whether `token` is that of the request in flight (checked before sending, so a
    /// stale [`Outgoing`](crate::Outgoing) never goes out). Changes nothing.
    fn check_token(&self, token: Token) -> Result<(), InputError>;

    /// Hands back the result of sending the request `token`.
    fn handle(
        &mut self,
        token: Token,
        reply: Reply,
        now: OffsetDateTime,
    ) -> Result<Outcome, InputError>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Challenge {}
    impl Sealed for crate::Payment {}
    impl<R: Sealed + ?Sized> Sealed for Box<R> {}
}

/// A boxed record (as [`Started::Challenge`](crate::Started::Challenge) holds one).
impl<R: Requester + ?Sized> Requester for Box<R> {
    fn check_token(&self, token: Token) -> Result<(), InputError> {
        (**self).check_token(token)
    }

    fn handle(
        &mut self,
        token: Token,
        reply: Reply,
        now: OffsetDateTime,
    ) -> Result<Outcome, InputError> {
        (**self).handle(token, reply, now)
    }
}

impl Requester for crate::Challenge {
    fn check_token(&self, token: Token) -> Result<(), InputError> {
        crate::Challenge::check_token(self, token)
    }

    fn handle(
        &mut self,
        token: Token,
        reply: Reply,
        now: OffsetDateTime,
    ) -> Result<Outcome, InputError> {
        crate::Challenge::handle(self, token, reply, now)
    }
}

impl Requester for crate::Payment {
    fn check_token(&self, token: Token) -> Result<(), InputError> {
        crate::Payment::check_token(self, token)
    }

    fn handle(
        &mut self,
        token: Token,
        reply: Reply,
        now: OffsetDateTime,
    ) -> Result<Outcome, InputError> {
        crate::Payment::handle(self, token, reply, now)
    }
}

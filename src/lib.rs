// The README is the crate's documentation. Its examples use the SQLite store and both
// adapters: with those features (docs.rs builds with every feature, and `cargo test
// --workspace` unifies them all in) they are doctests; without, a pointer to it.
#![cfg_attr(
    all(feature = "sqlite", feature = "ureq", feature = "hyper"),
    doc = include_str!("../README.md")
)]
#![cfg_attr(
    not(all(feature = "sqlite", feature = "ureq", feature = "hyper")),
    doc = "Sans-IO client core for Juspay's Direct OTP card payments. The README is this \
           documentation with the features `sqlite`, `ureq` and `hyper` (as on docs.rs)."
)]
// No unsafe code: secrets are wiped with `zeroize`. A place that needs it must say why in an
// `#[allow(unsafe_code, reason = "...")]` of its own.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod base_url;
mod card;
mod challenge;
mod clock;
pub mod codes;
mod config;
mod error;
mod exchange;
mod id;
mod lenient;
mod link;
mod order;
mod otp;
mod outcome;
mod payment;
mod policy;
mod request;
mod response;
mod settle;
mod start;
mod status;
mod token;
mod view;

pub mod driver;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod store;
#[cfg(feature = "http")]
pub mod transport;
pub mod wire;

/// The code samples of `docs/settlement.md`, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/settlement.md")]
mod settlement_md {}

pub use card::{CardDetails, CardSummary, PaymentSource};
pub use challenge::{Challenge, FORMAT_VERSION};
pub use config::{Config, PRODUCTION_URL, SANDBOX_URL};
pub use error::{
    ApiError, BaseUrlError, ConfigError, ForeignAnswer, IdError, InputError, Malformed, OtpError,
    ResponseError, StartError,
};
pub use exchange::{Reply, Requester};
pub use id::MAX_ID_LEN;
pub use order::OrderStatusCheck;
pub use otp::Otp;
pub use outcome::{Outcome, Refusal, SendFailure, TimerEvent, Uncertainty};
pub use payment::{Payment, SettleError, SettleOutcome, Settlement, PAYMENT_FORMAT_VERSION};
pub use policy::Policy;
pub use request::{Method, Outgoing, Request};
pub use settle::{
    Amount, AmountError, BinError, Disagreement, Eligibility, EligibilityCheck, EventName,
    ExpectedAmount, IntegrityError, OrderSnapshot, ResponseKey, ReturnParams, ReturnUrlError,
    SecretError, SettlementSource, VerifiedReturn, WebhookCredentials, WebhookError, WebhookEvent,
    MAX_WEBHOOK_BODY, SIGNATURE_ALGORITHM,
};
pub use start::{StartRequest, Started};
pub use status::Status;
pub use token::{RecordId, RequestKind, Token, TokenParseError};
pub use view::{NextStep, PaymentView};

#![doc = include_str!("../README.md")]
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod card;
mod challenge;
mod clock;
mod config;
mod error;
mod id;
mod lenient;
mod link;
mod order;
mod otp;
mod outcome;
mod policy;
mod request;
mod response;
mod settle;
mod start;
mod status;
mod token;

#[cfg(feature = "sandbox")]
pub mod sandbox;
#[cfg(feature = "http")]
pub mod transport;

pub use card::{CardDetails, CardSummary, PaymentSource};
pub use challenge::{Challenge, NextStep, FORMAT_VERSION};
pub use config::{Config, PRODUCTION_URL, SANDBOX_URL};
pub use error::{
    ApiError, ConfigError, ForeignAnswer, IdError, InputError, Malformed, OtpError, ResponseError,
    StartError,
};
pub use id::MAX_ID_LEN;
pub use order::OrderStatusCheck;
pub use otp::Otp;
pub use outcome::{Outcome, Refusal, SendFailure, TimerEvent, Uncertainty};
pub use policy::Policy;
pub use request::{Method, Outgoing, Request};
pub use settle::{
    Amount, AmountError, BinError, Eligibility, EligibilityCheck, EventName, ExpectedAmount,
    IntegrityError, OrderSnapshot, ResponseKey, ReturnParams, ReturnUrlError, SecretError,
    VerifiedReturn, WebhookCredentials, WebhookError, WebhookEvent, MAX_WEBHOOK_BODY,
    SIGNATURE_ALGORITHM,
};
pub use start::{StartRequest, Started};
pub use status::Status;
pub use token::{RecordId, RequestKind, Token};

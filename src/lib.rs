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
mod payment;
mod policy;
mod request;
mod response;
mod start;
mod status;
mod token;
mod view;

#[cfg(feature = "sandbox")]
pub mod sandbox;
#[cfg(feature = "http")]
pub mod transport;

pub use card::{CardDetails, CardSummary, PaymentSource};
pub use challenge::{Challenge, FORMAT_VERSION};
pub use config::{Config, PRODUCTION_URL, SANDBOX_URL};
pub use error::{
    ApiError, ConfigError, ForeignAnswer, IdError, InputError, Malformed, OtpError, ResponseError,
    StartError,
};
pub use id::MAX_ID_LEN;
pub use order::OrderStatusCheck;
pub use otp::Otp;
pub use outcome::{Outcome, Refusal, Reply, SendFailure, TimerEvent, Uncertainty};
pub use payment::{Payment, PAYMENT_FORMAT_VERSION};
pub use policy::Policy;
pub use request::{Method, Outgoing, Request};
pub use start::{StartRequest, Started};
pub use status::Status;
pub use token::{RecordId, RequestKind, Token};
pub use view::{NextStep, PaymentView};

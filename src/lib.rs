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
mod order;
mod otp;
mod outcome;
mod policy;
mod request;
mod response;
mod start;
mod status;

#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod store;
#[cfg(feature = "http")]
pub mod transport;

pub use card::{CardDetails, CardSummary, PaymentSource};
pub use challenge::{Challenge, NextStep, FORMAT_VERSION};
pub use config::{Config, PRODUCTION_URL, SANDBOX_URL};
pub use error::{
    ApiError, ConfigError, IdError, InputError, Malformed, OtpError, ResponseError, StartError,
};
pub use id::MAX_ID_LEN;
pub use order::OrderStatusCheck;
pub use otp::Otp;
pub use outcome::{Outcome, Refusal, SendFailure, TimerEvent, Uncertainty};
pub use policy::Policy;
pub use request::{Method, Outgoing, Request, RequestKind, Token};
pub use start::{StartRequest, Started};
pub use status::Status;

//! A simulated Juspay Direct OTP server, for tests without Juspay's sandbox and without a key
//! (feature `sandbox`), and the same served over loopback HTTP (feature `sandbox-server`).
//!
//! [`Sandbox`] is a pure function from an [`HttpRequest`] to an [`HttpResponse`], holding
//! orders and transactions in memory: no sockets, no clock (`now` is an argument). It
//! answers the four Direct OTP calls with the documented bodies and error envelopes, and
//! lets a test read the OTP the "bank" sent ([`Sandbox::current_otp`]), finish a bank page
//! ([`Sandbox::complete_bank_page`]) and script faults ([`Sandbox::inject`]): a 500, a slow
//! answer, a response dropped after the state changed. It also plays the other settlement
//! sources: signed return URLs ([`Sandbox::return_url`]), card eligibility
//! (`GET /cardbins/{bin}`), and webhook events per order ([`Sandbox::take_webhooks`], with
//! scripted duplicates and reordering, [`WebhookFault`]).
//!
//! Drive the library against it in-process, feeding its requests straight in:
//!
//! ```
//! use direct_otp::sandbox::{Endpoint, Fault, Sandbox, SandboxConfig};
//! use direct_otp::{Config, Otp, Outcome, PaymentSource, SendFailure, StartRequest, Started, Status};
//! use time::macros::datetime;
//!
//! let now = datetime!(2026-11-25 10:00 UTC);
//! let mut sandbox = Sandbox::new(SandboxConfig::new("sk_test"));
//! let config = Config::new(sandbox.base_url(), "sk_test")?;
//! let start = StartRequest::new("ord_1", "acme", "customer_1",
//!     PaymentSource::Token { card_token: "tok_visa".into(), cvv: None })?;
//! let answer = sandbox.handle_request(&start.request(&config), now);
//! let Started::Challenge(mut challenge) = start.handle_response(answer.status, &answer.body, now)?
//! else { unreachable!() };
//!
//! // The submit is acted on, but its answer never arrives.
//! sandbox.inject(Endpoint::Submit, Fault::DropResponse);
//! let otp = Otp::new(sandbox.current_otp(challenge.txn_id()).unwrap())?;
//! let out = challenge.submit(&config, &otp, now)?;
//! let answer = sandbox.handle_request(&out.request, now);
//! assert!(!answer.is_delivered());
//! let outcome = challenge.handle_send_failure(out.token, SendFailure::MaybeSent, now)?;
//! assert!(matches!(outcome, Outcome::CheckStatus(_)));
//!
//! // Reconcile: the order status tells what happened.
//! let out = challenge.check_status(&config, now)?;
//! let answer = sandbox.handle_request(&out.request, now);
//! let outcome = challenge.handle_response(out.token, answer.status, &answer.body, now)?;
//! assert_eq!(outcome, Outcome::Approved(Status::Charged));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Or over real HTTP, with any client (feature `sandbox-server`):
//!
#![cfg_attr(feature = "sandbox-server", doc = "```")]
#![cfg_attr(not(feature = "sandbox-server"), doc = "```ignore")]
//! use direct_otp::sandbox::{Sandbox, SandboxConfig, SandboxServer};
//!
//! let server = SandboxServer::start(Sandbox::new(SandboxConfig::new("sk_test")))?;
//! let base_url = server.base_url(); // "http://127.0.0.1:PORT"
//! assert!(base_url.starts_with("http://127.0.0.1:"));
//! // ... point `direct_otp::Config::new(base_url, "sk_test")` at it, send with any client,
//! // and inspect or script the model through `server.sandbox()`.
//! assert_eq!(server.sandbox().log().len(), 0);
//! drop(server); // stops the server and joins its thread
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A server can also deliver the webhooks to a loopback URL
//! ([`SandboxConfig::with_webhook_url`]) and serve a control API under [`CONTROL_PREFIX`]
//! (OTPs, orders, scripted faults and card flows, settings, webhooks, counters, a reset:
//! everything a test in another language scripts over HTTP; [`SandboxConfig::control_api`]).
//! The program
//! `direct-otp-sandbox` (`cargo run --features sandbox-server --bin direct-otp-sandbox --
//! --port 0`) serves both, for test suites in any language. The model keeps at most
//! [`SandboxConfig::order_capacity`] orders, so a long-running server's memory stays bounded.
//!
//! `docs/sandbox.md` describes the model's rules, the faults, and how a downstream SDK uses
//! the sandbox in its own tests.

mod auth;
mod bodies;
mod config;
mod control;
mod control_input;
#[cfg(feature = "sandbox-server")]
mod deliver;
mod fault;
mod model;
#[cfg(feature = "sandbox-server")]
mod server;
mod settle;
mod state;
mod webhook_url;
mod wire;

pub use config::{
    CardFlow, Orders, OtpSource, SandboxConfig, WrongOtp, SANDBOX_RESPONSE_KEY,
    SANDBOX_WEBHOOK_PASSWORD, SANDBOX_WEBHOOK_USER,
};
pub use control::CONTROL_PREFIX;
pub use fault::{Endpoint, Fault};
pub use model::{BankPageResult, Exchange, Sandbox, SandboxError, TxnView};
#[cfg(feature = "sandbox-server")]
pub use server::SandboxServer;
pub use settle::{WebhookDeliveries, WebhookFault, HOLD_AT_MOST, WEBHOOK_PATH};
pub use webhook_url::WebhookUrlError;
pub use wire::{Delivery, HttpRequest, HttpResponse};

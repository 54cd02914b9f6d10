//! The sandbox's records: orders, transactions and the card facts it reports. Plain data,
//! shared by the model (which changes them) and the body builders (which show them), so
//! neither imports the other.

use time::OffsetDateTime;

use super::config::CardFlow;
use crate::Status;

/// An order, created on first use or by [`Sandbox::add_order`](super::Sandbox::add_order).
pub(super) struct Order {
    pub(super) order_id: String,
    pub(super) internal_id: String,
    pub(super) amount: f64,
    pub(super) customer_id: Option<String>,
    /// Transaction ids, oldest first; the last one is the order's current transaction.
    pub(super) txns: Vec<String>,
    /// Requests about this order, per endpoint (in the order of `Endpoint::ALL`).
    pub(super) requests: [u64; 6],
}

/// A transaction started by `POST /txns`.
pub(super) struct Txn {
    pub(super) id: String,
    pub(super) challenge_id: String,
    pub(super) txn_uuid: String,
    pub(super) txn_id: String,
    pub(super) order_id: String,
    pub(super) status: Status,
    pub(super) flow: CardFlow,
    pub(super) card: CardFacts,
    /// The OTP last sent, while it can be submitted.
    pub(super) otp: Option<String>,
    pub(super) sends: u32,
    pub(super) attempts: u32,
    /// Whether a successful payment is captured (`CHARGED`) or only authorized.
    pub(super) capture: bool,
    pub(super) created: OffsetDateTime,
    /// Digits for the gateway reference numbers.
    pub(super) numbers: String,
}

/// What the sandbox reports about the card of a transaction.
pub(super) struct CardFacts {
    pub(super) isin: String,
    pub(super) last_four: String,
    pub(super) brand: &'static str,
    pub(super) issuer: &'static str,
    pub(super) name: String,
    pub(super) expiry_month: String,
    pub(super) expiry_year: String,
    pub(super) fingerprint: String,
    pub(super) tokenized: bool,
}

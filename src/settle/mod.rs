//! Settlement sources besides the order status API: the signed return URL, webhooks, the
//! amount check, and card eligibility. Each gives owned plain data (a [`VerifiedReturn`],
//! a [`WebhookEvent`], an [`OrderSnapshot`], an [`Eligibility`]) or a typed error; nothing
//! here reads a clock or opens a socket.
//!
//! What each source proves, and how to combine them: `docs/settlement.md`. In short, the
//! order status API ([`OrderSnapshot::from_order_status`]) is authoritative; a verified
//! return and an authenticated webhook are hints to confirm with it, and an order is paid
//! only once its amount and currency match ([`ExpectedAmount::check`]).

mod amount;
mod ct;
mod disagreement;
mod eligibility;
mod error;
mod percent;
mod return_url;
mod snapshot;
mod webhook;

pub use amount::{Amount, ExpectedAmount, IntegrityError};
pub use disagreement::{Disagreement, SettlementSource};
pub use eligibility::{Eligibility, EligibilityCheck};
pub(crate) use error::loggable;
pub use error::{AmountError, BinError, ReturnUrlError, SecretError, WebhookError};
pub use return_url::{ResponseKey, ReturnParams, VerifiedReturn, SIGNATURE_ALGORITHM};
pub use snapshot::OrderSnapshot;
pub(crate) use webhook::MAX_EVENT_ID;
pub use webhook::{EventName, WebhookCredentials, WebhookEvent, MAX_WEBHOOK_BODY};

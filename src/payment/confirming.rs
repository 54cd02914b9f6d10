//! "Confirming": a source said the payment is final, but it is not the verdict.
//!
//! A verified return URL names the order, not the attempt (the browser's back button
//! replays an earlier attempt's, correctly signed); a webhook without a `txn_id` is not
//! bound to any attempt; the payment's own success answer may lack the amount the payment
//! expects; a hint may contradict how the payment was settled. In each case the payment
//! moves here and the order status API decides:
//!
//! ```text
//! open stage (OTP page, bank page) --unbound final hint--> Confirming --order status final--> Final
//!                                                              |  --order status not final--> back where it was
//! answer: success without the expected amount ----------> Confirming --order status--> Final
//! Final --contradicting hint--> Confirming --order status--> Final (Confirmed | Disagreement)
//! ```
//!
//! While confirming, the OTP page stays usable where it was (the bank may still take the
//! OTP), and the status check is the record's one request in flight: the challenge's slot
//! when the OTP page is kept, this stage's `check` otherwise. Nothing here is paid: a
//! payment is paid only once [`Final`](super::Stage::Final).

use serde::{Deserialize, Serialize};

use super::InFlight;
use crate::challenge::Challenge;
use crate::settle::{Disagreement, SettlementSource};
use crate::status::Status;

/// The stage: what was reported, why it needs the order status, and where the payment goes
/// back to if the order status says it is not final yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Confirming {
    /// The final status a source reported.
    pub(super) reported: Status,
    /// Who reported it.
    pub(super) by: SettlementSource,
    /// Why it is not the verdict.
    pub(super) why: Why,
    /// The order status check in flight when no OTP page is kept (with one, the check is
    /// the challenge's: the record has one slot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) check: Option<InFlight>,
    /// Where the payment was.
    pub(super) resume: Resume,
}

/// Why a report is not the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub(super) enum Why {
    /// A verified return URL or a webhook not bound to this attempt's transaction.
    Hint,
    /// The bank's own answer says success but shows no amount, and the payment expects one.
    AmountUnchecked,
    /// A hint contradicts how the payment was settled.
    Conflict { disagreement: Disagreement },
}

/// Where the payment goes back to when the order status says "not final yet".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub(super) enum Resume {
    /// The OTP page, as it was (still usable while confirming).
    Otp { challenge: Box<Challenge> },
    /// The bank's 3DS page.
    BankPage {
        url: String,
        browser_away: bool,
        status: Status,
    },
    /// The payment was settled with `status` (its terminal outcome was reported): the
    /// order status confirms it or overturns it.
    Settled { status: Status },
    /// Nothing to go back to: the bank's answer was final (without the amount); the
    /// payment stays here until the order status is final.
    Nothing,
}

impl Confirming {
    /// The last status known from the bank's side (not the hint's).
    pub(super) fn known_status(&self) -> Status {
        match &self.resume {
            Resume::Otp { challenge } => challenge.status().clone(),
            Resume::BankPage { status, .. } | Resume::Settled { status } => status.clone(),
            Resume::Nothing => self.reported.clone(),
        }
    }

    /// The OTP page kept while confirming.
    pub(super) fn challenge(&self) -> Option<&Challenge> {
        match &self.resume {
            Resume::Otp { challenge } => Some(challenge),
            _ => None,
        }
    }

    pub(super) fn challenge_mut(&mut self) -> Option<&mut Challenge> {
        match &mut self.resume {
            Resume::Otp { challenge } => Some(challenge),
            _ => None,
        }
    }

    /// The view's settlement issue while confirming.
    pub(super) fn issue(&self) -> Option<&'static str> {
        match self.why {
            Why::Hint => None,
            Why::AmountUnchecked => Some("amount_unchecked"),
            Why::Conflict { .. } => Some("conflict"),
        }
    }

    /// The first rule of this stage that a loaded record breaks, if any.
    pub(super) fn inconsistency(&self) -> Option<&'static str> {
        if !self.reported.is_final() {
            return Some("confirming a status that is not final");
        }
        match (&self.why, &self.resume) {
            (Why::Hint, Resume::Otp { .. } | Resume::BankPage { .. }) => {}
            (Why::AmountUnchecked, Resume::Nothing) if self.reported.is_success() => {}
            (Why::Conflict { .. }, Resume::Settled { status }) if status.is_final() => {}
            _ => return Some("confirming from a stage it cannot come from"),
        }
        if let Resume::Otp { challenge } = &self.resume {
            if challenge.is_final() {
                return Some("confirming over a final OTP page");
            }
            if self.check.is_some() {
                return Some("a confirming check beside the OTP page's one slot");
            }
        }
        if let Resume::BankPage { status, .. } = &self.resume {
            if status.is_final() {
                return Some("a final status in an open stage");
            }
        }
        if matches!(self.by, SettlementSource::OrderStatus) {
            return Some("the order status API reported but did not decide");
        }
        None
    }
}

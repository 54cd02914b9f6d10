//! The JSON bodies the sandbox answers with: one builder per documented shape, so each
//! shape is written once. `tests/fixtures/*.json` hold the same shapes; the tests compare
//! every body built here with them.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::config::{CardFlow, SandboxConfig};
use super::state::{Order, Txn};
use crate::Status;

/// The gateway name the sandbox reports.
pub(crate) const GATEWAY: &str = "DUMMY";

/// Which answer a transaction body is for; the documented samples differ per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnPart {
    /// `POST /txns`: no counters.
    Start,
    /// Resend: counters as strings (the resend page types them "String"), `auth_method`
    /// beside `auth_type`, the full card as in the page's sample.
    Resend,
    /// Submit: the full transaction, counters as numbers.
    Submit,
}

/// The numeric id of a status, from the status table.
pub(crate) fn status_id(status: &Status) -> u32 {
    match status {
        Status::New => 10,
        Status::Started => 20,
        Status::Charged => 21,
        Status::JuspayDeclined => 22,
        Status::PendingVbv => 23,
        Status::VbvSuccessful => 24,
        Status::Authorized => 25,
        Status::AuthenticationFailed => 26,
        Status::AuthorizationFailed => 27,
        Status::Authorizing => 28,
        Status::AutoRefunded => 36,
        Status::Other(_) => 0,
    }
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

pub(crate) fn authenticate_url(config: &SandboxConfig, txn: &Txn) -> String {
    format!("{}/v2/txns/{}/authenticate", config.base_url, txn.id)
}

/// The bank page a browser is sent to: `fallback_url`, or the 3DS failover `url`.
pub(crate) fn bank_page_url(config: &SandboxConfig, txn: &Txn) -> String {
    if txn.flow == CardFlow::ThreeDsFailover {
        format!("{}/v2/pay/start/guest/{}", config.base_url, txn.txn_uuid)
    } else {
        format!(
            "{}/v2/pay/start/{}/{}?cardIssuerBankName=Sandbox%20Bank",
            config.base_url, config.merchant_id, txn.txn_uuid
        )
    }
}

/// `payment.authentication` and friends: the transaction shape of start, resend and submit.
pub(crate) fn txn(config: &SandboxConfig, order: &Order, txn: &Txn, part: TxnPart) -> Value {
    if txn.flow == CardFlow::ThreeDsFailover {
        return json!({
            "order_id": order.order_id,
            "txn_id": txn.txn_id,
            "txn_uuid": txn.txn_uuid,
            "status": txn.status.as_str(),
            "payment": {
                "authentication": { "method": "GET", "url": bank_page_url(config, txn) }
            }
        });
    }
    let awaiting = txn.status == Status::PendingVbv;
    let tries_left = txn.attempts < config.max_attempts;
    let mut params = json!({
        "id": txn.id,
        "challenge_id": txn.challenge_id,
        "auth_type": "OTP",
        "card_isin": txn.card.isin,
        "card_issuer_bank_name": txn.card.issuer,
        "card_brand": txn.card.brand,
        "submit_otp_allowed": awaiting && tries_left,
        "resend_otp_allowed": awaiting && tries_left && txn.sends < config.max_sends,
        "fallback_url": bank_page_url(config, txn),
    });
    if part != TxnPart::Start && config.report_counters {
        let counters = [
            ("times_otp_sent", txn.sends),
            ("max_otp_send_limit", config.max_sends),
            ("current_attempt", txn.attempts),
            ("max_attempts", config.max_attempts),
        ];
        for (name, n) in counters {
            params[name] = match part {
                TxnPart::Resend => json!(n.to_string()),
                _ => json!(n),
            };
        }
    }
    if part == TxnPart::Resend {
        params["auth_method"] = json!("OTP");
    }
    let (resp_code, resp_message) = match (&txn.status, part) {
        (Status::Charged | Status::Authorized, _) => (json!("00"), json!("Transaction successful")),
        (s, _) if s.is_final() => (json!("05"), json!("Transaction declined")),
        (_, TxnPart::Resend) => (json!(""), json!("")),
        _ => (Value::Null, Value::Null),
    };
    let mut body = json!({
        "id": order.internal_id,
        "order_id": order.order_id,
        "txn_id": txn.txn_id,
        "txn_uuid": txn.txn_uuid,
        "status": txn.status.as_str(),
        "gateway": GATEWAY,
        "created": rfc3339(txn.created),
        "resp_code": resp_code,
        "resp_message": resp_message,
        "payment": {
            "authentication": {
                "method": "POST",
                "url": authenticate_url(config, txn),
                "params": params,
            }
        },
        "payment_info": {
            "payment_method_type": "CARD",
            "payment_method": txn.card.brand,
            "card": card(txn),
        },
    });
    if part == TxnPart::Submit {
        body["payment_gateway_response"] = gateway_response(txn);
        body["refunds"] = json!([]);
    }
    body
}

/// The card as the transaction bodies show it (the union of the documented samples' keys).
fn card(txn: &Txn) -> Value {
    let c = &txn.card;
    json!({
        "last_four_digits": c.last_four,
        "card_isin": c.isin,
        "expiry_month": c.expiry_month,
        "expiry_year": c.expiry_year,
        "name_on_card": c.name,
        "card_type": "CREDIT",
        "extended_card_type": "CREDIT",
        "card_issuer": c.issuer,
        "card_issuer_country": "INDIA",
        "card_brand": c.brand,
        "card_reference": "",
        "card_fingerprint": c.fingerprint,
        "payment_account_reference": "",
        "token_type": if c.tokenized { "CARD_TOKEN" } else { "" },
        "tokens": [],
        "using_token": c.tokenized,
        "using_saved_card": c.tokenized,
        "saved_to_locker": false,
    })
}

/// `payment_gateway_response`: present once the bank has answered, `null` before.
fn gateway_response(txn: &Txn) -> Value {
    let (code, message) = match &txn.status {
        Status::Charged | Status::Authorized => ("00", "Approved"),
        Status::AuthorizationFailed | Status::JuspayDeclined => ("05", "Do not honour"),
        Status::AuthenticationFailed => ("00", "Authentication failed"),
        _ => return Value::Null,
    };
    json!({
        "rrn": format!("6330{}", &txn.numbers[..8]),
        "epg_txn_id": &txn.numbers[8..18],
        "auth_id_code": &txn.numbers[18..24],
        "resp_code": code,
        "resp_message": message,
        "gateway_response_map": { "reason_code": if code == "00" { "100" } else { "203" } },
    })
}

/// `GET /orders/{order_id}`.
pub(crate) fn order(config: &SandboxConfig, order: &Order, latest: Option<&Txn>) -> Value {
    let status = latest.map_or(Status::New, |t| t.status.clone());
    let succeeded = status.is_success();
    let (resp_code, resp_message) = match latest {
        Some(t) if t.status.is_final() => (
            json!(if succeeded { "00" } else { "05" }),
            json!(if succeeded {
                "Transaction successful"
            } else {
                "Transaction declined"
            }),
        ),
        _ => (Value::Null, Value::Null),
    };
    let mut body = json!({
        "id": order.internal_id,
        "order_id": order.order_id,
        "merchant_id": config.merchant_id,
        "customer_id": order.customer_id,
        "status": status.as_str(),
        "status_id": status_id(&status),
        "amount": order.amount,
        "currency": config.currency,
        "refunded": false,
        "amount_refunded": 0,
    });
    let Some(t) = latest else {
        return body;
    };
    let more = json!({
        "txn_id": t.txn_id,
        "txn_uuid": t.txn_uuid,
        "payment_method_type": "CARD",
        "payment_method": t.card.brand,
        "auth_type": if t.flow == CardFlow::ThreeDsFailover { "THREE_DS" } else { "OTP" },
        "resp_code": resp_code,
        "resp_message": resp_message,
        "bank_error_code": "",
        "bank_error_message": "",
        "card": {
            "last_four_digits": t.card.last_four,
            "card_isin": t.card.isin,
            "card_brand": t.card.brand,
        },
        "txn_detail": {
            "txn_id": t.txn_id,
            "order_id": order.order_id,
            "status": t.status.as_str(),
            "gateway": GATEWAY,
            "created": rfc3339(t.created),
        },
        "payment_gateway_response": gateway_response(t),
    });
    if let (Value::Object(body), Value::Object(more)) = (&mut body, more) {
        body.extend(more);
    }
    body
}

/// The error envelopes, one per documented kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// 401 `access_denied`.
    AccessDenied,
    /// 400 `MISSING_MANDATORY_PARAMETER` (with the fields).
    Missing,
    /// 404: unknown transaction.
    TxnNotFound,
    /// 404: no such endpoint.
    RouteNotFound,
    /// 400 `NOT_FOUND` / `RESOURCE_NOT_FOUND`: unknown order.
    OrderNotFound,
    /// 400 `max_limit_exceeded`: no more OTP sends.
    SendLimit,
    /// 400 `max_limit_exceeded`: no more OTP tries.
    AttemptLimit,
    /// 400 `LP_INCORRECT_OTP`.
    WrongOtp,
    /// 400 `INVALID_INPUT`.
    InvalidInput,
    /// 400 `INVALID_ACTION`.
    InvalidAction,
    /// 400 `DUPLICATE_REQUEST`.
    Duplicate,
    /// 500.
    Internal,
}

impl ErrorKind {
    pub(crate) fn http_status(self) -> u16 {
        match self {
            ErrorKind::AccessDenied => 401,
            ErrorKind::TxnNotFound | ErrorKind::RouteNotFound => 404,
            ErrorKind::Internal => 500,
            _ => 400,
        }
    }
}

/// An error envelope. `message` replaces the default message; `fields` lists the missing
/// fields of [`ErrorKind::Missing`].
pub(crate) fn error(kind: ErrorKind, message: &str, fields: &[&str], request_id: &str) -> Value {
    let info = |code: &str, category: &str| json!({ "code": code, "category": category, "request_id": request_id });
    let simple = |status: &str, code: &str| json!({ "status": status, "error_code": code, "error_message": message });
    let with_info = |status: &str, code: &str, info_code: &str, category: &str| {
        let mut v = simple(status, code);
        v["error_info"] = info(info_code, category);
        v
    };
    match kind {
        ErrorKind::AccessDenied => simple("error", "access_denied"),
        ErrorKind::SendLimit | ErrorKind::AttemptLimit => {
            simple("Invalid Request", "max_limit_exceeded")
        }
        ErrorKind::WrongOtp => simple("Bad Request", "LP_INCORRECT_OTP"),
        ErrorKind::Missing => {
            let mut v = with_info(
                "Bad Request",
                "MISSING_MANDATORY_PARAMETER",
                "MISSING_MANDATORY_PARAMETER",
                "USER_ERROR",
            );
            v["error_info"]["fields"] = fields
                .iter()
                .map(|f| json!({ "field_name": f, "reason": "missing" }))
                .collect();
            v
        }
        ErrorKind::TxnNotFound => with_info(
            "invalid_request_error",
            "transaction_not_found",
            "RESOURCE_NOT_FOUND",
            "USER_ERROR",
        ),
        ErrorKind::RouteNotFound => with_info(
            "invalid_request_error",
            "not_found",
            "RESOURCE_NOT_FOUND",
            "USER_ERROR",
        ),
        ErrorKind::OrderNotFound => json!({
            "status": "NOT_FOUND",
            "status_id": 40,
            "error_code": "RESOURCE_NOT_FOUND",
            "error_message": message,
            "error_info": {
                "code": "RESOURCE_NOT_FOUND",
                "category": "USER_ERROR",
                "developer_message": "No order found for the given order_id",
                "user_message": "Something went wrong",
                "request_id": request_id,
                "fields": [],
            }
        }),
        ErrorKind::InvalidInput => with_info(
            "invalid_request_error",
            "invalid_input",
            "INVALID_INPUT",
            "USER_ERROR",
        ),
        ErrorKind::InvalidAction => with_info(
            "invalid_request_error",
            "invalid_action",
            "INVALID_ACTION",
            "USER_ERROR",
        ),
        ErrorKind::Duplicate => with_info(
            "invalid_request_error",
            "Another request is in progress for this transaction",
            "DUPLICATE_REQUEST",
            "USER_ERROR",
        ),
        ErrorKind::Internal => with_info(
            "error",
            "internal_server_error",
            "INTERNAL_SERVER_ERROR",
            "SERVER_ERROR",
        ),
    }
}

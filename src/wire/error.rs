//! Every error's wire form, and [`WireError`], what the wire entry points refuse.

use serde_json::{json, Value};

use super::{coded, merge, nest, ToWire};
use crate::driver::DriveError;
use crate::error::{
    ApiError, BaseUrlError, ConfigError, ForeignAnswer, IdError, InputError, Malformed, OtpError,
    ResponseError, StartError,
};
use crate::payment::SettleError;
use crate::settle::{AmountError, BinError, ReturnUrlError, SecretError, WebhookError};
use crate::store::{Rejection, StoreError};

/// Input given to a wire entry point ([`command`](super::command), [`reply`](super::reply),
/// ...) was refused. Like every error, it never repeats a secret (an OTP, a card number, the
/// API key): JSON errors give only where they are (line and column), not what was there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Not JSON (or truncated): fix the caller.
    #[error("not JSON (line {line}, column {column})")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// JSON of the wrong shape: an unknown command or kind, a missing or mistyped field, an
    /// unknown field, or a number out of range.
    #[error("JSON of the wrong shape (line {line}, column {column}); see docs/protocol.md")]
    Shape {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A stored record that does not load: not JSON, or a state no payment reaches. Inspect
    /// it; never overwrite it.
    #[error("the stored record does not load (line {line}, column {column}): inspect it")]
    Record {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A token that is not one this crate wrote: hand it back exactly as the request gave it.
    #[error("not a request token: hand it back exactly as the request gave it")]
    Token,
    /// `body_base64` is not standard base64 (with padding).
    #[error("body_base64 is not standard base64 with padding")]
    Base64,
    /// The OTP was refused.
    #[error(transparent)]
    Otp(#[from] OtpError),
    /// An id of the start request was refused.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The expected amount or currency was refused.
    #[error(transparent)]
    Amount(#[from] AmountError),
    /// A settlement's secret (the response key, webhook credentials) was refused.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A return URL did not verify (unsigned, tampered, unreadable).
    #[error(transparent)]
    Return(#[from] ReturnUrlError),
    /// A webhook did not verify (credentials, malformed body).
    #[error(transparent)]
    Webhook(#[from] WebhookError),
}

impl WireError {
    /// A stable snake_case code: `wire_syntax`, `wire_shape`, `bad_record`, `bad_token`,
    /// `bad_base64`, or the nested error's own code (`otp_length`, `id_empty`,
    /// `base_url_scheme`, `bad_api_key`, `amount_negative`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            WireError::Syntax { .. } => "wire_syntax",
            WireError::Shape { .. } => "wire_shape",
            WireError::Record { .. } => "bad_record",
            WireError::Token => "bad_token",
            WireError::Base64 => "bad_base64",
            WireError::Otp(e) => e.code(),
            WireError::Id(e) => e.code(),
            WireError::Config(e) => e.code(),
            WireError::Amount(e) => e.code(),
            WireError::Secret(e) => e.code(),
            WireError::Return(e) => e.code(),
            WireError::Webhook(e) => e.code(),
        }
    }

    /// The error of JSON that did not parse as the form wanted.
    pub(crate) fn json(e: &serde_json::Error) -> Self {
        let (line, column) = (e.line(), e.column());
        match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                WireError::Syntax { line, column }
            }
            _ => WireError::Shape { line, column },
        }
    }
}

impl ToWire for WireError {
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        match self {
            WireError::Syntax { line, column }
            | WireError::Shape { line, column }
            | WireError::Record { line, column } => {
                m.insert("line".into(), json!(line));
                m.insert("column".into(), json!(column));
            }
            WireError::Token | WireError::Base64 => {}
            WireError::Otp(e) => merge(&mut m, e.to_wire()),
            WireError::Id(e) => merge(&mut m, e.to_wire()),
            WireError::Config(e) => merge(&mut m, e.to_wire()),
            WireError::Amount(e) => merge(&mut m, e.to_wire()),
            WireError::Secret(e) => merge(&mut m, e.to_wire()),
            WireError::Return(e) => merge(&mut m, e.to_wire()),
            WireError::Webhook(e) => merge(&mut m, e.to_wire()),
        }
        Value::Object(m)
    }
}

impl ToWire for IdError {
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        m.insert("field".into(), self.field().into());
        match self {
            IdError::TooLong { max, .. } => {
                m.insert("max".into(), json!(max));
            }
            IdError::ForbiddenCharacter { character, .. } => {
                m.insert("character".into(), json!(character));
            }
            _ => {}
        }
        Value::Object(m)
    }
}

impl ToWire for BaseUrlError {
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        if let BaseUrlError::Character { character } | BaseUrlError::PathCharacter { character } =
            self
        {
            m.insert("character".into(), json!(character.to_string()));
        }
        Value::Object(m)
    }
}

impl ToWire for ConfigError {
    fn to_wire(&self) -> Value {
        match self {
            ConfigError::BaseUrl(e) => e.to_wire(),
            ConfigError::Header(e) => e.to_wire(),
            ConfigError::ApiKey => Value::Object(coded(self.code())),
        }
    }
}

impl ToWire for OtpError {
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        if let OtpError::Length(n) = self {
            m.insert("length".into(), json!(n));
        }
        Value::Object(m)
    }
}

impl ToWire for ApiError {
    /// `api_error` with the bank's texts: `http_status`, and when present `status`,
    /// `error_code`, `error_message`, `info_code`, `category`, `request_id`.
    fn to_wire(&self) -> Value {
        let mut m = coded("api_error");
        m.insert("http_status".into(), json!(self.http_status()));
        for (name, text) in [
            ("status", self.status()),
            ("error_code", self.error_code()),
            ("error_message", self.error_message()),
            ("info_code", self.info_code()),
            ("category", self.category()),
            ("request_id", self.request_id()),
        ] {
            if let Some(text) = text {
                m.insert(name.into(), text.into());
            }
        }
        Value::Object(m)
    }
}

impl ToWire for Malformed {
    /// The fields of a malformed body: `problem` and `line`/`column` or `field`.
    fn to_wire(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("problem".into(), self.code().into());
        match self {
            Malformed::Syntax { line, column } | Malformed::Shape { line, column } => {
                m.insert("line".into(), json!(line));
                m.insert("column".into(), json!(column));
            }
            Malformed::Missing(f) | Malformed::BadId(f) | Malformed::BadUrl(f) => {
                m.insert("field".into(), json!(f));
            }
        }
        Value::Object(m)
    }
}

impl ToWire for ForeignAnswer {
    fn to_wire(&self) -> Value {
        let mut m = coded("foreign_answer");
        m.insert("field".into(), self.field.into());
        Value::Object(m)
    }
}

impl ToWire for ResponseError {
    fn to_wire(&self) -> Value {
        match self {
            ResponseError::Api(e) => e.to_wire(),
            ResponseError::Malformed {
                http_status,
                problem,
            } => {
                let mut m = coded(self.code());
                m.insert("http_status".into(), json!(http_status));
                merge(&mut m, problem.to_wire());
                Value::Object(m)
            }
            ResponseError::UnexpectedStatus(s) => {
                let mut m = coded(self.code());
                m.insert("http_status".into(), json!(s));
                Value::Object(m)
            }
            ResponseError::Foreign(f) => f.to_wire(),
        }
    }
}

impl ToWire for InputError {
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        match self {
            InputError::OtherRecord { got }
            | InputError::AlreadyFinal { got }
            | InputError::NothingInFlight { got } => {
                m.insert("token".into(), got.to_string().into());
            }
            InputError::StaleToken { got, in_flight } => {
                m.insert("token".into(), got.to_string().into());
                m.insert("in_flight".into(), in_flight.to_string().into());
            }
            InputError::Foreign(f) => merge(&mut m, f.to_wire()),
        }
        Value::Object(m)
    }
}

impl ToWire for StartError {
    fn to_wire(&self) -> Value {
        match self {
            StartError::Id(e) => e.to_wire(),
            StartError::Response(e) => {
                let mut m = coded(self.code());
                nest(&mut m, e.to_wire());
                Value::Object(m)
            }
        }
    }
}

impl ToWire for SettleError {
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        if let SettleError::OtherOrder { got, expected } = self {
            m.insert("got".into(), got.as_str().into());
            m.insert("expected".into(), expected.as_str().into());
        }
        Value::Object(m)
    }
}

impl ToWire for SecretError {
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        match self {
            SecretError::Empty { what } => {
                m.insert("what".into(), json!(what));
            }
            SecretError::Forbidden { what, reason } => {
                m.insert("what".into(), json!(what));
                m.insert("forbidden".into(), json!(reason));
            }
        }
        Value::Object(m)
    }
}

impl ToWire for ReturnUrlError {
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        match self {
            ReturnUrlError::TooLarge { max } | ReturnUrlError::TooManyParameters { max } => {
                m.insert("max".into(), json!(max));
            }
            ReturnUrlError::DuplicateParameter { name } => {
                m.insert("name".into(), json!(name));
            }
            ReturnUrlError::UnsupportedAlgorithm { algorithm } => {
                m.insert("algorithm".into(), json!(algorithm));
            }
            ReturnUrlError::MissingField(f) => {
                m.insert("field".into(), json!(f));
            }
            ReturnUrlError::UnsafeOrderId(e) => return e.to_wire(),
            _ => {}
        }
        Value::Object(m)
    }
}

impl ToWire for WebhookError {
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        match self {
            WebhookError::TooLarge { max } => {
                m.insert("max".into(), json!(max));
            }
            WebhookError::Malformed(p) => merge(&mut m, p.to_wire()),
            _ => {}
        }
        Value::Object(m)
    }
}

impl ToWire for AmountError {
    fn to_wire(&self) -> Value {
        Value::Object(coded(self.code()))
    }
}

impl ToWire for BinError {
    fn to_wire(&self) -> Value {
        match self {
            BinError::Id(e) => e.to_wire(),
            BinError::Length(n) => {
                let mut m = coded(self.code());
                m.insert("length".into(), json!(n));
                Value::Object(m)
            }
            BinError::NotDigits => Value::Object(coded(self.code())),
        }
    }
}

impl ToWire for Rejection {
    /// `{"code": ...}` of the reason, with `len`, `expected`/`new` or `revision`. A
    /// serializer's message is not given (it may quote the record).
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        match self {
            Rejection::KeyTooLong { len } => {
                m.insert("len".into(), json!(len));
            }
            Rejection::RevisionNotAdvanced { expected, new } => {
                m.insert("expected".into(), json!(expected));
                m.insert("new".into(), json!(new));
            }
            Rejection::RevisionTooLarge { revision } => {
                m.insert("revision".into(), json!(revision));
            }
            _ => {}
        }
        Value::Object(m)
    }
}

impl ToWire for StoreError {
    /// The code with `key` (when the error has one), `found` for a conflict, the rejection
    /// as `reason` and its fields. The database's own error is not given (no
    /// `Box<dyn Error>` crosses): log [`Display`](std::fmt::Display) on the Rust side.
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        if let Some(key) = self.key() {
            m.insert("key".into(), key.into());
        }
        match self {
            StoreError::Conflict { found, .. } => {
                m.insert("found".into(), json!(found));
            }
            StoreError::Rejected { reason, .. } => nest(&mut m, reason.to_wire()),
            _ => {}
        }
        Value::Object(m)
    }
}

#[cfg(feature = "http")]
impl ToWire for crate::transport::TransportError {
    /// The code with `may_have_been_sent`. The client's own error is not given.
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        m.insert(
            "may_have_been_sent".into(),
            self.may_have_been_sent().into(),
        );
        Value::Object(m)
    }
}

impl ToWire for DriveError {
    /// The code ([`DriveError::code`]) with `key` (or `order_id`), `http_status`, and the
    /// nested error flattened (`reason` and its fields); a refusal's or settle error's own
    /// form with `key`; `overtaken` with the `outcome`'s form.
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        m.insert("http_status".into(), json!(self.http_status()));
        match self {
            DriveError::NotFound { key }
            | DriveError::Busy { key, .. }
            | DriveError::Late { key } => {
                m.insert("key".into(), key.as_str().into());
            }
            DriveError::BadKey { key, reason } => {
                m.insert("key".into(), key.as_str().into());
                nest(&mut m, reason.to_wire());
            }
            DriveError::UnknownOrder { order_id } => {
                m.insert("order_id".into(), order_id.as_str().into());
            }
            DriveError::NotApplied { key, source } => {
                m.insert("key".into(), key.as_str().into());
                merge(&mut m, source.to_wire());
            }
            DriveError::Refused { key, refusal, .. } => {
                m.insert("key".into(), key.as_str().into());
                merge(&mut m, refusal.to_wire());
            }
            DriveError::Overtaken { key, outcome } => {
                m.insert("key".into(), key.as_str().into());
                m.insert("outcome".into(), outcome.to_wire());
            }
            DriveError::Unanswerable { key, source } => {
                m.insert("key".into(), key.as_str().into());
                nest(&mut m, source.to_wire());
            }
            DriveError::Unauthorized { key, source } => {
                m.insert("key".into(), key.as_str().into());
                merge(&mut m, source.to_wire());
            }
            DriveError::Store { key, sent, source } => {
                m.insert("key".into(), key.as_str().into());
                m.insert("sent".into(), json!(sent));
                nest(&mut m, source.to_wire());
            }
        }
        Value::Object(m)
    }
}

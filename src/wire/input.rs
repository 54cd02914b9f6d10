//! The entry points that read what a wrapper hands in: commands, replies, tokens, stored
//! records, times. Every failure is a coded [`WireError`]; none panics.

use serde::Deserialize;
use time::OffsetDateTime;

use super::base64;
use super::WireError;
use crate::driver::Command;
use crate::exchange::Reply;
use crate::otp::Otp;
use crate::outcome::SendFailure;
use crate::payment::Payment;
use crate::token::Token;

/// A secret read from JSON (an OTP, the API key, card data): wiped when dropped.
pub(crate) struct Secret(pub(crate) zeroize::Zeroizing<String>);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Secret(zeroize::Zeroizing::new(s)))
    }
}

/// Reads JSON of the form `T`, refusing unknown fields.
pub(crate) fn parse<'a, T: Deserialize<'a>>(json: &'a [u8]) -> Result<T, WireError> {
    serde_json::from_slice(json).map_err(|e| WireError::json(&e))
}

#[derive(Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
enum CommandForm {
    Submit { otp: Secret },
    Resend,
    CheckStatus,
    Start { source: super::config::SourceForm },
}

/// A command: `{"command":"submit","otp":"123456"}`, `{"command":"resend"}`,
/// `{"command":"check_status"}`, `{"command":"start","source":{...}}` (a start made again
/// with only the card, the source as in a start request). The OTP is checked here
/// (`otp_length`, `otp_not_digits`) and never repeated in an error.
pub fn command(json: &[u8]) -> Result<Command, WireError> {
    Ok(match parse::<CommandForm>(json)? {
        CommandForm::Submit { otp } => Command::Submit(Otp::new(&otp.0)?),
        CommandForm::Resend => Command::Resend,
        CommandForm::CheckStatus => Command::CheckStatus,
        CommandForm::Start { source } => Command::Start(source.into_source()),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReplyKind {
    Answer,
    NotSent,
    MaybeSent,
}

/// Read flat (no buffering of an internally tagged enum): the kind, then what it allows.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyForm<'a> {
    kind: ReplyKind,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default, borrow)]
    body: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    body_base64: Option<std::borrow::Cow<'a, str>>,
}

/// A reply: `{"kind":"answer","status":200,"body":"..."}` (a body that is not UTF-8 as
/// `body_base64` instead; neither is an empty body), `{"kind":"not_sent"}`,
/// `{"kind":"maybe_sent"}`.
pub fn reply(json: &[u8]) -> Result<Reply, WireError> {
    let form: ReplyForm<'_> = parse(json)?;
    let shape = WireError::Shape { line: 1, column: 1 };
    let failed = |f| match (form.status, &form.body, &form.body_base64) {
        (None, None, None) => Ok(Reply::Failed(f)),
        _ => Err(shape.clone()),
    };
    match form.kind {
        ReplyKind::NotSent => failed(SendFailure::NotSent),
        ReplyKind::MaybeSent => failed(SendFailure::MaybeSent),
        ReplyKind::Answer => {
            let status = form.status.ok_or(shape.clone())?;
            let body = match (form.body, form.body_base64) {
                (Some(_), Some(_)) => return Err(shape),
                (Some(b), None) => b.into_owned().into_bytes(),
                (None, Some(b)) => base64::decode(&b).ok_or(WireError::Base64)?,
                (None, None) => Vec::new(),
            };
            Ok(Reply::Answer { status, body })
        }
    }
}

/// A token, as the request's `token` gave it (`submit@00000000000000ff/r3/0a1b2c3d`).
pub fn token(text: &str) -> Result<Token, WireError> {
    text.parse().map_err(|_| WireError::Token)
}

/// A stored record (the JSON a store keeps). One that does not load is `bad_record`:
/// inspect it, never overwrite it.
pub fn record(json: &[u8]) -> Result<Payment, WireError> {
    serde_json::from_slice(json).map_err(|e| WireError::Record {
        line: e.line(),
        column: e.column(),
    })
}

/// An instant given as Unix milliseconds (`now_ms`). Out of the range of years -9999 to
/// 9999: `wire_shape`.
pub fn time_from_ms(ms: i64) -> Result<OffsetDateTime, WireError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| WireError::Shape { line: 1, column: 1 })
}

//! The control API's input: a JSON object read field by field, with one error form
//! (`{"code", "message"}`, a stable code and an HTTP status) for whatever is wrong with it.
//! Pure: no IO, never a panic, whatever the bytes.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::config::CardFlow;
use super::fault::{Endpoint, Fault};
use super::settle::WebhookFault;
use super::wire::HttpResponse;

/// The longest delay a fault can ask for: 10 minutes.
pub(crate) const MAX_DELAY_MS: u64 = 10 * 60 * 1000;
/// The most copies of a fault one control request queues.
pub(crate) const MAX_TIMES: u64 = 1000;
/// The most faults (or card flows, or BIN prefixes) kept waiting at once.
pub(crate) const MAX_QUEUED: usize = 10_000;
/// The longest id, card or URL taken.
pub(crate) const MAX_TEXT: usize = 2048;

/// What is wrong with a control request.
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl Problem {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_value`: a field of the right name with a value that cannot be used.
    pub(crate) fn invalid(field: &str, why: impl std::fmt::Display) -> Problem {
        Problem::new(400, "invalid_value", format!("{field}: {why}"))
    }

    pub(crate) fn missing(field: &str) -> Problem {
        Problem::new(400, "missing_field", format!("{field} is required"))
    }

    pub(crate) fn into_response(self) -> HttpResponse {
        HttpResponse::json(
            self.status,
            &json!({ "code": self.code, "message": self.message }),
        )
    }
}

/// A JSON object body, its fields checked against the names a route takes.
pub(crate) struct Input {
    map: Map<String, Value>,
}

impl Input {
    /// An empty body is an empty object; anything else must be a JSON object whose fields
    /// are all in `allowed`.
    pub(crate) fn parse(body: &[u8], allowed: &[&str]) -> Result<Input, Problem> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input { map: Map::new() });
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Problem::new(400, "invalid_json", format!("the body is not JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(Problem::new(
                400,
                "invalid_json",
                "the body must be a JSON object",
            ));
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            let shown: String = unknown.chars().take(64).collect();
            return Err(Problem::new(
                400,
                "unknown_field",
                format!(
                    "unknown field {shown:?}; this route takes: {}",
                    allowed.join(", ")
                ),
            ));
        }
        Ok(Input { map })
    }

    pub(crate) fn has(&self, field: &str) -> bool {
        self.map.contains_key(field)
    }

    /// A string field (absent: `None`; `null` is refused, see [`Input::nullable_text`]).
    pub(crate) fn text(&self, field: &str) -> Result<Option<&str>, Problem> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Err(Problem::invalid(field, "empty")),
            Some(Value::String(s)) if s.len() > MAX_TEXT => Err(Problem::invalid(
                field,
                format_args!("longer than {MAX_TEXT} bytes"),
            )),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Problem::invalid(field, "must be a string")),
        }
    }

    /// A string field that may be `null` (to clear a setting): absent `None`, `null`
    /// `Some(None)`.
    pub(crate) fn nullable_text(&self, field: &str) -> Result<Option<Option<&str>>, Problem> {
        match self.map.get(field) {
            Some(Value::Null) => Ok(Some(None)),
            _ => Ok(self.text(field)?.map(Some)),
        }
    }

    pub(crate) fn required_text(&self, field: &str) -> Result<&str, Problem> {
        self.text(field)?.ok_or_else(|| Problem::missing(field))
    }

    /// A whole number from 0 to `max`.
    pub(crate) fn number(&self, field: &str, max: u64) -> Result<Option<u64>, Problem> {
        match self.map.get(field) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n <= max => Ok(Some(n)),
                _ => Err(Problem::invalid(
                    field,
                    format_args!("must be a whole number from 0 to {max}"),
                )),
            },
        }
    }

    pub(crate) fn flag(&self, field: &str) -> Result<Option<bool>, Problem> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Problem::invalid(field, "must be true or false")),
        }
    }

    pub(crate) fn amount(&self, field: &str) -> Result<Option<f64>, Problem> {
        match self.map.get(field) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(a) if (0.0..=1e12).contains(&a) => Ok(Some(a)),
                _ => Err(Problem::invalid(field, "must be a number from 0 to 1e12")),
            },
        }
    }

    pub(crate) fn object(&self, field: &str) -> Result<Option<Input>, Problem> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Input { map: map.clone() })),
            Some(_) => Err(Problem::invalid(field, "must be a JSON object")),
        }
    }

    /// The fields present, to check sub-objects.
    pub(crate) fn only(&self, field: &str, allowed: &[&str]) -> Result<(), Problem> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(Problem::invalid(
                field,
                format_args!(
                    "unknown field {:?}; takes: {}",
                    k.chars().take(64).collect::<String>(),
                    allowed.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }

    /// `times`: how many copies to queue, 1 to [`MAX_TIMES`], default 1.
    pub(crate) fn times(&self) -> Result<u64, Problem> {
        match self.number("times", MAX_TIMES)? {
            None => Ok(1),
            Some(0) => Err(Problem::invalid("times", "must be at least 1")),
            Some(n) => Ok(n),
        }
    }

    fn delay(&self, fault: &str) -> Result<Duration, Problem> {
        let ms = self
            .number("delay_ms", MAX_DELAY_MS)?
            .ok_or_else(|| Problem::invalid("delay_ms", format_args!("{fault} needs it")))?;
        Ok(Duration::from_millis(ms))
    }

    /// The `fault` of `POST /_sandbox/faults`, with its parameter (`delay_ms`, `bytes`,
    /// `status`), refusing a parameter the fault does not take.
    pub(crate) fn fault(&self) -> Result<Fault, Problem> {
        let name = self.required_text("fault")?;
        let fault = match name {
            "internal_error" => Fault::InternalError,
            "internal_error_after_apply" => Fault::InternalErrorAfterApply,
            "duplicate" => Fault::Duplicate,
            "slow" => Fault::Slow(self.delay(name)?),
            "drop_response" => Fault::DropResponse,
            "drop_request" => Fault::DropRequest,
            "reset" => Fault::Reset,
            "truncate_body" => Fault::TruncateBody,
            "stall_body" => Fault::StallBody(self.delay(name)?),
            "oversized" => {
                let most = Fault::MAX_OVERSIZED as u64;
                let bytes = self
                    .number("bytes", most)?
                    .ok_or_else(|| Problem::invalid("bytes", "oversized needs it"))?;
                Fault::Oversized(usize::try_from(bytes).unwrap_or(Fault::MAX_OVERSIZED))
            }
            "redirect" => match self.number("status", 999)? {
                None => Fault::Redirect(302),
                Some(s @ (301 | 302 | 303 | 307 | 308)) => Fault::Redirect(s as u16),
                Some(_) => {
                    return Err(Problem::invalid(
                        "status",
                        "a redirect is 301, 302, 303, 307 or 308",
                    ))
                }
            },
            other => {
                return Err(Problem::invalid(
                    "fault",
                    format_args!(
                        "unknown fault {:?}; one of: internal_error, \
                         internal_error_after_apply, duplicate, slow, drop_response, \
                         drop_request, reset, truncate_body, stall_body, oversized, redirect",
                        other.chars().take(64).collect::<String>()
                    ),
                ))
            }
        };
        let takes: &[&str] = match fault {
            Fault::Slow(_) | Fault::StallBody(_) => &["delay_ms"],
            Fault::Oversized(_) => &["bytes"],
            Fault::Redirect(_) => &["status"],
            _ => &[],
        };
        for param in ["delay_ms", "bytes", "status"] {
            if self.has(param) && !takes.contains(&param) {
                return Err(Problem::invalid(
                    param,
                    format_args!("{} takes no {param}", fault.name()),
                ));
            }
        }
        Ok(fault)
    }

    /// The `endpoint` a fault waits for (`None`: any).
    pub(crate) fn endpoint(&self) -> Result<Option<Endpoint>, Problem> {
        match self.text("endpoint")? {
            None => Ok(None),
            Some(name) => Endpoint::from_name(name).map(Some).ok_or_else(|| {
                Problem::invalid(
                    "endpoint",
                    "one of: start, resend, submit, order_status, bank_page, card_bin",
                )
            }),
        }
    }

    /// The `fault` of `POST /_sandbox/webhook-faults`.
    pub(crate) fn webhook_fault(&self) -> Result<WebhookFault, Problem> {
        let fault = match self.required_text("fault")? {
            "duplicate" => WebhookFault::Duplicate,
            "deliver_after_next" => WebhookFault::DeliverAfterNext,
            "delay" => WebhookFault::Delay(self.delay("delay")?),
            _ => {
                return Err(Problem::invalid(
                    "fault",
                    "one of: duplicate, deliver_after_next, delay",
                ))
            }
        };
        if self.has("delay_ms") && !matches!(fault, WebhookFault::Delay(_)) {
            return Err(Problem::invalid("delay_ms", "only delay takes it"));
        }
        Ok(fault)
    }

    /// The `flow` of `PUT /_sandbox/cards/{card}`.
    pub(crate) fn flow(&self) -> Result<CardFlow, Problem> {
        let name = self.required_text("flow")?;
        CardFlow::from_name(name).ok_or_else(|| {
            Problem::invalid(
                "flow",
                "one of: direct_otp, three_ds_failover, decline_after_otp, \
                 slow_authorization, no_sms",
            )
        })
    }
}

/// What a fault is, as the control API shows it.
pub(crate) fn describe_fault(fault: Fault) -> Value {
    let mut shown = json!({ "fault": fault.name() });
    match fault {
        Fault::Slow(d) | Fault::StallBody(d) => {
            shown["delay_ms"] = json!(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        }
        Fault::Oversized(n) => shown["bytes"] = json!(n),
        Fault::Redirect(s) => shown["status"] = json!(s),
        _ => {}
    }
    shown
}

/// Percent-decodes one path segment (`%XX` only; `+` stays a plus). `None` for a bad
/// escape or bytes that are not UTF-8.
pub(crate) fn path_segment(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_decode_or_are_refused() {
        assert_eq!(path_segment("ord_1").as_deref(), Some("ord_1"));
        assert_eq!(path_segment("a%20b%2Fc+d").as_deref(), Some("a b/c+d"));
        for bad in ["%", "%2", "%zz", "%+1", "%FF", "%C3"] {
            assert_eq!(path_segment(bad), None, "{bad}");
        }
    }

    #[test]
    fn faults_take_only_their_own_parameters() {
        let parse = |body: &str| {
            Input::parse(
                body.as_bytes(),
                &["fault", "delay_ms", "bytes", "status", "times"],
            )
            .and_then(|i| i.fault())
        };
        assert_eq!(
            parse(r#"{"fault":"slow","delay_ms":250}"#).unwrap(),
            Fault::Slow(Duration::from_millis(250))
        );
        assert_eq!(
            parse(r#"{"fault":"redirect"}"#).unwrap(),
            Fault::Redirect(302)
        );
        for (body, code) in [
            (r#"{"fault":"slow"}"#, "invalid_value"),
            (r#"{"fault":"reset","delay_ms":1}"#, "invalid_value"),
            (r#"{"fault":"redirect","status":200}"#, "invalid_value"),
            (r#"{"fault":"oversized","bytes":-1}"#, "invalid_value"),
            (r#"{"fault":"slow","delay_ms":1e3}"#, "invalid_value"),
            (r#"{"fault":"nope"}"#, "invalid_value"),
            (r#"{"fault":7}"#, "invalid_value"),
            (r#"{}"#, "missing_field"),
            (r#"{"fault":"reset","x":1}"#, "unknown_field"),
            (r#"[1]"#, "invalid_json"),
            (r#"{"fault":"#, "invalid_json"),
        ] {
            let problem = parse(body).unwrap_err();
            assert_eq!((problem.status, problem.code), (400, code), "{body}");
        }
    }
}

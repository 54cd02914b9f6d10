//! The JSON Schema of every wire form, built here so it cannot drift from the code: a test
//! compares it with `docs/protocol.schema.json` and validates real values against it.

use serde_json::{json, Map, Value};

fn string() -> Value {
    json!({"type": "string"})
}
fn uint() -> Value {
    json!({"type": "integer", "minimum": 0})
}
fn int() -> Value {
    json!({"type": "integer"})
}
fn boolean() -> Value {
    json!({"type": "boolean"})
}
fn nullable(t: &str) -> Value {
    json!({"type": [t, "null"]})
}
fn one_of(values: &[&str]) -> Value {
    json!({"enum": values})
}

fn one_of_or_null(values: &[&str]) -> Value {
    let mut all: Vec<Value> = values.iter().map(|v| json!(v)).collect();
    all.push(Value::Null);
    json!({ "enum": all })
}

/// An object with exactly these fields (`true`: required).
fn object(fields: &[(&str, Value, bool)]) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for (name, schema, req) in fields {
        props.insert((*name).into(), schema.clone());
        if *req {
            required.push(*name);
        }
    }
    json!({"type": "object", "properties": props, "required": required,
           "additionalProperties": false})
}

/// A coded result: `{"code": code, ...fields}`.
fn coded(code: &str, fields: &[(&str, Value, bool)]) -> Value {
    let mut all = vec![("code", json!({"const": code}), true)];
    all.extend(fields.iter().cloned());
    object(&all)
}

/// The fields a nested response error brings (all optional: which depends on its code).
fn response_fields() -> Vec<(&'static str, Value, bool)> {
    let s = |n| (n, string(), false);
    vec![
        ("reason", string(), true),
        ("http_status", uint(), false),
        s("status"),
        s("error_code"),
        s("error_message"),
        s("info_code"),
        s("category"),
        s("request_id"),
        (
            "problem",
            one_of(&["syntax", "shape", "missing", "bad_id", "bad_url"]),
            false,
        ),
        ("line", uint(), false),
        ("column", uint(), false),
        s("field"),
    ]
}

fn status() -> (&'static str, Value, bool) {
    ("status", string(), true)
}

fn integrity() -> Vec<(&'static str, Value, bool)> {
    vec![
        ("expected_amount", string(), true),
        ("expected_currency", string(), true),
        ("found_amount", nullable("string"), true),
        ("found_currency", nullable("string"), true),
    ]
}

fn disagreement() -> Vec<(&'static str, Value, bool)> {
    vec![
        (
            "source",
            one_of(&["answer", "order_status", "return_url", "webhook"]),
            true,
        ),
        ("said", string(), true),
        ("status", string(), true),
        ("was_paid", boolean(), true),
        ("paid", boolean(), true),
    ]
}

fn outcome() -> Value {
    let mut check = response_fields();
    check[0].2 = false;
    check.insert(
        0,
        (
            "why",
            one_of(&["maybe_sent", "response", "stale", "amount_unchecked"]),
            true,
        ),
    );
    json!({"oneOf": [
        coded("otp_sent", &[("sends_left", uint(), true)]),
        coded("send_limit_reached", &[]),
        coded("wrong_otp", &[("attempts_left", uint(), true)]),
        coded("attempt_limit_reached", &[]),
        coded("approved", &[status()]),
        coded("declined", &[status()]),
        coded("pending", &[status()]),
        coded("confirmed", &[status()]),
        coded("rejected", &response_fields()),
        coded("unauthorized", &response_fields()),
        coded("check_status", &check),
        coded("bank_page", &[]),
        coded("not_delivered", &[]),
        coded("integrity_failure", &integrity()),
        coded("disagreement", &disagreement()),
    ]})
}

fn refusal() -> Value {
    let mut variants = vec![
        coded("in_flight", &[("token", string(), true)]),
        coded("already_final", &[status()]),
        coded("send_limit_reached", &[("limit", uint(), true)]),
        coded("attempt_limit_reached", &[("limit", uint(), true)]),
        coded("cooldown", &[("until_ms", int(), true)]),
    ];
    for code in [
        "check_status",
        "on_bank_page",
        "expired",
        "resend_not_allowed",
        "submit_not_allowed",
        "no_bank_page",
        "not_started",
        "already_started",
        "other_order",
        "confirming",
        "attempt_open",
        "start_request_needed",
    ] {
        variants.push(coded(code, &[]));
    }
    json!({ "oneOf": variants })
}

fn settle_outcome() -> Value {
    let mut variants = vec![
        coded("integrity_failure", &integrity()),
        coded("conflict", &disagreement()),
    ];
    for code in [
        "approved",
        "declined",
        "confirming",
        "agrees",
        "check_status",
        "not_final",
    ] {
        variants.push(coded(code, &[status()]));
    }
    for code in ["in_flight", "duplicate", "stale", "other_transaction"] {
        variants.push(coded(code, &[]));
    }
    json!({ "oneOf": variants })
}

fn next_step() -> Value {
    let mut variants = vec![
        coded("wait", &[("token", string(), true)]),
        coded("bank_page", &[("url", string(), true)]),
        coded("finished", &[status()]),
    ];
    for code in [
        "start",
        "enter_otp",
        "check_status",
        "await_bank_page",
        "expired",
        "confirming",
        "new_attempt",
    ] {
        variants.push(coded(code, &[]));
    }
    json!({ "oneOf": variants })
}

/// Any error: a registered code and the fields errors carry (which ones depends on the
/// code: see docs/protocol.md).
fn error() -> Value {
    let codes: Vec<&str> = crate::codes::all().iter().map(|c| c.code).collect();
    let mut fields = response_fields();
    fields[0].2 = false;
    let s = |n| (n, string(), false);
    let u = |n| (n, uint(), false);
    fields.extend([
        ("code", one_of(&codes), true),
        s("key"),
        s("cause"),
        s("order_id"),
        s("token"),
        s("in_flight"),
        s("character"),
        s("what"),
        s("forbidden"),
        s("name"),
        s("algorithm"),
        s("got"),
        s("expected"),
        u("max"),
        u("length"),
        u("len"),
        u("new"),
        u("revision"),
        u("limit"),
        ("until_ms", int(), false),
        ("found", nullable("integer"), false),
        ("sent", boolean(), false),
        ("may_have_been_sent", boolean(), false),
        ("outcome", json!({"$ref": "#/$defs/outcome"}), false),
    ]);
    // `expected` is a string (another order) or a revision (a store rejection).
    for f in &mut fields {
        if f.0 == "expected" {
            f.1 = json!({"type": ["string", "integer"]});
        }
    }
    object(&fields)
}

fn request() -> Value {
    let header = object(&[
        ("name", string(), true),
        ("value", string(), true),
        ("sensitive", boolean(), true),
    ]);
    let mut r = object(&[
        ("token", string(), true),
        (
            "kind",
            one_of(&["start", "resend", "submit", "order_status", "card_bin"]),
            true,
        ),
        ("method", one_of(&["GET", "POST"]), true),
        ("url", string(), true),
        ("headers", json!({"type": "array", "items": header}), true),
        ("body_sensitive", boolean(), true),
        ("body", string(), false),
        ("body_base64", string(), false),
    ]);
    r["oneOf"] = json!([{"required": ["body"]}, {"required": ["body_base64"]}]);
    r
}

fn reply() -> Value {
    let mut answer = object(&[
        ("kind", json!({"const": "answer"}), true),
        (
            "status",
            json!({"type": "integer", "minimum": 0, "maximum": 65535}),
            true,
        ),
        ("body", string(), false),
        ("body_base64", string(), false),
    ]);
    answer["not"] = json!({"required": ["body", "body_base64"]});
    json!({"oneOf": [
        answer,
        object(&[("kind", json!({"const": "not_sent"}), true)]),
        object(&[("kind", json!({"const": "maybe_sent"}), true)]),
    ]})
}

fn command() -> Value {
    json!({"oneOf": [
        object(&[("command", json!({"const": "submit"}), true), ("otp", string(), true)]),
        object(&[("command", json!({"const": "resend"}), true)]),
        object(&[("command", json!({"const": "check_status"}), true)]),
        object(&[("command", json!({"const": "start"}), true), ("source", source(true), true)]),
    ]})
}

fn config(input: bool) -> Value {
    let mut fields = vec![
        ("base_url", string(), true),
        ("merchant_id", nullable("string"), !input),
        ("version", nullable("string"), !input),
        ("auto_capture", nullable("boolean"), !input),
    ];
    if input {
        fields.insert(1, ("api_key", string(), true));
    }
    object(&fields)
}

fn policy() -> Value {
    object(&[
        ("max_sends", uint(), true),
        ("max_attempts", uint(), true),
        ("resend_cooldown_ms", uint(), true),
        ("lifetime_ms", uint(), true),
    ])
}

fn expected() -> Value {
    object(&[("amount", string(), true), ("currency", string(), true)])
}

/// A payment source: in, the card data; out, only its type.
fn source(input: bool) -> Value {
    if input {
        json!({"oneOf": [
            object(&[("type", json!({"const": "token"}), true), ("card_token", string(), true),
                     ("cvv", nullable("string"), false)]),
            object(&[("type", json!({"const": "card"}), true), ("number", string(), true),
                     ("expiry_month", string(), true), ("expiry_year", string(), true),
                     ("cvv", string(), true), ("name_on_card", nullable("string"), false)]),
        ]})
    } else {
        object(&[("type", one_of(&["token", "card"]), true)])
    }
}

fn start_request(input: bool) -> Value {
    let source = source(input);
    let opt = |s: Value| json!({"oneOf": [s, {"type": "null"}]});
    object(&[
        ("order_id", string(), true),
        ("merchant_id", string(), true),
        ("routing_id", string(), true),
        ("source", source, true),
        ("payment_method", nullable("string"), !input),
        ("save_to_locker", nullable("boolean"), !input),
        ("gateway_id", nullable("string"), !input),
        ("policy", opt(policy()), !input),
        ("expected_amount", opt(expected()), !input),
    ])
}

fn view() -> Value {
    let card = object(&[
        ("isin", nullable("string"), true),
        ("last_four", nullable("string"), true),
        ("brand", nullable("string"), true),
        ("issuer", nullable("string"), true),
    ]);
    object(&[
        ("key", string(), true),
        ("order_id", string(), true),
        ("attempt", uint(), true),
        (
            "next",
            one_of(&[
                "start",
                "enter_otp",
                "wait",
                "check_status",
                "bank_page",
                "await_bank_page",
                "expired",
                "confirming",
                "new_attempt",
                "finished",
            ]),
            true,
        ),
        ("message", string(), true),
        ("status", string(), true),
        ("is_final", boolean(), true),
        ("paid", boolean(), true),
        ("confirmed", boolean(), true),
        (
            "settled_by",
            one_of_or_null(&["answer", "order_status", "return_url", "webhook"]),
            true,
        ),
        (
            "settlement_issue",
            one_of_or_null(&[
                "integrity_failure",
                "amount_unchecked",
                "conflict",
                "disagreement",
            ]),
            true,
        ),
        ("can_submit", boolean(), true),
        ("can_resend", boolean(), true),
        ("resend_in_seconds", nullable("integer"), true),
        ("sends_left", nullable("integer"), true),
        ("attempts_left", nullable("integer"), true),
        ("expires_in_seconds", nullable("integer"), true),
        ("bank_page_url", nullable("string"), true),
        ("bank_page_available", boolean(), true),
        ("card", json!({"oneOf": [card, {"type": "null"}]}), true),
    ])
}

fn reference(def: &str) -> Value {
    json!({ "$ref": format!("#/$defs/{def}") })
}

/// The payment as a store keeps it (its own JSON, which `wire::record` reads back).
fn record() -> Value {
    json!({"type": "object"})
}

fn error_or_null() -> Value {
    json!({"oneOf": [reference("error"), {"type": "null"}]})
}

fn done() -> Value {
    object(&[
        ("record", record(), true),
        ("outcome", reference("outcome"), true),
        ("transport_error", error_or_null(), true),
    ])
}

fn settled() -> Value {
    let check = json!({"oneOf": [
        object(&[("outcome", reference("outcome"), true)]),
        object(&[("error", reference("error"), true)]),
        {"type": "null"},
    ]});
    object(&[
        ("record", record(), true),
        ("outcome", reference("settle_outcome"), true),
        ("check", check, true),
        ("transport_error", error_or_null(), true),
    ])
}

fn swept() -> Value {
    let check = json!({"oneOf": [
        reference("done"),
        object(&[("error", reference("error"), true)]),
        {"type": "null"},
    ]});
    json!({"anyOf": [
        coded("recovered", &[("key", string(), true), ("outcome", reference("outcome"), true),
                             ("check", check, true)]),
        coded("moved", &[("key", string(), true)]),
        reference("error"),
    ]})
}

fn settlement() -> Value {
    json!({"oneOf": [
        object(&[("kind", json!({"const": "return_url"}), true), ("query", string(), true),
                 ("response_key", string(), true)]),
        object(&[("kind", json!({"const": "webhook"}), true), ("authorization", string(), false),
                 ("body", string(), true), ("username", string(), true),
                 ("password", string(), true)]),
    ]})
}

/// The JSON Schema (draft 2020-12) of every wire form, under `$defs`: `command`, `reply`,
/// `config_in`, `start_request_in`, `settlement_in` (what a wrapper hands in); `request`,
/// `outcome`, `refusal`, `settle_outcome`, `next_step`, `timer_event`, `view`, `config`,
/// `start_request`, `error`, and the drivers' `done`, `bank_page`, `settled`, `swept` (what
/// it gets back). `docs/protocol.schema.json` is this,
/// pretty-printed.
pub fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "direct-otp wire forms (docs/protocol.md)",
        "$defs": {
            "command": command(),
            "reply": reply(),
            "config_in": config(true),
            "start_request_in": start_request(true),
            "settlement_in": settlement(),
            "request": request(),
            "outcome": outcome(),
            "refusal": refusal(),
            "settle_outcome": settle_outcome(),
            "next_step": next_step(),
            "timer_event": {"oneOf": [coded("resend_available", &[]), coded("expired", &[])]},
            "view": view(),
            "config": config(false),
            "start_request": start_request(false),
            "error": error(),
            "done": done(),
            "bank_page": object(&[("url", string(), true), ("record", record(), true)]),
            "settled": settled(),
            "swept": swept(),
        }
    })
}

//! The wire form (`direct_otp::wire`) against real payments in the in-process sandbox: every
//! value that crosses is valid under `docs/protocol.schema.json`, and so is every sample of
//! `docs/protocol.samples.json` (one per variant, written by the crate's unit tests), secrets
//! never appear in what goes out (except the request that must carry them, marked
//! sensitive), the checked-in files are up to date, and arbitrary input never panics: always
//! a coded error.

use direct_otp::sandbox::{CardFlow, Sandbox, SandboxConfig, SANDBOX_RESPONSE_KEY};
use direct_otp::wire::{self, ToWire};
use direct_otp::{Outgoing, Payment, ResponseKey, ReturnParams};
use proptest::prelude::*;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

const KEY: &str = "sk_test_wire_key";
const T0: OffsetDateTime = time::macros::datetime!(2026-11-25 10:00 UTC);
const CARD: &str = "4111111111111111";
const CVV: &str = "987";

fn at(s: i64) -> OffsetDateTime {
    T0 + Duration::seconds(s)
}

/// The schema compiled once, and each def's index.
struct Validator {
    schemas: boon::Schemas,
    defs: std::collections::HashMap<String, boon::SchemaIndex>,
}

impl Validator {
    fn new() -> Self {
        let mut compiler = boon::Compiler::new();
        compiler
            .add_resource("urn:direct-otp", wire::schema())
            .unwrap();
        let mut schemas = boon::Schemas::new();
        let mut defs = std::collections::HashMap::new();
        for def in wire::schema()["$defs"].as_object().unwrap().keys() {
            let i = compiler
                .compile(&format!("urn:direct-otp#/$defs/{def}"), &mut schemas)
                .unwrap();
            defs.insert(def.clone(), i);
        }
        Validator { schemas, defs }
    }

    fn check(&self, def: &str, value: &Value) -> Result<(), String> {
        self.schemas
            .validate(value, self.defs[def])
            .map_err(|e| e.to_string())
    }

    #[track_caller]
    fn valid(&self, def: &str, value: &Value) {
        if let Err(e) = self.schemas.validate(value, self.defs[def]) {
            panic!("{value} is not a valid {def}: {e}");
        }
    }
}

fn check_file(path: &str, want: &str, how: &str) {
    // `path` is from the repository's root, this package's parent.
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_WIRE_DOCS").is_some() {
        std::fs::write(&full, want).unwrap();
    }
    let have = std::fs::read_to_string(&full).unwrap_or_default();
    assert!(
        have == want,
        "{path} is out of date with the code: run `{how}` to update it, and review the diff"
    );
}

#[test]
fn the_checked_in_schema_and_code_registry_are_up_to_date() {
    let how = "UPDATE_WIRE_DOCS=1 cargo test -p direct-otp -p direct-otp-tests wire::";
    let schema = serde_json::to_string_pretty(&wire::schema()).unwrap() + "\n";
    check_file("docs/protocol.schema.json", &schema, how);
    check_file("docs/codes.md", &direct_otp::codes::markdown(), how);
}

/// Each sample of `docs/protocol.samples.json` (one wire form per variant of every type with
/// a code; the crate's unit tests check the file is what the values give) is valid under its
/// def, and no longer so with an unknown field or, but for `error` and `reply` (whose code
/// is any error's), another code.
#[test]
fn every_sample_is_valid_under_the_schema_and_a_changed_one_is_not() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.samples.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let samples: Vec<Value> = serde_json::from_str(&text).unwrap();
    let v = Validator::new();
    let mut types = std::collections::BTreeSet::new();
    for sample in &samples {
        let (ty, def, code) = (
            &sample["type"],
            sample["def"].as_str().unwrap(),
            &sample["code"],
        );
        let form = &sample["form"];
        types.insert(ty.as_str().unwrap());
        if let Err(e) = v.check(def, form) {
            panic!("{ty} {code}: {form} is not a valid {def}: {e}");
        }
        let mut extra = form.clone();
        extra["not_a_field"] = json!(1);
        assert!(
            v.check(def, &extra).is_err(),
            "{ty} {code}: an unknown field passes"
        );
        if def != "error" && def != "reply" {
            let mut other = form.clone();
            other["code"] = json!("no_such_code");
            assert!(
                v.check(def, &other).is_err(),
                "{ty} {code}: any code passes"
            );
        }
    }
    // Each type in the code registry that has a wire form has samples (a file cut short
    // would not pass).
    for info in direct_otp::codes::all() {
        for ty in info.types {
            assert!(types.contains(ty), "no sample of {ty} in {path}");
        }
    }
}

/// One bank, and a payment driven only through wire forms.
struct Wrapper {
    sandbox: Sandbox,
    config: direct_otp::Config,
    v: Validator,
    /// Every value that went out, for the secrets check.
    out: Vec<String>,
}

impl Wrapper {
    fn new() -> Self {
        let sandbox =
            Sandbox::new(SandboxConfig::new(KEY).with_card("tok_3ds", CardFlow::ThreeDsFailover));
        let input = json!({"base_url": sandbox.base_url(), "api_key": KEY, "merchant_id": "acme"});
        let v = Validator::new();
        v.valid("config_in", &input);
        let config = wire::config(input.to_string().as_bytes()).unwrap();
        let shown = config.to_wire();
        v.valid("config", &shown);
        let out = vec![shown.to_string(), format!("{config:?}")];
        Wrapper {
            sandbox,
            config,
            v,
            out,
        }
    }

    fn emit(&mut self, def: &str, value: Value) -> Value {
        self.v.valid(def, &value);
        self.out.push(value.to_string());
        value
    }

    /// The record as stored, loaded back through the wire entry point.
    fn reload(&mut self, p: &Payment) -> Payment {
        let json = serde_json::to_vec(p).unwrap();
        let back = wire::record(&json).unwrap();
        self.emit("view", back.view(at(0)).to_wire());
        self.emit("next_step", back.next_step(at(0)).to_wire());
        back
    }

    /// Sends the request as a wrapper would, from its wire form, and hands the reply back
    /// as JSON.
    fn exchange(&mut self, p: &mut Payment, out: Outgoing, now: OffsetDateTime) -> Value {
        let request = out.to_wire();
        self.v.valid("request", &request);
        assert!(request["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == "authorization" && h["sensitive"] == true));
        let answer = self.sandbox.handle_request(&out.request, now);
        let reply = if answer.is_delivered() {
            match String::from_utf8(answer.body.clone()) {
                Ok(body) => json!({"kind": "answer", "status": answer.status, "body": body}),
                Err(_) => json!({"kind": "answer", "status": answer.status, "body_base64": "AA=="}),
            }
        } else {
            json!({"kind": "maybe_sent"})
        };
        self.v.valid("reply", &reply);
        let token = wire::token(request["token"].as_str().unwrap()).unwrap();
        let reply = wire::reply(reply.to_string().as_bytes()).unwrap();
        let outcome = p.handle(token, reply, now).unwrap();
        self.emit("outcome", outcome.to_wire())
    }

    fn command(
        &mut self,
        p: &mut Payment,
        json: Value,
        now: OffsetDateTime,
    ) -> Result<Outgoing, Value> {
        self.v.valid("command", &json);
        let command = wire::command(json.to_string().as_bytes()).map_err(|e| e.to_wire())?;
        command
            .issue(p, &self.config, now)
            .map_err(|r| self.emit("refusal", r.to_wire()))
    }
}

fn start_json(order: &str, source: Value) -> Value {
    json!({"order_id": order, "merchant_id": "acme", "routing_id": "cust_1", "source": source,
           "expected_amount": {"amount": "1", "currency": "inr"},
           "policy": {"max_sends": 3, "max_attempts": 3, "resend_cooldown_ms": 30000,
                      "lifetime_ms": 600000}})
}

#[test]
fn a_payment_driven_through_the_wire_form_gives_only_valid_forms_and_no_secret() {
    let mut w = Wrapper::new();
    let card = json!({"type": "card", "number": CARD, "expiry_month": "12",
                      "expiry_year": "2030", "cvv": CVV, "name_on_card": "Asha Rao"});
    let input = start_json("ord_wire_1", card);
    w.v.valid("start_request_in", &input);
    let start = wire::start_request(input.to_string().as_bytes()).unwrap();
    let shown = w.emit("start_request", start.to_wire());
    assert_eq!(shown["source"], json!({"type": "card"}));
    w.out.push(format!("{start:?}"));
    let mut p = Payment::new(&start, 1, T0);
    p = w.reload(&p);
    let out = p.start(&w.config, &start, T0).unwrap();
    assert_eq!(out.to_wire()["body_sensitive"], true);
    let o = w.exchange(&mut p, out, at(1));
    assert_eq!(o["code"], "otp_sent");
    p = w.reload(&p);

    // A wrong OTP, a resend in the cooldown, a stale token, then the right OTP.
    let out = w
        .command(&mut p, json!({"command": "submit", "otp": "000000"}), at(2))
        .unwrap();
    let o = w.exchange(&mut p, out, at(3));
    assert_eq!(o["code"], "wrong_otp");
    let refused = w
        .command(&mut p, json!({"command": "resend"}), at(4))
        .unwrap_err();
    assert_eq!(refused["code"], "cooldown");
    assert_eq!(
        refused["until_ms"],
        json!((T0.unix_timestamp() + 31) * 1000)
    );
    let out = w
        .command(&mut p, json!({"command": "resend"}), at(40))
        .unwrap();
    let old = out.token;
    let o = w.exchange(&mut p, out, at(41));
    assert_eq!(o["code"], "otp_sent");
    let err = p
        .handle(old, wire::reply(br#"{"kind":"not_sent"}"#).unwrap(), at(42))
        .unwrap_err();
    let e = w.emit("error", err.to_wire());
    assert_eq!(e["code"], "nothing_in_flight");
    let bad = w
        .command(&mut p, json!({"command": "submit", "otp": "12"}), at(43))
        .unwrap_err();
    assert_eq!(bad, json!({"code": "otp_length", "length": 2}));
    w.emit("error", bad);
    p = w.reload(&p);
    let txn = p.challenge().unwrap().txn_id().to_owned();
    let otp = w.sandbox.current_otp(&txn).unwrap().to_owned();
    let out = w
        .command(&mut p, json!({"command": "submit", "otp": otp}), at(44))
        .unwrap();
    let o = w.exchange(&mut p, out, at(45));
    assert!(
        ["approved", "integrity_failure", "check_status"].contains(&o["code"].as_str().unwrap()),
        "{o}"
    );
    p = w.reload(&p);
    let refused = w
        .command(&mut p, json!({"command": "resend"}), at(46))
        .unwrap_err();
    assert!(refused["code"].is_string());
    let out = w.command(&mut p, json!({"command": "check_status"}), at(47));
    if let Ok(out) = out {
        w.exchange(&mut p, out, at(48));
    }
    w.reload(&p);

    for shown in &w.out {
        for secret in [KEY, CARD, CVV, "Asha Rao", &otp, "Basic "] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}

#[test]
fn a_lost_answer_and_the_bank_page_through_the_wire_form() {
    let mut w = Wrapper::new();
    let input = start_json(
        "ord_wire_2",
        json!({"type": "token", "card_token": "tok_3ds", "cvv": CVV}),
    );
    let start = wire::start_request(input.to_string().as_bytes()).unwrap();
    let mut p = Payment::new(&start, 1, T0);
    let out = p.start(&w.config, &start, T0).unwrap();
    let token = wire::token(out.to_wire()["token"].as_str().unwrap()).unwrap();
    let outcome = p
        .handle(
            token,
            wire::reply(br#"{"kind":"maybe_sent"}"#).unwrap(),
            at(1),
        )
        .unwrap();
    let o = w.emit("outcome", outcome.to_wire());
    assert_eq!(o, json!({"code": "check_status", "why": "maybe_sent"}));
    assert_eq!(
        w.emit("next_step", p.next_step(at(1)).to_wire())["code"],
        "check_status"
    );
    let refused = w
        .command(&mut p, json!({"command": "resend"}), at(2))
        .unwrap_err();
    assert_eq!(refused["code"], "check_status");
    let out = w
        .command(&mut p, json!({"command": "check_status"}), at(2))
        .unwrap();
    w.exchange(&mut p, out, at(3));
    let p2 = w.reload(&p);
    let _ = p2;

    // Start again on a fresh attempt: the 3DS card goes to the bank page.
    let mut p = Payment::new(&start, 2, T0);
    let out = p.start(&w.config, &start, at(4)).unwrap();
    let o = w.exchange(&mut p, out, at(5));
    assert_eq!(o["code"], "bank_page");
    let step = w.emit("next_step", p.next_step(at(5)).to_wire());
    assert_eq!(step["code"], "bank_page");
    assert!(step["url"].is_string());

    // The cardholder pays on the bank page; the signed return is a reason to confirm, a
    // tampered one a coded error, and the order status confirms.
    p.go_to_bank_page(at(6)).unwrap();
    let txn = w.sandbox.latest_transaction("ord_wire_2").unwrap().id;
    w.sandbox
        .complete_bank_page(&txn, direct_otp::sandbox::BankPageResult::Success)
        .unwrap();
    let query = w.sandbox.return_query("ord_wire_2").unwrap();
    let key = ResponseKey::new(SANDBOX_RESPONSE_KEY).unwrap();
    let tampered = query.replace("CHARGED", "CHARGEE");
    let err = ReturnParams::from_query(&tampered)
        .and_then(|r| r.verify(&key))
        .unwrap_err();
    assert_eq!(
        w.emit("error", err.to_wire())["code"],
        "return_bad_signature"
    );
    let verified = ReturnParams::from_query(&query)
        .unwrap()
        .verify(&key)
        .unwrap();
    let settled = p.settle(verified.into(), at(7)).unwrap();
    let s = w.emit("settle_outcome", settled.to_wire());
    assert_eq!(s, json!({"code": "confirming", "status": "CHARGED"}));
    assert_eq!(
        w.emit("next_step", p.next_step(at(7)).to_wire())["code"],
        "confirming"
    );
    let out = w
        .command(&mut p, json!({"command": "check_status"}), at(8))
        .unwrap();
    let o = w.exchange(&mut p, out, at(9));
    assert!(
        ["approved", "confirmed", "integrity_failure"].contains(&o["code"].as_str().unwrap()),
        "{o}"
    );
    let again = ReturnParams::from_query(&query)
        .unwrap()
        .verify(&key)
        .unwrap();
    let s = w.emit(
        "settle_outcome",
        p.settle(again.into(), at(10)).unwrap().to_wire(),
    );
    assert!(s["code"].is_string());
    w.reload(&p);
    for shown in &w.out {
        assert!(!shown.contains(KEY) && !shown.contains(CVV), "{shown}");
    }
}

/// The start request crosses once: a start that surely did not leave is made again in a
/// later call with only the card (`{"command":"start","source":...}`), from what the stored
/// record kept (never the card data).
#[test]
fn a_start_not_sent_is_made_again_with_only_the_card() {
    let mut w = Wrapper::new();
    let token_source = json!({"type": "token", "card_token": "tok_visa"});
    let input = start_json("ord_wire_again", token_source.clone());
    let start = wire::start_request(input.to_string().as_bytes()).unwrap();
    let (p, first) = Payment::begin(&w.config, &start, 1, T0);
    let mut p = w.reload(&p);
    let stored = serde_json::to_string(&p).unwrap();
    assert!(
        !stored.contains("tok_visa"),
        "the card token is never stored: {stored}"
    );
    let token = wire::token(first.to_wire()["token"].as_str().unwrap()).unwrap();
    let outcome = p
        .handle(
            token,
            wire::reply(br#"{"kind":"not_sent"}"#).unwrap(),
            at(1),
        )
        .unwrap();
    assert_eq!(
        w.emit("outcome", outcome.to_wire())["code"],
        "not_delivered"
    );
    let mut p = w.reload(&p);
    let again = w
        .command(
            &mut p,
            json!({"command": "start", "source": token_source}),
            at(2),
        )
        .unwrap();
    assert_eq!(
        again.request.body(),
        first.request.body(),
        "the same POST /txns"
    );
    let o = w.exchange(&mut p, again, at(3));
    assert_eq!(o["code"], "otp_sent");
    let refused = w
        .command(
            &mut p,
            json!({"command": "start", "source": {"type": "token", "card_token": "tok_visa"}}),
            at(4),
        )
        .unwrap_err();
    assert_eq!(refused["code"], "already_started");
}

#[test]
fn a_reply_body_that_is_not_utf8_crosses_as_base64() {
    let r = wire::reply(br#"{"kind":"answer","status":200,"body_base64":"/wD+AQ=="}"#).unwrap();
    assert_eq!(
        r,
        direct_otp::Reply::Answer {
            status: 200,
            body: vec![0xff, 0, 0xfe, 1]
        }
    );
    for (bad, code) in [
        (
            &br#"{"kind":"answer","status":200,"body_base64":"/wD+AQ="}"#[..],
            "bad_base64",
        ),
        (
            br#"{"kind":"answer","status":200,"body":"","body_base64":""}"#,
            "wire_shape",
        ),
        (br#"{"kind":"answer","status":70000}"#, "wire_shape"),
        (br#"{"kind":"lost"}"#, "wire_shape"),
        (br#"{"kind":"#, "wire_syntax"),
    ] {
        assert_eq!(wire::reply(bad).unwrap_err().code(), code);
    }
}

/// Any JSON value, nested a few levels, with the wire forms' own words among the keys.
fn any_json() -> impl Strategy<Value = Value> {
    let word = prop_oneof![
        Just("command".to_owned()),
        Just("kind".to_owned()),
        Just("otp".to_owned()),
        Just("status".to_owned()),
        Just("body".to_owned()),
        Just("body_base64".to_owned()),
        Just("submit".to_owned()),
        Just("answer".to_owned()),
        Just("base_url".to_owned()),
        Just("api_key".to_owned()),
        Just("source".to_owned()),
        Just("type".to_owned()),
        "[a-z_]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        word.clone().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(word.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Feeds `input` to every entry point: each gives a value or a registered, schema-valid
/// error, and never panics.
fn feed(v: &Validator, input: &[u8]) {
    let mut errors = Vec::new();
    errors.extend(wire::command(input).err());
    errors.extend(wire::reply(input).err());
    errors.extend(wire::config(input).err());
    errors.extend(wire::start_request(input).err());
    errors.extend(wire::record(input).err());
    errors.extend(wire::token(&String::from_utf8_lossy(input)).err());
    for e in errors {
        let form = e.to_wire();
        assert!(direct_otp::codes::find(e.code()).is_some(), "{form}");
        v.valid("error", &form);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_json_to_every_entry_point_is_a_value_or_a_coded_error(value in any_json()) {
        thread_local!(static V: Validator = Validator::new());
        V.with(|v| feed(v, value.to_string().as_bytes()));
        // The same value as each form's envelope.
        for envelope in ["command", "kind", "type"] {
            if let Value::Object(mut m) = value.clone() {
                m.insert(envelope.into(), json!("submit"));
                V.with(|v| feed(v, Value::Object(m).to_string().as_bytes()));
            }
        }
    }

    #[test]
    fn arbitrary_bytes_to_every_entry_point_is_a_value_or_a_coded_error(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        ms in any::<i64>(),
    ) {
        thread_local!(static V: Validator = Validator::new());
        V.with(|v| feed(v, &bytes));
        match wire::time_from_ms(ms) {
            Ok(t) => prop_assert_eq!((t.unix_timestamp_nanos() / 1_000_000) as i64, ms),
            Err(e) => prop_assert_eq!(e.code(), "wire_shape"),
        }
    }
}

/// The in-process sandbox as the bank of a driver, with its own clock.
struct InProcessBank {
    sandbox: std::sync::Mutex<Sandbox>,
    now: std::sync::Mutex<OffsetDateTime>,
}

#[derive(Debug, thiserror::Error)]
#[error("the answer was lost")]
struct LostAnswer;

impl direct_otp::driver::BlockingSend for InProcessBank {
    type Error = LostAnswer;
    fn send(&self, request: direct_otp::Request) -> Result<(u16, Vec<u8>), LostAnswer> {
        let now = *self.now.lock().unwrap();
        let answer = self.sandbox.lock().unwrap().handle_request(&request, now);
        if answer.is_delivered() {
            Ok((answer.status, answer.body))
        } else {
            Err(LostAnswer)
        }
    }
    fn send_failure(&self, _: &LostAnswer) -> direct_otp::SendFailure {
        direct_otp::SendFailure::MaybeSent
    }
    fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(30)
    }
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap()
    }
}

/// What the drivers finish with crosses too: a step (`done`), the bank page, a settlement
/// made from its JSON input (`settlement_in`, verified there), and the sweep's results. The
/// record inside each loads back through `wire::record`; nothing carries a secret.
#[test]
fn the_drivers_results_and_a_settlement_cross_as_wire_forms() {
    use direct_otp::driver::{Command, Driver};
    use direct_otp::sandbox::{Endpoint, Fault, HttpRequest};
    use direct_otp::store::MemoryStore;
    let v = Validator::new();
    let sandbox = Sandbox::new(
        SandboxConfig::new(KEY)
            .with_card("tok_3ds", CardFlow::ThreeDsFailover)
            .with_return_url("https://shop.example/return"),
    );
    let config = direct_otp::Config::new(sandbox.base_url(), KEY).unwrap();
    let bank = InProcessBank {
        sandbox: std::sync::Mutex::new(sandbox),
        now: std::sync::Mutex::new(T0),
    };
    let driver = Driver::new(MemoryStore::new(), bank, config);
    let mut out = Vec::new();
    let mut emit = |def: &str, value: Value| {
        v.valid(def, &value);
        if let Some(record) = value.get("record") {
            wire::record(record.to_string().as_bytes()).expect("the record loads back");
        }
        out.push(value.to_string());
        value
    };
    // A 3DS card: the bank page, then a signed return handed in as JSON.
    let input = start_json(
        "ord_wire_drv",
        json!({"type": "token", "card_token": "tok_3ds", "cvv": CVV}),
    );
    let start = wire::start_request(input.to_string().as_bytes()).unwrap();
    let done = driver.start(&start, 1);
    assert_eq!(emit("done", done.to_wire())["outcome"]["code"], "bank_page");
    let bank_page = driver.bank_page("ord_wire_drv/1").unwrap();
    let url = emit("bank_page", bank_page.to_wire())["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let uuid = url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let page =
        HttpRequest::new("POST", &format!("/v2/pay/start/acme/{uuid}")).with_body("result=success");
    let answer = driver.transport().sandbox.lock().unwrap().handle(&page, T0);
    let location = answer.header("location").unwrap().to_owned();
    let query = location.split_once('?').unwrap().1.to_owned();
    let hint = json!({"kind": "return_url", "query": query, "response_key": SANDBOX_RESPONSE_KEY});
    v.valid("settlement_in", &hint);
    let settlement = wire::settlement(hint.to_string().as_bytes()).unwrap();
    let settled = emit("settled", driver.settle(settlement).unwrap().to_wire());
    assert_eq!(settled["outcome"]["code"], "confirming");
    // The order status decided; `start_json` expects 1 INR, which the order is not for.
    assert_eq!(settled["check"]["outcome"]["code"], "integrity_failure");
    // The same return under another key, or tampered: the verification's own codes.
    let wrong = json!({"kind": "return_url", "query": query, "response_key": "not_the_key"});
    let e = wire::settlement(wrong.to_string().as_bytes()).unwrap_err();
    assert_eq!(emit("error", e.to_wire())["code"], "return_bad_signature");
    let hook = json!({"kind": "webhook", "authorization": "Basic bm9wZTpub3Bl", "body": "{}",
                      "username": "hook_user", "password": "hook_password"});
    let e = wire::settlement(hook.to_string().as_bytes()).unwrap_err();
    assert!(emit("error", e.to_wire())["code"]
        .as_str()
        .unwrap()
        .starts_with("webhook_"));
    // A refused command, and a submit whose answer is lost then swept.
    let refused = driver.run("ord_wire_drv/1", Command::Resend);
    let e = emit("error", refused.unwrap_err().to_wire());
    assert_eq!(e["code"], "already_final");
    let input = start_json(
        "ord_wire_drv2",
        json!({"type": "token", "card_token": "tok_visa"}),
    );
    let start = wire::start_request(input.to_string().as_bytes()).unwrap();
    driver.start(&start, 1).unwrap();
    driver
        .transport()
        .sandbox
        .lock()
        .unwrap()
        .inject(Endpoint::Submit, Fault::DropResponse);
    let otp = direct_otp::Otp::new("123456").unwrap();
    let lost = emit(
        "done",
        driver
            .run("ord_wire_drv2/1", Command::Submit(otp))
            .to_wire(),
    );
    assert_eq!(lost["outcome"]["code"], "check_status");
    assert_eq!(lost["transport_error"]["code"], "transport_other");
    *driver.transport().now.lock().unwrap() = T0 + Duration::seconds(600);
    for swept in driver.sweep_and_check(10).unwrap() {
        emit("swept", swept.to_wire());
    }
    for text in &out {
        for secret in [KEY, CVV, SANDBOX_RESPONSE_KEY, "hook_password", "123456"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

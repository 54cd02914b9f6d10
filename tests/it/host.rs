//! The host API (`wire::host`) as a binding uses it: JSON text in and out.
//!
//! * The golden records (`tests/golden/`): a script of payments (starts, commands and the
//!   bank's replies, at fixed times) replayed through `host::call` gives byte for byte the
//!   stored records and views in the files. The Python and Node test suites replay the same
//!   script through their packages and compare with the same files, so a record stored by
//!   any of them loads in the others with the same view. `UPDATE_GOLDEN=1 cargo test -p
//!   direct-otp-tests --test it host::` writes the script and the files again (the replies from the in-process
//!   sandbox).
//! * A host loop over `HostSteps` (an in-memory table of the host form, the in-process
//!   sandbox as the bank): start, resend, wrong then right OTP; the bank page and a signed
//!   return settled in one call; a record that does not load.
//! * Hostile input to every entry point gives a coded error and never panics.

use std::collections::BTreeMap;
use std::path::Path;

use direct_otp::sandbox::{
    BankPageResult, HttpRequest, OtpSource, Sandbox, SandboxConfig, SANDBOX_RESPONSE_KEY,
};
use direct_otp::wire::host::{self, HostSteps};
use proptest::prelude::*;
use serde_json::{json, Value};

const KEY: &str = "sk_golden";
const OTP: &str = "123456";
const T0: i64 = 1_764_064_800_000; // 2025-11-25 10:00 UTC
const BASE: &str = "http://sandbox.invalid";

fn config() -> Value {
    json!({"base_url": BASE, "api_key": KEY})
}

fn start(order: &str, card: &str) -> Value {
    json!({"order_id": order, "merchant_id": "acme", "routing_id": "cust_1",
           "source": {"type": "token", "card_token": card}})
}

fn bank() -> Sandbox {
    Sandbox::new(SandboxConfig::new(KEY).with_otp(OtpSource::Fixed(OTP.into())))
}

fn call(v: Value) -> Value {
    let out = host::call(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{v}: {e}"));
    serde_json::from_str(&out).unwrap()
}

/// The bank's answer to a request's wire form, as a reply's wire form.
fn answer(bank: &mut Sandbox, request: &Value, now: i64) -> Value {
    let url = request["url"].as_str().unwrap();
    let mut req = HttpRequest::new(
        request["method"].as_str().unwrap(),
        url.strip_prefix(BASE).unwrap(),
    );
    for h in request["headers"].as_array().unwrap() {
        req = req.with_header(h["name"].as_str().unwrap(), h["value"].as_str().unwrap());
    }
    if let Some(body) = request["body"].as_str() {
        req = req.with_body(body.as_bytes().to_vec());
    }
    let now = direct_otp::wire::time_from_ms(now).unwrap();
    let answer = bank.handle(&req, now);
    json!({"kind": "answer", "status": answer.status,
           "body": String::from_utf8(answer.body).unwrap()})
}

/// What the script's payments are: a name, and the commands after the start, each with
/// whether its answer is lost (the bank acts on it; the payment hears `maybe_sent`).
fn plan() -> Vec<(&'static str, Vec<(Value, bool)>)> {
    let submit = |otp: &str| json!({"command": "submit", "otp": otp});
    vec![
        ("otp_page", vec![]),
        (
            "resend_wrong_right",
            vec![
                (json!({"command": "resend"}), false),
                (submit("000000"), false),
                (submit(OTP), false),
            ],
        ),
        ("lost_answer", vec![(submit(OTP), true)]),
        (
            "lost_then_checked",
            vec![
                (submit(OTP), true),
                (json!({"command": "check_status"}), false),
            ],
        ),
    ]
}

/// Writes the script: each step's reply is the in-process sandbox's answer (or a lost one).
fn script() -> (Value, Value) {
    let mut bank = bank();
    let mut payments = Vec::new();
    let mut bench = Value::Null;
    for (i, (name, commands)) in plan().into_iter().enumerate() {
        let order = format!("golden_{}", i + 1);
        let mut now = T0 + i as i64 * 600_000;
        let created = call(json!({"fn": "new", "start": start(&order, "tok_visa"),
                                  "attempt": 1, "now_ms": now}));
        let first = created["record"].clone();
        let mut record = first.clone();
        let mut last = Value::Null;
        let mut steps = Vec::new();
        let replay = |record: &mut Value, last: &Value, step: &Value| {
            let out = replay_step(&config(), record.as_str().unwrap(), last, step);
            *record = out["record"].clone();
            out
        };
        let source = json!({"type": "token", "card_token": "tok_visa"});
        for (command, lost) in
            std::iter::once((json!({"command": "start", "source": source}), false)).chain(commands)
        {
            now += if steps.is_empty() { 0 } else { 31_000 };
            let step = json!({"now_ms": now, "command": command});
            last = replay(&mut record, &last, &step)["request"].clone();
            steps.push(step);
            now += 1_000;
            let mut reply = answer(&mut bank, &last, now);
            if lost {
                reply = json!({"kind": "maybe_sent"});
            }
            let step = json!({"now_ms": now, "reply": reply});
            replay(&mut record, &last, &step);
            steps.push(step);
        }
        payments.push(json!({"name": name, "record": first, "steps": steps,
                             "view_ms": now + 5_000}));
        if name == "otp_page" {
            // The benchmarks' step (benches/wire.rs, bindings/*/bench): a wrong OTP
            // submitted on the OTP page, and the bank's answer to it.
            now += 5_000;
            let command = json!({"command": "submit", "otp": "000000"});
            let step = json!({"now_ms": now, "command": command});
            let out = replay_step(&config(), record.as_str().unwrap(), &last, &step);
            let reply = answer(&mut bank, &out["request"], now);
            bench = json!({"config": config(), "record": record, "command": command,
                           "reply": reply, "now_ms": now});
        }
    }
    let script = json!({"about": "Replayed by tests/it/host.rs, bindings/python and bindings/node: each \
                     payment starts from its record (a new payment, stored), then its steps in \
                     order (command: the command fn; reply: the handle fn with the last request's \
                     token), then the record and the view at view_ms must \
                     equal <name>.record.json and <name>.view.json byte for byte.",
           "config": config(), "payments": payments});
    (script, bench)
}

/// One step of the script on a record (`begin` is handled by the caller).
fn replay_step(config: &Value, record: &str, last: &Value, step: &Value) -> Value {
    let now = step["now_ms"].clone();
    if let Some(command) = step.get("command") {
        call(json!({"fn": "command", "config": config, "record": record,
                    "command": command, "now_ms": now}))
    } else {
        call(
            json!({"fn": "handle", "record": record, "token": last["token"],
                    "reply": step["reply"], "now_ms": now}),
        )
    }
}

/// Replays the script: each payment's final record text and view text.
fn replay(script: &Value) -> BTreeMap<String, (String, String)> {
    let config = &script["config"];
    let mut out = BTreeMap::new();
    for p in script["payments"].as_array().unwrap() {
        let mut record = p["record"].as_str().unwrap().to_owned();
        let mut last = Value::Null;
        for step in p["steps"].as_array().unwrap() {
            let done = replay_step(config, &record, &last, step);
            record = done["record"].as_str().unwrap().to_owned();
            if let Some(request) = done.get("request") {
                last = request.clone();
            }
        }
        let view = host::call(
            json!({"fn": "view", "record": record, "now_ms": p["view_ms"]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        out.insert(p["name"].as_str().unwrap().to_owned(), (record, view));
    }
    out
}

#[test]
fn golden_records_replay_byte_for_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden");
    let script_path = dir.join("script.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        let (script, bench) = script();
        let text = serde_json::to_string_pretty(&script).unwrap() + "\n";
        std::fs::write(&script_path, text).unwrap();
        let text = serde_json::to_string_pretty(&bench).unwrap() + "\n";
        std::fs::write(dir.join("bench_step.json"), text).unwrap();
        for (name, (record, view)) in replay(&script) {
            std::fs::write(dir.join(format!("{name}.record.json")), record).unwrap();
            std::fs::write(dir.join(format!("{name}.view.json")), view).unwrap();
        }
    }
    let how = "UPDATE_GOLDEN=1 cargo test -p direct-otp-tests --test it host:: writes them again";
    let script: Value = serde_json::from_slice(
        &std::fs::read(&script_path).unwrap_or_else(|e| panic!("{script_path:?}: {e}; {how}")),
    )
    .unwrap();
    let replayed = replay(&script);
    assert_eq!(replayed.len(), plan().len(), "{how}");
    for (name, (record, view)) in &replayed {
        let read = |ext: &str| {
            let path = dir.join(format!("{name}.{ext}.json"));
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}; {how}"))
        };
        assert_eq!(&read("record"), record, "{name}: the stored record; {how}");
        assert_eq!(&read("view"), view, "{name}: the view; {how}");
        // A golden record loads as a payment, and stores again as the same text.
        let payment = direct_otp::wire::record(record.as_bytes()).unwrap();
        assert_eq!(&serde_json::to_string(&payment).unwrap(), record);
    }
    // The script covers what a binding must carry: an OTP page, a settled payment, a lost
    // answer and the check after it.
    let status = |name: &str| {
        let view: Value = serde_json::from_str(&replayed[name].1).unwrap();
        view["status"].as_str().unwrap().to_owned()
    };
    assert_eq!(status("otp_page"), "PENDING_VBV");
    assert_eq!(status("resend_wrong_right"), "CHARGED");
    assert_eq!(status("lost_then_checked"), "CHARGED");
}

/// The host's table: the host form's columns and the record text, as a binding keeps them.
#[derive(Default)]
struct Table {
    rows: BTreeMap<String, (String, u32, u64, Option<i64>, String)>,
}

impl Table {
    fn io(&mut self, io: &Value, bank: &mut Sandbox, now: i64) -> Value {
        let row = |io: &Value| {
            (
                io["order_id"].as_str().unwrap().to_owned(),
                io["attempt"].as_u64().unwrap() as u32,
                io["revision"].as_u64().unwrap(),
                io["in_flight_since"].as_i64(),
                io["record"].as_str().unwrap().to_owned(),
            )
        };
        let loaded = |r: Option<&(String, u32, u64, Option<i64>, String)>| json!({"result": "loaded", "record": r.map(|r| r.4.clone())});
        match io["op"].as_str().unwrap() {
            "load" => loaded(self.rows.get(io["key"].as_str().unwrap())),
            "latest_for_order" => {
                let order = io["order_id"].as_str().unwrap();
                loaded(
                    self.rows
                        .values()
                        .filter(|r| r.0 == order)
                        .max_by_key(|r| r.1),
                )
            }
            "insert" => {
                let key = io["key"].as_str().unwrap().to_owned();
                if self.rows.contains_key(&key) {
                    return json!({"result": "conflict"});
                }
                self.rows.insert(key, row(io));
                json!({"result": "stored"})
            }
            "replace" => {
                let key = io["key"].as_str().unwrap();
                match self.rows.get_mut(key) {
                    Some(r) if Some(r.2) == io["expected"].as_u64() => {
                        *r = row(io);
                        json!({"result": "stored"})
                    }
                    _ => json!({"result": "conflict"}),
                }
            }
            "list_in_flight" => {
                let before = io["before"].as_i64().unwrap();
                let mut keys: Vec<_> = self
                    .rows
                    .iter()
                    .filter_map(|(k, r)| r.3.filter(|&t| t < before).map(|t| (t, k.clone())))
                    .collect();
                keys.sort();
                keys.truncate(io["limit"].as_u64().unwrap() as usize);
                json!({"result": "listed", "keys": keys.into_iter().map(|k| k.1).collect::<Vec<_>>()})
            }
            "send" => {
                assert!(now <= io["send_by"].as_i64().unwrap());
                assert_eq!(io["timeout_ms"], 30_000);
                let request = &io["request"];
                let url = request["url"].as_str().unwrap();
                let mut req = HttpRequest::new(
                    request["method"].as_str().unwrap(),
                    url.strip_prefix(BASE).unwrap(),
                );
                for h in request["headers"].as_array().unwrap() {
                    req = req.with_header(h[0].as_str().unwrap(), h[1].as_str().unwrap());
                }
                req = req.with_body(request["body"].as_str().unwrap().as_bytes().to_vec());
                let answer = bank.handle(&req, direct_otp::wire::time_from_ms(now).unwrap());
                json!({"result": "answer", "status": answer.status,
                       "body": String::from_utf8(answer.body).unwrap()})
            }
            other => panic!("an I/O this host does not know: {other}"),
        }
    }

    /// One driver call to its end: its result.
    fn drive(&mut self, bank: &mut Sandbox, call: Value, now: i64) -> Value {
        let mut call = call;
        call["config"] = config();
        call["timeout_ms"] = json!(30_000);
        let mut steps = HostSteps::new(call.to_string().as_bytes()).unwrap();
        let mut input = json!({"result": "begin"});
        for _ in 0..100 {
            let step: Value =
                serde_json::from_str(&steps.resume(input.to_string().as_bytes(), now).unwrap())
                    .unwrap();
            match step.get("io") {
                Some(io) => input = self.io(io, bank, now),
                None => return step["finished"].clone(),
            }
        }
        panic!("the call did not finish");
    }
}

#[test]
fn a_host_loop_pays_and_settles_through_host_steps() {
    let mut bank = Sandbox::new(
        SandboxConfig::new(KEY)
            .with_otp(OtpSource::Fixed(OTP.into()))
            .with_return_url("https://shop.example/return"),
    );
    let mut table = Table::default();
    let started = table.drive(
        &mut bank,
        json!({"call": "start", "start": start("host_1", "tok_visa")}),
        T0,
    );
    assert_eq!(started["outcome"]["code"], "otp_sent", "{started}");
    assert_eq!(started["view"]["status"], "PENDING_VBV");
    let stored = &table.rows["host_1/1"];
    let columns = call(json!({"fn": "columns", "record": stored.4}));
    assert_eq!(
        columns,
        json!({"key": "host_1/1", "order_id": "host_1", "attempt": 1, "revision": stored.2,
               "in_flight_since": null, "record": stored.4})
    );
    assert_eq!(started["record"].as_str(), Some(stored.4.as_str()));
    assert_eq!(stored.3, None, "the answer stored, nothing in flight");

    let run = |table: &mut Table, bank: &mut Sandbox, command: Value, now: i64| {
        table.drive(
            bank,
            json!({"call": "run", "key": "host_1/1", "command": command}),
            now,
        )
    };
    let early = run(
        &mut table,
        &mut bank,
        json!({"command": "resend"}),
        T0 + 1_000,
    );
    assert_eq!(early["error"]["code"], "cooldown", "{early}");
    let resent = run(
        &mut table,
        &mut bank,
        json!({"command": "resend"}),
        T0 + 31_000,
    );
    assert_eq!(resent["outcome"]["code"], "otp_sent", "{resent}");
    let wrong = json!({"command": "submit", "otp": "000000"});
    let wrong = run(&mut table, &mut bank, wrong, T0 + 32_000);
    assert_eq!(wrong["outcome"]["code"], "wrong_otp", "{wrong}");
    let right = json!({"command": "submit", "otp": OTP});
    let paid = run(&mut table, &mut bank, right, T0 + 33_000);
    assert_eq!(paid["outcome"]["code"], "approved", "{paid}");
    assert_eq!(paid["view"]["paid"], true);

    // The bank page, then its signed return settled in one call (the order status checked).
    let page = table.drive(
        &mut bank,
        json!({"call": "start", "start": start("host_2", "tok_visa")}),
        T0,
    );
    assert_eq!(page["outcome"]["code"], "otp_sent");
    let page = table.drive(
        &mut bank,
        json!({"call": "bank_page", "key": "host_2/1"}),
        T0 + 1_000,
    );
    assert!(page["url"].as_str().unwrap().starts_with(BASE), "{page}");
    let txn = bank.latest_transaction("host_2").unwrap().id;
    bank.complete_bank_page(&txn, BankPageResult::Success)
        .unwrap();
    let query = bank.return_query("host_2").unwrap();
    let settled = table.drive(
        &mut bank,
        json!({"call": "settle", "settlement": {"kind": "return_url", "query": query,
                                                "response_key": SANDBOX_RESPONSE_KEY}}),
        T0 + 3_000,
    );
    assert_eq!(settled["check"]["outcome"]["code"], "approved", "{settled}");
    assert_eq!(settled["view"]["paid"], true);

    // A row that does not load: the call fails with the store's code, the row untouched.
    table.rows.get_mut("host_2/1").unwrap().4 = "{\"not\": \"a payment\"}".into();
    let broken = table.drive(
        &mut bank,
        json!({"call": "run", "key": "host_2/1", "command": {"command": "check_status"}}),
        T0 + 4_000,
    );
    assert_eq!(broken["error"]["code"], "store", "{broken}");
    assert_eq!(broken["error"]["reason"], "store_corrupt", "{broken}");
    assert_eq!(table.rows["host_2/1"].4, "{\"not\": \"a payment\"}");

    // The sweep finds nothing in flight.
    let swept = table.drive(
        &mut bank,
        json!({"call": "sweep", "limit": 10, "check": true}),
        T0 + 600_000,
    );
    assert_eq!(swept, json!({"swept": []}));
}

#[test]
fn misuse_of_the_host_api_is_coded() {
    let code = |r: Result<String, host::HostError>| r.unwrap_err().code().to_owned();
    assert_eq!(code(host::call(b"{")), "wire_syntax");
    // A configuration and a start request checked when they are made: their forms out,
    // without the key or the card, or their codes.
    let checked =
        call(json!({"fn": "check", "config": config(), "start": start("c_1", "tok_visa")}));
    assert_eq!(checked["config"]["base_url"], BASE);
    assert!(!checked.to_string().contains(KEY) && !checked.to_string().contains("tok_visa"));
    let bad = json!({"fn": "check", "config": {"base_url": "ftp://x", "api_key": "k"}});
    assert_eq!(
        code(host::call(bad.to_string().as_bytes())),
        "base_url_scheme"
    );
    assert_eq!(code(host::call(br#"{"fn":"fly"}"#)), "wire_shape");
    assert_eq!(
        code(host::call(br#"{"fn":"view","now_ms":0}"#)),
        "wire_shape"
    );
    assert_eq!(
        code(host::call(br#"{"fn":"view","record":"[]","now_ms":0}"#)),
        "bad_record"
    );
    let begun = call(json!({"fn": "begin", "config": config(),
                            "start": start("m_1", "tok_visa"), "now_ms": T0}));
    // A command while the start is in flight: the refusal's code.
    let refused = host::call(
        json!({"fn": "command", "config": config(), "record": begun["record"],
               "command": {"command": "resend"}, "now_ms": T0})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(code(refused), "in_flight");
    let otp = host::call(
        json!({"fn": "command", "config": config(), "record": begun["record"],
               "command": {"command": "submit", "otp": "12x4"}, "now_ms": T0})
        .to_string()
        .as_bytes(),
    )
    .unwrap_err();
    assert_eq!(otp.code(), "otp_not_digits");
    assert!(!otp.to_string().contains("12x4") && !otp.to_wire().to_string().contains("12x4"));
    // A resume with the wrong form changes nothing: the right one goes on.
    let mut steps = HostSteps::new(
        json!({"config": config(), "timeout_ms": 1000, "call": "bank_page", "key": "k/1"})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        steps
            .resume(br#"{"result":"nonsense"}"#, T0)
            .unwrap_err()
            .code(),
        "wire_shape"
    );
    assert!(steps
        .resume(br#"{"result":"begin"}"#, T0)
        .unwrap()
        .contains("\"load\""));
    assert_eq!(
        steps
            .resume(br#"{"result":"begin"}"#, i64::MAX)
            .unwrap_err()
            .code(),
        "wire_shape"
    );
    let unknown = HostSteps::new(
        json!({"config": config(), "timeout_ms": 1000, "call": "fly"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(unknown.unwrap_err().code(), "wire_shape");
    let bad_webhook = host::start_sandbox(br#"{"api_key":"k","webhook_url":"https://x.example/"}"#);
    assert_eq!(bad_webhook.unwrap_err().code(), "sandbox_webhook_url");
    let server = host::start_sandbox(br#"{"api_key":"k"}"#).unwrap();
    assert!(server.base_url().starts_with("http://127.0.0.1:"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes to any entry point: a coded error from the registry or a result, never a
    /// panic.
    #[test]
    fn hostile_input_is_coded(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                              func in prop::sample::select(vec!["view", "begin", "command",
                                  "handle", "next_step", "codes", "version"])) {
        for input in [bytes.clone(), json!({"fn": func, "record": String::from_utf8_lossy(&bytes),
                "config": config(), "now_ms": -1}).to_string().into_bytes()] {
            if let Err(e) = host::call(&input) {
                prop_assert!(direct_otp::codes::find(e.code()).is_some(), "{}", e.code());
            }
            if let Err(e) = HostSteps::new(&input) {
                prop_assert!(direct_otp::codes::find(e.code()).is_some(), "{}", e.code());
            }
        }
    }
}

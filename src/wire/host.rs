//! The host API: everything a binding for another language (Python, Node, ...) calls, as
//! JSON text in and JSON text out, so each binding is a thin layer that moves strings and
//! maps errors, and every rule stays here.
//!
//! * [`call`]: the stateless calls (`{"fn": "view" | "new" | "begin" | "command" | "handle" |
//!   "next_step" | "codes" | "version", ...}`): a payment's view, the sans-IO steps of a
//!   payment without a driver, the code registry.
//! * [`HostSteps`]: one driver call (run, start, start_next, bank_page, settle, sweep) as the
//!   step machine of [`Protocol`], its I/O in the host form: a
//!   payment crosses as its stored text (`"record"`), with the columns a store keeps beside
//!   it.
//! * [`sqlite_io`] (feature `sqlite`): one store I/O done on the crate's own
//!   [`SqliteStore`](crate::store::SqliteStore), for a host without a SQLite driver of its own.
//! * [`start_sandbox`] (feature `sandbox-server`): the sandbox over loopback, control API on.
//!
//! Every failure is a [`HostError`]: a registry code, its wire form and a message, never a
//! secret. `docs/bindings.md` documents every form.
//!
//! ```
//! use direct_otp::wire::host;
//!
//! let view = host::call(br#"{"fn":"version"}"#).unwrap();
//! assert!(view.contains("\"format\":"));
//! let err = host::call(br#"{"fn":"view","record":"{}","now_ms":0}"#).unwrap_err();
//! assert_eq!(err.code(), "bad_record");
//! ```

use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::{ms, ToWire, WireError};
use crate::driver::{self, Done, DriveError, Input, Io, Protocol, Step, Steps, Swept};
use crate::payment::Payment;
use crate::store::StoreError;

/// A host call's failure: a stable code from the registry ([`crate::codes`]), its wire form
/// (`{"code": ..., ...fields}`, the same as the error's [`ToWire`] form) and a message for
/// people. None of them holds a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct HostError {
    code: String,
    wire: Value,
    message: String,
}

impl HostError {
    fn of<E: ToWire + fmt::Display>(e: &E) -> HostError {
        let wire = e.to_wire();
        let code = wire
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or("wire_shape")
            .to_owned();
        HostError {
            code,
            wire,
            message: e.to_string(),
        }
    }

    /// The stable snake_case code (see `docs/codes.md`).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The wire form: `{"code": ..., ...fields}`.
    pub fn to_wire(&self) -> &Value {
        &self.wire
    }

    /// The message, for people (the same as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HostError {}

impl From<WireError> for HostError {
    fn from(e: WireError) -> Self {
        HostError::of(&e)
    }
}

fn shape() -> HostError {
    WireError::Shape { line: 1, column: 1 }.into()
}

fn need<T>(v: Option<T>) -> Result<T, HostError> {
    v.ok_or_else(shape)
}

fn now(ms: Option<i64>) -> Result<OffsetDateTime, HostError> {
    Ok(super::time_from_ms(need(ms)?)?)
}

/// The payment's stored text: what a store keeps, byte for byte.
fn text(payment: &Payment) -> String {
    serde_json::to_string(payment).unwrap_or_default()
}

/// The fields of a stateless call; which are needed depends on `fn`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallForm<'a> {
    #[serde(rename = "fn")]
    func: String,
    #[serde(default)]
    record: Option<String>,
    #[serde(default, borrow)]
    config: Option<&'a RawValue>,
    #[serde(default, borrow)]
    start: Option<&'a RawValue>,
    #[serde(default, borrow)]
    command: Option<&'a RawValue>,
    #[serde(default, borrow)]
    reply: Option<&'a RawValue>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    attempt: Option<u32>,
    #[serde(default)]
    now_ms: Option<i64>,
}

fn record(form: &CallForm<'_>) -> Result<Payment, HostError> {
    Ok(super::record(need(form.record.as_deref())?.as_bytes())?)
}

fn raw(v: Option<&RawValue>) -> Result<&[u8], HostError> {
    Ok(need(v)?.get().as_bytes())
}

/// `{"record": "<text>", <name>: <JSON text>}`, written straight out (no `Value`).
fn record_and(payment: &Payment, name: &str, json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 2_048);
    out.push_str("{\"record\":");
    // A payment always serializes; an empty string would not load and says so.
    let text = serde_json::to_string(&text(payment)).unwrap_or_else(|_| "\"\"".into());
    out.push_str(&text);
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
    out.push_str(json);
    out.push('}');
    out
}

/// A stateless call: `{"fn": ..., ...}` in, its result's JSON text out.
///
/// | `fn` | takes | gives |
/// |---|---|---|
/// | `version` | | `{"version", "format"}` |
/// | `codes` | | the registry: `[{"code", "types", "meaning", "action", "http"}]` |
/// | `check` | `config`?, `start`? | `{"config", "start"}`: their wire forms out (no key, no card data), or why they are refused: to check them when they are made |
/// | `columns` | `record` | what a store keeps beside the record: `{"key", "order_id", "attempt", "revision", "in_flight_since", "record"}` (as the `insert` I/O of [`HostSteps`]) |
/// | `view` | `record`, `now_ms` | the payment's view |
/// | `next_step` | `record`, `now_ms` | its next step |
/// | `new` | `start`, `attempt` (default 1), `now_ms` | `{"record"}`: a new payment, nothing sent (start it with the command `start` and the card) |
/// | `begin` | `config`, `start`, `attempt` (default 1), `now_ms` | `{"record", "request"}`: the new payment, in flight, and its `POST /txns` |
/// | `command` | `config`, `record`, `command`, `now_ms` | `{"record", "request"}`, or the refusal (its code) as the error |
/// | `handle` | `record`, `token`, `reply`, `now_ms` | `{"record", "outcome"}` |
///
/// A `record` is the payment's stored text (a string); the other forms are those of
/// `docs/protocol.md`. Store the record a call gives before sending its request (the
/// write-ahead): the [`HostSteps`] do that for you.
pub fn call(json: &[u8]) -> Result<String, HostError> {
    let form: CallForm<'_> = super::input::parse(json)?;
    let out = match form.func.as_str() {
        "version" => json!({
            "version": env!("CARGO_PKG_VERSION"),
            "format": crate::payment::PAYMENT_FORMAT_VERSION,
        }),
        "codes" => Value::Array(
            crate::codes::all()
                .iter()
                .map(|c| {
                    json!({"code": c.code, "types": c.types, "meaning": c.meaning,
                           "action": c.action, "http": c.http})
                })
                .collect(),
        ),
        "check" => {
            let config = form
                .config
                .map(|c| super::config(c.get().as_bytes()))
                .transpose()?;
            let start = form
                .start
                .map(|s| super::start_request(s.get().as_bytes()))
                .transpose()?;
            json!({"config": config.map(|c| c.to_wire()), "start": start.map(|s| s.to_wire())})
        }
        "columns" => Value::Object(columns(&record(&form)?)),
        "view" => record(&form)?.view(now(form.now_ms)?).to_wire(),
        "next_step" => record(&form)?.next_step(now(form.now_ms)?).to_wire(),
        "new" => {
            let start = super::start_request(raw(form.start)?)?;
            let payment = Payment::new(&start, form.attempt.unwrap_or(1), now(form.now_ms)?);
            json!({"record": text(&payment)})
        }
        "begin" => {
            let config = super::config(raw(form.config)?)?;
            let start = super::start_request(raw(form.start)?)?;
            let (payment, out) = Payment::begin(
                &config,
                &start,
                form.attempt.unwrap_or(1),
                now(form.now_ms)?,
            );
            json!({"record": text(&payment), "request": out.to_wire()})
        }
        "command" => {
            let config = super::config(raw(form.config)?)?;
            let command = super::command(raw(form.command)?)?;
            let mut payment = record(&form)?;
            let out = command
                .issue(&mut payment, &config, now(form.now_ms)?)
                .map_err(|r| HostError::of(&r))?;
            return Ok(record_and(&payment, "request", &out.to_wire_string()));
        }
        "handle" => {
            let token = super::token(need(form.token.as_deref())?)?;
            let reply = super::reply(raw(form.reply)?)?;
            let mut payment = record(&form)?;
            let outcome = payment
                .handle(token, reply, now(form.now_ms)?)
                .map_err(|e| HostError::of(&e))?;
            return Ok(record_and(&payment, "outcome", &outcome.to_wire_string()));
        }
        _ => return Err(shape()),
    };
    Ok(out.to_string())
}

/// The fields of a driver call.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepsForm<'a> {
    #[serde(borrow)]
    config: &'a RawValue,
    timeout_ms: u64,
    #[serde(default)]
    grace_ms: Option<u64>,
    call: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default, borrow)]
    command: Option<&'a RawValue>,
    #[serde(default, borrow)]
    start: Option<&'a RawValue>,
    #[serde(default)]
    attempt: Option<u32>,
    #[serde(default, borrow)]
    settlement: Option<&'a RawValue>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    check: Option<bool>,
}

enum Machine {
    Done(Steps<Done>),
    BankPage(Steps<driver::BankPage>),
    Settled(Steps<driver::Settled>),
    Swept(Steps<Vec<Swept>>),
}

/// One driver call as sans-IO steps for a host language: the same step machine the Rust
/// drivers run ([`Protocol`]), its I/O and results as JSON text.
///
/// [`new`](Self::new) takes `{"config": {...}, "timeout_ms": 30000, "grace_ms"?: 60000,
/// "call": ...}` with, per call, `"run"` + `"key"` + `"command"`, `"start"` + `"start"` +
/// `"attempt"` (default 1), `"start_next"` + `"start"`, `"bank_page"` + `"key"`, `"settle"`
/// + `"settlement"` (the hint form of [`wire::settlement`](super::settlement), verified
///   here), or `"sweep"` + `"limit"` + `"check"`.
///
/// [`resume`](Self::resume) takes the result of the last I/O (first `{"result":"begin"}`)
/// and the host's clock, and gives `{"io": {...}}`, the next I/O to do, or
/// `{"finished": {...}}`: the call's result (`record` and `view` with the driver's result's
/// fields) or `{"error": {...}}`. The I/O and the results to hand back:
///
/// | `io` | hand back |
/// |---|---|
/// | `{"op":"load","key"}` | `{"result":"loaded","record":"<text>" \| null}` |
/// | `{"op":"latest_for_order","order_id"}` | as `load` |
/// | `{"op":"insert","key","order_id","attempt","revision","in_flight_since","record"}` | `{"result":"stored"}` or `{"result":"conflict"}` |
/// | `{"op":"replace","expected", ...as insert}` | `stored`, or `conflict` when the revision is not `expected` |
/// | `{"op":"list_in_flight","before","limit"}` | `{"result":"listed","keys":[...]}` |
/// | `{"op":"send","key","request","send_by","timeout_ms"}` | `{"result":"answer","status","body"}` or `{"result":"send_failed","maybe_sent"}` |
/// | `{"op":"pause","wait"}` | `{"result":"paused"}` |
///
/// Any store I/O may give `{"result":"store_failed","transient":true,"message":"..."}`.
///
/// ```
/// use direct_otp::wire::host::HostSteps;
///
/// let mut steps = HostSteps::new(br#"{"config":{"base_url":"https://sandbox.juspay.in",
///     "api_key":"sk_test"},"timeout_ms":30000,"call":"bank_page","key":"ord_1/1"}"#)?;
/// let io = steps.resume(br#"{"result":"begin"}"#, 1_764_064_800_000)?;
/// assert_eq!(io, r#"{"io":{"key":"ord_1/1","op":"load"}}"#);
/// let done = steps.resume(br#"{"result":"loaded","record":null}"#, 1_764_064_800_000)?;
/// assert!(done.contains(r#""code":"not_found""#));
/// # Ok::<(), direct_otp::wire::host::HostError>(())
/// ```
pub struct HostSteps {
    machine: Machine,
    timeout_ms: u64,
    /// What the last load asked for: the key a record that does not load is reported under.
    loading: String,
}

impl fmt::Debug for HostSteps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostSteps")
            .field("timeout_ms", &self.timeout_ms)
            .finish_non_exhaustive()
    }
}

impl HostSteps {
    /// The call's steps; see the type's docs for the JSON.
    pub fn new(json: &[u8]) -> Result<HostSteps, HostError> {
        let form: StepsForm<'_> = super::input::parse(json)?;
        let config = super::config(form.config.get().as_bytes())?;
        let timeout = std::time::Duration::from_millis(form.timeout_ms);
        let mut protocol = Protocol::new(config, timeout);
        if let Some(grace) = form.grace_ms {
            protocol = protocol.with_grace(std::time::Duration::from_millis(grace));
        }
        let key = || need(form.key.as_deref());
        let machine = match form.call.as_str() {
            "run" => Machine::Done(protocol.run(key()?, super::command(raw(form.command)?)?)),
            "start" => Machine::Done(protocol.start(
                super::start_request(raw(form.start)?)?,
                form.attempt.unwrap_or(1),
            )),
            "start_next" => {
                Machine::Done(protocol.start_next(super::start_request(raw(form.start)?)?))
            }
            "bank_page" => Machine::BankPage(protocol.bank_page(key()?)),
            "settle" => {
                Machine::Settled(protocol.settle(super::settlement(raw(form.settlement)?)?))
            }
            "sweep" => Machine::Swept(protocol.sweep(need(form.limit)?, need(form.check)?)),
            _ => return Err(shape()),
        };
        Ok(HostSteps {
            machine,
            timeout_ms: form.timeout_ms,
            loading: String::new(),
        })
    }

    /// Hands the result of the last I/O (first `{"result":"begin"}`) and the time now (Unix
    /// ms); gives `{"io": ...}` or `{"finished": ...}`. Input that is not JSON of a result's
    /// form is refused (`wire_syntax`, `wire_shape`) and changes nothing: resume again with
    /// the right form. A record that does not load is handed to the machine as the store's
    /// `corrupt` failure under its key (the order id, for `latest_for_order`; the call then
    /// fails with `store`, the row untouched).
    pub fn resume(&mut self, input: &[u8], now_ms: i64) -> Result<String, HostError> {
        let now = super::time_from_ms(now_ms)?;
        let input = self.input(input)?;
        let out = match &mut self.machine {
            Machine::Done(s) => match s.resume(input, now) {
                Step::Io(io) => Err(io),
                Step::Finished(r) => Ok(finished(r.map(|d| done(&d, now)))),
            },
            Machine::BankPage(s) => match s.resume(input, now) {
                Step::Io(io) => Err(io),
                Step::Finished(r) => Ok(finished(
                    r.map(|b| with_record(b.to_wire(), &b.payment, now)),
                )),
            },
            Machine::Settled(s) => match s.resume(input, now) {
                Step::Io(io) => Err(io),
                Step::Finished(r) => Ok(finished(
                    r.map(|d| with_record(d.to_wire(), &d.payment, now)),
                )),
            },
            Machine::Swept(s) => match s.resume(input, now) {
                Step::Io(io) => Err(io),
                Step::Finished(r) => Ok(finished(r.map(|swept| {
                    let list = swept.iter().map(|s| swept_form(s, now)).collect();
                    let mut m = Map::new();
                    m.insert("swept".into(), Value::Array(list));
                    m
                }))),
            },
        };
        Ok(match out {
            Ok(result) => json!({"finished": result}).to_string(),
            Err(io) => json!({"io": self.io(io)}).to_string(),
        })
    }

    /// The host's result as the machine's input: a loaded record is read here.
    fn input(&self, json: &[u8]) -> Result<Input, HostError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum LoadedTag {
            Loaded,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Loaded {
            #[allow(dead_code, reason = "only `loaded` parses")]
            result: LoadedTag,
            record: Option<String>,
        }
        if let Ok(loaded) = serde_json::from_slice::<Loaded>(json) {
            return Ok(match loaded.record {
                None => Input::Loaded(None),
                Some(text) => match super::record(text.as_bytes()) {
                    Ok(payment) => Input::Loaded(Some(payment)),
                    Err(e) => Input::StoreFailed(StoreError::Corrupt {
                        key: self.loading.clone(),
                        source: Box::new(e),
                    }),
                },
            });
        }
        serde_json::from_slice(json).map_err(|e| WireError::json(&e).into())
    }

    /// An I/O in the host form (a payment as its text and columns).
    fn io(&mut self, io: Io) -> Value {
        match io {
            Io::Insert { payment } => {
                let mut m = columns(&payment);
                m.insert("op".into(), "insert".into());
                Value::Object(m)
            }
            Io::Replace { expected, payment } => {
                let mut m = columns(&payment);
                m.insert("op".into(), "replace".into());
                m.insert("expected".into(), expected.into());
                Value::Object(m)
            }
            other => {
                match &other {
                    Io::Load { key } => self.loading.clone_from(key),
                    Io::LatestForOrder { order_id } => self.loading.clone_from(order_id),
                    _ => {}
                }
                let mut v = serde_json::to_value(&other).unwrap_or(Value::Null);
                if let (Io::Send { .. }, Value::Object(m)) = (&other, &mut v) {
                    m.insert("timeout_ms".into(), self.timeout_ms.into());
                }
                v
            }
        }
    }
}

/// The columns a store keeps beside the record text.
fn columns(payment: &Payment) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("key".into(), payment.key().into());
    m.insert("order_id".into(), payment.order_id().into());
    m.insert("attempt".into(), payment.attempt().into());
    m.insert("revision".into(), payment.revision().into());
    m.insert(
        "in_flight_since".into(),
        payment.in_flight_since().map(ms).into(),
    );
    m.insert("record".into(), text(payment).into());
    m
}

/// A result's form with the payment as its text and its view now.
fn with_record(form: Value, payment: &Payment, now: OffsetDateTime) -> Map<String, Value> {
    let Value::Object(mut m) = form else {
        return Map::new();
    };
    m.insert("record".into(), text(payment).into());
    m.insert("view".into(), payment.view(now).to_wire());
    m
}

fn done(d: &Done, now: OffsetDateTime) -> Map<String, Value> {
    with_record(d.to_wire(), &d.payment, now)
}

fn swept_form(s: &Swept, now: OffsetDateTime) -> Value {
    let v = s.to_wire();
    match (s, v) {
        (
            Swept::Recovered {
                check: Some(Ok(d)), ..
            },
            Value::Object(mut m),
        ) => {
            m.insert("check".into(), Value::Object(done(d, now)));
            Value::Object(m)
        }
        (_, v) => v,
    }
}

fn finished(r: Result<Map<String, Value>, DriveError>) -> Value {
    match r {
        Ok(m) => Value::Object(m),
        Err(e) => json!({"error": e.to_wire()}),
    }
}

/// Does one store I/O of the host form (`load`, `latest_for_order`, `insert`, `replace`,
/// `list_in_flight`) on the crate's [`SqliteStore`](crate::store::SqliteStore) and gives the
/// result to hand back to [`HostSteps::resume`]: for a host language without a SQLite
/// driver of its own (Node 20). An I/O that is not a store's is refused (`wire_shape`).
#[cfg(feature = "sqlite")]
pub fn sqlite_io(store: &crate::store::SqliteStore, io: &[u8]) -> Result<String, HostError> {
    use crate::store::Store;

    #[derive(Deserialize)]
    #[serde(tag = "op", rename_all = "snake_case")]
    enum StoreIo {
        Load { key: String },
        LatestForOrder { order_id: String },
        Insert { record: String },
        Replace { expected: u64, record: String },
        ListInFlight { before: i64, limit: usize },
    }
    let io: StoreIo = super::input::parse(io)?;
    let loaded = |r: Result<Option<Payment>, StoreError>| match r {
        Ok(p) => json!({"result": "loaded", "record": p.as_ref().map(text)}),
        Err(e) => store_failed(&e),
    };
    let stored = |r: Result<(), StoreError>| match r {
        Ok(()) => json!({"result": "stored"}),
        Err(e) if e.is_conflict() => json!({"result": "conflict"}),
        Err(e) => store_failed(&e),
    };
    let out = match io {
        StoreIo::Load { key } => loaded(store.load(&key)),
        StoreIo::LatestForOrder { order_id } => loaded(store.latest_for_order(&order_id)),
        StoreIo::Insert { record } => stored(store.insert(&super::record(record.as_bytes())?)),
        StoreIo::Replace { expected, record } => {
            stored(store.replace(expected, &super::record(record.as_bytes())?))
        }
        StoreIo::ListInFlight { before, limit } => {
            match Store::<Payment>::in_flight_before(store, super::time_from_ms(before)?, limit) {
                Ok(keys) => json!({"result": "listed", "keys": keys}),
                Err(e) => store_failed(&e),
            }
        }
    };
    Ok(out.to_string())
}

#[cfg(feature = "sqlite")]
fn store_failed(e: &StoreError) -> Value {
    json!({
        "result": "store_failed",
        "transient": matches!(e, StoreError::Backend { .. }),
        "corrupt": matches!(e, StoreError::Corrupt { .. }),
        "key": e.key().unwrap_or_default(),
        "message": e.to_string(),
    })
}

/// Starts the sandbox on `127.0.0.1` with its control API on: `{"api_key": "...", "port"?:
/// 0, "otp"?: "123456" (every OTP; default a seeded sequence), "webhook_url"?: "http://
/// 127.0.0.1:PORT/...", "webhook_username"?, "webhook_password"?, "response_key"?,
/// "return_url"?, "max_sends"?, "max_attempts"?}`. The server stops when dropped. Errors:
/// `wire_shape`, `sandbox_webhook_url` (not `http://` on loopback), `sandbox_unavailable`
/// (the port could not be bound).
#[cfg(feature = "sandbox-server")]
pub fn start_sandbox(json: &[u8]) -> Result<crate::sandbox::SandboxServer, HostError> {
    use crate::sandbox::{OtpSource, Sandbox, SandboxConfig, SandboxServer};

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        api_key: String,
        #[serde(default)]
        port: u16,
        #[serde(default)]
        otp: Option<String>,
        #[serde(default)]
        webhook_url: Option<String>,
        #[serde(default)]
        webhook_username: Option<String>,
        #[serde(default)]
        webhook_password: Option<String>,
        #[serde(default)]
        response_key: Option<String>,
        #[serde(default)]
        return_url: Option<String>,
        #[serde(default)]
        max_sends: Option<u32>,
        #[serde(default)]
        max_attempts: Option<u32>,
    }
    let s: Settings = super::input::parse(json)?;
    let mut config = SandboxConfig::new(&s.api_key);
    config.control_api = true;
    if let Some(otp) = s.otp {
        config = config.with_otp(OtpSource::Fixed(otp));
    }
    if let Some(url) = s.webhook_url {
        config = config
            .with_webhook_url(&url)
            .map_err(|e| SandboxError::WebhookUrl(e).host())?;
    }
    if let (Some(user), Some(password)) = (s.webhook_username, s.webhook_password) {
        config = config.with_webhook_credentials(&user, &password);
    }
    if let Some(key) = s.response_key {
        config = config.with_response_key(&key);
    }
    if let Some(url) = s.return_url {
        config = config.with_return_url(&url);
    }
    if s.max_sends.is_some() || s.max_attempts.is_some() {
        let (sends, attempts) = (config.max_sends, config.max_attempts);
        config = config.with_limits(
            s.max_sends.unwrap_or(sends),
            s.max_attempts.unwrap_or(attempts),
        );
    }
    SandboxServer::start_on(Sandbox::new(config), s.port)
        .map_err(|e| SandboxError::Unavailable(e.to_string()).host())
}

/// Why the sandbox did not start ([`start_sandbox`]).
#[cfg(feature = "sandbox-server")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The webhook URL is not `http://` on loopback.
    #[error(transparent)]
    WebhookUrl(crate::sandbox::WebhookUrlError),
    /// The port could not be bound: free it, or ask for port 0.
    #[error("the sandbox could not listen on 127.0.0.1: {0}")]
    Unavailable(String),
}

#[cfg(feature = "sandbox-server")]
impl SandboxError {
    /// `sandbox_webhook_url` or `sandbox_unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            SandboxError::WebhookUrl(_) => "sandbox_webhook_url",
            SandboxError::Unavailable(_) => "sandbox_unavailable",
        }
    }

    fn host(&self) -> HostError {
        HostError::of(self)
    }
}

#[cfg(feature = "sandbox-server")]
impl ToWire for SandboxError {
    fn to_wire(&self) -> Value {
        Value::Object(super::coded(self.code()))
    }
}

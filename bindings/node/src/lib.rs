//! `direct-otp-node`: the core's host API ([`direct_otp::wire::host`]) as a Node add-on.
//!
//! Thin on purpose: JSON text goes in and comes out; every decision stays in the core.
//! What it adds is what a JavaScript caller needs at the boundary:
//!
//! * a [`HostError`] becomes a JS `Error` whose `code` is its registry code, whose other
//!   wire fields are its own properties, and whose `message` is the error's message (never a
//!   secret);
//! * an argument of the wrong JS type (a number where JSON text is expected, a time that is
//!   not a whole number of milliseconds) is refused the same way (`wire_syntax`,
//!   `wire_shape`), never with napi's own errors;
//! * a panic is caught (`catch_unwind`) and thrown as an error, never unwound across the FFI
//!   boundary: no input crashes the process.
//!
//! The TypeScript layer (`src/*.ts`) builds the idiomatic classes on top of this.

#![deny(clippy::all)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use direct_otp::sandbox::SandboxServer as CoreSandboxServer;
use direct_otp::store::SqliteStore as CoreSqliteStore;
use direct_otp::wire::host::{self, HostError};
use direct_otp::wire::ToWire;
use napi::bindgen_prelude::*;
use napi::{Env, Task, ValueType};
use napi_derive::napi;
use serde_json::{json, Value};

/// A JS `Error` of `wire` (`{"code": ..., ...fields}`) with `message`: `code` and the other
/// fields are its own properties.
fn error_object<'e>(env: &'e Env, wire: Value, message: &str) -> Result<Object<'e>> {
    let mut error = env.create_error(Error::new(Status::GenericFailure, message.to_owned()))?;
    if let Value::Object(fields) = wire {
        for (name, value) in fields {
            error.set_named_property(&name, value)?;
        }
    }
    Ok(error)
}

/// Throws `wire` as a JS `Error` (see [`error_object`]), and gives the napi error that
/// tells the glue an exception is pending.
fn throw(env: &Env, wire: Value, message: &str) -> Error {
    match error_object(env, wire, message).and_then(|e| env.throw(e)) {
        Ok(()) => Error::from_status(Status::PendingException),
        Err(e) => e,
    }
}

fn host_error(env: &Env, e: &HostError) -> Error {
    throw(env, e.to_wire().clone(), e.message())
}

/// JSON text from a JS argument: a string, or a `Buffer`/`Uint8Array` of UTF-8 bytes.
/// Anything else is not JSON text (`wire_syntax`).
fn text(env: &Env, value: Unknown<'_>, what: &str) -> Result<Vec<u8>> {
    let kind = value.get_type()?;
    if kind == ValueType::String {
        return Ok(String::from_unknown(value)?.into_bytes());
    }
    if kind == ValueType::Object && value.is_typedarray()? {
        if let Ok(bytes) = Uint8Array::from_unknown(value) {
            return Ok(bytes.to_vec());
        }
    }
    Err(throw(
        env,
        json!({"code": "wire_syntax", "line": 1, "column": 1}),
        &format!("{what}: not JSON text (a {kind:?}, not a string)"),
    ))
}

/// Unix milliseconds from a JS number: finite, whole, within ±2^53 (`wire_shape` otherwise).
fn millis(env: &Env, value: Unknown<'_>, what: &str) -> Result<i64> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if value.get_type()? == ValueType::Number {
        let n = f64::from_unknown(value)?;
        if n.is_finite() && n.fract() == 0.0 && n.abs() <= MAX_SAFE {
            return Ok(n as i64);
        }
    }
    Err(throw(
        env,
        json!({"code": "wire_shape", "line": 1, "column": 1}),
        &format!("{what}: not a whole number of milliseconds"),
    ))
}

/// `wire::host::call`: one stateless call (`{"fn": ...}`), one JSON text out.
#[napi(catch_unwind)]
pub fn call(env: Env, json: Unknown<'_>) -> Result<String> {
    let json = text(&env, json, "call")?;
    host::call(&json).map_err(|e| host_error(&env, &e))
}

/// One driver call as sans-IO steps (`wire::host::HostSteps`).
#[napi]
pub struct HostSteps {
    inner: host::HostSteps,
}

#[napi]
impl HostSteps {
    /// The call, as the JSON of `HostSteps::new` (config, timeout, the call and its
    /// arguments).
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, json: Unknown<'_>) -> Result<Self> {
        let json = text(&env, json, "HostSteps")?;
        host::HostSteps::new(&json)
            .map(|inner| HostSteps { inner })
            .map_err(|e| host_error(&env, &e))
    }

    /// Hands back the result of the last I/O (first `{"result":"begin"}`) at `now_ms`;
    /// gives `{"io": ...}` or `{"finished": ...}`.
    #[napi(catch_unwind)]
    pub fn resume(&mut self, env: Env, input: Unknown<'_>, now_ms: Unknown<'_>) -> Result<String> {
        let input = text(&env, input, "resume")?;
        let now_ms = millis(&env, now_ms, "now_ms")?;
        self.inner
            .resume(&input, now_ms)
            .map_err(|e| host_error(&env, &e))
    }
}

/// The Rust sandbox served on `127.0.0.1` (feature `sandbox-server`), control API on.
#[napi]
pub struct SandboxServer {
    server: Option<CoreSandboxServer>,
    url: String,
}

#[napi]
impl SandboxServer {
    /// Starts a server (`wire::host::start_sandbox`).
    #[napi(factory, catch_unwind)]
    pub fn start(env: Env, json: Unknown<'_>) -> Result<Self> {
        let json = text(&env, json, "SandboxServer.start")?;
        let server = host::start_sandbox(&json).map_err(|e| host_error(&env, &e))?;
        let url = server.base_url().to_owned();
        Ok(SandboxServer {
            server: Some(server),
            url,
        })
    }

    /// `http://127.0.0.1:PORT`.
    #[napi(getter)]
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Whether `stop` has not been called yet.
    #[napi(getter)]
    pub fn running(&self) -> bool {
        self.server.is_some()
    }

    /// Stops serving (gracefully, its thread joined); again: nothing.
    #[napi(catch_unwind)]
    pub fn stop(&mut self) -> Result<()> {
        drop(self.server.take());
        Ok(())
    }
}

/// The core's SQLite store (`direct_otp::store::SqliteStore`): one file, shared by
/// processes; its I/O in the host form of `wire::host::sqlite_io`.
#[napi]
pub struct SqliteStore {
    store: CoreSqliteStore,
}

/// One store I/O on libuv's thread pool (a write may wait for another process's lock).
pub struct SqliteIo {
    store: CoreSqliteStore,
    io: Vec<u8>,
}

impl Task for SqliteIo {
    type Output = std::result::Result<String, HostError>;
    type JsValue = String;

    fn compute(&mut self) -> Result<Self::Output> {
        let (store, io) = (&self.store, &self.io);
        catch_unwind(AssertUnwindSafe(|| host::sqlite_io(store, io)))
            .map_err(|_| Error::new(Status::GenericFailure, "sqlite_io panicked".to_owned()))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<String> {
        // A refusal rejects the promise with the coded error (not thrown: nobody would
        // catch it here).
        output.map_err(
            |e| match error_object(&env, e.to_wire().clone(), e.message()) {
                Ok(object) => Error::from(object.to_unknown()),
                Err(failed) => failed,
            },
        )
    }
}

#[napi]
impl SqliteStore {
    /// Opens (or creates) the file, in WAL mode, with its table. `busy_timeout_ms`: how long
    /// a write waits for another connection's lock (default 5,000).
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, path: Unknown<'_>, busy_timeout_ms: Option<Unknown<'_>>) -> Result<Self> {
        let path = text(&env, path, "SqliteStore path")?;
        let path = String::from_utf8_lossy(&path).into_owned();
        let refuse = |e: direct_otp::store::StoreError| throw(&env, e.to_wire(), &e.to_string());
        let mut store = CoreSqliteStore::open(&path).map_err(refuse)?;
        if let Some(ms) = busy_timeout_ms
            .filter(|v| !matches!(v.get_type(), Ok(ValueType::Undefined) | Ok(ValueType::Null)))
        {
            let ms = millis(&env, ms, "busy_timeout_ms")?;
            let ms = u64::try_from(ms).unwrap_or(0);
            store = store
                .busy_timeout(Duration::from_millis(ms))
                .map_err(refuse)?;
        }
        Ok(SqliteStore { store })
    }

    /// Performs one store I/O (`{"op": "load", ...}`, the host form) and resolves to the
    /// input to hand back (a database failure is `{"result":"store_failed", ...}`); an I/O
    /// that is not a store's rejects with its code (`wire_syntax`, `wire_shape`, `bad_record`).
    #[napi(catch_unwind, ts_return_type = "Promise<string>")]
    pub fn io(&self, env: Env, io: Unknown<'_>) -> Result<AsyncTask<SqliteIo>> {
        let io = text(&env, io, "SqliteStore.io")?;
        Ok(AsyncTask::new(SqliteIo {
            store: self.store.clone(),
            io,
        }))
    }

    /// The same, blocking the calling thread.
    #[napi(catch_unwind)]
    pub fn io_sync(&self, env: Env, io: Unknown<'_>) -> Result<String> {
        let io = text(&env, io, "SqliteStore.ioSync")?;
        host::sqlite_io(&self.store, &io).map_err(|e| host_error(&env, &e))
    }

    /// The file's path.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.store.path().to_string_lossy().into_owned()
    }
}

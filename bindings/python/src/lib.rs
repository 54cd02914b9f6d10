//! `direct_otp._native`: the core's host API (`direct_otp::wire::host`) as a CPython
//! extension module. It moves JSON text across and nothing else: every rule lives in the
//! core, every idiom in the pure-Python package `direct_otp` around it.
//!
//! * `call(json) -> str`: one stateless call (`{"fn": ...}`);
//! * `HostSteps(json)` with `resume(input, now_ms) -> str`: one driver call as sans-IO steps;
//! * `SandboxServer(json)`: the Rust sandbox on loopback, with `url`, `stop()` and `with`.
//!
//! Every JSON argument is a `str` (or UTF-8 `bytes`). A refusal of the core is raised as
//! `WireError(message, wire_json)` (the core's `HostError`): `wire_json` is the error's wire form (`{"code", ...}`)
//! as text, `message` its human text (never a secret). No input makes this module panic.

use std::sync::{Mutex, MutexGuard};

use direct_otp::sandbox::SandboxServer;
use direct_otp::wire::host::{self, HostError, HostSteps};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

pyo3::create_exception!(
    _native,
    NativeWireError,
    PyException,
    "A refusal of the core: args are (message, wire_json), wire_json its wire form."
);

/// The Python exception for a core's [`HostError`].
fn raise(e: &HostError) -> PyErr {
    NativeWireError::new_err((e.message().to_owned(), e.to_wire().to_string()))
}

/// An argument that is not text at all (an int, None, a list) is not JSON text:
/// `wire_syntax`, as the Node binding says of a non-string argument.
fn not_text(what: &str, got: &Bound<'_, PyAny>) -> PyErr {
    NativeWireError::new_err((
        format!(
            "{what} must be str or bytes (UTF-8 JSON), not {}",
            type_name(got)
        ),
        r#"{"code":"wire_syntax","line":1,"column":1}"#,
    ))
}

/// The name of a Python value's type, for a message.
fn type_name(got: &Bound<'_, PyAny>) -> String {
    got.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// Runs `f` on the UTF-8 bytes of `obj` (a `str` or `bytes`). A `str` that is not valid
/// Unicode (a lone surrogate) is handed over with its surrogates encoded as they are
/// ("surrogatepass"): not UTF-8, so the core refuses it as it refuses any such input.
fn with_json<T>(
    what: &str,
    obj: &Bound<'_, PyAny>,
    f: impl FnOnce(&[u8]) -> PyResult<T>,
) -> PyResult<T> {
    if let Ok(s) = obj.cast::<PyString>() {
        // abi3 before 3.10 has no borrowed UTF-8 view: a copy (Python's own UTF-8 encoding).
        if let Ok(text) = s.to_cow() {
            return f(text.as_bytes());
        }
        let encoded = s.call_method1("encode", ("utf-8", "surrogatepass"))?;
        let bytes = encoded.cast::<PyBytes>().map_err(|_| not_text(what, obj))?;
        return f(bytes.as_bytes());
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return f(b.as_bytes());
    }
    Err(not_text(what, obj))
}

/// A time as Unix milliseconds: a Python `int` that fits in 64 bits.
fn millis(obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    if obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(not_ms(obj));
    }
    obj.extract::<i64>().map_err(|_| not_ms(obj))
}

fn not_ms(got: &Bound<'_, PyAny>) -> PyErr {
    NativeWireError::new_err((
        format!(
            "now_ms must be an int of Unix milliseconds within 64 bits, not this {}",
            type_name(got)
        ),
        r#"{"code":"wire_shape","line":0,"column":0}"#,
    ))
}

/// One stateless call of the host API: `{"fn": "codes" | "version" | "view" | "begin" |
/// "command" | "handle" | "next_step", ...}` in, its JSON out.
#[pyfunction]
fn call(json: &Bound<'_, PyAny>) -> PyResult<String> {
    with_json("json", json, |bytes| {
        host::call(bytes).map_err(|e| raise(&e))
    })
}

/// One driver call (run, start, start_next, bank_page, settle, sweep) as sans-IO steps.
#[pyclass(name = "HostSteps", module = "direct_otp._native", frozen)]
struct PyHostSteps {
    steps: Mutex<HostSteps>,
}

impl PyHostSteps {
    fn lock(&self) -> MutexGuard<'_, HostSteps> {
        // A poisoned lock would mean a panic inside the core, which no input causes; the
        // machine is still whole (it refuses inputs it does not expect), so carry on.
        self.steps.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl PyHostSteps {
    #[new]
    fn new(json: &Bound<'_, PyAny>) -> PyResult<Self> {
        let steps = with_json("json", json, |bytes| {
            HostSteps::new(bytes).map_err(|e| raise(&e))
        })?;
        Ok(PyHostSteps {
            steps: Mutex::new(steps),
        })
    }

    /// Hands back the result of the last I/O (first `{"result":"begin"}`) with the host's
    /// clock; gives `{"io": {...}}` (the next I/O) or `{"finished": {...}}`.
    fn resume(&self, input: &Bound<'_, PyAny>, now_ms: &Bound<'_, PyAny>) -> PyResult<String> {
        let now = millis(now_ms)?;
        with_json("input", input, |bytes| {
            self.lock().resume(bytes, now).map_err(|e| raise(&e))
        })
    }

    fn __repr__(&self) -> &'static str {
        "<direct_otp._native.HostSteps>"
    }
}

/// The Rust sandbox (simulated Juspay API plus its control API) on 127.0.0.1.
#[pyclass(name = "SandboxServer", module = "direct_otp._native", frozen)]
struct PySandboxServer {
    server: Mutex<Option<SandboxServer>>,
    url: String,
}

#[pymethods]
impl PySandboxServer {
    #[new]
    fn new(json: &Bound<'_, PyAny>) -> PyResult<Self> {
        let server = with_json("json", json, |bytes| {
            host::start_sandbox(bytes).map_err(|e| raise(&e))
        })?;
        Ok(PySandboxServer {
            url: server.base_url().to_owned(),
            server: Mutex::new(Some(server)),
        })
    }

    /// `http://127.0.0.1:PORT`.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// Whether the server still serves.
    #[getter]
    fn running(&self) -> bool {
        self.server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Stops the server (its thread joined); a second stop does nothing.
    fn stop(&self, py: Python<'_>) {
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        // Stopping joins the server's thread: let other Python threads run meanwhile.
        py.detach(move || drop(server));
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        self.stop(py);
        false
    }

    fn __repr__(&self) -> String {
        format!("<direct_otp._native.SandboxServer {}>", self.url)
    }
}

/// The module `direct_otp._native`.
#[pymodule(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(call, m)?)?;
    m.add_class::<PyHostSteps>()?;
    m.add_class::<PySandboxServer>()?;
    m.add("WireError", m.py().get_type::<NativeWireError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

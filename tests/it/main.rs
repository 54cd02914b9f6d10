//! The integration tests, as one test binary: each module was once a file of its own under
//! `tests/`, and each linked the crate and every dev-dependency again. Run one module with a
//! filter, e.g. `cargo test -p direct-otp-tests --test it model::` (see `docs/testing.md`).
//!
//! Four binaries stay apart: `tests/allocations.rs` and `tests/hostile.rs` install their
//! own counting `#[global_allocator]`, `tests/proxy_env.rs` sets proxy variables in the
//! process environment, and `tests/workers.rs` sets a process-wide panic hook and runs a
//! copy of itself that exits mid-request (see `docs/testing.md`). Those that need the
//! helpers below include them by `#[path]`, and so does the fuzz crate (`fuzz/src/lib.rs`
//! includes `invariants`). The checkout's tests, in a browser among them, are its own
//! package's (`examples/checkout/tests/`).

// Shared helpers (each keeps `#![allow(dead_code)]` for the binaries that use a part).
#[macro_use]
mod adapter_support;
mod common;
mod fault_server;
mod invariants;
mod sandbox_support;
mod shoppers_support;

// One module per former test file.
mod adapters_sandbox;
mod concurrency;
mod conformance;
mod driver;
mod faults;
mod host;
mod lifecycle;
mod model;
mod payment;
mod requests;
mod responses;
mod sandbox;
mod sandbox_control;
mod sandbox_http;
mod secrets;
mod settle;
mod shoppers;
mod steps;
mod stores;
mod tracing_events;
mod webhook_delivery;
mod wire;

//! The integration tests, as one test binary: each module was once a file of its own under
//! `tests/`, and each linked the crate and every dev-dependency again. Run one module with a
//! filter, e.g. `cargo test --test it model::` (see `docs/testing.md`).
//!
//! Three binaries stay apart, each for a reason that holds the whole process:
//! `tests/allocations.rs` and `tests/hostile.rs` install their own counting
//! `#[global_allocator]`, and `tests/proxy_env.rs` sets proxy variables in the process
//! environment. They include the helpers below by `#[path]`, and so does the fuzz crate
//! (`fuzz/src/lib.rs` includes `invariants`).

// Shared helpers (each keeps `#![allow(dead_code)]` for the binaries that use a part).
#[macro_use]
mod adapter_support;
mod common;
mod fault_server;
mod invariants;
mod sandbox_support;

// One module per former test file.
mod adapters_sandbox;
mod concurrency;
mod faults;
mod lifecycle;
mod model;
mod payment;
mod requests;
mod responses;
mod sandbox;
mod sandbox_http;
mod secrets;
mod settle;
mod stores;

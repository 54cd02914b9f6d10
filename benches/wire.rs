//! A wrapper's step through the wire form (`direct_otp::wire`) against the same step
//! through the native API, in the same run, as a ratio.
//!
//! The step, from a payment on its OTP page stored as JSON: load the record, run a submit,
//! give the request out, take the bank's answer back, handle it, give the outcome out and
//! store the record.
//!
//! * `wire_step/wire`: the record from JSON (`wire::record`), the command from JSON
//!   (`wire::command`), the request to a JSON string (`ToWire`); the reply from JSON
//!   (`wire::reply`), the token from its text (`wire::token`), the outcome to a JSON string,
//!   the record to JSON.
//! * `wire_step/native`: the record from JSON (`serde_json`, as any store does), the
//!   command built in Rust, the request handed over as it is; the `Reply` and token as
//!   they are, the outcome as it is, the record to JSON.
//!
//! * `wire_step/host`: the same step through the host API every binding calls
//!   (`wire::host::call`, `"command"` then `"handle"`, JSON text in and out) on the fixture
//!   of `tests/golden/bench_step.json`: the baseline of the Python and Node steps
//!   (`bindings/bench.sh`).
//!
//! Run with `cargo bench -p direct-otp-benches --bench wire`; see `docs/benchmarks.md`.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, Criterion};
use direct_otp::driver::Command;
use direct_otp::sandbox::{Sandbox, SandboxConfig};
use direct_otp::wire::{self, host, ToWire};
use direct_otp::{Config, Otp, Payment, PaymentSource, Reply, StartRequest};
use time::macros::datetime;
use time::OffsetDateTime;

mod support;
use support::{criterion_dir, median_ns, ns, ratio};

const KEY: &str = "sk_bench_wire";
const T0: OffsetDateTime = datetime!(2026-11-25 10:00 UTC);

/// The stored record on its OTP page, the config, and the bank's answer to a wrong OTP.
struct Fixture {
    stored: Vec<u8>,
    config: Config,
    answer: (u16, Vec<u8>),
    now: OffsetDateTime,
}

fn fixture() -> Fixture {
    let mut sandbox = Sandbox::new(SandboxConfig::new(KEY));
    let config = Config::new(sandbox.base_url(), KEY).unwrap();
    let start = StartRequest::new(
        "ord_bench",
        "acme",
        "cust_1",
        PaymentSource::token("tok_visa"),
    )
    .unwrap();
    let mut p = Payment::new(&start, 1, T0);
    let out = p.start(&config, &start, T0).unwrap();
    let a = sandbox.handle_request(&out.request, T0);
    p.handle(
        out.token,
        Reply::Answer {
            status: a.status,
            body: a.body,
        },
        T0,
    )
    .unwrap();
    let stored = serde_json::to_vec(&p).unwrap();
    let now = T0 + time::Duration::seconds(5);
    let out = p
        .submit(&config, &Otp::new("000000").unwrap(), now)
        .unwrap();
    let a = sandbox.handle_request(&out.request, now);
    Fixture {
        stored,
        config,
        answer: (a.status, a.body),
        now,
    }
}

fn wire_step(c: &mut Criterion) {
    let f = fixture();
    let now_ms = (f.now.unix_timestamp_nanos() / 1_000_000) as i64;
    let command = br#"{"command":"submit","otp":"000000"}"#;
    let reply = serde_json::json!({
        "kind": "answer",
        "status": f.answer.0,
        "body": String::from_utf8(f.answer.1.clone()).unwrap(),
    })
    .to_string();
    let mut g = c.benchmark_group("wire_step");
    g.bench_function("wire", |b| {
        b.iter(|| {
            let now = wire::time_from_ms(now_ms).unwrap();
            let mut p = wire::record(black_box(&f.stored)).unwrap();
            let cmd = wire::command(black_box(command)).unwrap();
            let out = cmd.issue(&mut p, &f.config, now).unwrap();
            let request = out.to_wire_string();
            let token = wire::token(&out.token.to_string()).unwrap();
            let reply = wire::reply(black_box(reply.as_bytes())).unwrap();
            let outcome = p.handle(token, reply, now).unwrap().to_wire_string();
            let record = serde_json::to_vec(&p).unwrap();
            black_box((request, outcome, record))
        })
    });
    g.bench_function("native", |b| {
        b.iter(|| {
            let now = f.now;
            let mut p: Payment = serde_json::from_slice(black_box(&f.stored)).unwrap();
            let cmd = Command::Submit(Otp::new(black_box("000000")).unwrap());
            let out = cmd.issue(&mut p, &f.config, now).unwrap();
            let reply = Reply::Answer {
                status: f.answer.0,
                body: black_box(&f.answer.1).clone(),
            };
            let outcome = p.handle(out.token, reply, now).unwrap();
            let record = serde_json::to_vec(&p).unwrap();
            black_box((out, outcome, record))
        })
    });
    // The host API's step (`wire::host::call`), as every binding makes it: the fixture of
    // `tests/golden/bench_step.json`, JSON text in and out, the record and token read back
    // from the first call's answer.
    let step: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/golden/bench_step.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let command_call = |record: &str| {
        serde_json::json!({"fn": "command", "config": step["config"], "record": record,
                           "command": step["command"], "now_ms": step["now_ms"]})
        .to_string()
    };
    let record = step["record"].as_str().unwrap().to_owned();
    let reply = step["reply"].to_string();
    let now = step["now_ms"].as_i64().unwrap();
    g.bench_function("host", |b| {
        b.iter(|| {
            let out = host::call(command_call(black_box(&record)).as_bytes()).unwrap();
            let out: serde_json::Value = serde_json::from_str(&out).unwrap();
            let handle = format!(
                r#"{{"fn":"handle","record":{},"token":{},"reply":{},"now_ms":{}}}"#,
                out["record"], out["request"]["token"], reply, now
            );
            let done: serde_json::Value =
                serde_json::from_str(&host::call(handle.as_bytes()).unwrap()).unwrap();
            black_box(done)
        })
    });
    if std::env::var_os("HOST_PARTS").is_some() {
        let cmd = command_call(&record);
        g.bench_function("host_part_command_call", |b| {
            b.iter(|| host::call(black_box(cmd.as_bytes())).unwrap())
        });
        let config = step["config"].to_string();
        g.bench_function("host_part_config", |b| {
            b.iter(|| wire::config(black_box(config.as_bytes())).unwrap())
        });
        g.bench_function("host_part_record_text_in", |b| {
            b.iter(|| wire::record(black_box(record.as_bytes())).unwrap())
        });
        let p = wire::record(record.as_bytes()).unwrap();
        g.bench_function("host_part_record_text_out", |b| {
            b.iter(|| serde_json::to_string(black_box(&p)).unwrap())
        });
        let quoted = serde_json::to_string(&record).unwrap();
        g.bench_function("host_part_escape", |b| {
            b.iter(|| serde_json::to_string(black_box(&record)).unwrap())
        });
        g.bench_function("host_part_unescape", |b| {
            b.iter(|| serde_json::from_str::<String>(black_box(&quoted)).unwrap())
        });
    }
    if std::env::var_os("WIRE_PARTS").is_some() {
        let mut p = wire::record(&f.stored).unwrap();
        let out = wire::command(command)
            .unwrap()
            .issue(&mut p, &f.config, f.now)
            .unwrap();
        let outcome = p
            .clone()
            .handle(out.token, wire::reply(reply.as_bytes()).unwrap(), f.now)
            .unwrap();
        g.bench_function("part_command", |b| {
            b.iter(|| wire::command(black_box(command)))
        });
        g.bench_function("part_reply", |b| {
            b.iter(|| wire::reply(black_box(reply.as_bytes())))
        });
        g.bench_function("part_request", |b| {
            b.iter(|| black_box(&out).to_wire_string())
        });
        g.bench_function("part_outcome", |b| {
            b.iter(|| black_box(&outcome).to_wire_string())
        });
        g.bench_function("part_token", |b| {
            b.iter(|| wire::token(&black_box(out.token).to_string()))
        });
        g.bench_function("part_record_in", |b| {
            b.iter(|| wire::record(black_box(&f.stored)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .output_directory(&criterion_dir());
    targets = wire_step
}

fn main() {
    let since = SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    let wire = median_ns("wire_step", "wire", since);
    let native = median_ns("wire_step", "native", since);
    println!("\n| step | wire ns | native ns | wire / native |\n|---|---|---|---|");
    println!(
        "| submit, wrong OTP | {} | {} | {} |",
        ns(wire),
        ns(native),
        ratio(wire, native)
    );
    let host = median_ns("wire_step", "host", since);
    println!("\n| step | host API ns | native ns | host / native |\n|---|---|---|---|");
    println!(
        "| submit, wrong OTP (tests/golden/bench_step.json) | {} | {} | {} |",
        ns(host),
        ns(native),
        ratio(host, native)
    );
    // For bindings/bench: the two baselines of the same run, in µs.
    if let (Ok(path), Some(host), Some(native)) = (std::env::var("WIRE_BASELINE_OUT"), host, native)
    {
        let line = format!(
            "{{\"lang\":\"rust\",\"host_us\":{:.3},\"native_us\":{:.3}}}\n",
            host / 1000.0,
            native / 1000.0
        );
        std::fs::write(path, line).unwrap();
    }
}

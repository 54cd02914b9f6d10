//! The cost of the adapters: a resend round trip over loopback against the sandbox server,
//! through our transports versus the same HTTP client used raw, sending the identical
//! request. Run with `cargo bench -p direct-otp-benches --bench adapters`; see
//! `docs/benchmarks.md`.
//!
//! For each client (`hyper`, `ureq`), in one run and against one server:
//!
//! * `raw`: the client alone sends the identical `http::Request` (built from our request in
//!   the untimed setup) and reads the whole body; `raw_deadline` is the same under the
//!   per-request deadline our transport sets (`tokio::time::timeout` for hyper, ureq's
//!   `timeout_global`);
//! * `send`: our transport's `send` (conversion to `http`, per-request settings, deadline,
//!   body limit) with a clone of our request; `convert` is its conversion alone (no I/O);
//! * `drive`: what an application does: `Challenge::resend`, then our transport's `drive`,
//!   which sends and hands the answer to the challenge (building the request and reading
//!   the 1 KB answer included).
//!
//! The binary ends with the ratios to `raw`, read back from criterion's estimates.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{criterion_group, BatchSize, Criterion};
use direct_otp::sandbox::{Sandbox, SandboxConfig, SandboxServer};
use direct_otp::transport::{HyperTransport, UreqTransport};
use direct_otp::{
    Challenge, Config, Outcome, PaymentSource, Policy, Request, StartRequest, Started,
};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

mod support;
use support::{criterion_dir, median_ns, ns, ratio};

const KEY: &str = "sk_test_BENCHKEY";

/// The sandbox served on loopback, with no send limit, and a challenge started on it whose
/// resend has no cooldown (so every iteration may resend).
struct Bench {
    server: SandboxServer,
    config: Config,
    challenge: Challenge,
    /// One resend request of that challenge, cloned by the `send` and `raw` benchmarks.
    resend: Request,
}

fn bench_world() -> Bench {
    let sandbox = Sandbox::new(SandboxConfig::new(KEY).with_limits(u32::MAX, u32::MAX));
    let server = SandboxServer::start(sandbox).expect("sandbox server starts");
    let config = Config::new(server.base_url(), KEY).expect("valid config");
    let mut policy = Policy::default();
    policy.max_sends = u32::MAX;
    policy.resend_cooldown = std::time::Duration::ZERO;
    policy.lifetime = std::time::Duration::from_secs(86_400);
    let start = StartRequest::new(
        "ord_bench_1",
        "acme",
        "customer_bench",
        PaymentSource::Token {
            card_token: "tok_visa".into(),
            cvv: None,
        },
    )
    .expect("valid start")
    .with_policy(policy);
    let transport = UreqTransport::with_default_agent();
    let (status, body) = transport
        .send(start.request(&config))
        .expect("start answered");
    let mut challenge = match start.handle_response(status, &body, transport.now()) {
        Ok(Started::Challenge(c)) => *c,
        other => panic!("expected a challenge, got {other:?}"),
    };
    let resend = challenge
        .clone()
        .resend(&config, transport.now())
        .expect("resend allowed")
        .request;
    // One resend now, so the answer read below has the same shape as every later one.
    let out = challenge
        .resend(&config, transport.now())
        .expect("resend allowed");
    let driven = transport.drive(&mut challenge, out).expect("in flight");
    assert!(
        matches!(driven.outcome, Outcome::OtpSent { .. }),
        "{driven:?}"
    );
    Bench {
        server,
        config,
        challenge,
        resend,
    }
}

/// The identical request as the `http` crate's type, body as the client wants it.
fn http_request<B>(request: &Request, body: impl FnOnce(Vec<u8>) -> B) -> http::Request<B> {
    http::Request::<Vec<u8>>::try_from(request)
        .expect("converts")
        .map(body)
}

fn expect_ok(status: u16, body_len: usize) -> usize {
    assert_eq!(status, 200, "resend answered");
    body_len
}

fn hyper(c: &mut Criterion) {
    let mut w = bench_world();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ours = HyperTransport::plain_http();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let raw: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);

    let mut g = c.benchmark_group("hyper");
    g.bench_function("raw", |b| {
        b.iter_batched(
            || http_request(&w.resend, |v| Full::new(Bytes::from(v))),
            |request| {
                rt.block_on(async {
                    let response = raw.request(request).await.expect("answered");
                    let status = response.status().as_u16();
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .expect("body")
                        .to_bytes();
                    expect_ok(status, body.len())
                })
            },
            BatchSize::SmallInput,
        )
    });
    // The same under the deadline our transport sets (hyper has none of its own).
    g.bench_function("raw_deadline", |b| {
        b.iter_batched(
            || http_request(&w.resend, |v| Full::new(Bytes::from(v))),
            |request| {
                rt.block_on(async {
                    let exchange = async {
                        let response = raw.request(request).await.expect("answered");
                        let status = response.status().as_u16();
                        let body = response
                            .into_body()
                            .collect()
                            .await
                            .expect("body")
                            .to_bytes();
                        expect_ok(status, body.len())
                    };
                    tokio::time::timeout(direct_otp::transport::DEFAULT_TIMEOUT, exchange)
                        .await
                        .expect("in time")
                })
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("send", |b| {
        b.iter_batched(
            || w.resend.clone(),
            |request| {
                let (status, body) = rt.block_on(ours.send(request)).expect("answered");
                expect_ok(status, body.len())
            },
            BatchSize::SmallInput,
        )
    });
    // No I/O: the part of `send` that `raw` does in its untimed setup.
    g.bench_function("convert", |b| {
        b.iter_batched(
            || w.resend.clone(),
            |request| {
                http::Request::<Vec<u8>>::try_from(request)
                    .expect("converts")
                    .map(|v| Full::new(Bytes::from(v)))
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("drive", |b| {
        b.iter(|| {
            let out = w
                .challenge
                .resend(&w.config, ours.now())
                .expect("resend allowed");
            let driven = rt
                .block_on(ours.drive(&mut w.challenge, out))
                .expect("in flight");
            assert!(matches!(driven.outcome, Outcome::OtpSent { .. }));
        })
    });
    g.finish();
    drop(w.server);
}

fn ureq(c: &mut Criterion) {
    let mut w = bench_world();
    let ours = UreqTransport::with_default_agent();
    // The agent `with_default_agent` builds, used directly.
    let raw = ureq::Agent::config_builder()
        .proxy(None)
        .timeout_connect(Some(direct_otp::transport::DEFAULT_CONNECT_TIMEOUT))
        .build()
        .new_agent();

    let mut g = c.benchmark_group("ureq");
    g.bench_function("raw", |b| {
        b.iter_batched(
            || http_request(&w.resend, |v| v),
            |request| {
                let response = raw.run(request).expect("answered");
                let status = response.status().as_u16();
                let body = response.into_body().read_to_vec().expect("body");
                expect_ok(status, body.len())
            },
            BatchSize::SmallInput,
        )
    });
    // The same, with the deadline our transport sets on every request: ureq resolves the
    // host on every call, in a new thread when a deadline covers the resolution.
    g.bench_function("raw_deadline", |b| {
        b.iter_batched(
            || http_request(&w.resend, |v| v),
            |request| {
                let request = raw
                    .configure_request(request)
                    .timeout_global(Some(direct_otp::transport::DEFAULT_TIMEOUT))
                    .build();
                let response = raw.run(request).expect("answered");
                let status = response.status().as_u16();
                let body = response.into_body().read_to_vec().expect("body");
                expect_ok(status, body.len())
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("send", |b| {
        b.iter_batched(
            || w.resend.clone(),
            |request| {
                let (status, body) = ours.send(request).expect("answered");
                expect_ok(status, body.len())
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("drive", |b| {
        b.iter(|| {
            let out = w
                .challenge
                .resend(&w.config, ours.now())
                .expect("resend allowed");
            let driven = ours.drive(&mut w.challenge, out).expect("in flight");
            assert!(matches!(driven.outcome, Outcome::OtpSent { .. }));
        })
    });
    g.finish();
    drop(w.server);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .output_directory(&criterion_dir());
    targets = hyper, ureq
}

fn main() {
    let since = SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    println!("\n== Ratios to the raw client (median of this run)");
    println!("| client | baseline ns | send ns | drive ns | send / baseline (<= 1.05) | drive / baseline |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (client, baseline) in [
        ("hyper", "raw"),
        ("hyper", "raw_deadline"),
        ("ureq", "raw"),
        ("ureq", "raw_deadline"),
    ] {
        let [raw, send, drive] = [baseline, "send", "drive"].map(|f| median_ns(client, f, since));
        println!(
            "| {client} vs {baseline} | {} | {} | {} | {} | {} |",
            ns(raw),
            ns(send),
            ns(drive),
            ratio(send, raw),
            ratio(drive, raw),
        );
    }
}

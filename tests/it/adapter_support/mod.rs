//! Either adapter behind one blocking interface, so a scenario is written once and run
//! through both (`for_each_adapter!`). Shared by `tests/it/adapters_sandbox.rs` and
//! `tests/it/faults.rs`.

use std::time::Duration;

use direct_otp::transport::{Driven, HyperTransport, Settings, TransportError, UreqTransport};
use direct_otp::{Challenge, InputError, Outgoing, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    Ureq,
    Hyper,
}

/// One adapter; hyper with its own current-thread runtime (one per test, so the client's
/// pool lives as long as the runtime its connections run on).
pub enum AnyTransport {
    Ureq(UreqTransport),
    Hyper(HyperTransport<HttpConnector>, tokio::runtime::Runtime),
}

impl AnyTransport {
    /// The adapter's default client with this deadline, body limit (else the default) and
    /// clock.
    pub fn new(
        adapter: Adapter,
        timeout: Duration,
        body_limit: Option<usize>,
        clock: fn() -> OffsetDateTime,
    ) -> AnyTransport {
        let settings = Settings::new().with_timeout(timeout).with_clock(clock);
        let settings = match body_limit {
            Some(limit) => settings.with_body_limit(limit),
            None => settings,
        };
        match adapter {
            Adapter::Ureq => {
                AnyTransport::Ureq(UreqTransport::with_default_agent().with_settings(settings))
            }
            Adapter::Hyper => {
                let t = HyperTransport::plain_http().with_settings(settings);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                AnyTransport::Hyper(t, rt)
            }
        }
    }

    pub fn send(&self, request: Request) -> Result<(u16, Vec<u8>), TransportError> {
        match self {
            AnyTransport::Ureq(t) => t.send(request),
            AnyTransport::Hyper(t, rt) => rt.block_on(t.send(request)),
        }
    }

    pub fn drive(&self, c: &mut Challenge, out: Outgoing) -> Result<Driven, InputError> {
        match self {
            AnyTransport::Ureq(t) => t.drive(c, out),
            AnyTransport::Hyper(t, rt) => rt.block_on(t.drive(c, out)),
        }
    }
}

/// Runs each named scenario `fn(Adapter)` as two tests, `ureq_adapter::name` and
/// `hyper_adapter::name`.
macro_rules! for_each_adapter {
    ($($name:ident),* $(,)?) => {
        mod ureq_adapter {
            $( #[test] fn $name() { super::$name(super::Adapter::Ureq) } )*
        }
        mod hyper_adapter {
            $( #[test] fn $name() { super::$name(super::Adapter::Hyper) } )*
        }
    };
}

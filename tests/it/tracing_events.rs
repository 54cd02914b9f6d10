//! The drivers' events and spans (feature `tracing`): captured during whole payments with a
//! known API key, OTP and card, they carry the keys, revisions, request kinds and codes,
//! and none of the secrets.

use crate::invariants::Secrets;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use direct_otp::driver::{BlockingSend, Command, Driver};
use direct_otp::sandbox::{Endpoint, Fault, OtpSource, Sandbox, SandboxConfig};
use direct_otp::store::{MemoryStore, Store};
use direct_otp::{CardDetails, Config, Otp, PaymentSource, Request, SendFailure, StartRequest};
use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

const KEY: &str = "sk_test_TRACEDSECRET";
const OTP: &str = "86420975";
const WRONG: &str = "13572468";
const CARD_NUMBER: &str = "4000123498765432";
const CVV: &str = "7391";
const NAME: &str = "Zyxwv Secretholder";

/// Every field of every span and event, as text.
#[derive(Clone, Default)]
struct Capture {
    text: Arc<Mutex<String>>,
    next: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "\nspan {} ", span.metadata().name());
        span.record(&mut Fields(&mut text));
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        values.record(&mut Fields(&mut self.text.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "\nevent {} ", event.metadata().level());
        event.record(&mut Fields(&mut text));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// The in-process sandbox as the bank, with a clock to move.
struct Bank {
    sandbox: Mutex<Sandbox>,
    now: Mutex<OffsetDateTime>,
}

#[derive(Debug, thiserror::Error)]
#[error("the answer was lost")]
struct Lost;

impl BlockingSend for Bank {
    type Error = Lost;
    fn send(&self, request: Request) -> Result<(u16, Vec<u8>), Lost> {
        let answer = self
            .sandbox
            .lock()
            .unwrap()
            .handle_request(&request, self.now());
        if answer.is_delivered() {
            Ok((answer.status, answer.body))
        } else {
            Err(Lost)
        }
    }
    fn send_failure(&self, _: &Lost) -> SendFailure {
        SendFailure::MaybeSent
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(30)
    }
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap()
    }
}

#[test]
fn the_drivers_events_carry_codes_and_keys_never_secrets() {
    let sandbox = Sandbox::new(SandboxConfig::new(KEY).with_otp(OtpSource::Fixed(OTP.into())));
    let config = Config::new(sandbox.base_url(), KEY).unwrap();
    let bank = Bank {
        sandbox: Mutex::new(sandbox),
        now: Mutex::new(time::macros::datetime!(2026-11-25 10:00 UTC)),
    };
    let driver = Driver::new(MemoryStore::new(), bank, config.clone());
    let card = PaymentSource::Card(CardDetails {
        number: CARD_NUMBER.into(),
        expiry_month: "09".into(),
        expiry_year: "2039".into(),
        cvv: CVV.into(),
        name_on_card: Some(NAME.into()),
    });
    let start = StartRequest::new("ord_trace", "acme", "cust_trace", card).unwrap();
    let capture = Capture::default();

    tracing::subscriber::with_default(capture.clone(), || {
        let done = driver.start(&start, 1).unwrap();
        let key = done.payment.key().to_owned();
        driver
            .run(&key, Command::Submit(Otp::new(WRONG).unwrap()))
            .unwrap();
        // A lost answer: the payment then needs the order status, which the sweep asks.
        driver
            .transport()
            .sandbox
            .lock()
            .unwrap()
            .inject(Endpoint::Submit, Fault::DropResponse);
        driver
            .run(&key, Command::Submit(Otp::new(OTP).unwrap()))
            .unwrap();
        // A worker died right after its write-ahead of a status check.
        let mut stranded = driver.load(&key).unwrap();
        let loaded = stranded.revision();
        stranded
            .check_status(&config, driver.transport().now())
            .unwrap();
        Store::replace(driver.store(), loaded, &stranded).unwrap();
        let refused = driver.run(&key, Command::Resend).unwrap_err();
        assert_eq!(refused.code(), "in_flight", "{refused}");
        *driver.transport().now.lock().unwrap() += time::Duration::seconds(61);
        let swept = driver.sweep_and_check(10).unwrap();
        assert_eq!(swept.len(), 1);
        let refused = driver.run(&key, Command::Resend).unwrap_err();
        assert_eq!(refused.code(), "already_final", "{refused}");
    });

    let text = capture.text.lock().unwrap().clone();
    for wanted in [
        "span direct_otp.drive",
        "call=\"start\"",
        "key=\"ord_trace/1\"",
        "op=\"send\"",
        "kind=\"start\"",
        "kind=\"submit\"",
        "op=\"replace\"",
        "revision=",
        "outcome=\"otp_sent\"",
        "outcome=\"wrong_otp\"",
        "outcome=\"not_delivered\"",
        "code=\"in_flight\"",
        "refusal=\"already_final\"",
        "swept=\"recovered\"",
        "check=\"approved\"",
    ] {
        assert!(text.contains(wanted), "no {wanted} in the events:{text}");
    }
    Secrets::default()
        .with_key(KEY, &config)
        .with_text(CARD_NUMBER)
        .with_text(NAME)
        .with_text(OTP)
        .with_text(WRONG)
        .check("the drivers' events", &text);
    for secret in [CVV, "card_number", "answer.otp", "challenge_id="] {
        assert!(!text.contains(secret), "{secret} in the events:{text}");
    }
}

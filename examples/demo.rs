//! A checkout through the library over HTTP, in three payments, each one `Payment` record
//! kept in a store from before the start until it is settled, every step one call of the
//! protocol `Driver` (as a web backend's handlers would make them):
//!
//! 1. an OTP resend, a wrong OTP, the right OTP: `CHARGED`;
//! 2. resends up to the send limit, then the bank page; the browser comes back through the
//!    signed return URL, a reason to confirm: `Driver::settle` checks the order status in the
//!    same call, which settles it;
//! 3. a submit whose answer is lost, settled by reconciliation.
//!
//! `cargo run --example demo` runs it against the embedded sandbox on loopback: no network,
//! no API key. With `JUSPAY_API_KEY` set it talks to a real Juspay host instead (see
//! `docs/sandbox.md`, "The demo against Juspay's sandbox"):
//!
//! ```text
//! JUSPAY_API_KEY=...            the key (HTTP Basic user name)
//! JUSPAY_BASE_URL=...           default https://sandbox.juspay.in
//! JUSPAY_MERCHANT_ID=...        your merchant id
//! JUSPAY_ORDER_IDS=o1,o2,o3     three orders created beforehand, one per payment
//! JUSPAY_CARD_TOKEN=...         a saved-card token enrolled for Direct OTP
//! JUSPAY_CARD_CVV=...           optional, if your account needs it with tokens
//! JUSPAY_CUSTOMER_ID=...        optional x-routing-id, default demo_customer
//! JUSPAY_RESPONSE_KEY=...       optional: the response key, to verify the return URL you paste
//! ```
//!
//! Against the real host the OTPs come by SMS: the demo asks you to type them.

use std::error::Error;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration as StdDuration;

use std::sync::atomic::AtomicBool;

use direct_otp::driver::{BlockingSend, Command, DriveError, Driver};
use direct_otp::sandbox::{
    Endpoint, Fault, OtpSource, Sandbox, SandboxConfig, SandboxServer, SANDBOX_RESPONSE_KEY,
};
use direct_otp::store::MemoryStore;
use direct_otp::transport::{Settings, TransportError, UreqTransport};
use direct_otp::{
    Config, Otp, Outcome, Payment, PaymentSource, Request, ResponseKey, ReturnParams, SendFailure,
    Settlement, StartRequest, SANDBOX_URL,
};
use time::OffsetDateTime;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The API key the local sandbox accepts (it is not a Juspay key).
const LOCAL_KEY: &str = "sk_local_demo";

/// Where the local bank page sends the browser back to (the shop's return URL).
const RETURN_URL: &str = "https://shop.example/pay/return";

/// Waiting time the local demo skips (resend cooldowns), in milliseconds.
static SKIPPED_MS: AtomicI64 = AtomicI64::new(0);

/// The demo's clock: the real time, plus any waiting the local demo skipped.
fn clock() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::milliseconds(SKIPPED_MS.load(Ordering::Relaxed))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\ndemo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where the demo's requests go.
enum Backend {
    /// The embedded sandbox on loopback.
    Local(SandboxServer),
    /// A real Juspay host; the cardholder (you) types the OTPs.
    Remote { order_ids: Vec<String> },
}

struct Demo {
    backend: Backend,
    /// The shop's protocol driver: payments in a store (in memory here; SQLite or
    /// PostgreSQL in a real backend), requests through the ureq transport.
    driver: Driver<MemoryStore, DemoTransport>,
    merchant_id: String,
    routing_id: String,
    card: PaymentSource,
    /// The merchant's response key, which signs the return URL.
    response_key: Option<ResponseKey>,
}

fn run() -> Result<()> {
    let demo = match std::env::var("JUSPAY_API_KEY") {
        Ok(key) if !key.is_empty() => Demo::remote(&key)?,
        _ => Demo::embedded()?,
    };
    demo.checkout_with_resend_and_wrong_otp()?;
    demo.checkout_hitting_the_send_limit()?;
    demo.checkout_with_a_lost_answer()?;
    println!("\nAll three payments settled.");
    Ok(())
}

impl Demo {
    fn embedded() -> Result<Demo> {
        let sandbox = Sandbox::new(
            SandboxConfig::new(LOCAL_KEY)
                .with_otp(OtpSource::Seeded(2026))
                .with_return_url(RETURN_URL),
        );
        let server = SandboxServer::start(sandbox)?;
        println!(
            "direct-otp demo: LOCAL SANDBOX at {} (embedded, loopback only; no network, no API key).",
            server.base_url()
        );
        println!("Set JUSPAY_API_KEY (see docs/sandbox.md) to run it against Juspay's sandbox.");
        let config = Config::new(server.base_url(), LOCAL_KEY)?;
        Ok(Demo {
            backend: Backend::Local(server),
            driver: Driver::new(MemoryStore::new(), DemoTransport::new(), config),
            merchant_id: "acme".into(),
            routing_id: "customer_1122".into(),
            card: PaymentSource::token("tok_demo_visa"),
            response_key: Some(ResponseKey::new(SANDBOX_RESPONSE_KEY)?),
        })
    }

    fn remote(key: &str) -> Result<Demo> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let need =
            |name: &str| var(name).ok_or_else(|| format!("{name} must be set with JUSPAY_API_KEY"));
        let base_url = var("JUSPAY_BASE_URL").unwrap_or_else(|| SANDBOX_URL.into());
        let merchant_id = need("JUSPAY_MERCHANT_ID")?;
        let order_ids: Vec<String> = need("JUSPAY_ORDER_IDS")?
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if order_ids.len() < 3 {
            return Err("JUSPAY_ORDER_IDS needs three order ids, comma-separated".into());
        }
        let card = PaymentSource::Token {
            card_token: need("JUSPAY_CARD_TOKEN")?,
            cvv: var("JUSPAY_CARD_CVV"),
        };
        println!("direct-otp demo: REAL JUSPAY HOST at {base_url} (JUSPAY_API_KEY is set).");
        println!("OTPs arrive by SMS on the card's phone; type them when asked.");
        let config = Config::new(&base_url, key)?.with_merchant_id(&merchant_id)?;
        Ok(Demo {
            driver: Driver::new(MemoryStore::new(), DemoTransport::new(), config),
            backend: Backend::Remote { order_ids },
            merchant_id,
            routing_id: var("JUSPAY_CUSTOMER_ID").unwrap_or_else(|| "demo_customer".into()),
            card,
            response_key: var("JUSPAY_RESPONSE_KEY")
                .map(|k| ResponseKey::new(&k))
                .transpose()?,
        })
    }

    fn order_id(&self, n: usize) -> String {
        match &self.backend {
            Backend::Local(_) => format!("demo_order_{n}"),
            Backend::Remote { order_ids } => order_ids[n - 1].clone(),
        }
    }

    fn local(&self) -> Option<&SandboxServer> {
        match &self.backend {
            Backend::Local(server) => Some(server),
            Backend::Remote { .. } => None,
        }
    }

    // ----- The three payments -------------------------------------------------------

    fn checkout_with_resend_and_wrong_otp(&self) -> Result<()> {
        println!("\n== Payment 1: a resend, a wrong OTP, then the right OTP ==");
        let Some(key) = self.start(1)? else {
            return Ok(());
        };
        let first = self.read_sms(&key)?;
        self.wait_for_cooldown(&key)?;
        self.step(&key, "cardholder taps \"Resend\"", Command::Resend)?;
        let second = self.read_sms(&key)?;
        // Locally, the first OTP is no longer valid once the resend replaced it; a real bank
        // may still accept it, so against a real host the demo makes a typo instead.
        let (wrong, why) = match self.local() {
            Some(_) if first.digits != second.digits => {
                (first, "the first SMS's OTP, replaced by the resend")
            }
            _ => (Sms::wrong_version_of(&second), "a typo"),
        };
        let label = format!("cardholder types {} ({why})", wrong.shown);
        self.step(&key, &label, Command::Submit(wrong.otp()?))?;
        let label = format!("cardholder types {}", second.shown);
        self.step(&key, &label, Command::Submit(second.otp()?))?;
        self.expect_final(&key)
    }

    fn checkout_hitting_the_send_limit(&self) -> Result<()> {
        println!("\n== Payment 2: no SMS arrives; resends up to the limit, then the bank page ==");
        let Some(key) = self.start(2)? else {
            return Ok(());
        };
        loop {
            self.wait_for_cooldown(&key)?;
            let payment = self.driver.load(&key)?;
            if let Some(Err(refusal)) = payment.challenge().map(|c| c.may_resend(clock())) {
                println!("  \"Resend\" is disabled: {refusal}");
                break;
            }
            let outcome = self.step(&key, "cardholder taps \"Resend\"", Command::Resend)?;
            if !matches!(outcome, Outcome::OtpSent { .. }) {
                break;
            }
        }
        let url = self.driver.bank_page(&key)?.url;
        println!("  the browser is sent to the bank page: {url}");
        let back = match self.local() {
            Some(_) => {
                // What the cardholder's browser does there; the bank page then redirects
                // it to the shop's return URL.
                let answer = self
                    .driver
                    .transport()
                    .inner
                    .agent()
                    .post(&url)
                    .config()
                    .max_redirects(0) // the shop's return URL is not on loopback
                    .build()
                    .content_type("application/x-www-form-urlencoded")
                    .send("result=success")?;
                println!(
                    "  cardholder authenticates on the bank page (HTTP {})",
                    answer.status().as_u16()
                );
                answer
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .map(str::to_owned)
            }
            None if self.response_key.is_some() => Some(prompt(
                "  finish the payment on that page in a browser, then paste the URL it came back to",
            )?),
            None => {
                prompt("  finish the payment on that page in a browser, then press Enter")?;
                None
            }
        };
        if let (Some(back), Some(response_key)) =
            (back.filter(|b| !b.is_empty()), &self.response_key)
        {
            self.settle_by_return(&back, response_key)?;
        }
        self.settle_by_status(&key)
    }

    fn checkout_with_a_lost_answer(&self) -> Result<()> {
        println!(
            "\n== Payment 3: the answer to the right OTP is lost; reconciliation settles it =="
        );
        let Some(key) = self.start(3)? else {
            return Ok(());
        };
        let sms = self.read_sms(&key)?;
        print!("  cardholder types {} ", sms.shown);
        match self.local() {
            Some(server) => {
                server
                    .sandbox()
                    .inject(Endpoint::Submit, Fault::DropResponse);
                print!("(the sandbox will drop the answer) ");
            }
            None => {
                // A real host answers; the demo throws the answer away, as a timeout would.
                self.driver
                    .transport()
                    .discard_next
                    .store(true, Ordering::Relaxed);
                print!("(the demo discards the answer) ");
            }
        }
        let done = self.driver.run(&key, Command::Submit(sms.otp()?))?;
        if let Some(e) = &done.transport_error {
            print!("-> transport: {e} ");
        }
        println!("-> {}", describe(&done.outcome));
        println!("     {}", state(&done.payment));
        match self.driver.run(&key, Command::Submit(sms.otp()?)) {
            Err(DriveError::Refused { refusal, .. }) => {
                println!("  submitting again is refused: {refusal}")
            }
            other => return Err(format!("a second submit gave {other:?}").into()),
        }
        self.settle_by_status(&key)
    }

    // ----- Steps: each one call of the driver, as a web handler makes it ---------------

    /// Starts attempt 1 of order `n`: its key, or `None` if the card needs 3DS instead
    /// (nothing to show here).
    fn start(&self, n: usize) -> Result<Option<String>> {
        let order_id = self.order_id(n);
        let start = StartRequest::new(
            &order_id,
            &self.merchant_id,
            &self.routing_id,
            self.card.clone(),
        )?;
        print!("  start authentication for order {order_id} (POST /txns) ");
        let done = self.driver.start(&start, 1)?;
        let p = &done.payment;
        match (&done.outcome, p.challenge()) {
            (Outcome::OtpSent { .. }, Some(c)) => {
                let card = c.card();
                println!(
                    "-> OTP sent; OTP page for {} ****{} ({})",
                    card.brand.as_deref().unwrap_or("card"),
                    card.last_four.as_deref().unwrap_or("????"),
                    card.issuer.as_deref().unwrap_or("issuer unknown"),
                );
                println!("     {}", state(p));
                Ok(Some(p.key().to_owned()))
            }
            (Outcome::BankPageRequired, _) => {
                let url = self.driver.bank_page(p.key())?.url;
                println!("-> this card uses 3DS, not Direct OTP: the browser would go to {url}");
                Ok(None)
            }
            (outcome, _) => Err(format!("the start gave {outcome:?}").into()),
        }
    }

    /// Runs one command on the stored payment and prints what happened.
    fn step(&self, key: &str, label: &str, command: Command) -> Result<Outcome> {
        let done = self.driver.run(key, command)?;
        print!("  {label} -> {}", describe(&done.outcome));
        if let Some(e) = &done.transport_error {
            print!(" (transport: {e})");
        }
        println!("\n     {}", state(&done.payment));
        Ok(done.outcome)
    }

    /// The shop's return-URL handler: the signature is checked, then one driver call finds
    /// the payment by its order, settles it, and checks the order status, which decides.
    fn settle_by_return(&self, url: &str, response_key: &ResponseKey) -> Result<()> {
        let shown = url.split_once('?').map_or(url, |(base, _)| base);
        print!("  the browser comes back to {shown}?order_id=...&signature=... ");
        let verified = match ReturnParams::from_url(url).and_then(|p| p.verify(response_key)) {
            Ok(verified) => verified,
            Err(e) => {
                println!("-> not used: {e}");
                return Ok(());
            }
        };
        let settled = self.driver.settle(Settlement::ReturnUrl(verified))?;
        println!("-> signature verified -> {}", settled.outcome);
        match &settled.check {
            Some(Ok(outcome)) => println!(
                "  in the same call, the order status decides (GET /orders/{{id}}) -> {}",
                describe(outcome)
            ),
            Some(Err(e)) => println!("  in the same call, the order status check failed: {e}"),
            None => {}
        }
        println!("     {}", state(&settled.payment));
        Ok(())
    }

    /// Checks the order status until the payment is final (a few tries against a real
    /// host).
    fn settle_by_status(&self, key: &str) -> Result<()> {
        for attempt in 0..10 {
            if self.driver.load(key)?.is_final() {
                break;
            }
            if attempt > 0 {
                std::thread::sleep(StdDuration::from_secs(3));
            }
            self.step(
                key,
                "check the order status (GET /orders/{id})",
                Command::CheckStatus,
            )?;
        }
        self.expect_final(key)
    }

    fn expect_final(&self, key: &str) -> Result<()> {
        let c = self.driver.load(key)?;
        if !c.is_final() {
            return Err(format!("the payment is not final: {}", c.status()).into());
        }
        let verdict = if c.is_paid() { "paid" } else { "not paid" };
        println!("  => order {}: {} ({verdict})", c.order_id(), c.status());
        Ok(())
    }

    fn wait_for_cooldown(&self, key: &str) -> Result<()> {
        let c = self.driver.load(key)?;
        let Some(at) = c.challenge().and_then(|c| c.resend_available_at()) else {
            return Ok(());
        };
        let wait = at - clock();
        if !wait.is_positive() {
            return Ok(());
        }
        let secs = (wait.whole_milliseconds() + 999) / 1000;
        match self.local() {
            Some(_) => {
                println!("  ({secs} s later: the resend cooldown is over; the local demo skips the wait)");
                let ms = i64::try_from(wait.whole_milliseconds() + 1).unwrap_or(i64::MAX);
                SKIPPED_MS.fetch_add(ms, Ordering::Relaxed);
            }
            None => {
                println!("  (waiting {secs} s for the resend cooldown)");
                let ms = u64::try_from(wait.whole_milliseconds() + 1).unwrap_or(0);
                std::thread::sleep(StdDuration::from_millis(ms));
            }
        }
        Ok(())
    }

    /// The OTP the cardholder received: read from the local sandbox ("the phone"), or typed.
    fn read_sms(&self, key: &str) -> Result<Sms> {
        let c = self.driver.load(key)?;
        let txn = c.challenge().map(|c| c.txn_id()).unwrap_or_default();
        match self.local() {
            Some(server) => {
                let digits = server
                    .sandbox()
                    .current_otp(txn)
                    .ok_or("the sandbox has no OTP for this transaction")?
                    .to_owned();
                println!("  SMS on the cardholder's phone: \"Your OTP is {digits}\"");
                Ok(Sms {
                    shown: digits.clone(),
                    digits,
                })
            }
            None => {
                let digits = prompt("  type the OTP you received by SMS")?;
                Otp::new(&digits)?;
                Ok(Sms {
                    digits,
                    shown: "the OTP from the SMS".into(),
                })
            }
        }
    }
}

/// An OTP the demo can submit and show. `shown` is what the demo prints: the digits for the
/// local sandbox's simulated SMS, never a real OTP.
struct Sms {
    digits: String,
    shown: String,
}

impl Sms {
    /// A different OTP of the same length.
    fn wrong_version_of(sms: &Sms) -> Sms {
        let digits: String = sms
            .digits
            .chars()
            .map(|d| char::from_digit((d.to_digit(10).unwrap_or(0) + 1) % 10, 10).unwrap_or('0'))
            .collect();
        let shown = if sms.shown == sms.digits {
            digits.clone()
        } else {
            "a wrong OTP".into()
        };
        Sms { digits, shown }
    }

    fn otp(&self) -> Result<Otp> {
        Ok(Otp::new(&self.digits)?)
    }
}

/// The ureq transport, and a way for the demo to lose one answer against a real host (the
/// local sandbox drops it itself).
struct DemoTransport {
    inner: UreqTransport,
    discard_next: AtomicBool,
}

impl DemoTransport {
    fn new() -> Self {
        // Proxies off (loopback must not go through one), a deadline per exchange.
        let inner = UreqTransport::with_default_agent().with_settings(
            Settings::new()
                .with_timeout(StdDuration::from_secs(20))
                .with_clock(clock),
        );
        DemoTransport {
            inner,
            discard_next: AtomicBool::new(false),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum DemoSendError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the demo discarded the answer")]
    Discarded,
}

impl BlockingSend for DemoTransport {
    type Error = DemoSendError;

    fn send(&self, request: Request) -> std::result::Result<(u16, Vec<u8>), DemoSendError> {
        let answer = self.inner.send(request)?;
        if self.discard_next.swap(false, Ordering::Relaxed) {
            return Err(DemoSendError::Discarded);
        }
        Ok(answer)
    }

    fn send_failure(&self, error: &DemoSendError) -> SendFailure {
        match error {
            DemoSendError::Transport(e) => e.send_failure(),
            DemoSendError::Discarded => SendFailure::MaybeSent,
        }
    }

    fn timeout(&self) -> StdDuration {
        self.inner.settings().timeout()
    }

    fn now(&self) -> OffsetDateTime {
        clock()
    }
}

fn prompt(question: &str) -> Result<String> {
    print!("{question}: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::OtpSent { .. } => "a new OTP is sent".into(),
        Outcome::SendLimitReached => "the bank refuses: send limit reached".into(),
        Outcome::Rejected(e) => format!("refused by the server: {e}"),
        // Everything else in the library's own words.
        other => other.to_string(),
    }
}

/// One line from the payment's view, as a page would show it.
fn state(p: &Payment) -> String {
    let view = p.view(clock());
    let next = match view.next.as_str() {
        "enter_otp" => match (view.can_resend, view.resend_in_seconds) {
            (true, _) => "OTP input and \"Resend\"".to_owned(),
            (false, Some(secs)) => format!("OTP input, \"Resend\" in {secs} s"),
            (false, None) => "OTP input, no more resends".to_owned(),
        },
        "finished" => format!("done ({})", view.status),
        _ => view.message.clone(),
    };
    let count = |n: Option<u32>| n.map_or("-".to_owned(), |n| n.to_string());
    format!(
        "[{} | sends left {} | tries left {} | {}: {next}]",
        view.status,
        count(view.sends_left),
        count(view.attempts_left),
        view.next,
    )
}

//! A checkout through the library over HTTP, in three payments, each one `Payment` record
//! from before the start until it is settled:
//!
//! 1. an OTP resend, a wrong OTP, the right OTP: `CHARGED`;
//! 2. resends up to the send limit, then the bank page; the browser comes back through the
//!    signed return URL, which settles the payment, and the order status confirms it;
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

use direct_otp::sandbox::{
    Endpoint, Fault, OtpSource, Sandbox, SandboxConfig, SandboxServer, SANDBOX_RESPONSE_KEY,
};
use direct_otp::transport::{Settings, UreqTransport};
use direct_otp::{
    Config, Otp, Outcome, Payment, PaymentSource, Refusal, Reply, ResponseKey, ReturnParams,
    SendFailure, Settlement, StartRequest, SANDBOX_URL,
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
    transport: UreqTransport,
    config: Config,
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
            transport: transport(),
            config,
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
        Ok(Demo {
            config: Config::new(&base_url, key)?.with_merchant_id(&merchant_id)?,
            backend: Backend::Remote { order_ids },
            transport: transport(),
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
        let Some(mut c) = self.start(1)? else {
            return Ok(());
        };
        let first = self.read_sms(&c)?;
        self.wait_for_cooldown(&c);
        self.step(&mut c, "cardholder taps \"Resend\"", |c, cfg, now| {
            c.resend(cfg, now)
        })?;
        let second = self.read_sms(&c)?;
        // Locally, the first OTP is no longer valid once the resend replaced it; a real bank
        // may still accept it, so against a real host the demo makes a typo instead.
        let (wrong, why) = match self.local() {
            Some(_) if first.digits != second.digits => {
                (first, "the first SMS's OTP, replaced by the resend")
            }
            _ => (Sms::wrong_version_of(&second), "a typo"),
        };
        let label = format!("cardholder types {} ({why})", wrong.shown);
        let otp = wrong.otp()?;
        self.step(&mut c, &label, |c, cfg, now| c.submit(cfg, &otp, now))?;
        let label = format!("cardholder types {}", second.shown);
        let otp = second.otp()?;
        self.step(&mut c, &label, |c, cfg, now| c.submit(cfg, &otp, now))?;
        self.expect_final(&c)
    }

    fn checkout_hitting_the_send_limit(&self) -> Result<()> {
        println!("\n== Payment 2: no SMS arrives; resends up to the limit, then the bank page ==");
        let Some(mut c) = self.start(2)? else {
            return Ok(());
        };
        loop {
            self.wait_for_cooldown(&c);
            if let Some(Err(refusal)) = c.challenge().map(|c| c.may_resend(clock())) {
                println!("  \"Resend\" is disabled: {refusal}");
                break;
            }
            let outcome = self.step(&mut c, "cardholder taps \"Resend\"", |c, cfg, now| {
                c.resend(cfg, now)
            })?;
            if !matches!(outcome, Outcome::OtpSent { .. }) {
                break;
            }
        }
        let url = c.go_to_bank_page(clock())?.to_owned();
        println!("  the browser is sent to the bank page: {url}");
        let back = match self.local() {
            Some(_) => {
                // What the cardholder's browser does there; the bank page then redirects
                // it to the shop's return URL.
                let answer = self
                    .transport
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
        if let (Some(back), Some(key)) = (back.filter(|b| !b.is_empty()), &self.response_key) {
            self.settle_by_return(&mut c, &back, key)?;
        }
        self.settle_by_status(&mut c)
    }

    fn checkout_with_a_lost_answer(&self) -> Result<()> {
        println!(
            "\n== Payment 3: the answer to the right OTP is lost; reconciliation settles it =="
        );
        let Some(mut c) = self.start(3)? else {
            return Ok(());
        };
        let sms = self.read_sms(&c)?;
        let out = c.submit(&self.config, &sms.otp()?, clock())?;
        print!("  cardholder types {} ", sms.shown);
        let outcome = match self.local() {
            Some(server) => {
                server
                    .sandbox()
                    .inject(Endpoint::Submit, Fault::DropResponse);
                print!("(the sandbox will drop the answer) ");
                let driven = self.transport.drive(&mut c, out)?;
                if let Some(e) = &driven.transport_error {
                    print!("-> transport: {e} ");
                }
                driven.outcome
            }
            None => {
                // A real host answers; the demo throws the answer away, as a timeout would.
                let _ = self.transport.send(out.request);
                print!("(the demo discards the answer) ");
                c.handle(out.token, Reply::Failed(SendFailure::MaybeSent), clock())?
            }
        };
        println!("-> {}", describe(&outcome));
        println!("     {}", state(&c));
        if let Err(refusal) = c.submit(&self.config, &sms.otp()?, clock()) {
            println!("  submitting again is refused: {refusal}");
        }
        self.settle_by_status(&mut c)
    }

    // ----- Steps --------------------------------------------------------------------

    /// A new payment record, started: `None` if the card needs 3DS instead (nothing to
    /// show here).
    fn start(&self, n: usize) -> Result<Option<Payment>> {
        let order_id = self.order_id(n);
        let start = StartRequest::new(
            &order_id,
            &self.merchant_id,
            &self.routing_id,
            self.card.clone(),
        )?;
        let mut p = Payment::new(&start, 1, clock());
        print!("  start authentication for order {order_id} (POST /txns) ");
        let out = p.start(&self.config, &start, clock())?;
        let driven = self.transport.drive(&mut p, out)?;
        match (&driven.outcome, p.challenge()) {
            (Outcome::OtpSent { .. }, Some(c)) => {
                let card = c.card();
                println!(
                    "-> OTP sent; OTP page for {} ****{} ({})",
                    card.brand.as_deref().unwrap_or("card"),
                    card.last_four.as_deref().unwrap_or("????"),
                    card.issuer.as_deref().unwrap_or("issuer unknown"),
                );
                println!("     {}", state(&p));
                Ok(Some(p))
            }
            (Outcome::BankPageRequired, _) => {
                let url = p.go_to_bank_page(clock())?;
                println!("-> this card uses 3DS, not Direct OTP: the browser would go to {url}");
                Ok(None)
            }
            (outcome, _) => Err(format!("the start gave {outcome:?}").into()),
        }
    }

    /// Runs one command through the transport and prints what happened.
    fn step(
        &self,
        c: &mut Payment,
        label: &str,
        command: impl FnOnce(
            &mut Payment,
            &Config,
            OffsetDateTime,
        ) -> std::result::Result<direct_otp::Outgoing, Refusal>,
    ) -> Result<Outcome> {
        let out = command(c, &self.config, clock())?;
        let driven = self.transport.drive(c, out)?;
        print!("  {label} -> {}", describe(&driven.outcome));
        if let Some(e) = &driven.transport_error {
            print!(" (transport: {e})");
        }
        println!("\n     {}", state(c));
        Ok(driven.outcome)
    }

    /// The browser is back on the shop's return URL: its signature is checked, then it
    /// settles the payment (to be confirmed by the order status).
    fn settle_by_return(&self, c: &mut Payment, url: &str, key: &ResponseKey) -> Result<()> {
        let shown = url.split_once('?').map_or(url, |(base, _)| base);
        print!("  the browser comes back to {shown}?order_id=...&signature=... ");
        match ReturnParams::from_url(url).and_then(|p| p.verify(key)) {
            Ok(verified) => {
                let outcome = c.settle(Settlement::ReturnUrl(verified), clock())?;
                println!("-> signature verified -> {outcome}");
            }
            Err(e) => println!("-> not used: {e}"),
        }
        println!("     {}", state(c));
        Ok(())
    }

    /// Checks the order status until the payment is final and confirmed (a few tries
    /// against a real host).
    fn settle_by_status(&self, c: &mut Payment) -> Result<()> {
        for attempt in 0..10 {
            if attempt > 0 {
                std::thread::sleep(StdDuration::from_secs(3));
            }
            self.step(
                c,
                "check the order status (GET /orders/{id})",
                |c, cfg, now| c.check_status(cfg, now),
            )?;
            if c.is_final() && c.is_confirmed() {
                break;
            }
        }
        self.expect_final(c)
    }

    fn expect_final(&self, c: &Payment) -> Result<()> {
        if !c.is_final() {
            return Err(format!("the payment is not final: {}", c.status()).into());
        }
        let verdict = if c.is_paid() { "paid" } else { "not paid" };
        println!("  => order {}: {} ({verdict})", c.order_id(), c.status());
        Ok(())
    }

    fn wait_for_cooldown(&self, c: &Payment) {
        let Some(at) = c.challenge().and_then(|c| c.resend_available_at()) else {
            return;
        };
        let wait = at - clock();
        if !wait.is_positive() {
            return;
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
    }

    /// The OTP the cardholder received: read from the local sandbox ("the phone"), or typed.
    fn read_sms(&self, c: &Payment) -> Result<Sms> {
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

fn transport() -> UreqTransport {
    // Proxies off (loopback must not go through one), a deadline per exchange.
    UreqTransport::with_default_agent().with_settings(
        Settings::new()
            .with_timeout(StdDuration::from_secs(20))
            .with_clock(clock),
    )
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
        "finished" if !view.confirmed => format!("done ({}), to be confirmed", view.status),
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

//! The checkout service: its state and its routes. The protocol of `docs/concurrency.md`
//! is the library's `AsyncDriver`: each step runs as its own task (`spawn_run`), so a
//! browser that goes away never leaves a payment in flight, and `sweep_every` recovers
//! what a dead server left. Pages are rendered from the stored payment's `view(now)`, and
//! messages from stable codes (`Outcome`, `DriveError`, `OtpError`) that the templates
//! (`templates/*.html`) turn into words.

use std::error::Error;
use std::fmt::{self, Write as _};
use std::sync::{Arc, LazyLock};

use axum::extract::{rejection::FormRejection, Form, Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{routing::get, routing::post, Router};
use direct_otp::driver::{AsyncDriver, Command, Done, DriveError};
use direct_otp::sandbox::{CardFlow, OtpSource, Sandbox, SandboxConfig, SandboxServer};
use direct_otp::{store::AsyncStore, transport::HyperTransport};
use direct_otp::{Config, Otp, Payment, PaymentSource, Policy, ReturnParams, StartRequest};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use minijinja::{context, value::Serde, Environment, Value};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;

/// Where payments are kept: `SqliteStore` (on tokio's blocking pool) or `PgStore`.
pub trait Db: AsyncStore<Payment> + Send + Sync + 'static {}
impl<S: AsyncStore<Payment> + Send + Sync + 'static> Db for S {}

pub type Transport = HyperTransport<hyper_rustls::HttpsConnector<HttpConnector>>;

/// The service's state: who pays whom with which cards, and the driver that runs the steps.
pub struct Shop<S> {
    pub driver: Arc<AsyncDriver<S, Transport>>,
    pub merchant_id: String,
    pub customer_id: String,
    /// The cards a shopper may pick: a label, and what `POST /txns` sends.
    pub cards: Vec<(String, PaymentSource)>,
    /// The embedded sandbox (the bank, and the cardholder's phone) when there is no Juspay.
    pub sandbox: Option<SandboxServer>,
    /// Limits, resend cooldown and lifetime of each payment's OTP page.
    pub policy: Policy,
}

impl<S: Db> Shop<S> {
    /// A shop whose bank is the embedded sandbox; its bank page returns to `{shop_url}/return`.
    pub fn with_sandbox(shop_url: &str, store: S, policy: Policy) -> Result<Self, Box<dyn Error>> {
        const KEY: &str = "sk_local_checkout"; // the sandbox's, not a Juspay key
        let mut bank = SandboxConfig::new(KEY)
            .with_otp(OtpSource::Seeded(2026))
            .with_return_url(&format!("{shop_url}/return"))
            .with_card("tok_3ds", CardFlow::ThreeDsFailover)
            .with_card("tok_declined", CardFlow::DeclineAfterOtp);
        bank.default_amount = 499.0;
        let sandbox = SandboxServer::start(Sandbox::new(bank))?;
        let config = Config::new(sandbox.base_url(), KEY)?;
        let card = |label: &str, t: &str| (label.to_owned(), PaymentSource::token(t));
        Ok(Shop {
            driver: Arc::new(AsyncDriver::new(store, transport(), config)),
            merchant_id: "acme".into(),
            customer_id: "customer_1122".into(),
            cards: vec![
                card("VISA, OTP by SMS", "tok_visa"),
                card("No Direct OTP: bank page", "tok_3ds"),
                card("Declined after the OTP", "tok_declined"),
            ],
            sandbox: Some(sandbox),
            policy,
        })
    }

    /// Runs `command` on the order's payment as its own task, and answers with its page.
    async fn run(&self, order: &str, command: Command) -> Response {
        let done = self
            .driver
            .spawn_run(&Payment::key_for(order, 1), command)
            .await;
        self.answer(order, done).await
    }

    /// The page after a step: the stored payment with what happened, or an error page.
    async fn answer(&self, order: &str, result: Result<Done, DriveError>) -> Response {
        let now = self.driver.transport().now();
        match result {
            Ok(done) => self.page(order, Some(done.outcome.code()), 200, None).await,
            Err(e) if e.shows_payment() => {
                let wait = e.retry_after(now);
                self.page(order, Some(e.code()), e.http_status(), wait)
                    .await
            }
            Err(e) => self.error(order, &e),
        }
    }

    /// The stored payment's page, with a notice when `code` says what happened.
    async fn page(
        &self,
        order: &str,
        code: Option<&str>,
        status: u16,
        wait: Option<u64>,
    ) -> Response {
        let payment = match self.driver.load(&Payment::key_for(order, 1)).await {
            Ok(payment) => payment,
            Err(e) => return self.error(order, &e),
        };
        let view = Value::from(Serde(payment.view(self.driver.transport().now())));
        let phone = self.phone(order);
        let ctx = context! { view, code, retry_after => wait, phone };
        let mut page = render("payment.html", status, ctx);
        if let Some(secs) = wait {
            page.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        page
    }

    fn error(&self, order: &str, e: &DriveError) -> Response {
        log(format_args!("order {order}: {e}"));
        let code = if e.http_status() == 404 {
            e.code()
        } else {
            "broken"
        };
        render("error.html", e.http_status(), context! { code })
    }

    /// The cardholder's phone, played by the sandbox: the OTP it sent last for the order.
    fn phone(&self, order: &str) -> Value {
        match &self.sandbox {
            Some(server) => context! { otp => server.sandbox().current_otp_for_order(order) },
            None => Value::from(()), // a real bank sends a real SMS
        }
    }
}

/// A new order id: `order_` and 128 bits from the operating system's random generator, in
/// hex. Unique across shop instances and restarts (two ids collide with odds of about
/// n²/2¹²⁹ for n ids), so one payment never settles two carts. `None` if the operating
/// system has no randomness to give.
pub fn new_order_id() -> Option<String> {
    let mut bits = [0u8; 16];
    SystemRandom::new().fill(&mut bits).ok()?;
    let mut id = String::with_capacity(6 + 32);
    id.push_str("order_");
    for b in bits {
        let _ = write!(id, "{b:02x}");
    }
    Some(id)
}

/// The longest line [`log`] writes, in characters (escapes included), before it is cut.
pub const LOG_LINE_MAX: usize = 300;

/// Writes one line to stderr, `checkout: ` and `line` made safe: every control character
/// (a newline from a `%0A` in a path, a terminal escape) and every backslash is escaped, so
/// no input can forge a line or colour the terminal, and the line is cut at
/// [`LOG_LINE_MAX`] characters.
pub fn log(line: fmt::Arguments<'_>) {
    eprintln!("checkout: {}", loggable(&line.to_string()));
}

/// `text` as [`log`] writes it.
pub fn loggable(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(LOG_LINE_MAX) + 16);
    let mut written = 0;
    for (i, c) in text.char_indices() {
        let escaped: String = if c.is_control() || c == '\\' || is_invisible(c) {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        let width = escaped.chars().count();
        if written + width > LOG_LINE_MAX {
            let _ = write!(out, "... ({} more bytes)", text.len() - i);
            return out;
        }
        out.push_str(&escaped);
        written += width;
    }
    out
}

/// Characters that are not control characters but move or hide text on a terminal: line
/// and paragraph separators, bidirectional overrides and isolates, zero-width ones.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// hyper over rustls (webpki roots) for Juspay, plain HTTP for the loopback sandbox.
pub fn transport() -> Transport {
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots();
    let https = https.https_or_http().enable_http1().build();
    HyperTransport::new(Client::builder(hyper_util::rt::TokioExecutor::new()).build(https))
}

/// The templates, read from `templates/` beside this file; `.html` ones are autoescaped.
static PAGES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut pages = Environment::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/checkout/templates");
    pages.set_loader(minijinja::path_loader(dir));
    pages
});

fn render(name: &str, status: u16, ctx: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match PAGES.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{name}: {e:#}")).into_response(),
    }
}

pub fn router<S: Db>(shop: Arc<Shop<S>>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/pay", post(pay))
        .route("/pay/{order}", get(payment_page))
        .route("/pay/{order}/{action}", post(act))
        .route("/return", get(back_from_bank))
        .with_state(shop)
}

type App<S> = State<Arc<Shop<S>>>;

async fn home<S: Db>(State(shop): App<S>) -> Response {
    let Some(order_id) = new_order_id() else {
        log(format_args!("no randomness for an order id"));
        return render("error.html", 503, context! { code => "broken" });
    };
    let cards: Vec<String> = shop.cards.iter().map(|(label, _)| label.clone()).collect();
    let (local, phone) = (shop.sandbox.is_some(), shop.phone(""));
    render("shop.html", 200, context! { order_id, cards, local, phone })
}

#[derive(Deserialize)]
struct PayForm {
    order_id: String,
    card: usize,
}

/// "Pay": starts the order's payment (one attempt per order: after a decline, the shopper
/// pays a new order), as its own task.
async fn pay<S: Db>(State(shop): App<S>, Form(form): Form<PayForm>) -> Response {
    let (order, (merchant, customer)) = (&form.order_id, (&shop.merchant_id, &shop.customer_id));
    let start = shop
        .cards
        .get(form.card)
        .map(|(_, card)| StartRequest::new(order, merchant, customer, card.clone()));
    match start {
        Some(Ok(start)) => {
            let done = shop
                .driver
                .spawn_start(start.with_policy(shop.policy), 1)
                .await;
            shop.answer(order, done).await
        }
        _ => render("error.html", 422, context! { code => "bad_order" }),
    }
}

async fn payment_page<S: Db>(State(shop): App<S>, Path(order): Path<String>) -> Response {
    shop.page(&order, None, 200, None).await
}

#[derive(Deserialize)]
struct OtpForm {
    otp: Option<String>,
}

/// The payment page's buttons: `otp`, `resend`, `check`, `bank`.
async fn act<S: Db>(
    State(shop): App<S>,
    Path((order, action)): Path<(String, String)>,
    form: Result<Form<OtpForm>, FormRejection>,
) -> Response {
    let command = match action.as_str() {
        "otp" => match Otp::new(&form.ok().and_then(|f| f.0.otp).unwrap_or_default()) {
            Ok(otp) => Command::Submit(otp),
            Err(e) => return shop.page(&order, Some(e.code()), 422, None).await,
        },
        "resend" => Command::Resend,
        "check" => Command::CheckStatus,
        "bank" => match shop.driver.bank_page(&Payment::key_for(&order, 1)).await {
            Ok(bank) => return Redirect::to(&bank.url).into_response(),
            Err(e) => return shop.answer(&order, Err(e)).await,
        },
        _ => return render("error.html", 404, context! { code => "not_found" }),
    };
    shop.run(&order, command).await
}

/// Back from the bank page: the return URL names the order. Its status is only a hint, so
/// the shop asks the bank.
async fn back_from_bank<S: Db>(State(shop): App<S>, RawQuery(query): RawQuery) -> Response {
    let params = ReturnParams::from_query(query.as_deref().unwrap_or_default());
    match params.ok().as_ref().and_then(ReturnParams::order_id) {
        Some(order) => shop.run(order, Command::CheckStatus).await,
        None => render("error.html", 400, context! { code => "bad_return" }),
    }
}

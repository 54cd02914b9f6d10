//! The checkout service: its state and its routes. The protocol of `docs/concurrency.md`
//! is the library's `AsyncDriver`: each step runs as its own task (`spawn_run`), so a
//! browser that goes away never leaves a payment in flight, and `sweep_every` recovers
//! what a dead server left. The return from the bank page and Juspay's webhooks are one
//! `settle` call each. An order's page shows its latest attempt; after a failed one the
//! shopper may pay the same order again (the next attempt). Pages are rendered from the
//! stored payment's `view(now)`, and messages from stable codes (`Outcome`, `DriveError`,
//! `OtpError`) that the templates (`templates/*.html`, beside `src/`) turn into words.

use std::error::Error;
use std::fmt::{self, Write as _};
use std::sync::{Arc, LazyLock};

use axum::body::Bytes;
use axum::extract::{rejection::FormRejection, Form, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{routing::get, routing::post, Router};
use direct_otp::driver::{AsyncDriver, Command, Done, DriveError};
use direct_otp::sandbox::{
    CardFlow, OtpSource, Sandbox, SandboxConfig, SandboxServer, SANDBOX_RESPONSE_KEY,
    SANDBOX_WEBHOOK_PASSWORD, SANDBOX_WEBHOOK_USER, WEBHOOK_PATH,
};
use direct_otp::{store::AsyncStore, transport::HyperTransport};
use direct_otp::{
    Config, Otp, Payment, PaymentSource, Policy, ResponseKey, ReturnParams, Settlement,
    StartRequest, WebhookCredentials, WebhookError,
};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
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
    /// The merchant's response key, which signs the return URL (`None`: the return is
    /// only a reason to check the order status).
    pub response_key: Option<ResponseKey>,
    /// The credentials Juspay's webhooks carry (`None`: webhooks are refused).
    pub webhook_credentials: Option<WebhookCredentials>,
}

impl<S: Db> Shop<S> {
    /// A shop whose bank is the embedded sandbox; its bank page returns to `{shop_url}/return`.
    pub fn with_sandbox(shop_url: &str, store: S, policy: Policy) -> Result<Self, Box<dyn Error>> {
        const KEY: &str = "sk_local_checkout"; // the sandbox's, not a Juspay key
        let mut bank = SandboxConfig::new(KEY)
            .with_otp(OtpSource::Seeded(2026))
            .with_return_url(&format!("{shop_url}/return"))
            .with_webhook_url(&format!("{shop_url}{WEBHOOK_PATH}"))?
            .with_card("tok_3ds", CardFlow::ThreeDsFailover)
            .with_card("tok_declined", CardFlow::DeclineAfterOtp);
        bank.default_amount = 499.0;
        let sandbox = SandboxServer::start(Sandbox::new(bank))?;
        let config = Config::new(sandbox.base_url(), KEY)?;
        let card = |label: &str, t: &str| (label.to_owned(), PaymentSource::token(t));
        Ok(Shop {
            driver: Arc::new(AsyncDriver::new(store, sandbox_transport(), config)),
            merchant_id: "acme".into(),
            customer_id: "customer_1122".into(),
            cards: vec![
                card("VISA, OTP by SMS", "tok_visa"),
                card("No Direct OTP: bank page", "tok_3ds"),
                card("Declined after the OTP", "tok_declined"),
            ],
            sandbox: Some(sandbox),
            policy,
            response_key: Some(ResponseKey::new(SANDBOX_RESPONSE_KEY)?),
            webhook_credentials: Some(WebhookCredentials::new(
                SANDBOX_WEBHOOK_USER,
                SANDBOX_WEBHOOK_PASSWORD,
            )?),
        })
    }

    /// The key of the order's latest attempt (`order/1` before the first is stored).
    async fn latest_key(&self, order: &str) -> Result<String, DriveError> {
        match self.driver.store().latest_for_order(order).await {
            Ok(Some(payment)) => Ok(payment.key().to_owned()),
            Ok(None) => Ok(Payment::key_for(order, 1)),
            Err(source) => Err(DriveError::Store {
                key: order.to_owned(),
                sent: false,
                source,
            }),
        }
    }

    /// Runs `command` on the order's latest attempt as its own task, and answers with its
    /// page.
    async fn run(&self, order: &str, command: Command) -> Response {
        let key = match self.latest_key(order).await {
            Ok(key) => key,
            Err(e) => return self.error(order, &e),
        };
        let done = self.driver.spawn_run(&key, command).await;
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
        let payment = match self.latest_key(order).await {
            Ok(key) => self.driver.load(&key).await,
            Err(e) => Err(e),
        };
        let payment = match payment {
            Ok(payment) => payment,
            Err(e) => return self.error(order, &e),
        };
        let view = Value::from(Serde(payment.view(self.driver.transport().now())));
        let phone = self.phone(order);
        let cards: Vec<String> = self.cards.iter().map(|(label, _)| label.clone()).collect();
        let ctx = context! { view, code, retry_after => wait, phone, cards };
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

/// The client for a real Juspay host: hyper over rustls with the webpki roots, HTTPS only,
/// built once and shared. This is the set-up the hyper adapter's documentation and
/// `docs/adapters.md` show (`tests/tls.rs` checks they show this code, and sends through it).
pub fn juspay_transport() -> Transport {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots() // or .with_native_roots()?
        .https_only()
        .enable_http1()
        .build();
    let client = Client::builder(TokioExecutor::new()).build(https);
    HyperTransport::new(client)
}

/// The same client, plain HTTP allowed: the embedded sandbox listens on loopback, no TLS.
pub fn sandbox_transport() -> Transport {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    HyperTransport::new(Client::builder(TokioExecutor::new()).build(https))
}

/// The templates, read from the package's `templates/` (in the source tree: the program
/// runs from it, through `cargo run`); `.html` ones are autoescaped.
static PAGES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut pages = Environment::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
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
        .route(WEBHOOK_PATH, post(webhook))
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

/// "Pay": starts the order's first attempt, as its own task.
async fn pay<S: Db>(State(shop): App<S>, Form(form): Form<PayForm>) -> Response {
    let Some(start) = shop.start_request(&form.order_id, form.card) else {
        return render("error.html", 422, context! { code => "bad_order" });
    };
    let done = shop.driver.spawn_start(start, 1).await;
    shop.answer(&form.order_id, done).await
}

/// "Pay again" after a failed attempt: the order's next attempt (`start_next`), as its own
/// task. Refused while the latest attempt is open or once the order is paid.
async fn pay_again<S: Db>(shop: Arc<Shop<S>>, order: String, card: usize) -> Response {
    let Some(start) = shop.start_request(&order, card) else {
        return render("error.html", 422, context! { code => "bad_order" });
    };
    let driver = Arc::clone(&shop.driver);
    let done = tokio::spawn(async move { driver.start_next(&start).await }).await;
    match done {
        Ok(done) => shop.answer(&order, done).await,
        Err(e) => {
            log(format_args!(
                "order {order}: the next attempt's task failed: {e}"
            ));
            render("error.html", 500, context! { code => "broken" })
        }
    }
}

impl<S: Db> Shop<S> {
    /// The start of `order` with card number `card`, if both are usable.
    fn start_request(&self, order: &str, card: usize) -> Option<StartRequest> {
        let (_, source) = self.cards.get(card)?;
        let start = StartRequest::new(order, &self.merchant_id, &self.customer_id, source.clone());
        Some(start.ok()?.with_policy(self.policy))
    }
}

async fn payment_page<S: Db>(State(shop): App<S>, Path(order): Path<String>) -> Response {
    shop.page(&order, None, 200, None).await
}

/// What the payment page's forms post: the OTP, or the card of the next attempt.
#[derive(Default, Deserialize)]
struct ActionForm {
    otp: Option<String>,
    card: Option<usize>,
}

/// The payment page's buttons: `otp`, `resend`, `check`, `bank`, and `again` (the next
/// attempt after a failed one).
async fn act<S: Db>(
    State(shop): App<S>,
    Path((order, action)): Path<(String, String)>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let form = form.map(|f| f.0).unwrap_or_default();
    let command = match action.as_str() {
        "again" => match form.card {
            Some(card) => return pay_again(shop, order, card).await,
            None => return render("error.html", 422, context! { code => "bad_order" }),
        },
        "otp" => match Otp::new(form.otp.as_deref().unwrap_or_default()) {
            Ok(otp) => Command::Submit(otp),
            Err(e) => return shop.page(&order, Some(e.code()), 422, None).await,
        },
        "resend" => Command::Resend,
        "check" => Command::CheckStatus,
        "bank" => {
            let bank = match shop.latest_key(&order).await {
                Ok(key) => shop.driver.bank_page(&key).await,
                Err(e) => Err(e),
            };
            match bank {
                Ok(bank) => return Redirect::to(&bank.url).into_response(),
                Err(e) => return shop.answer(&order, Err(e)).await,
            }
        }
        _ => return render("error.html", 404, context! { code => "not_found" }),
    };
    shop.run(&order, command).await
}

/// Back from the bank page: the return URL names the order, not the attempt (the back
/// button replays an earlier attempt's). Verified, it is one `settle` call: a reason to
/// confirm, and the order status decides in the same call. Unverified, the order's latest
/// attempt checks the order status.
async fn back_from_bank<S: Db>(State(shop): App<S>, RawQuery(query): RawQuery) -> Response {
    let Ok(params) = ReturnParams::from_query(query.as_deref().unwrap_or_default()) else {
        return render("error.html", 400, context! { code => "bad_return" });
    };
    let Some(order) = params.order_id().map(str::to_owned) else {
        return render("error.html", 400, context! { code => "bad_return" });
    };
    let verified = shop.response_key.as_ref().map(|key| params.verify(key));
    let Some(Ok(verified)) = verified else {
        return shop.run(&order, Command::CheckStatus).await;
    };
    let driver = Arc::clone(&shop.driver);
    let settled =
        tokio::spawn(async move { driver.settle(Settlement::ReturnUrl(verified)).await }).await;
    match settled {
        Ok(Ok(settled)) => {
            // The check's terminal outcome, if it settled the payment; else no notice (the
            // page shows where the payment stands, the OTP page included).
            let code = match &settled.check {
                Some(Ok(outcome)) if outcome.is_terminal() => Some(outcome.code()),
                _ => None,
            };
            shop.page(&order, code, 200, None).await
        }
        Ok(Err(e)) => shop.answer(&order, Err(e)).await,
        Err(e) => {
            log(format_args!("order {order}: the return's task failed: {e}"));
            render("error.html", 500, context! { code => "broken" })
        }
    }
}

/// Juspay's webhook: the credentials checked, then one `settle` call. Answered 200 whatever
/// the hint did (even about an order this shop does not know), 401/400 for a request that
/// is not a webhook, 5xx only when the store failed (Juspay then retries).
async fn webhook<S: Db>(State(shop): App<S>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(credentials) = &shop.webhook_credentials else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let event = match credentials.verify(authorization, &body) {
        Ok(event) => event,
        Err(e) => {
            log(format_args!("webhook refused: {e}"));
            let unauthorized = matches!(
                e,
                WebhookError::MissingAuthorization
                    | WebhookError::NotBasic
                    | WebhookError::BadCredentials
            );
            let status = if unauthorized { 401 } else { 400 };
            return StatusCode::from_u16(status)
                .unwrap_or(StatusCode::BAD_REQUEST)
                .into_response();
        }
    };
    let (id, order) = (event.id.clone(), event.order.order_id.clone());
    let driver = Arc::clone(&shop.driver);
    let settled =
        tokio::spawn(async move { driver.settle(Settlement::Webhook(event)).await }).await;
    match settled {
        Ok(Ok(settled)) => {
            log(format_args!(
                "webhook {id} for order {order}: {}",
                settled.outcome.code()
            ));
            StatusCode::OK.into_response()
        }
        Ok(Err(e)) if e.http_status() < 500 => {
            log(format_args!(
                "webhook {id} for order {order}: {} ({e})",
                e.code()
            ));
            StatusCode::OK.into_response()
        }
        Ok(Err(e)) => {
            log(format_args!("webhook {id} for order {order}: {e}"));
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        Err(e) => {
            log(format_args!("webhook {id}: the task failed: {e}"));
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

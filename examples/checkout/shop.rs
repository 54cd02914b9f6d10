//! The checkout service: its state and its routes. The protocol of `docs/concurrency.md`
//! (load, command, write-ahead, send, store the answer) is the library's `AsyncDriver`;
//! every step runs as its own task (`spawn_run`), so a browser that goes away never leaves
//! a payment in flight, and a recovery sweep (`sweeper`) settles what a dead server left.
//!
//! Every page is rendered from the stored payment's `view(now)`, and every message from a
//! stable code (`Outcome::code`, `DriveError::code`, `OtpError::code`) that the templates
//! (`templates/*.html`) turn into words.

use std::error::Error;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use direct_otp::driver::{AsyncDriver, Command, Done, DriveError};
use direct_otp::sandbox::{CardFlow, OtpSource, Sandbox, SandboxConfig, SandboxServer};
use direct_otp::store::AsyncStore;
use direct_otp::transport::HyperTransport;
use direct_otp::{Config, Otp, Payment, PaymentSource, Policy, ReturnParams, StartRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use minijinja::{context, value::Serde, Environment, Value};
use serde::Deserialize;

/// The API key the embedded sandbox accepts (not a Juspay key).
const SANDBOX_KEY: &str = "sk_local_checkout";

/// Where payments are kept: `SqliteStore` (its calls on tokio's blocking pool) or `PgStore`.
pub trait Db: AsyncStore<Payment> + Send + Sync + 'static {}
impl<S: AsyncStore<Payment> + Send + Sync + 'static> Db for S {}

pub type Transport = HyperTransport<HttpsConnector<HttpConnector>>;

/// The service's state: who pays whom with what, and the driver that runs the steps.
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
    /// A shop whose bank is the embedded sandbox; its bank page sends the browser back to
    /// `{shop_url}/return`.
    pub fn with_sandbox(shop_url: &str, store: S, policy: Policy) -> Result<Self, Box<dyn Error>> {
        let mut bank = SandboxConfig::new(SANDBOX_KEY)
            .with_otp(OtpSource::Seeded(2026))
            .with_return_url(&format!("{shop_url}/return"))
            .with_card("tok_3ds", CardFlow::ThreeDsFailover)
            .with_card("tok_declined", CardFlow::DeclineAfterOtp);
        bank.default_amount = 499.0;
        let sandbox = SandboxServer::start(Sandbox::new(bank))?;
        let token = |t: &str| PaymentSource::Token {
            card_token: t.into(),
            cvv: None,
        };
        let config = Config::new(sandbox.base_url(), SANDBOX_KEY)?;
        Ok(Shop {
            driver: Arc::new(AsyncDriver::new(store, transport(), config)),
            merchant_id: "acme".into(),
            customer_id: "customer_1122".into(),
            cards: vec![
                ("VISA, OTP by SMS".into(), token("tok_visa")),
                ("No Direct OTP: bank page".into(), token("tok_3ds")),
                ("Declined after the OTP".into(), token("tok_declined")),
            ],
            sandbox: Some(sandbox),
            policy,
        })
    }

    /// The page after a step: the stored payment with what happened, or an error page.
    async fn answer(&self, order: &str, result: Result<Done, DriveError>) -> Response {
        let now = self.driver.transport().now();
        let (code, status, wait) = match &result {
            Ok(done) => (done.outcome.code(), 200, None),
            Err(DriveError::Refused { refusal, .. }) => (
                refusal.code(),
                refusal.http_status(),
                refusal.retry_after(now),
            ),
            Err(e @ (DriveError::Busy { .. } | DriveError::Overtaken { .. })) => {
                (e.code(), e.http_status(), None)
            }
            Err(e @ DriveError::NotFound { .. }) => return self.error(404, e.code()),
            Err(e) => return self.broken(order, e),
        };
        self.page(order, Some(code), status, wait).await
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
            Err(e @ DriveError::NotFound { .. }) => return self.error(404, e.code()),
            Err(e) => return self.broken(order, &e),
        };
        let view = Value::from(Serde(payment.view(self.driver.transport().now())));
        let phone = self.phone(order);
        let ctx = context! { view, code, retry_after => wait, phone };
        let mut page = self.render("payment.html", status, ctx);
        if let Some(secs) = wait {
            page.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        page
    }

    fn render(&self, name: &str, status: u16, ctx: Value) -> Response {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match PAGES.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{name}: {e:#}")).into_response(),
        }
    }

    fn error(&self, status: u16, code: &str) -> Response {
        self.render("error.html", status, context! { code })
    }

    fn broken(&self, order: &str, why: &DriveError) -> Response {
        eprintln!("checkout: order {order}: {why}");
        self.error(why.http_status(), "broken")
    }

    /// The cardholder's phone, played by the sandbox: the OTP it sent last for the order.
    fn phone(&self, order: &str) -> Value {
        let Some(server) = &self.sandbox else {
            return Value::from(()); // a real bank sends a real SMS
        };
        let otp = server
            .sandbox()
            .current_otp_for_order(order)
            .map(str::to_owned);
        context! { otp }
    }
}

/// hyper over rustls (webpki roots) for Juspay, plain HTTP for the loopback sandbox.
pub fn transport() -> Transport {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    HyperTransport::new(Client::builder(hyper_util::rt::TokioExecutor::new()).build(https))
}

/// The recovery sweep, every 5 s: payments left in flight past the grace (a server that
/// died mid-step) are recovered and their order status checked.
pub async fn sweeper<S: Db>(driver: Arc<AsyncDriver<S, Transport>>) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        match driver.sweep_and_check(100).await {
            Ok(swept) => swept
                .iter()
                .for_each(|s| eprintln!("checkout: swept {s:?}")),
            Err(e) => eprintln!("checkout: sweep: {e}"),
        }
    }
}

/// The templates, read from `templates/` beside this file; `.html` ones are autoescaped.
static PAGES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut pages = Environment::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/checkout/templates");
    pages.set_loader(minijinja::path_loader(dir));
    pages
});

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
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 1000;
    let order_id = format!(
        "order_{}{n:03}",
        shop.driver.transport().now().unix_timestamp()
    );
    let cards: Vec<String> = shop.cards.iter().map(|(label, _)| label.clone()).collect();
    let (local, phone) = (shop.sandbox.is_some(), shop.phone(""));
    shop.render("shop.html", 200, context! { order_id, cards, local, phone })
}

#[derive(Deserialize)]
struct PayForm {
    order_id: String,
    card: usize,
}

/// One attempt per order here: after a decline, the shopper pays a new order.
async fn pay<S: Db>(State(shop): App<S>, Form(form): Form<PayForm>) -> Response {
    let order = form.order_id.as_str();
    let start = shop.cards.get(form.card).and_then(|(_, card)| {
        StartRequest::new(order, &shop.merchant_id, &shop.customer_id, card.clone()).ok()
    });
    match start {
        Some(start) => {
            let done = shop
                .driver
                .spawn_start(start.with_policy(shop.policy), 1)
                .await;
            shop.answer(order, done).await
        }
        None => shop.error(422, "bad_order"),
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
        _ => return shop.error(404, "not_found"),
    };
    let done = shop
        .driver
        .spawn_run(&Payment::key_for(&order, 1), command)
        .await;
    shop.answer(&order, done).await
}

/// Back from the bank page: the return URL names the order. Its status is only a hint, so
/// the shop asks the bank.
async fn back_from_bank<S: Db>(State(shop): App<S>, RawQuery(query): RawQuery) -> Response {
    let params = ReturnParams::from_query(query.as_deref().unwrap_or_default());
    match params.ok().as_ref().and_then(ReturnParams::order_id) {
        Some(order) => {
            let key = Payment::key_for(order, 1);
            let done = shop.driver.spawn_run(&key, Command::CheckStatus).await;
            shop.answer(order, done).await
        }
        None => shop.error(400, "bad_return"),
    }
}

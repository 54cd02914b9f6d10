//! The checkout service: its state, its routes, and the one function that runs the protocol
//! of `docs/concurrency.md` for every step that talks to the bank.
//!
//! Every page is rendered from the stored payment's `view(now)`, and every message from a
//! stable code (`Outcome::code`, `Refusal::code`, or the shop's `busy`) that the templates
//! (`templates/*.html`) turn into words.

use std::error::Error;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use direct_otp::sandbox::{CardFlow, OtpSource, Sandbox, SandboxConfig, SandboxServer};
use direct_otp::store::{AsyncStore, PgStore, SqliteStore, Store, StoreError};
use direct_otp::transport::HyperTransport;
use direct_otp::StartRequest;
use direct_otp::{Config, Otp, Payment, PaymentSource, Policy, Refusal, ReturnParams};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use minijinja::{context, value::Serde, Environment, Value};
use serde::Deserialize;
use tokio::task::block_in_place;

/// The API key the embedded sandbox accepts (not a Juspay key).
const SANDBOX_KEY: &str = "sk_local_checkout";

/// The service's state: where payments go, where they are kept, how requests are sent.
pub struct Shop {
    pub config: Config,
    pub merchant_id: String,
    pub customer_id: String,
    /// The cards a shopper may pick: a label, and what `POST /txns` sends.
    pub cards: Vec<(String, PaymentSource)>,
    /// The embedded sandbox (the bank, and the cardholder's phone) when there is no Juspay.
    pub sandbox: Option<SandboxServer>,
    pub store: Db,
    pub transport: Transport,
    /// Limits, resend cooldown and lifetime of each payment's OTP page.
    pub policy: Policy,
}

impl Shop {
    /// A shop whose bank is the embedded sandbox; its bank page sends the browser back to
    /// `{shop_url}/return`.
    pub fn with_sandbox(shop_url: &str, store: Db, policy: Policy) -> Result<Shop, Box<dyn Error>> {
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
        Ok(Shop {
            config: Config::new(sandbox.base_url(), SANDBOX_KEY)?,
            merchant_id: "acme".into(),
            customer_id: "customer_1122".into(),
            cards: vec![
                ("VISA, OTP by SMS".into(), token("tok_visa")),
                ("No Direct OTP: bank page".into(), token("tok_3ds")),
                ("Declined after the OTP".into(), token("tok_declined")),
            ],
            sandbox: Some(sandbox),
            store,
            transport: transport(),
            policy,
        })
    }
}

pub type Transport = HyperTransport<HttpsConnector<HttpConnector>>;

/// hyper over rustls (webpki roots) for Juspay, plain HTTP for the loopback sandbox.
pub fn transport() -> Transport {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    HyperTransport::new(Client::builder(hyper_util::rt::TokioExecutor::new()).build(https))
}

/// Where payments are kept: SQLite on one machine (blocking: its calls run in
/// `block_in_place`, so on a multi-threaded runtime), PostgreSQL for several servers.
pub enum Db {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Db {
    async fn load(&self, key: &str) -> Result<Option<Payment>, StoreError> {
        match self {
            Db::Sqlite(s) => block_in_place(|| Store::load(s, key)),
            Db::Postgres(p) => AsyncStore::load(p, key).await,
        }
    }

    /// Inserts a new record (`loaded` is `None`), or compare-and-swaps on the revision loaded.
    async fn save(&self, loaded: Option<u64>, payment: &Payment) -> Result<(), StoreError> {
        match (self, loaded) {
            (Db::Sqlite(s), None) => block_in_place(|| Store::insert(s, payment)),
            (Db::Sqlite(s), Some(rev)) => block_in_place(|| s.replace(rev, payment)),
            (Db::Postgres(p), None) => AsyncStore::insert(p, payment).await,
            (Db::Postgres(p), Some(rev)) => AsyncStore::replace(p, rev, payment).await,
        }
    }
}

/// What a page asks for.
enum Command {
    Start(Box<StartRequest>),
    Resend,
    Submit(Otp),
    CheckStatus,
    BankPage,
}

/// A step that went through: what happened (`Outcome::code`), or the bank page to go to.
enum Done {
    Page(&'static str),
    Redirect(String),
}

/// Why a step went no further; nothing was sent.
enum Failed {
    /// The payment refused the command and is unchanged (`Refusal::code`).
    Refused(Refusal),
    /// Someone else changed the payment first (a double click, another tab).
    Busy,
    NotFound,
    Broken(String),
}

impl Shop {
    // ===== The protocol (docs/concurrency.md), in one function ===========================
    // load -> command -> write ahead (insert, or compare-and-swap) -> send -> store the
    // answer (compare-and-swap). The library's driver (in progress on branch i12b) does the
    // same: switching to it replaces this function, `Done` and `Failed` with its own.
    async fn step(&self, key: &str, command: Command) -> Result<Done, Failed> {
        let (now, config) = (self.transport.now(), &self.config);
        let stored = self.store.load(key).await.map_err(broken)?;
        let loaded = stored.as_ref().map(Payment::revision);
        let mut payment = match (stored, &command) {
            (Some(payment), _) => payment,
            (None, Command::Start(start)) => Payment::new(start, 1, now),
            (None, _) => return Err(Failed::NotFound),
        };
        let out = match &command {
            Command::Start(start) => payment.start(config, start, now),
            Command::Resend => payment.resend(config, now),
            Command::Submit(otp) => payment.submit(config, otp, now),
            Command::CheckStatus => payment.check_status(config, now),
            Command::BankPage => {
                let url = payment.go_to_bank_page(now).map_err(Failed::Refused)?;
                if loaded != Some(payment.revision()) {
                    self.store.save(loaded, &payment).await.map_err(conflict)?; // not a reload
                }
                return Ok(Done::Redirect(url));
            }
        };
        let out = out.map_err(Failed::Refused)?;
        self.store.save(loaded, &payment).await.map_err(conflict)?; // the write-ahead
        let written = payment.revision();
        let driven = self.transport.drive(&mut payment, out).await;
        let outcome = driven.map_err(|e| Failed::Broken(e.to_string()))?.outcome;
        self.store
            .save(Some(written), &payment)
            .await
            .map_err(conflict)?;
        Ok(Done::Page(outcome.code()))
    }
    // ======================================================================================

    /// The page after a step: the bank page, or the stored payment with what happened.
    async fn answer(&self, order: &str, result: Result<Done, Failed>) -> Response {
        let now = self.transport.now();
        let (code, status, wait) = match result {
            Ok(Done::Redirect(url)) => return Redirect::to(&url).into_response(),
            Ok(Done::Page(code)) => (code, 200, None),
            Err(Failed::Refused(r)) => (r.code(), r.http_status(), r.retry_after(now)),
            Err(Failed::Busy) => ("busy", 409, None),
            Err(Failed::NotFound) => return self.error(404, "not_found"),
            Err(Failed::Broken(why)) => return self.broken(order, &why),
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
        let payment = match self.store.load(&key(order)).await {
            Ok(Some(payment)) => payment,
            Ok(None) => return self.error(404, "not_found"),
            Err(e) => return self.broken(order, &e.to_string()),
        };
        let view = payment.view(self.transport.now());
        let bank_page = payment.challenge().and_then(|c| c.fallback_url()).is_some();
        let phone = self.phone(order);
        let view = Value::from(Serde(view));
        let mut page = self.render(
            "payment.html",
            status,
            context! { view, code, retry_after => wait, bank_page, phone },
        );
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

    fn broken(&self, order: &str, why: &str) -> Response {
        eprintln!("checkout: order {order}: {why}");
        self.error(503, "broken")
    }

    /// The cardholder's phone, played by the sandbox: the OTP it sent last for the order.
    fn phone(&self, order: &str) -> Value {
        let Some(server) = &self.sandbox else {
            return Value::from(()); // a real bank sends a real SMS
        };
        let sandbox = server.sandbox();
        let txn = sandbox.latest_transaction(order);
        let otp = txn.and_then(|t| sandbox.current_otp(&t.id).map(str::to_owned));
        context! { otp }
    }
}

/// A store error: a conflict means someone else is on it; anything else is broken.
fn conflict(e: StoreError) -> Failed {
    if e.is_conflict() {
        Failed::Busy
    } else {
        broken(e)
    }
}

fn broken(e: StoreError) -> Failed {
    Failed::Broken(e.to_string())
}

/// One attempt per order here: after a decline, the shopper pays a new order.
fn key(order: &str) -> String {
    format!("{order}/1")
}

/// The templates, read from `templates/` beside this file; `.html` ones are autoescaped.
static PAGES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut pages = Environment::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/checkout/templates");
    pages.set_loader(minijinja::path_loader(dir));
    pages
});

pub fn router(shop: Arc<Shop>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/pay", post(pay))
        .route("/pay/{order}", get(payment_page))
        .route("/pay/{order}/{action}", post(act))
        .route("/return", get(back_from_bank))
        .with_state(shop)
}

type App = State<Arc<Shop>>;

/// Runs a step to its end even if the browser goes away: axum drops a handler's future when
/// the client disconnects (a double click cancels the first request), and a step dropped
/// after its write-ahead would leave the payment in flight until a recovery.
async fn run(shop: &Arc<Shop>, order: &str, command: Command) -> Response {
    let (detached, key) = (Arc::clone(shop), key(order));
    let result = tokio::spawn(async move { detached.step(&key, command).await }).await;
    let result = result.unwrap_or_else(|e| Err(Failed::Broken(e.to_string())));
    shop.answer(order, result).await
}

async fn home(State(shop): App) -> Response {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 1000;
    let order_id = format!("order_{}{n:03}", shop.transport.now().unix_timestamp());
    let cards: Vec<String> = shop.cards.iter().map(|(label, _)| label.clone()).collect();
    let (local, phone) = (shop.sandbox.is_some(), shop.phone(""));
    shop.render("shop.html", 200, context! { order_id, cards, local, phone })
}

#[derive(Deserialize)]
struct PayForm {
    order_id: String,
    card: usize,
}

async fn pay(State(shop): App, Form(form): Form<PayForm>) -> Response {
    let order = form.order_id.as_str();
    let start = shop.cards.get(form.card).and_then(|(_, card)| {
        StartRequest::new(order, &shop.merchant_id, &shop.customer_id, card.clone()).ok()
    });
    match start {
        Some(start) => {
            let start = Box::new(start.with_policy(shop.policy));
            run(&shop, order, Command::Start(start)).await
        }
        None => shop.error(422, "bad_order"),
    }
}

async fn payment_page(State(shop): App, Path(order): Path<String>) -> Response {
    shop.page(&order, None, 200, None).await
}

#[derive(Deserialize)]
struct OtpForm {
    otp: Option<String>,
}

/// The payment page's buttons: `otp`, `resend`, `check`, `bank`.
async fn act(
    State(shop): App,
    Path((order, action)): Path<(String, String)>,
    form: Result<Form<OtpForm>, FormRejection>,
) -> Response {
    let command = match action.as_str() {
        "otp" => match Otp::new(&form.ok().and_then(|f| f.0.otp).unwrap_or_default()) {
            Ok(otp) => Command::Submit(otp),
            Err(_) => return shop.page(&order, Some("invalid_otp"), 422, None).await,
        },
        "resend" => Command::Resend,
        "check" => Command::CheckStatus,
        "bank" => Command::BankPage,
        _ => return shop.error(404, "not_found"),
    };
    run(&shop, &order, command).await
}

/// Back from the bank page: the return URL names the order. Its status is only a hint, so
/// the shop asks the bank.
async fn back_from_bank(State(shop): App, RawQuery(query): RawQuery) -> Response {
    let params = ReturnParams::from_query(query.as_deref().unwrap_or_default());
    match params.ok().as_ref().and_then(ReturnParams::order_id) {
        Some(order) => run(&shop, order, Command::CheckStatus).await,
        None => shop.error(400, "bad_return"),
    }
}

//! The simulated server: orders and transactions in memory, and one function from a
//! request to a response.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;

use time::OffsetDateTime;

use super::auth;
use super::bodies::{self, ErrorKind, TxnPart};
use super::config::{CardFlow, Orders, OtpSource, SandboxConfig, WrongOtp};
use super::fault::{Endpoint, Fault, Scripted};
use super::settle::Settlement;
use super::state::{CardFacts, Order, Txn};
use super::wire::{Delivery, Form, HttpRequest, HttpResponse};
use crate::Status;

/// A simulated Juspay Direct OTP server: a pure function from a request to a response,
/// holding orders and transactions in memory. No IO, no clock: `now` is an argument.
///
/// It answers `POST /txns`, `POST /v2/txns/{id}/authenticate/{challenge_id}/resend`,
/// `POST /v2/txns/{id}/authenticate`, `GET /orders/{order_id}`, `GET /cardbins/{bin}`, and
/// the bank page `GET`/`POST /v2/pay/start/{merchant}/{txn_uuid}`; see `docs/sandbox.md` for
/// the rules.
///
/// ```
/// use direct_otp::sandbox::{OtpSource, Sandbox, SandboxConfig};
/// use direct_otp::{Config, Otp, Outcome, PaymentSource, StartRequest, Started};
/// use time::macros::datetime;
///
/// let now = datetime!(2026-11-25 10:00 UTC);
/// let mut sandbox = Sandbox::new(SandboxConfig::new("sk_test").with_otp(OtpSource::Seeded(42)));
/// let config = Config::new(sandbox.base_url(), "sk_test")?;
///
/// let start = StartRequest::new("ord_1", "acme", "customer_1",
///     PaymentSource::Token { card_token: "tok_visa".into(), cvv: None })?;
/// let answer = sandbox.handle(&(&start.request(&config)).into(), now);
/// let Started::Challenge(mut challenge) = start.handle_response(answer.status, &answer.body, now)?
/// else { unreachable!() };
///
/// // "Read the SMS", then submit it.
/// let sms = sandbox.current_otp(challenge.txn_id()).unwrap().to_owned();
/// let out = challenge.submit(&config, &Otp::new(&sms)?, now)?;
/// let answer = sandbox.handle(&(&out.request).into(), now);
/// let outcome = challenge.handle_response(out.token, answer.status, &answer.body, now)?;
/// assert!(matches!(outcome, Outcome::Approved(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Sandbox {
    pub(super) config: SandboxConfig,
    orders: BTreeMap<String, Order>,
    /// The orders kept, by creation number: the oldest first, for eviction.
    order_ages: BTreeMap<u64, String>,
    orders_created: u64,
    orders_evicted: u64,
    txns: BTreeMap<String, Txn>,
    pub(super) settle: Settlement,
    pub(super) faults: VecDeque<Scripted>,
    ids: u64,
    otps: u64,
    /// OTPs sent so far, over every transaction (evicted ones included).
    otps_sent: u64,
    requests: u64,
    log: VecDeque<Exchange>,
    per_endpoint: HashMap<Endpoint, usize>,
}

/// One request the sandbox answered, as kept in its [log](Sandbox::log).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exchange {
    /// The request's number, from 1 for the first request the sandbox answered: it tells
    /// how many older entries the bounded log has let go.
    pub number: u64,
    /// The endpoint, `None` for an unknown route.
    pub endpoint: Option<Endpoint>,
    /// The fault applied, if one was queued.
    pub fault: Option<Fault>,
    /// The HTTP status of the response (sent or not).
    pub http_status: u16,
    /// Whether and when the response was delivered.
    pub delivery: Delivery,
}

/// A read-only view of a transaction, for tests to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TxnView {
    /// The id used in the API paths (`txn_...`), the `params.id` of the start answer.
    pub id: String,
    /// The challenge id.
    pub challenge_id: String,
    /// The `txn_uuid` (also the last segment of the bank page URL).
    pub txn_uuid: String,
    /// The merchant-facing `txn_id` (`{merchant}-{order}-{n}`).
    pub txn_id: String,
    /// The order it belongs to.
    pub order_id: String,
    /// Its status.
    pub status: Status,
    /// OTP sends so far (the first one at start included).
    pub otp_sends: u32,
    /// OTP submissions so far.
    pub attempts: u32,
    /// True for a 3DS failover transaction (no OTP challenge).
    pub three_ds: bool,
}

/// How the cardholder leaves the bank page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BankPageResult {
    /// Authenticated: the payment is `CHARGED` (or `AUTHORIZED` without auto-capture).
    Success,
    /// Gave up or failed: `AUTHENTICATION_FAILED`.
    Failure,
}

/// Why a direct call on the sandbox was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// No transaction has this id (or `txn_uuid`).
    #[error("the sandbox has no transaction {0}")]
    UnknownTransaction(String),
    /// The transaction is not waiting for authentication any more.
    #[error("the transaction is not awaiting authentication (status {0})")]
    NotAwaitingAuthentication(Status),
}

/// The routes the sandbox knows, with the ids taken from the path.
enum Route<'a> {
    Start,
    Resend { txn: &'a str, challenge: &'a str },
    Submit { txn: &'a str },
    OrderStatus { order: &'a str },
    BankPage { uuid: &'a str, post: bool },
    CardBin { bin: &'a str },
}

impl Route<'_> {
    fn endpoint(&self) -> Endpoint {
        match self {
            Route::Start => Endpoint::Start,
            Route::Resend { .. } => Endpoint::Resend,
            Route::Submit { .. } => Endpoint::Submit,
            Route::OrderStatus { .. } => Endpoint::OrderStatus,
            Route::BankPage { .. } => Endpoint::BankPage,
            Route::CardBin { .. } => Endpoint::CardBin,
        }
    }
}

impl Sandbox {
    /// An empty sandbox (no orders, no transactions, no faults).
    pub fn new(config: SandboxConfig) -> Self {
        let otps = match config.otp {
            OtpSource::Seeded(seed) => seed,
            OtpSource::Fixed(_) => 0,
        };
        Sandbox {
            ids: config.id_seed,
            settle: Settlement::new(&config),
            config,
            orders: BTreeMap::new(),
            order_ages: BTreeMap::new(),
            orders_created: 0,
            orders_evicted: 0,
            txns: BTreeMap::new(),
            faults: VecDeque::new(),
            otps,
            otps_sent: 0,
            requests: 0,
            log: VecDeque::new(),
            per_endpoint: HashMap::new(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The base of the URLs the sandbox puts in its bodies.
    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// Replaces the settings, keeping the base URL (a server's own address) and every
    /// order, transaction, webhook and fault: a card flow, a limit, the response key or the
    /// webhook credentials changed between two requests. The control API's
    /// `PATCH /_sandbox/settings` and `PUT /_sandbox/cards/{card}` use it.
    ///
    /// ```
    /// use direct_otp::sandbox::{CardFlow, Sandbox, SandboxConfig};
    ///
    /// let mut sandbox = Sandbox::new(SandboxConfig::new("sk_test"));
    /// let config = sandbox.config().clone().with_card("tok_3ds", CardFlow::ThreeDsFailover);
    /// sandbox.set_config(config);
    /// assert_eq!(sandbox.config().card_flow("tok_3ds"), CardFlow::ThreeDsFailover);
    /// ```
    pub fn set_config(&mut self, mut config: SandboxConfig) {
        config.base_url = std::mem::take(&mut self.config.base_url);
        self.settle.reconfigure(&config);
        self.config = config;
    }

    /// Changes the base of the URLs put in bodies (a trailing `/` is dropped), e.g. to the
    /// address a server listens on.
    pub fn set_base_url(&mut self, base_url: &str) {
        self.config.base_url = base_url.trim_end_matches('/').to_owned();
    }

    /// Registers an order (needed with [`Orders::KnownOnly`]; with
    /// [`Orders::CreateOnFirstUse`], it sets the amount of an order not used yet). An order
    /// already known keeps its transactions and takes the new amount.
    pub fn add_order(&mut self, order_id: &str, amount: f64) {
        let internal_id = format!("ordeh_{:010x}", self.next_id() & 0xff_ffff_ffff);
        if let Some(order) = self.orders.get_mut(order_id) {
            order.amount = amount;
            return;
        }
        self.orders.insert(
            order_id.to_owned(),
            Order {
                order_id: order_id.to_owned(),
                internal_id,
                amount,
                customer_id: None,
                txns: Vec::new(),
                requests: [0; Endpoint::ALL.len()],
            },
        );
        self.orders_created += 1;
        self.order_ages
            .insert(self.orders_created, order_id.to_owned());
        self.evict_past_capacity();
    }

    /// Lets the oldest orders go while more than [`SandboxConfig::order_capacity`] are kept:
    /// settled ones (their latest transaction final) first, then the oldest of any kind (an
    /// order abandoned mid-payment). An order goes with its transactions and its webhooks.
    fn evict_past_capacity(&mut self) {
        let capacity = self.config.order_capacity.max(1);
        while self.orders.len() > capacity {
            let settled = self
                .order_ages
                .iter()
                .find(|(_, id)| self.order_status(id).is_some_and(|s| s.is_final()));
            let Some((age, order_id)) = settled
                .or_else(|| self.order_ages.iter().next())
                .map(|(age, id)| (*age, id.clone()))
            else {
                break;
            };
            self.order_ages.remove(&age);
            if let Some(order) = self.orders.remove(&order_id) {
                for txn in &order.txns {
                    self.txns.remove(txn);
                }
            }
            self.settle.forget(&order_id);
            self.orders_evicted += 1;
        }
    }

    /// How many orders the sandbox keeps now (at most
    /// [`SandboxConfig::order_capacity`]).
    pub fn order_count(&self) -> usize {
        self.orders.len()
    }

    /// How many transactions the sandbox keeps now (those of the orders kept).
    pub fn transaction_count(&self) -> usize {
        self.txns.len()
    }

    /// How many orders were let go so far to stay within
    /// [`SandboxConfig::order_capacity`].
    pub fn evicted_orders(&self) -> u64 {
        self.orders_evicted
    }

    /// Queues a fault for the next request to `endpoint` (see [`Fault`]).
    pub fn inject(&mut self, endpoint: Endpoint, fault: Fault) {
        self.inject_matching(Some(endpoint), None, fault);
    }

    /// Queues a fault for the next request that matches: to `endpoint` (`None`: any
    /// endpoint) and about order `order_id` (`None`: any request, even one about no known
    /// order). A request is about the order named in its form (`POST /txns`) or path
    /// (`GET /orders/{id}`), or the order of the transaction in its path (resend, submit,
    /// bank page). Faults are used once, the oldest matching one first.
    ///
    /// ```
    /// use direct_otp::sandbox::{Endpoint, Fault, Sandbox, SandboxConfig};
    ///
    /// let mut sandbox = Sandbox::new(SandboxConfig::new("sk_test"));
    /// sandbox.inject_matching(None, Some("ord_2"), Fault::DropResponse);
    /// sandbox.inject_matching(Some(Endpoint::Submit), None, Fault::InternalError);
    /// assert_eq!(sandbox.pending_faults(), 2);
    /// assert_eq!(sandbox.clear_faults(), 2);
    /// ```
    pub fn inject_matching(
        &mut self,
        endpoint: Option<Endpoint>,
        order_id: Option<&str>,
        fault: Fault,
    ) {
        self.faults.push_back(Scripted {
            endpoint,
            order_id: order_id.map(str::to_owned),
            fault,
        });
    }

    /// Faults queued and not used yet.
    pub fn pending_faults(&self) -> usize {
        self.faults.len()
    }

    /// Forgets every fault queued and not used yet; says how many there were.
    pub fn clear_faults(&mut self) -> usize {
        let n = self.faults.len();
        self.faults.clear();
        n
    }

    /// How many OTPs the bank sent so far (the first send at start and every resend),
    /// over every transaction, whatever the sandbox has let go since.
    pub fn otps_sent(&self) -> u64 {
        self.otps_sent
    }

    /// How many requests about order `order_id` reached `endpoint` (faulty ones included)
    /// since the order was created; `None` for an order the sandbox does not know (or has
    /// let go). See [`inject_matching`](Self::inject_matching) for what a request is about.
    pub fn order_requests_to(&self, order_id: &str, endpoint: Endpoint) -> Option<u64> {
        let order = self.orders.get(order_id)?;
        let i = Endpoint::ALL.iter().position(|e| *e == endpoint)?;
        Some(order.requests[i])
    }

    /// The OTP the bank sent last for transaction `txn_id` (the `params.id` of the start
    /// answer, [`Challenge::txn_id`](crate::Challenge::txn_id)), while it can still be
    /// submitted: "reading the SMS". `None` for an unknown or finished transaction.
    pub fn current_otp(&self, txn_id: &str) -> Option<&str> {
        let txn = self.txns.get(txn_id)?;
        if txn.status != Status::PendingVbv || txn.attempts >= self.config.max_attempts {
            return None;
        }
        txn.otp.as_deref()
    }

    /// The OTP the bank sent last for order `order_id` (its latest transaction), while it
    /// can still be submitted: the cardholder's phone, by order. `None` for an unknown
    /// order or when no OTP can be submitted.
    pub fn current_otp_for_order(&self, order_id: &str) -> Option<&str> {
        let id = self.orders.get(order_id)?.txns.last()?;
        self.current_otp(id)
    }

    /// A view of transaction `txn_id` (its `params.id`) or of the one with this `txn_uuid`.
    pub fn transaction(&self, id: &str) -> Option<TxnView> {
        self.find_txn(id).map(|t| TxnView {
            id: t.id.clone(),
            challenge_id: t.challenge_id.clone(),
            txn_uuid: t.txn_uuid.clone(),
            txn_id: t.txn_id.clone(),
            order_id: t.order_id.clone(),
            status: t.status.clone(),
            otp_sends: t.sends,
            attempts: t.attempts,
            three_ds: t.flow == CardFlow::ThreeDsFailover,
        })
    }

    /// Every transaction of an order, oldest first (empty for an unknown order).
    pub fn order_transactions(&self, order_id: &str) -> Vec<TxnView> {
        self.orders.get(order_id).map_or_else(Vec::new, |order| {
            order
                .txns
                .iter()
                .filter_map(|id| self.transaction(id))
                .collect()
        })
    }

    /// The current (latest) transaction of an order.
    pub fn latest_transaction(&self, order_id: &str) -> Option<TxnView> {
        let id = self.orders.get(order_id)?.txns.last()?;
        self.transaction(id)
    }

    /// The status `GET /orders/{order_id}` would report, without the side effects of a
    /// request. `None` for an unknown order.
    pub fn order_status(&self, order_id: &str) -> Option<Status> {
        let order = self.orders.get(order_id)?;
        Some(
            order
                .txns
                .last()
                .and_then(|id| self.txns.get(id))
                .map_or(Status::New, |t| t.status.clone()),
        )
    }

    /// The cardholder finishes on the bank page (the `fallback_url`, or the 3DS failover
    /// `url`) of transaction `id` (its `params.id` or `txn_uuid`). The same as a browser
    /// posting `result=success|failure` to that page.
    pub fn complete_bank_page(
        &mut self,
        id: &str,
        result: BankPageResult,
    ) -> Result<Status, SandboxError> {
        let auto_capture = self.config.auto_capture;
        let txn = self
            .find_txn_mut(id)
            .ok_or_else(|| SandboxError::UnknownTransaction(id.to_owned()))?;
        if txn.status != Status::PendingVbv {
            return Err(SandboxError::NotAwaitingAuthentication(txn.status.clone()));
        }
        txn.status = match result {
            BankPageResult::Success if auto_capture => Status::Charged,
            BankPageResult::Success => Status::Authorized,
            BankPageResult::Failure => Status::AuthenticationFailed,
        };
        txn.otp = None;
        let status = txn.status.clone();
        let order_id = txn.order_id.clone();
        self.settle.touch(&order_id);
        self.settle.flush(&self.config, &self.orders, &self.txns);
        Ok(status)
    }

    /// The most recent requests answered, oldest first: at most
    /// [`SandboxConfig::log_capacity`] of them (1,024 by default), so a long-running server
    /// keeps a bounded log. [`Exchange::number`] tells which ones are left.
    pub fn log(&self) -> &VecDeque<Exchange> {
        &self.log
    }

    /// How many requests reached `endpoint` so far (faulty ones included), counted from
    /// the first one, whether or not the bounded log still holds them.
    pub fn requests_to(&self, endpoint: Endpoint) -> usize {
        self.per_endpoint.get(&endpoint).copied().unwrap_or(0)
    }

    /// Answers a request built by the library (see [`handle`](Self::handle)).
    pub fn handle_request(
        &mut self,
        request: &crate::Request,
        now: OffsetDateTime,
    ) -> HttpResponse {
        self.handle(&HttpRequest::from(request), now)
    }

    /// Answers one request at `now`. Never panics; every answer is a documented body.
    pub fn handle(&mut self, req: &HttpRequest, now: OffsetDateTime) -> HttpResponse {
        if self.config.control_api && super::control::is_control(req) {
            return self.control(req);
        }
        self.requests = self.requests.wrapping_add(1);
        self.settle.now = now;
        let prefix = path_prefix(&self.config.base_url).to_owned();
        let route = route(&req.method, req.path(), &prefix);
        let endpoint = route.as_ref().map(Route::endpoint);
        let order_id = route.as_ref().and_then(|r| self.order_of(r, req));
        let fault = endpoint.and_then(|e| self.take_fault(e, order_id.as_deref()));
        let mut response = match (fault, route) {
            (Some(Fault::Duplicate), _) => {
                self.error(ErrorKind::Duplicate, "Duplicate request", &[])
            }
            (Some(Fault::Redirect(status)), _) => HttpResponse {
                status,
                headers: vec![
                    ("location".into(), req.target.clone()),
                    ("content-type".into(), "text/plain; charset=utf-8".into()),
                ],
                body: b"Moved.".to_vec(),
                delivery: Delivery::Now,
            },
            (Some(f), _) if !f.applies_request() => {
                self.error(ErrorKind::Internal, "Something went wrong", &[])
            }
            (_, Some(route)) => self.apply(route, req, now),
            (_, None) => self.error(ErrorKind::RouteNotFound, "No such endpoint", &[]),
        };
        match fault {
            Some(Fault::InternalErrorAfterApply) => {
                response = self.error(ErrorKind::Internal, "Something went wrong", &[]);
            }
            Some(Fault::Slow(d)) => response.delivery = Delivery::After(d),
            Some(Fault::DropResponse | Fault::DropRequest) => response.delivery = Delivery::Never,
            Some(Fault::Reset) => response.delivery = Delivery::Reset,
            Some(Fault::TruncateBody) => response.delivery = Delivery::Truncated,
            Some(Fault::StallBody(d)) => response.delivery = Delivery::Stalled(d),
            Some(Fault::Oversized(n)) => {
                let n = n.min(Fault::MAX_OVERSIZED);
                response.body.resize(response.body.len().max(n), b' ');
            }
            _ => {}
        }
        if let Some(endpoint) = endpoint {
            let n = self.per_endpoint.entry(endpoint).or_default();
            *n = n.saturating_add(1);
            // Counted once the request is handled: `POST /txns` may have created the order.
            let i = Endpoint::ALL.iter().position(|e| *e == endpoint);
            if let (Some(order), Some(i)) = (order_id.and_then(|o| self.orders.get_mut(&o)), i) {
                order.requests[i] = order.requests[i].saturating_add(1);
            }
        }
        let exchange = Exchange {
            number: self.requests,
            endpoint,
            fault,
            http_status: response.status,
            delivery: response.delivery,
        };
        self.record(exchange);
        self.settle.flush(&self.config, &self.orders, &self.txns);
        response
    }

    /// Keeps `exchange` in the log, letting the oldest entry go when it is full.
    fn record(&mut self, exchange: Exchange) {
        let capacity = self.config.log_capacity;
        if capacity == 0 {
            return;
        }
        while self.log.len() >= capacity {
            self.log.pop_front();
        }
        self.log.push_back(exchange);
    }

    fn take_fault(&mut self, endpoint: Endpoint, order_id: Option<&str>) -> Option<Fault> {
        let i = self
            .faults
            .iter()
            .position(|s| s.matches(endpoint, order_id))?;
        self.faults.remove(i).map(|s| s.fault)
    }

    /// The order a request is about, if it names one (see
    /// [`inject_matching`](Self::inject_matching)).
    fn order_of(&self, route: &Route<'_>, req: &HttpRequest) -> Option<String> {
        match route {
            Route::Start => Form::parse(&req.body).get("order_id").map(str::to_owned),
            Route::OrderStatus { order } => Some((*order).to_owned()),
            Route::Resend { txn, .. } | Route::Submit { txn } => {
                self.txns.get(*txn).map(|t| t.order_id.clone())
            }
            Route::BankPage { uuid, .. } => self.find_txn(uuid).map(|t| t.order_id.clone()),
            Route::CardBin { .. } => None,
        }
    }

    fn apply(&mut self, route: Route<'_>, req: &HttpRequest, now: OffsetDateTime) -> HttpResponse {
        if let Route::BankPage { uuid, post } = route {
            return self.bank_page(uuid, post, req);
        }
        let authorized = req
            .header("authorization")
            .and_then(auth::basic_user)
            .is_some_and(|user| !user.is_empty() && user == self.config.api_key());
        if !authorized {
            return self.error(
                ErrorKind::AccessDenied,
                "Access denied: invalid API key",
                &[],
            );
        }
        let routing = req
            .header("x-routing-id")
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let needs_routing = !matches!(route, Route::CardBin { .. });
        if self.config.require_routing_id && needs_routing && routing.is_none() {
            return self.error(
                ErrorKind::Missing,
                "x-routing-id header is missing",
                &["x-routing-id"],
            );
        }
        match route {
            Route::Start => self.start(&Form::parse(&req.body), routing, now),
            Route::Resend { txn, challenge } => self.resend(txn, challenge),
            Route::Submit { txn } => self.submit(txn, &Form::parse(&req.body)),
            Route::OrderStatus { order } => self.order(order),
            Route::BankPage { uuid, post } => self.bank_page(uuid, post, req),
            Route::CardBin { bin } => self.card_bin(bin, req),
        }
    }

    // ----- POST /txns ---------------------------------------------------------------

    fn start(&mut self, form: &Form, routing: Option<&str>, now: OffsetDateTime) -> HttpResponse {
        let mut missing = Vec::new();
        for field in ["order_id", "merchant_id", "payment_method_type"] {
            if form.get(field).is_none() {
                missing.push(field);
            }
        }
        match (form.get("card_token"), form.get("card_number")) {
            (None, None) => missing.push("card_token"),
            (None, Some(_)) => {
                for field in ["card_exp_month", "card_exp_year"] {
                    if form.get(field).is_none() {
                        missing.push(field);
                    }
                }
            }
            _ => {}
        }
        if !missing.is_empty() {
            let message = format!("Missing mandatory parameter: {}", missing.join(", "));
            return self.error(ErrorKind::Missing, &message, &missing);
        }
        let (Some(order_id), Some(merchant), Some(method_type)) = (
            form.get("order_id"),
            form.get("merchant_id"),
            form.get("payment_method_type"),
        ) else {
            return self.error(ErrorKind::Missing, "Missing mandatory parameter", &[]);
        };
        if merchant != self.config.merchant_id {
            return self.error(
                ErrorKind::InvalidInput,
                "merchant_id does not match the API key's merchant",
                &[],
            );
        }
        if !method_type.eq_ignore_ascii_case("CARD") {
            return self.error(
                ErrorKind::InvalidInput,
                "payment_method_type must be CARD",
                &[],
            );
        }
        if !self.orders.contains_key(order_id) {
            if self.config.orders == Orders::KnownOnly {
                return self.error(ErrorKind::OrderNotFound, "Order not found", &[]);
            }
            self.add_order(order_id, self.config.default_amount);
        }
        if let Some(status) = self.order_status(order_id).filter(Status::is_success) {
            let message = format!("Order is already paid ({status})");
            return self.error(ErrorKind::InvalidAction, &message, &[]);
        }
        let card_key = form
            .get("card_token")
            .or(form.get("card_number"))
            .unwrap_or_default();
        let direct_otp = form
            .get("auth_type")
            .is_some_and(|t| t.eq_ignore_ascii_case("OTP"));
        let flow = match self.config.card_flow(card_key) {
            _ if !direct_otp => CardFlow::ThreeDsFailover,
            flow => flow,
        };
        let card = self.card_facts(form);
        let txn = self.new_txn(order_id, flow, card, now);
        let id = txn.id.clone();
        self.txns.insert(id.clone(), txn);
        let Some(order) = self.orders.get_mut(order_id) else {
            return self.error(ErrorKind::Internal, "Something went wrong", &[]);
        };
        order.txns.push(id.clone());
        if order.customer_id.is_none() {
            order.customer_id = routing.map(str::to_owned);
        }
        if flow != CardFlow::ThreeDsFailover {
            self.send_otp(&id);
        }
        self.txn_answer(200, &id, TxnPart::Start)
    }

    fn new_txn(
        &mut self,
        order_id: &str,
        flow: CardFlow,
        card: CardFacts,
        now: OffsetDateTime,
    ) -> Txn {
        let n = self.orders.get(order_id).map_or(0, |o| o.txns.len()) + 1;
        let (a, b) = (self.next_id(), self.next_id());
        let (c, d) = (self.next_id(), self.next_id());
        Txn {
            id: format!("txn_{a:016x}{b:016x}"),
            challenge_id: format!("ch_{:08x}", c & 0xffff_ffff),
            txn_uuid: format!("eul{:013x}", d & 0x000f_ffff_ffff_ffff),
            txn_id: format!("{}-{order_id}-{n}", self.config.merchant_id),
            order_id: order_id.to_owned(),
            status: Status::PendingVbv,
            flow,
            card,
            otp: None,
            sends: 0,
            attempts: 0,
            capture: self.config.auto_capture,
            created: now,
            numbers: format!("{:012}{:012}", a % 1_000_000_000_000, b % 1_000_000_000_000),
        }
    }

    fn card_facts(&mut self, form: &Form) -> CardFacts {
        let fingerprint = format!("{:016x}", self.next_id());
        let name = form
            .get("name_on_card")
            .unwrap_or("Test Cardholder")
            .to_owned();
        match form.get("card_number") {
            Some(number) if form.get("card_token").is_none() => {
                let digits: String = number.chars().filter(char::is_ascii_digit).collect();
                let isin = digits.get(..6).unwrap_or(&digits).to_owned();
                let last_four = digits
                    .get(digits.len().saturating_sub(4)..)
                    .unwrap_or_default()
                    .to_owned();
                CardFacts {
                    brand: brand_of(&digits),
                    isin,
                    last_four,
                    issuer: "Sandbox Bank",
                    name,
                    expiry_month: form.get("card_exp_month").unwrap_or("12").to_owned(),
                    expiry_year: form.get("card_exp_year").unwrap_or("2030").to_owned(),
                    fingerprint,
                    tokenized: false,
                }
            }
            _ => CardFacts {
                isin: "411111".to_owned(),
                last_four: "1111".to_owned(),
                brand: "VISA",
                issuer: "Sandbox Bank",
                name,
                expiry_month: "12".to_owned(),
                expiry_year: "2030".to_owned(),
                fingerprint,
                tokenized: true,
            },
        }
    }

    // ----- Resend -------------------------------------------------------------------

    fn resend(&mut self, txn_id: &str, challenge: &str) -> HttpResponse {
        if let Err(response) = self.check_challenge(txn_id, Some(challenge)) {
            return response;
        }
        let (sends, attempts) = match self.txns.get(txn_id) {
            Some(t) => (t.sends, t.attempts),
            None => return self.error(ErrorKind::TxnNotFound, "Transaction not found", &[]),
        };
        if sends >= self.config.max_sends {
            return self.error(ErrorKind::SendLimit, "Max OTP send limit exceeded", &[]);
        }
        if attempts >= self.config.max_attempts {
            return self.error(
                ErrorKind::InvalidAction,
                "No OTP attempts left; continue on the fallback_url",
                &[],
            );
        }
        self.send_otp(txn_id);
        self.txn_answer(200, txn_id, TxnPart::Resend)
    }

    /// The checks common to resend and submit: the transaction exists, the challenge is
    /// its own, it has an OTP challenge, and it is waiting for an OTP.
    fn check_challenge(
        &mut self,
        txn_id: &str,
        challenge: Option<&str>,
    ) -> Result<(), HttpResponse> {
        let problem = match self.txns.get(txn_id) {
            None => Some((ErrorKind::TxnNotFound, "Transaction not found".to_owned())),
            Some(t) if challenge.is_some_and(|c| c != t.challenge_id) => Some((
                ErrorKind::InvalidInput,
                "challenge_id does not belong to this transaction".to_owned(),
            )),
            Some(t) if t.flow == CardFlow::ThreeDsFailover => Some((
                ErrorKind::InvalidAction,
                "Transaction has no OTP challenge".to_owned(),
            )),
            Some(t) if t.status != Status::PendingVbv => Some((
                ErrorKind::InvalidAction,
                format!("Transaction is not awaiting an OTP (status {})", t.status),
            )),
            Some(_) => None,
        };
        match problem {
            Some((kind, message)) => Err(self.error(kind, &message, &[])),
            None => Ok(()),
        }
    }

    fn send_otp(&mut self, txn_id: &str) {
        let otp = match &self.config.otp {
            OtpSource::Fixed(otp) => otp.clone(),
            OtpSource::Seeded(_) => format!("{:06}", splitmix(&mut self.otps) % 1_000_000),
        };
        if let Some(t) = self.txns.get_mut(txn_id) {
            // A lost SMS: counted as sent, but no OTP exists that could be submitted.
            t.otp = Some(otp).filter(|_| t.flow != CardFlow::NoSms);
            t.sends = t.sends.saturating_add(1);
            self.otps_sent = self.otps_sent.saturating_add(1);
        }
    }

    // ----- Submit -------------------------------------------------------------------

    fn submit(&mut self, txn_id: &str, form: &Form) -> HttpResponse {
        if !self.txns.contains_key(txn_id) {
            return self.error(ErrorKind::TxnNotFound, "Transaction not found", &[]);
        }
        let missing: Vec<&str> = ["challenge_id", "answer.otp"]
            .into_iter()
            .filter(|f| form.get(f).is_none())
            .collect();
        if !missing.is_empty() {
            let message = format!("Missing mandatory parameter: {}", missing.join(", "));
            return self.error(ErrorKind::Missing, &message, &missing);
        }
        if let Err(response) = self.check_challenge(txn_id, form.get("challenge_id")) {
            return response;
        }
        let capture = match form.get("auto_capture") {
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            _ => self.config.auto_capture,
        };
        let max_attempts = self.config.max_attempts;
        let Some(txn) = self.txns.get_mut(txn_id) else {
            return self.error(ErrorKind::TxnNotFound, "Transaction not found", &[]);
        };
        if txn.attempts >= max_attempts {
            return self.error(ErrorKind::AttemptLimit, "Max OTP attempts exceeded", &[]);
        }
        txn.attempts += 1;
        let right = txn.otp.is_some() && txn.otp.as_deref() == form.get("answer.otp");
        if right {
            txn.capture = capture;
            txn.otp = None;
            txn.status = match txn.flow {
                CardFlow::DeclineAfterOtp => Status::AuthorizationFailed,
                CardFlow::SlowAuthorization => Status::Authorizing,
                _ if capture => Status::Charged,
                _ => Status::Authorized,
            };
        } else if self.config.wrong_otp == WrongOtp::Http400 {
            return self.error(ErrorKind::WrongOtp, "Incorrect OTP entered", &[]);
        }
        self.txn_answer(200, txn_id, TxnPart::Submit)
    }

    // ----- GET /orders/{order_id} ---------------------------------------------------

    fn order(&mut self, order_id: &str) -> HttpResponse {
        let Some(order) = self.orders.get(order_id) else {
            return self.error(ErrorKind::OrderNotFound, "Order not found", &[]);
        };
        let latest = order.txns.last().cloned();
        self.settle.touch(order_id);
        // A slow authorization has finished by the time anyone asks.
        if let Some(t) = latest.as_ref().and_then(|id| self.txns.get_mut(id)) {
            if t.status == Status::Authorizing {
                t.status = if t.capture {
                    Status::Charged
                } else {
                    Status::Authorized
                };
            }
        }
        let (Some(order), latest) = (
            self.orders.get(order_id),
            latest.as_ref().and_then(|id| self.txns.get(id)),
        ) else {
            return self.error(ErrorKind::OrderNotFound, "Order not found", &[]);
        };
        HttpResponse::json(200, &bodies::order(&self.config, order, latest))
    }

    // ----- The bank page (browser-facing, no API key) -------------------------------

    fn bank_page(&mut self, uuid: &str, post: bool, req: &HttpRequest) -> HttpResponse {
        let Some(txn) = self.find_txn(uuid) else {
            return HttpResponse::html(404, page("Unknown transaction", "No such payment."));
        };
        if !post {
            let text = format!(
                "Payment {} for order {}: status {}. POST result=success or \
                 result=failure to this URL to finish authentication.",
                txn.txn_id, txn.order_id, txn.status
            );
            // The same two answers as buttons, for a person in a browser.
            let buttons = "<form method=post><button name=result value=success>Authenticate\
                           </button> <button name=result value=failure>Fail</button></form>";
            let html = page("Sandbox bank page", &text) + buttons;
            return HttpResponse::html(200, html);
        }
        let result = match Form::parse(&req.body).get("result") {
            Some(r) if r.eq_ignore_ascii_case("failure") => BankPageResult::Failure,
            _ => BankPageResult::Success,
        };
        match self.complete_bank_page(uuid, result) {
            Ok(status) => {
                let order = self.find_txn(uuid).map(|t| t.order_id.clone());
                if let Some(redirect) = order.and_then(|o| self.bank_page_return(&o)) {
                    return redirect;
                }
                HttpResponse::html(
                    200,
                    page(
                        "Sandbox bank page",
                        &format!("Done: {status}. Return to the merchant."),
                    ),
                )
            }
            Err(e) => HttpResponse::html(409, page("Sandbox bank page", &e.to_string())),
        }
    }

    // ----- Helpers ------------------------------------------------------------------

    fn find_txn(&self, id: &str) -> Option<&Txn> {
        self.txns
            .get(id)
            .or_else(|| self.txns.values().find(|t| t.txn_uuid == id))
    }

    fn find_txn_mut(&mut self, id: &str) -> Option<&mut Txn> {
        let key = self.find_txn(id)?.id.clone();
        self.txns.get_mut(&key)
    }

    fn txn_answer(&mut self, status: u16, txn_id: &str, part: TxnPart) -> HttpResponse {
        if let Some(t) = self.txns.get(txn_id) {
            self.settle.touch(&t.order_id);
        }
        let body = self.txns.get(txn_id).and_then(|t| {
            let order = self.orders.get(&t.order_id)?;
            Some(bodies::txn(&self.config, order, t, part))
        });
        match body {
            Some(body) => HttpResponse::json(status, &body),
            None => self.error(ErrorKind::Internal, "Something went wrong", &[]),
        }
    }

    pub(super) fn error(
        &mut self,
        kind: ErrorKind,
        message: &str,
        fields: &[&str],
    ) -> HttpResponse {
        let request_id = format!("req_{:08x}", self.requests);
        HttpResponse::json(
            kind.http_status(),
            &bodies::error(kind, message, fields, &request_id),
        )
    }

    fn next_id(&mut self) -> u64 {
        splitmix(&mut self.ids)
    }
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.config)
            .field("orders", &self.orders.len())
            .field("transactions", &self.txns.len())
            .field("pending_faults", &self.faults.len())
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

/// Matches a method and path (below `prefix`) to a route.
fn route<'a>(method: &str, path: &'a str, prefix: &str) -> Option<Route<'a>> {
    let path = path.strip_prefix(prefix).unwrap_or(path);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let id = |s: &'a str| Some(s).filter(|s| !s.is_empty());
    Some(match (method, segments.as_slice()) {
        ("POST", ["txns"]) => Route::Start,
        ("POST", ["v2", "txns", txn, "authenticate"]) => Route::Submit { txn: id(txn)? },
        ("POST", ["v2", "txns", txn, "authenticate", challenge, "resend"]) => Route::Resend {
            txn: id(txn)?,
            challenge: id(challenge)?,
        },
        ("GET", ["orders", order]) => Route::OrderStatus { order: id(order)? },
        ("GET", ["cardbins", bin]) => Route::CardBin { bin: id(bin)? },
        (m @ ("GET" | "POST"), ["v2", "pay", "start", _merchant, uuid]) => Route::BankPage {
            uuid: id(uuid)?,
            post: m == "POST",
        },
        _ => return None,
    })
}

/// The path part of a base URL (`""` for none).
fn path_prefix(base_url: &str) -> &str {
    let target = super::wire::target_of(base_url);
    target.trim_end_matches('/')
}

pub(super) fn brand_of(digits: &str) -> &'static str {
    match digits.as_bytes().first() {
        Some(b'4') => "VISA",
        Some(b'5' | b'2') => "MASTERCARD",
        Some(b'6') => "RUPAY",
        Some(b'3') => "AMEX",
        _ => "VISA",
    }
}

fn page(title: &str, text: &str) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        "<!doctype html><title>{}</title><h1>{}</h1><p>{}</p>",
        escape(title),
        escape(title),
        escape(text)
    )
}

/// SplitMix64: a small, good, deterministic generator (ids and seeded OTPs).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

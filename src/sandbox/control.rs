//! The control API: what a test in any language needs from a sandbox served over HTTP that
//! Juspay's API does not give (the OTP the "bank" sent, scripted faults and card flows,
//! settings, webhooks, counters, a reset), under its own path prefix, [`CONTROL_PREFIX`],
//! apart from every simulated Juspay route. Off unless
//! [`SandboxConfig::control_api`](super::SandboxConfig::control_api) is set; the same API
//! key as the simulated API. JSON in and out; every refusal is
//! `{"code": "...", "message": "..."}` with a 4xx status. Thin: each route reads its input
//! (`control_input.rs`) and calls a [`Sandbox`] method. Pure, as the model: no IO.

use serde_json::{json, Value};

use super::auth;
use super::config::{Orders, OtpSource, SandboxConfig, WrongOtp};
use super::control_input::{describe_fault, path_segment, Input, Problem, MAX_QUEUED};
use super::fault::Endpoint;
use super::model::{BankPageResult, Sandbox, SandboxError, TxnView};
use super::wire::{Delivery, HttpRequest, HttpResponse};

/// The path prefix of the control API: `/_sandbox/`. No Juspay route starts with it.
pub const CONTROL_PREFIX: &str = "/_sandbox/";

/// Every route, as `GET /_sandbox/` lists them (`docs/sandbox.md` describes each).
const ROUTES: &[&str] = &[
    "GET /_sandbox/",
    "GET /_sandbox/settings",
    "PATCH /_sandbox/settings",
    "GET /_sandbox/cards",
    "PUT /_sandbox/cards/{card}",
    "PUT /_sandbox/bins/{prefix}",
    "GET /_sandbox/faults",
    "POST /_sandbox/faults",
    "DELETE /_sandbox/faults",
    "POST /_sandbox/webhook-faults",
    "POST /_sandbox/orders",
    "GET /_sandbox/orders/{order_id}",
    "GET /_sandbox/orders/{order_id}/otp",
    "GET /_sandbox/orders/{order_id}/return-url",
    "POST /_sandbox/orders/{order_id}/bank-page",
    "POST /_sandbox/orders/{order_id}/webhooks/take",
    "GET /_sandbox/counters",
    "GET /_sandbox/log",
    "POST /_sandbox/reset",
];

/// The settings `PATCH /_sandbox/settings` takes.
const SETTINGS: &[&str] = &[
    "merchant_id",
    "max_sends",
    "max_attempts",
    "otp",
    "auto_capture",
    "orders",
    "wrong_otp",
    "report_counters",
    "require_routing_id",
    "default_amount",
    "return_url",
    "response_key",
    "webhook_credentials",
    "webhook_url",
    "webhook_retries",
];

/// Whether a request is for the control API.
pub(crate) fn is_control(req: &HttpRequest) -> bool {
    let path = req.path();
    path.starts_with(CONTROL_PREFIX) || path == CONTROL_PREFIX.trim_end_matches('/')
}

/// A refusal in the control API's one error form.
pub(crate) fn problem(status: u16, code: &'static str, message: &str) -> HttpResponse {
    Problem::new(status, code, message).into_response()
}

type Answer = Result<Value, Problem>;

impl Sandbox {
    /// Forgets every order, transaction, queued webhook, fault and logged request, and
    /// starts again from the settings in force (the base URL, card flows and keys set
    /// since included): the same ids and OTPs as a new sandbox.
    pub fn reset(&mut self) {
        *self = Sandbox::new(self.config.clone());
    }

    /// Answers a control request (the routes are listed in `docs/sandbox.md`). Without
    /// the API key (HTTP Basic, as for the simulated API): 401 `access_denied`.
    pub(crate) fn control(&mut self, req: &HttpRequest) -> HttpResponse {
        let authorized = req
            .header("authorization")
            .and_then(auth::basic_user)
            .is_some_and(|user| !user.is_empty() && user == self.config.api_key());
        if !authorized {
            return problem(
                401,
                "access_denied",
                "the sandbox's API key is needed (HTTP Basic, key as user name)",
            );
        }
        match self.route_control(req) {
            Ok(body) => HttpResponse::json(200, &body),
            Err(problem) => problem.into_response(),
        }
    }

    fn route_control(&mut self, req: &HttpRequest) -> Answer {
        let path = req.path().strip_prefix(CONTROL_PREFIX).unwrap_or("");
        let mut segments = Vec::new();
        for raw in path.split('/') {
            let segment = path_segment(raw).ok_or_else(|| {
                Problem::new(
                    400,
                    "invalid_path",
                    "a path segment is not percent-encoded UTF-8",
                )
            })?;
            segments.push(segment);
        }
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = req.method.as_str();
        let body = req.body.as_slice();
        let id = |s: &str| Some(s).filter(|s| !s.is_empty()).map(str::to_owned);
        match segments.as_slice() {
            [""] => only(method, "GET").map(|()| json!({ "routes": ROUTES })),
            ["settings"] => match method {
                "GET" => Ok(self.settings_view()),
                "PATCH" => self.patch_settings(&Input::parse(body, SETTINGS)?),
                _ => Err(not_allowed("GET, PATCH")),
            },
            ["cards"] => only(method, "GET").map(|()| {
                let cards: Vec<Value> = self
                    .config
                    .cards()
                    .map(|(_, flow)| json!(flow.name()))
                    .collect();
                json!({ "cards": cards.len(), "flows": cards })
            }),
            ["cards", card] => {
                only(method, "PUT")?;
                let card = id(card).ok_or_else(|| Problem::missing("card"))?;
                let flow = Input::parse(body, &["flow"])?.flow()?;
                if self.config.cards().count() >= MAX_QUEUED {
                    return Err(Problem::new(409, "too_many", "too many card flows; reset"));
                }
                let config = self.config.clone().with_card(&card, flow);
                self.set_config(config);
                Ok(json!({ "flow": flow.name() }))
            }
            ["bins", prefix] => {
                only(method, "PUT")?;
                let input = Input::parse(body, &["eligible"])?;
                let eligible = input
                    .flag("eligible")?
                    .ok_or_else(|| Problem::missing("eligible"))?;
                let digits = !prefix.is_empty()
                    && prefix.len() <= 9
                    && prefix.bytes().all(|b| b.is_ascii_digit());
                if !digits {
                    return Err(Problem::invalid("prefix", "1 to 9 digits"));
                }
                if self.settle.bins.len() >= MAX_QUEUED {
                    return Err(Problem::new(
                        409,
                        "too_many",
                        "too many BIN prefixes; reset",
                    ));
                }
                self.set_bin_eligibility(prefix, eligible);
                Ok(json!({ "prefix": prefix, "eligible": eligible }))
            }
            ["faults"] => match method {
                "GET" => {
                    let faults: Vec<Value> = self
                        .faults
                        .iter()
                        .map(|s| {
                            let mut shown = describe_fault(s.fault);
                            shown["endpoint"] = json!(s.endpoint.map(Endpoint::name));
                            shown["order_id"] = json!(s.order_id);
                            shown
                        })
                        .collect();
                    Ok(json!({ "faults": faults }))
                }
                "POST" => self.post_fault(body),
                "DELETE" => Ok(json!({ "cleared": self.clear_faults() })),
                _ => Err(not_allowed("GET, POST, DELETE")),
            },
            ["webhook-faults"] => {
                only(method, "POST")?;
                let input = Input::parse(body, &["fault", "delay_ms", "times"])?;
                let (fault, times) = (input.webhook_fault()?, input.times()?);
                if self.settle.faults.len() + times as usize > MAX_QUEUED {
                    return Err(Problem::new(
                        409,
                        "too_many",
                        "too many faults queued; reset",
                    ));
                }
                for _ in 0..times {
                    self.inject_webhook(fault);
                }
                Ok(json!({ "queued": times, "pending": self.settle.faults.len() }))
            }
            ["orders"] => {
                only(method, "POST")?;
                let input = Input::parse(body, &["order_id", "amount"])?;
                let order = input.required_text("order_id")?.to_owned();
                let amount = input
                    .amount("amount")?
                    .unwrap_or(self.config.default_amount);
                self.add_order(&order, amount);
                self.order_view(&order)
            }
            ["orders", order] => {
                only(method, "GET")?;
                self.order_view(order)
            }
            ["orders", order, "otp"] => {
                only(method, "GET")?;
                let txn = self.latest_transaction(order);
                match (self.current_otp_for_order(order), txn) {
                    (Some(otp), Some(t)) => Ok(json!({
                        "order_id": order,
                        "otp": otp,
                        "transaction": { "id": t.id, "txn_id": t.txn_id },
                    })),
                    _ => Err(Problem::new(
                        404,
                        "no_otp",
                        "no OTP can be submitted for this order",
                    )),
                }
            }
            ["orders", order, "return-url"] => {
                only(method, "GET")?;
                let query = self.return_query(order).ok_or_else(unknown_order)?;
                Ok(json!({
                    "order_id": order,
                    "query": query,
                    "return_url": self.return_url(order),
                }))
            }
            ["orders", order, "bank-page"] => {
                only(method, "POST")?;
                let input = Input::parse(body, &["result"])?;
                let result = match input.text("result")? {
                    None | Some("success") => BankPageResult::Success,
                    Some("failure") => BankPageResult::Failure,
                    Some(_) => return Err(Problem::invalid("result", "success or failure")),
                };
                let txn = self.latest_transaction(order).ok_or_else(unknown_order)?;
                match self.complete_bank_page(&txn.id, result) {
                    Ok(status) => Ok(json!({
                        "order_id": order,
                        "status": status.as_str(),
                        "return_url": self.return_url(order),
                    })),
                    Err(SandboxError::NotAwaitingAuthentication(status)) => Err(Problem::new(
                        409,
                        "not_awaiting_authentication",
                        format!("the transaction is {status}, not awaiting authentication"),
                    )),
                    Err(e) => Err(Problem::new(404, "not_found", e.to_string())),
                }
            }
            ["orders", order, "webhooks", "take"] => {
                only(method, "POST")?;
                if self.order_status(order).is_none() {
                    return Err(unknown_order());
                }
                let webhooks: Vec<Value> = self
                    .take_webhooks(order)
                    .into_iter()
                    .map(|w| {
                        let headers: serde_json::Map<String, Value> = w
                            .headers
                            .iter()
                            .map(|(n, v)| (n.clone(), json!(v)))
                            .collect();
                        json!({
                            "method": w.method,
                            "path": w.target,
                            "headers": headers,
                            "body": String::from_utf8_lossy(&w.body),
                        })
                    })
                    .collect();
                Ok(json!({ "order_id": order, "webhooks": webhooks }))
            }
            ["counters"] => only(method, "GET").map(|()| self.counters()),
            ["log"] => only(method, "GET").map(|()| {
                let log: Vec<Value> = self
                    .log()
                    .iter()
                    .map(|e| {
                        json!({
                            "number": e.number,
                            "endpoint": e.endpoint.map(Endpoint::name),
                            "fault": e.fault.map(describe_fault),
                            "http_status": e.http_status,
                            "delivery": delivery_name(e.delivery),
                        })
                    })
                    .collect();
                json!({ "log": log })
            }),
            ["reset"] => {
                only(method, "POST")?;
                self.reset();
                Ok(json!({ "reset": true }))
            }
            _ => Err(Problem::new(
                404,
                "not_found",
                "no such control route; GET /_sandbox/ lists them",
            )),
        }
    }

    fn post_fault(&mut self, body: &[u8]) -> Answer {
        let input = Input::parse(
            body,
            &[
                "fault", "endpoint", "order_id", "times", "delay_ms", "bytes", "status",
            ],
        )?;
        let fault = input.fault()?;
        let endpoint = input.endpoint()?;
        let order_id = input.text("order_id")?;
        let times = input.times()?;
        if self.faults.len() + times as usize > MAX_QUEUED {
            return Err(Problem::new(
                409,
                "too_many",
                "too many faults queued; reset",
            ));
        }
        for _ in 0..times {
            self.inject_matching(endpoint, order_id, fault);
        }
        Ok(json!({ "queued": times, "pending": self.pending_faults() }))
    }

    fn patch_settings(&mut self, input: &Input) -> Answer {
        let mut config: SandboxConfig = self.config.clone();
        if let Some(m) = input.text("merchant_id")? {
            config.merchant_id = m.to_owned();
        }
        if let Some(n) = input.number("max_sends", 1000)? {
            config.max_sends = n as u32;
        }
        if let Some(n) = input.number("max_attempts", 1000)? {
            config.max_attempts = n as u32;
        }
        if let Some(otp) = input.object("otp")? {
            otp.only("otp", &["fixed", "seeded"])?;
            config.otp = match (otp.text("fixed")?, otp.number("seeded", u64::MAX)?) {
                (Some(fixed), None) => {
                    let digits =
                        (4..=8).contains(&fixed.len()) && fixed.bytes().all(|b| b.is_ascii_digit());
                    if !digits {
                        return Err(Problem::invalid("otp.fixed", "4 to 8 digits"));
                    }
                    OtpSource::Fixed(fixed.to_owned())
                }
                (None, Some(seed)) => OtpSource::Seeded(seed),
                _ => {
                    return Err(Problem::invalid(
                        "otp",
                        "either {\"fixed\"} or {\"seeded\"}",
                    ))
                }
            };
        }
        if let Some(b) = input.flag("auto_capture")? {
            config.auto_capture = b;
        }
        if let Some(orders) = input.text("orders")? {
            config.orders = match orders {
                "create_on_first_use" => Orders::CreateOnFirstUse,
                "known_only" => Orders::KnownOnly,
                _ => {
                    return Err(Problem::invalid(
                        "orders",
                        "create_on_first_use or known_only",
                    ))
                }
            };
        }
        if let Some(wrong) = input.text("wrong_otp")? {
            config.wrong_otp = match wrong {
                "pending_vbv" => WrongOtp::PendingVbv,
                "http_400" => WrongOtp::Http400,
                _ => return Err(Problem::invalid("wrong_otp", "pending_vbv or http_400")),
            };
        }
        if let Some(b) = input.flag("report_counters")? {
            config.report_counters = b;
        }
        if let Some(b) = input.flag("require_routing_id")? {
            config.require_routing_id = b;
        }
        if let Some(a) = input.amount("default_amount")? {
            config.default_amount = a;
        }
        if let Some(url) = input.nullable_text("return_url")? {
            let readable = url.is_none_or(|u| {
                (u.starts_with("http://") || u.starts_with("https://"))
                    && crate::ReturnParams::from_url(u).is_ok()
            });
            if !readable {
                return Err(Problem::invalid(
                    "return_url",
                    "an http:// or https:// URL with a readable query",
                ));
            }
            config.return_url = url.map(str::to_owned);
        }
        if let Some(key) = input.text("response_key")? {
            crate::ResponseKey::new(key).map_err(|e| Problem::invalid("response_key", e))?;
            config = config.with_response_key(key);
        }
        if let Some(creds) = input.object("webhook_credentials")? {
            creds.only("webhook_credentials", &["username", "password"])?;
            let user = creds.required_text("username")?;
            if user.contains(':') {
                return Err(Problem::invalid(
                    "webhook_credentials.username",
                    "no ':' in it",
                ));
            }
            config = config.with_webhook_credentials(user, creds.required_text("password")?);
        }
        if let Some(url) = input.nullable_text("webhook_url")? {
            config = match url {
                Some(url) => config
                    .with_webhook_url(url)
                    .map_err(|e| Problem::new(400, "invalid_webhook_url", e.to_string()))?,
                None => config.without_webhook_url(),
            };
        }
        if let Some(n) = input.number("webhook_retries", 100)? {
            config.webhook_retries = n as u32;
        }
        self.set_config(config);
        Ok(self.settings_view())
    }

    /// The settings, without the secrets (API key, response key, webhook credentials, a
    /// fixed OTP) nor the cards (they may be card numbers).
    fn settings_view(&self) -> Value {
        let c = &self.config;
        json!({
            "merchant_id": c.merchant_id,
            "base_url": c.base_url,
            "max_sends": c.max_sends,
            "max_attempts": c.max_attempts,
            "otp": match c.otp { OtpSource::Fixed(_) => "fixed", _ => "seeded" },
            "auto_capture": c.auto_capture,
            "orders": match c.orders { Orders::KnownOnly => "known_only", _ => "create_on_first_use" },
            "wrong_otp": match c.wrong_otp { WrongOtp::Http400 => "http_400", _ => "pending_vbv" },
            "report_counters": c.report_counters,
            "require_routing_id": c.require_routing_id,
            "default_amount": c.default_amount,
            "currency": c.currency,
            "return_url": c.return_url,
            "webhook_url": c.webhook_url(),
            "webhook_retries": c.webhook_retries,
            "webhook_capacity": c.webhook_capacity,
            "order_capacity": c.order_capacity,
            "log_capacity": c.log_capacity,
            "cards": c.cards().count(),
        })
    }

    fn order_view(&self, order: &str) -> Answer {
        let status = self.order_status(order).ok_or_else(unknown_order)?;
        let requests: serde_json::Map<String, Value> = Endpoint::ALL
            .into_iter()
            .map(|e| {
                let n = self.order_requests_to(order, e).unwrap_or(0);
                (e.name().to_owned(), json!(n))
            })
            .collect();
        let transactions: Vec<Value> = self
            .order_transactions(order)
            .iter()
            .map(txn_view)
            .collect();
        Ok(json!({
            "order_id": order,
            "status": status.as_str(),
            "transaction": transactions.last(),
            "transactions": transactions,
            "requests": requests,
            "pending_webhooks": self.pending_webhooks(order),
        }))
    }

    fn counters(&self) -> Value {
        let requests: serde_json::Map<String, Value> = Endpoint::ALL
            .into_iter()
            .map(|e| (e.name().to_owned(), json!(self.requests_to(e))))
            .collect();
        let d = self.webhook_deliveries();
        json!({
            "requests": requests,
            "otps_sent": self.otps_sent(),
            "orders": self.order_count(),
            "transactions": self.transaction_count(),
            "evicted_orders": self.evicted_orders(),
            "pending_faults": self.pending_faults(),
            "pending_webhook_faults": self.settle.faults.len(),
            "queued_webhooks": self.queued_webhooks(),
            "dropped_webhooks": self.dropped_webhooks(),
            "webhook_deliveries": {
                "delivered": d.delivered,
                "attempts": d.attempts,
                "given_up": d.given_up,
            },
        })
    }
}

fn txn_view(t: &TxnView) -> Value {
    json!({
        "id": t.id,
        "challenge_id": t.challenge_id,
        "txn_id": t.txn_id,
        "txn_uuid": t.txn_uuid,
        "status": t.status.as_str(),
        "otp_sends": t.otp_sends,
        "attempts": t.attempts,
        "three_ds": t.three_ds,
    })
}

fn delivery_name(d: Delivery) -> &'static str {
    match d {
        Delivery::Now => "now",
        Delivery::After(_) => "after",
        Delivery::Never => "never",
        Delivery::Reset => "reset",
        Delivery::Truncated => "truncated",
        Delivery::Stalled(_) => "stalled",
    }
}

fn only(method: &str, allowed: &str) -> Result<(), Problem> {
    if method == allowed {
        Ok(())
    } else {
        Err(not_allowed(allowed))
    }
}

fn not_allowed(allowed: &str) -> Problem {
    Problem::new(
        405,
        "method_not_allowed",
        format!("this route takes {allowed}"),
    )
}

fn unknown_order() -> Problem {
    Problem::new(404, "not_found", "no such order")
}

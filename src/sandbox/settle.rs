//! The sandbox's other settlement sources: the signed return URL the bank page sends the
//! browser back to, the card eligibility answer (`GET /cardbins/{bin}`), and a queue of
//! webhook events per order that a test takes and feeds to its handler, with scripted
//! duplicates and reordering.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;

use super::bodies::{self, ErrorKind};
use super::config::SandboxConfig;
use super::model::{brand_of, Sandbox};
use super::state::{Order, Txn};
use super::wire::{Delivery, Form, HttpRequest, HttpResponse};
use crate::request::encode_into;
use crate::{ResponseKey, ReturnParams, Status, SIGNATURE_ALGORITHM};

/// The target of the webhook requests the sandbox queues (as if posted to
/// `https://merchant/webhooks/juspay`).
pub const WEBHOOK_PATH: &str = "/webhooks/juspay";

/// What happens to the next webhook event the sandbox generates, queued with
/// [`Sandbox::inject_webhook`]. Each fault is used once, by the next event of any order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookFault {
    /// The event is queued twice (same `id`, same body): Juspay retried it.
    Duplicate,
    /// The event is held back and queued right after the order's next event: the two
    /// arrive out of order. With no next event, it comes last at the next
    /// [`take_webhooks`](Sandbox::take_webhooks) (a server delivering webhooks sends it
    /// once it has been held for [`HOLD_AT_MOST`]).
    DeliverAfterNext,
    /// A server delivering webhooks (see `SandboxConfig::with_webhook_url`) sends the event
    /// only after this delay, without holding back the events after it: they overtake it.
    /// In process, it is queued as usual ([`take_webhooks`](Sandbox::take_webhooks) has no
    /// clock).
    Delay(Duration),
}

/// How long a server delivering webhooks keeps an event held back by
/// [`WebhookFault::DeliverAfterNext`] waiting for the order's next event.
pub const HOLD_AT_MOST: Duration = Duration::from_secs(1);

/// What a server delivering webhooks did so far (see
/// [`Sandbox::webhook_deliveries`]); all zero for an in-process sandbox, or a server with no
/// webhook URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WebhookDeliveries {
    /// Webhooks answered with a 2xx (a scripted duplicate counts twice).
    pub delivered: u64,
    /// `POST`s made, retries included.
    pub attempts: u64,
    /// Webhooks given up on after [`SandboxConfig::webhook_retries`] retries.
    pub given_up: u64,
}

/// A webhook waiting to be taken, or delivered by the server.
#[derive(Clone)]
#[cfg_attr(not(feature = "sandbox-server"), allow(dead_code))]
pub(crate) struct Queued {
    /// Its place in the order webhooks were queued (not generated: a held-back event is
    /// queued after the next one), over every order.
    pub(crate) seq: u64,
    /// When it was generated.
    pub(crate) at: OffsetDateTime,
    pub(crate) request: HttpRequest,
    /// How long a delivering server waits before sending it ([`WebhookFault::Delay`]).
    pub(crate) delay: Duration,
}

/// The settlement state of a sandbox.
pub(crate) struct Settlement {
    key: Option<ResponseKey>,
    authorization: String,
    /// BIN prefixes and whether they are eligible for Direct OTP; the longest match wins.
    pub(crate) bins: Vec<(String, bool)>,
    queues: BTreeMap<String, VecDeque<Queued>>,
    held: BTreeMap<String, Vec<Queued>>,
    /// Webhooks queued so far (the next [`Queued::seq`]).
    queued: u64,
    /// Webhooks dropped because an order's queue was full.
    dropped: u64,
    /// The most webhooks kept per order.
    capacity: usize,
    /// The latest transaction and status each order's events have told.
    told: BTreeMap<String, (String, Status)>,
    /// Orders whose state may have changed since the last flush.
    dirty: BTreeSet<String>,
    pub(crate) faults: VecDeque<WebhookFault>,
    events: u64,
    /// The time of the request being handled (webhooks' `date_created`).
    pub(crate) now: OffsetDateTime,
    /// What a delivering server did so far.
    pub(crate) deliveries: WebhookDeliveries,
}

impl Settlement {
    pub(crate) fn new(config: &SandboxConfig) -> Settlement {
        let (user, password) = config.webhook_credentials();
        let mut authorization = String::from("Basic ");
        crate::config::base64_into(format!("{user}:{password}").as_bytes(), &mut authorization);
        Settlement {
            key: ResponseKey::new(config.response_key()).ok(),
            authorization,
            bins: Vec::new(),
            queues: BTreeMap::new(),
            held: BTreeMap::new(),
            queued: 0,
            dropped: 0,
            capacity: config.webhook_capacity,
            told: BTreeMap::new(),
            dirty: BTreeSet::new(),
            faults: VecDeque::new(),
            events: 0,
            now: OffsetDateTime::UNIX_EPOCH,
            deliveries: WebhookDeliveries::default(),
        }
    }

    /// Takes the settings that shape what is generated next: the response key, the
    /// webhook credentials, the webhook capacity.
    pub(crate) fn reconfigure(&mut self, config: &SandboxConfig) {
        let fresh = Settlement::new(config);
        self.key = fresh.key;
        self.authorization = fresh.authorization;
        self.capacity = fresh.capacity;
    }

    /// Marks an order whose transactions may have changed.
    pub(crate) fn touch(&mut self, order_id: &str) {
        if !self.dirty.contains(order_id) {
            self.dirty.insert(order_id.to_owned());
        }
    }

    /// Queues the webhook events of every order changed since the last flush: `TXN_CREATED`
    /// for a new transaction, `ORDER_SUCCEEDED`/`ORDER_FAILED` when it becomes final.
    pub(crate) fn flush(
        &mut self,
        config: &SandboxConfig,
        orders: &BTreeMap<String, Order>,
        txns: &BTreeMap<String, Txn>,
    ) {
        for order_id in std::mem::take(&mut self.dirty) {
            let Some(order) = orders.get(&order_id) else {
                continue;
            };
            let Some(txn) = order.txns.last().and_then(|id| txns.get(id)) else {
                continue;
            };
            let state = (txn.id.clone(), txn.status.clone());
            let before = self.told.insert(order_id.clone(), state.clone());
            if before.as_ref().is_none_or(|(id, _)| *id != txn.id) {
                self.event(config, order, txn, "TXN_CREATED");
            }
            if before.as_ref() != Some(&state) && txn.status.is_final() {
                let name = match txn.status {
                    Status::Charged | Status::Authorized => "ORDER_SUCCEEDED",
                    Status::AutoRefunded => "ORDER_REFUNDED",
                    _ => "ORDER_FAILED",
                };
                self.event(config, order, txn, name);
            }
        }
    }

    fn event(&mut self, config: &SandboxConfig, order: &Order, txn: &Txn, name: &str) {
        self.events += 1;
        let body = json!({
            "id": format!("evt_{:012}", self.events),
            "event_name": name,
            "date_created": bodies::rfc3339(self.now),
            "content": { "order": bodies::order(config, order, Some(txn)) },
        });
        let request = HttpRequest::new("POST", WEBHOOK_PATH)
            .with_header("authorization", &self.authorization)
            .with_header("content-type", "application/json")
            .with_body(body.to_string());
        let order_id = order.order_id.as_str();
        let fault = self.faults.pop_front();
        let delay = match fault {
            Some(WebhookFault::Delay(d)) => d,
            _ => Duration::ZERO,
        };
        let queued = Queued {
            seq: 0,
            at: self.now,
            request,
            delay,
        };
        if fault == Some(WebhookFault::DeliverAfterNext) {
            self.held
                .entry(order_id.to_owned())
                .or_default()
                .push(queued);
            return;
        }
        if fault == Some(WebhookFault::Duplicate) {
            self.enqueue(order_id, queued.clone());
        }
        self.enqueue(order_id, queued);
        for held in self.held.remove(order_id).unwrap_or_default() {
            self.enqueue(order_id, held);
        }
    }

    /// Queues a webhook for an order, letting the order's oldest go past the capacity.
    fn enqueue(&mut self, order_id: &str, mut webhook: Queued) {
        self.queued += 1;
        webhook.seq = self.queued;
        let queue = self.queues.entry(order_id.to_owned()).or_default();
        queue.push_back(webhook);
        while queue.len() > self.capacity {
            queue.pop_front();
            self.dropped += 1;
        }
        if queue.is_empty() {
            self.queues.remove(order_id);
        }
    }

    /// Forgets an order let go by the sandbox: its webhooks and what they told.
    pub(crate) fn forget(&mut self, order_id: &str) {
        self.queues.remove(order_id);
        self.held.remove(order_id);
        self.told.remove(order_id);
        self.dirty.remove(order_id);
    }

    /// Takes every queued webhook of every order, in the order they were queued, and the
    /// held-back ones that waited [`HOLD_AT_MOST`] by `now`: what a delivering server sends.
    #[cfg_attr(not(feature = "sandbox-server"), allow(dead_code))]
    pub(crate) fn drain(&mut self, now: OffsetDateTime) -> Vec<Queued> {
        let expired: Vec<String> = self
            .held
            .iter()
            .filter(|(_, held)| held.iter().any(|h| now - h.at >= HOLD_AT_MOST))
            .map(|(order_id, _)| order_id.clone())
            .collect();
        for order_id in expired {
            for held in self.held.remove(&order_id).unwrap_or_default() {
                self.enqueue(&order_id, held);
            }
        }
        let mut all: Vec<Queued> = std::mem::take(&mut self.queues)
            .into_values()
            .flatten()
            .collect();
        all.sort_by_key(|q| q.seq);
        all
    }

    /// The return parameters for an order in `status`, signed together with the merchant's
    /// own parameters (`merchant`, already in its return URL, not repeated here),
    /// form-encoded (the signature, already percent-encoded, is encoded again: `%253D`, as
    /// Juspay documents).
    fn signed_query(
        &self,
        order_id: &str,
        status: &Status,
        merchant: &[(&str, &str)],
    ) -> Option<String> {
        let key = self.key.as_ref()?;
        let status_id = bodies::status_id(status).to_string();
        let signed = [
            ("order_id", order_id),
            ("status", status.as_str()),
            ("status_id", status_id.as_str()),
        ];
        let signature = key.signature(signed.into_iter().chain(merchant.iter().copied()));
        let all = signed.into_iter().chain([
            ("signature", signature.as_str()),
            ("signature_algorithm", SIGNATURE_ALGORITHM),
        ]);
        let mut query = Vec::with_capacity(160 + order_id.len());
        for (name, value) in all {
            if !query.is_empty() {
                query.push(b'&');
            }
            encode_into(name, &mut query);
            query.push(b'=');
            encode_into(value, &mut query);
        }
        String::from_utf8(query).ok()
    }

    fn eligible(&self, bin: &str) -> bool {
        self.bins
            .iter()
            .filter(|(prefix, _)| bin.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .is_none_or(|(_, eligible)| *eligible)
    }
}

impl Sandbox {
    /// The signed return parameters (a query string, without `?`) for the order's current
    /// status: `order_id`, `status`, `status_id`, `signature`, `signature_algorithm`,
    /// signed with the configured response key. `None` for an unknown order or a response
    /// key [`ResponseKey::new`] refuses.
    pub fn return_query(&self, order_id: &str) -> Option<String> {
        let status = self.order_status(order_id)?;
        self.settle.signed_query(order_id, &status, &[])
    }

    /// The whole return URL, where the bank page redirects the browser:
    /// [`SandboxConfig::return_url`] followed by the return parameters. As Juspay does, the
    /// signature also covers the parameters already in the merchant's return URL
    /// (`?cart=7`). `None` without a configured return URL (or with one whose query is not
    /// readable).
    pub fn return_url(&self, order_id: &str) -> Option<String> {
        let base = self.config.return_url.as_deref()?;
        let status = self.order_status(order_id)?;
        let merchant = ReturnParams::from_url(base).ok()?;
        let merchant: Vec<(&str, &str)> = merchant.iter().collect();
        let query = self.settle.signed_query(order_id, &status, &merchant)?;
        let joiner = if base.contains('?') { '&' } else { '?' };
        Some(format!("{base}{joiner}{query}"))
    }

    /// What a server delivering webhooks did so far (see
    /// [`SandboxConfig::with_webhook_url`]).
    pub fn webhook_deliveries(&self) -> WebhookDeliveries {
        self.settle.deliveries
    }

    /// Queues a fault for the next webhook event (see [`WebhookFault`]).
    pub fn inject_webhook(&mut self, fault: WebhookFault) {
        self.settle.faults.push_back(fault);
    }

    /// Takes the webhooks queued for an order, oldest first: `POST` requests to
    /// [`WEBHOOK_PATH`] with the configured Basic credentials and a JSON event body, ready
    /// for the merchant's handler ([`WebhookCredentials::verify`](crate::WebhookCredentials::verify)).
    pub fn take_webhooks(&mut self, order_id: &str) -> Vec<HttpRequest> {
        let queued = self.settle.queues.remove(order_id).unwrap_or_default();
        let held = self.settle.held.remove(order_id).unwrap_or_default();
        queued.into_iter().chain(held).map(|q| q.request).collect()
    }

    /// How many webhooks are waiting, over every order (held ones included).
    pub fn queued_webhooks(&self) -> usize {
        let queued: usize = self.settle.queues.values().map(VecDeque::len).sum();
        queued + self.settle.held.values().map(Vec::len).sum::<usize>()
    }

    /// How many webhooks were dropped so far because an order had
    /// [`SandboxConfig::webhook_capacity`] undrained ones already.
    pub fn dropped_webhooks(&self) -> u64 {
        self.settle.dropped
    }

    /// Takes what a server delivering webhooks sends now (see [`Settlement::drain`]).
    #[cfg_attr(not(feature = "sandbox-server"), allow(dead_code))]
    pub(crate) fn drain_webhooks(&mut self, now: OffsetDateTime) -> Vec<Queued> {
        self.settle.drain(now)
    }

    /// How many webhooks are waiting for an order (held ones included).
    pub fn pending_webhooks(&self, order_id: &str) -> usize {
        self.settle.queues.get(order_id).map_or(0, VecDeque::len)
            + self.settle.held.get(order_id).map_or(0, Vec::len)
    }

    /// Makes every BIN starting with `prefix` eligible for Direct OTP or not in
    /// `GET /cardbins/{bin}` answers (the longest matching prefix wins; BINs matching no
    /// prefix are eligible).
    pub fn set_bin_eligibility(&mut self, prefix: &str, eligible: bool) {
        self.settle.bins.retain(|(p, _)| p != prefix);
        self.settle.bins.push((prefix.to_owned(), eligible));
    }

    /// `GET /cardbins/{bin}?merchant_id=..&options.check_direct_otp_support=true`.
    pub(super) fn card_bin(&mut self, bin: &str, req: &HttpRequest) -> HttpResponse {
        let query = req.target.split_once('?').map_or("", |(_, q)| q);
        let query = Form::parse(query.as_bytes());
        if !(6..=9).contains(&bin.len()) || !bin.bytes().all(|b| b.is_ascii_digit()) {
            return self.error(
                ErrorKind::InvalidInput,
                "card_bin must be 6 to 9 digits",
                &[],
            );
        }
        match query.get("merchant_id") {
            None => {
                return self.error(
                    ErrorKind::Missing,
                    "Missing mandatory parameter: merchant_id",
                    &["merchant_id"],
                )
            }
            Some(m) if m != self.config.merchant_id => {
                return self.error(
                    ErrorKind::InvalidInput,
                    "merchant_id does not match the API key's merchant",
                    &[],
                )
            }
            Some(_) => {}
        }
        let mut body = json!({
            "id": bin,
            "object": "cardbin",
            "brand": brand_of(bin),
            "bank": "Sandbox Bank",
            "type": "CREDIT",
            "country": "INDIA",
        });
        let asked = query
            .get("options.check_direct_otp_support")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if asked {
            body["direct_otp_support"] = json!(self.settle.eligible(bin));
        }
        HttpResponse::json(200, &body)
    }

    /// The bank page's answer once authentication is finished: a redirect to the signed
    /// return URL when one is configured.
    pub(super) fn bank_page_return(&self, order_id: &str) -> Option<HttpResponse> {
        let url = self.return_url(order_id)?;
        Some(HttpResponse {
            status: 302,
            headers: vec![
                ("location".into(), url),
                ("content-type".into(), "text/plain; charset=utf-8".into()),
            ],
            body: b"Returning to the merchant.".to_vec(),
            delivery: Delivery::Now,
        })
    }
}

//! What a [`Sandbox`](super::Sandbox) is set up with: the key it accepts, its limits, the
//! OTPs its "bank" sends, and how particular cards behave.

use std::fmt;

use super::webhook_url::{WebhookUrl, WebhookUrlError};

/// The response key a sandbox signs return URLs with unless told otherwise.
pub const SANDBOX_RESPONSE_KEY: &str = "sandbox_response_key";
/// The webhook user name a sandbox sends unless told otherwise.
pub const SANDBOX_WEBHOOK_USER: &str = "sandbox_webhooks";
/// The webhook password a sandbox sends unless told otherwise.
pub const SANDBOX_WEBHOOK_PASSWORD: &str = "sandbox_webhook_password";

/// How the simulated bank picks the OTP it "sends by SMS" on each send.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtpSource {
    /// Every send carries this OTP (it should be 4 to 8 digits for the library to accept
    /// it as an [`Otp`](crate::Otp)).
    Fixed(String),
    /// Each send carries the next 6-digit OTP of a deterministic sequence started from this
    /// seed: the same seed gives the same OTPs in the same order.
    Seeded(u64),
}

impl fmt::Debug for OtpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtpSource::Fixed(_) => f.write_str("Fixed([redacted])"),
            OtpSource::Seeded(seed) => write!(f, "Seeded({seed})"),
        }
    }
}

/// How the sandbox treats a card at `POST /txns`, keyed by its `card_token` or
/// `card_number` (see [`SandboxConfig::with_card`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CardFlow {
    /// Direct OTP; the right OTP gives `CHARGED` (or `AUTHORIZED` without auto-capture).
    /// The default for every card not listed.
    DirectOtp,
    /// 3DS failover: `POST /txns` answers with a `GET` authentication `url` and no OTP
    /// params; the payment finishes on that page (see
    /// [`Sandbox::complete_bank_page`](super::Sandbox::complete_bank_page)).
    ThreeDsFailover,
    /// Direct OTP, but the bank declines after the right OTP: `AUTHORIZATION_FAILED`.
    DeclineAfterOtp,
    /// Direct OTP, but the right OTP answers `AUTHORIZING` (not final); the next
    /// `GET /orders/{id}` finds the payment `CHARGED` (or `AUTHORIZED`).
    SlowAuthorization,
    /// Direct OTP, but the SMS never arrives: every send is counted, no OTP can be read
    /// ([`Sandbox::current_otp`](super::Sandbox::current_otp) is `None`) and every submit is
    /// wrong. The payment can only finish on the bank page (`fallback_url`).
    NoSms,
}

impl CardFlow {
    /// Every flow.
    pub const ALL: [CardFlow; 5] = [
        CardFlow::DirectOtp,
        CardFlow::ThreeDsFailover,
        CardFlow::DeclineAfterOtp,
        CardFlow::SlowAuthorization,
        CardFlow::NoSms,
    ];

    /// Its name in the control API: `direct_otp`, `three_ds_failover`,
    /// `decline_after_otp`, `slow_authorization`, `no_sms`.
    pub fn name(self) -> &'static str {
        match self {
            CardFlow::DirectOtp => "direct_otp",
            CardFlow::ThreeDsFailover => "three_ds_failover",
            CardFlow::DeclineAfterOtp => "decline_after_otp",
            CardFlow::SlowAuthorization => "slow_authorization",
            CardFlow::NoSms => "no_sms",
        }
    }

    /// The flow with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<CardFlow> {
        CardFlow::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Whether orders must be registered before `POST /txns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Orders {
    /// `POST /txns` for an unknown `order_id` creates the order (with
    /// [`SandboxConfig::default_amount`]). The default.
    CreateOnFirstUse,
    /// Only orders added with [`Sandbox::add_order`](super::Sandbox::add_order) exist;
    /// `POST /txns` for any other answers 400 `RESOURCE_NOT_FOUND`.
    KnownOnly,
}

/// How a wrong OTP is answered (the API does not document it; both forms are seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WrongOtp {
    /// HTTP 200, `status: PENDING_VBV`, with the counters and flags refreshed
    /// (`current_attempt`, `max_attempts`, `submit_otp_allowed: false` once no tries are
    /// left). The default.
    PendingVbv,
    /// HTTP 400 `{"error_code": "LP_INCORRECT_OTP", ...}` (the form a wallet flow uses).
    Http400,
}

/// The sandbox's settings. Start from [`SandboxConfig::new`] and change what a test needs.
///
/// ```
/// use direct_otp::sandbox::{CardFlow, OtpSource, SandboxConfig};
///
/// let mut config = SandboxConfig::new("sk_test_key")
///     .with_otp(OtpSource::Fixed("123456".into()))
///     .with_card("tok_3ds", CardFlow::ThreeDsFailover);
/// config.max_sends = 3;
/// config.auto_capture = false;
/// assert_eq!(config.max_attempts, 4);
/// assert!(!format!("{config:?}").contains("sk_test_key"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct SandboxConfig {
    api_key: String,
    /// The only `merchant_id` `POST /txns` accepts. Default `"acme"`.
    pub merchant_id: String,
    /// The base of the URLs put in bodies (`authentication.url`, `fallback_url`). The
    /// sandbox also serves below this URL's path, if it has one. Default
    /// `"http://sandbox.invalid"`; `SandboxServer` (feature `sandbox-server`) sets its own.
    pub base_url: String,
    /// OTP sends allowed per transaction, the first one at start included. Default 4.
    pub max_sends: u32,
    /// OTP submissions allowed per transaction. Default 4.
    pub max_attempts: u32,
    /// The OTPs the bank sends. Default `Seeded(7)`.
    pub otp: OtpSource,
    /// Whether a payment is captured when the submit carries no `auto_capture`: `true`
    /// gives `CHARGED`, `false` gives `AUTHORIZED`. Default `true`.
    pub auto_capture: bool,
    /// Whether orders exist before use. Default [`Orders::CreateOnFirstUse`].
    pub orders: Orders,
    /// How a wrong OTP is answered. Default [`WrongOtp::PendingVbv`].
    pub wrong_otp: WrongOtp,
    /// Whether resend and submit answers carry the counters `times_otp_sent`,
    /// `max_otp_send_limit`, `current_attempt`, `max_attempts` (the seed sample of the
    /// resend page has none). Default `true`.
    pub report_counters: bool,
    /// Whether calls without an `x-routing-id` header are refused with 400
    /// `MISSING_MANDATORY_PARAMETER`. Default `true`.
    pub require_routing_id: bool,
    /// The amount of an order created on first use. Default `1499.0`.
    pub default_amount: f64,
    /// The currency of every order. Default `"INR"`.
    pub currency: String,
    /// Seeds the generator of transaction, challenge and request ids. Default 1.
    pub id_seed: u64,
    /// How many of the most recent requests [`Sandbox::log`](super::Sandbox::log) keeps;
    /// older ones are let go, so a long-running server's memory stays bounded. `0` keeps
    /// none. [`Sandbox::requests_to`](super::Sandbox::requests_to) counts every request
    /// whatever this is. Default [`SandboxConfig::DEFAULT_LOG_CAPACITY`] (1,024).
    pub log_capacity: usize,
    /// How many orders the sandbox keeps (with their transactions and undrained webhooks).
    /// Past it, creating an order lets the oldest settled one go (its latest transaction
    /// final), or, when none is settled, the oldest one (abandoned mid-payment), so a
    /// long-running server's memory stays bounded; an order let go answers
    /// `RESOURCE_NOT_FOUND` afterwards. At least 1. Default
    /// [`SandboxConfig::DEFAULT_ORDER_CAPACITY`] (1,024).
    pub order_capacity: usize,
    /// How many undrained webhooks the sandbox keeps per order (see
    /// [`Sandbox::take_webhooks`](super::Sandbox::take_webhooks)); past it the oldest is
    /// dropped and counted in [`Sandbox::dropped_webhooks`](super::Sandbox::dropped_webhooks).
    /// Default [`SandboxConfig::DEFAULT_WEBHOOK_CAPACITY`] (16).
    pub webhook_capacity: usize,
    /// The merchant's return URL. When set, finishing the bank page (`POST`) answers
    /// `302` to it with signed return parameters (see `docs/settlement.md`); when `None`
    /// (the default) the bank page answers a small HTML page.
    pub return_url: Option<String>,
    /// Whether the control API is served under `/_sandbox/` (OTPs, orders, faults, card
    /// flows, settings, webhooks, counters, a reset; see [`CONTROL_PREFIX`](super::CONTROL_PREFIX) and `docs/sandbox.md`), with the
    /// same API key. Default `false`: `/_sandbox/...` is then an unknown route (404) like any
    /// other. The standalone `direct-otp-sandbox` binary turns it on.
    pub control_api: bool,
    /// How many times a [`SandboxServer`](super::SandboxServer) delivering webhooks (see
    /// [`with_webhook_url`](Self::with_webhook_url)) tries a webhook again after a non-2xx
    /// answer or a failed connection, waiting 50 ms, then twice as long each time (at most
    /// 1 s), before it gives up on it. Default 3.
    pub webhook_retries: u32,
    webhook_url: Option<WebhookUrl>,
    cards: Vec<(String, CardFlow)>,
    response_key: String,
    webhook_credentials: (String, String),
}

impl SandboxConfig {
    /// The default [`log_capacity`](Self::log_capacity): the 1,024 most recent requests.
    pub const DEFAULT_LOG_CAPACITY: usize = 1024;
    /// The default [`order_capacity`](Self::order_capacity): 1,024 orders.
    pub const DEFAULT_ORDER_CAPACITY: usize = 1024;
    /// The default [`webhook_capacity`](Self::webhook_capacity): 16 webhooks per order.
    pub const DEFAULT_WEBHOOK_CAPACITY: usize = 16;

    /// The defaults, accepting `api_key` (as HTTP Basic user name, empty password).
    pub fn new(api_key: &str) -> Self {
        SandboxConfig {
            api_key: api_key.to_owned(),
            merchant_id: "acme".to_owned(),
            base_url: "http://sandbox.invalid".to_owned(),
            max_sends: 4,
            max_attempts: 4,
            otp: OtpSource::Seeded(7),
            auto_capture: true,
            orders: Orders::CreateOnFirstUse,
            wrong_otp: WrongOtp::PendingVbv,
            report_counters: true,
            require_routing_id: true,
            default_amount: 1499.0,
            currency: "INR".to_owned(),
            id_seed: 1,
            log_capacity: Self::DEFAULT_LOG_CAPACITY,
            order_capacity: Self::DEFAULT_ORDER_CAPACITY,
            webhook_capacity: Self::DEFAULT_WEBHOOK_CAPACITY,
            return_url: None,
            control_api: false,
            webhook_retries: 3,
            webhook_url: None,
            cards: Vec::new(),
            response_key: SANDBOX_RESPONSE_KEY.to_owned(),
            webhook_credentials: (
                SANDBOX_WEBHOOK_USER.to_owned(),
                SANDBOX_WEBHOOK_PASSWORD.to_owned(),
            ),
        }
    }

    /// Sets the response key return URLs are signed with (default
    /// [`SANDBOX_RESPONSE_KEY`]); give the same to [`ResponseKey::new`](crate::ResponseKey::new).
    pub fn with_response_key(mut self, key: &str) -> Self {
        self.response_key = key.to_owned();
        self
    }

    /// Sets the HTTP Basic credentials webhooks carry (default [`SANDBOX_WEBHOOK_USER`],
    /// [`SANDBOX_WEBHOOK_PASSWORD`]).
    pub fn with_webhook_credentials(mut self, username: &str, password: &str) -> Self {
        self.webhook_credentials = (username.to_owned(), password.to_owned());
        self
    }

    /// Makes a [`SandboxServer`](super::SandboxServer) (feature `sandbox-server`) deliver
    /// every webhook it queues to `url`, from a background task: a `POST` with the JSON
    /// event body and the webhook credentials as HTTP Basic, with the scripted duplicates,
    /// reordering and delays of [`WebhookFault`](super::WebhookFault), each tried again
    /// [`webhook_retries`](Self::webhook_retries) times on a non-2xx answer. Delivered
    /// webhooks are no longer queued for [`take_webhooks`](super::Sandbox::take_webhooks).
    /// The in-process [`Sandbox`](super::Sandbox) has no IO and ignores it.
    ///
    /// Only `http://` URLs on loopback (`127.0.0.1`, `[::1]`, `localhost`) are accepted:
    /// the sandbox sends nothing anywhere else.
    ///
    /// ```
    /// use direct_otp::sandbox::{SandboxConfig, WebhookUrlError};
    ///
    /// let config = SandboxConfig::new("sk_test").with_webhook_url("http://127.0.0.1:8080/webhooks")?;
    /// assert_eq!(config.webhook_url(), Some("http://127.0.0.1:8080/webhooks"));
    /// let refused = SandboxConfig::new("sk_test").with_webhook_url("http://example.com/webhooks");
    /// assert_eq!(refused.err(), Some(WebhookUrlError::NotLoopback));
    /// # Ok::<(), WebhookUrlError>(())
    /// ```
    pub fn with_webhook_url(mut self, url: &str) -> Result<Self, WebhookUrlError> {
        self.webhook_url = Some(WebhookUrl::parse(url)?);
        Ok(self)
    }

    /// Delivers no webhooks any more: they stay queued for
    /// [`take_webhooks`](super::Sandbox::take_webhooks).
    pub fn without_webhook_url(mut self) -> Self {
        self.webhook_url = None;
        self
    }

    /// The cards given a flow with [`with_card`](Self::with_card), in the order given.
    pub fn cards(&self) -> impl Iterator<Item = (&str, CardFlow)> {
        self.cards.iter().map(|(c, f)| (c.as_str(), *f))
    }

    /// The URL webhooks are delivered to, if one is set.
    pub fn webhook_url(&self) -> Option<&str> {
        self.webhook_url.as_ref().map(WebhookUrl::as_str)
    }

    #[cfg_attr(not(feature = "sandbox-server"), allow(dead_code))]
    pub(crate) fn webhook_target(&self) -> Option<&WebhookUrl> {
        self.webhook_url.as_ref()
    }

    /// Sets [`return_url`](Self::return_url).
    pub fn with_return_url(mut self, url: &str) -> Self {
        self.return_url = Some(url.to_owned());
        self
    }

    /// The response key return URLs are signed with.
    pub fn response_key(&self) -> &str {
        &self.response_key
    }

    /// The webhook credentials (user name, password).
    pub fn webhook_credentials(&self) -> (&str, &str) {
        (&self.webhook_credentials.0, &self.webhook_credentials.1)
    }

    /// Sets how OTPs are chosen.
    pub fn with_otp(mut self, otp: OtpSource) -> Self {
        self.otp = otp;
        self
    }

    /// Sets the send and attempt limits.
    pub fn with_limits(mut self, max_sends: u32, max_attempts: u32) -> Self {
        self.max_sends = max_sends;
        self.max_attempts = max_attempts;
        self
    }

    /// Makes the card whose `card_token` or `card_number` is `card` behave as `flow`.
    pub fn with_card(mut self, card: &str, flow: CardFlow) -> Self {
        self.cards.retain(|(c, _)| c != card);
        self.cards.push((card.to_owned(), flow));
        self
    }

    /// The API key the sandbox accepts.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The flow of a card (by token or number); [`CardFlow::DirectOtp`] if not listed.
    pub fn card_flow(&self, card: &str) -> CardFlow {
        self.cards
            .iter()
            .find(|(c, _)| c == card)
            .map_or(CardFlow::DirectOtp, |(_, f)| *f)
    }
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("api_key", &"[redacted]")
            .field("merchant_id", &self.merchant_id)
            .field("base_url", &self.base_url)
            .field("max_sends", &self.max_sends)
            .field("max_attempts", &self.max_attempts)
            .field("otp", &self.otp)
            .field("auto_capture", &self.auto_capture)
            .field("orders", &self.orders)
            .field("wrong_otp", &self.wrong_otp)
            .field("report_counters", &self.report_counters)
            .field("require_routing_id", &self.require_routing_id)
            .field("default_amount", &self.default_amount)
            .field("currency", &self.currency)
            .field("id_seed", &self.id_seed)
            .field("log_capacity", &self.log_capacity)
            .field("order_capacity", &self.order_capacity)
            .field("webhook_capacity", &self.webhook_capacity)
            .field("return_url", &self.return_url)
            .field("control_api", &self.control_api)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_retries", &self.webhook_retries)
            .field("cards", &self.cards.len())
            .field("response_key", &"[redacted]")
            .field("webhook_credentials", &"[redacted]")
            .finish()
    }
}

//! A blocking transport over a [`ureq::Agent`] (feature `ureq`).

use std::io;

use ::ureq::{Agent, Error as UreqError, Timeout};
use time::OffsetDateTime;

use super::{Driven, Settings, TransportError, TransportErrorKind, DEFAULT_CONNECT_TIMEOUT};
use crate::{InputError, Outgoing, Request, Requester};

/// Sends the library's requests with a `ureq` 3 [`Agent`] you built (or a default one),
/// blocking the calling thread.
///
/// Every request is sent with per-request settings that override the agent's:
///
/// * `http_status_as_error(false)`: a 4xx or 5xx answer is returned with its body, because
///   the API's error code lives in the body (ureq would otherwise drop it);
/// * `max_redirects(0)`: a redirect is returned as the answer, never followed (this API
///   does not redirect; a 3xx is handed to the challenge, which treats it as an unexpected
///   status);
/// * `timeout_global`: one deadline for the whole exchange, body included
///   ([`Settings::timeout`]: 30 s by default, at most
///   [`MAX_TIMEOUT`](super::MAX_TIMEOUT), 24 h);
/// * the body is read with a size limit ([`Settings::body_limit`], 64 KiB by default).
///
/// Everything else (TLS, proxy, connection pool, user agent) is the agent's. To tell a
/// timeout while connecting (surely not sent) from one after (maybe sent), set a
/// `timeout_connect` on your agent shorter than the timeout here: ureq reports whichever
/// deadline passed first.
///
/// The deadline, body limit and clock are a [`Settings`], shared with `HyperTransport`:
/// [`with_settings`](Self::with_settings).
///
/// ```no_run
/// use direct_otp::transport::UreqTransport;
/// use direct_otp::{Config, Otp, PaymentSource, StartRequest, Started};
///
/// // Build once, share: `UreqTransport::with_default_agent()` (rustls, no proxy, 30 s, 64 KiB).
/// fn pay(transport: &UreqTransport, config: &Config) -> Result<(), Box<dyn std::error::Error>> {
///     let card = PaymentSource::Token { card_token: "tok_1".into(), cvv: None };
///     let start = StartRequest::new("ord_1", "acme", "customer_1", card)?;
///     let (status, body) = transport.send(start.request(config))?;
///     if let Started::Challenge(mut challenge) = start.handle_response(status, &body, transport.now())? {
///         let out = challenge.submit(config, &Otp::new("123456")?, transport.now())?;
///         let outcome = transport.drive(&mut challenge, out)?.outcome; // lost answer: MustReconcile
///         println!("{outcome:?}; next: {:?}", challenge.next_step(transport.now()));
///     }
///     Ok(())
/// }
/// # pay(&UreqTransport::with_default_agent(), &Config::sandbox("my_api_key")?)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct UreqTransport {
    agent: Agent,
    settings: Settings,
}

impl UreqTransport {
    /// Uses `agent` (shared: ureq agents are cheap handles to one connection pool), with the
    /// default timeout and body limit.
    ///
    /// ```
    /// use direct_otp::transport::UreqTransport;
    ///
    /// let agent = ureq::Agent::config_builder()
    ///     .proxy(None) // or a proxy you choose; ureq's default reads the environment
    ///     .timeout_connect(Some(std::time::Duration::from_secs(5)))
    ///     .build()
    ///     .new_agent();
    /// let transport = UreqTransport::new(agent);
    /// # let _ = transport;
    /// ```
    pub fn new(agent: Agent) -> Self {
        UreqTransport {
            agent,
            settings: Settings::new(),
        }
    }

    /// A transport over a new agent: rustls with the webpki roots, no proxy (the environment's
    /// proxy variables are ignored), connect timeout [`DEFAULT_CONNECT_TIMEOUT`]. Build the
    /// agent once and reuse the transport: it holds the connection pool.
    ///
    /// ```
    /// use direct_otp::transport::UreqTransport;
    ///
    /// let transport = UreqTransport::with_default_agent();
    /// assert_eq!(transport.settings().timeout(), direct_otp::transport::DEFAULT_TIMEOUT);
    /// ```
    pub fn with_default_agent() -> Self {
        let agent = Agent::config_builder()
            .proxy(None)
            .timeout_connect(Some(DEFAULT_CONNECT_TIMEOUT))
            .build()
            .new_agent();
        UreqTransport::new(agent)
    }

    /// Uses `settings` (deadline, body limit, clock) instead of the defaults.
    ///
    /// ```
    /// use std::time::Duration;
    /// use direct_otp::transport::{Settings, UreqTransport};
    ///
    /// let transport = UreqTransport::with_default_agent()
    ///     .with_settings(Settings::new().with_timeout(Duration::from_secs(20)));
    /// assert_eq!(transport.settings().timeout(), Duration::from_secs(20));
    /// ```
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The agent.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The time on this transport's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.settings.now()
    }

    /// Sends `request` and reads the answer: its HTTP status (any status, 4xx and 3xx
    /// included) and its body. Use it for the start request, which has no challenge yet; for a
    /// challenge's requests use [`drive`](Self::drive).
    ///
    /// If it fails and [`TransportError::may_have_been_sent`] is true for a `POST /txns`, do
    /// not send it again (that would start a second transaction and send another SMS): send
    /// [`OrderStatusCheck::request`](crate::OrderStatusCheck::request)
    /// instead.
    ///
    /// ```no_run
    /// use direct_otp::transport::UreqTransport;
    /// use direct_otp::{Config, PaymentSource, StartRequest};
    ///
    /// let transport = UreqTransport::with_default_agent();
    /// let config = Config::sandbox("my_api_key")?;
    /// let start = StartRequest::new("ord_1", "acme", "customer_1",
    ///     PaymentSource::Token { card_token: "tok_1".into(), cvv: None })?;
    /// let started = match transport.send(start.request(&config)) {
    ///     Ok((status, body)) => start.handle_response(status, &body, transport.now())?,
    ///     Err(e) if e.may_have_been_sent() => {
    ///         // Unknown: ask for the order status rather than starting again.
    ///         let (status, body) = transport.send(start.order_status_check().request(&config))?;
    ///         println!("order status answer: HTTP {status}, {} bytes", body.len());
    ///         return Ok(());
    ///     }
    ///     Err(e) => return Err(e.into()), // surely not sent: safe to try again later
    /// };
    /// # let _ = started;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, request: Request) -> Result<(u16, Vec<u8>), TransportError> {
        let request = ::http::Request::<Vec<u8>>::try_from(request)?;
        let response = if request.method() == ::http::Method::GET {
            let request = self.configure(request.map(|_| ()));
            self.agent.run(request)
        } else {
            let request = self.configure(request);
            self.agent.run(request)
        }
        .map_err(classify)?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let body = body
            .with_config()
            .limit(u64::try_from(self.settings.body_limit()).unwrap_or(u64::MAX))
            .read_to_vec()
            .map_err(|e| classify(e).after_response())?;
        Ok((status, body))
    }

    /// Sends the request `out` of a record (a [`Payment`](crate::Payment) or a
    /// [`Challenge`](crate::Challenge)) and hands the answer (or the failure) back to it as a
    /// [`Reply`](crate::Reply), at the time on this transport's clock.
    ///
    /// A failure that surely happened before anything was sent gives
    /// [`Outcome::NotDelivered`](crate::Outcome::NotDelivered) and changes nothing: the same
    /// command can be tried again. A submit or resend that may have been sent gives
    /// [`Outcome::CheckStatus`](crate::Outcome::CheckStatus): the record then only allows
    /// `check_status`, never a blind resend. The transport
    /// error, if any, is in [`Driven::transport_error`].
    ///
    /// Fails, without sending anything, if `out` is not the record's request in flight.
    ///
    /// ```no_run
    /// use direct_otp::transport::UreqTransport;
    /// use direct_otp::{Challenge, Config, NextStep, Outcome};
    ///
    /// fn check(transport: &UreqTransport, config: &Config, challenge: &mut Challenge)
    ///     -> Result<(), Box<dyn std::error::Error>>
    /// {
    ///     let out = challenge.check_status(config, transport.now())?;
    ///     let driven = transport.drive(challenge, out)?;
    ///     if let Some(e) = &driven.transport_error {
    ///         eprintln!("transport: {e}");
    ///     }
    ///     if let NextStep::Finished(status) = challenge.next_step(transport.now()) {
    ///         println!("final: {status}");
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn drive<R: Requester + ?Sized>(
        &self,
        record: &mut R,
        out: Outgoing,
    ) -> Result<Driven, InputError> {
        record.check_token(out.token)?;
        let result = self.send(out.request);
        super::feed(record, out.token, result, self.now())
    }

    /// Applies the per-request settings.
    fn configure<B: ::ureq::AsSendBody>(&self, request: ::http::Request<B>) -> ::http::Request<B> {
        self.agent
            .configure_request(request)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(self.settings.timeout()))
            .build()
    }
}

impl Default for UreqTransport {
    /// [`UreqTransport::with_default_agent`].
    fn default() -> Self {
        UreqTransport::with_default_agent()
    }
}

/// Maps a ureq error to our kind. When in doubt, "maybe sent".
fn classify(e: UreqError) -> TransportError {
    use TransportErrorKind as K;
    let kind = match &e {
        // Before any connection: the URL or request was refused.
        UreqError::BadUri(_)
        | UreqError::Http(_)
        | UreqError::RequireHttpsOnly(_)
        | UreqError::InvalidProxyUrl
        | UreqError::TlsRequired => K::InvalidRequest,
        // No connection was made (TLS handshake errors raised while connecting included).
        UreqError::HostNotFound
        | UreqError::ConnectionFailed
        | UreqError::ConnectProxyFailed(_)
        | UreqError::Tls(_)
        | UreqError::Rustls(_)
        | UreqError::Pem(_)
        | UreqError::Timeout(Timeout::Resolve | Timeout::Connect) => K::Connect,
        UreqError::Timeout(_) => K::Timeout,
        UreqError::Io(io) => io_kind(io),
        UreqError::Protocol(_) | UreqError::LargeResponseHeader(..) => K::Protocol,
        UreqError::BodyExceedsLimit(_) => K::BodyTooLarge,
        _ => K::Other,
    };
    TransportError::new(kind, e)
}

/// An I/O error from ureq. ureq does not say at which stage it happened, so only errors that
/// can only come from connecting count as "not sent".
fn io_kind(e: &io::Error) -> TransportErrorKind {
    match e.kind() {
        // A refusal answers a connection attempt; nothing was written.
        io::ErrorKind::ConnectionRefused => TransportErrorKind::Connect,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => TransportErrorKind::Timeout,
        // The standard library's resolver failure (getaddrinfo), which ureq passes on as is.
        _ if e
            .to_string()
            .starts_with("failed to lookup address information") =>
        {
            TransportErrorKind::Connect
        }
        _ => TransportErrorKind::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds() {
        use TransportErrorKind as K;
        let io = |k: io::ErrorKind| UreqError::Io(io::Error::from(k));
        for (e, want) in [
            (UreqError::HostNotFound, K::Connect),
            (UreqError::ConnectionFailed, K::Connect),
            (UreqError::Timeout(Timeout::Connect), K::Connect),
            (UreqError::Timeout(Timeout::Resolve), K::Connect),
            (UreqError::Timeout(Timeout::Global), K::Timeout),
            (UreqError::Timeout(Timeout::RecvResponse), K::Timeout),
            (UreqError::Timeout(Timeout::RecvBody), K::Timeout),
            (io(io::ErrorKind::ConnectionRefused), K::Connect),
            (io(io::ErrorKind::ConnectionReset), K::Io),
            (io(io::ErrorKind::UnexpectedEof), K::Io),
            (io(io::ErrorKind::BrokenPipe), K::Io),
            (io(io::ErrorKind::HostUnreachable), K::Io),
            (
                UreqError::Io(io::Error::other(
                    "failed to lookup address information: Name or service not known",
                )),
                K::Connect,
            ),
            (UreqError::BadUri("x".into()), K::InvalidRequest),
            (UreqError::BodyExceedsLimit(10), K::BodyTooLarge),
            (UreqError::LargeResponseHeader(1, 2), K::Protocol),
            (UreqError::StatusCode(500), K::Other),
            (UreqError::TooManyRedirects, K::Other),
        ] {
            let shown = format!("{e:?}");
            assert_eq!(classify(e).kind(), want, "{shown}");
        }
    }

    #[test]
    fn the_default_agent_ignores_proxy_variables() {
        let t = UreqTransport::with_default_agent();
        assert!(t.agent().config().proxy().is_none());
        assert_eq!(
            t.agent().config().timeouts().connect,
            Some(DEFAULT_CONNECT_TIMEOUT)
        );
        assert_eq!(t.settings().timeout(), super::super::DEFAULT_TIMEOUT);
        assert_eq!(t.settings().body_limit(), super::super::DEFAULT_BODY_LIMIT);
    }
}

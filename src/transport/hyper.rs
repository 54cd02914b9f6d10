//! An async transport over a [`hyper_util` legacy client](hyper_util::client::legacy::Client)
//! (feature `hyper`).

use std::error::Error as StdError;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use ::bytes::Bytes;
use ::http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use ::hyper::body::Body;
use ::hyper_util::client::legacy::connect::{capture_connection, Connect, HttpConnector};
use ::hyper_util::client::legacy::{Client, Error as ClientError};
use ::hyper_util::rt::TokioExecutor;
use time::OffsetDateTime;

use super::deadline::Sleep;
use super::{Driven, Settings, TransportError, TransportErrorKind, DEFAULT_CONNECT_TIMEOUT};
use crate::{InputError, Outgoing, Reply, Request, Requester, SendFailure, Token};

/// Sends the library's requests with a [`hyper_util` legacy `Client`](Client) you built, so
/// you choose the connector, TLS and pool settings. Cheap to clone (the client is a handle
/// to one pool).
///
/// Each exchange (waiting for a connection, sending, reading the answer and its body) runs
/// under one deadline ([`Settings::timeout`]: 30 s by default, at most
/// [`MAX_TIMEOUT`](super::MAX_TIMEOUT), 24 h; hyper has none of its own), and the body is
/// read through [`Limited`] ([`Settings::body_limit`], 64 KiB by default). The deadline,
/// body limit and clock are a [`Settings`], shared with `UreqTransport`:
/// [`with_settings`](Self::with_settings). The legacy client
/// never follows redirects: a 3xx is handed to the challenge as the answer. A 4xx or 5xx is
/// an answer too, read with its body (the API's error code lives there).
///
/// The futures of [`send`](Self::send) and [`drive`](Self::drive) are `Send`, so they run
/// inside `tokio::spawn`, axum handlers and the like. They need a Tokio runtime, for the
/// client's sockets and connection tasks (with its I/O driver: `#[tokio::main]`,
/// `Runtime::new` and a `Builder` with `enable_all` or `enable_io`). Outside any Tokio
/// runtime nothing is sent and the exchange fails with [`TransportErrorKind::Runtime`],
/// which counts as "not sent". The deadline does not use Tokio's timers (they panic on a
/// runtime built without `enable_time`, and Tokio has no call to ask first): a thread of
/// this crate, started on first use, wakes the exchanges whose deadline has passed, so a
/// runtime without timers works too, and nothing on this path panics. (A connector you
/// build may use Tokio's timers itself, as `HttpConnector::set_connect_timeout` does: then
/// give it a runtime with timers.)
///
/// # Bringing your own client, with TLS
///
/// The Juspay hosts are HTTPS. With [`hyper-rustls`](https://docs.rs/hyper-rustls) 0.27
/// (features `http1` and `webpki-roots` or `rustls-native-certs`), build the client once at
/// start-up and share the transport. This is the example checkout's client for a real Juspay
/// host (`juspay_transport` in `examples/checkout/src/shop.rs`, where it is built and tested;
/// this crate itself does not depend on hyper-rustls):
///
/// ```ignore
/// use direct_otp::transport::HyperTransport;
/// use hyper_util::{client::legacy::Client, rt::TokioExecutor};
///
/// let https = hyper_rustls::HttpsConnectorBuilder::new()
///     .with_webpki_roots()          // or .with_native_roots()?
///     .https_only()
///     .enable_http1()
///     .build();
/// let client = Client::builder(TokioExecutor::new()).build(https);
/// let transport: HyperTransport<_> = HyperTransport::new(client); // `<_>`: the default body type
/// ```
///
/// The client's body type may be any `B: From<Vec<u8>>` hyper accepts; the default,
/// `Full<Bytes>`, is what `HyperTransport<_>` picks (the annotation is needed: the
/// compiler does not infer a default type parameter). The legacy client reads no proxy
/// settings from the environment.
///
/// # Example
///
/// ```no_run
/// use direct_otp::transport::HyperTransport;
/// use direct_otp::{Config, Otp, PaymentSource, StartRequest, Started};
/// use hyper_util::client::legacy::connect::Connect;
///
/// // Build once, share: `HyperTransport::new(client)`, the client built with hyper-rustls.
/// async fn pay<C>(transport: &HyperTransport<C>, config: &Config) -> Result<(), Box<dyn std::error::Error>>
/// where C: Connect + Clone + Send + Sync + 'static {
///     let card = PaymentSource::Token { card_token: "tok_1".into(), cvv: None };
///     let start = StartRequest::new("ord_1", "acme", "customer_1", card)?;
///     let (status, body) = transport.send(start.request(config)).await?;
///     if let Started::Challenge(mut challenge) = start.handle_response(status, &body, transport.now())? {
///         let out = challenge.submit(config, &Otp::new("123456")?, transport.now())?;
///         let outcome = transport.drive(&mut challenge, out).await?.outcome; // lost answer: MustReconcile
///         println!("{outcome:?}; next: {:?}", challenge.next_step(transport.now()));
///     }
///     Ok(())
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// #     pay(&HyperTransport::plain_http(), &Config::new("http://127.0.0.1:1", "my_api_key")?).await
/// # }
/// ```
#[derive(Debug)]
pub struct HyperTransport<C, B = Full<Bytes>> {
    client: Client<C, B>,
    settings: Settings,
    /// A shorter deadline for obtaining a connection (the clients this crate builds).
    connect_timeout: Option<Duration>,
}

// Not derived: a derive would also require `B: Clone`.
impl<C: Clone, B> Clone for HyperTransport<C, B> {
    fn clone(&self) -> Self {
        HyperTransport {
            client: self.client.clone(),
            settings: self.settings,
            connect_timeout: self.connect_timeout,
        }
    }
}

impl HyperTransport<HttpConnector, Full<Bytes>> {
    /// A transport over a new plain-HTTP client (no TLS): for a loopback sandbox, a local
    /// test server, or a TLS-terminating proxy you address explicitly. `https://` URLs fail
    /// with [`TransportErrorKind::Connect`]. Connect timeout [`DEFAULT_CONNECT_TIMEOUT`]
    /// (kept by the transport, not by Tokio's timers: see above), `TCP_NODELAY` on, no
    /// proxy. It can be built outside a runtime; its futures run on Tokio.
    ///
    /// ```
    /// use direct_otp::transport::HyperTransport;
    ///
    /// let transport = HyperTransport::plain_http();
    /// assert_eq!(transport.settings().body_limit(), direct_otp::transport::DEFAULT_BODY_LIMIT);
    /// ```
    pub fn plain_http() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // Both would run on Tokio's timers: the transport keeps the connect deadline itself.
        connector.set_connect_timeout(None);
        connector.set_happy_eyeballs_timeout(None);
        let mut transport =
            HyperTransport::new(Client::builder(TokioExecutor::new()).build(connector));
        transport.connect_timeout = Some(DEFAULT_CONNECT_TIMEOUT);
        transport
    }
}

impl<C, B> HyperTransport<C, B>
where
    C: Connect + Clone + Send + Sync + 'static,
    B: Body + From<Vec<u8>> + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    /// Uses `client`, with the default [`Settings`].
    pub fn new(client: Client<C, B>) -> Self {
        HyperTransport {
            client,
            settings: Settings::new(),
            connect_timeout: None,
        }
    }

    /// Uses `settings` (deadline, body limit, clock) instead of the defaults.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The client.
    pub fn client(&self) -> &Client<C, B> {
        &self.client
    }

    /// The time on this transport's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.settings.now()
    }

    /// Sends `request` and reads the answer: its HTTP status (any status, 4xx and 3xx
    /// included) and its body. Use it for the start request, which has no challenge yet; for a
    /// challenge's requests use [`drive`](Self::drive).
    ///
    /// A deadline that passes before a connection was obtained is
    /// [`TransportErrorKind::Connect`] (not sent); after, [`TransportErrorKind::Timeout`]
    /// (maybe sent). If it fails and [`TransportError::may_have_been_sent`] is true for a
    /// `POST /txns`, do not send it again (that would start a second transaction and send
    /// another SMS): send
    /// [`OrderStatusCheck::request`](crate::OrderStatusCheck::request).
    ///
    /// ```no_run
    /// use direct_otp::transport::HyperTransport;
    /// use direct_otp::{Config, PaymentSource, StartRequest};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let transport = HyperTransport::plain_http();
    /// let config = Config::new("http://127.0.0.1:8080", "my_api_key")?;
    /// let start = StartRequest::new("ord_1", "acme", "customer_1",
    ///     PaymentSource::Token { card_token: "tok_1".into(), cvv: None })?;
    /// let started = match transport.send(start.request(&config)).await {
    ///     Ok((status, body)) => start.handle_response(status, &body, transport.now())?,
    ///     Err(e) if e.may_have_been_sent() => {
    ///         // Unknown: ask for the order status rather than starting again.
    ///         let (status, _body) = transport.send(start.order_status_check().request(&config)).await?;
    ///         println!("order status answer: HTTP {status}");
    ///         return Ok(());
    ///     }
    ///     Err(e) => return Err(e.into()), // surely not sent: safe to try again later
    /// };
    /// # let _ = started;
    /// # Ok(())
    /// # }
    /// ```
    // Not an `async fn`: the signature promises `Send`, so a change that breaks it fails here.
    #[allow(clippy::manual_async_fn)]
    pub fn send(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<(u16, Vec<u8>), TransportError>> + Send + '_ {
        async move {
            let request = ::http::Request::<Vec<u8>>::try_from(request)?;
            let mut request = request.map(B::from);
            let connection = capture_connection(&mut request);
            let exchange = async {
                let response = self.client.request(request).await.map_err(classify)?;
                let status = response.status().as_u16();
                let body = Limited::new(response.into_body(), self.settings.body_limit())
                    .collect()
                    .await
                    .map_err(classify_body)?;
                Ok((status, Vec::from(body.to_bytes())))
            };
            // Checked before the exchange is first polled: if the exchange cannot run,
            // nothing has been sent.
            let (mut deadline, mut connect_deadline) = self.deadlines()?;
            let mut exchange = pin!(exchange);
            poll_fn(|cx| {
                if let Poll::Ready(result) = exchange.as_mut().poll(cx) {
                    return Poll::Ready(result);
                }
                let connected = connection.connection_metadata().is_some();
                if connected {
                    connect_deadline = None;
                } else if let Some(sleep) = &mut connect_deadline {
                    if Pin::new(sleep).poll(cx).is_ready() {
                        return Poll::Ready(Err(TransportError::new(
                            TransportErrorKind::Connect,
                            "no connection within the connect timeout",
                        )));
                    }
                }
                if Pin::new(&mut deadline).poll(cx).is_ready() {
                    let (kind, message) = if connected {
                        (
                            TransportErrorKind::Timeout,
                            "no complete answer within the deadline",
                        )
                    } else {
                        (
                            TransportErrorKind::Connect,
                            "no connection within the deadline",
                        )
                    };
                    return Poll::Ready(Err(TransportError::new(kind, message)));
                }
                Poll::Pending
            })
            .await
        }
    }

    /// The exchange's deadline and connect deadline, or [`TransportErrorKind::Runtime`]
    /// when the exchange cannot run: no Tokio runtime (the client spawns its connection
    /// tasks and registers its sockets there), or the deadline thread cannot be started.
    fn deadlines(&self) -> Result<(Sleep, Option<Sleep>), TransportError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TransportError::new(
                TransportErrorKind::Runtime,
                "no Tokio runtime: run the future on one (with enable_all or enable_io)",
            ));
        }
        let runtime = |e| TransportError::new(TransportErrorKind::Runtime, e);
        let timeout = self.settings.timeout();
        let deadline = Sleep::new(timeout).map_err(runtime)?;
        let connect_deadline = match self.connect_timeout {
            Some(connect) if connect < timeout => Some(Sleep::new(connect).map_err(runtime)?),
            _ => None,
        };
        Ok((deadline, connect_deadline))
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
    /// If the future is dropped before it completes (a cancelled task, an outer timeout),
    /// the record is told at once: "not sent" if it was never polled, "maybe sent"
    /// otherwise. It is never left waiting for an answer that cannot come.
    ///
    /// Fails, without sending anything, if `out` is not the record's request in flight.
    ///
    /// ```no_run
    /// use direct_otp::transport::HyperTransport;
    /// use direct_otp::{Challenge, Config, NextStep};
    /// # use hyper_util::client::legacy::connect::HttpConnector;
    ///
    /// async fn check(transport: &HyperTransport<HttpConnector>, config: &Config,
    ///     challenge: &mut Challenge) -> Result<(), Box<dyn std::error::Error>>
    /// {
    ///     let out = challenge.check_status(config, transport.now())?;
    ///     let driven = transport.drive(challenge, out).await?;
    ///     if let Some(e) = &driven.transport_error {
    ///         eprintln!("transport: {e}");
    ///     }
    ///     if let NextStep::Finished(status) = challenge.next_step(transport.now()) {
    ///         println!("final: {status}");
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn drive<'a, R: Requester + Send + ?Sized>(
        &'a self,
        record: &'a mut R,
        out: Outgoing,
    ) -> impl Future<Output = Result<Driven, InputError>> + Send + 'a {
        let checked = record.check_token(out.token);
        let mut guard = Guard {
            state: if checked.is_ok() {
                GuardState::Unpolled
            } else {
                GuardState::Done
            },
            record,
            token: out.token,
            clock: self.settings,
        };
        let request = out.request;
        async move {
            checked?;
            guard.state = GuardState::Sending;
            let result = self.send(request).await;
            guard.state = GuardState::Done;
            super::feed(&mut *guard.record, guard.token, result, self.now())
        }
    }
}

/// Tells the challenge about a `drive` future dropped before it completed.
struct Guard<'a, R: Requester + ?Sized> {
    state: GuardState,
    record: &'a mut R,
    token: Token,
    clock: Settings,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GuardState {
    /// Never polled: nothing was sent.
    Unpolled,
    /// Dropped mid-exchange: the request may have been sent.
    Sending,
    /// Finished (or nothing to report).
    Done,
}

impl<R: Requester + ?Sized> Drop for Guard<'_, R> {
    fn drop(&mut self) {
        let failure = match self.state {
            GuardState::Unpolled => SendFailure::NotSent,
            GuardState::Sending => SendFailure::MaybeSent,
            GuardState::Done => return,
        };
        // A stale token is refused by the record and changes nothing.
        let _ = self
            .record
            .handle(self.token, Reply::Failed(failure), self.clock.now());
    }
}

/// Maps a client error. Only a connect error is surely "not sent".
fn classify(e: ClientError) -> TransportError {
    let kind = if e.is_connect() {
        TransportErrorKind::Connect
    } else {
        match find_hyper_error(&e) {
            Some(h) if h.is_parse() || h.is_parse_status() => TransportErrorKind::Protocol,
            Some(h) if h.is_timeout() => TransportErrorKind::Timeout,
            _ => TransportErrorKind::Io,
        }
    };
    TransportError::new(kind, e)
}

/// Maps an error while reading the body (the request was surely sent).
fn classify_body(e: Box<dyn StdError + Send + Sync>) -> TransportError {
    let kind = if e.is::<LengthLimitError>() {
        TransportErrorKind::BodyTooLarge
    } else {
        match find_hyper_error(&*e) {
            Some(h) if h.is_parse() => TransportErrorKind::Protocol,
            Some(h) if h.is_timeout() => TransportErrorKind::Timeout,
            _ => TransportErrorKind::Io,
        }
    };
    TransportError::new(kind, e)
}

fn find_hyper_error<'e>(e: &'e (dyn StdError + 'static)) -> Option<&'e ::hyper::Error> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(h) = e.downcast_ref::<::hyper::Error>() {
            return Some(h);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Compile-time: the futures are `Send` (the function fails to compile otherwise).
    #[allow(dead_code)]
    fn futures_are_send(
        t: &HyperTransport<HttpConnector>,
        c: &mut crate::Challenge,
        p: &mut crate::Payment,
        out: Outgoing,
    ) {
        let r = out.request.clone();
        assert_send(&t.send(r));
        assert_send(&t.drive(p, out.clone()));
        assert_send(&t.drive(c, out));
    }

    /// `plain_http`'s connect timeout is kept by the transport (its connector has none):
    /// with a connect timeout far shorter than the deadline, a connect that hangs (the
    /// listener's accept queue is full, so the kernel drops the SYN) fails with `Connect`
    /// at the connect timeout, on a runtime without timers.
    #[test]
    fn the_connect_timeout_is_the_transports_own() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        drop(socket);
        let listener = rt.block_on(async {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(addr).unwrap();
            s.listen(0).unwrap()
        });
        let mut fillers = Vec::new();
        for _ in 0..4 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                Ok(s) => fillers.push(s),
                Err(_) => break,
            }
        }
        if fillers.len() == 4 {
            eprintln!("skipped: this system does not drop SYNs on a full accept queue");
            return;
        }
        let mut t = HyperTransport::plain_http()
            .with_settings(Settings::new().with_timeout(Duration::from_secs(30)));
        assert_eq!(t.connect_timeout, Some(DEFAULT_CONNECT_TIMEOUT));
        t.connect_timeout = Some(Duration::from_millis(200));
        let request = crate::Config::new(&format!("http://{addr}"), "k")
            .map(|c| {
                crate::OrderStatusCheck::new("ord_1", "cust_1")
                    .unwrap()
                    .request(&c)
            })
            .unwrap();
        let started = std::time::Instant::now();
        let e = rt.block_on(t.send(request)).unwrap_err();
        assert_eq!(e.kind(), TransportErrorKind::Connect, "{e:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        drop((listener, fillers));
    }

    #[test]
    fn a_length_limit_error_is_body_too_large() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let limited = Limited::new(Full::new(Bytes::from(vec![0u8; 10])), 5);
        let e = rt.block_on(limited.collect()).unwrap_err();
        let e = classify_body(e);
        assert_eq!(e.kind(), TransportErrorKind::BodyTooLarge);
        let e = classify_body(Box::new(std::io::Error::other("reset")));
        assert_eq!(e.kind(), TransportErrorKind::Io);
    }
}

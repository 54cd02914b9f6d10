//! The sandbox over real HTTP/1.1 on loopback: hyper's server on a tokio runtime of its own,
//! in a background thread. The server only moves bytes; every answer comes from the model.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::deliver;
use super::model::Sandbox;
use super::settle::WebhookDeliveries;
use super::wire::{Delivery, HttpRequest};

/// Request bodies above this size are refused with 413.
const MAX_BODY: usize = 64 * 1024;
/// How long a stopping server waits for open connections to finish.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long a truncated answer waits, after its first half, before the connection is
/// closed (so the client reads the head and the half first).
const TRUNCATE_AFTER: Duration = Duration::from_millis(50);

/// A [`Sandbox`] served over HTTP on `127.0.0.1` (an ephemeral port), from a background
/// thread with its own tokio runtime. Dropping it stops the server gracefully (open
/// connections are closed once their request is answered; a delayed answer is cut short)
/// and joins the thread.
///
/// Faults behave as on the wire: [`Fault::Slow`](super::Fault::Slow) delays the response,
/// [`Fault::DropResponse`](super::Fault::DropResponse) and
/// [`Fault::DropRequest`](super::Fault::DropRequest) close the connection without a
/// response, [`Fault::Reset`](super::Fault::Reset) resets it (TCP RST),
/// [`Fault::TruncateBody`](super::Fault::TruncateBody) closes it after half of the body,
/// [`Fault::StallBody`](super::Fault::StallBody) sends the second half late. The clock the
/// model sees is the system clock.
///
/// ```
/// use direct_otp::sandbox::{Sandbox, SandboxConfig, SandboxServer};
///
/// let server = SandboxServer::start(Sandbox::new(SandboxConfig::new("sk_test")))?;
/// assert_eq!(server.sandbox().base_url(), server.base_url());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct SandboxServer {
    addr: SocketAddr,
    base_url: String,
    sandbox: Arc<Mutex<Sandbox>>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl SandboxServer {
    /// The listen backlog asked for: connections the kernel completes and queues before
    /// the server accepts them, so a burst of clients connecting at once waits instead of
    /// being reset (the standard library's listeners ask for 128). Linux caps it at
    /// `net.core.somaxconn` (4096 by default since Linux 5.4).
    pub const BACKLOG: u32 = 4096;

    /// Binds `127.0.0.1:0` with a listen backlog of [`SandboxServer::BACKLOG`], points the
    /// sandbox's URLs at it, and starts serving.
    pub fn start(sandbox: Sandbox) -> std::io::Result<SandboxServer> {
        Self::start_on(sandbox, 0)
    }

    /// [`start`](Self::start) on `127.0.0.1:port` (`0`: any free port). Loopback only:
    /// there is no way to serve the sandbox on another address.
    pub fn start_on(mut sandbox: Sandbox, port: u16) -> std::io::Result<SandboxServer> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)))?;
        // `listen` registers the socket with the runtime that will serve it.
        let listener = {
            let _runtime = runtime.enter();
            socket.listen(Self::BACKLOG)?
        };
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        sandbox.set_base_url(&base_url);
        let sandbox = Arc::new(Mutex::new(sandbox));
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::clone(&sandbox);
        // Always running: the control API can set a webhook URL later.
        let delivery = runtime.spawn(deliver::run(Arc::clone(&sandbox), stopped.clone()));
        let thread = std::thread::Builder::new()
            .name("direct-otp-sandbox".into())
            .spawn(move || {
                runtime.block_on(async move {
                    serve(listener, shared, stopped).await;
                    let _ = delivery.await;
                })
            })?;
        Ok(SandboxServer {
            addr,
            base_url,
            sandbox,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, to give to [`Config::new`](crate::Config::new).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The model, locked: read the SMS, queue faults, inspect the log. Do not hold the guard
    /// while a request to this server is waiting for its answer.
    pub fn sandbox(&self) -> MutexGuard<'_, Sandbox> {
        lock(&self.sandbox)
    }

    /// What the webhook delivery did so far (all zero without a webhook URL, see
    /// [`SandboxConfig::with_webhook_url`](super::SandboxConfig::with_webhook_url));
    /// the same as [`Sandbox::webhook_deliveries`].
    pub fn webhook_deliveries(&self) -> WebhookDeliveries {
        self.sandbox().webhook_deliveries()
    }
}

impl Drop for SandboxServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for SandboxServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxServer")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

pub(super) fn lock(sandbox: &Mutex<Sandbox>) -> MutexGuard<'_, Sandbox> {
    sandbox.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `fut` unless the server stops first (`None` then).
pub(super) async fn unless_stopped<F: Future>(
    fut: F,
    stopped: &mut watch::Receiver<bool>,
) -> Option<F::Output> {
    if *stopped.borrow() {
        return None;
    }
    let mut fut = pin!(fut);
    let mut changed = pin!(stopped.changed());
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        // Any change (only `true` is ever sent) or a dropped sender means stop.
        match changed.as_mut().poll(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

async fn serve(
    listener: TcpListener,
    sandbox: Arc<Mutex<Sandbox>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    while let Some(accepted) = unless_stopped(listener.accept(), &mut stopped).await {
        match accepted {
            Ok((stream, _)) => {
                connections.spawn(connection(stream, Arc::clone(&sandbox), stopped.clone()));
            }
            // Out of file descriptors, say: back off a little instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = tokio::time::timeout(STOP_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

async fn connection(
    stream: TcpStream,
    sandbox: Arc<Mutex<Sandbox>>,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let for_service = stopped.clone();
    let reset = Arc::new(AtomicBool::new(false));
    let stream = ResettableStream {
        stream,
        reset: Arc::clone(&reset),
    };
    let service = service_fn(move |req| {
        answer(
            req,
            Arc::clone(&sandbox),
            for_service.clone(),
            Arc::clone(&reset),
        )
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut conn = pin!(conn);
    if unless_stopped(conn.as_mut(), &mut stopped).await.is_none() {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// The service's error: hyper closes the connection without a response.
#[derive(Debug)]
struct NoAnswer;

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sandbox fault: no answer")
    }
}

impl std::error::Error for NoAnswer {}

async fn answer(
    req: hyper::Request<Incoming>,
    sandbox: Arc<Mutex<Sandbox>>,
    mut stopped: watch::Receiver<bool>,
    reset: Arc<AtomicBool>,
) -> Result<hyper::Response<AnswerBody>, NoAnswer> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) if parts.uri.path().starts_with(super::CONTROL_PREFIX) => {
            return Ok(control_too_large())
        }
        Err(_) => return Ok(plain(413, "request body too large or unreadable")),
    };
    let request = HttpRequest {
        method: parts.method.as_str().to_owned(),
        target: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (n.as_str().to_owned(), v)
            })
            .collect(),
        body: body.to_vec(),
    };
    let reply = lock(&sandbox).handle(&request, OffsetDateTime::now_utc());
    let body = Bytes::from(reply.body);
    let body = match reply.delivery {
        Delivery::Now => AnswerBody::whole(body),
        Delivery::After(delay) => {
            if unless_stopped(tokio::time::sleep(delay), &mut stopped)
                .await
                .is_none()
            {
                return Err(NoAnswer);
            }
            AnswerBody::whole(body)
        }
        Delivery::Stalled(delay) => AnswerBody::split(body, async move {
            unless_stopped(tokio::time::sleep(delay), &mut stopped)
                .await
                .is_some()
        }),
        Delivery::Truncated => AnswerBody::split(body, async {
            tokio::time::sleep(TRUNCATE_AFTER).await;
            false
        }),
        Delivery::Reset => {
            reset.store(true, Ordering::Relaxed);
            return Err(NoAnswer);
        }
        Delivery::Never => return Err(NoAnswer),
    };
    let mut response = hyper::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name.as_str(), value.as_str());
    }
    Ok(response
        .body(body)
        .unwrap_or_else(|_| plain(500, "sandbox produced an invalid response")))
}

fn plain(status: u16, text: &'static str) -> hyper::Response<AnswerBody> {
    let body = AnswerBody::whole(Bytes::from_static(text.as_bytes()));
    let mut response = hyper::Response::new(body);
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

/// A control request's body over the limit: 413 in the control API's error form.
fn control_too_large() -> hyper::Response<AnswerBody> {
    let reply = super::control::problem(
        413,
        "body_too_large",
        "the request body is larger than 64 KiB",
    );
    let mut response = hyper::Response::new(AnswerBody::whole(Bytes::from(reply.body)));
    *response.status_mut() = hyper::StatusCode::PAYLOAD_TOO_LARGE;
    for (name, value) in &reply.headers {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(n, v);
        }
    }
    response
}

/// A response body: whole, or in two halves with a wait between them that may end the
/// answer instead (a truncated or stalled body). Its size is always the whole body's, so
/// the `content-length` announces all of it.
struct AnswerBody {
    first: Option<Bytes>,
    /// Resolves to `true` to send `rest`, `false` to cut the connection.
    wait: Option<Pin<Box<dyn Future<Output = bool> + Send>>>,
    rest: Option<Bytes>,
    len: u64,
}

impl AnswerBody {
    fn whole(body: Bytes) -> AnswerBody {
        let len = body.len() as u64;
        AnswerBody {
            first: Some(body).filter(|b| !b.is_empty()),
            wait: None,
            rest: None,
            len,
        }
    }

    fn split(mut body: Bytes, wait: impl Future<Output = bool> + Send + 'static) -> AnswerBody {
        let len = body.len() as u64;
        let rest = body.split_off(body.len() / 2);
        AnswerBody {
            first: Some(body).filter(|b| !b.is_empty()),
            wait: Some(Box::pin(wait)),
            rest: Some(rest),
            len,
        }
    }
}

impl hyper::body::Body for AnswerBody {
    type Data = Bytes;
    type Error = NoAnswer;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, NoAnswer>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if let Some(wait) = this.wait.as_mut() {
            let go_on = std::task::ready!(wait.as_mut().poll(cx));
            this.wait = None;
            if !go_on {
                this.rest = None;
                return Poll::Ready(Some(Err(NoAnswer)));
            }
        }
        Poll::Ready(
            this.rest
                .take()
                .filter(|b| !b.is_empty())
                .map(|b| Ok(Frame::data(b))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.wait.is_none() && self.rest.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

/// A connection's stream, which resets (TCP RST, `SO_LINGER` 0) instead of closing when a
/// [`Fault::Reset`](super::Fault::Reset) answer asked for it.
struct ResettableStream {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.reset.load(Ordering::Relaxed) {
            // No FIN first: the reset comes when the stream is dropped.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            // `SO_LINGER` 0 does not block: closing sends an RST at once.
            #[allow(deprecated)]
            let _ = self.stream.set_linger(Some(Duration::ZERO));
        }
    }
}

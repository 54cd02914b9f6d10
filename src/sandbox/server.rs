//! The sandbox over real HTTP/1.1 on loopback: hyper's server on a tokio runtime of its own,
//! in a background thread. The server only moves bytes; every answer comes from the model.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::deliver::{self, Counters};
use super::model::Sandbox;
use super::wire::{Delivery, HttpRequest};

/// Request bodies above this size are refused with 413.
const MAX_BODY: usize = 64 * 1024;
/// How long a stopping server waits for open connections to finish.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// A [`Sandbox`] served over HTTP on `127.0.0.1` (an ephemeral port), from a background
/// thread with its own tokio runtime. Dropping it stops the server gracefully (open
/// connections are closed once their request is answered; a delayed answer is cut short)
/// and joins the thread.
///
/// Faults behave as on the wire: [`Fault::Slow`](super::Fault::Slow) delays the response,
/// [`Fault::DropResponse`](super::Fault::DropResponse) and
/// [`Fault::DropRequest`](super::Fault::DropRequest) close the connection without a
/// response. The clock the model sees is the system clock.
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
    webhooks: Arc<Counters>,
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
        let webhooks = Arc::new(Counters::default());
        let (target, retries) = {
            let model = lock(&sandbox);
            let config = model.config();
            (config.webhook_target().cloned(), config.webhook_retries)
        };
        let delivery = target.map(|url| {
            let run = deliver::run(
                Arc::clone(&sandbox),
                url,
                retries,
                Arc::clone(&webhooks),
                stopped.clone(),
            );
            runtime.spawn(run)
        });
        let thread = std::thread::Builder::new()
            .name("direct-otp-sandbox".into())
            .spawn(move || {
                runtime.block_on(async move {
                    serve(listener, shared, stopped).await;
                    if let Some(delivery) = delivery {
                        let _ = delivery.await;
                    }
                })
            })?;
        Ok(SandboxServer {
            addr,
            base_url,
            sandbox,
            webhooks,
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

    /// What the webhook delivery did so far (all zero without
    /// [`SandboxConfig::with_webhook_url`](super::SandboxConfig::with_webhook_url)).
    pub fn webhook_deliveries(&self) -> WebhookDeliveries {
        WebhookDeliveries {
            delivered: self.webhooks.delivered.load(Ordering::Relaxed),
            attempts: self.webhooks.attempts.load(Ordering::Relaxed),
            given_up: self.webhooks.given_up.load(Ordering::Relaxed),
        }
    }
}

/// What a [`SandboxServer`] delivering webhooks did so far (see
/// [`SandboxServer::webhook_deliveries`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WebhookDeliveries {
    /// Webhooks answered with a 2xx (a scripted duplicate counts twice).
    pub delivered: u64,
    /// `POST`s made, retries included.
    pub attempts: u64,
    /// Webhooks given up on after [`SandboxConfig::webhook_retries`](super::SandboxConfig::webhook_retries)
    /// retries.
    pub given_up: u64,
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
    let service = service_fn(move |req| answer(req, Arc::clone(&sandbox), for_service.clone()));
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
) -> Result<hyper::Response<Full<Bytes>>, NoAnswer> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
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
    match reply.delivery {
        Delivery::Now => {}
        Delivery::After(delay) => {
            if unless_stopped(tokio::time::sleep(delay), &mut stopped)
                .await
                .is_none()
            {
                return Err(NoAnswer);
            }
        }
        Delivery::Never => return Err(NoAnswer),
    }
    let mut response = hyper::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name.as_str(), value.as_str());
    }
    Ok(response
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap_or_else(|_| plain(500, "sandbox produced an invalid response")))
}

fn plain(status: u16, text: &'static str) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

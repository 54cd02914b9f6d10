//! The server's webhook delivery: a background task that takes the webhooks the model
//! queued and posts each one to the configured loopback URL, trying again a bounded number
//! of times on a non-2xx answer. Only bytes move here; what is sent, and in which order,
//! is the model's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::model::Sandbox;
use super::server::{lock, unless_stopped};
use super::settle::Queued;
use super::webhook_url::WebhookUrl;

/// How often the task looks for new webhooks.
const TICK: Duration = Duration::from_millis(20);
/// The longest one delivery attempt takes (connect, send, answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The wait before the first retry; it doubles each time, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The most of an answer's body read (and thrown away).
const MAX_ANSWER: usize = 64 * 1024;

/// What the delivery task did so far, shared with the server.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) delivered: AtomicU64,
    pub(crate) attempts: AtomicU64,
    pub(crate) given_up: AtomicU64,
}

/// Delivers until the server stops; webhooks still waiting (delayed, or between retries)
/// are then dropped.
pub(crate) async fn run(
    sandbox: Arc<Mutex<Sandbox>>,
    url: WebhookUrl,
    retries: u32,
    counters: Arc<Counters>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut delayed = JoinSet::new();
    while unless_stopped(tokio::time::sleep(TICK), &mut stopped)
        .await
        .is_some()
    {
        while delayed.try_join_next().is_some() {}
        let batch = lock(&sandbox).drain_webhooks(OffsetDateTime::now_utc());
        for webhook in batch {
            if webhook.delay.is_zero() {
                let send = deliver(&url, retries, &counters, &webhook);
                if unless_stopped(send, &mut stopped).await.is_none() {
                    return;
                }
            } else {
                let (url, counters) = (url.clone(), Arc::clone(&counters));
                let mut stopped = stopped.clone();
                delayed.spawn(async move {
                    let late = async {
                        tokio::time::sleep(webhook.delay).await;
                        deliver(&url, retries, &counters, &webhook).await;
                    };
                    unless_stopped(late, &mut stopped).await;
                });
            }
        }
    }
}

/// One webhook, tried until a 2xx answer or `1 + retries` attempts.
async fn deliver(url: &WebhookUrl, retries: u32, counters: &Counters, webhook: &Queued) {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 0..=retries {
        if attempt > 0 {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        counters.attempts.fetch_add(1, Ordering::Relaxed);
        let answered = tokio::time::timeout(ATTEMPT_TIMEOUT, post(url, webhook)).await;
        if matches!(answered, Ok(Some(status)) if (200..300).contains(&status)) {
            counters.delivered.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    counters.given_up.fetch_add(1, Ordering::Relaxed);
}

/// One `POST` on a connection of its own: the answer's status, `None` if there was none.
async fn post(url: &WebhookUrl, webhook: &Queued) -> Option<u16> {
    let stream = TcpStream::connect(url.addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    let connection = tokio::spawn(connection);
    let mut request = hyper::Request::post(url.target.as_str()).header("host", &url.authority);
    for (name, value) in &webhook.request.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let body = Full::new(Bytes::from(webhook.request.body.clone()));
    let status = match request.body(body) {
        Ok(request) => match sender.send_request(request).await {
            Ok(answer) => {
                let status = answer.status().as_u16();
                let _ = Limited::new(answer.into_body(), MAX_ANSWER).collect().await;
                Some(status)
            }
            Err(_) => None,
        },
        Err(_) => None,
    };
    drop(sender);
    connection.abort();
    status
}

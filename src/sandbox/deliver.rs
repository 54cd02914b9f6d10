//! The server's webhook delivery: a background task that takes the webhooks the model
//! queued and posts each one to the configured loopback URL, trying again a bounded number
//! of times on a non-2xx answer. Only bytes move here; what is sent, and in which order,
//! is the model's. The URL is read from the model at each tick, so setting or clearing it
//! (the control API does) takes effect at once; without one, webhooks stay queued for
//! `take_webhooks`.

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

/// Delivers until the server stops; webhooks still waiting (delayed, or between retries)
/// are then dropped.
pub(crate) async fn run(sandbox: Arc<Mutex<Sandbox>>, mut stopped: watch::Receiver<bool>) {
    let mut delayed = JoinSet::new();
    while unless_stopped(tokio::time::sleep(TICK), &mut stopped)
        .await
        .is_some()
    {
        while delayed.try_join_next().is_some() {}
        let (url, retries, batch) = {
            let mut model = lock(&sandbox);
            let Some(url) = model.config().webhook_target().cloned() else {
                continue;
            };
            let retries = model.config().webhook_retries;
            (
                url,
                retries,
                model.drain_webhooks(OffsetDateTime::now_utc()),
            )
        };
        for webhook in batch {
            if webhook.delay.is_zero() {
                let send = deliver(&sandbox, &url, retries, &webhook);
                if unless_stopped(send, &mut stopped).await.is_none() {
                    return;
                }
            } else {
                let (url, sandbox) = (url.clone(), Arc::clone(&sandbox));
                let mut stopped = stopped.clone();
                delayed.spawn(async move {
                    let late = async {
                        tokio::time::sleep(webhook.delay).await;
                        deliver(&sandbox, &url, retries, &webhook).await;
                    };
                    unless_stopped(late, &mut stopped).await;
                });
            }
        }
    }
}

/// One webhook, tried until a 2xx answer or `1 + retries` attempts.
async fn deliver(sandbox: &Mutex<Sandbox>, url: &WebhookUrl, retries: u32, webhook: &Queued) {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 0..=retries {
        if attempt > 0 {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        count(sandbox, |d| &mut d.attempts);
        let answered = tokio::time::timeout(ATTEMPT_TIMEOUT, post(url, webhook)).await;
        if matches!(answered, Ok(Some(status)) if (200..300).contains(&status)) {
            count(sandbox, |d| &mut d.delivered);
            return;
        }
    }
    count(sandbox, |d| &mut d.given_up);
}

fn count(sandbox: &Mutex<Sandbox>, field: impl FnOnce(&mut super::WebhookDeliveries) -> &mut u64) {
    let mut model = lock(sandbox);
    let n = field(&mut model.settle.deliveries);
    *n = n.saturating_add(1);
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

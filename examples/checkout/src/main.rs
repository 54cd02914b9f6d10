//! A checkout you can click: a small axum service that takes a card payment with an OTP
//! page, built on the `Payment` record, a store and the hyper transport.
//!
//! ```text
//! cargo run -p direct-otp-checkout        # prints the URL to open
//! ```
//!
//! By default the embedded sandbox plays the bank (on loopback: no network, no key), and a
//! side panel plays the cardholder's phone, showing the OTP SMS. Environment:
//!
//! ```text
//! CHECKOUT_PORT=8080        the port on 127.0.0.1 (default: any free port)
//! DATABASE_URL=postgres://  keep payments in PostgreSQL (default: a SQLite file in the temp dir)
//! JUSPAY_API_KEY=...        a real Juspay host instead of the sandbox, with JUSPAY_BASE_URL,
//!                           JUSPAY_MERCHANT_ID, JUSPAY_CARD_TOKEN, JUSPAY_CARD_CVV and
//!                           JUSPAY_CUSTOMER_ID as for the demo (docs/sandbox.md), over HTTPS
//!                           only (hyper over rustls, `shop::juspay_transport`). Type an
//!                           order id created beforehand; set the return URL to <shop>/return.
//! JUSPAY_RESPONSE_KEY=...   verify the return URL's signature (otherwise the return only
//!                           makes the shop check the order status)
//! JUSPAY_WEBHOOK_USER=...   with JUSPAY_WEBHOOK_PASSWORD: take Juspay's webhooks at
//!                           <shop>/webhooks/juspay (otherwise they are refused)
//! ```
//!
//! The service is `src/shop.rs`, the pages `templates/*.html`.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use direct_otp::driver::AsyncDriver;
use direct_otp::store::{PgStore, SqliteStore};
use direct_otp::{Config, PaymentSource, Policy, ResponseKey, WebhookCredentials, SANDBOX_URL};
use direct_otp_checkout::shop::{self, log, Db, Shop};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let port: u16 = var("CHECKOUT_PORT").map_or(Ok(0), |p| p.parse())?;
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    match var("DATABASE_URL") {
        Some(db) => {
            let pg = PgStore::connect(&db).await?;
            pg.migrate().await?;
            serve(listener, pg).await
        }
        None => {
            let file = std::env::temp_dir().join("direct-otp-checkout.sqlite3");
            serve(listener, SqliteStore::open(file)?).await
        }
    }
}

async fn serve<S: Db>(listener: TcpListener, store: S) -> Result<(), Box<dyn Error>> {
    let url = format!("http://{}", listener.local_addr()?);
    let shop = match var("JUSPAY_API_KEY") {
        Some(key) => juspay(&key, store)?,
        None => Shop::with_sandbox(&url, store, Policy::default())?,
    };
    let bank = match &shop.sandbox {
        Some(sandbox) => format!(
            "the embedded sandbox at {} plays the bank",
            sandbox.base_url()
        ),
        None => format!("REAL JUSPAY HOST at {}", shop.driver.config().base_url()),
    };
    // The recovery sweep, every 5 s (the grace is 60 s): what a server that died mid-step
    // left in flight is recovered and its order status checked.
    let driver = Arc::clone(&shop.driver);
    tokio::spawn(async move {
        let report = |swept: Result<Vec<_>, _>| match swept {
            Ok(swept) => swept.iter().for_each(|s| log(format_args!("sweep: {s:?}"))),
            Err(e) => log(format_args!("sweep: {e}")),
        };
        driver
            .sweep_every(Duration::from_secs(5), 100, report)
            .await
    });
    println!("checkout: open {url}/ in a browser ({bank}); Ctrl-C stops it");
    axum::serve(listener, shop::router(Arc::new(shop))).await?;
    Ok(())
}

/// A shop paying through a real Juspay host, set up from the demo's variables.
fn juspay<S: Db>(key: &str, store: S) -> Result<Shop<S>, Box<dyn Error>> {
    let need = |name: &str| var(name).ok_or(format!("{name} must be set with JUSPAY_API_KEY"));
    let merchant_id = need("JUSPAY_MERCHANT_ID")?;
    let base_url = var("JUSPAY_BASE_URL").unwrap_or_else(|| SANDBOX_URL.into());
    if !base_url.starts_with("https://") {
        // The key goes in every request: the client speaks HTTPS only.
        return Err(format!("JUSPAY_BASE_URL must be an https:// URL, not {base_url:?}").into());
    }
    let card = PaymentSource::Token {
        card_token: need("JUSPAY_CARD_TOKEN")?,
        cvv: var("JUSPAY_CARD_CVV"),
    };
    let config = Config::new(&base_url, key)?.with_merchant_id(&merchant_id)?;
    Ok(Shop {
        driver: Arc::new(AsyncDriver::new(store, shop::juspay_transport(), config)),
        merchant_id,
        customer_id: var("JUSPAY_CUSTOMER_ID").unwrap_or_else(|| "demo_customer".into()),
        cards: vec![("Your card (JUSPAY_CARD_TOKEN)".into(), card)],
        sandbox: None,
        policy: Policy::default(),
        response_key: var("JUSPAY_RESPONSE_KEY")
            .map(|k| ResponseKey::new(&k))
            .transpose()?,
        webhook_credentials: match (var("JUSPAY_WEBHOOK_USER"), var("JUSPAY_WEBHOOK_PASSWORD")) {
            (Some(user), Some(password)) => Some(WebhookCredentials::new(&user, &password)?),
            _ => None,
        },
    })
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

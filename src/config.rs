//! Where and as whom to call the API: base URL, API key, merchant headers.
//!
//! A [`Config`] is shared by every challenge of a merchant and passed to each command. It is
//! never part of a challenge's persisted state, so the API key never reaches storage.

use std::fmt;
use std::sync::Arc;

use crate::error::ConfigError;
use crate::id::check_header_value;

/// Juspay's sandbox host.
pub const SANDBOX_URL: &str = "https://sandbox.juspay.in";
/// Juspay's production host.
pub const PRODUCTION_URL: &str = "https://api.juspay.in";

/// Connection settings for the Direct OTP API.
///
/// The API key is kept only as the ready-made `Authorization` header (HTTP Basic, key as
/// user name, empty password) and is redacted in `Debug`.
///
/// ```
/// use direct_otp::Config;
///
/// let config = Config::sandbox("my_api_key")?
///     .with_merchant_id("acme")?
///     .with_version("2024-06-01")?;
/// assert_eq!(config.base_url(), "https://sandbox.juspay.in");
/// assert!(!format!("{config:?}").contains("my_api_key"));
/// # Ok::<(), direct_otp::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Config {
    base_url: String,
    authorization: Arc<str>,
    merchant_id: Option<Arc<str>>,
    version: Option<Arc<str>>,
    auto_capture: Option<bool>,
}

impl Config {
    /// A configuration for any host (white-label bank hosts, other regions, a local sandbox).
    /// `base_url` is `http(s)://host[:port][/prefix]`; a trailing `/` is dropped.
    pub fn new(base_url: &str, api_key: &str) -> Result<Self, ConfigError> {
        Ok(Config {
            base_url: check_base_url(base_url)?,
            authorization: basic_auth(api_key)?.into(),
            merchant_id: None,
            version: None,
            auto_capture: None,
        })
    }

    /// Juspay's sandbox (`https://sandbox.juspay.in`).
    pub fn sandbox(api_key: &str) -> Result<Self, ConfigError> {
        Config::new(SANDBOX_URL, api_key)
    }

    /// Juspay's production host (`https://api.juspay.in`).
    pub fn production(api_key: &str) -> Result<Self, ConfigError> {
        Config::new(PRODUCTION_URL, api_key)
    }

    /// Sends `x-merchantid` on order-status calls.
    pub fn with_merchant_id(mut self, merchant_id: &str) -> Result<Self, ConfigError> {
        check_header_value("x-merchantid", merchant_id)?;
        self.merchant_id = Some(merchant_id.into());
        Ok(self)
    }

    /// Sends the `version: YYYY-MM-DD` header on order-status calls.
    pub fn with_version(mut self, version: &str) -> Result<Self, ConfigError> {
        check_header_value("version", version)?;
        self.version = Some(version.into());
        Ok(self)
    }

    /// Sets `auto_capture` on OTP submission: `Some(false)` authorizes only (a success is
    /// then `AUTHORIZED`), `Some(true)` captures, `None` (default) leaves it to the account
    /// setting.
    pub fn with_auto_capture(mut self, auto_capture: Option<bool>) -> Self {
        self.auto_capture = auto_capture;
        self
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The `auto_capture` setting sent with each OTP.
    pub fn auto_capture(&self) -> Option<bool> {
        self.auto_capture
    }

    pub(crate) fn authorization(&self) -> &Arc<str> {
        &self.authorization
    }

    pub(crate) fn merchant_id(&self) -> Option<&Arc<str>> {
        self.merchant_id.as_ref()
    }

    pub(crate) fn version(&self) -> Option<&Arc<str>> {
        self.version.as_ref()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("base_url", &self.base_url)
            .field("api_key", &"[redacted]")
            .field("merchant_id", &self.merchant_id)
            .field("version", &self.version)
            .field("auto_capture", &self.auto_capture)
            .finish()
    }
}

fn check_base_url(url: &str) -> Result<String, ConfigError> {
    let bad = |reason| Err(ConfigError::BaseUrl { reason });
    let rest = match url.split_once("://") {
        Some(("https", rest)) | Some(("http", rest)) => rest,
        _ => return bad("scheme must be http or https"),
    };
    if rest.is_empty() || rest.starts_with('/') {
        return bad("host is missing");
    }
    if url.contains(['?', '#']) {
        return bad("query or fragment present");
    }
    if url.chars().any(|c| !c.is_ascii_graphic()) {
        return bad("whitespace, control or non-ASCII character");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// `Basic base64("KEY:")`.
fn basic_auth(api_key: &str) -> Result<String, ConfigError> {
    if api_key.is_empty() || !api_key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ConfigError::ApiKey);
    }
    let mut credentials = Vec::with_capacity(api_key.len() + 1);
    credentials.extend_from_slice(api_key.as_bytes());
    credentials.push(b':');
    let mut header = String::with_capacity(6 + credentials.len().div_ceil(3) * 4);
    header.push_str("Basic ");
    base64_into(&credentials, &mut header);
    Ok(header)
}

/// Standard base64 with padding (RFC 4648 §4).
pub(crate) fn base64_into(input: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_matches_the_documented_example() {
        // The API reference's example header for key "1D6AFDC8EA649E9A21C3E5406AC0FB".
        assert_eq!(
            basic_auth("1D6AFDC8EA649E9A21C3E5406AC0FB").unwrap(),
            "Basic MUQ2QUZEQzhFQTY0OUU5QTIxQzNFNTQwNkFDMEZCOg=="
        );
    }

    #[test]
    fn base64_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = String::new();
            base64_into(input.as_bytes(), &mut out);
            assert_eq!(out, want);
        }
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            Config::new("https://sandbox.juspay.in/", "k")
                .unwrap()
                .base_url(),
            "https://sandbox.juspay.in"
        );
        assert_eq!(
            Config::new("http://127.0.0.1:8080/prefix", "k")
                .unwrap()
                .base_url(),
            "http://127.0.0.1:8080/prefix"
        );
        for bad in [
            "sandbox.juspay.in",
            "ftp://x",
            "https://",
            "https:///x",
            "https://x?y",
            "https://x#y",
            "https://x y",
        ] {
            assert!(
                matches!(Config::new(bad, "k"), Err(ConfigError::BaseUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn api_key_is_checked_and_redacted() {
        assert_eq!(Config::sandbox("").unwrap_err(), ConfigError::ApiKey);
        assert_eq!(Config::sandbox("a\nb").unwrap_err(), ConfigError::ApiKey);
        let c = Config::production("sk_live_secret").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("sk_live_secret"), "{shown}");
        assert!(!shown.contains(&*c.authorization), "{shown}");
    }

    #[test]
    fn merchant_headers_are_validated() {
        let c = Config::sandbox("k").unwrap();
        assert!(c.clone().with_merchant_id("m\r\nx: y").is_err());
        assert!(c.with_version("2024-06-01").is_ok());
    }
}

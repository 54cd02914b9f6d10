//! Where and as whom to call the API: base URL, API key, merchant headers.
//!
//! A [`Config`] is shared by every challenge of a merchant and passed to each command. It is
//! never part of a challenge's persisted state, so the API key never reaches storage.

use std::fmt;
use std::sync::Arc;

#[cfg(doc)]
use crate::error::BaseUrlError;
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
    ///
    /// `base_url` is `http(s)://host[:port][/prefix]`: a DNS name, IPv4 address or
    /// bracketed IPv6 address, a port from 1 to 65535, path segments that are neither empty
    /// nor `.`/`..` (`%2e` included). A trailing `/` is dropped and the scheme is written in
    /// lower case. User name or password, a query, a fragment, or characters outside visible
    /// ASCII are refused with [`ConfigError::BaseUrl`], whose [`BaseUrlError`] says why.
    ///
    /// ```
    /// use direct_otp::{BaseUrlError, Config, ConfigError};
    ///
    /// let config = Config::new("http://127.0.0.1:8080/juspay/", "my_api_key")?;
    /// assert_eq!(config.base_url(), "http://127.0.0.1:8080/juspay");
    /// assert_eq!(
    ///     Config::new("https://user:pw@api.juspay.in", "my_api_key").unwrap_err(),
    ///     ConfigError::BaseUrl(BaseUrlError::UserInfo)
    /// );
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn new(base_url: &str, api_key: &str) -> Result<Self, ConfigError> {
        Ok(Config {
            base_url: crate::base_url::check(base_url).map_err(ConfigError::BaseUrl)?,
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
    fn base_urls_are_checked_by_the_base_url_rules() {
        use crate::BaseUrlError as E;
        // The full table is in src/base_url.rs; here, that Config::new applies it.
        for (url, want) in [
            (
                "https://sandbox.juspay.in/",
                Ok("https://sandbox.juspay.in"),
            ),
            ("http://[::1]:8080/prefix", Ok("http://[::1]:8080/prefix")),
            ("https://:443", Err(E::MissingHost)),
            ("https://host:abc", Err(E::Port)),
            ("https://[::1", Err(E::Host)),
            ("https://u:p@a@b", Err(E::UserInfo)),
            ("https://h/../x", Err(E::DotSegment)),
            ("https://h/%2E%2e/x", Err(E::DotSegment)),
            ("https://h:99999", Err(E::Port)),
            ("https://x?y", Err(E::QueryOrFragment)),
            ("ftp://x", Err(E::Scheme)),
        ] {
            let got = Config::new(url, "k").map(|c| c.base_url().to_owned());
            assert_eq!(
                got,
                want.map(str::to_owned).map_err(ConfigError::BaseUrl),
                "{url}"
            );
        }
        let e = Config::new("https://user:hunter2@h", "k")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
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

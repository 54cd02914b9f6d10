//! Error types. None of them ever holds the API key, an OTP, card data or a raw response
//! body; what they hold is safe to log.

use std::fmt;

use crate::token::Token;

/// An id, header value or form value was refused before any request was built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The value is empty.
    #[error("{field} is empty")]
    Empty {
        /// Which id or header.
        field: &'static str,
    },
    /// The value is longer than allowed.
    #[error("{field} is longer than {max} bytes")]
    TooLong {
        /// Which id or header.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// The value holds a character that could change the URL or header it goes into.
    #[error("{field} contains the forbidden character {character}")]
    ForbiddenCharacter {
        /// Which id or header.
        field: &'static str,
        /// The first offending character, escaped.
        character: String,
    },
    /// The value contains `..`, which could walk up the URL path.
    #[error("{field} contains '..'")]
    DotDot {
        /// Which id or header.
        field: &'static str,
    },
    /// The id is `.` or `..`, a dot segment: a server that normalizes paths would drop it
    /// or walk up one level.
    #[error("{field} is a dot segment ('.' or '..')")]
    DotSegment {
        /// Which id.
        field: &'static str,
    },
}

impl IdError {
    /// A stable snake_case code: `id_empty`, `id_too_long`, `id_forbidden_character`,
    /// `id_dot_dot`, `id_dot_segment` (the field is [`field`](Self::field)). Codes never
    /// change meaning; new ones may be added (`docs/codes.md` lists them all).
    pub fn code(&self) -> &'static str {
        match self {
            IdError::Empty { .. } => "id_empty",
            IdError::TooLong { .. } => "id_too_long",
            IdError::ForbiddenCharacter { .. } => "id_forbidden_character",
            IdError::DotDot { .. } => "id_dot_dot",
            IdError::DotSegment { .. } => "id_dot_segment",
        }
    }

    /// Which id, header or form value was refused (`order_id`, `x-routing-id`, ...).
    pub fn field(&self) -> &'static str {
        match self {
            IdError::Empty { field }
            | IdError::TooLong { field, .. }
            | IdError::ForbiddenCharacter { field, .. }
            | IdError::DotDot { field }
            | IdError::DotSegment { field } => field,
        }
    }
}

/// The configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The base URL is not `http(s)://host[:port][/path]`; the [`BaseUrlError`] says what
    /// is wrong with it.
    #[error("invalid base URL: {0}")]
    BaseUrl(BaseUrlError),
    /// The API key is empty or contains characters that can't be sent.
    #[error("API key must be non-empty visible ASCII")]
    ApiKey,
    /// A header value (merchant id, version) was refused.
    #[error(transparent)]
    Header(#[from] IdError),
}

impl ConfigError {
    /// A stable snake_case code: the [`BaseUrlError`]'s or the [`IdError`]'s own code, or
    /// `bad_api_key`. Codes never change meaning; new ones may be added.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::BaseUrl(e) => e.code(),
            ConfigError::ApiKey => "bad_api_key",
            ConfigError::Header(e) => e.code(),
        }
    }
}

/// What is wrong with a base URL given to [`Config::new`](crate::Config::new). The message
/// never repeats the URL (it could hold credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BaseUrlError {
    /// The scheme is not `http://` or `https://`.
    #[error("the scheme must be http:// or https://")]
    Scheme,
    /// A character outside visible ASCII (whitespace, control, non-ASCII).
    #[error("it contains {character:?}: only visible ASCII is allowed (percent-encode the rest, punycode a host)")]
    Character {
        /// The first such character.
        character: char,
    },
    /// No host, as in `https://` or `https://:443`.
    #[error("the host is missing")]
    MissingHost,
    /// The host is not a DNS name, an IPv4 address or a bracketed IPv6 address (an
    /// unclosed `[`, an empty label, a label starting or ending with `-`, `999.1.1.1`).
    #[error("the host is not a DNS name, an IPv4 address or a bracketed IPv6 address")]
    Host,
    /// The port is not a number from 1 to 65535 (`:abc`, `:99999`, `:0`, an empty port).
    #[error("the port must be a number from 1 to 65535")]
    Port,
    /// User name or password (`user:pw@host`): they would be sent nowhere useful and shown
    /// in `Debug`. The API key goes to `Config::new` instead.
    #[error(
        "user name or password in the URL (user:pw@): give the API key to Config::new instead"
    )]
    UserInfo,
    /// A query (`?`) or fragment (`#`).
    #[error("a base URL has no query (?) or fragment (#)")]
    QueryOrFragment,
    /// A `.` or `..` path segment, percent-encoded (`%2e`, any case) or not, which a server
    /// or proxy may resolve to another path.
    #[error("the path has a '.' or '..' segment (percent-encoded or not)")]
    DotSegment,
    /// An empty path segment (`//`).
    #[error("the path has an empty segment (//)")]
    EmptySegment,
    /// A character a URL path may not hold unencoded (`\`, `"`, `{`, `|`, ...).
    #[error("the path holds {character:?}, which must be percent-encoded")]
    PathCharacter {
        /// The first such character.
        character: char,
    },
    /// A `%` not followed by two hexadecimal digits.
    #[error("a '%' in the path is not followed by two hex digits")]
    PercentEncoding,
}

impl BaseUrlError {
    /// A stable snake_case code, `base_url_` and the variant (`base_url_scheme`,
    /// `base_url_user_info`, ...). Codes never change meaning; new ones may be added.
    pub fn code(&self) -> &'static str {
        match self {
            BaseUrlError::Scheme => "base_url_scheme",
            BaseUrlError::Character { .. } => "base_url_character",
            BaseUrlError::MissingHost => "base_url_missing_host",
            BaseUrlError::Host => "base_url_host",
            BaseUrlError::Port => "base_url_port",
            BaseUrlError::UserInfo => "base_url_user_info",
            BaseUrlError::QueryOrFragment => "base_url_query_or_fragment",
            BaseUrlError::DotSegment => "base_url_dot_segment",
            BaseUrlError::EmptySegment => "base_url_empty_segment",
            BaseUrlError::PathCharacter { .. } => "base_url_path_character",
            BaseUrlError::PercentEncoding => "base_url_percent_encoding",
        }
    }
}

/// An OTP was refused before it was sent. The message never repeats the OTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OtpError {
    /// Fewer than 4 or more than 8 characters.
    #[error("an OTP has 4 to 8 digits; this one has {0} characters")]
    Length(usize),
    /// Something other than ASCII digits.
    #[error("an OTP holds only the digits 0-9")]
    NotDigits,
}

impl OtpError {
    /// A stable snake_case code for the page: `otp_length` or `otp_not_digits`. Codes
    /// never change meaning; new ones may be added.
    ///
    /// ```
    /// assert_eq!(direct_otp::Otp::new("12a4").unwrap_err().code(), "otp_not_digits");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            OtpError::Length(_) => "otp_length",
            OtpError::NotDigits => "otp_not_digits",
        }
    }
}

/// A response or transport report that was not accepted; the challenge is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The token was issued by another record (another payment, or another challenge).
    #[error("ignored an answer to a {} request: it was issued by another record", got.kind())]
    OtherRecord {
        /// The token that came in.
        got: Token,
    },
    /// The token is not that of the request in flight: a stale or duplicate answer, or the
    /// answer to a request another copy of this record issued.
    #[error("ignored an answer to a {} request: it is not the request in flight (a {} request), but an older or crossed one", got.kind(), in_flight.kind())]
    StaleToken {
        /// The token that came in.
        got: Token,
        /// The token of the request in flight.
        in_flight: Token,
    },
    /// The record is final: nothing is awaited any more, and a late answer never reports a
    /// second outcome.
    #[error("ignored an answer to a {} request: the payment is already final", got.kind())]
    AlreadyFinal {
        /// The token that came in.
        got: Token,
    },
    /// No request is in flight, so there is nothing to answer.
    #[error("ignored an answer to a {} request: no request is in flight", got.kind())]
    NothingInFlight {
        /// The token that came in.
        got: Token,
    },
    /// The answer names another order or transaction than the one asked. It was not
    /// applied and the request is still in flight: if no right answer comes, recover it
    /// after a grace ([`Challenge::recover`](crate::Challenge::recover)).
    #[error(transparent)]
    Foreign(#[from] ForeignAnswer),
}

impl InputError {
    /// A stable snake_case code: `other_record`, `stale_token`, `already_final` (the
    /// refusal's word for the same state), `nothing_in_flight`, `foreign_answer`. Codes
    /// never change meaning; new ones may be added.
    pub fn code(&self) -> &'static str {
        match self {
            InputError::OtherRecord { .. } => "other_record",
            InputError::StaleToken { .. } => "stale_token",
            InputError::AlreadyFinal { .. } => "already_final",
            InputError::NothingInFlight { .. } => "nothing_in_flight",
            InputError::Foreign(_) => "foreign_answer",
        }
    }
}

/// An answer that names another order or transaction than the one asked: it is never
/// applied (a status for order X must not settle order Y).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the answer names another {field} than the one asked, so it was not applied")]
pub struct ForeignAnswer {
    /// The field that differs: `order_id`, `payment.authentication.params.id`, or `txn_id`
    /// (an order status about another transaction of the order).
    pub field: &'static str,
}

impl ForeignAnswer {
    /// An order status naming another transaction of the same order (another attempt):
    /// a genuine answer, just not about this attempt.
    pub(crate) const OTHER_TRANSACTION: ForeignAnswer = ForeignAnswer { field: "txn_id" };

    /// Whether the answer is about another transaction of the same order.
    pub fn is_other_transaction(&self) -> bool {
        *self == Self::OTHER_TRANSACTION
    }
}

/// Why a response could not be used. Never holds the raw body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The server answered with an error envelope (or an error status).
    #[error(transparent)]
    Api(ApiError),
    /// The body is not the JSON shape expected for this call.
    #[error("HTTP {http_status}: response body is not the expected JSON ({problem})")]
    Malformed {
        /// The HTTP status code.
        http_status: u16,
        /// What was wrong, without quoting the body.
        problem: Malformed,
    },
    /// An HTTP status the API does not use for this call (a redirect, say).
    #[error("unexpected HTTP status {0}")]
    UnexpectedStatus(u16),
    /// The answer is about another order or transaction than the one asked.
    #[error(transparent)]
    Foreign(#[from] ForeignAnswer),
}

impl ResponseError {
    /// A stable snake_case code: `api_error` (the bank's own code is
    /// [`ApiError::code`]), `malformed`, `unexpected_status`, `foreign_answer`. Codes never
    /// change meaning; new ones may be added.
    pub fn code(&self) -> &'static str {
        match self {
            ResponseError::Api(_) => "api_error",
            ResponseError::Malformed { .. } => "malformed",
            ResponseError::UnexpectedStatus(_) => "unexpected_status",
            ResponseError::Foreign(_) => "foreign_answer",
        }
    }
}

impl From<ApiError> for ResponseError {
    fn from(e: ApiError) -> Self {
        ResponseError::Api(e)
    }
}

/// What was wrong with a malformed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformed {
    /// Not valid JSON (or truncated), at this line and column.
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Valid JSON with a wrong shape (wrong type or duplicate key), at this line and column.
    Shape {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A field the flow can't do without is missing.
    Missing(&'static str),
    /// An id in the body would be unsafe in a URL.
    BadId(&'static str),
    /// A URL in the body is not an absolute `http`/`https` URL safe to send a browser to.
    BadUrl(&'static str),
}

impl Malformed {
    /// A stable snake_case code of the problem: `syntax`, `shape`, `missing`, `bad_id`,
    /// `bad_url` (the `problem` field of a `malformed` error's wire form).
    pub fn code(&self) -> &'static str {
        match self {
            Malformed::Syntax { .. } => "syntax",
            Malformed::Shape { .. } => "shape",
            Malformed::Missing(_) => "missing",
            Malformed::BadId(_) => "bad_id",
            Malformed::BadUrl(_) => "bad_url",
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::Syntax { line, column } => {
                write!(f, "invalid JSON at line {line} column {column}")
            }
            Malformed::Shape { line, column } => {
                write!(f, "unexpected JSON shape at line {line} column {column}")
            }
            Malformed::Missing(field) => write!(f, "missing {field}"),
            Malformed::BadId(field) => write!(f, "{field} is not a safe id"),
            Malformed::BadUrl(field) => write!(f, "{field} is not a safe http(s) URL"),
        }
    }
}

/// An error envelope from the API: `{status, error_code, error_message, error_info}`.
///
/// Text fields are trimmed to 200 characters with control characters removed, so they are
/// safe to log; the raw body is not kept. The texts share one allocation.
///
/// ```
/// # use direct_otp::{Outcome, ResponseError};
/// # fn show(outcome: &Outcome) {
/// if let Outcome::Rejected(ResponseError::Api(e)) = outcome {
///     eprintln!("HTTP {} {:?}: {:?}", e.http_status(), e.code(), e.error_message());
/// }
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiError {
    http_status: u16,
    /// The present texts, one after the other.
    texts: Box<str>,
    /// Where each of [`Field`]'s texts lies in `texts`, if present.
    spans: [Option<(u16, u16)>; FIELDS],
}

const FIELDS: usize = 6;

/// The envelope's texts, in the order [`ApiError::new`] takes them.
#[derive(Clone, Copy)]
enum Field {
    Status,
    ErrorCode,
    ErrorMessage,
    InfoCode,
    Category,
    RequestId,
}

/// The most characters kept of each text.
const MAX_CHARS: usize = 200;

impl ApiError {
    /// An error with this HTTP status and texts (status, error_code, error_message,
    /// error_info.code, error_info.category, error_info.request_id), each made safe to log:
    /// control characters dropped, at most 200 characters, empty treated as absent.
    pub(crate) fn new(http_status: u16, texts: [Option<&str>; FIELDS]) -> Self {
        let texts = texts.map(|t| t.filter(|t| !t.is_empty()).map(Loggable));
        // Exactly what is kept, so the buffer is never grown nor shrunk.
        let mut all = String::with_capacity(texts.iter().flatten().map(Loggable::len).sum());
        let mut spans = [None; FIELDS];
        for (span, text) in spans.iter_mut().zip(texts) {
            let Some(text) = text else { continue };
            let from = all.len();
            text.push_to(&mut all);
            // Six texts of at most 200 characters (800 bytes) each: the offsets fit.
            // Nothing left is nothing to show.
            if all.len() > from {
                *span = Some((from as u16, all.len() as u16));
            }
        }
        ApiError {
            http_status,
            texts: all.into_boxed_str(),
            spans,
        }
    }

    fn text(&self, field: Field) -> Option<&str> {
        let (from, to) = self.spans[field as usize]?;
        self.texts.get(usize::from(from)..usize::from(to))
    }

    /// The HTTP status code.
    pub fn http_status(&self) -> u16 {
        self.http_status
    }

    /// The envelope's `status` ("Invalid Request", "error", "NOT_FOUND", ...).
    pub fn status(&self) -> Option<&str> {
        self.text(Field::Status)
    }

    /// `error_code` (sometimes prose).
    pub fn error_code(&self) -> Option<&str> {
        self.text(Field::ErrorCode)
    }

    /// `error_message`.
    pub fn error_message(&self) -> Option<&str> {
        self.text(Field::ErrorMessage)
    }

    /// `error_info.code` (INVALID_INPUT, DUPLICATE_REQUEST, ...).
    pub fn info_code(&self) -> Option<&str> {
        self.text(Field::InfoCode)
    }

    /// `error_info.category`.
    pub fn category(&self) -> Option<&str> {
        self.text(Field::Category)
    }

    /// `error_info.request_id`, useful when talking to Juspay support.
    pub fn request_id(&self) -> Option<&str> {
        self.text(Field::RequestId)
    }

    /// The most specific code present: `error_info.code`, else `error_code`.
    pub fn code(&self) -> Option<&str> {
        self.info_code().or(self.error_code())
    }
}

/// A server text as an [`ApiError`] keeps it: control characters dropped, at most
/// [`MAX_CHARS`] characters.
#[derive(Clone, Copy)]
struct Loggable<'a>(&'a str);

impl<'a> Loggable<'a> {
    /// Printable ASCII that fits, the usual case: kept as is.
    fn as_is(self) -> bool {
        self.0.len() <= MAX_CHARS && self.0.bytes().all(|b| (b' '..=b'~').contains(&b))
    }

    fn chars(self) -> impl Iterator<Item = char> + 'a {
        self.0.chars().filter(|c| !c.is_control()).take(MAX_CHARS)
    }

    /// The bytes kept.
    fn len(&self) -> usize {
        if self.as_is() {
            self.0.len()
        } else {
            self.chars().map(char::len_utf8).sum()
        }
    }

    fn push_to(self, out: &mut String) {
        if self.as_is() {
            out.push_str(self.0);
        } else {
            out.extend(self.chars());
        }
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("http_status", &self.http_status)
            .field("status", &self.status())
            .field("error_code", &self.error_code())
            .field("error_message", &self.error_message())
            .field("info_code", &self.info_code())
            .field("category", &self.category())
            .field("request_id", &self.request_id())
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.http_status)?;
        if let Some(code) = self.code() {
            write!(f, " {code}")?;
        }
        if let Some(msg) = self.error_message() {
            write!(f, ": {msg}")?;
        }
        if let Some(id) = self.request_id() {
            write!(f, " (request_id {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// Starting authentication did not give a challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// An id given to [`StartRequest`](crate::StartRequest) was refused.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The start response could not be used. The transaction may exist: check the order
    /// status before starting again (a new `POST /txns` sends another SMS).
    #[error("start authentication failed: {0}")]
    Response(#[from] ResponseError),
}

impl StartError {
    /// A stable snake_case code: the [`IdError`]'s own code, or `start_failed` (the
    /// transaction may exist: check the order status before starting again). Codes never
    /// change meaning; new ones may be added.
    pub fn code(&self) -> &'static str {
        match self {
            StartError::Id(e) => e.code(),
            StartError::Response(_) => "start_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_stay_small_enough_to_return_by_value() {
        // An `ApiError` is not boxed: its texts share one allocation and its spans are inline.
        assert!(std::mem::size_of::<ApiError>() <= 56);
        assert!(std::mem::size_of::<ResponseError>() <= 56);
        assert!(std::mem::size_of::<Result<crate::Outcome, InputError>>() <= 64);
    }
}

//! The errors of the settlement sources. Like every error of the crate, none holds a secret
//! (response key, webhook password) or a raw body; a text taken from the input is made safe
//! to log first (control characters dropped, at most 64 characters).

use crate::error::{IdError, Malformed};

/// A secret ([`ResponseKey`](crate::ResponseKey), [`WebhookCredentials`](crate::WebhookCredentials))
/// was refused. The message never repeats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The value is empty.
    #[error("the {what} is empty")]
    Empty {
        /// Which secret.
        what: &'static str,
    },
    /// The value holds a character it can't hold.
    #[error("the {what} must not contain {reason}")]
    Forbidden {
        /// Which secret.
        what: &'static str,
        /// What it contains.
        reason: &'static str,
    },
}

impl SecretError {
    /// A stable snake_case code: `secret_empty` or `secret_forbidden`. Codes never change
    /// meaning; new ones may be added.
    pub fn code(&self) -> &'static str {
        match self {
            SecretError::Empty { .. } => "secret_empty",
            SecretError::Forbidden { .. } => "secret_forbidden",
        }
    }
}

/// The parameters of a return URL were not accepted: unreadable, unsigned, or signed with
/// another key. Treat the return as unproven: show a neutral "checking your payment" page
/// and ask the order status API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReturnUrlError {
    /// The query string or form body is larger than a return ever is.
    #[error("return parameters are longer than {max} bytes")]
    TooLarge {
        /// The limit, in bytes.
        max: usize,
    },
    /// More parameters than a return ever has.
    #[error("more than {max} return parameters")]
    TooManyParameters {
        /// The limit.
        max: usize,
    },
    /// A `%` is not followed by two hexadecimal digits.
    #[error("return parameters hold a malformed %-escape")]
    BadEncoding,
    /// A name or value is not UTF-8 once decoded.
    #[error("a return parameter is not UTF-8 once decoded")]
    NotUtf8,
    /// The same parameter appears twice: which one was signed is ambiguous.
    #[error("the return parameter {name:?} appears more than once")]
    DuplicateParameter {
        /// Its name, made safe to log.
        name: String,
    },
    /// No `signature` parameter: the return is not signed (is "Use signed response" on in
    /// the dashboard?).
    #[error("the return parameters carry no signature")]
    MissingSignature,
    /// No `signature_algorithm` parameter.
    #[error("the return parameters carry no signature_algorithm")]
    MissingAlgorithm,
    /// A `signature_algorithm` other than `HMAC-SHA256`.
    #[error("unsupported signature_algorithm {algorithm:?} (only HMAC-SHA256 is known)")]
    UnsupportedAlgorithm {
        /// The algorithm named, made safe to log.
        algorithm: String,
    },
    /// The signature does not match: a parameter was changed, or the response key is not
    /// the one configured in the dashboard.
    #[error("the return signature does not match the parameters under this response key")]
    BadSignature,
    /// Correctly signed, but a field settlement needs is missing.
    #[error("the signed return parameters have no {0}")]
    MissingField(&'static str),
    /// Correctly signed, but the order id could not be used in an order status request.
    #[error("the signed order_id is not usable: {0}")]
    UnsafeOrderId(IdError),
}

impl ReturnUrlError {
    /// A stable snake_case code, `return_` and the variant (`return_bad_signature`,
    /// `return_missing_field`, ...), or the [`IdError`]'s own code for an unusable order id.
    /// Codes never change meaning; new ones may be added.
    pub fn code(&self) -> &'static str {
        match self {
            ReturnUrlError::TooLarge { .. } => "return_too_large",
            ReturnUrlError::TooManyParameters { .. } => "return_too_many_parameters",
            ReturnUrlError::BadEncoding => "return_bad_encoding",
            ReturnUrlError::NotUtf8 => "return_not_utf8",
            ReturnUrlError::DuplicateParameter { .. } => "return_duplicate_parameter",
            ReturnUrlError::MissingSignature => "return_missing_signature",
            ReturnUrlError::MissingAlgorithm => "return_missing_algorithm",
            ReturnUrlError::UnsupportedAlgorithm { .. } => "return_unsupported_algorithm",
            ReturnUrlError::BadSignature => "return_bad_signature",
            ReturnUrlError::MissingField(_) => "return_missing_field",
            ReturnUrlError::UnsafeOrderId(e) => e.code(),
        }
    }
}

/// A webhook was not accepted. Answer it with an error status (401 for the credential
/// errors, 400 for the others): Juspay retries, and the order status API still tells.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// No `Authorization` header.
    #[error("the webhook has no Authorization header")]
    MissingAuthorization,
    /// An `Authorization` header that is not `Basic <credentials>`.
    #[error("the webhook's Authorization header is not HTTP Basic")]
    NotBasic,
    /// Basic credentials other than the ones configured.
    #[error("the webhook's Basic credentials are not the configured ones")]
    BadCredentials,
    /// A body larger than any webhook.
    #[error("the webhook body is longer than {max} bytes")]
    TooLarge {
        /// The limit, in bytes.
        max: usize,
    },
    /// The body is not the event envelope `{id, event_name, date_created, content: {order}}`.
    #[error("the webhook body is not an event envelope ({0})")]
    Malformed(Malformed),
}

impl WebhookError {
    /// A stable snake_case code, `webhook_` and the variant (`webhook_bad_credentials`,
    /// `webhook_malformed`, ...). Codes never change meaning; new ones may be added.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::MissingAuthorization => "webhook_missing_authorization",
            WebhookError::NotBasic => "webhook_not_basic",
            WebhookError::BadCredentials => "webhook_bad_credentials",
            WebhookError::TooLarge { .. } => "webhook_too_large",
            WebhookError::Malformed(_) => "webhook_malformed",
        }
    }

    /// The HTTP status to answer the webhook with: 401 for the credential errors, 400
    /// for the others (Juspay retries; the order status API still tells).
    pub fn http_status(&self) -> u16 {
        match self {
            WebhookError::MissingAuthorization
            | WebhookError::NotBasic
            | WebhookError::BadCredentials => 401,
            WebhookError::TooLarge { .. } | WebhookError::Malformed(_) => 400,
        }
    }
}

/// An amount or currency was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmountError {
    /// Not a decimal number (`1499`, `1499.50`, `1.4995e3`).
    #[error("an amount is a decimal number such as 1499.50")]
    NotANumber,
    /// Below zero.
    #[error("an amount is never negative")]
    Negative,
    /// Too many digits, or an exponent too large to be money.
    #[error("the amount has too many digits")]
    OutOfRange,
    /// A currency that is not three ASCII letters (ISO 4217: `INR`, `USD`).
    #[error("a currency is three ASCII letters, such as INR")]
    Currency,
}

impl AmountError {
    /// A stable snake_case code: `amount_not_a_number`, `amount_negative`,
    /// `amount_out_of_range`, `bad_currency`. Codes never change meaning; new ones may be
    /// added.
    pub fn code(&self) -> &'static str {
        match self {
            AmountError::NotANumber => "amount_not_a_number",
            AmountError::Negative => "amount_negative",
            AmountError::OutOfRange => "amount_out_of_range",
            AmountError::Currency => "bad_currency",
        }
    }
}

/// A card eligibility check was refused before any request was built. The message never
/// repeats the digits (a full card number may have been passed by mistake).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BinError {
    /// Not 6 to 9 characters.
    #[error("a BIN has 6 to 9 digits; this one has {0} characters")]
    Length(usize),
    /// Something other than ASCII digits.
    #[error("a BIN holds only the digits 0-9")]
    NotDigits,
    /// The merchant id or routing id was refused.
    #[error(transparent)]
    Id(#[from] IdError),
}

impl BinError {
    /// A stable snake_case code: `bin_length`, `bin_not_digits`, or the [`IdError`]'s own
    /// code. Codes never change meaning; new ones may be added.
    pub fn code(&self) -> &'static str {
        match self {
            BinError::Length(_) => "bin_length",
            BinError::NotDigits => "bin_not_digits",
            BinError::Id(e) => e.code(),
        }
    }
}

/// A text from the input, made safe to put in an error message or a log line.
pub(crate) fn loggable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

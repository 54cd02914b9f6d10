//! Every stable code the crate gives, listed once: which types give it, what it means, what
//! the caller does, and the HTTP status a web handler answers. `docs/codes.md` is rendered
//! from this list ([`markdown`]); a test checks that every variant's `code()` is listed
//! with its type, and that the file is up to date.

/// One stable code and its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CodeInfo {
    /// The snake_case code, as `code()` and the wire form's `"code"` give it.
    pub code: &'static str,
    /// The types whose `code()` gives it (`Refusal`, `Outcome`, `wire::WireError`, ...).
    pub types: &'static [&'static str],
    /// What it means.
    pub meaning: &'static str,
    /// What the caller does.
    pub action: &'static str,
    /// The HTTP status a web handler answers with (`200` for a result that is no error;
    /// several where the types differ, e.g. `409 Refusal, 404 SettleError`).
    pub http: &'static str,
}

const fn c(
    code: &'static str,
    types: &'static [&'static str],
    meaning: &'static str,
    action: &'static str,
    http: &'static str,
) -> CodeInfo {
    CodeInfo {
        code,
        types,
        meaning,
        action,
        http,
    }
}

const ID: &[&str] = &[
    "IdError",
    "ConfigError",
    "StartError",
    "BinError",
    "ReturnUrlError",
    "WireError",
];
const BASE_URL: &[&str] = &["BaseUrlError", "ConfigError", "WireError"];
const AMOUNT: &[&str] = &["AmountError", "WireError"];
const OTP: &[&str] = &["OtpError", "WireError"];
const RETURN: &[&str] = &["ReturnUrlError"];
const WEBHOOK: &[&str] = &["WebhookError"];
const STORE: &[&str] = &["StoreError"];
const TRANSPORT: &[&str] = &["TransportError"];

/// Every code, sorted by code.
///
/// ```
/// let codes = direct_otp::codes::all();
/// let check = codes.iter().find(|c| c.code == "check_status").unwrap();
/// assert!(check.types.contains(&"Refusal") && check.types.contains(&"Outcome"));
/// ```
pub fn all() -> &'static [CodeInfo] {
    ALL
}

/// Looks a code up.
pub fn find(code: &str) -> Option<&'static CodeInfo> {
    ALL.iter().find(|c| c.code == code)
}

#[rustfmt::skip]
static ALL: &[CodeInfo] = &[
    c("agrees", &["SettleOutcome"], "the payment is already settled the same way", "nothing; log it", "200"),
    c("already_final", &["Refusal", "InputError", "DriveError"], "the payment is final; nothing more can be done (a late answer is ignored)", "show the final payment", "409"),
    c("already_started", &["Refusal", "DriveError"], "the payment was started already; a second start would be a second transaction", "follow its next step", "409"),
    c("amount_negative", AMOUNT, "an amount below zero", "fix the amount", "400"),
    c("amount_not_a_number", AMOUNT, "an amount that is not a decimal number", "fix the amount", "400"),
    c("amount_out_of_range", AMOUNT, "an amount with too many digits", "fix the amount", "400"),
    c("api_error", &["ResponseError"], "the bank answered with an error envelope (fields: the bank's texts)", "see the outcome that carries it (`rejected`, `check_status`, `start_failed`)", "502"),
    c("approved", &["Outcome", "SettleOutcome"], "the payment succeeded (CHARGED or AUTHORIZED); terminal", "fulfil the order", "200"),
    c("attempt_limit_reached", &["Refusal", "Outcome", "DriveError"], "no more OTP tries", "offer the bank page", "422"),
    c("attempt_open", &["Refusal", "DriveError"], "this attempt is still open; the bank may still settle it", "finish it, or check the order status, before a new attempt", "409"),
    c("await_bank_page", &["NextStep"], "the cardholder is on the bank page", "check the order status when they come back", "200"),
    c("bad_api_key", &["ConfigError", "WireError"], "the API key is empty or holds characters that cannot be sent", "fix the configuration", "500"),
    c("bad_base64", &["WireError"], "`body_base64` is not standard base64 with padding", "fix the wrapper", "400"),
    c("bad_currency", AMOUNT, "a currency that is not three ASCII letters", "fix the currency", "400"),
    c("bad_event_id", &["SettleError", "DriveError"], "the webhook's event id is empty, too long or holds control characters", "log it; answer the webhook 400", "400"),
    c("bad_key", &["DriveError"], "a payment key no store can hold; nothing was read", "answer 400", "400"),
    c("bad_record", &["WireError"], "a stored record that does not load (not JSON, or a state no payment reaches)", "inspect the stored record; never overwrite it", "500"),
    c("bad_token", &["WireError"], "a token that is not one this crate wrote", "fix the wrapper: hand back the token as given", "400"),
    c("bank_page", &["NextStep", "Outcome"], "Direct OTP is not available or given up: send the browser to the bank page", "redirect to the URL, then check the order status", "200"),
    c("base_url_character", BASE_URL, "the base URL holds a character outside visible ASCII", "fix the configuration", "500"),
    c("base_url_dot_segment", BASE_URL, "the base URL path has a `.` or `..` segment", "fix the configuration", "500"),
    c("base_url_empty_segment", BASE_URL, "the base URL path has an empty segment", "fix the configuration", "500"),
    c("base_url_host", BASE_URL, "the base URL host is not a DNS name or an IP address", "fix the configuration", "500"),
    c("base_url_missing_host", BASE_URL, "the base URL has no host", "fix the configuration", "500"),
    c("base_url_path_character", BASE_URL, "the base URL path holds a character that must be percent-encoded", "fix the configuration", "500"),
    c("base_url_percent_encoding", BASE_URL, "a `%` in the base URL path is not followed by two hex digits", "fix the configuration", "500"),
    c("base_url_port", BASE_URL, "the base URL port is not 1 to 65535", "fix the configuration", "500"),
    c("base_url_query_or_fragment", BASE_URL, "the base URL has a query or fragment", "fix the configuration", "500"),
    c("base_url_scheme", BASE_URL, "the base URL scheme is not http or https", "fix the configuration", "500"),
    c("base_url_user_info", BASE_URL, "the base URL holds a user name or password", "fix the configuration; the key goes in `api_key`", "500"),
    c("bin_length", &["BinError"], "a BIN that is not 6 to 9 characters", "fix the BIN", "400"),
    c("bin_not_digits", &["BinError"], "a BIN that holds other than digits", "fix the BIN", "400"),
    c("busy", &["DriveError"], "someone else changed the payment first; nothing was sent", "show the stored payment (the page reloads)", "409"),
    c("check_status", &["NextStep", "Refusal", "Outcome", "SettleOutcome", "DriveError"], "only the order status can tell what happened", "run `check_status`", "409 Refusal, 200 otherwise"),
    c("confirmed", &["Outcome"], "the order status confirmed the settlement already reported", "nothing new", "200"),
    c("confirming", &["NextStep", "Refusal", "SettleOutcome", "DriveError"], "a return URL or webhook said final; the order status decides", "run `check_status`", "409 Refusal, 200 otherwise"),
    c("conflict", &["SettleOutcome"], "a hint contradicts how the payment was settled; it is confirming now", "run `check_status`", "200"),
    c("cooldown", &["Refusal", "DriveError"], "resending is possible later (`until_ms`)", "wait; answer `Retry-After`", "429"),
    c("declined", &["Outcome", "SettleOutcome"], "the payment failed; terminal", "offer a new attempt", "200"),
    c("disagreement", &["Outcome"], "the order status overturned the settlement reported earlier", "act on `paid` and `was_paid` (see docs/settlement.md)", "200"),
    c("duplicate", &["SettleOutcome"], "this webhook was applied before", "nothing; answer the webhook 200", "200"),
    c("enter_otp", &["NextStep"], "the OTP page is open", "show the OTP input", "200"),
    c("expired", &["NextStep", "Refusal", "TimerEvent", "DriveError"], "the OTP page outlived its lifetime", "offer the bank page or check the order status", "410 Refusal, 200 otherwise"),
    c("finished", &["NextStep"], "the payment is final", "show the result", "200"),
    c("foreign_answer", &["InputError", "ResponseError"], "the answer names another order or transaction; not applied", "report it; the sweep recovers the request", "502"),
    c("id_dot_dot", ID, "an id contains `..`", "fix the id (field: `field`)", "400"),
    c("id_dot_segment", ID, "an id is `.` or `..`", "fix the id (field: `field`)", "400"),
    c("id_empty", ID, "an id is empty", "fix the id (field: `field`)", "400"),
    c("id_forbidden_character", ID, "an id holds a character that could change its URL or header", "fix the id (field: `field`)", "400"),
    c("id_too_long", ID, "an id is longer than allowed", "fix the id (field: `field`)", "400"),
    c("in_flight", &["Refusal", "SettleOutcome", "DriveError"], "a request is in flight", "hand back its answer first (or wait)", "409 Refusal, 200 SettleOutcome"),
    c("integrity_failure", &["Outcome", "SettleOutcome"], "the amount or currency is not the expected one: final and not paid", "hold the order for review; refund if money arrived", "200"),
    c("late", &["DriveError"], "the stored request was too old to send; nothing was sent", "try again", "503"),
    c("malformed", &["ResponseError"], "the bank's body is not the JSON expected (`problem`: syntax, shape, missing, bad_id, bad_url)", "see the outcome that carries it", "502"),
    c("maybe_sent", &["SendFailure"], "the request may have reached the bank", "hand it back as the reply `maybe_sent`", "200"),
    c("moved", &["Swept"], "the payment listed was answered, recovered or removed meanwhile; nothing written", "nothing", "200"),
    c("new_attempt", &["NextStep"], "this attempt cannot go on", "start the next attempt on the order", "200"),
    c("no_bank_page", &["Refusal", "DriveError"], "no bank page is known for this transaction", "check the order status", "422"),
    c("not_delivered", &["Outcome"], "the request surely did not reach the bank; nothing changed", "try the command again", "200"),
    c("not_final", &["SettleOutcome"], "the hint reports a status that is not final", "nothing", "200"),
    c("not_found", &["DriveError"], "no payment is stored under this key", "start it first", "404"),
    c("not_sent", &["SendFailure"], "the request surely did not leave", "hand it back as the reply `not_sent`", "200"),
    c("not_started", &["Refusal", "SettleError", "DriveError"], "nothing was sent for this payment yet", "start it first (a hint belongs to the attempt that was started)", "409 Refusal, 404 SettleError"),
    c("nothing_in_flight", &["InputError"], "an answer came while no request is in flight; ignored", "log it", "409"),
    c("on_bank_page", &["Refusal", "DriveError"], "the cardholder was sent to the bank page", "check the order status", "409"),
    c("other_order", &["Refusal", "SettleError", "DriveError"], "the start request or hint is for another order", "hand it to that order's payment", "422 Refusal, 409 SettleError"),
    c("other_record", &["InputError"], "the token was issued by another record; ignored", "hand the answer to the record that issued it", "409"),
    c("other_transaction", &["SettleOutcome"], "the webhook is about another attempt of the order", "nothing", "200"),
    c("otp_length", OTP, "an OTP that is not 4 to 8 characters", "ask for the OTP again", "422"),
    c("otp_not_digits", OTP, "an OTP that holds other than digits", "ask for the OTP again", "422"),
    c("otp_sent", &["Outcome"], "a new OTP was sent", "show the OTP input", "200"),
    c("overtaken", &["DriveError"], "the payment was recovered while its request was out; the answer was not stored", "reload it", "409"),
    c("pending", &["Outcome"], "the status is known and not final", "follow the next step", "200"),
    c("recovered", &["Swept"], "the sweep recovered a request a dead worker left in flight (counted as maybe sent)", "nothing: `check` is its status check, when one was due", "200"),
    c("rejected", &["Outcome"], "the bank refused the request or its answer was unusable; nothing changed", "the command may be tried again once the cause is fixed", "200"),
    c("resend_available", &["TimerEvent"], "the resend cooldown ended", "enable \"Resend\"", "200"),
    c("resend_not_allowed", &["Refusal", "DriveError"], "the bank does not allow resending for this transaction", "hide \"Resend\"", "422"),
    c("return_bad_encoding", RETURN, "return parameters hold a malformed %-escape", "treat the return as unproven: check the order status", "400"),
    c("return_bad_signature", RETURN, "the return signature does not match", "treat the return as unproven: check the order status", "400"),
    c("return_duplicate_parameter", RETURN, "a return parameter appears twice", "treat the return as unproven: check the order status", "400"),
    c("return_missing_algorithm", RETURN, "no `signature_algorithm`", "treat the return as unproven: check the order status", "400"),
    c("return_missing_field", RETURN, "signed, but a field settlement needs is missing", "treat the return as unproven: check the order status", "400"),
    c("return_missing_signature", RETURN, "the return is not signed", "turn on signed responses; check the order status", "400"),
    c("return_not_utf8", RETURN, "a return parameter is not UTF-8", "treat the return as unproven: check the order status", "400"),
    c("return_too_large", RETURN, "return parameters longer than a return ever is", "treat the return as unproven: check the order status", "400"),
    c("return_too_many_parameters", RETURN, "more return parameters than a return ever has", "treat the return as unproven: check the order status", "400"),
    c("return_unsupported_algorithm", RETURN, "a signature algorithm other than HMAC-SHA256", "treat the return as unproven: check the order status", "400"),
    c("sandbox_unavailable", &["SandboxError"], "the sandbox could not listen on 127.0.0.1 (the port is taken)", "ask for port 0, or free the port", "500"),
    c("sandbox_webhook_url", &["SandboxError"], "the sandbox's webhook URL is not http:// on loopback", "give http://127.0.0.1:PORT/...", "500"),
    c("secret_empty", &["SecretError"], "a response key or webhook credential is empty", "fix the configuration", "500"),
    c("secret_forbidden", &["SecretError"], "a response key or webhook credential holds a forbidden character", "fix the configuration", "500"),
    c("send_limit_reached", &["Refusal", "Outcome", "DriveError"], "no more OTPs can be sent", "offer the bank page", "422"),
    c("stale", &["SettleOutcome"], "the webhook is older than one already applied", "nothing", "200"),
    c("stale_token", &["InputError"], "the token is not that of the request in flight; ignored", "log it", "409"),
    c("start", &["NextStep"], "nothing was sent yet", "start the payment", "200"),
    c("start_failed", &["StartError"], "the start answer could not be used; the transaction may exist (`reason`: the response error's code)", "check the order status before starting again", "502"),
    c("start_request_needed", &["Refusal", "DriveError"], "the payment was stored before it kept its start terms, so it cannot start again with only the card", "start it with the whole start request", "422"),
    c("store", &["DriveError"], "the store failed (`reason`: the store error's code)", "`store_corrupt`: inspect the row; otherwise reload and retry later", "503, 500 store_corrupt"),
    c("store_backend", STORE, "the database failed", "reload and retry later", "503"),
    c("store_config", STORE, "the store is set up wrong", "fix the configuration", "500"),
    c("store_conflict", STORE, "someone else wrote the record first; nothing was written", "reload it and decide again", "409"),
    c("store_corrupt", STORE, "the stored row does not load; left untouched", "inspect it", "500"),
    c("store_not_found", STORE, "no record to replace; nothing was written", "insert it first", "404"),
    c("store_rejected", STORE, "the key or record cannot be stored as given (`reason`)", "a bug in the caller", "500"),
    c("submit_not_allowed", &["Refusal", "DriveError"], "the bank does not allow OTP entry for this transaction", "offer the bank page", "422"),
    c("sweep_failed", &["Swept"], "the sweep could not load or store this payment (`reason`: the drive error)", "inspect a `store_corrupt` row; otherwise the next sweep tries again", "500"),
    c("transport_body_too_large", TRANSPORT, "the answer's body exceeds the limit (maybe sent)", "hand back `maybe_sent`", "502"),
    c("transport_connect", TRANSPORT, "no connection could be made (not sent)", "hand back `not_sent`", "502"),
    c("transport_invalid_request", TRANSPORT, "the HTTP client refused the request (not sent)", "hand back `not_sent`", "502"),
    c("transport_io", TRANSPORT, "the connection failed during the exchange (maybe sent)", "hand back `maybe_sent`", "502"),
    c("transport_other", TRANSPORT, "any other failure (maybe sent)", "hand back `maybe_sent`", "502"),
    c("transport_protocol", TRANSPORT, "the answer is not valid HTTP (maybe sent)", "hand back `maybe_sent`", "502"),
    c("transport_runtime", TRANSPORT, "no async runtime to run the exchange (not sent)", "hand back `not_sent`", "500"),
    c("transport_timeout", TRANSPORT, "the deadline passed after connecting (maybe sent)", "hand back `maybe_sent`", "504"),
    c("unanswerable", &["DriveError"], "the answer was refused (it names something else); the sweep recovers it", "report it", "502"),
    c("unauthorized", &["Outcome", "DriveError"], "the bank refused the API key (HTTP 401/403)", "fix the API key; retrying will not help", "500"),
    c("unexpected_status", &["ResponseError"], "an HTTP status the API does not use for this call", "see the outcome that carries it", "502"),
    c("unknown_order", &["DriveError"], "no payment of this order is stored", "log it; a webhook answers 200, a return URL 404", "404"),
    c("wait", &["NextStep"], "a request is in flight", "wait for its answer", "200"),
    c("webhook_bad_credentials", WEBHOOK, "Basic credentials other than the configured ones", "answer 401", "401"),
    c("webhook_malformed", WEBHOOK, "the body is not a webhook event envelope", "answer 400", "400"),
    c("webhook_missing_authorization", WEBHOOK, "no Authorization header", "answer 401", "401"),
    c("webhook_not_basic", WEBHOOK, "an Authorization header that is not HTTP Basic", "answer 401", "401"),
    c("webhook_too_large", WEBHOOK, "a body larger than any webhook", "answer 400", "400"),
    c("wire_shape", &["WireError"], "valid JSON of the wrong shape (an unknown command, a missing field)", "fix the wrapper", "400"),
    c("wire_syntax", &["WireError"], "not JSON", "fix the wrapper", "400"),
    c("wrong_otp", &["Outcome"], "the OTP was wrong; tries are left (`attempts_left`)", "ask for the OTP again", "200"),
];

/// The registry as the Markdown table of `docs/codes.md`.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Stable codes\n\n\
         Generated from `direct_otp::codes::all()` (src/codes.rs): do not edit by hand. \
         After changing a code, run\n`UPDATE_WIRE_DOCS=1 cargo test -p direct-otp -p direct-otp-tests wire::` to rewrite this file.\n\n\
         Every result and error crosses the wire as `{\"code\": ...}` (see docs/protocol.md). \
         One state has one code in every type. Codes never change meaning; new ones may be added.\n\n\
         | code | types | meaning | what the caller does | HTTP |\n|---|---|---|---|---|\n",
    );
    for c in ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            c.code,
            c.types.join(", "),
            c.meaning,
            c.action,
            c.http
        ));
    }
    out
}

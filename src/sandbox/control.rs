//! The control API: what a test in any language needs from a sandbox served over HTTP that
//! Juspay's API does not give (the OTP the "bank" sent, a reset), under its own path
//! prefix, [`CONTROL_PREFIX`], apart from every simulated Juspay route. Off unless
//! [`SandboxConfig::control_api`](super::SandboxConfig::control_api) is set; the same API
//! key as the simulated API. Pure, as the model: no IO.

use serde_json::json;

use super::auth;
use super::model::Sandbox;
use super::wire::{HttpRequest, HttpResponse};

/// The path prefix of the control API: `/_sandbox/`. No Juspay route starts with it.
pub const CONTROL_PREFIX: &str = "/_sandbox/";

/// Whether a request is for the control API.
pub(crate) fn is_control(req: &HttpRequest) -> bool {
    let path = req.path();
    path.starts_with(CONTROL_PREFIX) || path == CONTROL_PREFIX.trim_end_matches('/')
}

impl Sandbox {
    /// Forgets every order, transaction, queued webhook, fault and logged request, and
    /// starts again from the settings (the base URL included): the same ids and OTPs as a
    /// new sandbox.
    pub fn reset(&mut self) {
        *self = Sandbox::new(self.config.clone());
    }

    /// Answers a control request (see `docs/sandbox.md`):
    ///
    /// * `GET /_sandbox/orders/{order_id}/otp`: 200 `{"order_id", "otp", "transaction"}`, the OTP
    ///   the bank sent last while it can be submitted ([`Sandbox::current_otp_for_order`]);
    ///   404 `no_otp` otherwise;
    /// * `GET /_sandbox/orders/{order_id}`: 200 `{"order_id", "status", "transaction"}`;
    ///   404 `not_found` for an unknown order;
    /// * `POST /_sandbox/reset`: forgets everything ([`Sandbox::reset`]), 200 `{"reset": true}`;
    /// * `GET /_sandbox/`: 200, the routes.
    ///
    /// Without the API key (HTTP Basic, as for the simulated API): 401.
    pub(crate) fn control(&mut self, req: &HttpRequest) -> HttpResponse {
        let authorized = req
            .header("authorization")
            .and_then(auth::basic_user)
            .is_some_and(|user| !user.is_empty() && user == self.config.api_key());
        if !authorized {
            return problem(
                401,
                "access_denied",
                "the sandbox's API key is needed (HTTP Basic, key as user name)",
            );
        }
        let path = req.path().strip_prefix(CONTROL_PREFIX).unwrap_or("");
        let segments: Vec<&str> = path.split('/').collect();
        match (req.method.as_str(), segments.as_slice()) {
            ("GET", [""]) => HttpResponse::json(
                200,
                &json!({
                    "routes": [
                        "GET /_sandbox/orders/{order_id}/otp",
                        "GET /_sandbox/orders/{order_id}",
                        "POST /_sandbox/reset",
                    ],
                }),
            ),
            ("GET", ["orders", order, "otp"]) if !order.is_empty() => {
                let txn = self.latest_transaction(order);
                match (self.current_otp_for_order(order), txn) {
                    (Some(otp), Some(t)) => HttpResponse::json(
                        200,
                        &json!({
                            "order_id": order,
                            "otp": otp,
                            "transaction": { "id": t.id, "txn_id": t.txn_id },
                        }),
                    ),
                    _ => problem(404, "no_otp", "no OTP can be submitted for this order"),
                }
            }
            ("GET", ["orders", order]) if !order.is_empty() => match self.order_status(order) {
                Some(status) => {
                    let txn = self.latest_transaction(order).map(|t| {
                        json!({
                            "id": t.id,
                            "txn_id": t.txn_id,
                            "txn_uuid": t.txn_uuid,
                            "status": t.status.as_str(),
                            "otp_sends": t.otp_sends,
                            "attempts": t.attempts,
                            "three_ds": t.three_ds,
                        })
                    });
                    HttpResponse::json(
                        200,
                        &json!({ "order_id": order, "status": status.as_str(), "transaction": txn }),
                    )
                }
                None => problem(404, "not_found", "no such order"),
            },
            ("POST", ["reset"]) => {
                self.reset();
                HttpResponse::json(200, &json!({ "reset": true }))
            }
            _ => problem(
                404,
                "not_found",
                "no such control route; GET /_sandbox/ lists them",
            ),
        }
    }
}

fn problem(status: u16, error: &str, message: &str) -> HttpResponse {
    HttpResponse::json(status, &json!({ "error": error, "message": message }))
}

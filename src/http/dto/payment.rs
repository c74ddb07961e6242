//! The JSON shapes of payments, the redirect to pay, the sandbox form.

use crate::domain::payment::Payment;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A payment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentOut {
    /// Its id.
    pub id: String,
    /// The order.
    pub order_id: String,
    /// The order version it was opened against.
    pub order_version: u64,
    /// NEW, PENDING, PAID, PARTIAL, FAILED or REFUNDED.
    pub status: String,
    /// Its version.
    pub version: u32,
    /// Asked, minor units.
    pub amount: i64,
    /// Taken from the payer, minor units.
    pub paid_amount: i64,
    /// Owed back to the payer (more than was due, or the order was cancelled), minor units;
    /// `paidAmount − refundedAmount` is what the store keeps.
    pub refunded_amount: i64,
    /// Where the shopper pays.
    pub redirect_url: String,
    /// The payment system's id.
    pub system_pay_id: Option<String>,
    /// The payment system's status.
    pub system_status: Option<String>,
}

impl PaymentOut {
    /// From a payment of `order`.
    pub fn of(order: &str, p: &Payment) -> Self {
        Self {
            id: p.id.to_string(),
            order_id: order.to_owned(),
            order_version: p.order_version,
            status: p.status.name().into(),
            version: p.version,
            amount: p.amount.minor(),
            paid_amount: p.paid_amount.minor(),
            refunded_amount: p.refunded_amount.minor(),
            redirect_url: p.redirect_url.clone(),
            system_pay_id: p.system_pay_id.clone(),
            system_status: p.system_status.clone(),
        }
    }
}

/// `POST /sandbox/pay/{paymentId}` form (`application/x-www-form-urlencoded`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SandboxForm {
    /// What the sandbox reports to the store: pay in full, pay part (half), or fail.
    #[schema(pattern = "^(full|part|fail)$")]
    pub action: String,
}

/// `GET /pay/redirectUrl` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedirectOut {
    /// The payment to make.
    pub payment_id: String,
    /// Where to make it.
    pub redirect_url: String,
    /// The amount still due, minor units.
    pub amount: i64,
}

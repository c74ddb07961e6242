//! The payment service's account of one order: its payments and the money they moved.
//!
//! One actor holds the account, so the shopper's return and the payment system's callback can
//! never both capture one payment. A payment is opened only once the account saw the order's
//! stock booked (hard case 1: PAY_PENDING implies BOOKED); asking again returns the payment in
//! progress (the double "Pay"); a partial payment leaves the rest due and the next request
//! opens a payment for it (hard case 4); a failure or a cancellation refunds what was captured
//! (hard case 5). A repeated or late callback changes nothing.
//!
//! Invariant: captured − refunded = the order's price once it is paid; = 0 once cancelled.

use serde::{Deserialize, Serialize};

use super::error::NotPayableReason;
use super::saga::{PayEvent, PaymentStatus, StockEvent, StockStatus};
use super::{Ctx, CustomerId, DomainError, Money, OrderId, PaymentId};
use crate::limits::PAYMENTS_PER_ORDER_MAX;

/// One payment (the seed's `Payment{id, status, version, orderId, orderVersion, redirectUrl,
/// systemPayId, systemStatus}` plus amounts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// Its id.
    pub id: PaymentId,
    /// Its status.
    pub status: PaymentStatus,
    /// Its own version (one per change).
    pub version: u32,
    /// The order version it was opened against.
    pub order_version: u64,
    /// The amount asked.
    pub amount: Money,
    /// The amount the payment system reported taken from the payer.
    pub paid_amount: Money,
    /// The part of it owed back to the payer (more than was due, or the order was cancelled);
    /// `paid_amount − refunded_amount` is what the store keeps.
    pub refunded_amount: Money,
    /// Where the shopper pays.
    pub redirect_url: String,
    /// The payment system's id, once it called back.
    pub system_pay_id: Option<String>,
    /// The payment system's last status.
    pub system_status: Option<String>,
    /// Opened, ms.
    pub created_at_ms: u64,
}

/// One payment as stored in schema 1, before it recorded what it owes back. It repeats
/// `Payment` on purpose: a frozen copy of what old records hold, which must not change when
/// `Payment` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentV1 {
    /// See `Payment`.
    pub id: PaymentId,
    /// See `Payment`.
    pub status: PaymentStatus,
    /// See `Payment`.
    pub version: u32,
    /// See `Payment`.
    pub order_version: u64,
    /// See `Payment`.
    pub amount: Money,
    /// See `Payment`.
    pub paid_amount: Money,
    /// See `Payment`.
    pub redirect_url: String,
    /// See `Payment`.
    pub system_pay_id: Option<String>,
    /// See `Payment`.
    pub system_status: Option<String>,
    /// See `Payment`.
    pub created_at_ms: u64,
}

/// A payment account as stored in schema 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAccountV1 {
    /// See `PaymentAccount`.
    pub order_id: OrderId,
    /// See `PaymentAccount`.
    pub due: Option<Money>,
    /// See `PaymentAccount`.
    pub payable: bool,
    /// See `PaymentAccount`.
    pub cancelled: bool,
    /// See `PaymentAccount`.
    pub customer_id: Option<CustomerId>,
    /// See `PaymentAccount`.
    pub order_version: u64,
    /// Payments, oldest first.
    pub payments: Vec<PaymentV1>,
    /// See `PaymentAccount`.
    pub captured: Money,
    /// See `PaymentAccount`.
    pub refunded: Money,
}

impl From<PaymentAccountV1> for PaymentAccount {
    /// Schema 1 kept refunds on the account only: a refunded payment gave back all it took, and
    /// what else the account gave back (an overpayment's excess) is put on its last payment that
    /// kept money, so the payments add up to the account again.
    fn from(v1: PaymentAccountV1) -> PaymentAccount {
        let mut payments: Vec<Payment> = v1
            .payments
            .into_iter()
            .map(|p| Payment {
                refunded_amount: if p.status == PaymentStatus::Refunded {
                    p.paid_amount
                } else {
                    Money::zero(p.paid_amount.currency())
                },
                id: p.id,
                status: p.status,
                version: p.version,
                order_version: p.order_version,
                amount: p.amount,
                paid_amount: p.paid_amount,
                redirect_url: p.redirect_url,
                system_pay_id: p.system_pay_id,
                system_status: p.system_status,
                created_at_ms: p.created_at_ms,
            })
            .collect();
        let on_payments: i64 = payments.iter().map(|p| p.refunded_amount.minor()).sum();
        let rest = v1.refunded.minor() - on_payments;
        if rest > 0 {
            if let Some(p) =
                payments.iter_mut().rev().find(|p| matches!(p.status, PaymentStatus::Paid | PaymentStatus::Partial))
            {
                p.refunded_amount = Money::new(p.refunded_amount.minor() + rest, p.refunded_amount.currency());
            }
        }
        PaymentAccount {
            order_id: v1.order_id,
            due: v1.due,
            payable: v1.payable,
            cancelled: v1.cancelled,
            customer_id: v1.customer_id,
            order_version: v1.order_version,
            payments,
            captured: v1.captured,
            refunded: v1.refunded,
        }
    }
}

/// What the payment system reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallbackStatus {
    /// Money was taken (maybe less than asked).
    Succeeded,
    /// Nothing was taken.
    Failed,
}

/// A payment system's callback, after its signature was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    /// The payment.
    pub payment_id: PaymentId,
    /// The payment system's id of it.
    pub system_pay_id: String,
    /// What happened.
    pub status: CallbackStatus,
    /// How much was taken.
    pub amount: Money,
}

/// The payments of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAccount {
    /// The order.
    pub order_id: OrderId,
    /// What the order costs, once its booking said so.
    pub due: Option<Money>,
    /// The stock was seen booked.
    pub payable: bool,
    /// The order was cancelled.
    pub cancelled: bool,
    /// Its customer, once known.
    pub customer_id: Option<CustomerId>,
    /// The order version the booking reported.
    pub order_version: u64,
    /// Payments, oldest first.
    pub payments: Vec<Payment>,
    /// Money captured, ever.
    pub captured: Money,
    /// Money given back, ever.
    pub refunded: Money,
}

/// A change of the account and the event to publish with it.
pub type Step = (PaymentAccount, Option<PayEvent>);

impl PaymentAccount {
    /// An account of an order the service knows nothing of yet.
    pub fn new(order_id: OrderId, currency: super::Currency) -> Self {
        Self {
            order_id,
            due: None,
            payable: false,
            cancelled: false,
            customer_id: None,
            order_version: 0,
            payments: Vec::new(),
            captured: Money::zero(currency),
            refunded: Money::zero(currency),
        }
    }

    /// Captured net of refunds.
    pub fn net(&self) -> Money {
        self.captured.checked_sub(self.refunded).unwrap_or(self.captured)
    }

    fn event(&self, payment: Option<&PaymentId>, status: PaymentStatus) -> PayEvent {
        PayEvent {
            order_id: self.order_id.clone(),
            payment_id: payment.cloned(),
            status,
            captured: self.net(),
            due: self.due.unwrap_or(self.captured),
        }
    }

    /// The stock booking reported: BOOKED makes the order payable. `None`: no change.
    pub fn on_stock(&self, e: &StockEvent, order_version: u64) -> Option<PaymentAccount> {
        if e.status != StockStatus::Booked || self.payable {
            return None;
        }
        let mut next = self.clone();
        next.payable = true;
        next.due = Some(e.fixed_price);
        next.order_version = order_version;
        Some(next)
    }

    /// The payment in progress, if any.
    pub fn pending(&self) -> Option<&Payment> {
        self.payments.iter().find(|p| p.status == PaymentStatus::Pending)
    }

    /// The shopper asks to pay: returns the payment in progress, or opens one for what is still
    /// due. `redirect` builds the payment system's URL for a payment id.
    pub fn open(
        &self,
        ctx: &Ctx,
        redirect: &dyn Fn(&PaymentId) -> String,
    ) -> Result<(Payment, Option<Step>), DomainError> {
        if self.cancelled {
            return Err(DomainError::NotPayable { reason: NotPayableReason::Cancelled });
        }
        if let Some(p) = self.pending() {
            return Ok((p.clone(), None));
        }
        let Some(due) = self.due.filter(|_| self.payable) else {
            return Err(DomainError::NotPayable { reason: NotPayableReason::NotBookedYet });
        };
        let rest = due.checked_sub(self.net())?;
        if rest.minor() <= 0 {
            return Err(DomainError::NotPayable { reason: NotPayableReason::AlreadyPaid });
        }
        if self.payments.len() >= PAYMENTS_PER_ORDER_MAX {
            return Err(DomainError::Invalid {
                field: "payment".into(),
                reason: "too many payments for one order".into(),
            });
        }
        let id = PaymentId::nth(&self.order_id, self.payments.len() + 1)
            .map_err(|e| DomainError::Invalid { field: "payment id".into(), reason: e.to_string() })?;
        let payment = Payment {
            redirect_url: redirect(&id),
            id,
            status: PaymentStatus::Pending,
            version: 1,
            order_version: self.order_version,
            amount: rest,
            paid_amount: Money::zero(rest.currency()),
            refunded_amount: Money::zero(rest.currency()),
            system_pay_id: None,
            system_status: None,
            created_at_ms: ctx.now_ms,
        };
        let mut next = self.clone();
        next.payments.push(payment.clone());
        let event = next.event(Some(&payment.id), PaymentStatus::Pending);
        Ok((payment, Some((next, Some(event)))))
    }

    /// The payment system called back. SUCCEEDED must report an amount above 0 (refused
    /// otherwise, changing nothing). At most what the order still owes is kept: the rest of the
    /// amount taken is recorded as owed back to the payer on this payment, and all of it when
    /// the order is cancelled. A payment accepts what makes sense in its state: a pending one
    /// either outcome; a failed one a late success (money was taken after all: it is recorded
    /// and given back, the order having failed); a settled one nothing (a repeated or late
    /// callback is a no-op). Returns the payment as it stands and the change, if any.
    pub fn callback(&self, c: &Callback) -> Result<(Payment, Option<Step>), DomainError> {
        let i = self
            .payments
            .iter()
            .position(|p| p.id == c.payment_id)
            .ok_or_else(|| DomainError::NotFound { what: "payment".into(), id: c.payment_id.to_string() })?;
        if c.amount.currency() != self.payments[i].amount.currency() {
            return Err(DomainError::Invalid { field: "amount".into(), reason: "wrong currency".into() });
        }
        if c.amount.minor() < 0 {
            return Err(DomainError::Invalid { field: "amount".into(), reason: "must not be negative".into() });
        }
        if c.status == CallbackStatus::Succeeded && c.amount.minor() == 0 {
            return Err(DomainError::Invalid {
                field: "amount".into(),
                reason: "a SUCCEEDED callback must report an amount above 0".into(),
            });
        }
        let was = self.payments[i].status;
        let late_success = was == PaymentStatus::Failed && c.status == CallbackStatus::Succeeded;
        if was != PaymentStatus::Pending && !late_success {
            return Ok((self.payments[i].clone(), None));
        }
        let mut next = self.clone();
        {
            let p = &mut next.payments[i];
            p.version += 1;
            p.system_pay_id = Some(c.system_pay_id.clone());
            p.system_status = Some(match c.status {
                CallbackStatus::Succeeded => "SUCCEEDED".into(),
                CallbackStatus::Failed => "FAILED".into(),
            });
        }
        if c.status == CallbackStatus::Failed {
            next.payments[i].status = PaymentStatus::Failed;
            let event = next.event(Some(&c.payment_id), PaymentStatus::Failed);
            return Ok((next.payments[i].clone(), Some((next, Some(event)))));
        }
        // What the order still owes; nothing once it is cancelled or its payment failed.
        let owed = match self.due {
            Some(due) if !self.cancelled && !late_success => due.checked_sub(self.net())?.minor().max(0),
            _ => 0,
        };
        let kept = Money::new(c.amount.minor().min(owed), c.amount.currency());
        let back = c.amount.checked_sub(kept)?;
        next.captured = next.captured.checked_add(c.amount)?;
        next.refunded = next.refunded.checked_add(back)?;
        let asked = next.payments[i].amount;
        let p = &mut next.payments[i];
        p.paid_amount = c.amount;
        p.refunded_amount = back;
        p.status = if kept.minor() == 0 {
            PaymentStatus::Refunded
        } else if kept.minor() >= asked.minor() {
            PaymentStatus::Paid
        } else {
            PaymentStatus::Partial
        };
        let order_status = if kept.minor() == 0 {
            PaymentStatus::Refunded
        } else if next.due.is_some_and(|d| next.net().minor() >= d.minor()) {
            PaymentStatus::Paid
        } else {
            PaymentStatus::Partial
        };
        let event = next.event(Some(&c.payment_id), order_status);
        Ok((next.payments[i].clone(), Some((next, Some(event)))))
    }

    /// Money taken and owed back, summed over the payments (what `captured` and `refunded`
    /// must equal).
    pub fn payments_total(&self) -> Result<(Money, Money), DomainError> {
        let zero = Money::zero(self.captured.currency());
        self.payments.iter().try_fold((zero, zero), |(paid, back), p| {
            Ok((paid.checked_add(p.paid_amount)?, back.checked_add(p.refunded_amount)?))
        })
    }

    /// The order was cancelled: every captured payment is refunded, and nothing more is
    /// accepted. `None`: no change.
    pub fn on_cancelled(&self, customer: &CustomerId) -> Option<Step> {
        if self.cancelled {
            return None;
        }
        let mut next = self.clone();
        next.cancelled = true;
        next.customer_id = Some(customer.clone());
        let mut refunded_any = false;
        for p in &mut next.payments {
            if matches!(p.status, PaymentStatus::Paid | PaymentStatus::Partial) {
                p.status = PaymentStatus::Refunded;
                p.refunded_amount = p.paid_amount;
                p.version += 1;
                refunded_any = true;
            }
        }
        next.refunded = next.captured;
        let event = refunded_any.then(|| next.event(None, PaymentStatus::Refunded));
        Some((next, event))
    }
}

#[cfg(test)]
mod tests;

//! The events the saga's services exchange (their payloads; the envelope adds id, version,
//! status, node and time) and the statuses they carry. Names follow the seed.

use serde::{Deserialize, Serialize};

use super::stock::Dimensions;
use super::{CustomerId, Money, OrderId, PaymentId, Qty, Sku};

/// Status of a commerce order (the seed's `OrderStatus`, `PAID_PARTION` spelled `PAID_PARTIAL`,
/// plus `CANCELLED` with a reason for the seed's "error").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Created (transient: an order is created booking).
    New,
    /// Waiting for the stock service to book every line.
    BookingPending,
    /// Every line booked; waiting for payment.
    Booked,
    /// A payment is open at the payment system.
    PayPending,
    /// Paid in full.
    Paid,
    /// Paid in part; the rest is due.
    PaidPartial,
    /// The shipment is being assembled or is on its way.
    ShippingPending,
    /// Delivered.
    Completed,
    /// Cancelled (see the reason); stock released, payments refunded.
    Cancelled,
}

impl OrderStatus {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            OrderStatus::New => "NEW",
            OrderStatus::BookingPending => "BOOKING_PENDING",
            OrderStatus::Booked => "BOOKED",
            OrderStatus::PayPending => "PAY_PENDING",
            OrderStatus::Paid => "PAID",
            OrderStatus::PaidPartial => "PAID_PARTIAL",
            OrderStatus::ShippingPending => "SHIPPING_PENDING",
            OrderStatus::Completed => "COMPLETED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// Every status.
    pub const ALL: [OrderStatus; 9] = [
        OrderStatus::New,
        OrderStatus::BookingPending,
        OrderStatus::Booked,
        OrderStatus::PayPending,
        OrderStatus::Paid,
        OrderStatus::PaidPartial,
        OrderStatus::ShippingPending,
        OrderStatus::Completed,
        OrderStatus::Cancelled,
    ];

    /// The status named `name` (API spelling).
    pub fn parse(name: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Not yet paid in full and not cancelled: the customer's one "unpaid order".
    pub fn is_unpaid(self) -> bool {
        matches!(
            self,
            OrderStatus::New
                | OrderStatus::BookingPending
                | OrderStatus::Booked
                | OrderStatus::PayPending
                | OrderStatus::PaidPartial
        )
    }

    /// Paid in full, or further along.
    pub fn is_paid(self) -> bool {
        matches!(self, OrderStatus::Paid | OrderStatus::ShippingPending | OrderStatus::Completed)
    }
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancelReason {
    /// A line could not be booked.
    OutOfStock,
    /// A payment failed.
    PaymentFailed,
    /// Not booked, or not paid, in time.
    Timeout,
    /// The customer cancelled.
    ByCustomer,
    /// An operator cancelled.
    ByOperator,
}

impl CancelReason {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            CancelReason::OutOfStock => "OUT_OF_STOCK",
            CancelReason::PaymentFailed => "PAYMENT_FAILED",
            CancelReason::Timeout => "TIMEOUT",
            CancelReason::ByCustomer => "BY_CUSTOMER",
            CancelReason::ByOperator => "BY_OPERATOR",
        }
    }
}

/// One line of an order: a product, its name and unit price fixed at creation, and (once
/// booked) the size and weight of one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The product (and stock item).
    pub id: Sku,
    /// Its name at creation.
    pub name: String,
    /// How many.
    pub quantity: Qty,
    /// Unit price at creation.
    pub price: Money,
    /// Size and weight of one unit, from the booking.
    pub dims: Option<Dimensions>,
}

/// The seed's `OrderEvent` (topic `order.event`, keyed by order id). The envelope carries the
/// order's version, status and node (hard cases 6, 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    /// The order.
    pub order_id: OrderId,
    /// Its customer.
    pub customer_id: CustomerId,
    /// Its status after the change.
    pub status: OrderStatus,
    /// Its lines.
    pub items: Vec<OrderLine>,
    /// The price to pay.
    pub fixed_price: Money,
    /// Why it was cancelled, when it was.
    pub cancel_reason: Option<CancelReason>,
    /// The promo discount (schema 2; 0 when read from schema 1).
    pub discount: Money,
    /// The promo code (schema 2; none when read from schema 1).
    pub promo_code: Option<String>,
}

/// The seed's `StockStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockStatus {
    /// Booking is under way.
    Pending,
    /// Every line is booked.
    Booked,
    /// A line could not be booked; the others are released.
    Error,
    /// The shipment is assembled.
    Assembled,
}

impl StockStatus {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            StockStatus::Pending => "PENDING",
            StockStatus::Booked => "BOOKED",
            StockStatus::Error => "ERROR",
            StockStatus::Assembled => "ASSEMBLED",
        }
    }
}

/// A booked line as the stock service reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookedLine {
    /// The item.
    pub sku: Sku,
    /// How many.
    pub qty: Qty,
    /// Size and weight of one unit.
    pub dims: Option<Dimensions>,
}

/// The seed's `StockEvent` (topic `stock.booking`, keyed by order id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockEvent {
    /// The order.
    pub order_id: OrderId,
    /// The order version the booking started from.
    pub order_version: u64,
    /// The booking's status.
    pub status: StockStatus,
    /// The order's price (the seed's `fixedPride`).
    pub fixed_price: Money,
    /// The lines, with their units' size and weight.
    pub lines: Vec<BookedLine>,
}

/// What the booking of an order asks of one stock item (topic `stock.reserve`, keyed by SKU).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveRequest {
    /// The order.
    pub order_id: OrderId,
    /// The item.
    pub sku: Sku,
    /// How many.
    pub qty: Qty,
    /// What to do.
    pub op: ReserveOp,
}

/// A stock item operation asked by a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReserveOp {
    /// Book `qty` for the order.
    Book,
    /// Release the order's booking (it was cancelled).
    Release,
    /// Release because another line of the order could not be booked.
    ReleaseFailed,
    /// The order's booking left with its shipment.
    Ship,
}

/// A stock item's answer to a booking request (topic `stock.line`, keyed by order id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineOutcome {
    /// The order.
    pub order_id: OrderId,
    /// The item.
    pub sku: Sku,
    /// What happened.
    pub result: LineResult,
}

/// The result of booking one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineResult {
    /// Booked.
    Booked {
        /// Size and weight of one unit.
        dims: Option<Dimensions>,
    },
    /// Not enough free stock (or another refusal).
    Refused {
        /// Why.
        reason: String,
    },
}

/// Status of one payment (the seed's `PaymentStatus` plus PARTIAL, FAILED, REFUNDED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStatus {
    /// Created, not yet sent to the payment system.
    New,
    /// Open at the payment system.
    Pending,
    /// Paid in full.
    Paid,
    /// Paid in part.
    Partial,
    /// Failed.
    Failed,
    /// Paid, then given back.
    Refunded,
}

impl PaymentStatus {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            PaymentStatus::New => "NEW",
            PaymentStatus::Pending => "PENDING",
            PaymentStatus::Paid => "PAID",
            PaymentStatus::Partial => "PARTIAL",
            PaymentStatus::Failed => "FAILED",
            PaymentStatus::Refunded => "REFUNDED",
        }
    }
}

/// The seed's `PayEvent` (topic `pay.event`, keyed by order id). The envelope carries the
/// payment account's version and node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayEvent {
    /// The order.
    pub order_id: OrderId,
    /// The payment that changed (none for an account-wide refund).
    pub payment_id: Option<PaymentId>,
    /// What the order should take from it.
    pub status: PaymentStatus,
    /// Captured so far, net of refunds.
    pub captured: Money,
    /// The order's price.
    pub due: Money,
}

/// Status of a shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ShipmentStatus {
    /// Created for a paid order; nothing done yet.
    Pending,
    /// Packed.
    Assembled,
    /// Handed to the carrier.
    Shipped,
    /// Delivered.
    Delivered,
}

impl ShipmentStatus {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            ShipmentStatus::Pending => "PENDING",
            ShipmentStatus::Assembled => "ASSEMBLED",
            ShipmentStatus::Shipped => "SHIPPED",
            ShipmentStatus::Delivered => "DELIVERED",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<ShipmentStatus> {
        [ShipmentStatus::Pending, ShipmentStatus::Assembled, ShipmentStatus::Shipped, ShipmentStatus::Delivered]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// The seed's `ShippingEvent` (topic `shipping.event`, keyed by order id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingEvent {
    /// The order.
    pub order_id: OrderId,
    /// Its customer (the notification service routes on it).
    pub customer_id: CustomerId,
    /// The shipment's status.
    pub status: ShipmentStatus,
}

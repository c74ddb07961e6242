//! The notification service's view of one customer: their contact details (its own copy of the
//! seed's `CustomerDto`, fed by customer events) and their orders (its own `CommerceOrder`
//! projection, fed by order events). On ORDER_PAID and ORDER_SHIPPED it asks for one send per
//! channel; a notification whose customer is not known yet waits until the profile arrives.

use serde::{Deserialize, Serialize};

use super::customer::{Channel, Communication, Customer};
use super::saga::{OrderEvent, OrderLine, OrderStatus, ShipmentStatus, ShippingEvent};
use super::{CustomerId, MessageId, Money, OrderId};

/// The seed's notification `EventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// The order was paid.
    OrderPaid,
    /// The order was shipped.
    OrderShipped,
}

impl EventType {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            EventType::OrderPaid => "ORDER_PAID",
            EventType::OrderShipped => "ORDER_SHIPPED",
        }
    }
}

/// The seed's `CustomerDto{id, name, email, communications}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerDto {
    /// The customer.
    pub id: CustomerId,
    /// Their name.
    pub name: String,
    /// Their e-mail.
    pub email: String,
    /// Ways to reach them.
    pub communications: Vec<Communication>,
}

/// The seed's notification `CommerceOrder{id, customerId, orderItems, orderStatus}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// The order.
    pub id: OrderId,
    /// Its lines.
    pub order_items: Vec<OrderLine>,
    /// Its status as last heard.
    pub order_status: OrderStatus,
    /// Its price.
    pub fixed_price: Money,
}

/// A notice to send once the customer is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// What happened.
    pub event_type: EventType,
    /// The order.
    pub order_id: OrderId,
    /// The event that brought the news.
    pub cause: MessageId,
}

/// One send to do (topic `notification.send`, keyed by its id): idempotent per (event, channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequest {
    /// `n-{hash of the event id and channel}`.
    pub id: String,
    /// The order.
    pub order_id: OrderId,
    /// The customer.
    pub customer_id: CustomerId,
    /// What happened.
    pub event_type: EventType,
    /// How.
    pub channel: Channel,
    /// Where.
    pub address: String,
    /// Subject line.
    pub subject: String,
    /// Text.
    pub body: String,
}

/// The id of a send: `n-{order}-{key}`, so that an order's sends are found by their prefix.
fn send_id(order: &OrderId, key: &MessageId) -> String {
    format!("{}{key}", send_prefix(order))
}

/// The prefix every send of `order` has (sends made before it was used start `n-{key}`).
pub fn send_prefix(order: &OrderId) -> String {
    format!("n-{order}-")
}

impl SendRecord {
    /// What the record says, in words, for an order's timeline.
    pub fn describe(&self) -> Option<String> {
        let r = self.request.as_ref()?;
        let what = match r.event_type {
            EventType::OrderPaid => "payment confirmation",
            EventType::OrderShipped => "shipping notice",
        };
        let how = match r.channel {
            Channel::Email => "e-mail",
            Channel::Sms => "text message",
        };
        let outcome = match self.status {
            Some(SendStatus::Sent) => "sent",
            Some(SendStatus::Retrying) => "not sent yet; trying again",
            Some(SendStatus::Failed) => "could not be sent",
            None => "being sent",
        };
        Some(format!("Notification: {what} by {how} to {} {outcome}", r.address))
    }
}

/// Orders kept in the projection per customer.
const ORDERS_KEPT_MAX: usize = 50;

/// The notification service's state for one customer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Notifications {
    /// Contact details, once a customer event arrived.
    pub customer: Option<CustomerDto>,
    /// The customer's version they came from.
    pub customer_version: u64,
    /// Recent orders.
    pub orders: Vec<OrderView>,
    /// Notices waiting for the contact details.
    pub waiting: Vec<Notice>,
}

impl Notifications {
    /// The sends of a notice to a known customer.
    fn sends(&self, n: &Notice) -> Vec<SendRequest> {
        let Some(c) = &self.customer else { return Vec::new() };
        let order = self.orders.iter().find(|o| o.id == n.order_id);
        c.communications
            .iter()
            .map(|comm| {
                let key = MessageId::derived(&[
                    b"notify",
                    n.cause.as_bytes(),
                    comm.channel.name().as_bytes(),
                    comm.address.as_bytes(),
                ]);
                let (subject, body) = text(n, c, order);
                SendRequest {
                    id: send_id(&n.order_id, &key),
                    order_id: n.order_id.clone(),
                    customer_id: c.id.clone(),
                    event_type: n.event_type,
                    channel: comm.channel,
                    address: comm.address.clone(),
                    subject,
                    body,
                }
            })
            .collect()
    }

    /// The customer's profile changed (or arrived): notices that waited for it go out now.
    /// `None`: stale or unchanged.
    pub fn on_customer(&self, c: &Customer, version: u64) -> Option<(Notifications, Vec<SendRequest>)> {
        if version <= self.customer_version {
            return None;
        }
        let mut next = self.clone();
        next.customer_version = version;
        next.customer = Some(CustomerDto {
            id: c.customer_id.clone(),
            name: format!("{} {}", c.name, c.last_name).trim().to_owned(),
            email: c.customer_id.to_string(),
            communications: c.communications.clone(),
        });
        let waiting = std::mem::take(&mut next.waiting);
        let sends = waiting.iter().flat_map(|n| next.sends(n)).collect();
        Some((next, sends))
    }

    fn remember(&mut self, e: &OrderEvent) {
        match self.orders.iter_mut().find(|o| o.id == e.order_id) {
            Some(o) => o.order_status = e.status,
            None => {
                self.orders.push(OrderView {
                    id: e.order_id.clone(),
                    order_items: e.items.clone(),
                    order_status: e.status,
                    fixed_price: e.fixed_price,
                });
                if self.orders.len() > ORDERS_KEPT_MAX {
                    self.orders.remove(0);
                }
            }
        }
    }

    fn notify(mut self, n: Notice) -> (Notifications, Vec<SendRequest>) {
        if self.customer.is_some() {
            let sends = self.sends(&n);
            (self, sends)
        } else {
            self.waiting.push(n);
            (self, Vec::new())
        }
    }

    /// An order event: ORDER_PAID notices go out on PAID. `None`: of no concern.
    pub fn on_order(&self, e: &OrderEvent, cause: MessageId) -> Option<(Notifications, Vec<SendRequest>)> {
        let known = self.orders.iter().find(|o| o.id == e.order_id);
        if e.status != OrderStatus::Paid || known.is_some_and(|o| o.order_status.is_paid()) {
            return None;
        }
        let mut next = self.clone();
        next.remember(e);
        Some(next.notify(Notice { event_type: EventType::OrderPaid, order_id: e.order_id.clone(), cause }))
    }

    /// A shipping event: ORDER_SHIPPED notices go out on SHIPPED. `None`: of no concern.
    pub fn on_shipping(&self, e: &ShippingEvent, cause: MessageId) -> Option<(Notifications, Vec<SendRequest>)> {
        let known = self.orders.iter().find(|o| o.id == e.order_id);
        if e.status != ShipmentStatus::Shipped || known.is_some_and(|o| o.order_status == OrderStatus::ShippingPending)
        {
            return None;
        }
        let mut next = self.clone();
        if let Some(o) = next.orders.iter_mut().find(|o| o.id == e.order_id) {
            o.order_status = OrderStatus::ShippingPending;
        }
        Some(next.notify(Notice { event_type: EventType::OrderShipped, order_id: e.order_id.clone(), cause }))
    }
}

fn text(n: &Notice, c: &CustomerDto, order: Option<&OrderView>) -> (String, String) {
    let price = order.map(|o| o.fixed_price.to_string()).unwrap_or_default();
    match n.event_type {
        EventType::OrderPaid => (
            format!("Your order {} is paid", n.order_id),
            format!("Hello {},\n\nthank you: we received {price} for order {}. We will let you know when it ships.\n\nbazaar books", c.name, n.order_id),
        ),
        EventType::OrderShipped => (
            format!("Your order {} is on its way", n.order_id),
            format!("Hello {},\n\norder {} has left our warehouse.\n\nbazaar books", c.name, n.order_id),
        ),
    }
}

/// How a send went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendStatus {
    /// Delivered to the mail server / SMS gateway / log.
    Sent,
    /// Failed; will be tried again.
    Retrying,
    /// Failed for good.
    Failed,
}

impl SendStatus {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            SendStatus::Sent => "SENT",
            SendStatus::Retrying => "RETRYING",
            SendStatus::Failed => "FAILED",
        }
    }
}

/// The record of one send.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRecord {
    /// What was to be sent.
    pub request: Option<SendRequest>,
    /// How it went.
    pub status: Option<SendStatus>,
    /// Attempts made.
    pub attempts: u32,
    /// First attempted, ms.
    pub created_at_ms: u64,
    /// Sent, ms.
    pub sent_at_ms: Option<u64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Where it went (`smtp`, `sms`, `log`).
    pub sink: Option<String>,
}

//! The notification service (the seed's notification sidecar with its mail and sms services).
//!
//! `NotificationsKind`, one per customer, keeps the service's own copies of the customer's
//! contact details and orders (fed by events; it never reads another service's trees) and, on
//! ORDER_PAID and ORDER_SHIPPED, publishes one `notification.send` per channel. Each send is
//! recorded (`SendRecordKind`) with its status and attempts; a send already SENT is never
//! repeated, and a failing send never blocks or rolls back an order — it is retried, then
//! recorded FAILED. The I/O (SMTP, the SMS gateway, the log sink) is an adapter outside this
//! module: `crate::app::sender`.

use serde::{Deserialize, Serialize};

use super::kind::{Change, CommandOutcome, Emit, EntityKind, EventOutcome, Statuses};
use super::{from_state_v1, state_v1};
use crate::domain::customer::Customer;
use crate::domain::notification::{Notifications, SendRecord, SendRequest, SendStatus};
use crate::domain::saga::ShippingEvent;
use crate::domain::saga::{OrderStatus, ShipmentStatus};
use crate::domain::{Ctx, CustomerId};
use crate::persistence::codec::CodecError;
use crate::persistence::events::{self, Topic};
use crate::persistence::{DeliveryError, Envelope};

/// Reading a customer's notification state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NotificationsQuery {
    /// The state.
    Get,
}

/// The notification service's per-customer entity kind.
#[derive(Debug)]
pub struct NotificationsKind;

const PAID: Statuses = Statuses::Order(&[OrderStatus::Paid]);
const SHIPPED: Statuses = Statuses::Shipment(&[ShipmentStatus::Shipped]);

fn with_sends(next: Notifications, sends: Vec<SendRequest>) -> Result<EventOutcome<NotificationsKind>, DeliveryError> {
    let mut emits = Vec::with_capacity(sends.len());
    for s in &sends {
        emits.push(Emit::new(
            Topic::NotificationSend,
            s.id.clone(),
            events::encode(s).map_err(DeliveryError::permanent)?,
        ));
    }
    Ok(EventOutcome::Changed(Change::to(next).emit_all(emits)))
}

impl EntityKind for NotificationsKind {
    const SERVICE: &'static str = "notification";
    const AGGREGATE: &'static str = "customer";
    type Key = CustomerId;
    type State = Notifications;
    type Command = NotificationsQuery;
    type Reply = Notifications;

    fn topics() -> &'static [Topic] {
        &[Topic::CustomerEvent, Topic::OrderEvent, Topic::ShippingEvent]
    }

    fn status_filter(topic: Topic) -> Option<Statuses> {
        match topic {
            Topic::OrderEvent => Some(PAID),
            Topic::ShippingEvent => Some(SHIPPED),
            _ => None,
        }
    }

    fn parse_key(s: &str) -> Result<CustomerId, String> {
        crate::actors::customer_key(s)
    }

    fn event_key(env: &Envelope) -> Result<CustomerId, String> {
        match env.topic {
            Topic::OrderEvent => crate::actors::order_event_customer(env),
            Topic::ShippingEvent => events::decode::<ShippingEvent>(env.topic, env.schema_version, &env.payload)
                .map(|e| e.customer_id)
                .map_err(|e| e.to_string()),
            _ => Self::parse_key(&env.routing_key),
        }
    }

    fn initial(_key: &CustomerId) -> Notifications {
        Notifications::default()
    }

    fn encode_state(state: &Notifications) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("notifications", state)
    }

    fn decode_state(_key: &CustomerId, schema: u16, body: &[u8]) -> Result<Notifications, CodecError> {
        from_state_v1("notifications", schema, body)
    }

    fn status(state: &Notifications) -> String {
        if state.customer.is_some() { "KNOWN" } else { "UNKNOWN" }.into()
    }

    fn on_command(
        _key: &CustomerId,
        state: &Notifications,
        _cmd: NotificationsQuery,
        _ctx: &Ctx,
    ) -> CommandOutcome<Self> {
        CommandOutcome::Unchanged(state.clone())
    }

    fn on_event(
        _key: &CustomerId,
        state: &Notifications,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        let step = match env.topic {
            Topic::CustomerEvent => {
                let c: Customer =
                    events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
                state.on_customer(&c, env.aggregate_version)
            }
            Topic::OrderEvent => {
                let e =
                    events::decode_order_event(env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
                state.on_order(&e, env.message_id)
            }
            Topic::ShippingEvent => {
                let e: ShippingEvent =
                    events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
                state.on_shipping(&e, env.message_id)
            }
            t => return Err(DeliveryError::permanent(format!("notifications take no {} events", t.name()))),
        };
        match step {
            Some((next, sends)) => with_sends(next, sends),
            None => Ok(EventOutcome::Ignored),
        }
    }
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendOutcome {
    /// Sent through `sink`.
    Sent {
        /// `smtp`, `sms` or `log`.
        sink: String,
    },
    /// Failed.
    Failed {
        /// Why.
        error: String,
        /// No more attempts will be made.
        last: bool,
    },
}

/// What can be asked of a send record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SendCommand {
    /// Record an attempt.
    Record {
        /// What was to be sent.
        request: SendRequest,
        /// How it went.
        outcome: SendOutcome,
    },
    /// Read it.
    Get,
}

/// The send record entity kind (one per notification id).
#[derive(Debug)]
pub struct SendRecordKind;

impl EntityKind for SendRecordKind {
    const SERVICE: &'static str = "notification";
    const AGGREGATE: &'static str = "send";
    type Key = String;
    type State = SendRecord;
    type Command = SendCommand;
    type Reply = SendRecord;

    fn topics() -> &'static [Topic] {
        &[]
    }

    fn parse_key(s: &str) -> Result<String, String> {
        if s.starts_with("n-") && s.len() <= crate::limits::ID_BYTES_MAX {
            Ok(s.to_owned())
        } else {
            Err(format!("{s:?} is not a notification id"))
        }
    }

    fn initial(_key: &String) -> SendRecord {
        SendRecord::default()
    }

    fn encode_state(state: &SendRecord) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("send record", state)
    }

    fn decode_state(_key: &String, schema: u16, body: &[u8]) -> Result<SendRecord, CodecError> {
        from_state_v1("send record", schema, body)
    }

    fn status(state: &SendRecord) -> String {
        state.status.map_or("NEW", SendStatus::name).to_owned()
    }

    fn on_command(_key: &String, state: &SendRecord, cmd: SendCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        let (request, outcome) = match cmd {
            SendCommand::Get => return CommandOutcome::Unchanged(state.clone()),
            SendCommand::Record { request, outcome } => (request, outcome),
        };
        if state.status == Some(SendStatus::Sent) || state.status == Some(SendStatus::Failed) {
            return CommandOutcome::Unchanged(state.clone());
        }
        let mut next = state.clone();
        next.request = Some(request);
        next.attempts = next.attempts.saturating_add(1);
        if next.created_at_ms == 0 {
            next.created_at_ms = ctx.now_ms.max(1);
        }
        match outcome {
            SendOutcome::Sent { sink } => {
                next.status = Some(SendStatus::Sent);
                next.sent_at_ms = Some(ctx.now_ms);
                next.sink = Some(sink);
            }
            SendOutcome::Failed { error, last } => {
                next.status = Some(if last { SendStatus::Failed } else { SendStatus::Retrying });
                next.last_error = Some(error);
            }
        }
        CommandOutcome::Changed { reply: next.clone(), change: Change::to(next) }
    }

    fn on_event(
        _key: &String,
        _state: &SendRecord,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        Err(DeliveryError::permanent(format!("send records take no {} events", env.topic.name())))
    }
}

//! The shipping service: one shipment per paid order (wrapping `domain::shipping`).

use super::kind::{Change, CommandOutcome, Emit, EntityKind, EventOutcome, Statuses};
use super::{from_state_v1, state_v1};
use crate::domain::saga::OrderEvent;
use crate::domain::saga::{OrderStatus, ShipmentStatus};
use crate::domain::shipping::Shipment;
use crate::domain::{Ctx, DomainError, OrderId};
use crate::persistence::codec::CodecError;
use crate::persistence::events::{self, Topic};
use crate::persistence::{DeliveryError, Envelope};

/// What can be asked of a shipment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ShippingCommand {
    /// A shipping operator's step.
    Step(ShipmentStatus),
    /// Read it.
    Get,
}

/// The shipment entity kind (one per order; its state is `None` until the order is paid).
#[derive(Debug)]
pub struct ShipmentKind;

const PAID_OR_CANCELLED: Statuses = Statuses::Order(&[OrderStatus::Paid, OrderStatus::Cancelled]);

fn no_shipment(key: &OrderId) -> DomainError {
    DomainError::NotFound { what: "shipment".into(), id: key.to_string() }
}

impl EntityKind for ShipmentKind {
    const SERVICE: &'static str = "shipping";
    const AGGREGATE: &'static str = "shipment";
    type Key = OrderId;
    type State = Option<Shipment>;
    type Command = ShippingCommand;
    type Reply = Result<Shipment, DomainError>;

    fn topics() -> &'static [Topic] {
        &[Topic::OrderEvent]
    }

    fn status_filter(_topic: Topic) -> Option<Statuses> {
        Some(PAID_OR_CANCELLED)
    }

    fn parse_key(s: &str) -> Result<OrderId, String> {
        crate::actors::order_key(s)
    }

    fn initial(_key: &OrderId) -> Option<Shipment> {
        None
    }

    fn encode_state(state: &Option<Shipment>) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("shipment", state)
    }

    fn decode_state(_key: &OrderId, schema: u16, body: &[u8]) -> Result<Option<Shipment>, CodecError> {
        from_state_v1("shipment", schema, body)
    }

    fn status(state: &Option<Shipment>) -> String {
        state.as_ref().map_or("NONE", |s| s.status.name()).to_owned()
    }

    fn on_command(key: &OrderId, state: &Option<Shipment>, cmd: ShippingCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        let Some(s) = state else { return CommandOutcome::Unchanged(Err(no_shipment(key))) };
        match cmd {
            ShippingCommand::Get => CommandOutcome::Unchanged(Ok(s.clone())),
            ShippingCommand::Step(to) => match s.step(to, ctx) {
                Err(e) => CommandOutcome::Unchanged(Err(e)),
                Ok(None) => CommandOutcome::Unchanged(Ok(s.clone())),
                Ok(Some(next)) => match events::encode(&next.event()) {
                    Ok(payload) => CommandOutcome::Changed {
                        reply: Ok(next.clone()),
                        change: Change::to(Some(next)).emit(Emit::new(Topic::ShippingEvent, key.to_string(), payload)),
                    },
                    Err(e) => CommandOutcome::Unchanged(Err(DomainError::Invalid {
                        field: "shipment".into(),
                        reason: e.to_string(),
                    })),
                },
            },
        }
    }

    fn on_event(
        _key: &OrderId,
        state: &Option<Shipment>,
        env: &Envelope,
        ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        if env.topic != Topic::OrderEvent {
            return Err(DeliveryError::Permanent(format!("shipments take no {} events", env.topic.name())));
        }
        let e: OrderEvent = events::decode_order_event(env.schema_version, &env.payload)
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        Ok(match (state, e.status) {
            (None, OrderStatus::Paid) => EventOutcome::Changed(Change::to(Some(Shipment::for_paid_order(&e, ctx)))),
            (Some(s), _) => match s.on_order_event(&e) {
                Some(next) => EventOutcome::Changed(Change::to(Some(next))),
                None => EventOutcome::Ignored,
            },
            _ => EventOutcome::Ignored,
        })
    }
}

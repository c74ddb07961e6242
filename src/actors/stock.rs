//! The stock service: one stock item entity per SKU (wrapping `domain::stock`) and one booking
//! entity per order (wrapping `domain::booking`).
//!
//! A booking asks items to book, release or ship on `stock.reserve` (keyed by SKU, so each
//! item handles its requests one at a time and never overbooks); an item answers bookings on
//! `stock.line` (keyed by order) and publishes its levels on `stock.item` (for the catalogue).
//! The booking reports to the order and payment services on `stock.booking`.

use serde::{Deserialize, Serialize};

use super::kind::{Change, CommandOutcome, Emit, EntityKind, EventOutcome, Statuses};
use super::{from_state_v1, state_v1};
use crate::domain::booking::{BookingEffects, StockBooking};
use crate::domain::saga::{LineOutcome, LineResult, OrderEvent, ReserveOp, ReserveRequest, ShippingEvent, StockEvent};
use crate::domain::saga::{OrderStatus, ShipmentStatus};
use crate::domain::stock::{Dimensions, ReleaseReason, StockCommand, StockItem, StockItemEvent, StockLevels};
use crate::domain::{Ctx, DomainError, OrderId, Sku};
use crate::persistence::codec::CodecError;
use crate::persistence::events::{self, Topic};
use crate::persistence::{DeliveryError, Envelope};

/// What a stock item command answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockItemView {
    /// The item.
    pub sku: Sku,
    /// Its counts.
    pub levels: StockLevels,
    /// Size and weight of one unit.
    pub dims: Option<Dimensions>,
}

impl StockItemView {
    fn of(item: &StockItem) -> Self {
        Self { sku: item.sku().clone(), levels: item.levels(), dims: item.dims() }
    }
}

fn item_events(evs: &[StockItemEvent]) -> Result<Vec<Emit>, CodecError> {
    evs.iter().map(|e| Ok(Emit::new(Topic::StockItem, e.sku.to_string(), events::encode_stock_item(e)?))).collect()
}

fn line_answer(order: &OrderId, sku: &Sku, result: LineResult) -> Result<Emit, CodecError> {
    let o = LineOutcome { order_id: order.clone(), sku: sku.clone(), result };
    Ok(Emit::new(Topic::StockLine, order.to_string(), events::encode(&o)?))
}

/// The stock item entity kind.
#[derive(Debug)]
pub struct StockItemKind;

impl EntityKind for StockItemKind {
    const SERVICE: &'static str = "stock";
    const AGGREGATE: &'static str = "item";
    type Key = Sku;
    type State = StockItem;
    type Command = StockCommand;
    type Reply = Result<StockItemView, DomainError>;

    fn topics() -> &'static [Topic] {
        &[Topic::StockReserve]
    }

    fn parse_key(s: &str) -> Result<Sku, String> {
        crate::actors::sku_key(s)
    }

    fn initial(key: &Sku) -> StockItem {
        StockItem::new(key.clone())
    }

    fn encode_state(state: &StockItem) -> Result<(u16, Vec<u8>), CodecError> {
        Ok((2, crate::persistence::codec::to_body("stock item", state, crate::limits::AGGREGATE_BYTES_MAX)?))
    }

    /// Schema 1 kept each order's booking in the item; schema 2 keeps counts only.
    fn decode_state(key: &Sku, schema: u16, body: &[u8]) -> Result<StockItem, CodecError> {
        let item: StockItem = match schema {
            2 => crate::persistence::codec::from_body("stock item", body)?,
            1 => StockItem::from(from_state_v1::<crate::domain::stock::StockItemV1>("stock item v1", 1, body)?),
            version => return Err(CodecError::UnknownSchema { what: "stock item".into(), version }),
        };
        if item.sku() != key {
            return Err(CodecError::Malformed {
                what: "stock item",
                reason: format!("stored under {key} but names {}", item.sku()),
            });
        }
        Ok(item)
    }

    fn status(state: &StockItem) -> String {
        state.status().to_owned()
    }

    fn on_command(_key: &Sku, state: &StockItem, cmd: StockCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        match state.handle(&cmd, ctx) {
            Err(e) => CommandOutcome::Unchanged(Err(e)),
            Ok((_, evs)) if evs.is_empty() => CommandOutcome::Unchanged(Ok(StockItemView::of(state))),
            Ok((next, evs)) => match item_events(&evs) {
                Ok(emits) => CommandOutcome::Changed {
                    reply: Ok(StockItemView::of(&next)),
                    change: Change::to(next).emit_all(emits),
                },
                Err(e) => CommandOutcome::Unchanged(Err(DomainError::Invalid {
                    field: "event".into(),
                    reason: e.to_string(),
                })),
            },
        }
    }

    fn on_event(key: &Sku, state: &StockItem, env: &Envelope, ctx: &Ctx) -> Result<EventOutcome<Self>, DeliveryError> {
        if env.topic != Topic::StockReserve {
            return Err(DeliveryError::permanent(format!("stock items take no {} events", env.topic.name())));
        }
        let r: ReserveRequest =
            events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
        if &r.sku != key {
            return Err(DeliveryError::permanent(format!("request for {} routed to {key}", r.sku)));
        }
        let cmd = match r.op {
            ReserveOp::Book => StockCommand::Book { order: r.order_id.clone(), qty: r.qty },
            ReserveOp::Release => {
                StockCommand::Release { order: r.order_id.clone(), qty: r.qty, reason: ReleaseReason::OrderCancelled }
            }
            ReserveOp::ReleaseFailed => {
                StockCommand::Release { order: r.order_id.clone(), qty: r.qty, reason: ReleaseReason::BookingFailed }
            }
            ReserveOp::Ship => StockCommand::Ship { order: r.order_id.clone(), qty: r.qty },
        };
        let booking = r.op == ReserveOp::Book;
        let outcome = match state.handle(&cmd, ctx) {
            Ok((next, evs)) => {
                let mut emits = item_events(&evs).map_err(DeliveryError::permanent)?;
                if booking {
                    emits.push(
                        line_answer(&r.order_id, key, LineResult::Booked { dims: next.dims() })
                            .map_err(DeliveryError::permanent)?,
                    );
                }
                EventOutcome::Changed(Change::to(next).emit_all(emits))
            }
            Err(e) if booking => {
                EventOutcome::Emit(vec![line_answer(&r.order_id, key, LineResult::Refused { reason: e.to_string() })
                    .map_err(DeliveryError::permanent)?])
            }
            // Shipping or releasing more than is booked: a bug upstream; refuse it loudly.
            Err(e) => return Err(DeliveryError::permanent(format!("{:?} of {} for {}: {e}", r.op, r.qty, r.order_id))),
        };
        Ok(outcome)
    }
}

/// Reading a booking.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BookingQuery {
    /// The booking as it stands.
    Get,
}

/// The stock booking entity kind (one per order).
#[derive(Debug)]
pub struct StockBookingKind;

/// Order statuses the booking acts on.
const BOOKING_ORDER_STATUSES: Statuses = Statuses::Order(&[OrderStatus::BookingPending, OrderStatus::Cancelled]);
/// Shipment statuses the booking acts on.
const SHIPMENT_STEPS: Statuses =
    Statuses::Shipment(&[ShipmentStatus::Assembled, ShipmentStatus::Shipped, ShipmentStatus::Delivered]);

fn booking_change(next: StockBooking, fx: BookingEffects) -> Result<EventOutcome<StockBookingKind>, DeliveryError> {
    let mut emits = Vec::with_capacity(fx.requests.len() + 1);
    for r in &fx.requests {
        emits.push(Emit::new(
            Topic::StockReserve,
            r.sku.to_string(),
            events::encode(r).map_err(DeliveryError::permanent)?,
        ));
    }
    if let Some(e) = &fx.event {
        emits.push(Emit::new(
            Topic::StockBooking,
            next.order_id.to_string(),
            events::encode(e).map_err(DeliveryError::permanent)?,
        ));
    }
    Ok(EventOutcome::Changed(Change::to(next).emit_all(emits)))
}

impl EntityKind for StockBookingKind {
    const SERVICE: &'static str = "stock";
    const AGGREGATE: &'static str = "booking";
    type Key = OrderId;
    type State = StockBooking;
    type Command = BookingQuery;
    type Reply = StockBooking;

    fn topics() -> &'static [Topic] {
        &[Topic::OrderEvent, Topic::StockLine, Topic::ShippingEvent]
    }

    fn status_filter(topic: Topic) -> Option<Statuses> {
        match topic {
            Topic::OrderEvent => Some(BOOKING_ORDER_STATUSES),
            Topic::ShippingEvent => Some(SHIPMENT_STEPS),
            _ => None,
        }
    }

    fn parse_key(s: &str) -> Result<OrderId, String> {
        crate::actors::order_key(s)
    }

    fn initial(key: &OrderId) -> StockBooking {
        StockBooking::new(key.clone())
    }

    fn encode_state(state: &StockBooking) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("stock booking", state)
    }

    fn decode_state(_key: &OrderId, schema: u16, body: &[u8]) -> Result<StockBooking, CodecError> {
        from_state_v1("stock booking", schema, body)
    }

    fn status(state: &StockBooking) -> String {
        state.status.map_or("NONE", |s| s.name()).to_owned()
    }

    fn on_command(_key: &OrderId, state: &StockBooking, cmd: BookingQuery, _ctx: &Ctx) -> CommandOutcome<Self> {
        match cmd {
            BookingQuery::Get => CommandOutcome::Unchanged(state.clone()),
        }
    }

    fn on_event(
        _key: &OrderId,
        state: &StockBooking,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        let step = match env.topic {
            Topic::OrderEvent => {
                let e: OrderEvent =
                    events::decode_order_event(env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
                state.on_order_event(&e, env.aggregate_version)
            }
            Topic::StockLine => {
                let o: LineOutcome =
                    events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
                state.on_line(&o)
            }
            Topic::ShippingEvent => {
                let e: ShippingEvent =
                    events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
                state.on_shipment(e.status)
            }
            t => return Err(DeliveryError::permanent(format!("bookings take no {} events", t.name()))),
        };
        match step {
            Some((next, fx)) => booking_change(next, fx),
            None => Ok(EventOutcome::Ignored),
        }
    }
}

/// Decodes a `stock.booking` payload (for other services).
pub fn decode_stock_event(env: &Envelope) -> Result<StockEvent, DeliveryError> {
    events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)
}

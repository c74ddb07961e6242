//! The commerce order service: the customer gate (one per customer: it creates orders and
//! holds the "one unpaid order" rule), the order itself (one per order: the saga's central
//! aggregate, with its deadline timer), and the service's own price list (a projection of the
//! catalogue's products, so pricing never reads another service's trees).

use serde::{Deserialize, Serialize};

use super::kind::{Change, CommandOutcome, Create, Emit, EntityKind, EventOutcome, Origin, Statuses, Timer, TimerOp};
use super::{from_state_v1, state_v1};
use crate::domain::catalogue::Product;
use crate::domain::gate::CustomerOrders;
use crate::domain::order::{Canceller, CommerceOrder, Deadlines, Source, Transition};
use crate::domain::pricing::Priced;
use crate::domain::promo::{HoldCheck, PromoUse};
use crate::domain::saga::{OrderEvent, PayEvent, ShippingEvent, StockEvent};
use crate::domain::saga::{OrderStatus, ShipmentStatus, StockStatus};
use crate::domain::{Ctx, CustomerId, DomainError, Money, OrderId, Sku};
use crate::persistence::codec::CodecError;
use crate::persistence::events::{self, Topic};
use crate::persistence::{DeliveryError, Envelope};

/// The timer tag of an order's saga deadline.
pub const DEADLINE_TAG: &str = "deadline";

/// What can be asked of a customer gate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GateCommand {
    /// Place an order priced by the order service.
    Place {
        /// The priced lines.
        priced: Priced,
        /// The customer's partition (carried in the order id).
        partition: u32,
        /// The saga deadlines.
        deadlines: Deadlines,
        /// The order number the promo code's hold was taken for (with a promo code only).
        hold: Option<u64>,
    },
    /// Read the gate.
    Get,
}

/// What a gate answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GateReply {
    /// The order just placed.
    Placed(CommerceOrder),
    /// The gate's state.
    State(CustomerOrders),
}

/// The customer gate entity kind.
#[derive(Debug)]
pub struct GateKind;

/// Order statuses that settle a gate's unpaid order.
const SETTLED: Statuses = Statuses::Order(&[OrderStatus::Paid, OrderStatus::Cancelled]);

impl EntityKind for GateKind {
    const SERVICE: &'static str = "order";
    const AGGREGATE: &'static str = "customer";
    type Key = CustomerId;
    type State = CustomerOrders;
    type Command = GateCommand;
    type Reply = Result<GateReply, DomainError>;

    fn topics() -> &'static [Topic] {
        &[Topic::OrderEvent, Topic::PromoHold]
    }

    fn status_filter(topic: Topic) -> Option<Statuses> {
        (topic == Topic::OrderEvent).then_some(SETTLED)
    }

    fn parse_key(s: &str) -> Result<CustomerId, String> {
        crate::actors::customer_key(s)
    }

    fn event_key(env: &Envelope) -> Result<CustomerId, String> {
        match env.topic {
            Topic::OrderEvent => crate::actors::order_event_customer(env),
            _ => Self::parse_key(&env.routing_key),
        }
    }

    fn initial(key: &CustomerId) -> CustomerOrders {
        CustomerOrders::new(key.clone())
    }

    fn encode_state(state: &CustomerOrders) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("customer gate", state)
    }

    fn decode_state(_key: &CustomerId, schema: u16, body: &[u8]) -> Result<CustomerOrders, CodecError> {
        from_state_v1("customer gate", schema, body)
    }

    fn status(state: &CustomerOrders) -> String {
        if state.unpaid.is_some() { "UNPAID_ORDER" } else { "FREE" }.into()
    }

    fn on_command(_key: &CustomerId, state: &CustomerOrders, cmd: GateCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        let (priced, partition, deadlines, hold) = match cmd {
            GateCommand::Get => return CommandOutcome::Unchanged(Ok(GateReply::State(state.clone()))),
            GateCommand::Place { priced, partition, deadlines, hold } => (priced, partition, deadlines, hold),
        };
        let (next, order, event) = match state.place(&priced, partition, deadlines, hold, ctx, ctx.cause) {
            Ok(r) => r,
            Err(e) => return CommandOutcome::Unchanged(Err(e)),
        };
        let built = OrderKind::encode_state(&Some(order.clone())).and_then(|(schema, body)| {
            let payload = events::encode(&event)?;
            Ok((schema, body, payload))
        });
        let (schema, body, payload) = match built {
            Ok(b) => b,
            Err(e) => {
                return CommandOutcome::Unchanged(Err(DomainError::Invalid {
                    field: "order".into(),
                    reason: e.to_string(),
                }))
            }
        };
        let timers =
            order.deadline_ms.map(|due| TimerOp::Set { tag: DEADLINE_TAG.into(), due_ms: due }).into_iter().collect();
        let id = order.id.to_string();
        let mut extra = Vec::new();
        if let Some(token) = &order.promo_code {
            // The hold becomes a use: this event is once per order, in the order's write set.
            match events::encode(&PromoUse::Taken { order: order.id.clone(), cause: Some(ctx.cause) }) {
                Ok(p) => extra.push(Emit {
                    topic: Topic::PromoUsed,
                    routing_key: token.clone(),
                    payload: p,
                    from: Some(Origin { aggregate_id: id.clone(), version: 1, status: order.status.name().into() }),
                }),
                Err(e) => {
                    return CommandOutcome::Unchanged(Err(DomainError::Invalid {
                        field: "order".into(),
                        reason: e.to_string(),
                    }))
                }
            }
        }
        let change = Change::to(next)
            .create(Create { aggregate: OrderKind::AGGREGATE, key: id.clone(), schema, body, timers })
            .emit(Emit {
                topic: Topic::OrderEvent,
                routing_key: id.clone(),
                payload,
                from: Some(Origin { aggregate_id: id, version: 1, status: order.status.name().into() }),
            })
            .emit_all(extra);
        CommandOutcome::Changed { change, reply: Ok(GateReply::Placed(order)) }
    }

    fn on_event(
        _key: &CustomerId,
        state: &CustomerOrders,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        match env.topic {
            Topic::OrderEvent => {
                let e =
                    events::decode_order_event(env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
                Ok(match state.on_order_event(&e) {
                    Some(next) => EventOutcome::Changed(Change::to(next)),
                    None => EventOutcome::Ignored,
                })
            }
            Topic::PromoHold => {
                let q: HoldCheck =
                    events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
                if q.customer != state.customer_id {
                    return Err(DeliveryError::permanent(format!(
                        "a hold check for {} reached {}",
                        q.customer, state.customer_id
                    )));
                }
                // Answered on the code's lane after any `Taken` of the same order.
                let answer = events::encode(&PromoUse::Settled { order: q.order }).map_err(DeliveryError::permanent)?;
                let emit = Emit::new(Topic::PromoUsed, q.token, answer);
                Ok(match state.on_hold_check(q.number) {
                    Some(next) => EventOutcome::Changed(Change::to(next).emit(emit)),
                    None => EventOutcome::Emit(vec![emit]),
                })
            }
            t => Err(DeliveryError::permanent(format!("gates take no {} events", t.name()))),
        }
    }
}

/// What can be asked of an order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OrderCommand {
    /// Read it.
    Get,
    /// Cancel it.
    Cancel(Canceller),
}

/// The order entity kind. Its state is `None` until its gate created it.
#[derive(Debug)]
pub struct OrderKind;

const ORDER_STOCK_STATUSES: Statuses = Statuses::Stock(&[StockStatus::Booked, StockStatus::Error]);
const ORDER_SHIPMENT_STEPS: Statuses =
    Statuses::Shipment(&[ShipmentStatus::Assembled, ShipmentStatus::Shipped, ShipmentStatus::Delivered]);

fn transition_change(t: Transition) -> Result<Change<Option<CommerceOrder>>, CodecError> {
    let mut change_timers = Vec::new();
    if let Some(due) = t.deadline.clear {
        change_timers.push(TimerOp::Clear { tag: DEADLINE_TAG.into(), due_ms: due });
    }
    if let Some(due) = t.deadline.set {
        change_timers.push(TimerOp::Set { tag: DEADLINE_TAG.into(), due_ms: due });
    }
    let mut emits = Vec::new();
    if let Some(e) = &t.event {
        emits.push(Emit::new(Topic::OrderEvent, t.next.id.to_string(), events::encode(e)?));
        if let (OrderStatus::Cancelled, Some(token)) = (e.status, &t.next.promo_code) {
            // A cancelled order gives its promo code's use back (once: it is cancelled once).
            let given_back = events::encode(&PromoUse::Released { order: t.next.id.clone() })?;
            emits.push(Emit::new(Topic::PromoUsed, token.clone(), given_back));
        }
    }
    let mut change = Change::to(Some(t.next)).emit_all(emits);
    change.timers = change_timers;
    Ok(change)
}

fn not_found(key: &OrderId) -> DomainError {
    DomainError::NotFound { what: "order".into(), id: key.to_string() }
}

impl EntityKind for OrderKind {
    const SERVICE: &'static str = "order";
    const AGGREGATE: &'static str = "order";
    const USES_TIMERS: bool = true;
    type Key = OrderId;
    type State = Option<CommerceOrder>;
    type Command = OrderCommand;
    type Reply = Result<CommerceOrder, DomainError>;

    fn topics() -> &'static [Topic] {
        &[Topic::StockBooking, Topic::PayEvent, Topic::ShippingEvent]
    }

    fn status_filter(topic: Topic) -> Option<Statuses> {
        match topic {
            Topic::StockBooking => Some(ORDER_STOCK_STATUSES),
            Topic::ShippingEvent => Some(ORDER_SHIPMENT_STEPS),
            _ => None,
        }
    }

    fn parse_key(s: &str) -> Result<OrderId, String> {
        crate::actors::order_key(s)
    }

    fn initial(_key: &OrderId) -> Option<CommerceOrder> {
        None
    }

    fn encode_state(state: &Option<CommerceOrder>) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("order", state)
    }

    fn decode_state(_key: &OrderId, schema: u16, body: &[u8]) -> Result<Option<CommerceOrder>, CodecError> {
        from_state_v1("order", schema, body)
    }

    fn status(state: &Option<CommerceOrder>) -> String {
        state.as_ref().map_or("NONE", |o| o.status.name()).to_owned()
    }

    fn on_command(key: &OrderId, state: &Option<CommerceOrder>, cmd: OrderCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        let Some(order) = state else { return CommandOutcome::Unchanged(Err(not_found(key))) };
        match cmd {
            OrderCommand::Get => CommandOutcome::Unchanged(Ok(order.clone())),
            OrderCommand::Cancel(by) => match order.cancel(&by, ctx, ctx.cause) {
                Err(e) => CommandOutcome::Unchanged(Err(e)),
                Ok(t) => {
                    let reply = t.next.clone();
                    match transition_change(t) {
                        Ok(change) => CommandOutcome::Changed { change, reply: Ok(reply) },
                        Err(e) => CommandOutcome::Unchanged(Err(DomainError::Invalid {
                            field: "order".into(),
                            reason: e.to_string(),
                        })),
                    }
                }
            },
        }
    }

    fn on_timer(_key: &OrderId, state: &Option<CommerceOrder>, timer: &Timer, ctx: &Ctx) -> EventOutcome<Self> {
        let Some(order) = state else { return EventOutcome::Ignored };
        if timer.tag != DEADLINE_TAG {
            return EventOutcome::Ignored;
        }
        match order.on_deadline(timer.due_ms, ctx, ctx.cause).map(transition_change) {
            Some(Ok(change)) => EventOutcome::Changed(change),
            _ => EventOutcome::Ignored,
        }
    }

    fn on_event(
        _key: &OrderId,
        state: &Option<CommerceOrder>,
        env: &Envelope,
        ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        let Some(order) = state else { return Ok(EventOutcome::Ignored) };
        let src =
            Source { version: env.aggregate_version, node: env.origin_node.to_string(), message_id: env.message_id };
        let t = match env.topic {
            Topic::StockBooking => {
                let e: StockEvent =
                    events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
                order.on_stock(&e, &src, ctx)
            }
            Topic::PayEvent => {
                let e: PayEvent =
                    events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
                order.on_payment(&e, &src, ctx)
            }
            Topic::ShippingEvent => {
                let e: ShippingEvent =
                    events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
                order.on_shipping(&e, &src, ctx)
            }
            t => return Err(DeliveryError::permanent(format!("orders take no {} events", t.name()))),
        };
        transition_change(t).map(EventOutcome::Changed).map_err(DeliveryError::permanent)
    }
}

/// The order service's price of one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceEntry {
    /// The product's name.
    pub name: String,
    /// Its price.
    pub price: Money,
    /// The product version it came from.
    pub version: u64,
}

/// Reading a price.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PriceQuery {
    /// The price, if the product is known.
    Get,
}

/// The order service's price list entry kind (a projection of `catalogue.product`).
#[derive(Debug)]
pub struct PriceKind;

impl EntityKind for PriceKind {
    const SERVICE: &'static str = "order";
    const AGGREGATE: &'static str = "price";
    type Key = Sku;
    type State = Option<PriceEntry>;
    type Command = PriceQuery;
    type Reply = Option<PriceEntry>;

    fn topics() -> &'static [Topic] {
        &[Topic::ProductEvent]
    }

    fn parse_key(s: &str) -> Result<Sku, String> {
        crate::actors::sku_key(s)
    }

    fn initial(_key: &Sku) -> Option<PriceEntry> {
        None
    }

    fn encode_state(state: &Option<PriceEntry>) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("price", state)
    }

    fn decode_state(_key: &Sku, schema: u16, body: &[u8]) -> Result<Option<PriceEntry>, CodecError> {
        from_state_v1("price", schema, body)
    }

    fn status(state: &Option<PriceEntry>) -> String {
        if state.is_some() { "PRICED" } else { "UNKNOWN" }.into()
    }

    fn on_command(_key: &Sku, state: &Option<PriceEntry>, _cmd: PriceQuery, _ctx: &Ctx) -> CommandOutcome<Self> {
        CommandOutcome::Unchanged(state.clone())
    }

    fn on_event(
        key: &Sku,
        state: &Option<PriceEntry>,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        if env.topic != Topic::ProductEvent {
            return Err(DeliveryError::permanent(format!("prices take no {} events", env.topic.name())));
        }
        let p: Product =
            events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
        if &p.id != key {
            return Err(DeliveryError::permanent(format!("product {} routed to {key}", p.id)));
        }
        if state.as_ref().is_some_and(|s| s.version >= env.aggregate_version) {
            return Ok(EventOutcome::Ignored);
        }
        Ok(EventOutcome::Changed(Change::to(Some(PriceEntry {
            name: p.name,
            price: p.price,
            version: env.aggregate_version,
        }))))
    }
}

/// Decodes an order event's payload (for other services).
pub fn decode_order_event(env: &Envelope) -> Result<OrderEvent, DeliveryError> {
    events::decode_order_event(env.schema_version, &env.payload).map_err(DeliveryError::permanent)
}

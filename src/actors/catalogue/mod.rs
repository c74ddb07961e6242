//! The product catalogue service: one product entity per book, and the catalogue's projection of
//! stock levels (one per SKU) that follows `stock.item` events, so the catalogue shows free
//! quantities without reading the stock service's trees (database per service, eventual
//! consistency).
//!
//! The projection is commutative: an event applies only if it is newer (by the stock item's
//! version) than the last one applied, so duplicates, reordering and redelivery leave the
//! newest counts.

use serde::{Deserialize, Serialize};

pub mod view;

use super::kind::{Change, CommandOutcome, Emit, EntityKind, EventOutcome};
use super::{from_state_v1, state_v1};
use crate::domain::catalogue::Product;
use crate::domain::stock::StockLevels;
use crate::domain::{Ctx, Currency, DomainError, Money, Sku};
use crate::persistence::codec::CodecError;
use crate::persistence::events::{self, Topic};
use crate::persistence::{DeliveryError, Envelope};

/// The catalogue's view of one item's stock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockProjection {
    /// The stock item version the counts come from (0: nothing seen yet).
    pub stock_version: u64,
    /// The counts at that version.
    pub levels: StockLevels,
    /// Events applied (stale ones excluded).
    pub applied: u64,
}

/// Reading the projection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProjectionQuery {
    /// The current view.
    Get,
}

/// The stock projection entity kind.
#[derive(Debug)]
pub struct StockProjectionKind;

impl EntityKind for StockProjectionKind {
    const SERVICE: &'static str = "catalogue";
    const AGGREGATE: &'static str = "stock_levels";
    const REPLICATED: bool = true;
    type Key = Sku;
    type State = StockProjection;
    type Command = ProjectionQuery;
    type Reply = StockProjection;

    fn topics() -> &'static [Topic] {
        &[Topic::StockItem]
    }

    fn parse_key(s: &str) -> Result<Sku, String> {
        crate::actors::sku_key(s)
    }

    fn initial(_key: &Sku) -> StockProjection {
        StockProjection::default()
    }

    fn encode_state(state: &StockProjection) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("stock projection", state)
    }

    fn decode_state(_key: &Sku, schema: u16, body: &[u8]) -> Result<StockProjection, CodecError> {
        from_state_v1("stock projection", schema, body)
    }

    fn status(_state: &StockProjection) -> String {
        "PROJECTED".into()
    }

    fn on_command(_key: &Sku, state: &StockProjection, cmd: ProjectionQuery, _ctx: &Ctx) -> CommandOutcome<Self> {
        match cmd {
            ProjectionQuery::Get => CommandOutcome::Unchanged(state.clone()),
        }
    }

    fn on_event(
        key: &Sku,
        state: &StockProjection,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        if env.topic != Topic::StockItem {
            return Err(DeliveryError::Permanent(format!("stock projections take no {} events", env.topic.name())));
        }
        let event = events::decode_stock_item(env.schema_version, &env.payload)
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        if &event.sku != key {
            return Err(DeliveryError::Permanent(format!("event for {} routed to {key}", event.sku)));
        }
        if env.aggregate_version <= state.stock_version {
            return Ok(EventOutcome::Ignored);
        }
        let next =
            StockProjection { stock_version: env.aggregate_version, levels: event.levels, applied: state.applied + 1 };
        Ok(EventOutcome::Changed(Change::to(next)))
    }
}

/// Every node's copy of every product (a replicated read model the catalogue view is rebuilt
/// from at start, so every node lists the whole catalogue). The newest version wins.
#[derive(Debug)]
pub struct ProductCopyKind;

impl EntityKind for ProductCopyKind {
    const SERVICE: &'static str = "catalogue";
    const AGGREGATE: &'static str = "product_copy";
    const REPLICATED: bool = true;
    type Key = Sku;
    type State = Option<(u64, Product)>;
    type Command = ProjectionQuery;
    type Reply = Option<Product>;

    fn topics() -> &'static [Topic] {
        &[Topic::ProductEvent]
    }

    fn parse_key(s: &str) -> Result<Sku, String> {
        crate::actors::sku_key(s)
    }

    fn initial(_key: &Sku) -> Self::State {
        None
    }

    fn encode_state(state: &Self::State) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("product copy", state)
    }

    fn decode_state(_key: &Sku, schema: u16, body: &[u8]) -> Result<Self::State, CodecError> {
        from_state_v1("product copy", schema, body)
    }

    fn status(_state: &Self::State) -> String {
        "PROJECTED".into()
    }

    fn on_command(_key: &Sku, state: &Self::State, _cmd: ProjectionQuery, _ctx: &Ctx) -> CommandOutcome<Self> {
        CommandOutcome::Unchanged(state.as_ref().map(|(_, p)| p.clone()))
    }

    fn on_event(
        key: &Sku,
        state: &Self::State,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        let p: Product =
            events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
        if &p.id != key {
            return Err(DeliveryError::permanent(format!("product {} routed to {key}", p.id)));
        }
        if state.as_ref().is_some_and(|(v, _)| *v >= env.aggregate_version) {
            return Ok(EventOutcome::Ignored);
        }
        Ok(EventOutcome::Changed(Change::to(Some((env.aggregate_version, p)))))
    }
}

/// What can be asked of a product.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProductCommand {
    /// Add the product.
    Add {
        /// Title.
        name: String,
        /// Description.
        description: String,
        /// Price.
        price: Money,
        /// Photo URL.
        photo: Option<String>,
    },
    /// Read it.
    Get,
}

/// The product entity kind.
#[derive(Debug)]
pub struct ProductKind;

impl EntityKind for ProductKind {
    const SERVICE: &'static str = "catalogue";
    const AGGREGATE: &'static str = "product";
    type Key = Sku;
    type State = Product;
    type Command = ProductCommand;
    type Reply = Result<Product, DomainError>;

    fn topics() -> &'static [Topic] {
        &[]
    }

    fn parse_key(s: &str) -> Result<Sku, String> {
        crate::actors::sku_key(s)
    }

    fn initial(key: &Sku) -> Product {
        Product::absent(key.clone(), Money::zero(Currency::EUR))
    }

    fn encode_state(state: &Product) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("product", state)
    }

    fn decode_state(_key: &Sku, schema: u16, body: &[u8]) -> Result<Product, CodecError> {
        from_state_v1("product", schema, body)
    }

    fn status(state: &Product) -> String {
        if state.exists() { "LISTED" } else { "ABSENT" }.into()
    }

    fn on_command(key: &Sku, state: &Product, cmd: ProductCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        match cmd {
            ProductCommand::Get if state.exists() => CommandOutcome::Unchanged(Ok(state.clone())),
            ProductCommand::Get => {
                CommandOutcome::Unchanged(Err(DomainError::NotFound { what: "product".into(), id: key.to_string() }))
            }
            ProductCommand::Add { name, description, price, photo } => {
                match state.add(&name, &description, price, photo, ctx) {
                    Err(e) => CommandOutcome::Unchanged(Err(e)),
                    Ok(p) => match events::encode(&p) {
                        Ok(payload) => CommandOutcome::Changed {
                            reply: Ok(p.clone()),
                            change: Change::to(p).emit(Emit::new(Topic::ProductEvent, key.to_string(), payload)),
                        },
                        Err(e) => CommandOutcome::Unchanged(Err(DomainError::Invalid {
                            field: "product".into(),
                            reason: e.to_string(),
                        })),
                    },
                }
            }
        }
    }

    fn on_event(_key: &Sku, _state: &Product, env: &Envelope, _ctx: &Ctx) -> Result<EventOutcome<Self>, DeliveryError> {
        Err(DeliveryError::Permanent(format!("products take no {} events", env.topic.name())))
    }
}

//! The catalogue service's projection of stock levels: one entity per SKU that follows
//! `stock.item` events, so the catalogue can show free quantities without reading the stock
//! service's trees (database per service, eventual consistency).
//!
//! Commutative: an event applies only if it is newer (by the stock item's version) than the
//! last one applied, so duplicates, reordering and redelivery leave the newest counts.

use serde::{Deserialize, Serialize};

use super::entity::EntityKind;
use super::plan::{Change, CommandOutcome, EventOutcome};
use crate::domain::stock::StockLevels;
use crate::domain::{Ctx, Sku};
use crate::limits::AGGREGATE_BYTES_MAX;
use crate::persistence::codec::{self, CodecError};
use crate::persistence::events::{self, Topic};
use crate::persistence::{DeliveryError, Envelope};

const STATE_SCHEMA: u16 = 1;

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    type Key = Sku;
    type State = StockProjection;
    type Command = ProjectionQuery;
    type Reply = StockProjection;

    fn topics() -> &'static [Topic] {
        &[Topic::StockItem]
    }

    fn parse_key(s: &str) -> Result<Sku, String> {
        Sku::parse(s).map_err(|e| e.to_string())
    }

    fn initial(_key: &Sku) -> StockProjection {
        StockProjection::default()
    }

    fn encode_state(state: &StockProjection) -> Result<(u16, Vec<u8>), CodecError> {
        Ok((STATE_SCHEMA, codec::to_body("stock projection", state, AGGREGATE_BYTES_MAX)?))
    }

    fn decode_state(_key: &Sku, schema: u16, body: &[u8]) -> Result<StockProjection, CodecError> {
        if schema != STATE_SCHEMA {
            return Err(CodecError::UnknownSchema { what: "stock projection".into(), version: schema });
        }
        codec::from_body("stock projection", body)
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
        match env.topic {
            Topic::StockItem => {
                let event = events::decode_stock_item(env.schema_version, &env.payload)
                    .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
                if &event.sku != key {
                    return Err(DeliveryError::Permanent(format!("event for {} routed to {key}", event.sku)));
                }
                if env.aggregate_version <= state.stock_version {
                    return Ok(EventOutcome::Ignored);
                }
                let next = StockProjection {
                    stock_version: env.aggregate_version,
                    levels: event.levels,
                    applied: state.applied + 1,
                };
                Ok(EventOutcome::Changed(Change::to(next)))
            }
        }
    }
}

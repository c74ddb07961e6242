//! The stock service's stock item entity: one actor per SKU, wrapping `domain::stock`.
//! It publishes every change on `stock.item`, keyed by SKU.

use serde::{Deserialize, Serialize};

use super::entity::EntityKind;
use super::plan::{Change, CommandOutcome, Emit, EventOutcome};
use crate::domain::stock::{Dimensions, StockCommand, StockItem, StockLevels};
use crate::domain::{Ctx, DomainError, Sku};
use crate::limits::AGGREGATE_BYTES_MAX;
use crate::persistence::codec::{self, CodecError};
use crate::persistence::events::{self, Topic};
use crate::persistence::{DeliveryError, Envelope};

/// Schema of stored stock items.
const STATE_SCHEMA: u16 = 1;

/// What a stock item command answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockItemView {
    /// The item.
    pub sku: Sku,
    /// Its counts.
    pub levels: StockLevels,
    /// Size and weight of one unit.
    pub dims: Option<Dimensions>,
    /// Open bookings.
    pub open_bookings: usize,
}

impl StockItemView {
    fn of(item: &StockItem) -> Self {
        Self {
            sku: item.sku().clone(),
            levels: item.levels(),
            dims: item.dims(),
            open_bookings: item.bookings().count(),
        }
    }
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
        &[]
    }

    fn parse_key(s: &str) -> Result<Sku, String> {
        Sku::parse(s).map_err(|e| e.to_string())
    }

    fn initial(key: &Sku) -> StockItem {
        StockItem::new(key.clone())
    }

    fn encode_state(state: &StockItem) -> Result<(u16, Vec<u8>), CodecError> {
        Ok((STATE_SCHEMA, codec::to_body("stock item", state, AGGREGATE_BYTES_MAX)?))
    }

    fn decode_state(key: &Sku, schema: u16, body: &[u8]) -> Result<StockItem, CodecError> {
        if schema != STATE_SCHEMA {
            return Err(CodecError::UnknownSchema { what: "stock item".into(), version: schema });
        }
        let item: StockItem = codec::from_body("stock item", body)?;
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
            Ok((next, evs)) => {
                let mut emits = Vec::with_capacity(evs.len());
                for e in &evs {
                    match events::encode_stock_item(e) {
                        Ok(payload) => {
                            emits.push(Emit::new(Topic::StockItem, e.sku.to_string(), payload))
                        }
                        Err(err) => {
                            return CommandOutcome::Unchanged(Err(DomainError::Invalid {
                                field: "event".into(),
                                reason: err.to_string(),
                            }))
                        }
                    }
                }
                CommandOutcome::Changed { reply: Ok(StockItemView::of(&next)), change: Change::to(next).emit_all(emits) }
            }
        }
    }

    fn on_event(
        _key: &Sku,
        _state: &StockItem,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        Err(DeliveryError::Permanent(format!("stock items take no {} events", env.topic.name())))
    }
}

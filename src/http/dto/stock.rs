//! The JSON shapes of stock items.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /stock/freeItems/{id}` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreeItemsOut {
    /// The item.
    pub id: String,
    /// Free units.
    pub free_quantity: u32,
    /// Booked units.
    pub booked_quantity: u32,
}

/// `POST /stock/items` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockIn {
    /// The item (product id).
    pub id: String,
    /// Units received (> 0).
    #[schema(minimum = 1)]
    pub quantity: u32,
    /// Grams per unit.
    pub weight: u32,
    /// Millimetres.
    pub length: u32,
    /// Millimetres.
    pub width: u32,
    /// Millimetres.
    pub height: u32,
}

/// A stock item.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemOut {
    /// The item.
    pub id: String,
    /// Units received, ever.
    pub quantity: u32,
    /// Units free.
    pub free_quantity: u32,
    /// Grams per unit.
    pub weight: u32,
    /// Millimetres.
    pub length: u32,
    /// Millimetres.
    pub width: u32,
    /// Millimetres.
    pub height: u32,
}

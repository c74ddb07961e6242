//! The JSON shapes of shipments.

use crate::domain::shipping::Shipment;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A shipment line.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ShipItemOut {
    /// The product.
    pub id: String,
    /// Its name.
    pub name: String,
    /// How many.
    pub quantity: u32,
}

/// A shipment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShippingOut {
    /// The order id.
    pub id: String,
    /// The order id.
    pub order_id: String,
    /// PENDING, ASSEMBLED, SHIPPED or DELIVERED; CANCELLED when its order was cancelled before
    /// it left.
    pub status: String,
    /// Its lines.
    pub order_item_list: Vec<ShipItemOut>,
    /// Grams.
    pub weight: u64,
    /// Millimetres.
    pub length: u32,
    /// Millimetres.
    pub width: u32,
    /// Millimetres.
    pub height: u64,
}

impl From<&Shipment> for ShippingOut {
    fn from(s: &Shipment) -> Self {
        Self {
            id: s.order_id.to_string(),
            order_id: s.order_id.to_string(),
            status: s.status_name().into(),
            order_item_list: s
                .items
                .iter()
                .map(|i| ShipItemOut { id: i.id.to_string(), name: i.name.clone(), quantity: i.quantity.get() })
                .collect(),
            weight: s.weight_g,
            length: s.length_mm,
            width: s.width_mm,
            height: s.height_mm,
        }
    }
}

/// `POST /shipping/{id}/status` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingStatusIn {
    /// ASSEMBLED, SHIPPED or DELIVERED.
    #[schema(pattern = "^(ASSEMBLED|SHIPPED|DELIVERED)$")]
    pub status: String,
}

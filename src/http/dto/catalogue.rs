//! The JSON shapes of products and catalogue pages.

use crate::actors::catalogue::view::ProductView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A promotion shown with a product.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PromotionOut {
    /// The code.
    pub token: String,
    /// What it is.
    pub description: String,
}

/// A product.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductOut {
    /// Its id.
    pub id: String,
    /// Title.
    #[schema(min_length = 1, max_length = 500)]
    pub name: String,
    /// Description.
    pub description: String,
    /// Price, minor units.
    pub price: i64,
    /// Photo URL.
    pub photo: Option<String>,
    /// Units free to order (the stock service's projection; eventually consistent).
    pub free_quantity: u32,
    /// Promotions that apply now.
    pub promotions: Vec<PromotionOut>,
}

impl From<&ProductView> for ProductOut {
    fn from(v: &ProductView) -> Self {
        Self {
            id: v.product.id.to_string(),
            name: v.product.name.clone(),
            description: v.product.description.clone(),
            price: v.product.price.minor(),
            photo: v.product.photo.clone(),
            free_quantity: v.free,
            promotions: v
                .promotions
                .iter()
                .map(|(t, d)| PromotionOut { token: t.clone(), description: d.clone() })
                .collect(),
        }
    }
}

/// `GET /products` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProductPage {
    /// The page.
    pub items: Vec<ProductOut>,
    /// Matches in all.
    pub total: usize,
    /// Page number (from 0).
    pub page: usize,
    /// Page size.
    pub size: usize,
}

/// `POST /product/add` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductIn {
    /// The id to use (default: made from the name).
    pub id: Option<String>,
    /// Title.
    pub name: String,
    /// Description.
    pub description: String,
    /// Price, minor units (≥ 0).
    #[schema(minimum = 0)]
    pub price: i64,
    /// Photo URL.
    pub photo: Option<String>,
}

//! The product catalogue's product (the seed's `Product{id, photo, description, price}` plus a
//! name): books, added by an administrator.

use serde::{Deserialize, Serialize};

use super::{Ctx, DomainError, Money, Sku};
use crate::limits::TEXT_BYTES_MAX;

/// A product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Its id (also its stock item's SKU).
    pub id: Sku,
    /// Its title.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its price.
    pub price: Money,
    /// A photo URL.
    pub photo: Option<String>,
    /// Added, ms (0: not added yet).
    pub created_at_ms: u64,
}

impl Product {
    /// A product not added yet.
    pub fn absent(id: Sku, price: Money) -> Self {
        Self { id, name: String::new(), description: String::new(), price, photo: None, created_at_ms: 0 }
    }

    /// Whether it exists.
    pub fn exists(&self) -> bool {
        self.created_at_ms != 0
    }

    /// Adds it; refused if it exists or a value is out of bounds.
    pub fn add(
        &self,
        name: &str,
        description: &str,
        price: Money,
        photo: Option<String>,
        ctx: &Ctx,
    ) -> Result<Product, DomainError> {
        if self.exists() {
            return Err(DomainError::AlreadyExists { what: "product".into(), id: self.id.to_string() });
        }
        let bad = |field: &str, reason: &str| Err(DomainError::Invalid { field: field.into(), reason: reason.into() });
        if name.trim().is_empty() || name.len() > 500 {
            return bad("name", "1 to 500 characters");
        }
        if description.len() > TEXT_BYTES_MAX {
            return bad("description", "too long");
        }
        if price.minor() < 0 || price.minor() > 100_000_000 {
            return bad("price", "0 to 1,000,000.00");
        }
        if photo.as_ref().is_some_and(|p| p.len() > 2_000) {
            return bad("photo", "too long");
        }
        Ok(Product {
            id: self.id.clone(),
            name: name.trim().to_owned(),
            description: description.to_owned(),
            price,
            photo,
            created_at_ms: ctx.now_ms.max(1),
        })
    }
}

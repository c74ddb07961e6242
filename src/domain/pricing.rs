//! Pricing: the one function that prices an order, with or without a promo code — used by
//! `/calcPrice` and by order creation alike (API.md: integer arithmetic in minor units).
//!
//! total = Σ unit price × quantity; a PERCENT discount is floor(eligible × percent / 100); an
//! AMOUNT discount is capped at the eligible total; fixed price = total − discount.

use serde::{Deserialize, Serialize};

use super::{Currency, DomainError, Money, Qty, Sku};
use crate::limits::{ORDER_LINES_MAX, ORDER_LINE_QTY_MAX};

/// How a promo code discounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Discount {
    /// A percentage (1..=100) of the eligible lines.
    Percent(u8),
    /// A fixed amount (minor units, > 0), capped at the eligible lines.
    Amount(i64),
}

/// The rule of a promo code (API.md's `Rule`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// The discount.
    pub discount: Discount,
    /// Only these products' lines are eligible (`None`: the whole order).
    pub product_ids: Option<Vec<Sku>>,
    /// The order total must reach this (minor units).
    pub min_total: Option<i64>,
    /// Valid from (ms since the epoch, inclusive).
    pub valid_from_ms: Option<u64>,
    /// Valid until (ms since the epoch, exclusive).
    pub valid_until_ms: Option<u64>,
    /// How many orders may use it.
    pub usage_limit: Option<u32>,
}

impl Rule {
    /// Checks the rule's own values.
    pub fn check(&self) -> Result<(), DomainError> {
        let bad = |reason: &str| Err(DomainError::Invalid { field: "rule".into(), reason: reason.into() });
        match self.discount {
            Discount::Percent(p) if !(1..=100).contains(&p) => return bad("percent must be 1..100"),
            Discount::Amount(a) if a <= 0 => return bad("amount must be positive"),
            _ => {}
        }
        if self.min_total.is_some_and(|m| m < 0) {
            return bad("minTotal must not be negative");
        }
        if let (Some(f), Some(u)) = (self.valid_from_ms, self.valid_until_ms) {
            if f >= u {
                return bad("validFrom must be before validUntil");
            }
        }
        if self.product_ids.as_ref().is_some_and(Vec::is_empty) {
            return bad("productIds, when given, must not be empty");
        }
        if self.usage_limit == Some(0) {
            return bad("usageLimit must be at least 1");
        }
        Ok(())
    }

    /// Whether the code can be used at `now_ms` after `used` orders used it.
    pub fn active(&self, now_ms: u64, used: u32) -> Result<(), String> {
        if self.valid_from_ms.is_some_and(|f| now_ms < f) {
            return Err("the code is not valid yet".into());
        }
        if self.valid_until_ms.is_some_and(|u| now_ms >= u) {
            return Err("the code has expired".into());
        }
        if self.usage_limit.is_some_and(|l| used >= l) {
            return Err("the code's usage limit is reached".into());
        }
        Ok(())
    }
}

/// A promo code as the pricing function sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promo {
    /// The code.
    pub token: String,
    /// Its rule.
    pub rule: Rule,
    /// Orders that used it so far.
    pub used_count: u32,
}

/// One line to price: a product at its catalogue price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The product.
    pub product: Sku,
    /// Its name (kept with the order).
    pub name: String,
    /// Its unit price.
    pub unit_price: Money,
    /// How many.
    pub qty: Qty,
}

/// A priced order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Priced {
    /// The lines (one per product, in first-seen order).
    pub lines: Vec<Line>,
    /// Σ unit price × quantity.
    pub total: Money,
    /// The promo code's discount.
    pub discount: Money,
    /// total − discount.
    pub fixed_price: Money,
    /// The rules applied (the code's token, if any).
    pub applied_rules: Vec<String>,
    /// The promo code used.
    pub promo_code: Option<String>,
}

/// Prices `lines` (merging repeated products) with an optional promo code at `now_ms`.
pub fn price(lines: Vec<Line>, promo: Option<&Promo>, now_ms: u64, currency: Currency) -> Result<Priced, DomainError> {
    if lines.is_empty() {
        return Err(DomainError::Invalid { field: "itemsList".into(), reason: "must not be empty".into() });
    }
    let mut merged: Vec<Line> = Vec::with_capacity(lines.len());
    for l in lines {
        Qty::positive(l.qty.get())?;
        if l.unit_price.currency() != currency {
            return Err(DomainError::Invalid {
                field: "price".into(),
                reason: "currency differs from the store's".into(),
            });
        }
        if l.unit_price.minor() < 0 {
            return Err(DomainError::Invalid { field: "price".into(), reason: "negative price".into() });
        }
        match merged.iter_mut().find(|m| m.product == l.product) {
            Some(m) => m.qty = m.qty.checked_add(l.qty)?,
            None => merged.push(l),
        }
    }
    if merged.len() > ORDER_LINES_MAX {
        return Err(DomainError::Invalid {
            field: "itemsList".into(),
            reason: format!("at most {ORDER_LINES_MAX} lines"),
        });
    }
    if let Some(l) = merged.iter().find(|l| l.qty.get() > ORDER_LINE_QTY_MAX) {
        return Err(DomainError::Invalid {
            field: "quantity".into(),
            reason: format!("{}: at most {ORDER_LINE_QTY_MAX} units per line", l.product),
        });
    }
    let mut total = Money::zero(currency);
    for l in &merged {
        total = total.checked_add(l.unit_price.checked_mul(l.qty.get())?)?;
    }
    let mut discount = Money::zero(currency);
    let mut applied = Vec::new();
    if let Some(p) = promo {
        p.rule
            .active(now_ms, p.used_count)
            .map_err(|reason| DomainError::PromoNotApplicable { token: p.token.clone(), reason })?;
        if p.rule.min_total.is_some_and(|m| total.minor() < m) {
            return Err(DomainError::PromoNotApplicable {
                token: p.token.clone(),
                reason: "the order total is below its minimum".into(),
            });
        }
        let mut eligible = Money::zero(currency);
        for l in &merged {
            if p.rule.product_ids.as_ref().is_none_or(|ids| ids.contains(&l.product)) {
                eligible = eligible.checked_add(l.unit_price.checked_mul(l.qty.get())?)?;
            }
        }
        let d = match p.rule.discount {
            Discount::Percent(pct) => {
                let raw = i128::from(eligible.minor()) * i128::from(pct) / 100;
                i64::try_from(raw).map_err(|_| DomainError::QuantityOverflow)?
            }
            Discount::Amount(a) => a.min(eligible.minor()),
        };
        discount = Money::new(d, currency);
        applied.push(p.token.clone());
    }
    Ok(Priced {
        lines: merged,
        fixed_price: total.checked_sub(discount)?,
        total,
        discount,
        applied_rules: applied,
        promo_code: promo.map(|p| p.token.clone()),
    })
}

#[cfg(test)]
mod tests;

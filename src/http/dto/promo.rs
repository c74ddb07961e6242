//! The JSON shapes of promo codes, their rules, and prices.

use crate::domain::pricing::{Discount, Priced, Rule};
use crate::domain::promo::Promocode;
use crate::domain::Sku;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::*;

/// A promo rule (API.md's `Rule`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleDto {
    /// `PERCENT` or `AMOUNT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// 1..100, with PERCENT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// Minor units, with AMOUNT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// The discount applies only to these products' lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_ids: Option<Vec<String>>,
    /// The order total must reach this, minor units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_total: Option<i64>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// How many orders may use it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_limit: Option<u32>,
}

impl RuleDto {
    /// To the domain's rule (checked there too).
    pub fn to_domain(&self) -> Result<Rule, String> {
        let discount = match (self.kind.as_str(), self.percent, self.amount) {
            ("PERCENT", Some(p), None) => {
                Discount::Percent(u8::try_from(p).map_err(|_| "percent must be 1..100".to_owned())?)
            }
            ("AMOUNT", None, Some(a)) => Discount::Amount(a),
            ("PERCENT", _, _) => return Err("a PERCENT rule has percent and no amount".into()),
            ("AMOUNT", _, _) => return Err("an AMOUNT rule has amount and no percent".into()),
            (k, _, _) => return Err(format!("rule type {k:?} is not PERCENT or AMOUNT")),
        };
        let product_ids = match &self.product_ids {
            None => None,
            Some(ids) => {
                Some(ids.iter().map(|i| Sku::parse(i).map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>()?)
            }
        };
        let time = |s: &Option<String>, f: &str| -> Result<Option<u64>, String> {
            s.as_ref().map(|s| parse_rfc3339(s).ok_or_else(|| format!("{f} is not an RFC 3339 time"))).transpose()
        };
        Ok(Rule {
            discount,
            product_ids,
            min_total: self.min_total,
            valid_from_ms: time(&self.valid_from, "validFrom")?,
            valid_until_ms: time(&self.valid_until, "validUntil")?,
            usage_limit: self.usage_limit,
        })
    }

    /// From the domain's rule.
    pub fn of(r: &Rule) -> Self {
        let (kind, percent, amount) = match r.discount {
            Discount::Percent(p) => ("PERCENT", Some(u32::from(p)), None),
            Discount::Amount(a) => ("AMOUNT", None, Some(a)),
        };
        Self {
            kind: kind.into(),
            percent,
            amount,
            product_ids: r.product_ids.as_ref().map(|ids| ids.iter().map(ToString::to_string).collect()),
            min_total: r.min_total,
            valid_from: r.valid_from_ms.map(rfc3339),
            valid_until: r.valid_until_ms.map(rfc3339),
            usage_limit: r.usage_limit,
        }
    }
}

/// `POST /promocode` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromocodeIn {
    /// The code (3 to 32 letters, digits, - or _).
    pub token: String,
    /// What it is.
    pub description: String,
    /// How it discounts.
    pub rule: RuleDto,
}

/// A promo code.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromocodeOut {
    /// The code.
    pub token: String,
    /// What it is.
    pub description: String,
    /// How it discounts.
    pub rule: RuleDto,
    /// Orders that used it.
    pub used_count: u32,
}

impl From<&Promocode> for PromocodeOut {
    fn from(p: &Promocode) -> Self {
        Self {
            token: p.token.clone(),
            description: p.description.clone(),
            rule: RuleDto::of(&p.rule),
            used_count: p.used_count,
        }
    }
}

/// An active promo code (`GET /promocodes`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PromoListOut {
    /// The code.
    pub token: String,
    /// What it is.
    pub description: String,
    /// How it discounts.
    pub rule: RuleDto,
}

/// `POST /calcPrice` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceOut {
    /// Σ price × quantity, minor units.
    pub total: i64,
    /// The discount, minor units.
    pub discount: i64,
    /// total − discount.
    pub fixed_price: i64,
    /// The codes applied.
    pub applied_rules: Vec<String>,
}

impl From<&Priced> for PriceOut {
    fn from(p: &Priced) -> Self {
        Self {
            total: p.total.minor(),
            discount: p.discount.minor(),
            fixed_price: p.fixed_price.minor(),
            applied_rules: p.applied_rules.clone(),
        }
    }
}

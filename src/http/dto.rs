//! The JSON shapes of API.md (camelCase, money in integer minor units, times in RFC 3339), and
//! their conversions from the domain. The OpenAPI document is generated from these types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::actors::catalogue::view::ProductView;
use crate::app::shop::TimelineStep;
use crate::domain::customer::{Channel, Communication, Customer};
use crate::domain::notification::SendRecord;
use crate::domain::order::CommerceOrder;
use crate::domain::payment::Payment;
use crate::domain::pricing::{Discount, Priced, Rule};
use crate::domain::promo::Promocode;
use crate::domain::shipping::Shipment;
use crate::domain::Sku;

/// Milliseconds since the epoch as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// RFC 3339 (`2026-01-31T12:00:00Z`, optional fraction) to milliseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()?;
    u64::try_from(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()
}

/// `GET /token` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenOut {
    /// The JWT.
    pub token: String,
    /// Whose.
    pub customer_id: String,
    /// Their role.
    pub role: String,
    /// When it expires (RFC 3339).
    pub expired_time: String,
}

/// `GET /checkToken` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckTokenOut {
    /// Always true (an invalid token gets 401).
    pub valid: bool,
    /// Whose.
    pub customer_id: String,
    /// Their role.
    pub role: String,
    /// When `token` expires (RFC 3339).
    pub expired_time: String,
    /// A fresh token when the old one expires within the refresh window, else the same.
    pub token: String,
}

/// A way to reach a customer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommunicationDto {
    /// `EMAIL` or `SMS`.
    #[serde(rename = "type")]
    #[schema(example = "EMAIL", pattern = "^(EMAIL|SMS)$")]
    pub kind: String,
    /// The address or phone number.
    #[schema(min_length = 3, max_length = 254)]
    pub address: String,
}

impl CommunicationDto {
    /// To the domain's type (an unknown channel is invalid).
    pub fn to_domain(&self) -> Result<Communication, String> {
        let channel = match self.kind.as_str() {
            "EMAIL" => Channel::Email,
            "SMS" => Channel::Sms,
            k => return Err(format!("communication type {k:?} is not EMAIL or SMS")),
        };
        Ok(Communication { channel, address: self.address.clone() })
    }

    fn of(c: &Communication) -> Self {
        Self { kind: c.channel.name().into(), address: c.address.clone() }
    }
}

/// `POST /customer` body (sign-up).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomerIn {
    /// E-mail (the customer id, lower-cased).
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
    /// First name.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Last name.
    #[schema(min_length = 1, max_length = 200)]
    pub last_name: String,
    /// Ways to reach them.
    #[serde(default)]
    pub communications: Vec<CommunicationDto>,
}

/// `PUT /customer` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomerUpdateIn {
    /// First name.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Last name.
    #[schema(min_length = 1, max_length = 200)]
    pub last_name: Option<String>,
    /// Ways to reach them (replaces the list).
    pub communications: Option<Vec<CommunicationDto>>,
}

/// A customer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerOut {
    /// The id (lower-cased e-mail).
    pub customer_id: String,
    /// The e-mail.
    pub email: String,
    /// First name.
    pub name: String,
    /// Last name.
    pub last_name: String,
    /// RFC 3339.
    pub registration_date: String,
    /// RFC 3339.
    pub last_modified: String,
    /// Ways to reach them.
    pub communications: Vec<CommunicationDto>,
}

impl From<&Customer> for CustomerOut {
    fn from(c: &Customer) -> Self {
        Self {
            customer_id: c.customer_id.to_string(),
            email: c.customer_id.to_string(),
            name: c.name.clone(),
            last_name: c.last_name.clone(),
            registration_date: rfc3339(c.registration_ms),
            last_modified: rfc3339(c.last_modified_ms),
            communications: c.communications.iter().map(CommunicationDto::of).collect(),
        }
    }
}

/// `POST /user` body (ADMIN creates staff).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserIn {
    /// E-mail.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
    /// CUSTOMER, OPERATOR, STOCK_OPERATOR, SHIPPING_OPERATOR or ADMIN.
    #[schema(pattern = "^(CUSTOMER|OPERATOR|STOCK_OPERATOR|SHIPPING_OPERATOR|ADMIN)$")]
    pub role: String,
}

/// A user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserOut {
    /// Their id.
    pub customer_id: String,
    /// Their role.
    pub role: String,
    /// Whether they may log in.
    pub is_enable: bool,
}

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

/// One requested line.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineIn {
    /// The product.
    pub id: String,
    /// How many (≥ 1).
    #[schema(minimum = 1)]
    pub quantity: u32,
}

/// `POST /order/add` and `POST /calcPrice` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderIn {
    /// The lines (at least one).
    #[schema(min_items = 1)]
    pub items_list: Vec<LineIn>,
    /// A promo code.
    pub promo_code: Option<String>,
}

/// A line of an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LineOut {
    /// The product.
    pub id: String,
    /// How many.
    pub quantity: u32,
    /// Unit price fixed at creation, minor units.
    pub price: i64,
}

/// An order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderOut {
    /// Its id.
    pub id: String,
    /// Its customer.
    pub customer_id: String,
    /// Its lines.
    pub items_list: Vec<LineOut>,
    /// What the customer pays, minor units.
    pub fixed_price: i64,
    /// The promo discount, minor units.
    pub discount: i64,
    /// The promo code used.
    pub promo_code: Option<String>,
    /// Its status.
    pub status: String,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// Its version.
    pub version: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&CommerceOrder> for OrderOut {
    fn from(o: &CommerceOrder) -> Self {
        Self {
            id: o.id.to_string(),
            customer_id: o.customer_id.to_string(),
            items_list: o
                .items
                .iter()
                .map(|l| LineOut { id: l.id.to_string(), quantity: l.quantity.get(), price: l.price.minor() })
                .collect(),
            fixed_price: o.fixed_price.minor(),
            discount: o.discount.minor(),
            promo_code: o.promo_code.clone(),
            status: o.status.name().into(),
            cancel_reason: o.cancel_reason.map(|r| r.name().into()),
            version: o.version,
            created_at: rfc3339(o.created_at_ms),
            updated_at: rfc3339(o.updated_at_ms),
        }
    }
}

/// A payment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentOut {
    /// Its id.
    pub id: String,
    /// The order.
    pub order_id: String,
    /// The order version it was opened against.
    pub order_version: u64,
    /// NEW, PENDING, PAID, PARTIAL, FAILED or REFUNDED.
    pub status: String,
    /// Its version.
    pub version: u32,
    /// Asked, minor units.
    pub amount: i64,
    /// Taken from the payer, minor units.
    pub paid_amount: i64,
    /// Owed back to the payer (more than was due, or the order was cancelled), minor units;
    /// `paidAmount − refundedAmount` is what the store keeps.
    pub refunded_amount: i64,
    /// Where the shopper pays.
    pub redirect_url: String,
    /// The payment system's id.
    pub system_pay_id: Option<String>,
    /// The payment system's status.
    pub system_status: Option<String>,
}

impl PaymentOut {
    /// From a payment of `order`.
    pub fn of(order: &str, p: &Payment) -> Self {
        Self {
            id: p.id.to_string(),
            order_id: order.to_owned(),
            order_version: p.order_version,
            status: p.status.name().into(),
            version: p.version,
            amount: p.amount.minor(),
            paid_amount: p.paid_amount.minor(),
            refunded_amount: p.refunded_amount.minor(),
            redirect_url: p.redirect_url.clone(),
            system_pay_id: p.system_pay_id.clone(),
            system_status: p.system_status.clone(),
        }
    }
}

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

/// An order with its payments and shipping, for the personal account (`GET /orders`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderSummaryOut {
    /// The order.
    #[serde(flatten)]
    pub order: OrderOut,
    /// Its payments.
    pub payments: Vec<PaymentOut>,
    /// Its shipment, once paid.
    pub shipping: Option<ShippingOut>,
}

impl OrderSummaryOut {
    /// The shape of one order of the personal account.
    pub fn of(s: &crate::app::shop::OrderSummary) -> Self {
        let id = s.order.id.as_str();
        OrderSummaryOut {
            order: OrderOut::from(&s.order),
            payments: s.payments.payments.iter().map(|p| PaymentOut::of(id, p)).collect(),
            shipping: s.shipment.as_ref().map(ShippingOut::from),
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

/// The header of a creating write (its one description for every such route).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyHeader {
    /// Repeats within 24 h get the first answer.
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,200}$")]
    pub idempotency_key: Option<String>,
}

/// `POST /sandbox/pay/{paymentId}` form (`application/x-www-form-urlencoded`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SandboxForm {
    /// What the sandbox reports to the store: pay in full, pay part (half), or fail.
    #[schema(pattern = "^(full|part|fail)$")]
    pub action: String,
}

/// `GET /pay/redirectUrl` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedirectOut {
    /// The payment to make.
    pub payment_id: String,
    /// Where to make it.
    pub redirect_url: String,
    /// The amount still due, minor units.
    pub amount: i64,
}

/// One event that touched an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineOut {
    /// RFC 3339.
    pub at: String,
    /// The service it came from.
    pub service: String,
    /// What happened, in words.
    pub event: String,
    /// The status it carried.
    pub status: String,
    /// The sender's version.
    pub version: u64,
    /// The sender's node.
    pub node: String,
    /// The message id.
    pub message_id: String,
}

impl From<&TimelineStep> for TimelineOut {
    fn from(t: &TimelineStep) -> Self {
        Self {
            at: rfc3339(t.at_ms),
            service: t.service.clone(),
            event: t.event.clone(),
            status: t.status.clone(),
            version: t.version,
            node: t.node.clone(),
            message_id: t.message_id.clone(),
        }
    }
}

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

/// `GET /health` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthOut {
    /// `ok`.
    pub status: String,
    /// This node.
    pub node: String,
    /// Partitions it owns.
    pub partitions: usize,
}

/// A node as `GET /cluster` shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeOut {
    /// Its name.
    pub name: String,
    /// Whether it answers.
    pub reachable: bool,
    /// Partitions it owns.
    pub partitions: usize,
}

/// `GET /cluster` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOut {
    /// The nodes.
    pub nodes: Vec<NodeOut>,
    /// Events waiting in this node's outbox.
    pub outbox_depth: usize,
    /// Events given up on (see `bazaar dead-letters`).
    pub dead_letters: usize,
}

/// A notification send.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationOut {
    /// Its id.
    pub id: String,
    /// The order.
    pub order_id: String,
    /// The customer.
    pub customer_id: String,
    /// ORDER_PAID or ORDER_SHIPPED.
    pub event_type: String,
    /// EMAIL or SMS.
    pub channel: String,
    /// Where.
    pub address: String,
    /// SENT, RETRYING or FAILED.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once sent.
    pub sent_at: Option<String>,
}

impl NotificationOut {
    /// From a send record (none for a record without its request).
    pub fn of(r: &SendRecord) -> Option<Self> {
        let q = r.request.as_ref()?;
        Some(Self {
            id: q.id.clone(),
            order_id: q.order_id.to_string(),
            customer_id: q.customer_id.to_string(),
            event_type: q.event_type.name().into(),
            channel: q.channel.name().into(),
            address: q.address.clone(),
            status: r.status.map_or("RETRYING", |s| s.name()).into(),
            attempts: r.attempts,
            created_at: rfc3339(r.created_at_ms),
            sent_at: r.sent_at_ms.map(rfc3339),
        })
    }
}

/// One invariant's verdict.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckOut {
    /// The invariant.
    pub name: String,
    /// Whether it holds.
    pub ok: bool,
    /// What breaks it.
    pub violations: Vec<String>,
}

/// `GET /invariants` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvariantsOut {
    /// Whether every invariant holds.
    pub ok: bool,
    /// RFC 3339.
    pub checked_at: String,
    /// The checks.
    pub checks: Vec<CheckOut>,
}

//! The JSON shapes of API.md (camelCase, money in integer minor units, times in RFC 3339), and
//! their conversions from the domain. The OpenAPI document is generated from these types.

mod auth;
mod catalogue;
mod customer;
mod ops;
mod order;
mod payment;
mod promo;
mod shipping;
mod stock;

pub use auth::*;
pub use catalogue::*;
pub use customer::*;
pub use ops::*;
pub use order::*;
pub use payment::*;
pub use promo::*;
pub use shipping::*;
pub use stock::*;

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

/// The header of a creating write (its one description for every such route).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyHeader {
    /// Repeats within 24 h get the first answer.
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,200}$")]
    pub idempotency_key: Option<String>,
}

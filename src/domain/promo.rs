//! The promocode service's code (the seed's `Promocode{token}` with its `Rule`), and how many
//! orders used it. A use is counted once per order: the use is keyed by the order's event, and
//! the inbox drops its repeats.

use serde::{Deserialize, Serialize};

use super::pricing::Rule;
use super::{Ctx, DomainError};

/// A promo code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promocode {
    /// The code.
    pub token: String,
    /// What it is for.
    pub description: String,
    /// How it discounts.
    pub rule: Rule,
    /// Orders that used it.
    pub used_count: u32,
    /// Created, ms (0: no such code).
    pub created_ms: u64,
}

/// Checks a code's text: 3 to 32 letters, digits, `-` or `_`.
pub fn check_token(token: &str) -> Result<(), DomainError> {
    let ok =
        (3..=32).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DomainError::Invalid { field: "token".into(), reason: "3 to 32 letters, digits, - or _".into() })
    }
}

impl Promocode {
    /// No such code yet.
    pub fn absent(token: &str, rule: Rule) -> Self {
        Self { token: token.to_owned(), description: String::new(), rule, used_count: 0, created_ms: 0 }
    }

    /// Whether it exists.
    pub fn exists(&self) -> bool {
        self.created_ms != 0
    }

    /// Creates the code; refused if it exists or its rule is invalid.
    pub fn create(&self, description: &str, rule: Rule, ctx: &Ctx) -> Result<Promocode, DomainError> {
        if self.exists() {
            return Err(DomainError::AlreadyExists { what: "promo code".into(), id: self.token.clone() });
        }
        check_token(&self.token)?;
        if description.len() > 1_000 {
            return Err(DomainError::Invalid { field: "description".into(), reason: "at most 1000 bytes".into() });
        }
        rule.check()?;
        Ok(Promocode {
            token: self.token.clone(),
            description: description.to_owned(),
            rule,
            used_count: 0,
            created_ms: ctx.now_ms.max(1),
        })
    }

    /// An order used the code (counted once per order by the caller's message id).
    pub fn used(&self) -> Option<Promocode> {
        if !self.exists() {
            return None;
        }
        Some(Promocode { used_count: self.used_count.saturating_add(1), ..self.clone() })
    }

    /// Whether the code may be offered at `now_ms`.
    pub fn active(&self, now_ms: u64) -> bool {
        self.exists() && self.rule.active(now_ms, self.used_count).is_ok()
    }
}

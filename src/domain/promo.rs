//! The promocode service's code (the seed's `Promocode{token}` with its `Rule`) and the uses it
//! has given out.
//!
//! A code with a `usageLimit` never has more live orders (placed and not cancelled) than its
//! limit, whatever the concurrency: a use is *taken* (a hold, keyed by the order id the customer
//! gate will give the order) before the order is placed, so the check and the count are one
//! serial decision of this aggregate. The hold becomes a use when the gate reports the order
//! placed (`PromoUse::Taken`, in the same write set as the order), and is given back when the
//! placement was refused (`release`), or when the order never came to exist: a hold still open
//! after `PROMO_HOLD_MS` asks the customer's gate, which fences the order number (no order can
//! be placed under it afterwards) and answers `PromoUse::Settled`. A cancelled order gives its
//! use back (`PromoUse::Released`). Ownership of the decision never depends on clocks: the
//! hold's timer only decides *when* to ask.

use serde::{Deserialize, Serialize};

use super::pricing::Rule;
use super::{Ctx, CustomerId, DomainError, MessageId, OrderId};
use crate::limits::{PROMO_HOLDS_MAX, PROMO_HOLD_MS};

/// A promo code as it is published (`promo.event`) and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promocode {
    /// The code.
    pub token: String,
    /// What it is for.
    pub description: String,
    /// How it discounts.
    pub rule: Rule,
    /// Live orders that use it (placed, not cancelled).
    pub used_count: u32,
    /// Created, ms (0: no such code).
    pub created_ms: u64,
}

/// A use taken for an order that is being placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The order the customer's gate will create under it.
    pub order: OrderId,
    /// That order's number in its customer's gate.
    pub number: u64,
    /// The customer.
    pub customer: CustomerId,
    /// The placement request it was taken for (only that request may give it back).
    pub cause: MessageId,
    /// When to ask the gate whether the order came to exist, ms.
    pub check_at_ms: u64,
    /// The gate was asked.
    pub asked: bool,
}

/// The promocode service's aggregate: the code and the holds it gave out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromoAccount {
    /// The code (its `used_count` counts placed orders; holds are counted apart).
    pub code: Promocode,
    /// Uses taken for orders being placed, oldest first (at most `PROMO_HOLDS_MAX`).
    pub holds: Vec<Hold>,
}

/// What happened to a use, as the promocode service hears it on `promo.used`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromoUse {
    /// The gate placed `order` with the code (under the hold taken for `cause`, if any).
    Taken {
        /// The order.
        order: OrderId,
        /// The placement request (`None` in events written before holds existed).
        cause: Option<MessageId>,
    },
    /// The order was cancelled: its use is given back.
    Released {
        /// The order.
        order: OrderId,
    },
    /// The gate answered a hold's question: `order` was either placed (its `Taken` came first,
    /// on the same lane) or can no longer be, so a hold still open for it is given back.
    Settled {
        /// The order.
        order: OrderId,
    },
}

/// A hold's question to the customer's gate (`promo.hold`, keyed by the customer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldCheck {
    /// The code.
    pub token: String,
    /// The order the hold was taken for.
    pub order: OrderId,
    /// Its number in the gate.
    pub number: u64,
    /// The customer.
    pub customer: CustomerId,
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

    /// Whether the code may be offered at `now_ms`.
    pub fn active(&self, now_ms: u64) -> bool {
        self.exists() && self.rule.active(now_ms, self.used_count).is_ok()
    }
}

impl PromoAccount {
    /// No such code yet.
    pub fn absent(token: &str, rule: Rule) -> Self {
        Self { code: Promocode::absent(token, rule), holds: Vec::new() }
    }

    /// An account of a code stored before holds existed.
    pub fn of(code: Promocode) -> Self {
        Self { code, holds: Vec::new() }
    }

    /// Whether the code exists.
    pub fn exists(&self) -> bool {
        self.code.exists()
    }

    /// Uses given out: placed orders plus holds.
    pub fn taken(&self) -> u64 {
        u64::from(self.code.used_count) + self.holds.len() as u64
    }

    /// Creates the code; refused if it exists or its rule is invalid.
    pub fn create(&self, description: &str, rule: Rule, ctx: &Ctx) -> Result<PromoAccount, DomainError> {
        if self.exists() {
            return Err(DomainError::AlreadyExists { what: "promo code".into(), id: self.code.token.clone() });
        }
        check_token(&self.code.token)?;
        if description.len() > 1_000 {
            return Err(DomainError::Invalid { field: "description".into(), reason: "at most 1000 bytes".into() });
        }
        rule.check()?;
        Ok(PromoAccount {
            code: Promocode {
                token: self.code.token.clone(),
                description: description.to_owned(),
                rule,
                used_count: 0,
                created_ms: ctx.now_ms.max(1),
            },
            holds: Vec::new(),
        })
    }

    fn not_applicable(&self, reason: &str) -> DomainError {
        DomainError::PromoNotApplicable { token: self.code.token.clone(), reason: reason.into() }
    }

    /// Takes a use for `order` (number `number` of `customer`'s gate), asked by placement
    /// request `cause`. `Ok(None)`: this request holds it already. Refused when the code does
    /// not exist, is outside its dates, or every use is given out.
    pub fn hold(
        &self,
        order: &OrderId,
        number: u64,
        customer: &CustomerId,
        ctx: &Ctx,
    ) -> Result<Option<PromoAccount>, DomainError> {
        if !self.exists() {
            return Err(self.not_applicable("no such code"));
        }
        if let Some(h) = self.holds.iter().find(|h| h.order == *order) {
            return if h.cause == ctx.cause {
                Ok(None)
            } else {
                Err(DomainError::Raced { what: "order placement".into() })
            };
        }
        self.code.rule.active(ctx.now_ms, 0).map_err(|r| self.not_applicable(&r))?;
        if self.code.rule.usage_limit.is_some_and(|limit| self.taken() >= u64::from(limit)) {
            return Err(self.not_applicable("the code's usage limit is reached"));
        }
        if self.holds.len() >= PROMO_HOLDS_MAX {
            return Err(DomainError::Raced { what: "promo code".into() });
        }
        let mut next = self.clone();
        next.holds.push(Hold {
            order: order.clone(),
            number,
            customer: customer.clone(),
            cause: ctx.cause,
            check_at_ms: ctx.now_ms.saturating_add(PROMO_HOLD_MS),
            asked: false,
        });
        Ok(Some(next))
    }

    fn without_hold(&self, order: &OrderId) -> Option<(PromoAccount, Hold)> {
        let i = self.holds.iter().position(|h| h.order == *order)?;
        let mut next = self.clone();
        let h = next.holds.remove(i);
        Some((next, h))
    }

    /// The placement request `cause` gives its hold for `order` back (the gate refused it, or
    /// answered with another order). `None`: no such hold of that request.
    pub fn release(&self, order: &OrderId, cause: MessageId) -> Option<PromoAccount> {
        if !self.holds.iter().any(|h| h.order == *order && h.cause == cause) {
            return None;
        }
        self.without_hold(order).map(|(next, _)| next)
    }

    /// What a `promo.used` event does. `None`: nothing changes.
    pub fn on_use(&self, u: &PromoUse) -> Option<PromoAccount> {
        if !self.exists() {
            return None;
        }
        match u {
            PromoUse::Taken { order, .. } => {
                let mut next = self.without_hold(order).map_or_else(|| self.clone(), |(n, _)| n);
                next.code.used_count = next.code.used_count.saturating_add(1);
                Some(next)
            }
            PromoUse::Released { .. } => {
                let mut next = self.clone();
                next.code.used_count = next.code.used_count.saturating_sub(1);
                Some(next)
            }
            PromoUse::Settled { order } => self.without_hold(order).map(|(next, _)| next),
        }
    }

    /// Holds due to be checked at `now_ms` and not yet asked: marks them asked and returns the
    /// questions for their gates. `None`: none is due.
    pub fn due_checks(&self, now_ms: u64) -> Option<(PromoAccount, Vec<HoldCheck>)> {
        let due = |h: &Hold| !h.asked && h.check_at_ms <= now_ms;
        if !self.holds.iter().any(due) {
            return None;
        }
        let mut next = self.clone();
        let mut asks = Vec::new();
        for h in next.holds.iter_mut().filter(|h| due(h)) {
            h.asked = true;
            asks.push(HoldCheck {
                token: self.code.token.clone(),
                order: h.order.clone(),
                number: h.number,
                customer: h.customer.clone(),
            });
        }
        Some((next, asks))
    }
}

#[cfg(test)]
mod tests;

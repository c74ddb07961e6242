//! Counts of items. Arithmetic is checked: a count that would wrap is a rejection, not a
//! silently wrong number in the warehouse.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// A number of units of one item (zero allowed; commands that need a positive amount check it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Qty(u32);

impl Qty {
    /// No units.
    pub const ZERO: Qty = Qty(0);

    /// Wraps a count.
    pub const fn new(units: u32) -> Self {
        Self(units)
    }

    /// A count that must be at least one (what a booking or a receipt asks for).
    pub fn positive(units: u32) -> Result<Self, DomainError> {
        if units == 0 {
            Err(DomainError::ZeroQuantity)
        } else {
            Ok(Self(units))
        }
    }

    /// The number of units.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// `self + other`, or `QuantityOverflow`.
    pub fn checked_add(self, other: Qty) -> Result<Qty, DomainError> {
        self.0.checked_add(other.0).map(Qty).ok_or(DomainError::QuantityOverflow)
    }

    /// `self - other`, or `QuantityOverflow` when it would go below zero.
    pub fn checked_sub(self, other: Qty) -> Result<Qty, DomainError> {
        self.0.checked_sub(other.0).map(Qty).ok_or(DomainError::QuantityOverflow)
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

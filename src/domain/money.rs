//! Amounts of money as integer minor units (cents) with their currency. No floats anywhere:
//! prices, discounts and payments must add up to the cent.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// An ISO 4217 currency code (three upper-case letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// The store's currency unless configured otherwise.
    pub const EUR: Currency = Currency(*b"EUR");

    /// Checks and wraps a currency code.
    pub fn parse(code: &str) -> Result<Self, DomainError> {
        let b = code.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(DomainError::Invalid { field: "currency".into(), reason: "three upper-case letters, e.g. EUR".into() })
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only `parse` builds a Currency and it admits ASCII alone.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl TryFrom<String> for Currency {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Currency::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

/// An amount in minor units (cents) of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// An amount of `minor` units of `currency`.
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Zero of a currency.
    pub const fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    /// The amount in minor units.
    pub const fn minor(self) -> i64 {
        self.minor
    }

    /// The currency.
    pub const fn currency(self) -> Currency {
        self.currency
    }

    /// `self + other` in the same currency, checked.
    pub fn checked_add(self, other: Money) -> Result<Money, DomainError> {
        self.same_currency(other)?;
        let minor = self.minor.checked_add(other.minor).ok_or(DomainError::QuantityOverflow)?;
        Ok(Money { minor, ..self })
    }

    /// `self - other` in the same currency, checked (may go negative: a balance can).
    pub fn checked_sub(self, other: Money) -> Result<Money, DomainError> {
        self.same_currency(other)?;
        let minor = self.minor.checked_sub(other.minor).ok_or(DomainError::QuantityOverflow)?;
        Ok(Money { minor, ..self })
    }

    /// `self × n`, checked.
    pub fn checked_mul(self, n: u32) -> Result<Money, DomainError> {
        let minor = self.minor.checked_mul(i64::from(n)).ok_or(DomainError::QuantityOverflow)?;
        Ok(Money { minor, ..self })
    }

    fn same_currency(self, other: Money) -> Result<(), DomainError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(DomainError::Invalid {
                field: "currency".into(),
                reason: format!("cannot mix {} and {}", self.currency.as_str(), other.currency.as_str()),
            })
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_adds_in_one_currency_and_refuses_to_mix() {
        let a = Money::new(1250, Currency::EUR);
        assert_eq!(a.checked_mul(3).unwrap().minor(), 3750);
        assert_eq!(a.checked_add(a).unwrap().to_string(), "25.00 EUR");
        let usd = Money::new(1, Currency::parse("USD").unwrap());
        assert!(a.checked_add(usd).is_err());
        assert_eq!(Money::new(i64::MAX, Currency::EUR).checked_add(a), Err(DomainError::QuantityOverflow));
        assert_eq!(Money::new(-5, Currency::EUR).to_string(), "-0.05 EUR");
    }

    #[test]
    fn currency_codes_are_checked() {
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
        assert_eq!(Currency::parse("GBP").unwrap().as_str(), "GBP");
    }
}

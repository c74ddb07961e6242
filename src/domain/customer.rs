//! The customer service's customer (the seed's `Customer{customerId=email, name, lastName,
//! registrationDate, lastModified, communications}`).

use serde::{Deserialize, Serialize};

use super::{Ctx, CustomerId, DomainError};
use crate::limits::{COMMUNICATIONS_MAX, TEXT_BYTES_MAX};

/// A channel notifications can go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Channel {
    /// E-mail (SMTP).
    Email,
    /// Text message (an SMS gateway).
    Sms,
}

impl Channel {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "EMAIL",
            Channel::Sms => "SMS",
        }
    }
}

/// One way to reach the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Communication {
    /// The channel.
    pub channel: Channel,
    /// The address (an e-mail address, or a phone number in international form).
    pub address: String,
}

impl Communication {
    /// Checks the address for its channel.
    pub fn check(&self) -> Result<(), DomainError> {
        let bad = |reason: &str| Err(DomainError::Invalid { field: "communications".into(), reason: reason.into() });
        match self.channel {
            Channel::Email => match CustomerId::parse(&self.address) {
                Ok(_) => Ok(()),
                Err(_) => bad("an EMAIL address must be a valid e-mail address"),
            },
            Channel::Sms => {
                let digits = self.address.strip_prefix('+').unwrap_or("");
                if (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(())
                } else {
                    bad("an SMS address must be a phone number like +4915112345678")
                }
            }
        }
    }
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The id (the lower-cased e-mail).
    pub customer_id: CustomerId,
    /// First name.
    pub name: String,
    /// Last name.
    pub last_name: String,
    /// Registered, ms (0: not registered).
    pub registration_ms: u64,
    /// Last changed, ms.
    pub last_modified_ms: u64,
    /// Ways to reach them.
    pub communications: Vec<Communication>,
}

/// What may change in a profile.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProfileChange {
    /// First name.
    pub name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Ways to reach them (replaces the list).
    pub communications: Option<Vec<Communication>>,
}

fn check_name(field: &str, v: &str) -> Result<(), DomainError> {
    if v.trim().is_empty() || v.len() > 200 || v.len() > TEXT_BYTES_MAX || v.chars().any(char::is_control) {
        return Err(DomainError::Invalid {
            field: field.into(),
            reason: "1 to 200 characters, no control characters".into(),
        });
    }
    Ok(())
}

fn check_comms(c: &[Communication]) -> Result<(), DomainError> {
    if c.len() > COMMUNICATIONS_MAX {
        return Err(DomainError::Invalid {
            field: "communications".into(),
            reason: format!("at most {COMMUNICATIONS_MAX}"),
        });
    }
    c.iter().try_for_each(Communication::check)
}

impl Customer {
    /// Someone not registered (yet).
    pub fn unregistered(customer_id: CustomerId) -> Self {
        Self {
            customer_id,
            name: String::new(),
            last_name: String::new(),
            registration_ms: 0,
            last_modified_ms: 0,
            communications: Vec::new(),
        }
    }

    /// Whether they registered.
    pub fn registered(&self) -> bool {
        self.registration_ms != 0
    }

    /// Registers them; refused if they already are.
    pub fn register(
        &self,
        name: &str,
        last_name: &str,
        comms: Vec<Communication>,
        ctx: &Ctx,
    ) -> Result<Customer, DomainError> {
        if self.registered() {
            return Err(DomainError::AlreadyExists { what: "customer".into(), id: self.customer_id.to_string() });
        }
        check_name("name", name)?;
        check_name("lastName", last_name)?;
        check_comms(&comms)?;
        Ok(Customer {
            customer_id: self.customer_id.clone(),
            name: name.trim().to_owned(),
            last_name: last_name.trim().to_owned(),
            registration_ms: ctx.now_ms.max(1),
            last_modified_ms: ctx.now_ms.max(1),
            communications: comms,
        })
    }

    /// Changes their profile. `None`: nothing changed.
    pub fn update(&self, ch: &ProfileChange, ctx: &Ctx) -> Result<Option<Customer>, DomainError> {
        if !self.registered() {
            return Err(DomainError::NotFound { what: "customer".into(), id: self.customer_id.to_string() });
        }
        let mut next = self.clone();
        if let Some(n) = &ch.name {
            check_name("name", n)?;
            next.name = n.trim().to_owned();
        }
        if let Some(n) = &ch.last_name {
            check_name("lastName", n)?;
            next.last_name = n.trim().to_owned();
        }
        if let Some(c) = &ch.communications {
            check_comms(c)?;
            next.communications = c.clone();
        }
        if next == *self {
            return Ok(None);
        }
        next.last_modified_ms = ctx.now_ms.max(1);
        Ok(Some(next))
    }
}

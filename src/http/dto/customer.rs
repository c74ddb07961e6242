//! The JSON shapes of customers and their contact details.

use crate::domain::customer::{Channel, Communication, Customer};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::*;

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

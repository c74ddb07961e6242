//! The JSON shapes of logging in and users.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

//! The one HTTP error type. Each variant says its status; `into_response` renders API.md's body
//! `{"error": "<code>", "message": "<text>"}` (plus `orderId` for an unpaid order). A 5xx logs
//! its cause and shows none of it.

use serde::Serialize;
use warp::http::StatusCode;

use crate::actors::payment::CallbackError;
use crate::actors::EngineError;
use crate::app::shop::ShopError;
use crate::domain::{DomainError, NotPayableReason};

/// Longest error message, in characters.
const MESSAGE_CHARS_MAX: usize = 300;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400: malformed JSON or query.
    BadRequest(String),
    /// 401: missing, invalid, expired or revoked token; bad credentials; bad signature.
    Unauthorized(String),
    /// 403: wrong role or not the owner.
    Forbidden(String),
    /// 404: unknown id or route.
    NotFound(String),
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 409: conflicts with the current state (`code` names which).
    Conflict {
        /// Machine code.
        code: &'static str,
        /// Text.
        message: String,
        /// The unpaid order, for `unpaid_order_exists`.
        order_id: Option<String>,
    },
    /// 413: body over the limit.
    PayloadTooLarge,
    /// 414: the request target is over `HTTP_URI_BYTES_MAX`.
    UriTooLong,
    /// 431: the headers are over `HTTP_HEADERS_LEN_MAX` or `HTTP_HEADER_BYTES_MAX`.
    HeadersTooLarge,
    /// 415: not JSON.
    UnsupportedMediaType,
    /// 422: well-formed but invalid values.
    Unprocessable(String),
    /// 429: too many attempts; retry after this many seconds.
    TooManyRequests(u64),
    /// 503 `UNAVAILABLE` (API.md spells this code in capitals): overloaded, shutting down, or the
    /// owning node is unreachable; with `Retry-After`.
    Unavailable(String),
    /// 500: a bug; the cause is logged, not shown.
    Internal(String),
}

/// The JSON error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub error: String,
    /// Human-readable text.
    pub message: String,
    /// The customer's unpaid order (only with `unpaid_order_exists`).
    #[serde(rename = "orderId", skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

impl ApiError {
    /// The status and body (a message is never longer than `MESSAGE_CHARS_MAX`: whatever
    /// outside input it quotes, the answer stays small).
    pub fn parts(&self) -> (StatusCode, ErrorBody) {
        let (status, mut body) = self.parts_whole();
        if body.message.chars().count() > MESSAGE_CHARS_MAX {
            body.message = body.message.chars().take(MESSAGE_CHARS_MAX).chain(std::iter::once('…')).collect();
        }
        (status, body)
    }

    fn parts_whole(&self) -> (StatusCode, ErrorBody) {
        let body = |code: &str, message: String| ErrorBody { error: code.into(), message, order_id: None };
        match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, body("bad_request", m.clone())),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, body("unauthorized", m.clone())),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, body("forbidden", m.clone())),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, body("not_found", m.clone())),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                body("method_not_allowed", "this route does not take that method".into()),
            ),
            ApiError::Conflict { code, message, order_id } => (
                StatusCode::CONFLICT,
                ErrorBody { error: (*code).into(), message: message.clone(), order_id: order_id.clone() },
            ),
            ApiError::PayloadTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, body("payload_too_large", "the body is over 64 KiB".into()))
            }
            ApiError::UriTooLong => (
                StatusCode::URI_TOO_LONG,
                body(
                    "uri_too_long",
                    format!("the path and query are over {} bytes", crate::limits::HTTP_URI_BYTES_MAX),
                ),
            ),
            ApiError::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                body(
                    "headers_too_large",
                    format!(
                        "at most {} headers of {} bytes in all",
                        crate::limits::HTTP_HEADERS_LEN_MAX,
                        crate::limits::HTTP_HEADER_BYTES_MAX
                    ),
                ),
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                body("unsupported_media_type", "send JSON with Content-Type: application/json".into()),
            ),
            ApiError::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, body("invalid", m.clone())),
            ApiError::TooManyRequests(s) => {
                (StatusCode::TOO_MANY_REQUESTS, body("too_many_requests", format!("too many attempts; retry in {s} s")))
            }
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, body("UNAVAILABLE", m.clone())),
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, body("internal", "something went wrong on our side".into()))
            }
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let msg = e.to_string();
        match e {
            DomainError::UnpaidOrderExists { order } => {
                ApiError::Conflict { code: "unpaid_order_exists", message: msg, order_id: Some(order.to_string()) }
            }
            DomainError::NotFound { .. } => ApiError::NotFound(msg),
            DomainError::NotOwner => ApiError::Forbidden(msg),
            DomainError::AlreadyExists { .. } => {
                ApiError::Conflict { code: "already_exists", message: msg, order_id: None }
            }
            DomainError::WrongState { .. } => ApiError::Conflict { code: "wrong_state", message: msg, order_id: None },
            DomainError::ShippingStepBackwards { .. } => {
                ApiError::Conflict { code: "shipping_step_backwards", message: msg, order_id: None }
            }
            DomainError::NotPayable { reason } => ApiError::Conflict {
                code: match reason {
                    NotPayableReason::Cancelled => "order_cancelled",
                    NotPayableReason::AlreadyPaid => "order_paid",
                    NotPayableReason::NotBookedYet => "not_booked_yet",
                },
                message: msg,
                order_id: None,
            },
            DomainError::Raced { .. } => ApiError::Conflict { code: "try_again", message: msg, order_id: None },
            DomainError::InsufficientStock { .. } | DomainError::NotBooked { .. } => {
                ApiError::Conflict { code: "stock", message: msg, order_id: None }
            }
            DomainError::ZeroQuantity
            | DomainError::QuantityOverflow
            | DomainError::ReturnExceedsShipped { .. }
            | DomainError::ReturnExceedsFree { .. }
            | DomainError::PromoNotApplicable { .. }
            | DomainError::Invalid { .. } => ApiError::Unprocessable(msg),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::InvalidKey(m) => ApiError::BadRequest(m),
            EngineError::TooLarge(m) => ApiError::Unprocessable(m),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl From<ShopError> for ApiError {
    fn from(e: ShopError) -> Self {
        match e {
            ShopError::Domain(d) => d.into(),
            ShopError::Engine(x) => x.into(),
            ShopError::Callback(CallbackError::BadSignature) => ApiError::Unauthorized("bad signature".into()),
            ShopError::Callback(CallbackError::Malformed(m)) => ApiError::BadRequest(m),
            partial @ (ShopError::Partial { .. } | ShopError::NotAnswered(_)) => {
                ApiError::Unavailable(partial.to_string())
            }
            e @ (ShopError::Store(_) | ShopError::Record(_)) => ApiError::Unavailable(e.to_string()),
        }
    }
}

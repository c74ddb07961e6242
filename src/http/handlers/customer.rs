//! Signing a customer up, and the signed-in customer's profile.

use warp::http::StatusCode;

use super::super::auth::Caller;
use super::super::dto::*;
use super::super::error::{ApiError, ErrorBody};
use super::super::request::json_body;
use super::super::{App, Out, Req};
use super::auth::hash_password;
use crate::app::shop::{ShopError, SignUp};
use crate::domain::customer::ProfileChange;
use crate::domain::{CustomerId, DomainError};

/// A user of that e-mail exists already: 409 `email_taken`; anything else as it maps.
fn email_taken(id: &CustomerId, e: ShopError) -> ApiError {
    match e {
        ShopError::Domain(DomainError::AlreadyExists { what, .. }) if what == "user" => {
            ApiError::Conflict { code: "email_taken", message: format!("{id} is registered already"), order_id: None }
        }
        e => e.into(),
    }
}

/// Signs a customer up.
#[utoipa::path(post, path = "/customer", tag = "customer", request_body = CustomerIn,
    responses((status = 201, body = CustomerOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn post_customer(app: &App, req: &Req) -> Result<Out, ApiError> {
    let b: CustomerIn = json_body(req)?;
    let id = CustomerId::parse(&b.email)
        .map_err(|_| ApiError::Unprocessable("email is not a valid e-mail address".into()))?;
    let comms = b
        .communications
        .iter()
        .map(CommunicationDto::to_domain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::Unprocessable)?;
    let profile = SignUp { name: b.name, last_name: b.last_name, communications: comms };
    // Checked before the password is hashed (a slow step) and before anything is written.
    app.shop.check_sign_up(&id, &profile).await.map_err(|e| email_taken(&id, e))?;
    let hash = hash_password(app, b.password).await?;
    let c = app.shop.sign_up(&id, hash, profile).await.map_err(|e| email_taken(&id, e))?;
    Out::json(StatusCode::CREATED, &CustomerOut::from(&c))
}

/// Changes the caller's profile.
#[utoipa::path(put, path = "/customer", tag = "customer", security(("bearer" = [])), request_body = CustomerUpdateIn,
    responses((status = 200, body = CustomerOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_customer(app: &App, req: &Req, c: &Caller) -> Result<Out, ApiError> {
    let b: CustomerUpdateIn = json_body(req)?;
    let communications = match &b.communications {
        Some(v) => Some(
            v.iter()
                .map(CommunicationDto::to_domain)
                .collect::<Result<Vec<_>, _>>()
                .map_err(ApiError::Unprocessable)?,
        ),
        None => None,
    };
    let ch = ProfileChange { name: b.name, last_name: b.last_name, communications };
    let out = app.shop.update_customer(&c.customer, ch).await?;
    Out::json(StatusCode::OK, &CustomerOut::from(&out))
}

/// The caller's profile.
#[utoipa::path(get, path = "/customer", tag = "customer", security(("bearer" = [])),
    responses((status = 200, body = CustomerOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_customer(app: &App, _req: &Req, c: &Caller) -> Result<Out, ApiError> {
    Out::json(StatusCode::OK, &CustomerOut::from(&app.shop.customer(&c.customer).await?))
}

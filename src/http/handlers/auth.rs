//! Logging in (HTTP Basic → a token), checking and refreshing a token, logging out, and creating users of any role; passwords are hashed and checked on the bounded hashing pool.

use warp::http::StatusCode;

use super::super::auth::{basic_credentials, Caller, TOKEN_REFRESH_WINDOW_MS};
use super::super::dto::*;
use super::super::error::{ApiError, ErrorBody};
use super::super::request::{json_body, now};
use super::super::{App, Out, Req};
use crate::app::shop::ShopError;
use crate::domain::auth::Role;
use crate::domain::CustomerId;

/// A hash of no one's password: an unknown account is checked against it, so that a login for
/// an account that does not exist takes as long as one that does (no enumeration by timing).
pub(crate) fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| crate::app::passwords::hash("not-a-real-password").unwrap_or_default())
}

pub(crate) fn pool_error(e: crate::app::passwords::PoolError) -> ApiError {
    match e {
        crate::app::passwords::PoolError::Busy => ApiError::TooManyRequests(1),
        crate::app::passwords::PoolError::Failed => ApiError::Internal(e.to_string()),
    }
}

/// Checks a password on the bounded hashing pool (`None`: check it against no one's).
pub(crate) async fn verify_password(app: &App, password: String, hash: Option<String>) -> Result<bool, ApiError> {
    app.hashes
        .run(move || crate::app::passwords::verify(&password, hash.as_deref().unwrap_or_else(|| dummy_hash())))
        .await
        .map_err(pool_error)
}

pub(crate) async fn hash_password(app: &App, password: String) -> Result<String, ApiError> {
    match app.hashes.run(move || crate::app::passwords::hash(&password)).await.map_err(pool_error)? {
        Ok(h) => Ok(h),
        Err(crate::app::passwords::PasswordError::Length) => {
            Err(ApiError::Unprocessable("a password has 8 to 256 characters".into()))
        }
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// Logs in with HTTP Basic (email:password) and returns a token.
#[utoipa::path(get, path = "/token", tag = "auth", security(("basic" = [])),
    responses((status = 200, body = TokenOut), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn token(app: &App, req: &Req) -> Result<Out, ApiError> {
    let (email, password) = basic_credentials(req.header("authorization"))?;
    let account = email.trim().to_ascii_lowercase();
    app.auth.check_throttle(&account, req.client, now(app))?;
    let user = match CustomerId::parse(&email) {
        // No such account is checked like a wrong password; an account that cannot be read
        // now (its node is down) is a 503, not a "wrong password".
        Ok(id) => match app.shop.user(&id).await {
            Ok(u) => Some(u),
            Err(ShopError::Domain(_)) => None,
            Err(e) => return Err(e.into()),
        },
        Err(_) => None,
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok = verify_password(app, password, hash).await? && user.is_some();
    let Some(user) = user.filter(|_| ok) else {
        app.auth.login_failed(&account, req.client, now(app));
        return Err(ApiError::Unauthorized("wrong e-mail or password".into()));
    };
    if !user.is_enable {
        return Err(ApiError::Unauthorized("the account is disabled".into()));
    }
    app.auth.login_succeeded(&account, req.client);
    let (token, exp) = app.auth.issue(&user, now(app))?;
    Out::json(
        StatusCode::OK,
        &TokenOut {
            token,
            customer_id: user.customer_id.to_string(),
            role: user.role.name().into(),
            expired_time: rfc3339(exp),
        },
    )
}

/// Checks a token; returns a fresh one when it expires soon.
#[utoipa::path(get, path = "/checkToken", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = CheckTokenOut), (status = 401, body = ErrorBody)))]
pub async fn check_token(app: &App, _req: &Req, c: &Caller) -> Result<Out, ApiError> {
    // The user as stored now: a disabled account's token is no longer valid.
    let user = app.shop.user(&c.customer).await.map_err(|_| ApiError::Unauthorized("no such user".into()))?;
    if !user.is_enable {
        return Err(ApiError::Unauthorized("the account is disabled".into()));
    }
    let (token, exp) = if c.exp_ms.saturating_sub(now(app)) < TOKEN_REFRESH_WINDOW_MS {
        app.auth.issue(&user, now(app))?
    } else {
        (c.token.clone(), c.exp_ms)
    };
    Out::json(
        StatusCode::OK,
        &CheckTokenOut {
            valid: true,
            customer_id: c.customer.to_string(),
            role: c.role.name().into(),
            expired_time: rfc3339(exp),
            token,
        },
    )
}

/// Revokes the caller's token.
#[utoipa::path(post, path = "/user/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(app: &App, _req: &Req, c: &Caller) -> Result<Out, ApiError> {
    app.shop.revoke(&c.jti, c.exp_ms).await?;
    app.auth.revoke_local(&c.jti, c.exp_ms, now(app));
    Ok(Out::Empty(StatusCode::NO_CONTENT))
}

/// Creates a user with any role (ADMIN).
#[utoipa::path(post, path = "/user", tag = "auth", security(("bearer" = [])), request_body = UserIn,
    responses((status = 201, body = UserOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create_user(app: &App, req: &Req, _c: &Caller) -> Result<Out, ApiError> {
    let b: UserIn = json_body(req)?;
    let id = CustomerId::parse(&b.email)
        .map_err(|_| ApiError::Unprocessable("email is not a valid e-mail address".into()))?;
    let role = Role::parse(&b.role).ok_or_else(|| ApiError::Unprocessable(format!("unknown role {:?}", b.role)))?;
    let hash = hash_password(app, b.password).await?;
    let u = app.shop.create_user(&id, hash, role).await?;
    Out::json(
        StatusCode::CREATED,
        &UserOut { customer_id: u.customer_id.to_string(), role: u.role.name().into(), is_enable: u.is_enable },
    )
}

//! Routing and handlers: one function per route of API.md, each annotated for the OpenAPI
//! document. Handlers check the caller's role and ownership first, parse and validate input
//! second, and only then ask a service; a refused request changes nothing stored.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use warp::http::{Method, StatusCode};

use super::auth::{basic_credentials, bearer, Caller, TOKEN_REFRESH_WINDOW_MS};
use super::dto::*;
use super::error::{ApiError, ErrorBody};
use super::{App, Out, Req};
use crate::actors::fresh_message_id;
use crate::actors::idempotency::{record_key, StoredAnswer};
use crate::actors::order::OrderKind;
use crate::domain::auth::Role;
use crate::domain::customer::ProfileChange;
use crate::domain::order::Canceller;
use crate::domain::saga::{OrderStatus, ShipmentStatus};
use crate::domain::stock::Dimensions;
use crate::domain::{Currency, CustomerId, MessageId, Money, OrderId, Qty, Sku};

/// How long `/pay/redirectUrl` waits for an order's booking.
const REDIRECT_WAIT: Duration = Duration::from_secs(3);
/// Most orders `GET /orders` lists for an operator (newest first).
const ORDERS_LISTED_MAX: usize = 500;

/// Every route: (template, methods).
pub const ROUTES: &[(&str, &[Method])] = &[
    ("/token", &[Method::GET]),
    ("/checkToken", &[Method::GET]),
    ("/user/logout", &[Method::POST]),
    ("/user", &[Method::POST]),
    ("/customer", &[Method::POST, Method::PUT, Method::GET]),
    ("/product/add", &[Method::POST]),
    ("/product/{id}", &[Method::GET]),
    ("/products", &[Method::GET]),
    ("/stock/freeItems/{id}", &[Method::GET]),
    ("/stock/items", &[Method::POST]),
    ("/order/add", &[Method::POST]),
    ("/order/{id}", &[Method::GET]),
    ("/orders", &[Method::GET]),
    ("/order/{id}/cancel", &[Method::POST]),
    ("/order/{id}/timeline", &[Method::GET]),
    ("/pay/redirectUrl", &[Method::GET]),
    ("/payments/{orderId}", &[Method::GET]),
    ("/pay/callback", &[Method::POST]),
    ("/sandbox/pay/{paymentId}", &[Method::GET, Method::POST]),
    ("/shipping/{id}", &[Method::GET]),
    ("/shipping/{id}/status", &[Method::POST]),
    ("/calcPrice", &[Method::POST]),
    ("/promocode", &[Method::POST]),
    ("/promocodes", &[Method::GET]),
    ("/health", &[Method::GET]),
    ("/metrics", &[Method::GET]),
    ("/cluster", &[Method::GET]),
    ("/notifications", &[Method::GET]),
    ("/invariants", &[Method::GET]),
    ("/openapi.json", &[Method::GET]),
];

fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

/// The route template a path matches.
pub fn template(path: &str) -> Option<&'static str> {
    let segs = segments(path);
    ROUTES.iter().map(|(t, _)| *t).find(|t| {
        let ts = segments(t);
        ts.len() == segs.len() && ts.iter().zip(&segs).all(|(a, b)| (a.starts_with('{') && !b.is_empty()) || a == b)
    })
}

/// The `Allow` header of a route (RFC 9110: a 405 names the methods that would work; HEAD
/// works wherever GET does).
pub fn allowed_methods(template: Option<&str>) -> Option<String> {
    let t = template?;
    let ms = ROUTES.iter().find(|(r, _)| *r == t)?.1;
    let mut names: Vec<&str> = ms.iter().map(Method::as_str).collect();
    if ms.contains(&Method::GET) {
        names.push("HEAD");
    }
    Some(names.join(", "))
}

/// Outside input echoed in an error, cut to a readable length.
pub(crate) fn shown(s: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 64;
    if s.chars().count() <= SHOWN_CHARS_MAX {
        return s.to_owned();
    }
    let cut: String = s.chars().take(SHOWN_CHARS_MAX).collect();
    format!("{cut}…")
}

/// The path parameter at position `i` (percent-decoded).
pub(crate) fn param(req: &Req, i: usize) -> String {
    let raw = segments(&req.path).get(i).copied().unwrap_or("");
    percent_decode(raw)
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(hi * 16 + lo);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Routes a request to its handler.
pub async fn dispatch(app: &App, template: Option<&'static str>, req: Req) -> Result<Out, ApiError> {
    let Some(t) = template else { return Err(ApiError::NotFound(format!("no route {}", shown(&req.path)))) };
    let allowed = ROUTES.iter().find(|(r, _)| *r == t).map(|(_, ms)| *ms).unwrap_or(&[]);
    // HEAD is GET without the body (the HTTP library leaves the body out).
    let m = if req.method == Method::HEAD && allowed.contains(&Method::GET) { Method::GET } else { req.method.clone() };
    if !allowed.contains(&m) {
        return Err(ApiError::MethodNotAllowed);
    }
    match (t, m) {
        ("/token", Method::GET) => token(app, &req).await,
        ("/checkToken", Method::GET) => check_token(app, &req).await,
        ("/user/logout", Method::POST) => logout(app, &req).await,
        ("/user", Method::POST) => idempotent(app, &req, t, true, create_user(app, &req)).await,
        ("/customer", Method::POST) => idempotent(app, &req, t, false, post_customer(app, &req)).await,
        ("/customer", Method::PUT) => put_customer(app, &req).await,
        ("/customer", Method::GET) => get_customer(app, &req).await,
        ("/product/add", Method::POST) => idempotent(app, &req, t, true, add_product(app, &req)).await,
        ("/product/{id}", Method::GET) => get_product(app, &req).await,
        ("/products", Method::GET) => list_products(app, &req).await,
        ("/stock/freeItems/{id}", Method::GET) => free_items(app, &req).await,
        ("/stock/items", Method::POST) => receive_stock(app, &req).await,
        ("/order/add", Method::POST) => idempotent(app, &req, t, true, add_order(app, &req)).await,
        ("/order/{id}", Method::GET) => get_order(app, &req).await,
        ("/orders", Method::GET) => list_orders(app, &req).await,
        ("/order/{id}/cancel", Method::POST) => cancel_order(app, &req).await,
        ("/order/{id}/timeline", Method::GET) => timeline(app, &req).await,
        ("/pay/redirectUrl", Method::GET) => redirect_url(app, &req).await,
        ("/payments/{orderId}", Method::GET) => payments(app, &req).await,
        ("/pay/callback", Method::POST) => callback(app, &req).await,
        ("/sandbox/pay/{paymentId}", Method::GET) => super::sandbox::page(app, &req).await,
        ("/sandbox/pay/{paymentId}", Method::POST) => super::sandbox::act(app, &req).await,
        ("/shipping/{id}", Method::GET) => get_shipping(app, &req).await,
        ("/shipping/{id}/status", Method::POST) => ship(app, &req).await,
        ("/calcPrice", Method::POST) => calc_price(app, &req).await,
        ("/promocode", Method::POST) => idempotent(app, &req, t, true, post_promocode(app, &req)).await,
        ("/promocodes", Method::GET) => list_promocodes(app, &req).await,
        ("/health", Method::GET) => health(app).await,
        ("/metrics", Method::GET) => {
            metrics::gauge!("password_hash_workers").set(app.hashes.workers() as f64);
            metrics::gauge!("password_hashes_in_flight").set(app.hashes.in_flight() as f64);
            metrics::gauge!("password_hashes_in_flight_peak").set(app.hashes.peak() as f64);
            metrics::gauge!("password_hashes_refused_total").set(app.hashes.refused() as f64);
            Ok(Out::Text(StatusCode::OK, (app.metrics)(), "text/plain; version=0.0.4"))
        }
        ("/cluster", Method::GET) => cluster(app, &req).await,
        ("/notifications", Method::GET) => notifications(app, &req).await,
        ("/invariants", Method::GET) => invariants(app, &req).await,
        ("/openapi.json", Method::GET) => Ok(Out::Json(StatusCode::OK, super::openapi::document_json())),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

// ---- helpers ----

fn now(app: &App) -> u64 {
    app.clock.now_ms()
}

fn caller(app: &App, req: &Req) -> Result<Caller, ApiError> {
    let token = bearer(req.header("authorization"))?;
    app.auth.verify(token, now(app))
}

fn json_body<T: DeserializeOwned>(req: &Req) -> Result<T, ApiError> {
    let ctype = req.header("content-type").unwrap_or("").to_ascii_lowercase();
    let essence = ctype.split(';').next().unwrap_or("").trim();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    // Syntax first (400), then shape and types (422).
    let value = super::json::parse(&req.body).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    // The error names where in the body it went wrong (`itemsList[0].quantity: ...`).
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::Unprocessable(format!("invalid body: {inner}"))
        } else {
            ApiError::Unprocessable(format!("invalid body at {path}: {inner}"))
        }
    })
}

fn query<T: DeserializeOwned>(req: &Req) -> Result<T, ApiError> {
    serde_urlencoded::from_str(&req.query).map_err(|e| ApiError::BadRequest(format!("bad query: {e}")))
}

fn unprocessable(e: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable(e.to_string())
}

fn order_id(req: &Req, i: usize) -> Result<OrderId, ApiError> {
    let raw = param(req, i);
    OrderId::parse(&raw).map_err(|_| ApiError::NotFound(format!("order {} not found", shown(&raw))))
}

/// Reads an order the caller may see: its owner, or staff in `staff`.
async fn readable_order(
    app: &App,
    c: &Caller,
    id: &OrderId,
    staff: &[Role],
) -> Result<crate::domain::order::CommerceOrder, ApiError> {
    if c.role == Role::Customer || !(c.role == Role::Admin || staff.contains(&c.role)) {
        // A customer, or staff without the right: only their own order.
        let o = app.shop.order(id).await?;
        if o.customer_id != c.customer {
            return Err(ApiError::Forbidden("not your order".into()));
        }
        return Ok(o);
    }
    Ok(app.shop.order(id).await?)
}

fn lines(items: &[LineIn]) -> Result<Vec<(Sku, Qty)>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::Unprocessable("itemsList must not be empty".into()));
    }
    items
        .iter()
        .map(|l| {
            let sku = Sku::parse(&l.id)
                .map_err(|_| ApiError::Unprocessable(format!("unknown product {:?}", shown(&l.id))))?;
            let q =
                Qty::positive(l.quantity).map_err(|_| ApiError::Unprocessable("quantity must be at least 1".into()))?;
            Ok((sku, q))
        })
        .collect()
}

/// Runs a creating handler under the request's `Idempotency-Key`: a repeat from the same caller
/// within 24 h gets the first answer and does nothing else.
async fn idempotent(
    app: &App,
    req: &Req,
    route: &str,
    needs_token: bool,
    run: impl std::future::Future<Output = Result<Out, ApiError>>,
) -> Result<Out, ApiError> {
    // The raw value: a key that is not text at all must be refused, not taken for no key.
    let Some(raw) = req.headers.get("idempotency-key") else { return run.await };
    if needs_token {
        // Who may not use the route learns that first (401/403 come from the handler).
        caller(app, req)?;
    }
    // As `IdempotencyHeader` documents it: `^[!-~]{1,200}$`.
    let key = raw
        .to_str()
        .ok()
        .filter(|k| (1..=200).contains(&k.len()) && k.bytes().all(|b| (b'!'..=b'~').contains(&b)))
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1 to 200 visible ASCII characters, without spaces".into())
        })?;
    let who = bearer(req.header("authorization"))
        .ok()
        .and_then(|t| app.auth.verify(t, now(app)).ok())
        .map_or_else(|| "anonymous".to_owned(), |c| c.customer.to_string());
    let rk = record_key(&who, route, key);
    let _one_at_a_time = app.idempotency_locks.lock(&rk).await;
    let request_hash = xxhash_rust::xxh3::xxh3_64(&req.body);
    let replay = |a: StoredAnswer| {
        if a.request_hash != request_hash {
            return Err(ApiError::Unprocessable(
                "this Idempotency-Key was used with another request body; use a new key".into(),
            ));
        }
        Ok(Out::Json(StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK), a.body))
    };
    if let Some(a) = app.shop.idempotent_answer(&rk).await? {
        return replay(a);
    }
    let out = run.await;
    let (status, body) = match &out {
        Ok(Out::Json(s, b)) => (*s, b.clone()),
        // A refusal that depends on nothing but the request is kept too; passing states
        // (overload, a bug, a throttle) are not, so a retry may succeed.
        Err(e) if !matches!(e, ApiError::Internal(_) | ApiError::Unavailable(_) | ApiError::TooManyRequests(_)) => {
            let (s, b) = e.parts();
            (s, serde_json::to_vec(&b).unwrap_or_default())
        }
        _ => return out,
    };
    let answer = StoredAnswer { status: status.as_u16(), body, at_ms: now(app), request_hash };
    match app.shop.keep_answer(&rk, answer.clone()).await? {
        // A concurrent repeat kept its answer first: everyone gets that one.
        Some(first) if first != answer => replay(first),
        _ => out,
    }
}

/// The message id a creating command takes under an `Idempotency-Key` (so even concurrent
/// repeats take effect once), else a fresh one.
fn command_id(app: &App, req: &Req, route: &str) -> MessageId {
    match (
        req.header("idempotency-key"),
        bearer(req.header("authorization")).ok().and_then(|t| app.auth.verify(t, now(app)).ok()),
    ) {
        (Some(k), Some(c)) => {
            MessageId::derived(&[b"idempotency", c.customer.as_str().as_bytes(), route.as_bytes(), k.as_bytes()])
        }
        _ => fresh_message_id(),
    }
}

/// A hash of no one's password: an unknown account is checked against it, so that a login for
/// an account that does not exist takes as long as one that does (no enumeration by timing).
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| crate::app::passwords::hash("not-a-real-password").unwrap_or_default())
}

fn pool_error(e: crate::app::passwords::PoolError) -> ApiError {
    match e {
        crate::app::passwords::PoolError::Busy => ApiError::TooManyRequests(1),
        crate::app::passwords::PoolError::Failed => ApiError::Internal(e.to_string()),
    }
}

/// Checks a password on the bounded hashing pool (`None`: check it against no one's).
async fn verify_password(app: &App, password: String, hash: Option<String>) -> Result<bool, ApiError> {
    app.hashes
        .run(move || crate::app::passwords::verify(&password, hash.as_deref().unwrap_or_else(|| dummy_hash())))
        .await
        .map_err(pool_error)
}

async fn hash_password(app: &App, password: String) -> Result<String, ApiError> {
    match app.hashes.run(move || crate::app::passwords::hash(&password)).await.map_err(pool_error)? {
        Ok(h) => Ok(h),
        Err(crate::app::passwords::PasswordError::Length) => {
            Err(ApiError::Unprocessable("a password has 8 to 256 characters".into()))
        }
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

// ---- auth ----

/// Logs in with HTTP Basic (email:password) and returns a token.
#[utoipa::path(get, path = "/token", tag = "auth", security(("basic" = [])),
    responses((status = 200, body = TokenOut), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn token(app: &App, req: &Req) -> Result<Out, ApiError> {
    let (email, password) = basic_credentials(req.header("authorization"))?;
    let account = email.trim().to_ascii_lowercase();
    app.auth.check_throttle(&account, req.client, now(app))?;
    let user = match CustomerId::parse(&email) {
        Ok(id) => app.shop.user(&id).await.ok(),
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
pub async fn check_token(app: &App, req: &Req) -> Result<Out, ApiError> {
    let c = caller(app, req)?;
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
pub async fn logout(app: &App, req: &Req) -> Result<Out, ApiError> {
    let c = caller(app, req)?;
    app.shop.revoke(&c.jti, c.exp_ms).await?;
    app.auth.revoke_local(&c.jti, c.exp_ms, now(app));
    Ok(Out::Empty(StatusCode::NO_CONTENT))
}

/// Creates a user with any role (ADMIN).
#[utoipa::path(post, path = "/user", tag = "auth", security(("bearer" = [])), request_body = UserIn,
    params(IdempotencyHeader),
    responses((status = 201, body = UserOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create_user(app: &App, req: &Req) -> Result<Out, ApiError> {
    caller(app, req)?.require(&[Role::Admin])?;
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

// ---- customer ----

/// Signs a customer up.
#[utoipa::path(post, path = "/customer", tag = "customer", request_body = CustomerIn,
    params(IdempotencyHeader),
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
    // Validate the whole profile before anything is written.
    crate::domain::customer::Customer::unregistered(id.clone()).register(
        &b.name,
        &b.last_name,
        comms.clone(),
        &crate::domain::Ctx {
            now_ms: 1,
            node: crate::domain::NodeId::parse("check").map_err(unprocessable)?,
            cause: fresh_message_id(),
        },
    )?;
    if app.shop.user(&id).await.is_ok() {
        return Err(ApiError::Conflict {
            code: "email_taken",
            message: format!("{id} is registered already"),
            order_id: None,
        });
    }
    let hash = hash_password(app, b.password).await?;
    app.shop.create_user(&id, hash, Role::Customer).await?;
    let c = match app.shop.register_customer(&id, &b.name, &b.last_name, comms).await {
        Ok(c) => c,
        Err(crate::app::shop::ShopError::Domain(crate::domain::DomainError::AlreadyExists { .. })) => {
            app.shop.customer(&id).await?
        }
        Err(e) => return Err(e.into()),
    };
    Out::json(StatusCode::CREATED, &CustomerOut::from(&c))
}

/// Changes the caller's profile.
#[utoipa::path(put, path = "/customer", tag = "customer", security(("bearer" = [])), request_body = CustomerUpdateIn,
    responses((status = 200, body = CustomerOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_customer(app: &App, req: &Req) -> Result<Out, ApiError> {
    let c = caller(app, req)?;
    c.require(&[Role::Customer])?;
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
pub async fn get_customer(app: &App, req: &Req) -> Result<Out, ApiError> {
    let c = caller(app, req)?;
    c.require(&[Role::Customer])?;
    Out::json(StatusCode::OK, &CustomerOut::from(&app.shop.customer(&c.customer).await?))
}

// ---- catalogue ----

/// One product.
#[utoipa::path(get, path = "/product/{id}", tag = "catalogue", params(("id" = String, Path, description = "product id")),
    responses((status = 200, body = ProductOut), (status = 404, body = ErrorBody)))]
pub async fn get_product(app: &App, req: &Req) -> Result<Out, ApiError> {
    let raw = param(req, 1);
    let not_found = || ApiError::NotFound(format!("product {} not found", shown(&raw)));
    let id = Sku::parse(&raw).map_err(|_| not_found())?;
    let v = app.view.product(&id, now(app)).ok_or_else(not_found)?;
    Out::json(StatusCode::OK, &ProductOut::from(&v))
}

/// `GET /products` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductsQuery {
    /// Full-text search over name and description.
    pub q: Option<String>,
    /// Only products with an active promotion.
    pub promo: Option<bool>,
    /// Only products in stock.
    pub in_stock: Option<bool>,
    /// Page number, from 0 (at most 10000).
    #[param(minimum = 0, maximum = 10000)]
    pub page: Option<usize>,
    /// Page size, 1..100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<usize>,
}

/// Searches the catalogue.
#[utoipa::path(get, path = "/products", tag = "catalogue", params(ProductsQuery),
    responses((status = 200, body = ProductPage), (status = 400, body = ErrorBody)))]
pub async fn list_products(app: &App, req: &Req) -> Result<Out, ApiError> {
    let q: ProductsQuery = query(req)?;
    let size = q.size.unwrap_or(20);
    let page = q.page.unwrap_or(0);
    if !(1..=100).contains(&size) || page > 10_000 {
        return Err(ApiError::BadRequest("size must be 1..100 and page 0..10000".into()));
    }
    if q.q.as_ref().is_some_and(|s| s.len() > 500) {
        return Err(ApiError::BadRequest("q is at most 500 characters".into()));
    }
    let (items, total) =
        app.view.search(q.q.as_deref(), q.promo.unwrap_or(false), q.in_stock.unwrap_or(false), page, size, now(app));
    Out::json(StatusCode::OK, &ProductPage { items: items.iter().map(ProductOut::from).collect(), total, page, size })
}

/// Adds a book (ADMIN).
#[utoipa::path(post, path = "/product/add", tag = "catalogue", security(("bearer" = [])), request_body = ProductIn,
    params(IdempotencyHeader),
    responses((status = 201, body = ProductOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_product(app: &App, req: &Req) -> Result<Out, ApiError> {
    caller(app, req)?.require(&[Role::Admin])?;
    let b: ProductIn = json_body(req)?;
    let id = match &b.id {
        Some(id) => Sku::parse(id).map_err(unprocessable)?,
        None => {
            Sku::parse(&format!("book-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])).map_err(unprocessable)?
        }
    };
    let p = app.shop.add_product(&id, &b.name, &b.description, Money::new(b.price, Currency::EUR), b.photo).await?;
    let v = crate::actors::catalogue::view::ProductView { product: p, free: 0, promotions: Vec::new() };
    Out::json(StatusCode::CREATED, &ProductOut::from(&v))
}

// ---- stock ----

/// Free and booked units of an item.
#[utoipa::path(get, path = "/stock/freeItems/{id}", tag = "stock", params(("id" = String, Path, description = "item id")),
    responses((status = 200, body = FreeItemsOut), (status = 404, body = ErrorBody)))]
pub async fn free_items(app: &App, req: &Req) -> Result<Out, ApiError> {
    let raw = param(req, 2);
    let not_found = || ApiError::NotFound(format!("item {raw} not found"));
    let id = Sku::parse(&raw).map_err(|_| not_found())?;
    let v = app.shop.stock_item(&id).await?;
    if v.levels.received.is_zero() && app.view.product(&id, now(app)).is_none() {
        return Err(not_found());
    }
    Out::json(
        StatusCode::OK,
        &FreeItemsOut {
            id: id.to_string(),
            free_quantity: v.levels.free.get(),
            booked_quantity: v.levels.booked.get(),
        },
    )
}

/// Receives stock (STOCK_OPERATOR).
#[utoipa::path(post, path = "/stock/items", tag = "stock", security(("bearer" = [])), request_body = StockIn,
    responses((status = 200, body = ItemOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn receive_stock(app: &App, req: &Req) -> Result<Out, ApiError> {
    caller(app, req)?.require(&[Role::StockOperator])?;
    let b: StockIn = json_body(req)?;
    let id = Sku::parse(&b.id).map_err(|_| ApiError::Unprocessable(format!("unknown product {:?}", b.id)))?;
    app.shop.product(&id).await.map_err(|_| ApiError::Unprocessable(format!("unknown product {id}")))?;
    let qty = Qty::positive(b.quantity).map_err(|_| ApiError::Unprocessable("quantity must be at least 1".into()))?;
    let dims = Dimensions { weight_g: b.weight, length_mm: b.length, width_mm: b.width, height_mm: b.height };
    let v = app.shop.receive_stock(&id, qty, Some(dims)).await?;
    let d = v.dims.unwrap_or(dims);
    Out::json(
        StatusCode::OK,
        &ItemOut {
            id: id.to_string(),
            quantity: v.levels.received.get(),
            free_quantity: v.levels.free.get(),
            weight: d.weight_g,
            length: d.length_mm,
            width: d.width_mm,
            height: d.height_mm,
        },
    )
}

// ---- orders ----

/// Places an order (CUSTOMER).
#[utoipa::path(post, path = "/order/add", tag = "order", security(("bearer" = [])), request_body = OrderIn,
    params(IdempotencyHeader),
    responses((status = 201, body = OrderOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "unpaid_order_exists, with orderId"), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn add_order(app: &App, req: &Req) -> Result<Out, ApiError> {
    let c = caller(app, req)?;
    c.require(&[Role::Customer])?;
    let b: OrderIn = json_body(req)?;
    let items = lines(&b.items_list)?;
    let id = command_id(app, req, "/order/add");
    let o = app.shop.place_order_as(id, &c.customer, &items, b.promo_code.as_deref()).await?;
    Out::json(StatusCode::CREATED, &OrderOut::from(&o))
}

/// One order (owner, OPERATOR).
#[utoipa::path(get, path = "/order/{id}", tag = "order", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = OrderOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_order(app: &App, req: &Req) -> Result<Out, ApiError> {
    let c = caller(app, req)?;
    let o = readable_order(app, &c, &order_id(req, 1)?, &[Role::Operator]).await?;
    Out::json(StatusCode::OK, &OrderOut::from(&o))
}

/// `GET /orders` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrdersQuery {
    /// Only orders in this status (operators).
    #[param(
        pattern = "^(NEW|BOOKING_PENDING|BOOKED|PAY_PENDING|PAID|PAID_PARTIAL|SHIPPING_PENDING|COMPLETED|CANCELLED)$"
    )]
    pub status: Option<String>,
}

async fn summary(app: &App, o: &crate::domain::order::CommerceOrder) -> Result<OrderSummaryOut, ApiError> {
    let payments = app.shop.payments(&o.id).await?.payments.iter().map(|p| PaymentOut::of(o.id.as_str(), p)).collect();
    let shipping = app.shop.shipment(&o.id).await.ok().map(|s| ShippingOut::from(&s));
    Ok(OrderSummaryOut { order: OrderOut::from(o), payments, shipping })
}

/// The personal account: the caller's orders (CUSTOMER), or every order (OPERATOR, newest
/// 500, `?status=`), with payments and shipping.
#[utoipa::path(get, path = "/orders", tag = "order", security(("bearer" = [])), params(OrdersQuery),
    responses((status = 200, body = [OrderSummaryOut]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_orders(app: &App, req: &Req) -> Result<Out, ApiError> {
    let c = caller(app, req)?;
    let q: OrdersQuery = query(req)?;
    let status = match &q.status {
        Some(s) => Some(OrderStatus::parse(s).ok_or_else(|| ApiError::BadRequest(format!("unknown status {s:?}")))?),
        None => None,
    };
    let mut orders = Vec::new();
    if c.role == Role::Customer {
        for id in app.shop.customer_orders(&c.customer).await?.recent.iter().rev() {
            if let Ok(o) = app.shop.order(id).await {
                orders.push(o);
            }
        }
    } else {
        c.require(&[Role::Operator])?;
        let mut all: Vec<_> = app.shop.scan::<OrderKind>()?.into_iter().flatten().collect();
        all.sort_by_key(|o| std::cmp::Reverse(o.created_at_ms));
        orders = all;
    }
    let mut out = Vec::new();
    for o in orders.iter().filter(|o| status.is_none_or(|s| o.status == s)).take(ORDERS_LISTED_MAX) {
        out.push(summary(app, o).await?);
    }
    Out::json(StatusCode::OK, &out)
}

/// Cancels an order (owner before it is paid; OPERATOR until it ships).
#[utoipa::path(post, path = "/order/{id}/cancel", tag = "order", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = OrderOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_order(app: &App, req: &Req) -> Result<Out, ApiError> {
    let c = caller(app, req)?;
    let id = order_id(req, 1)?;
    let by = if c.role == Role::Operator || c.role == Role::Admin {
        Canceller::Operator
    } else if c.role == Role::Customer {
        readable_order(app, &c, &id, &[]).await?;
        Canceller::Customer(c.customer.clone())
    } else {
        return Err(ApiError::Forbidden("only the owner or an operator cancels an order".into()));
    };
    let o = app.shop.cancel_order(&id, by).await?;
    Out::json(StatusCode::OK, &OrderOut::from(&o))
}

/// Every event that touched an order, in the order it took effect (owner, OPERATOR).
#[utoipa::path(get, path = "/order/{id}/timeline", tag = "order", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = [TimelineOut]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn timeline(app: &App, req: &Req) -> Result<Out, ApiError> {
    let c = caller(app, req)?;
    let id = order_id(req, 1)?;
    readable_order(app, &c, &id, &[Role::Operator]).await?;
    Out::json(StatusCode::OK, &app.shop.timeline(&id).await?.iter().map(TimelineOut::from).collect::<Vec<_>>())
}

// ---- payments ----

/// `GET /pay/redirectUrl` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RedirectQuery {
    /// The order to pay.
    pub order_id: String,
}

/// The payment to make for an order (owner): the one in progress, or a new one for what is due.
#[utoipa::path(get, path = "/pay/redirectUrl", tag = "payment", security(("bearer" = [])), params(RedirectQuery),
    responses((status = 200, body = RedirectOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn redirect_url(app: &App, req: &Req) -> Result<Out, ApiError> {
    let c = caller(app, req)?;
    let q: RedirectQuery = query(req)?;
    let id = OrderId::parse(&q.order_id)
        .map_err(|_| ApiError::NotFound(format!("order {} not found", shown(&q.order_id))))?;
    let o = app.shop.order(&id).await?;
    if o.customer_id != c.customer {
        return Err(ApiError::Forbidden("not your order".into()));
    }
    let p = app.shop.redirect(&id, REDIRECT_WAIT).await?;
    Out::json(
        StatusCode::OK,
        &RedirectOut { payment_id: p.id.to_string(), redirect_url: p.redirect_url.clone(), amount: p.amount.minor() },
    )
}

/// The payments of an order (owner, OPERATOR).
#[utoipa::path(get, path = "/payments/{orderId}", tag = "payment", security(("bearer" = [])), params(("orderId" = String, Path)),
    responses((status = 200, body = [PaymentOut]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn payments(app: &App, req: &Req) -> Result<Out, ApiError> {
    let c = caller(app, req)?;
    let id = order_id(req, 1)?;
    readable_order(app, &c, &id, &[Role::Operator]).await?;
    let a = app.shop.payments(&id).await?;
    Out::json(StatusCode::OK, &a.payments.iter().map(|p| PaymentOut::of(id.as_str(), p)).collect::<Vec<_>>())
}

/// The payment system's callback, signed with HMAC-SHA256 of the body (hex, `X-Signature`).
#[utoipa::path(post, path = "/pay/callback", tag = "payment", request_body = crate::actors::payment::CallbackBody,
    params(("X-Signature" = String, Header, description = "hex HMAC-SHA256 of the body")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn callback(app: &App, req: &Req) -> Result<Out, ApiError> {
    let sig = req.header("x-signature").ok_or_else(|| ApiError::Unauthorized("X-Signature is missing".into()))?;
    app.shop.callback(&req.body, sig).await?;
    Ok(Out::Empty(StatusCode::NO_CONTENT))
}

// ---- shipping ----

/// An order's shipment (owner, SHIPPING_OPERATOR, OPERATOR).
#[utoipa::path(get, path = "/shipping/{id}", tag = "shipping", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ShippingOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_shipping(app: &App, req: &Req) -> Result<Out, ApiError> {
    let c = caller(app, req)?;
    let id = order_id(req, 1)?;
    readable_order(app, &c, &id, &[Role::Operator, Role::ShippingOperator]).await?;
    Out::json(StatusCode::OK, &ShippingOut::from(&app.shop.shipment(&id).await?))
}

/// Moves a shipment (SHIPPING_OPERATOR); a step may skip forward, never back.
#[utoipa::path(post, path = "/shipping/{id}/status", tag = "shipping", security(("bearer" = [])), params(("id" = String, Path)), request_body = ShippingStatusIn,
    responses((status = 200, body = ShippingOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn ship(app: &App, req: &Req) -> Result<Out, ApiError> {
    caller(app, req)?.require(&[Role::ShippingOperator])?;
    let id = order_id(req, 1)?;
    let b: ShippingStatusIn = json_body(req)?;
    let to = ShipmentStatus::parse(&b.status).filter(|s| *s != ShipmentStatus::Pending).ok_or_else(|| {
        ApiError::Unprocessable(format!("status {:?} is not ASSEMBLED, SHIPPED or DELIVERED", b.status))
    })?;
    Out::json(StatusCode::OK, &ShippingOut::from(&app.shop.ship(&id, to).await?))
}

// ---- promo codes ----

/// Prices lines, with a promo code if given.
#[utoipa::path(post, path = "/calcPrice", tag = "promocode", request_body = OrderIn,
    responses((status = 200, body = PriceOut), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn calc_price(app: &App, req: &Req) -> Result<Out, ApiError> {
    let b: OrderIn = json_body(req)?;
    let items = lines(&b.items_list)?;
    let p = app.shop.calc_price(&items, b.promo_code.as_deref()).await?;
    Out::json(StatusCode::OK, &PriceOut::from(&p))
}

/// Creates a promo code (ADMIN).
#[utoipa::path(post, path = "/promocode", tag = "promocode", security(("bearer" = [])), request_body = PromocodeIn,
    params(IdempotencyHeader),
    responses((status = 201, body = PromocodeOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn post_promocode(app: &App, req: &Req) -> Result<Out, ApiError> {
    caller(app, req)?.require(&[Role::Admin])?;
    let b: PromocodeIn = json_body(req)?;
    let rule = b.rule.to_domain().map_err(ApiError::Unprocessable)?;
    let p = app.shop.create_promo(&b.token, &b.description, rule).await?;
    Out::json(StatusCode::CREATED, &PromocodeOut::from(&p))
}

/// The promo codes active now.
#[utoipa::path(get, path = "/promocodes", tag = "promocode", responses((status = 200, body = [PromoListOut])))]
pub async fn list_promocodes(app: &App, _req: &Req) -> Result<Out, ApiError> {
    let list: Vec<PromoListOut> = app
        .view
        .active_promos(now(app))
        .iter()
        .map(|p| PromoListOut {
            token: p.token.clone(),
            description: p.description.clone(),
            rule: RuleDto::of(&p.rule),
        })
        .collect();
    Out::json(StatusCode::OK, &list)
}

// ---- operations ----

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = HealthOut)))]
pub async fn health(app: &App) -> Result<Out, ApiError> {
    Out::json(StatusCode::OK, &HealthOut { status: "ok".into(), node: app.node.clone(), partitions: app.partitions })
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics_doc() {}

/// The cluster as this node sees it (ADMIN, OPERATOR).
#[utoipa::path(get, path = "/cluster", tag = "operations", security(("bearer" = [])),
    responses((status = 200, body = ClusterOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn cluster(app: &App, req: &Req) -> Result<Out, ApiError> {
    caller(app, req)?.require(&[Role::Operator])?;
    let nodes = app
        .nodes
        .iter()
        .map(|n| NodeOut {
            name: n.clone(),
            reachable: *n == app.node,
            partitions: if *n == app.node { app.partitions } else { 0 },
        })
        .collect();
    let dead = app.store.dead_letters().map(|d| d.len()).map_err(|e| ApiError::Internal(e.to_string()))?;
    Out::json(StatusCode::OK, &ClusterOut { nodes, outbox_depth: app.store.outbox_len(), dead_letters: dead })
}

/// `GET /notifications` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    /// Only this order's (operators).
    pub order_id: Option<String>,
}

/// Notifications sent (CUSTOMER: their own; OPERATOR: all, `?orderId=`).
#[utoipa::path(get, path = "/notifications", tag = "operations", security(("bearer" = [])), params(NotificationsQuery),
    responses((status = 200, body = [NotificationOut]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn notifications(app: &App, req: &Req) -> Result<Out, ApiError> {
    let c = caller(app, req)?;
    let q: NotificationsQuery = query(req)?;
    if c.role != Role::Customer {
        c.require(&[Role::Operator])?;
    }
    let mut out: Vec<NotificationOut> = app
        .shop
        .sends()?
        .iter()
        .filter_map(NotificationOut::of)
        .filter(|n| c.role != Role::Customer || n.customer_id == c.customer.as_str())
        .filter(|n| q.order_id.as_ref().is_none_or(|o| n.order_id == *o))
        .collect();
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Out::json(StatusCode::OK, &out)
}

/// The invariant checker's verdict now (ADMIN, OPERATOR).
#[utoipa::path(get, path = "/invariants", tag = "operations", security(("bearer" = [])),
    responses((status = 200, body = InvariantsOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn invariants(app: &App, req: &Req) -> Result<Out, ApiError> {
    caller(app, req)?.require(&[Role::Operator])?;
    let r = app.shop.invariants();
    let out = InvariantsOut {
        ok: r.ok,
        checked_at: rfc3339(r.checked_at_ms),
        checks: r
            .checks
            .iter()
            .map(|c| CheckOut { name: c.name.into(), ok: c.ok, violations: c.violations.clone() })
            .collect(),
    };
    Out::json(StatusCode::OK, &out)
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi_doc() {}

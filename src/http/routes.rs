//! The route table: every route of API.md declared once — method, path template, handler, who
//! may call it, and whether it takes an `Idempotency-Key`. The dispatcher routes by it, answers
//! 405 with `Allow` from it, checks access before a handler runs, and the OpenAPI document
//! (`super::openapi`) is built from it: each route's security, its 401/403/404/413... answers and
//! its idempotency header come from here, its description, parameters and bodies from the
//! handler's `#[utoipa::path]` annotation (whose method and path the tests hold to this table).
//!
//! A new resource adds its handlers under `handlers/` and its lines here; the storefront's page
//! and assets are routes of this table too (served by the `storefront` module beside
//! `sandbox`).

use futures::future::BoxFuture;
use warp::http::Method;

use super::auth::Caller;
use super::error::ApiError;
use super::handlers::{auth, catalogue, customer, ops, order, payment, promo, shipping, stock};
use super::idempotency::idempotent;
use super::request::{caller, segments, shown};
use super::{sandbox, storefront, App, Out, Req};
use crate::domain::auth::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (`security: []`).
    Public,
    /// HTTP Basic credentials: the login.
    Basic,
    /// A valid bearer token of one of these roles (ADMIN always passes; empty: any role).
    /// Ownership of the resource is the handler's to check.
    Bearer(&'static [Role]),
    /// Anyone holding the capability the URL carries (`?key=`; a wrong one is 404).
    Capability,
    /// Anyone whose body is signed with the payment secret (`X-Signature`; a wrong one is 401).
    Signed,
}

/// What a route runs: the request, and the caller for a bearer route.
pub type Handler = for<'a> fn(&'a App, &'a Req, Option<&'a Caller>) -> BoxFuture<'a, Result<Out, ApiError>>;

/// One route.
pub struct Route {
    /// Its method.
    pub method: Method,
    /// Its path template (`/order/{id}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Whether an `Idempotency-Key` makes repeats answer the first answer.
    pub idempotent: bool,
    /// Its handler.
    pub handler: Handler,
    /// The handler's OpenAPI operation and the method and path its annotation names.
    pub doc: Doc,
}

/// A handler's `#[utoipa::path]` annotation, read through `utoipa::Path`.
#[derive(Clone, Copy)]
pub struct Doc {
    /// The operation.
    pub operation: fn() -> utoipa::openapi::path::Operation,
    /// The path the annotation names.
    pub path: fn() -> String,
    /// The methods it names.
    pub methods: fn() -> Vec<utoipa::openapi::path::HttpMethod>,
}

/// The `Doc` of an annotated handler's generated path type.
const fn doc<P: utoipa::Path>() -> Doc {
    Doc { operation: P::operation, path: P::path, methods: P::methods }
}

/// A bearer route's handler: it gets the caller the dispatcher checked.
macro_rules! bearer {
    ($h:path) => {{
        fn call<'a>(app: &'a App, req: &'a Req, c: Option<&'a Caller>) -> BoxFuture<'a, Result<Out, ApiError>> {
            match c {
                Some(c) => Box::pin($h(app, req, c)),
                None => Box::pin(async { Err(ApiError::Unauthorized("a bearer token is required".into())) }),
            }
        }
        call as Handler
    }};
}

/// A handler that needs no caller.
macro_rules! open {
    ($h:path) => {{
        fn call<'a>(app: &'a App, req: &'a Req, _c: Option<&'a Caller>) -> BoxFuture<'a, Result<Out, ApiError>> {
            Box::pin($h(app, req))
        }
        call as Handler
    }};
}

macro_rules! route {
    ($method:ident $path:literal, $access:expr, $call:ident $h:path, $doc:ty $(, $idem:ident)?) => {
        Route {
            method: Method::$method,
            path: $path,
            access: $access,
            idempotent: route!(@idem $($idem)?),
            handler: $call!($h),
            doc: doc::<$doc>(),
        }
    };
    (@idem) => { false };
    (@idem idempotent) => { true };
}

const ANY: &[Role] = &[];
const ADMIN: &[Role] = &[Role::Admin];
const CUSTOMER: &[Role] = &[Role::Customer];
const OPERATOR: &[Role] = &[Role::Operator];
const CUSTOMER_OR_OPERATOR: &[Role] = &[Role::Customer, Role::Operator];

/// Every route of the API.
pub static ROUTES: &[Route] = &[
    route!(GET "/token", Access::Basic, open auth::token, auth::__path_token),
    route!(GET "/checkToken", Access::Bearer(ANY), bearer auth::check_token, auth::__path_check_token),
    route!(POST "/user/logout", Access::Bearer(ANY), bearer auth::logout, auth::__path_logout),
    route!(POST "/user", Access::Bearer(ADMIN), bearer auth::create_user, auth::__path_create_user, idempotent),
    route!(POST "/customer", Access::Public, open customer::post_customer, customer::__path_post_customer, idempotent),
    route!(PUT "/customer", Access::Bearer(CUSTOMER), bearer customer::put_customer, customer::__path_put_customer),
    route!(GET "/customer", Access::Bearer(CUSTOMER), bearer customer::get_customer, customer::__path_get_customer),
    route!(POST "/product/add", Access::Bearer(ADMIN), bearer catalogue::add_product, catalogue::__path_add_product, idempotent),
    route!(GET "/product/{id}", Access::Public, open catalogue::get_product, catalogue::__path_get_product),
    route!(GET "/products", Access::Public, open catalogue::list_products, catalogue::__path_list_products),
    route!(GET "/stock/freeItems/{id}", Access::Public, open stock::free_items, stock::__path_free_items),
    route!(POST "/stock/items", Access::Bearer(&[Role::StockOperator]), bearer stock::receive_stock, stock::__path_receive_stock),
    route!(POST "/order/add", Access::Bearer(CUSTOMER), bearer order::add_order, order::__path_add_order, idempotent),
    route!(GET "/order/{id}", Access::Bearer(ANY), bearer order::get_order, order::__path_get_order),
    route!(GET "/orders", Access::Bearer(CUSTOMER_OR_OPERATOR), bearer order::list_orders, order::__path_list_orders),
    route!(POST "/order/{id}/cancel", Access::Bearer(CUSTOMER_OR_OPERATOR), bearer order::cancel_order, order::__path_cancel_order),
    route!(GET "/order/{id}/timeline", Access::Bearer(ANY), bearer order::timeline, order::__path_timeline),
    route!(GET "/order/{id}/events", Access::Bearer(ANY), bearer order::events, order::__path_events),
    route!(GET "/pay/redirectUrl", Access::Bearer(ANY), bearer payment::redirect_url, payment::__path_redirect_url),
    route!(GET "/payments/{orderId}", Access::Bearer(ANY), bearer payment::payments, payment::__path_payments),
    route!(POST "/pay/callback", Access::Signed, open payment::callback, payment::__path_callback),
    route!(GET "/sandbox/pay/{paymentId}", Access::Capability, open sandbox::page, sandbox::__path_page),
    route!(POST "/sandbox/pay/{paymentId}", Access::Capability, open sandbox::act, sandbox::__path_act),
    route!(GET "/shipping/{id}", Access::Bearer(ANY), bearer shipping::get_shipping, shipping::__path_get_shipping),
    route!(POST "/shipping/{id}/status", Access::Bearer(&[Role::ShippingOperator]), bearer shipping::ship, shipping::__path_ship),
    route!(POST "/calcPrice", Access::Public, open promo::calc_price, promo::__path_calc_price),
    route!(POST "/promocode", Access::Bearer(ADMIN), bearer promo::post_promocode, promo::__path_post_promocode, idempotent),
    route!(GET "/promocodes", Access::Public, open promo::list_promocodes, promo::__path_list_promocodes),
    route!(GET "/health", Access::Public, open ops::health, ops::__path_health),
    route!(GET "/metrics", Access::Public, open ops::metrics, ops::__path_metrics),
    route!(GET "/cluster", Access::Bearer(OPERATOR), bearer ops::cluster, ops::__path_cluster),
    route!(GET "/notifications", Access::Bearer(CUSTOMER_OR_OPERATOR), bearer ops::notifications, ops::__path_notifications),
    route!(GET "/invariants", Access::Bearer(OPERATOR), bearer ops::invariants, ops::__path_invariants),
    route!(GET "/openapi.json", Access::Public, open ops::openapi, ops::__path_openapi),
    route!(GET "/", Access::Public, open storefront::index, storefront::__path_index),
    route!(GET "/assets/{version}/{file}", Access::Public, open storefront::asset, storefront::__path_asset),
];

/// The route template a path matches.
pub fn template(path: &str) -> Option<&'static str> {
    let segs = segments(path);
    ROUTES.iter().map(|r| r.path).find(|t| {
        let ts = segments(t);
        ts.len() == segs.len() && ts.iter().zip(&segs).all(|(a, b)| (a.starts_with('{') && !b.is_empty()) || a == b)
    })
}

/// The methods a template takes, in table order.
fn methods_of(template: &str) -> Vec<&'static Method> {
    ROUTES.iter().filter(|r| r.path == template).map(|r| &r.method).collect()
}

/// The `Allow` header of a route (RFC 9110: a 405 names the methods that would work; HEAD
/// works wherever GET does).
pub fn allowed_methods(template: Option<&str>) -> Option<String> {
    let ms = methods_of(template?);
    if ms.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = ms.iter().map(|m| m.as_str()).collect();
    if ms.contains(&&Method::GET) {
        names.push("HEAD");
    }
    Some(names.join(", "))
}

/// Routes a request: 404 for no route, 405 for a method the route does not take, 401/403 for a
/// caller its access rule refuses (before the body is read), then the handler — under the
/// request's `Idempotency-Key` where the route takes one.
pub async fn dispatch(app: &App, template: Option<&'static str>, req: Req) -> Result<Out, ApiError> {
    let Some(t) = template else { return Err(ApiError::NotFound(format!("no route {}", shown(&req.path)))) };
    // HEAD is GET without the body (the HTTP library leaves the body out).
    let m = if req.method == Method::HEAD { Method::GET } else { req.method.clone() };
    let Some(route) = ROUTES.iter().find(|r| r.path == t && r.method == m) else {
        return Err(ApiError::MethodNotAllowed);
    };
    let who = match route.access {
        Access::Bearer(_) => Some(caller(app, &req)?),
        _ => None,
    };
    let run = async {
        if let (Access::Bearer(roles), Some(c)) = (route.access, &who) {
            if !roles.is_empty() {
                c.require(roles)?;
            }
        }
        (route.handler)(app, &req, who.as_ref()).await
    };
    if route.idempotent {
        idempotent(app, &req, route.path, run).await
    } else {
        run.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_declared_once_and_its_annotation_agrees() {
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[..i].iter().any(|o| o.path == r.path && o.method == r.method),
                "{} {} is declared twice",
                r.method,
                r.path
            );
            assert_eq!((r.doc.path)(), r.path, "the annotation of {} {} names another path", r.method, r.path);
            let methods: Vec<String> = (r.doc.methods)()
                .iter()
                .map(|m| serde_json::to_value(m).unwrap().as_str().unwrap_or_default().to_ascii_uppercase())
                .collect();
            assert_eq!(
                methods,
                vec![r.method.to_string()],
                "the annotation of {} {} names another method",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn paths_find_their_templates_and_methods() {
        assert_eq!(template("/order/o-1/cancel"), Some("/order/{id}/cancel"));
        assert_eq!(template("/order//cancel"), None);
        assert_eq!(template("/nowhere"), None);
        assert_eq!(allowed_methods(Some("/customer")).as_deref(), Some("POST, PUT, GET, HEAD"));
        assert_eq!(allowed_methods(Some("/pay/callback")).as_deref(), Some("POST"));
    }
}

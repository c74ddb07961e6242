//! The built-in sandbox payment system's page: pay in full, pay part, or fail, then call the
//! store back exactly as an external payment system would (a signed `POST /pay/callback` over
//! HTTP).
//!
//! The page of a payment is a capability URL: `/sandbox/pay/{paymentId}?key=…`, the key derived
//! from the payment id under the store's secret and handed out only by `/pay/redirectUrl` to
//! the order's owner. Without the right key the page does not exist (404) and nothing changes;
//! a form post from another site is refused; the page is served with no cache, no referrer (so
//! the link does not leak) and a CSP that allows no script. With the sandbox off (a real payment
//! system configured), every sandbox route is 404.

use std::time::Duration;

use serde::Deserialize;
use warp::http::StatusCode;

use super::dto::SandboxForm;
use super::error::{ApiError, ErrorBody};
use super::{html_escape, App, Out, Req};
use crate::actors::payment::Sandbox;
use crate::domain::payment::Payment;
use crate::domain::PaymentId;
use crate::limits::SANDBOX_CALLBACK_TIMEOUT_MS;

/// The page around both bodies; `{{body}}` marks where a body goes.
const LAYOUT: &str = include_str!("layout.html");
const PAGE: &str = include_str!("page.html");
const DONE: &str = include_str!("done.html");

/// The sandbox page's query: its key.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SandboxQuery {
    /// The payment page's key, from `redirectUrl`.
    pub key: Option<String>,
}

fn no_page() -> ApiError {
    ApiError::NotFound("no such payment page".into())
}

/// The payment a request's path and key open, or 404 (the same for a wrong key, an unknown
/// payment, or a sandbox that is off: a stranger learns nothing).
async fn payment(app: &App, req: &Req) -> Result<Payment, ApiError> {
    let sandbox: &Sandbox = app.shop.sandbox().ok_or_else(no_page)?;
    let q: SandboxQuery = serde_urlencoded::from_str(&req.query).map_err(|_| no_page())?;
    let raw = super::request::param(req, 2);
    let id = PaymentId::parse(&raw).map_err(|_| no_page())?;
    if !q.key.as_deref().is_some_and(|k| sandbox.check_link(&id, k)) {
        return Err(no_page());
    }
    let order = id.order().ok_or_else(no_page)?;
    let account = app.shop.payments(&order).await.map_err(|_| no_page())?;
    account.payments.into_iter().find(|p| p.id == id).ok_or_else(no_page)
}

fn fill(template: &str, pairs: &[(&str, &str)]) -> String {
    pairs.iter().fold(template.to_owned(), |page, (k, v)| page.replace(&format!("{{{{{k}}}}}"), &html_escape(v)))
}

/// `body` inside the layout, each part filled on its own (a value is never filled twice, so
/// text from outside cannot name a placeholder).
fn render(body: &str, pairs: &[(&str, &str)]) -> String {
    let (head, tail) = LAYOUT.split_once("{{body}}").unwrap_or((LAYOUT, ""));
    format!("{}{}{}", fill(head, pairs), fill(body, pairs), fill(tail, pairs))
}

/// The sandbox payment system's page: pay in full, pay part, or fail.
#[utoipa::path(get, path = "/sandbox/pay/{paymentId}", tag = "payment", security(()),
    params(("paymentId" = String, Path), SandboxQuery),
    responses((status = 200, content_type = "text/html", body = String), (status = 404, body = ErrorBody)))]
pub async fn page(app: &App, req: &Req) -> Result<Out, ApiError> {
    let p = payment(app, req).await?;
    let action = format!("/sandbox/pay/{}?{}", p.id, req.query);
    let html = render(
        PAGE,
        &[("id", p.id.as_str()), ("amount", &p.amount.to_string()), ("status", p.status.name()), ("action", &action)],
    );
    Ok(Out::Html(StatusCode::OK, html))
}

/// Whether a form post came from another site. A browser says where a request comes from in
/// `Sec-Fetch-Site` (only `same-origin` is taken); one that does not send it is judged by an
/// `Origin` that is not this host. (The page's `no-referrer` policy makes a browser send
/// `Origin: null` on its own form post, so `Sec-Fetch-Site` is the browser's answer.)
fn cross_site(req: &Req) -> bool {
    if let Some(site) = req.header("sec-fetch-site") {
        return !site.eq_ignore_ascii_case("same-origin");
    }
    match (req.header("origin"), req.header("host")) {
        (Some(origin), Some(host)) => {
            let o = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            !o.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
        _ => false,
    }
}

/// The sandbox acts: it calls `/pay/callback` over HTTP, signed, as an external system would.
#[utoipa::path(post, path = "/sandbox/pay/{paymentId}", tag = "payment", security(()),
    params(("paymentId" = String, Path), SandboxQuery),
    request_body(content = SandboxForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, content_type = "text/html", body = String), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn act(app: &App, req: &Req) -> Result<Out, ApiError> {
    let p = payment(app, req).await?;
    if cross_site(req) {
        return Err(ApiError::Forbidden("a payment form is only taken from its own page".into()));
    }
    let ctype = req.header("content-type").unwrap_or("").to_ascii_lowercase();
    if ctype.split(';').next().map(str::trim) != Some("application/x-www-form-urlencoded") {
        return Err(ApiError::UnsupportedMediaType);
    }
    let form: SandboxForm = serde_urlencoded::from_bytes(&req.body)
        .map_err(|_| ApiError::BadRequest("the form needs action=full, part or fail".into()))?;
    let (ok, amount) = match form.action.as_str() {
        "full" => (true, p.amount.minor()),
        "part" => (true, (p.amount.minor() / 2).max(1)),
        "fail" => (false, 0),
        _ => return Err(ApiError::BadRequest("the form needs action=full, part or fail".into())),
    };
    let (body, sig) = app.shop.sandbox_callback(&p, ok, amount);
    let url = format!("{}/pay/callback", app.self_url.read().map(|u| u.clone()).unwrap_or_default());
    let sent = tokio::task::spawn_blocking(move || {
        ureq::post(&url)
            .timeout(Duration::from_millis(SANDBOX_CALLBACK_TIMEOUT_MS))
            .set("content-type", "application/json")
            .set("x-signature", &sig)
            .send_bytes(&body)
            .map(|r| r.status())
            .or_else(|e| match e {
                ureq::Error::Status(code, _) => Ok(code),
                other => Err(other.to_string()),
            })
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let message = match sent {
        Ok(s) => format!("The sandbox told the store ({s}). You can close this page."),
        Err(e) => format!("The sandbox could not reach the store: {e}"),
    };
    let order = p.id.order().map(|o| o.to_string()).unwrap_or_default();
    Ok(Out::Html(StatusCode::OK, render(DONE, &[("id", p.id.as_str()), ("message", &message), ("order", &order)])))
}

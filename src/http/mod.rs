//! The HTTP front (warp 0.4): API.md's contract over the services.
//!
//! One warp filter takes every request (method, path, query, headers, body read up to 64 KiB)
//! and hands it to `dispatch`, which routes by path template — so unknown routes (404), wrong
//! methods (405), oversized (413) and non-JSON (415) bodies all get API.md's JSON error, and no
//! input reaches a handler unchecked. Every request gets a request id (logged, and echoed in
//! `X-Request-Id`), per-route counters and latencies for `/metrics`.
//! Boundary: handlers never panic on input and never unwrap outside data.

pub mod auth;
pub mod dto;
pub mod error;
pub mod events;
pub mod handlers;
pub mod idempotency;
pub mod json;
pub mod openapi;
pub mod request;
pub mod routes;
pub mod sandbox;
pub mod server;
pub mod storefront;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use warp::http::{HeaderMap, Method, Response, StatusCode};
use warp::Filter;

use crate::actors::catalogue::view::CatalogView;
use crate::app::shop::Shop;
use crate::clock::Clock;
use crate::limits::{
    HTTP_BODY_BYTES_MAX, HTTP_HEADERS_LEN_MAX, HTTP_HEADER_BYTES_MAX, HTTP_REQUEST_TIMEOUT_MS, HTTP_URI_BYTES_MAX,
};
use auth::Auth;
use error::ApiError;

/// Everything the handlers use.
pub struct App {
    /// The store's operations.
    pub shop: Shop,
    /// The catalogue's read model.
    pub view: Arc<CatalogView>,
    /// Tokens, revocations, throttling.
    pub auth: Arc<Auth>,
    /// This node's name.
    pub node: String,
    /// Every configured node: name, HTTP address (when configured), partitions it owns.
    pub nodes: Vec<(String, Option<String>, usize)>,
    /// The digest of the configuration this node runs.
    pub config_digest: String,
    /// The cluster transport (`None` for the embedded single node): who answers, and what they run.
    pub transport: Option<Arc<crate::cluster::transport::Transport>>,
    /// Partitions this node owns.
    pub partitions: usize,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Prometheus text of the metrics.
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// Where this front is reachable (the sandbox calls back through it), e.g. `http://127.0.0.1:8080`.
    pub self_url: std::sync::RwLock<String>,
    /// Requests under one Idempotency-Key run one at a time (striped by the key's hash), so
    /// concurrent repeats all get the first answer.
    pub idempotency_locks: IdempotencyLocks,
    /// Password hashing, bounded (logins, sign-ups, new users).
    pub hashes: crate::app::passwords::HashPool,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// The OpenAPI document served at `/openapi.json` (built once from the route table).
    pub openapi: Vec<u8>,
    /// Becomes true when the front stops (open event streams end, so stopping never waits on
    /// them).
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// Stripes of `IdempotencyLocks`.
const IDEMPOTENCY_STRIPES: usize = 64;

/// A fixed set of async locks, one per stripe of idempotency record keys.
pub struct IdempotencyLocks(Vec<tokio::sync::Mutex<()>>);

impl Default for IdempotencyLocks {
    fn default() -> Self {
        Self((0..IDEMPOTENCY_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect())
    }
}

impl IdempotencyLocks {
    /// Holds the stripe of `key` until the guard drops.
    pub async fn lock(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let i = usize::try_from(xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % IDEMPOTENCY_STRIPES as u64).unwrap_or(0);
        self.0[i].lock().await
    }
}

/// A request as handlers see it.
pub struct Req {
    /// The method.
    pub method: Method,
    /// The path, percent-decoded segments joined by `/`.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (at most `HTTP_BODY_BYTES_MAX`).
    pub body: Vec<u8>,
    /// The client's address: the TCP peer's, or from a trusted proxy the address it names.
    pub client: IpAddr,
}

impl Req {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An answer.
pub enum Out {
    /// JSON.
    Json(StatusCode, Vec<u8>),
    /// HTML.
    Html(StatusCode, String),
    /// Other text with its content type.
    Text(StatusCode, String, &'static str),
    /// No body.
    Empty(StatusCode),
    /// A stream of server-sent events (`text/event-stream`), with keep-alive comments.
    Events(events::Feed),
    /// A storefront file (`storefront`): its bytes (none for a 304), content type and ETag,
    /// and whether its URL names its version (then it is cached for good).
    Static {
        /// 200, or 304 when the client's copy is current.
        status: StatusCode,
        /// The bytes.
        body: &'static [u8],
        /// Its content type.
        ctype: &'static str,
        /// Its ETag (quoted).
        etag: String,
        /// Cached for good (an asset under its version) or revalidated each time (the page).
        immutable: bool,
        /// The body is gzipped (`Content-Encoding: gzip`).
        gzip: bool,
    },
}

impl Out {
    /// A JSON answer.
    pub fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Result<Out, ApiError> {
        serde_json::to_vec(v)
            .map(|b| Out::Json(status, b))
            .map_err(|e| ApiError::Internal(format!("cannot encode JSON: {e}")))
    }

    fn status(&self) -> StatusCode {
        match self {
            Out::Json(s, _) | Out::Html(s, _) | Out::Text(s, _, _) | Out::Empty(s) | Out::Static { status: s, .. } => {
                *s
            }
            Out::Events(_) => StatusCode::OK,
        }
    }
}

/// Text made safe to put in HTML (element content or a quoted attribute).
pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn error_out(e: &ApiError) -> Out {
    let (status, body) = e.parts();
    let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"error":"internal","message":"error"}"#.to_vec());
    Out::Json(status, bytes)
}

fn render(out: Out, request_id: &str, retry_after: Option<u64>) -> Response<Vec<u8>> {
    if let Out::Static { status, body, ctype, etag, immutable, gzip } = out {
        return render_static(status, body, ctype, (&etag, immutable, gzip), request_id);
    }
    let (status, ctype, body) = match out {
        Out::Json(s, b) => (s, Some("application/json"), b),
        Out::Html(s, h) => (s, Some("text/html; charset=utf-8"), h.into_bytes()),
        Out::Text(s, t, c) => (s, Some(c), t.into_bytes()),
        Out::Empty(s) | Out::Static { status: s, .. } => (s, None, Vec::new()),
        Out::Events(_) => (StatusCode::OK, None, Vec::new()),
    };
    let mut b = Response::builder()
        .status(status)
        .header("x-request-id", request_id)
        .header("x-content-type-options", "nosniff");
    if let Some(c) = ctype {
        b = b.header("content-type", c);
    }
    if ctype.is_some_and(|c| c.starts_with("text/html")) {
        // Pages carry no script and no style of their own; the sandbox page's URL is a secret,
        // so it never goes to another site in a Referer, nor into a cache.
        b = b
            .header(
                "content-security-policy",
                "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            )
            .header("referrer-policy", "no-referrer")
            .header("cache-control", "no-store")
            .header("x-frame-options", "DENY");
    }
    if let Some(s) = retry_after {
        b = b.header("retry-after", s.to_string());
    }
    b.body(body).unwrap_or_else(|_| Response::new(Vec::new()))
}

/// The storefront's policy: scripts, styles, images and API calls from this origin only
/// (images also from `https:` and `data:`, for product photos), nothing inline, no plugins, no
/// framing, forms only to this origin.
const STOREFRONT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
    connect-src 'self'; manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A storefront file's answer; `(etag, immutable, gzip)` as `Out::Static` says.
fn render_static(
    status: StatusCode,
    body: &'static [u8],
    ctype: &'static str,
    (etag, immutable, gzip): (&str, bool, bool),
    request_id: &str,
) -> Response<Vec<u8>> {
    let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut b = Response::builder()
        .status(status)
        .header("x-request-id", request_id)
        .header("x-content-type-options", "nosniff")
        .header("etag", etag)
        .header("cache-control", cache)
        .header("vary", "accept-encoding")
        .header("referrer-policy", "no-referrer");
    if status != StatusCode::NOT_MODIFIED {
        b = b.header("content-type", ctype);
        if gzip {
            b = b.header("content-encoding", "gzip");
        }
    }
    if ctype.starts_with("text/html") {
        b = b.header("content-security-policy", STOREFRONT_CSP).header("x-frame-options", "DENY");
    }
    b.body(body.to_vec()).unwrap_or_else(|_| Response::new(Vec::new()))
}

/// Reads a body up to the limit; `None` when it is larger.
async fn read_body<S, B>(mut stream: S) -> Option<Vec<u8>>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: warp::Buf,
{
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.ok()?;
        while chunk.has_remaining() {
            let part = chunk.chunk();
            if out.len() + part.len() > HTTP_BODY_BYTES_MAX {
                return None;
            }
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Some(out)
}

/// The client of a request: the TCP peer, unless the peer is a trusted proxy, in which case the
/// rightmost address of `X-Forwarded-For` that is not itself a trusted proxy (what a client
/// puts further left is not believed).
pub fn client_ip(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| a.ip());
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut chain = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else { return peer };
        for part in text.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => chain.push(ip),
                Err(_) => return peer,
            }
        }
    }
    chain.iter().rev().find(|ip| !trusted.contains(ip)).or(chain.first()).copied().unwrap_or(peer)
}

#[allow(clippy::too_many_arguments)]
async fn handle<S, B>(
    app: Arc<App>,
    peer: Option<SocketAddr>,
    method: Method,
    path: warp::path::FullPath,
    query: Option<String>,
    headers: HeaderMap,
    body: S,
) -> Result<warp::reply::Response, Infallible>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin + Send,
    B: warp::Buf + Send,
{
    let started = Instant::now();
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let raw_path = path.as_str().to_owned();
    let template = routes::template(&raw_path);
    let span = tracing::info_span!("request", request_id = %request_id, method = %method, route = template.unwrap_or("unknown"));
    let uri_bytes = raw_path.len() + query.as_ref().map_or(0, |q| q.len() + 1);
    let header_bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    let work = async {
        let result = match read_body(body).await {
            _ if uri_bytes > HTTP_URI_BYTES_MAX => Err(ApiError::UriTooLong),
            _ if headers.len() > HTTP_HEADERS_LEN_MAX || header_bytes > HTTP_HEADER_BYTES_MAX => {
                Err(ApiError::HeadersTooLarge)
            }
            None => Err(ApiError::PayloadTooLarge),
            Some(bytes) => {
                let client = client_ip(peer, &headers, &app.trusted_proxies);
                let req = Req {
                    method: method.clone(),
                    path: raw_path,
                    query: query.unwrap_or_default(),
                    headers,
                    body: bytes,
                    client,
                };
                match tokio::time::timeout(
                    std::time::Duration::from_millis(HTTP_REQUEST_TIMEOUT_MS),
                    routes::dispatch(&app, template, req),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(ApiError::Unavailable("the request took too long; try again".into())),
                }
            }
        };
        if let Err(e @ (ApiError::Internal(_) | ApiError::Unavailable(_))) = &result {
            tracing::warn!(error = ?e, "request failed");
        }
        result
    };
    let result = tracing::Instrument::instrument(work, span.clone()).await;
    let allow = matches!(result, Err(ApiError::MethodNotAllowed)).then(|| routes::allowed_methods(template)).flatten();
    let (out, retry) = match result {
        Ok(o) => (o, None),
        Err(e) => {
            let retry = match &e {
                ApiError::TooManyRequests(s) => Some(*s),
                ApiError::Unavailable(_) => Some(1),
                _ => None,
            };
            (span.in_scope(|| error_out(&e)), retry)
        }
    };
    let status = out.status();
    let route = template.unwrap_or("unknown");
    metrics::counter!("http_requests_total", "route" => route, "method" => method.to_string(), "status" => status.as_u16().to_string())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route).record(started.elapsed().as_secs_f64());
    span.in_scope(|| {
        tracing::debug!(
            status = status.as_u16(),
            micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "answered"
        )
    });
    if let Out::Events(feed) = out {
        return Ok(events::reply(feed, &request_id));
    }
    let mut response = render(out, &request_id, retry);
    if let Some(a) = allow.and_then(|a| warp::http::HeaderValue::from_str(&a).ok()) {
        response.headers_mut().insert("allow", a);
    }
    Ok(warp::Reply::into_response(response))
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting and finishes the
/// requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let with_app = warp::any().map(move || app.clone());
    let route = with_app
        .and(warp::addr::remote())
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::query::raw().map(Some).or(warp::any().map(|| None)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and_then(|app, peer, method, path, query, headers, body| async move {
            handle(app, peer, method, path, query, headers, Box::pin(body)).await
        });
    warp::serve(route).incoming(listener).graceful(shutdown).run().await;
}

/// The address a listener is bound to, as a base URL.
pub fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let peer = |s: &str| Some(SocketAddr::new(ip(s), 4000));
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        // An untrusted peer's header is not believed.
        assert_eq!(client_ip(peer("198.51.100.9"), &headers(&["1.2.3.4"]), &proxies), ip("198.51.100.9"));
        // Through two proxies: the rightmost address that is not a proxy; what the client put
        // further left (a lie) is ignored.
        let h = headers(&["6.6.6.6, 203.0.113.5", "10.0.0.2"]);
        assert_eq!(client_ip(peer("10.0.0.1"), &h, &proxies), ip("203.0.113.5"));
        // A malformed chain, or none: the proxy itself.
        assert_eq!(client_ip(peer("10.0.0.1"), &headers(&["not-an-ip"]), &proxies), ip("10.0.0.1"));
        assert_eq!(client_ip(peer("10.0.0.1"), &headers(&[]), &proxies), ip("10.0.0.1"));
        assert_eq!(client_ip(None, &headers(&[]), &proxies), ip("0.0.0.0"));
    }
}

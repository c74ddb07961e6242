//! Reading a request: path parameters (percent-decoded), the JSON body (400 for syntax, 422 for
//! shape, saying where), the query, the caller's token, and outside input cut to a readable
//! length when an error echoes it.

use serde::de::DeserializeOwned;

use super::auth::{bearer, Caller};
use super::error::ApiError;
use super::{App, Req};

/// The path's segments (`/order/7/cancel` → `["order", "7", "cancel"]`).
pub fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

/// Outside input echoed in an error, cut to a readable length.
pub fn shown(s: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 64;
    if s.chars().count() <= SHOWN_CHARS_MAX {
        return s.to_owned();
    }
    let cut: String = s.chars().take(SHOWN_CHARS_MAX).collect();
    format!("{cut}…")
}

/// The path parameter at position `i`, percent-decoded (bytes that are not UTF-8 become U+FFFD;
/// a `%` not followed by two hex digits stays as it is).
pub fn param(req: &Req, i: usize) -> String {
    let raw = segments(&req.path).get(i).copied().unwrap_or("");
    percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

/// Now, by the node's clock, ms.
pub fn now(app: &App) -> u64 {
    app.clock.now_ms()
}

/// The caller named by the request's bearer token (401 without a valid one).
pub fn caller(app: &App, req: &Req) -> Result<Caller, ApiError> {
    let token = bearer(req.header("authorization"))?;
    app.auth.verify(token, now(app))
}

/// The caller named by the request's bearer token, if it carries a valid one.
pub fn caller_if_any(app: &App, req: &Req) -> Option<Caller> {
    bearer(req.header("authorization")).ok().and_then(|t| app.auth.verify(t, now(app)).ok())
}

/// The JSON body as `T`: 415 unless it is JSON, 400 when it does not parse, 422 (naming where,
/// `itemsList[0].quantity: ...`) when it is not a `T`.
pub fn json_body<T: DeserializeOwned>(req: &Req) -> Result<T, ApiError> {
    let ctype = req.header("content-type").unwrap_or("").to_ascii_lowercase();
    let essence = ctype.split(';').next().unwrap_or("").trim();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    // Syntax first (400), then shape and types (422).
    let value = super::json::parse(&req.body).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
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

/// The query as `T` (400 when it is not one).
pub fn query<T: DeserializeOwned>(req: &Req) -> Result<T, ApiError> {
    serde_urlencoded::from_str(&req.query).map_err(|e| ApiError::BadRequest(format!("bad query: {e}")))
}

/// A 422 saying `e`.
pub fn unprocessable(e: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str) -> Req {
        Req {
            method: warp::http::Method::GET,
            path: path.into(),
            query: String::new(),
            headers: Default::default(),
            body: Vec::new(),
            client: std::net::Ipv4Addr::LOCALHOST.into(),
        }
    }

    #[test]
    fn path_parameters_are_percent_decoded_and_never_fail() {
        assert_eq!(param(&req("/product/book%2Dmoby"), 1), "book-moby");
        assert_eq!(param(&req("/product/caf%C3%A9"), 1), "café");
        assert_eq!(param(&req("/product/100%"), 1), "100%");
        assert_eq!(param(&req("/product/%zz%4"), 1), "%zz%4");
        assert_eq!(param(&req("/product/%FF"), 1), "\u{FFFD}");
        assert_eq!(param(&req("/product"), 1), "");
    }

    #[test]
    fn echoed_input_is_cut() {
        assert_eq!(shown("short"), "short");
        let long = "é".repeat(100);
        assert_eq!(shown(&long).chars().count(), 65);
    }
}

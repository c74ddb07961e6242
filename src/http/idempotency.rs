//! `Idempotency-Key` on creating routes: a repeat from the same caller within 24 h gets the first
//! answer (status and body) and does nothing else; a repeat with another body is refused; and
//! the command a keyed request sends takes a message id derived from the key, so even
//! concurrent repeats take effect once.

use warp::http::StatusCode;

use super::error::ApiError;
use super::request::{caller_if_any, now};
use super::{App, Out, Req};
use crate::actors::fresh_message_id;
use crate::actors::idempotency::{record_key, StoredAnswer};
use crate::domain::MessageId;

/// Runs a creating handler under the request's `Idempotency-Key`: a repeat from the same caller
/// within 24 h gets the first answer and does nothing else.
pub async fn idempotent(
    app: &App,
    req: &Req,
    route: &str,
    run: impl std::future::Future<Output = Result<Out, ApiError>>,
) -> Result<Out, ApiError> {
    // The raw value: a key that is not text at all must be refused, not taken for no key.
    let Some(raw) = req.headers.get("idempotency-key") else { return run.await };
    // As `IdempotencyHeader` documents it: `^[!-~]{1,200}$`.
    let key = raw
        .to_str()
        .ok()
        .filter(|k| (1..=200).contains(&k.len()) && k.bytes().all(|b| (b'!'..=b'~').contains(&b)))
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1 to 200 visible ASCII characters, without spaces".into())
        })?;
    let who = caller_if_any(app, req).map_or_else(|| "anonymous".to_owned(), |c| c.customer.to_string());
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
pub fn command_id(app: &App, req: &Req, route: &str) -> MessageId {
    match (req.header("idempotency-key"), caller_if_any(app, req)) {
        (Some(k), Some(c)) => {
            MessageId::derived(&[b"idempotency", c.customer.as_str().as_bytes(), route.as_bytes(), k.as_bytes()])
        }
        _ => fresh_message_id(),
    }
}

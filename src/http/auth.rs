//! Tokens and roles: HS256 JWTs (and nothing else: `alg: none` or any other algorithm is refused),
//! revocation until expiry, and throttling of repeated failed logins: per account from one
//! client address (guessing one account is slowed, while its owner elsewhere still gets in),
//! and per client address across accounts (trying many accounts once each is slowed too).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::domain::auth::{Role, User};
use crate::domain::CustomerId;
pub use crate::limits::{TOKEN_REFRESH_WINDOW_MS, TOKEN_TTL_MS};

/// Failed logins of one account from one client address before they are throttled.
const LOGIN_FAILURES_FREE: u32 = 5;
/// Failed logins from one client address, over all accounts, before it is throttled.
const CLIENT_FAILURES_FREE: u32 = 20;
/// Longest throttle, s.
const LOGIN_LOCK_S_MAX: u64 = 15 * 60;
/// Failures are forgotten this long after the last one, ms.
const LOGIN_FAILURE_MEMORY_MS: u64 = 15 * 60 * 1000;
/// Keys whose failures are remembered at once, per kind of key (past it, forgotten ones and then
/// some others make room: memory stays bounded whatever an attacker sends).
const THROTTLED_KEYS_MAX: usize = 100_000;

/// What a token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The customer (user) id.
    pub sub: String,
    /// The role.
    pub role: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued, seconds since the epoch.
    pub iat: u64,
    /// The token's id (what revocation records).
    pub jti: String,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who.
    pub customer: CustomerId,
    /// As what.
    pub role: Role,
    /// The token's id.
    pub jti: String,
    /// When the token expires, ms.
    pub exp_ms: u64,
    /// The token itself.
    pub token: String,
}

impl Caller {
    /// Passes if the caller has one of `roles` (ADMIN always passes).
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if self.role == Role::Admin || roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the role {}",
                roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(" or ")
            )))
        }
    }

    /// Whether the caller may see everything (not only their own).
    pub fn is_staff(&self) -> bool {
        self.role != Role::Customer
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    count: u32,
    locked_until_ms: u64,
    last_ms: u64,
}

/// Failed logins per key: past `free` of them, each further failure locks the key for 1, 2, 4,
/// … s (at most `LOGIN_LOCK_S_MAX`); all is forgotten `LOGIN_FAILURE_MEMORY_MS` after the last.
struct Throttle {
    free: u32,
    keys: Mutex<HashMap<String, Failures>>,
}

impl Throttle {
    fn new(free: u32) -> Self {
        Self { free, keys: Mutex::new(HashMap::new()) }
    }

    /// `Err(seconds)` while `key` is locked.
    fn check(&self, key: &str, now_ms: u64) -> Result<(), u64> {
        match lock(&self.keys).get(key) {
            Some(f) if f.locked_until_ms > now_ms => Err((f.locked_until_ms - now_ms).div_ceil(1000)),
            _ => Ok(()),
        }
    }

    fn failed(&self, key: &str, now_ms: u64) {
        let mut m = lock(&self.keys);
        if m.len() >= THROTTLED_KEYS_MAX && !m.contains_key(key) {
            m.retain(|_, f| f.locked_until_ms > now_ms || f.last_ms + LOGIN_FAILURE_MEMORY_MS > now_ms);
            if m.len() >= THROTTLED_KEYS_MAX {
                // Still full of live keys: forget a tenth of them (whichever), so each insert
                // costs O(1) amortised however the attacker picks keys.
                let drop: Vec<String> = m.keys().take(THROTTLED_KEYS_MAX / 10).cloned().collect();
                for k in drop {
                    m.remove(&k);
                }
            }
        }
        let f = m.entry(key.to_owned()).or_default();
        if f.last_ms + LOGIN_FAILURE_MEMORY_MS <= now_ms {
            *f = Failures::default();
        }
        f.count = f.count.saturating_add(1);
        f.last_ms = now_ms;
        if f.count >= self.free {
            let exp = (f.count - self.free).min(20);
            f.locked_until_ms = now_ms + (1u64 << exp).min(LOGIN_LOCK_S_MAX) * 1000;
        }
    }

    fn clear(&self, key: &str) {
        lock(&self.keys).remove(key);
    }
}

/// Token issuing and checking, revocations, login throttling.
pub struct Auth {
    enc: EncodingKey,
    dec: DecodingKey,
    revoked: RwLock<HashMap<String, u64>>,
    /// Failures of one account from one client address.
    account_at_client: Throttle,
    /// Failures from one client address, over all accounts.
    client: Throttle,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Auth {
    /// Signs with `secret`.
    pub fn new(secret: &[u8]) -> Auth {
        Auth {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            revoked: RwLock::new(HashMap::new()),
            account_at_client: Throttle::new(LOGIN_FAILURES_FREE),
            client: Throttle::new(CLIENT_FAILURES_FREE),
        }
    }

    /// A token for `user`, valid `TOKEN_TTL_MS` from `now_ms`: (token, expiry ms).
    pub fn issue(&self, user: &User, now_ms: u64) -> Result<(String, u64), ApiError> {
        let exp_ms = now_ms + TOKEN_TTL_MS;
        let claims = Claims {
            sub: user.customer_id.to_string(),
            role: user.role.name().into(),
            exp: exp_ms / 1000,
            iat: now_ms / 1000,
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(|e| ApiError::Internal(format!("cannot sign a token: {e}")))?;
        Ok((token, exp_ms - exp_ms % 1000))
    }

    /// Checks a bearer token: signature (HS256 only), expiry, revocation.
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Caller, ApiError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.dec, &v)
            .map_err(|e| ApiError::Unauthorized(token_error(e.kind()).into()))?;
        let c = data.claims;
        let exp_ms = c.exp.saturating_mul(1000);
        if exp_ms <= now_ms {
            return Err(ApiError::Unauthorized("the token has expired".into()));
        }
        if self.revoked.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(&c.jti) {
            return Err(ApiError::Unauthorized("the token was revoked".into()));
        }
        let customer =
            CustomerId::try_from(c.sub).map_err(|_| ApiError::Unauthorized("invalid token subject".into()))?;
        let role = Role::parse(&c.role).ok_or_else(|| ApiError::Unauthorized("invalid token role".into()))?;
        Ok(Caller { customer, role, jti: c.jti, exp_ms, token: token.to_owned() })
    }

    /// Remembers a revoked token until it expires (the durable record is the auth service's).
    pub fn revoke_local(&self, jti: &str, exp_ms: u64, now_ms: u64) {
        let mut r = self.revoked.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        r.retain(|_, exp| *exp > now_ms);
        r.insert(jti.to_owned(), exp_ms);
    }

    /// Refuses a login attempt for `account` from `client` while either is throttled.
    pub fn check_throttle(&self, account: &str, client: IpAddr, now_ms: u64) -> Result<(), ApiError> {
        let both = self.account_at_client.check(&account_key(account, client), now_ms);
        both.and(self.client.check(&client.to_string(), now_ms)).map_err(ApiError::TooManyRequests)
    }

    /// A failed login of `account` from `client`.
    pub fn login_failed(&self, account: &str, client: IpAddr, now_ms: u64) {
        self.account_at_client.failed(&account_key(account, client), now_ms);
        self.client.failed(&client.to_string(), now_ms);
    }

    /// A successful login clears the account's failures from that client (not the client's
    /// own count: logging into one's own account between guesses must not reset it).
    pub fn login_succeeded(&self, account: &str, client: IpAddr) {
        self.account_at_client.clear(&account_key(account, client));
    }
}

/// The token checks of this node as a subscriber of `auth.revoked`: a token revoked on any node
/// is refused here once the event arrives (replicated: every node takes every revocation).
pub struct RevocationFeed {
    /// The node's token checks.
    pub auth: std::sync::Arc<Auth>,
    /// The node's clock (expired revocations are forgotten).
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
}

impl crate::persistence::Subscriber for RevocationFeed {
    fn deliver(
        &self,
        env: crate::persistence::Envelope,
    ) -> futures::future::BoxFuture<'static, Result<(), crate::persistence::DeliveryError>> {
        use crate::persistence::DeliveryError;
        let r: Result<crate::domain::auth::Revoked, _> =
            crate::persistence::events::decode(env.topic, env.schema_version, &env.payload);
        let outcome = match r {
            Ok(r) => {
                self.auth.revoke_local(&r.jti, r.exp_ms, self.clock.now_ms());
                Ok(())
            }
            Err(e) => Err(DeliveryError::permanent(e)),
        };
        Box::pin(async move { outcome })
    }
}

/// What was wrong with a token, in the store's words (the library's text names its internals).
fn token_error(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "the token has expired",
        K::InvalidSignature => "the token's signature does not match",
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => "the token is not signed with HS256",
        K::MissingRequiredClaim(_) | K::InvalidClaimFormat(_) => "the token's claims are not ours",
        K::ImmatureSignature => "the token is not valid yet",
        _ => "the token is malformed",
    }
}

fn account_key(account: &str, client: IpAddr) -> String {
    format!("{account}\u{0}{client}")
}

/// Reads `Authorization: Basic base64(email:password)`.
pub fn basic_credentials(header: Option<&str>) -> Result<(String, String), ApiError> {
    use base64::Engine;
    let h = header.ok_or_else(|| ApiError::Unauthorized("HTTP Basic credentials are needed".into()))?;
    let b64 =
        h.strip_prefix("Basic ").ok_or_else(|| ApiError::Unauthorized("HTTP Basic credentials are needed".into()))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| ApiError::Unauthorized("malformed Basic credentials".into()))?;
    let text = String::from_utf8(raw).map_err(|_| ApiError::Unauthorized("malformed Basic credentials".into()))?;
    let (user, pass) =
        text.split_once(':').ok_or_else(|| ApiError::Unauthorized("malformed Basic credentials".into()))?;
    Ok((user.to_owned(), pass.to_owned()))
}

/// Reads `Authorization: Bearer <token>`.
pub fn bearer(header: Option<&str>) -> Result<&str, ApiError> {
    header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("a bearer token is needed".into()))
}

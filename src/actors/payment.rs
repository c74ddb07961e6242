//! The payment service: one payment account per order (wrapping `domain::payment`), and the
//! payment-system adapter it talks to. The built-in sandbox (the default) sends the shopper to
//! `/sandbox/pay/{paymentId}` and calls back exactly as an external system would: a JSON body
//! signed with HMAC-SHA256 under the shared secret, hex in `X-Signature`.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::from_state_v1;
use super::kind::EntityKind;
use super::kind::{Change, CommandOutcome, Emit, EventOutcome, Statuses};
use crate::domain::payment::{Callback, CallbackStatus, Payment, PaymentAccount, PaymentAccountV1};
use crate::domain::saga::{OrderEvent, PayEvent, StockEvent};
use crate::domain::saga::{OrderStatus, StockStatus};
use crate::domain::{Ctx, Currency, DomainError, Money, OrderId, PaymentId};
use crate::limits::AGGREGATE_BYTES_MAX;
use crate::persistence::codec::{self, CodecError};
use crate::persistence::events::{self, Topic};
use crate::persistence::{DeliveryError, Envelope};

/// A payment system the store sends shoppers to.
pub trait PaymentSystem: Send + Sync + 'static {
    /// Its name (for logs).
    fn name(&self) -> &'static str;
    /// Where the shopper pays payment `id`.
    fn redirect_url(&self, id: &PaymentId) -> String;
    /// Whether `signature` is this system's signature of `body`.
    fn verify(&self, body: &[u8], signature: &str) -> bool;
}

/// Hex of HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    hex::encode(mac(secret, body).finalize().into_bytes())
}

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    mac
}

/// Whether `signature` (hex) is the HMAC-SHA256 of `body` under `secret`, compared in constant
/// time.
fn verify_hex(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(sig) = hex::decode(signature.trim()) else { return false };
    mac(secret, body).verify_slice(&sig).is_ok()
}

/// The built-in sandbox payment system. Its page for a payment is a capability URL: it carries
/// a key derived from the payment id under the store's secret, so only who was given the link
/// (the shopper, by `/pay/redirectUrl`) can open it or act on it.
pub struct Sandbox {
    secret: Vec<u8>,
}

/// Hex digits of a sandbox link key (128 bits).
const LINK_KEY_HEX_LEN: usize = 32;

impl Sandbox {
    /// A sandbox signing with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self { secret: secret.to_vec() }
    }

    /// Signs a callback body as the sandbox does (hex of HMAC-SHA256).
    pub fn sign(&self, body: &[u8]) -> String {
        sign(&self.secret, body)
    }

    /// The key of payment `id`'s page.
    pub fn link_key(&self, id: &PaymentId) -> String {
        let mut k = sign(&self.secret, format!("sandbox-link:{id}").as_bytes());
        k.truncate(LINK_KEY_HEX_LEN);
        k
    }

    /// Whether `key` opens payment `id`'s page (compared in constant time).
    pub fn check_link(&self, id: &PaymentId, key: &str) -> bool {
        let Ok(given) = hex::decode(key) else { return false };
        given.len() * 2 == LINK_KEY_HEX_LEN
            && mac(&self.secret, format!("sandbox-link:{id}").as_bytes()).verify_truncated_left(&given).is_ok()
    }
}

impl PaymentSystem for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn redirect_url(&self, id: &PaymentId) -> String {
        format!("/sandbox/pay/{id}?key={}", self.link_key(id))
    }

    fn verify(&self, body: &[u8], signature: &str) -> bool {
        verify_hex(&self.secret, body, signature)
    }
}

/// An external payment system's hosted checkout: the shopper goes to its URL (`{id}` is the
/// payment id), and it calls back signed with the shared secret. Used when the sandbox is off.
pub struct HostedCheckout {
    url_template: String,
    secret: Vec<u8>,
}

impl HostedCheckout {
    /// A checkout at `url_template` (with `{id}` in it) calling back under `secret`.
    pub fn new(url_template: &str, secret: &[u8]) -> Self {
        Self { url_template: url_template.to_owned(), secret: secret.to_vec() }
    }
}

impl PaymentSystem for HostedCheckout {
    fn name(&self) -> &'static str {
        "hosted checkout"
    }

    fn redirect_url(&self, id: &PaymentId) -> String {
        self.url_template.replace("{id}", id.as_str())
    }

    fn verify(&self, body: &[u8], signature: &str) -> bool {
        verify_hex(&self.secret, body, signature)
    }
}

/// Where an order's payments are paid: the payment system's URL of each payment the order can
/// have (`PaymentId::nth` for 1..=`PAYMENTS_PER_ORDER_MAX`), worked out by the node that takes
/// the request. Plain data, so the command that carries it can travel to the node owning the
/// order; no secret is in it, only the URLs a shopper is sent to anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentLinks(Vec<(PaymentId, String)>);

impl PaymentLinks {
    /// The links of `system` for the payments of `order`.
    pub fn for_order(system: &dyn PaymentSystem, order: &OrderId) -> Self {
        Self::build(order, |id| system.redirect_url(id))
    }

    /// Links from a template with `{id}` in it.
    pub fn template(t: &str, order: &OrderId) -> Self {
        Self::build(order, |id| t.replace("{id}", id.as_str()))
    }

    fn build(order: &OrderId, url: impl Fn(&PaymentId) -> String) -> Self {
        let ids = (1..=crate::limits::PAYMENTS_PER_ORDER_MAX).filter_map(|n| PaymentId::nth(order, n).ok());
        Self(
            ids.map(|id| {
                let u = url(&id);
                (id, u)
            })
            .collect(),
        )
    }

    /// The URL of payment `id` (empty for a payment these links do not name).
    pub fn url(&self, id: &PaymentId) -> String {
        self.0.iter().find(|(i, _)| i == id).map(|(_, u)| u.clone()).unwrap_or_default()
    }
}

/// The callback body a payment system posts (API.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallbackBody {
    /// The payment.
    pub payment_id: String,
    /// The payment system's id.
    pub system_pay_id: String,
    /// `SUCCEEDED` or `FAILED`.
    pub status: String,
    /// Minor units taken.
    pub amount: i64,
}

/// Why a callback was refused before reaching the account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The signature does not match.
    #[error("bad signature")]
    BadSignature,
    /// The body is not a callback.
    #[error("malformed callback: {0}")]
    Malformed(String),
}

/// Checks a callback's signature and reads it.
pub fn read_callback(system: &dyn PaymentSystem, body: &[u8], signature: &str) -> Result<Callback, CallbackError> {
    if !system.verify(body, signature) {
        return Err(CallbackError::BadSignature);
    }
    let b: CallbackBody = serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
    let status = match b.status.as_str() {
        "SUCCEEDED" => CallbackStatus::Succeeded,
        "FAILED" => CallbackStatus::Failed,
        s => return Err(CallbackError::Malformed(format!("status {s:?} is not SUCCEEDED or FAILED"))),
    };
    let payment_id = PaymentId::parse(&b.payment_id).map_err(|e| CallbackError::Malformed(e.to_string()))?;
    if b.system_pay_id.is_empty() || b.system_pay_id.len() > 128 {
        return Err(CallbackError::Malformed("systemPayId must be 1..128 characters".into()));
    }
    Ok(Callback { payment_id, system_pay_id: b.system_pay_id, status, amount: Money::new(b.amount, Currency::EUR) })
}

/// What can be asked of a payment account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PaymentCommand {
    /// Open a payment for what is due (or return the one in progress).
    Open {
        /// Where the payment system takes the shopper.
        links: PaymentLinks,
    },
    /// A verified callback.
    Callback(Callback),
    /// Read the account.
    Get,
}

/// What a payment account answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentReply {
    /// One payment.
    Payment(Payment),
    /// The whole account.
    Account(PaymentAccount),
}

/// The payment account entity kind (one per order).
#[derive(Debug)]
pub struct PaymentAccountKind;

/// Schema of the stored payment account. History: 1 — refunds kept on the account only;
/// 2 — each payment records what it owes back (`refunded_amount`).
const ACCOUNT_SCHEMA: u16 = 2;

const CANCELLED: Statuses = Statuses::Order(&[OrderStatus::Cancelled]);
const BOOKED: Statuses = Statuses::Stock(&[StockStatus::Booked]);

fn step_change(next: PaymentAccount, event: Option<PayEvent>) -> Result<Change<PaymentAccount>, CodecError> {
    let mut change = Change::to(next);
    if let Some(e) = event {
        change = change.emit(Emit::new(Topic::PayEvent, e.order_id.to_string(), events::encode(&e)?));
    }
    Ok(change)
}

impl EntityKind for PaymentAccountKind {
    const SERVICE: &'static str = "payment";
    const AGGREGATE: &'static str = "account";
    type Key = OrderId;
    type State = PaymentAccount;
    type Command = PaymentCommand;
    type Reply = Result<PaymentReply, DomainError>;

    fn topics() -> &'static [Topic] {
        &[Topic::StockBooking, Topic::OrderEvent]
    }

    fn status_filter(topic: Topic) -> Option<Statuses> {
        match topic {
            Topic::StockBooking => Some(BOOKED),
            Topic::OrderEvent => Some(CANCELLED),
            _ => None,
        }
    }

    fn parse_key(s: &str) -> Result<OrderId, String> {
        crate::actors::order_key(s)
    }

    fn initial(key: &OrderId) -> PaymentAccount {
        PaymentAccount::new(key.clone(), Currency::EUR)
    }

    fn encode_state(state: &PaymentAccount) -> Result<(u16, Vec<u8>), CodecError> {
        Ok((ACCOUNT_SCHEMA, codec::to_body("payment account", state, AGGREGATE_BYTES_MAX)?))
    }

    fn decode_state(_key: &OrderId, schema: u16, body: &[u8]) -> Result<PaymentAccount, CodecError> {
        match schema {
            ACCOUNT_SCHEMA => codec::from_body("payment account", body),
            1 => from_state_v1::<PaymentAccountV1>("payment account v1", 1, body).map(PaymentAccount::from),
            version => Err(CodecError::UnknownSchema { what: "payment account".into(), version }),
        }
    }

    fn status(state: &PaymentAccount) -> String {
        if state.cancelled {
            "CANCELLED"
        } else if state.due.is_some_and(|d| state.net().minor() >= d.minor()) {
            "PAID"
        } else if state.payable {
            "PAYABLE"
        } else {
            "WAITING"
        }
        .into()
    }

    fn on_command(_key: &OrderId, state: &PaymentAccount, cmd: PaymentCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        let result = match cmd {
            PaymentCommand::Get => return CommandOutcome::Unchanged(Ok(PaymentReply::Account(state.clone()))),
            PaymentCommand::Open { links } => state.open(ctx, &|id: &PaymentId| links.url(id)),
            PaymentCommand::Callback(c) => state.callback(&c),
        };
        match result {
            Err(e) => CommandOutcome::Unchanged(Err(e)),
            Ok((payment, None)) => CommandOutcome::Unchanged(Ok(PaymentReply::Payment(payment))),
            Ok((payment, Some((next, event)))) => match step_change(next, event) {
                Ok(change) => CommandOutcome::Changed { change, reply: Ok(PaymentReply::Payment(payment)) },
                Err(e) => CommandOutcome::Unchanged(Err(DomainError::Invalid {
                    field: "payment".into(),
                    reason: e.to_string(),
                })),
            },
        }
    }

    fn on_event(
        _key: &OrderId,
        state: &PaymentAccount,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        let step = match env.topic {
            Topic::StockBooking => {
                let e: StockEvent =
                    events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
                state.on_stock(&e, e.order_version).map(|n| (n, None))
            }
            Topic::OrderEvent => {
                let e: OrderEvent =
                    events::decode_order_event(env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
                if e.status == crate::domain::saga::OrderStatus::Cancelled {
                    state.on_cancelled(&e.customer_id)
                } else {
                    None
                }
            }
            t => return Err(DeliveryError::permanent(format!("payment accounts take no {} events", t.name()))),
        };
        match step {
            None => Ok(EventOutcome::Ignored),
            Some((next, event)) => {
                step_change(next, event).map(EventOutcome::Changed).map_err(DeliveryError::permanent)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::payment::PaymentV1;
    use crate::domain::saga::PaymentStatus;
    use crate::persistence::fixtures::fixture;

    #[test]
    fn a_schema_1_account_is_still_read_and_the_current_one_is_pinned() {
        let order = OrderId::parse("o3-00000001-1").unwrap();
        let eur = |m| Money::new(m, Currency::EUR);
        // A schema-1 account as old records hold it (a fixture: it repeats the shape on purpose).
        let v1 = PaymentAccountV1 {
            order_id: order.clone(),
            due: Some(eur(1_000)),
            payable: true,
            cancelled: false,
            customer_id: None,
            order_version: 2,
            payments: vec![PaymentV1 {
                id: PaymentId::nth(&order, 1).unwrap(),
                status: PaymentStatus::Paid,
                version: 2,
                order_version: 2,
                amount: eur(1_000),
                paid_amount: eur(1_000),
                redirect_url: "/sandbox/pay/o3-00000001-1-p1".into(),
                system_pay_id: Some("sb-1".into()),
                system_status: Some("SUCCEEDED".into()),
                created_at_ms: 1_764_000_000_000,
            }],
            captured: eur(1_000),
            refunded: eur(0),
        };
        let fresh = codec::to_body("v1", &v1, 4096).unwrap();
        let golden = fixture("payment_account_v1.bin", &fresh);
        assert_eq!(golden, fresh, "schema 1 encoding changed: frozen types must not change");
        let a = PaymentAccountKind::decode_state(&order, 1, &golden).unwrap();
        assert_eq!((a.net(), a.payments[0].refunded_amount), (eur(1_000), eur(0)));
        let (schema, fresh) = PaymentAccountKind::encode_state(&a).unwrap();
        assert_eq!(schema, ACCOUNT_SCHEMA);
        let golden = fixture("payment_account_v2.bin", &fresh);
        assert_eq!(golden, fresh, "schema 2 encoding changed: bump ACCOUNT_SCHEMA and add an upcaster");
        assert_eq!(PaymentAccountKind::decode_state(&order, ACCOUNT_SCHEMA, &golden).unwrap(), a);
        assert!(PaymentAccountKind::decode_state(&order, 3, &golden).is_err());
    }

    #[test]
    fn the_sandbox_verifies_its_own_signature_only() {
        let s = Sandbox::new(b"secret");
        let body = br#"{"paymentId":"o1-abc-1-p1","systemPayId":"sb-1","status":"SUCCEEDED","amount":100}"#;
        let sig = s.sign(body);
        assert!(s.verify(body, &sig));
        assert!(!s.verify(body, "00"));
        assert!(!s.verify(body, "not hex"));
        assert!(!Sandbox::new(b"other").verify(body, &sig));
        assert!(
            !s.verify(br#"{"paymentId":"o1-abc-1-p1","systemPayId":"sb-1","status":"SUCCEEDED","amount":1000}"#, &sig)
        );
        let c = read_callback(&s, body, &sig).unwrap();
        assert_eq!(c.amount, Money::new(100, Currency::EUR));
        assert_eq!(read_callback(&s, body, "ab"), Err(CallbackError::BadSignature));
        let bad = br#"{"paymentId":"o1-abc-1-p1","systemPayId":"sb-1","status":"MAYBE","amount":100}"#;
        assert!(matches!(read_callback(&s, bad, &s.sign(bad)), Err(CallbackError::Malformed(_))));
    }
}

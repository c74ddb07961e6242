//! The promocode service: one entity per code (wrapping `domain::promo`), published on
//! `promo.event` so the order service can price with it and the catalogue can show it. It
//! gives out uses: a placement takes a hold (`Hold`) before the customer's gate places the
//! order, and `promo.used` tells it when the order was placed (`Taken`), cancelled
//! (`Released`), or when the gate answered a hold left open too long (`Settled`); such a hold
//! asks the gate on `promo.hold`.

use super::kind::{Change, CommandOutcome, Emit, EntityKind, EventOutcome, Timer, TimerOp};
use super::{from_state_v1, state_v1};
use crate::domain::pricing::{Discount, Rule};
use crate::domain::promo::{check_token, PromoAccount, Promocode};
use crate::domain::{Ctx, CustomerId, DomainError, MessageId, OrderId};
use crate::persistence::codec::{self, CodecError};
use crate::persistence::events::{self, Topic};
use crate::persistence::{DeliveryError, Envelope};

/// The timer tag of a hold's check.
pub const HOLD_TAG: &str = "hold";

fn no_rule() -> Rule {
    Rule {
        discount: Discount::Amount(1),
        product_ids: None,
        min_total: None,
        valid_from_ms: None,
        valid_until_ms: None,
        usage_limit: None,
    }
}

/// What can be asked of a promo code.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PromoCommand {
    /// Create it.
    Create {
        /// What it is for.
        description: String,
        /// How it discounts.
        rule: Rule,
    },
    /// Read it.
    Get,
    /// Take a use for an order about to be placed (the command's message id names the
    /// placement request); answers the code as it stands.
    Hold {
        /// The order the gate will create.
        order: OrderId,
        /// Its number in the gate.
        number: u64,
        /// The customer.
        customer: CustomerId,
    },
    /// Give back the hold a placement request took (its order was not placed under it).
    Release {
        /// The order it was taken for.
        order: OrderId,
        /// The placement request's message id.
        cause: MessageId,
    },
}

/// The promo code entity kind.
#[derive(Debug)]
pub struct PromoKind;

/// Publishes the code when what others see of it changed.
fn change_of(prev: &PromoAccount, next: PromoAccount) -> Result<Change<PromoAccount>, CodecError> {
    let mut timers = Vec::new();
    // A hold that went away unasked: forget its check, unless another hold shares the instant.
    for h in prev.holds.iter().filter(|h| !h.asked && !next.holds.iter().any(|n| n.order == h.order)) {
        if !next.holds.iter().any(|n| n.check_at_ms == h.check_at_ms) {
            timers.push(TimerOp::Clear { tag: HOLD_TAG.into(), due_ms: h.check_at_ms });
        }
    }
    for h in next.holds.iter().filter(|h| !prev.holds.iter().any(|p| p.order == h.order)) {
        timers.push(TimerOp::Set { tag: HOLD_TAG.into(), due_ms: h.check_at_ms });
    }
    timers.dedup();
    let mut change = Change::to(next.clone());
    change.timers = timers;
    if next.code != prev.code {
        let payload = events::encode(&next.code)?;
        change = change.emit(Emit::new(Topic::PromoEvent, next.code.token.clone(), payload));
    }
    Ok(change)
}

fn changed(prev: &PromoAccount, next: PromoAccount) -> CommandOutcome<PromoKind> {
    let reply = Ok(next.code.clone());
    match change_of(prev, next) {
        Ok(change) => CommandOutcome::Changed { change, reply },
        Err(e) => CommandOutcome::Unchanged(Err(DomainError::Invalid { field: "promo".into(), reason: e.to_string() })),
    }
}

/// Schema of the promo code's stored state. History: 1 — the `Promocode` alone, counting every
/// order that ever used it; 2 — a `PromoAccount`: the code counting live orders, and its holds.
const PROMO_STATE_SCHEMA: u16 = 2;

impl EntityKind for PromoKind {
    const SERVICE: &'static str = "promo";
    const AGGREGATE: &'static str = "code";
    const USES_TIMERS: bool = true;
    type Key = String;
    type State = PromoAccount;
    type Command = PromoCommand;
    type Reply = Result<Promocode, DomainError>;

    fn topics() -> &'static [Topic] {
        &[Topic::PromoUsed]
    }

    fn parse_key(s: &str) -> Result<String, String> {
        check_token(s).map(|()| s.to_owned()).map_err(|e| e.to_string())
    }

    fn initial(key: &String) -> PromoAccount {
        PromoAccount::absent(key, no_rule())
    }

    fn encode_state(state: &PromoAccount) -> Result<(u16, Vec<u8>), CodecError> {
        Ok((PROMO_STATE_SCHEMA, codec::to_body("promo code", state, crate::limits::AGGREGATE_BYTES_MAX)?))
    }

    fn decode_state(_key: &String, schema: u16, body: &[u8]) -> Result<PromoAccount, CodecError> {
        match schema {
            PROMO_STATE_SCHEMA => codec::from_body("promo code", body),
            // Schema 1 counted every order ever placed with the code; kept as it was (a code
            // can only look more used than it is, never less).
            1 => from_state_v1::<Promocode>("promo code v1", 1, body).map(PromoAccount::of),
            version => Err(CodecError::UnknownSchema { what: "promo code".into(), version }),
        }
    }

    fn status(state: &PromoAccount) -> String {
        if state.exists() { "ACTIVE" } else { "ABSENT" }.into()
    }

    fn on_command(key: &String, state: &PromoAccount, cmd: PromoCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        match cmd {
            PromoCommand::Get if state.exists() => CommandOutcome::Unchanged(Ok(state.code.clone())),
            PromoCommand::Get => {
                CommandOutcome::Unchanged(Err(DomainError::NotFound { what: "promo code".into(), id: key.clone() }))
            }
            PromoCommand::Create { description, rule } => match state.create(&description, rule, ctx) {
                Err(e) => CommandOutcome::Unchanged(Err(e)),
                Ok(next) => changed(state, next),
            },
            PromoCommand::Hold { order, number, customer } => match state.hold(&order, number, &customer, ctx) {
                Err(e) => CommandOutcome::Unchanged(Err(e)),
                Ok(None) => CommandOutcome::Unchanged(Ok(state.code.clone())),
                Ok(Some(next)) => changed(state, next),
            },
            PromoCommand::Release { order, cause } => match state.release(&order, cause) {
                None => CommandOutcome::Unchanged(Ok(state.code.clone())),
                Some(next) => changed(state, next),
            },
        }
    }

    fn on_timer(_key: &String, state: &PromoAccount, timer: &Timer, ctx: &Ctx) -> EventOutcome<Self> {
        if timer.tag != HOLD_TAG {
            return EventOutcome::Ignored;
        }
        let Some((next, asks)) = state.due_checks(ctx.now_ms) else { return EventOutcome::Ignored };
        let mut emits = Vec::with_capacity(asks.len());
        for ask in asks {
            match events::encode(&ask) {
                Ok(p) => emits.push(Emit::new(Topic::PromoHold, ask.customer.to_string(), p)),
                // A check that cannot be encoded is a bug; the hold stays asked and visible.
                Err(e) => tracing::error!(error = %e, "cannot encode a promo hold check"),
            }
        }
        match change_of(state, next) {
            Ok(change) => EventOutcome::Changed(change.emit_all(emits)),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a promo code");
                EventOutcome::Ignored
            }
        }
    }

    fn on_event(
        _key: &String,
        state: &PromoAccount,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        if env.topic != Topic::PromoUsed {
            return Err(DeliveryError::permanent(format!("promo codes take no {} events", env.topic.name())));
        }
        let u = events::decode_promo_use(env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
        match state.on_use(&u) {
            Some(next) => change_of(state, next).map(EventOutcome::Changed).map_err(DeliveryError::permanent),
            None => Ok(EventOutcome::Ignored),
        }
    }
}

/// A projection of promo codes kept by another service (the order service prices with it, the
/// catalogue shows it): the newest version of each code wins.
#[derive(Debug)]
pub struct PromoProjection<const ORDER: bool>;

/// The order service's copy of the promo codes.
pub type OrderPromoKind = PromoProjection<true>;
/// The catalogue's copy of the promo codes.
pub type CataloguePromoKind = PromoProjection<false>;

/// Reading a projected code.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PromoQuery {
    /// The code as last heard, if at all.
    Get,
}

impl<const ORDER: bool> EntityKind for PromoProjection<ORDER> {
    const SERVICE: &'static str = if ORDER { "order" } else { "catalogue" };
    const AGGREGATE: &'static str = "promo";
    /// The catalogue's copy is on every node (the catalogue answers locally); the order
    /// service's is partitioned like the codes.
    const REPLICATED: bool = !ORDER;
    type Key = String;
    type State = Option<(u64, Promocode)>;
    type Command = PromoQuery;
    type Reply = Option<Promocode>;

    fn topics() -> &'static [Topic] {
        &[Topic::PromoEvent]
    }

    fn parse_key(s: &str) -> Result<String, String> {
        check_token(s).map(|()| s.to_owned()).map_err(|e| e.to_string())
    }

    fn initial(_key: &String) -> Self::State {
        None
    }

    fn encode_state(state: &Self::State) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("promo projection", state)
    }

    fn decode_state(_key: &String, schema: u16, body: &[u8]) -> Result<Self::State, CodecError> {
        from_state_v1("promo projection", schema, body)
    }

    fn status(_state: &Self::State) -> String {
        "PROJECTED".into()
    }

    fn on_command(_key: &String, state: &Self::State, _cmd: PromoQuery, _ctx: &Ctx) -> CommandOutcome<Self> {
        CommandOutcome::Unchanged(state.as_ref().map(|(_, p)| p.clone()))
    }

    fn on_event(
        key: &String,
        state: &Self::State,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        let p: Promocode =
            events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
        if &p.token != key {
            return Err(DeliveryError::permanent(format!("code {} routed to {key}", p.token)));
        }
        if state.as_ref().is_some_and(|(v, _)| *v >= env.aggregate_version) {
            return Ok(EventOutcome::Ignored);
        }
        Ok(EventOutcome::Changed(Change::to(Some((env.aggregate_version, p)))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::fixtures::fixture;

    #[test]
    fn a_schema_1_code_is_still_read_and_the_current_one_is_pinned() {
        let mut rule = no_rule();
        rule.usage_limit = Some(3);
        let v1 = Promocode {
            token: "SPRING".into(),
            description: "ten off".into(),
            rule,
            used_count: 2,
            created_ms: 1_764_000_000_000,
        };
        let fresh = codec::to_body("v1", &v1, 4096).unwrap();
        let golden = fixture("promo_code_v1.bin", &fresh);
        assert_eq!(golden, fresh, "schema 1 encoding changed: frozen types must not change");
        let key = "SPRING".to_owned();
        let a = PromoKind::decode_state(&key, 1, &golden).unwrap();
        assert_eq!(a, PromoAccount::of(v1));
        let (schema, fresh) = PromoKind::encode_state(&a).unwrap();
        assert_eq!(schema, PROMO_STATE_SCHEMA);
        let golden = fixture("promo_code_v2.bin", &fresh);
        assert_eq!(golden, fresh, "schema 2 encoding changed: bump PROMO_STATE_SCHEMA and add an upcaster");
        assert_eq!(PromoKind::decode_state(&key, PROMO_STATE_SCHEMA, &golden).unwrap(), a);
    }
}

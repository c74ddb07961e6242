//! The promocode service: one entity per code (wrapping `domain::promo`), published on
//! `promo.event` so the order service can price with it and the catalogue can show it, and told
//! on `promo.used` (by the gate, once per order) to count a use.

use super::entity::EntityKind;
use super::plan::{Change, CommandOutcome, Emit, EventOutcome};
use super::{from_state_v1, state_v1};
use crate::domain::pricing::{Discount, Rule};
use crate::domain::promo::{check_token, Promocode};
use crate::domain::{Ctx, DomainError};
use crate::persistence::codec::CodecError;
use crate::persistence::events::{self, Topic};
use crate::persistence::{DeliveryError, Envelope};

fn permanent(e: impl std::fmt::Display) -> DeliveryError {
    DeliveryError::Permanent(e.to_string())
}

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// The promo code entity kind.
#[derive(Debug)]
pub struct PromoKind;

fn published(next: Promocode) -> Result<Change<Promocode>, CodecError> {
    let payload = events::encode(&next)?;
    Ok(Change::to(next.clone()).emit(Emit::new(Topic::PromoEvent, next.token.clone(), payload)))
}

impl EntityKind for PromoKind {
    const SERVICE: &'static str = "promo";
    const AGGREGATE: &'static str = "code";
    type Key = String;
    type State = Promocode;
    type Command = PromoCommand;
    type Reply = Result<Promocode, DomainError>;

    fn topics() -> &'static [Topic] {
        &[Topic::PromoUsed]
    }

    fn parse_key(s: &str) -> Result<String, String> {
        check_token(s).map(|()| s.to_owned()).map_err(|e| e.to_string())
    }

    fn initial(key: &String) -> Promocode {
        Promocode::absent(key, no_rule())
    }

    fn encode_state(state: &Promocode) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("promo code", state)
    }

    fn decode_state(_key: &String, schema: u16, body: &[u8]) -> Result<Promocode, CodecError> {
        from_state_v1("promo code", schema, body)
    }

    fn status(state: &Promocode) -> String {
        if state.exists() { "ACTIVE" } else { "ABSENT" }.into()
    }

    fn on_command(key: &String, state: &Promocode, cmd: PromoCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        match cmd {
            PromoCommand::Get if state.exists() => CommandOutcome::Unchanged(Ok(state.clone())),
            PromoCommand::Get => {
                CommandOutcome::Unchanged(Err(DomainError::NotFound { what: "promo code".into(), id: key.clone() }))
            }
            PromoCommand::Create { description, rule } => match state.create(&description, rule, ctx) {
                Err(e) => CommandOutcome::Unchanged(Err(e)),
                Ok(next) => match published(next.clone()) {
                    Ok(change) => CommandOutcome::Changed { change, reply: Ok(next) },
                    Err(e) => CommandOutcome::Unchanged(Err(DomainError::Invalid {
                        field: "promo".into(),
                        reason: e.to_string(),
                    })),
                },
            },
        }
    }

    fn on_event(
        _key: &String,
        state: &Promocode,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        if env.topic != Topic::PromoUsed {
            return Err(permanent(format!("promo codes take no {} events", env.topic.name())));
        }
        // The payload names the order; the inbox makes each order's use count once.
        let _order: crate::domain::OrderId =
            events::decode(env.topic, env.schema_version, &env.payload).map_err(permanent)?;
        match state.used() {
            Some(next) => published(next).map(EventOutcome::Changed).map_err(permanent),
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromoQuery {
    /// The code as last heard, if at all.
    Get,
}

impl<const ORDER: bool> EntityKind for PromoProjection<ORDER> {
    const SERVICE: &'static str = if ORDER { "order" } else { "catalogue" };
    const AGGREGATE: &'static str = "promo";
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
        let p: Promocode = events::decode(env.topic, env.schema_version, &env.payload).map_err(permanent)?;
        if &p.token != key {
            return Err(permanent(format!("code {} routed to {key}", p.token)));
        }
        if state.as_ref().is_some_and(|(v, _)| *v >= env.aggregate_version) {
            return Ok(EventOutcome::Ignored);
        }
        Ok(EventOutcome::Changed(Change::to(Some((env.aggregate_version, p)))))
    }
}

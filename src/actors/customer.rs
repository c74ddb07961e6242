//! The customer service: one customer per e-mail address (wrapping `domain::customer`). Every
//! change is published on `customer.event` for the services that keep a copy (notification).

use super::kind::{Change, CommandOutcome, Emit, EntityKind, EventOutcome};
use super::{from_state_v1, state_v1};
use crate::domain::customer::{Communication, Customer, ProfileChange};
use crate::domain::{Ctx, CustomerId, DomainError};
use crate::persistence::codec::CodecError;
use crate::persistence::events::{self, Topic};
use crate::persistence::{DeliveryError, Envelope};

/// What can be asked of a customer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CustomerCommand {
    /// Sign up.
    Register {
        /// First name.
        name: String,
        /// Last name.
        last_name: String,
        /// Ways to reach them.
        communications: Vec<Communication>,
    },
    /// Change the profile.
    Update(ProfileChange),
    /// Read it.
    Get,
}

/// The customer entity kind.
#[derive(Debug)]
pub struct CustomerKind;

fn published(next: Customer) -> CommandOutcome<CustomerKind> {
    match events::encode(&next) {
        Ok(payload) => CommandOutcome::Changed {
            reply: Ok(next.clone()),
            change: Change::to(next.clone()).emit(Emit::new(
                Topic::CustomerEvent,
                next.customer_id.to_string(),
                payload,
            )),
        },
        Err(e) => {
            CommandOutcome::Unchanged(Err(DomainError::Invalid { field: "customer".into(), reason: e.to_string() }))
        }
    }
}

impl EntityKind for CustomerKind {
    const SERVICE: &'static str = "customer";
    const AGGREGATE: &'static str = "profile";
    type Key = CustomerId;
    type State = Customer;
    type Command = CustomerCommand;
    type Reply = Result<Customer, DomainError>;

    fn topics() -> &'static [Topic] {
        &[]
    }

    fn parse_key(s: &str) -> Result<CustomerId, String> {
        crate::actors::customer_key(s)
    }

    fn initial(key: &CustomerId) -> Customer {
        Customer::unregistered(key.clone())
    }

    fn encode_state(state: &Customer) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("customer", state)
    }

    fn decode_state(_key: &CustomerId, schema: u16, body: &[u8]) -> Result<Customer, CodecError> {
        from_state_v1("customer", schema, body)
    }

    fn status(state: &Customer) -> String {
        if state.registered() { "REGISTERED" } else { "UNKNOWN" }.into()
    }

    fn on_command(key: &CustomerId, state: &Customer, cmd: CustomerCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        match cmd {
            CustomerCommand::Get if state.registered() => CommandOutcome::Unchanged(Ok(state.clone())),
            CustomerCommand::Get => {
                CommandOutcome::Unchanged(Err(DomainError::NotFound { what: "customer".into(), id: key.to_string() }))
            }
            CustomerCommand::Register { name, last_name, communications } => {
                match state.register(&name, &last_name, communications, ctx) {
                    Ok(next) => published(next),
                    Err(e) => CommandOutcome::Unchanged(Err(e)),
                }
            }
            CustomerCommand::Update(ch) => match state.update(&ch, ctx) {
                Ok(Some(next)) => published(next),
                Ok(None) => CommandOutcome::Unchanged(Ok(state.clone())),
                Err(e) => CommandOutcome::Unchanged(Err(e)),
            },
        }
    }

    fn on_event(
        _key: &CustomerId,
        _state: &Customer,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        Err(DeliveryError::Permanent(format!("customers take no {} events", env.topic.name())))
    }
}

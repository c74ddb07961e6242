//! The HTTP front's idempotency records: the first answer to a creating request sent with an
//! `Idempotency-Key`, kept (durably, like any aggregate) so a repeat within 24 h gets it again.

use serde::{Deserialize, Serialize};

use super::kind::{Change, CommandOutcome, EntityKind, EventOutcome};
use super::{from_state_v1, state_v1};
use crate::domain::{Ctx, DomainError};
use crate::persistence::codec::CodecError;
use crate::persistence::events::Topic;
use crate::persistence::{DeliveryError, Envelope};

/// How long an answer is kept for repeats, ms.
pub const IDEMPOTENCY_WINDOW_MS: u64 = 24 * 60 * 60 * 1000;

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAnswer {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Vec<u8>,
    /// When it was given, ms.
    pub at_ms: u64,
    /// A hash of the request it answered (a repeat with another body is refused, so a key
    /// reused by mistake — or by someone else on a public route — never returns this answer).
    pub request_hash: u64,
}

/// What can be asked of a record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IdempotencyCommand {
    /// The answer, if one was kept within the window.
    Get,
    /// Keep this answer, unless one is already kept within the window (then that one stays
    /// and is returned).
    Put(StoredAnswer),
}

/// The idempotency record kind, keyed by a hash of (caller, route, key).
#[derive(Debug)]
pub struct IdempotencyKind;

impl EntityKind for IdempotencyKind {
    const SERVICE: &'static str = "http";
    const AGGREGATE: &'static str = "idempotency";
    type Key = String;
    type State = Option<StoredAnswer>;
    type Command = IdempotencyCommand;
    type Reply = Result<Option<StoredAnswer>, DomainError>;

    fn topics() -> &'static [Topic] {
        &[]
    }

    fn parse_key(s: &str) -> Result<String, String> {
        if s.starts_with("k-") && s.len() == 34 && s[2..].bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(s.to_owned())
        } else {
            Err(format!("{s:?} is not an idempotency key"))
        }
    }

    fn initial(_key: &String) -> Self::State {
        None
    }

    fn encode_state(state: &Self::State) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("idempotency record", state)
    }

    fn decode_state(_key: &String, schema: u16, body: &[u8]) -> Result<Self::State, CodecError> {
        from_state_v1("idempotency record", schema, body)
    }

    fn status(_state: &Self::State) -> String {
        "KEPT".into()
    }

    fn on_command(_key: &String, state: &Self::State, cmd: IdempotencyCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        let live = state.as_ref().filter(|a| ctx.now_ms < a.at_ms.saturating_add(IDEMPOTENCY_WINDOW_MS)).cloned();
        match cmd {
            IdempotencyCommand::Get => CommandOutcome::Unchanged(Ok(live)),
            IdempotencyCommand::Put(a) => match live {
                Some(first) => CommandOutcome::Unchanged(Ok(Some(first))),
                None => CommandOutcome::Changed { reply: Ok(Some(a.clone())), change: Change::to(Some(a)) },
            },
        }
    }

    fn on_event(
        _key: &String,
        _state: &Self::State,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        Err(DeliveryError::Permanent(format!("idempotency records take no {} events", env.topic.name())))
    }
}

/// The record key of (caller, route, client key).
pub fn record_key(caller: &str, route: &str, key: &str) -> String {
    let h = xxhash_rust::xxh3::xxh3_128(format!("{caller}\0{route}\0{key}").as_bytes());
    format!("k-{h:032x}")
}

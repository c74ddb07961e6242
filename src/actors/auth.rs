//! The auth service: users (one per e-mail) and revoked tokens (grouped by the hour they expire
//! in). Passwords reach it hashed; tokens are signed and checked by the HTTP front.

use super::kind::{Change, CommandOutcome, Emit, EntityKind, EventOutcome};
use super::{from_state_v1, state_v1};
use crate::domain::auth::{Revocations, Revoked, Role, User};
use crate::domain::{Ctx, CustomerId, DomainError};
use crate::persistence::codec::CodecError;
use crate::persistence::events::{decode, encode, Topic};
use crate::persistence::{DeliveryError, Envelope};

/// What can be asked of a user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UserCommand {
    /// Create the user with an argon2id hash.
    Create {
        /// The hash.
        password_hash: String,
        /// The role.
        role: Role,
    },
    /// Take back the user a failed sign-up created (only if its hash is still this one).
    Withdraw {
        /// The hash the sign-up created it with.
        password_hash: String,
    },
    /// Enable or disable.
    SetEnabled(bool),
    /// Read.
    Get,
    /// Say the account again to every node's copy (an account created offline with `bazaar
    /// user add`, before this node knew its peers).
    Announce,
}

/// The user entity kind.
#[derive(Debug)]
pub struct UserKind;

impl EntityKind for UserKind {
    const SERVICE: &'static str = "auth";
    const AGGREGATE: &'static str = "user";
    type Key = CustomerId;
    type State = User;
    type Command = UserCommand;
    type Reply = Result<User, DomainError>;

    fn topics() -> &'static [Topic] {
        &[]
    }

    fn parse_key(s: &str) -> Result<CustomerId, String> {
        crate::actors::customer_key(s)
    }

    fn initial(key: &CustomerId) -> User {
        User::absent(key.clone())
    }

    fn encode_state(state: &User) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("user", state)
    }

    fn decode_state(_key: &CustomerId, schema: u16, body: &[u8]) -> Result<User, CodecError> {
        from_state_v1("user", schema, body)
    }

    fn status(state: &User) -> String {
        if state.is_enable { "ENABLED" } else { "DISABLED" }.into()
    }

    fn on_command(key: &CustomerId, state: &User, cmd: UserCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        let r = match cmd {
            UserCommand::Get if state.exists() => return CommandOutcome::Unchanged(Ok(state.clone())),
            UserCommand::Get => Err(DomainError::NotFound { what: "user".into(), id: key.to_string() }),
            UserCommand::Create { password_hash, role } => state.create(password_hash, role, ctx).map(Some),
            UserCommand::Withdraw { password_hash } => Ok(state.withdraw(&password_hash)),
            UserCommand::SetEnabled(e) => state.set_enabled(e, ctx),
            UserCommand::Announce if state.exists() => Ok(Some(state.clone())),
            UserCommand::Announce => Err(DomainError::NotFound { what: "user".into(), id: key.to_string() }),
        };
        match r {
            Err(e) => CommandOutcome::Unchanged(Err(e)),
            Ok(None) => CommandOutcome::Unchanged(Ok(state.clone())),
            // Every change (and an announcement) reaches every node's copy of the accounts.
            Ok(Some(next)) => match encode(&next) {
                Ok(payload) => CommandOutcome::Changed {
                    reply: Ok(next.clone()),
                    change: Change::to(next).emit(Emit::new(Topic::UserEvent, key.to_string(), payload)),
                },
                Err(e) => {
                    CommandOutcome::Unchanged(Err(DomainError::Invalid { field: "user".into(), reason: e.to_string() }))
                }
            },
        }
    }

    fn on_event(
        _key: &CustomerId,
        _state: &User,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        Err(DeliveryError::Permanent(format!("users take no {} events", env.topic.name())))
    }
}

/// Every node's copy of every user account (a replicated read model), so a login is checked
/// on the node that takes it, whichever node owns the account. The newest version wins.
#[derive(Debug)]
pub struct UserCopyKind;

/// Reading a copy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CopyQuery {
    /// The account as last heard, if at all.
    Get,
}

impl EntityKind for UserCopyKind {
    const SERVICE: &'static str = "auth";
    const AGGREGATE: &'static str = "user_copy";
    const REPLICATED: bool = true;
    type Key = CustomerId;
    type State = Option<(u64, User)>;
    type Command = CopyQuery;
    type Reply = Option<User>;

    fn topics() -> &'static [Topic] {
        &[Topic::UserEvent]
    }

    fn parse_key(s: &str) -> Result<CustomerId, String> {
        crate::actors::customer_key(s)
    }

    fn initial(_key: &CustomerId) -> Self::State {
        None
    }

    fn encode_state(state: &Self::State) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("user copy", state)
    }

    fn decode_state(_key: &CustomerId, schema: u16, body: &[u8]) -> Result<Self::State, CodecError> {
        from_state_v1("user copy", schema, body)
    }

    fn status(_state: &Self::State) -> String {
        "PROJECTED".into()
    }

    fn on_command(_key: &CustomerId, state: &Self::State, _cmd: CopyQuery, _ctx: &Ctx) -> CommandOutcome<Self> {
        CommandOutcome::Unchanged(state.as_ref().map(|(_, u)| u.clone()))
    }

    fn on_event(
        key: &CustomerId,
        state: &Self::State,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        let u: User = decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
        if &u.customer_id != key {
            return Err(DeliveryError::permanent(format!("user {} routed to {key}", u.customer_id)));
        }
        if state.as_ref().is_some_and(|(v, _)| *v >= env.aggregate_version) {
            return Ok(EventOutcome::Ignored);
        }
        Ok(EventOutcome::Changed(Change::to(Some((env.aggregate_version, u)))))
    }
}

/// What can be asked of a group of revocations.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RevocationCommand {
    /// Revoke a token until it expires.
    Revoke {
        /// The token's id.
        jti: String,
        /// When it expires, ms.
        exp_ms: u64,
    },
    /// Forget expired tokens.
    Prune,
    /// Read.
    Get,
}

/// The revoked-tokens entity kind, keyed by the hour the tokens expire in (`h{hours since epoch}`).
#[derive(Debug)]
pub struct RevocationKind;

/// The key of the group a token expiring at `exp_ms` belongs to.
pub fn revocation_group(exp_ms: u64) -> String {
    format!("h{}", exp_ms / 3_600_000)
}

impl EntityKind for RevocationKind {
    const SERVICE: &'static str = "auth";
    const AGGREGATE: &'static str = "revoked";
    /// Every node keeps every revocation, so a token revoked anywhere is refused everywhere
    /// (after a restart too): a revocation is written on the node that takes the logout and
    /// reaches the others as an `auth.revoked` event.
    const REPLICATED: bool = true;
    type Key = String;
    type State = Revocations;
    type Command = RevocationCommand;
    type Reply = Result<Revocations, DomainError>;

    fn topics() -> &'static [Topic] {
        &[Topic::TokenRevoked]
    }

    fn parse_key(s: &str) -> Result<String, String> {
        match s.strip_prefix('h') {
            Some(n) if !n.is_empty() && n.len() <= 12 && n.bytes().all(|b| b.is_ascii_digit()) => Ok(s.to_owned()),
            _ => Err(format!("{s:?} is not a revocation group")),
        }
    }

    fn initial(_key: &String) -> Revocations {
        Revocations::default()
    }

    fn encode_state(state: &Revocations) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("revocations", state)
    }

    fn decode_state(_key: &String, schema: u16, body: &[u8]) -> Result<Revocations, CodecError> {
        from_state_v1("revocations", schema, body)
    }

    fn status(_state: &Revocations) -> String {
        "REVOKED".into()
    }

    fn on_command(key: &String, state: &Revocations, cmd: RevocationCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        let r = match cmd {
            RevocationCommand::Get => return CommandOutcome::Unchanged(Ok(state.clone())),
            RevocationCommand::Revoke { jti, exp_ms } => {
                match (state.revoke(&jti, exp_ms), encode(&Revoked { jti, exp_ms })) {
                    (Ok(Some(next)), Ok(payload)) => {
                        let change =
                            Change::to(next.clone()).emit(Emit::new(Topic::TokenRevoked, key.clone(), payload));
                        return CommandOutcome::Changed { reply: Ok(next), change };
                    }
                    (Ok(_), Err(e)) => Err(DomainError::Invalid { field: "token".into(), reason: e.to_string() }),
                    (r, _) => r,
                }
            }
            RevocationCommand::Prune => Ok(state.prune(ctx.now_ms)),
        };
        match r {
            Err(e) => CommandOutcome::Unchanged(Err(e)),
            Ok(None) => CommandOutcome::Unchanged(Ok(state.clone())),
            Ok(Some(next)) => CommandOutcome::Changed { reply: Ok(next.clone()), change: Change::to(next) },
        }
    }

    /// Another node's revocation (or this node's own, coming back): kept once.
    fn on_event(
        key: &String,
        state: &Revocations,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        let r: Revoked = decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
        if revocation_group(r.exp_ms) != *key {
            return Err(DeliveryError::permanent(format!(
                "a revocation of group {} routed to {key}",
                revocation_group(r.exp_ms)
            )));
        }
        match state.revoke(&r.jti, r.exp_ms) {
            Ok(Some(next)) => Ok(EventOutcome::Changed(Change::to(next))),
            Ok(None) => Ok(EventOutcome::Ignored),
            Err(e) => Err(DeliveryError::permanent(e)),
        }
    }
}

//! The auth service: users (one per e-mail) and revoked tokens (grouped by the hour they expire
//! in). Passwords reach it hashed; tokens are signed and checked by the HTTP front.

use super::kind::{Change, CommandOutcome, EntityKind, EventOutcome};
use super::{from_state_v1, state_v1};
use crate::domain::auth::{Revocations, Role, User};
use crate::domain::{Ctx, CustomerId, DomainError};
use crate::persistence::codec::CodecError;
use crate::persistence::events::Topic;
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
        };
        match r {
            Err(e) => CommandOutcome::Unchanged(Err(e)),
            Ok(None) => CommandOutcome::Unchanged(Ok(state.clone())),
            Ok(Some(next)) => CommandOutcome::Changed { reply: Ok(next.clone()), change: Change::to(next) },
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
    type Key = String;
    type State = Revocations;
    type Command = RevocationCommand;
    type Reply = Result<Revocations, DomainError>;

    fn topics() -> &'static [Topic] {
        &[]
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

    fn on_command(_key: &String, state: &Revocations, cmd: RevocationCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        let r = match cmd {
            RevocationCommand::Get => return CommandOutcome::Unchanged(Ok(state.clone())),
            RevocationCommand::Revoke { jti, exp_ms } => state.revoke(&jti, exp_ms),
            RevocationCommand::Prune => Ok(state.prune(ctx.now_ms)),
        };
        match r {
            Err(e) => CommandOutcome::Unchanged(Err(e)),
            Ok(None) => CommandOutcome::Unchanged(Ok(state.clone())),
            Ok(Some(next)) => CommandOutcome::Changed { reply: Ok(next.clone()), change: Change::to(next) },
        }
    }

    fn on_event(
        _key: &String,
        _state: &Revocations,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        Err(DeliveryError::Permanent(format!("revocations take no {} events", env.topic.name())))
    }
}

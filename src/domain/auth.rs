//! The auth service's user (the seed's `UserDetails{customerId, password, lastModified,
//! isEnable}` and `UserRole{customerId, role}`) and revoked tokens (the seed's `Logout{token}`).
//! Passwords arrive here already hashed (argon2id, per-user salt): the domain never sees one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Ctx, CustomerId, DomainError};

/// The seed's `Role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// A shopper.
    Customer,
    /// Sees every order, cancels, checks the invariants.
    Operator,
    /// Receives stock.
    StockOperator,
    /// Moves shipments.
    ShippingOperator,
    /// May do everything.
    Admin,
}

impl Role {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Customer => "CUSTOMER",
            Role::Operator => "OPERATOR",
            Role::StockOperator => "STOCK_OPERATOR",
            Role::ShippingOperator => "SHIPPING_OPERATOR",
            Role::Admin => "ADMIN",
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Option<Role> {
        [Role::Customer, Role::Operator, Role::StockOperator, Role::ShippingOperator, Role::Admin]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// A user who can log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Their id (the lower-cased e-mail).
    pub customer_id: CustomerId,
    /// The argon2id hash (PHC string), salt included.
    pub password_hash: String,
    /// Their role.
    pub role: Role,
    /// Whether they may log in.
    pub is_enable: bool,
    /// Created, ms (0: no such user).
    pub created_ms: u64,
    /// Last changed, ms.
    pub last_modified_ms: u64,
}

impl User {
    /// No such user yet.
    pub fn absent(customer_id: CustomerId) -> Self {
        Self {
            customer_id,
            password_hash: String::new(),
            role: Role::Customer,
            is_enable: false,
            created_ms: 0,
            last_modified_ms: 0,
        }
    }

    /// Whether the user exists.
    pub fn exists(&self) -> bool {
        self.created_ms != 0
    }

    /// Creates the user; refused if they exist.
    pub fn create(&self, password_hash: String, role: Role, ctx: &Ctx) -> Result<User, DomainError> {
        if self.exists() {
            return Err(DomainError::AlreadyExists { what: "user".into(), id: self.customer_id.to_string() });
        }
        if !password_hash.starts_with("$argon2id$") {
            return Err(DomainError::Invalid { field: "password".into(), reason: "not an argon2id hash".into() });
        }
        Ok(User {
            customer_id: self.customer_id.clone(),
            password_hash,
            role,
            is_enable: true,
            created_ms: ctx.now_ms.max(1),
            last_modified_ms: ctx.now_ms.max(1),
        })
    }

    /// Takes back a user a sign-up created when the rest of the sign-up failed: the user becomes
    /// absent again — only if it is still the one that sign-up made (same salted hash), so an
    /// undo never removes anyone else. `None`: nothing to take back.
    pub fn withdraw(&self, password_hash: &str) -> Option<User> {
        (self.exists() && self.password_hash == password_hash).then(|| User::absent(self.customer_id.clone()))
    }

    /// Enables or disables the user. `None`: no change.
    pub fn set_enabled(&self, enabled: bool, ctx: &Ctx) -> Result<Option<User>, DomainError> {
        if !self.exists() {
            return Err(DomainError::NotFound { what: "user".into(), id: self.customer_id.to_string() });
        }
        if self.is_enable == enabled {
            return Ok(None);
        }
        Ok(Some(User { is_enable: enabled, last_modified_ms: ctx.now_ms.max(1), ..self.clone() }))
    }
}

/// Tokens revoked before they expire, grouped by the hour they expire in, so a whole group is
/// dropped once its hour has passed (pruning after expiry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocations {
    /// Token id → when it expires, ms.
    pub tokens: BTreeMap<String, u64>,
}

/// A token revoked (the `auth.revoked` event every node's copy of the revocations takes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// The token's id.
    pub jti: String,
    /// When it expires, ms (it is forgotten after that).
    pub exp_ms: u64,
}

impl Revocations {
    /// Revokes a token. `None`: revoked already.
    pub fn revoke(&self, jti: &str, exp_ms: u64) -> Result<Option<Revocations>, DomainError> {
        if jti.is_empty() || jti.len() > 64 {
            return Err(DomainError::Invalid { field: "token".into(), reason: "bad token id".into() });
        }
        if self.tokens.contains_key(jti) {
            return Ok(None);
        }
        let mut next = self.clone();
        next.tokens.insert(jti.to_owned(), exp_ms);
        Ok(Some(next))
    }

    /// Forgets every token expired at `now_ms`. `None`: nothing to forget.
    pub fn prune(&self, now_ms: u64) -> Option<Revocations> {
        if self.tokens.values().all(|exp| *exp > now_ms) {
            return None;
        }
        let mut next = self.clone();
        next.tokens.retain(|_, exp| *exp > now_ms);
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MessageId, NodeId};

    fn ctx() -> Ctx {
        Ctx { now_ms: 1_000, node: NodeId::parse("n").unwrap(), cause: MessageId::derived(&[b"t"]) }
    }

    #[test]
    fn a_withdrawn_sign_up_leaves_no_user_and_never_removes_another() {
        let id = CustomerId::parse("ada@example.com").unwrap();
        let absent = User::absent(id.clone());
        assert_eq!(absent.withdraw("$argon2id$a"), None, "nothing to take back");
        let made = absent.create("$argon2id$a".into(), Role::Customer, &ctx()).unwrap();
        assert_eq!(made.withdraw("$argon2id$b"), None, "another sign-up's user stays");
        let back = made.withdraw("$argon2id$a").unwrap();
        assert!(!back.exists());
        assert_eq!(back, absent);
        assert!(back.create("$argon2id$c".into(), Role::Customer, &ctx()).is_ok(), "the e-mail is free again");
    }
}

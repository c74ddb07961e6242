//! Validated identifiers. Fields are private: only `parse` (or `TryFrom`) builds one, so a
//! value of these types is always well formed, whether it came from a request or from disk.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::ID_BYTES_MAX;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is empty.
    #[error("{kind} is empty")]
    Empty {
        /// Which kind of id.
        kind: &'static str,
    },
    /// The string is longer than `limits::ID_BYTES_MAX`.
    #[error("{kind} is longer than {max} bytes")]
    TooLong {
        /// Which kind of id.
        kind: &'static str,
        /// The limit.
        max: usize,
    },
    /// The string holds a character outside `[A-Za-z0-9._:-]`.
    #[error("{kind} may only hold letters, digits and . _ : -")]
    BadChar {
        /// Which kind of id.
        kind: &'static str,
    },
}

fn check_id(kind: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > ID_BYTES_MAX {
        return Err(IdError::TooLong { kind, max: ID_BYTES_MAX });
    }
    let ok = s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if !ok {
        return Err(IdError::BadChar { kind });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        // By reference: `into = "String"` would clone on every encode.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl $name {
            /// Checks and wraps an id given as text.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_id($kind, s)?;
                Ok(Self(s.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                check_id($kind, &s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A stock keeping unit: the id of one product's stock item (and of the product itself).
    Sku,
    "sku"
);
string_id!(
    /// The id of a commerce order.
    OrderId,
    "order id"
);
string_id!(
    /// The name of a node, as `cluster.toml` gives it.
    NodeId,
    "node id"
);
string_id!(
    /// The id of one payment of an order (`{order id}-p{n}`).
    PaymentId,
    "payment id"
);

/// A customer: their e-mail address, lower-cased (the seed's `Customer{customerId=email}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct CustomerId(String);

impl Serialize for CustomerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl CustomerId {
    /// Checks an e-mail address and keeps it lower-cased: one `@`, a non-empty local part, a
    /// domain with a dot, no spaces or control characters, at most `ID_BYTES_MAX` bytes.
    pub fn parse(email: &str) -> Result<Self, IdError> {
        let kind = "customer id";
        let e = email.trim().to_ascii_lowercase();
        if e.is_empty() {
            return Err(IdError::Empty { kind });
        }
        if e.len() > ID_BYTES_MAX {
            return Err(IdError::TooLong { kind, max: ID_BYTES_MAX });
        }
        let ok_chars = e.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b',');
        let mut parts = e.split('@');
        let (local, domain) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let shape = parts.next().is_none()
            && !local.is_empty()
            && domain.len() >= 3
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if !ok_chars || !shape {
            return Err(IdError::BadChar { kind });
        }
        Ok(Self(e))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CustomerId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        let id = CustomerId::parse(&s)?;
        if id.0 != s {
            return Err(IdError::BadChar { kind: "customer id" });
        }
        Ok(id)
    }
}

impl From<CustomerId> for String {
    fn from(id: CustomerId) -> String {
        id.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl OrderId {
    /// The id of a customer's `n`-th order, placed in `partition`: `o{partition}-{8 hex of the
    /// customer}-{n}`. The partition prefix is what routes the order (and its payments) to the
    /// customer's node.
    pub fn for_customer(partition: u32, customer: &CustomerId, n: u64) -> OrderId {
        let h = xxhash_rust::xxh3::xxh3_64(customer.as_str().as_bytes()) >> 32;
        OrderId(format!("o{partition}-{h:08x}-{n}"))
    }

    /// The partition an order id carries, if it has the `o{partition}-` shape.
    pub fn partition(&self) -> Option<u32> {
        partition_prefix(self.as_str())
    }
}

/// The partition a key carries in an `o{partition}-…` prefix (orders and their payments).
pub fn partition_prefix(key: &str) -> Option<u32> {
    let rest = key.strip_prefix('o')?;
    let digits: &str = &rest[..rest.find('-')?];
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl PaymentId {
    /// The `n`-th payment of an order.
    pub fn nth(order: &OrderId, n: usize) -> Result<PaymentId, IdError> {
        PaymentId::parse(&format!("{order}-p{n}"))
    }

    /// The order a payment id belongs to.
    pub fn order(&self) -> Option<OrderId> {
        let (order, n) = self.as_str().rsplit_once("-p")?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        OrderId::parse(order).ok()
    }
}

/// The id of one message (command or event), used by inboxes to drop duplicates (hard case 3).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId([u8; 16]);

impl MessageId {
    /// Wraps 16 bytes (a UUID's, usually).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The id derived from names, the same every time: for messages whose identity is a fact
    /// (e.g. "the release of order X's booking of item Y"), so a repeat is recognised.
    pub fn derived(parts: &[&[u8]]) -> Self {
        let mut buf = Vec::new();
        for part in parts {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(part);
        }
        Self(xxhash_rust::xxh3::xxh3_128(&buf).to_be_bytes())
    }

    /// The 16 bytes (big-endian), as stored in inbox keys.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_plain_names_and_refuse_the_rest() {
        assert!(Sku::parse("book-978-0141439518").is_ok());
        assert_eq!(Sku::parse(""), Err(IdError::Empty { kind: "sku" }));
        assert!(matches!(Sku::parse("a b"), Err(IdError::BadChar { .. })));
        assert!(matches!(Sku::parse("é"), Err(IdError::BadChar { .. })));
        let long = "x".repeat(ID_BYTES_MAX + 1);
        assert!(matches!(OrderId::parse(&long), Err(IdError::TooLong { .. })));
        assert!(OrderId::parse(&long[..ID_BYTES_MAX]).is_ok());
    }

    #[test]
    fn deserializing_validates() {
        let cfg = bincode::config::standard();
        let bad = bincode::serde::encode_to_vec("a/b", cfg).unwrap();
        let good = bincode::serde::encode_to_vec("ab", cfg).unwrap();
        assert!(bincode::serde::decode_from_slice::<Sku, _>(&bad, cfg).is_err());
        let (sku, _) = bincode::serde::decode_from_slice::<Sku, _>(&good, cfg).unwrap();
        assert_eq!(sku, Sku::parse("ab").unwrap());
    }

    #[test]
    fn customer_ids_are_lower_cased_emails() {
        assert_eq!(CustomerId::parse(" Alice@Example.COM ").unwrap().as_str(), "alice@example.com");
        for bad in ["", "alice", "a@b", "a@@b.com", "a b@c.com", "@c.com", "a@.com", "a@c.com.", "a@c..com"] {
            assert!(CustomerId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(CustomerId::try_from("Alice@example.com".to_owned()).is_err(), "stored ids are lower-case");
    }

    #[test]
    fn order_and_payment_ids_carry_the_partition() {
        let c = CustomerId::parse("bob@example.com").unwrap();
        let o = OrderId::for_customer(17, &c, 3);
        assert_eq!(o.partition(), Some(17));
        assert!(o.as_str().starts_with("o17-") && o.as_str().ends_with("-3"), "{o}");
        let p = PaymentId::nth(&o, 2).unwrap();
        assert_eq!(p.order(), Some(o.clone()));
        assert_eq!(partition_prefix(p.as_str()), Some(17));
        assert_eq!(partition_prefix("book-1"), None);
        assert_eq!(partition_prefix("o-1"), None);
        assert_eq!(PaymentId::parse("o1-x-p").unwrap().order(), None);
    }

    #[test]
    fn derived_message_ids_are_stable_and_distinct() {
        let a = MessageId::derived(&[b"release", b"order-1", b"sku-1"]);
        let b = MessageId::derived(&[b"release", b"order-1", b"sku-1"]);
        let c = MessageId::derived(&[b"release", b"order-1sku-1"]);
        assert_eq!(a, b);
        assert_ne!(a, c, "part boundaries are part of the identity");
        assert_eq!(a.to_string().len(), 36);
    }
}

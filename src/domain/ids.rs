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
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

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
    fn derived_message_ids_are_stable_and_distinct() {
        let a = MessageId::derived(&[b"release", b"order-1", b"sku-1"]);
        let b = MessageId::derived(&[b"release", b"order-1", b"sku-1"]);
        let c = MessageId::derived(&[b"release", b"order-1sku-1"]);
        assert_eq!(a, b);
        assert_ne!(a, c, "part boundaries are part of the identity");
        assert_eq!(a.to_string().len(), 36);
    }
}

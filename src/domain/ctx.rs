//! What a pure handler may know about the world: the time and the node it runs on.

use super::{MessageId, NodeId};

/// The context of one decision. Time and place come in from outside so that the domain stays
/// deterministic: the same state, command and context always give the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    /// Milliseconds since the Unix epoch, read by the caller.
    pub now_ms: u64,
    /// The node that takes the decision (recorded in events: hard case 7).
    pub node: NodeId,
    /// The message being decided (its id; a timer's derived id).
    pub cause: MessageId,
}

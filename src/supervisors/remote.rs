//! A service's calls across nodes: a command or a lane of events for a key another node owns
//! goes to that node's gateway (`command_remote`, `deliver_remote`), and what peers send this
//! node arrives through the service's [`Endpoint`]. Commands and replies travel in our codec,
//! decoded by the receiver, so a bad one is a typed refusal; the owner checks that it owns the
//! key and never forwards it.

use std::time::Duration;

use futures::future::BoxFuture;

use super::service::Service;
use crate::actors::kind::EntityKind;
use crate::actors::EngineError;
use crate::cluster::remote::{CallError, Endpoint, Refusal};
use crate::cluster::wire::Frame;
use crate::cluster::Route;
use crate::domain::{MessageId, NodeId};
use crate::limits::{CLUSTER_FRAME_BYTES_MAX, CLUSTER_REMOTE_ATTEMPTS, CLUSTER_REMOTE_CALL_TIMEOUT_MS};
use crate::persistence::codec;
use crate::persistence::{DeliveryError, Envelope};

/// The name a service's calls go under: `{service}/{aggregate}`.
pub fn endpoint_name<K: EntityKind>() -> String {
    format!("{}/{}", K::SERVICE, K::AGGREGATE)
}

impl From<EngineError> for Refusal {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Overloaded { service, key } => Refusal::Overloaded { service, key },
            EngineError::InvalidKey(m) => Refusal::Invalid(m),
            EngineError::TooLarge(m) => Refusal::TooLarge(m),
            other @ (EngineError::Unavailable(_)
            | EngineError::CommitFailed(_)
            | EngineError::OwnerUnreachable { .. }
            | EngineError::ShuttingDown) => Refusal::Unavailable(other.to_string()),
        }
    }
}

/// What a caller makes of the owner's refusal.
fn engine_error(owner: &NodeId, partition: u32, r: Refusal) -> EngineError {
    let unreachable = |why: String| EngineError::OwnerUnreachable { partition, node: owner.to_string(), why };
    match r {
        Refusal::Overloaded { service, key } => EngineError::Overloaded { service, key },
        Refusal::Invalid(m) => EngineError::InvalidKey(m),
        Refusal::TooLarge(m) => EngineError::TooLarge(m),
        Refusal::Unavailable(m) => EngineError::Unavailable(format!("node {owner}: {m}")),
        r @ (Refusal::NotOwner { .. } | Refusal::OtherConfiguration { .. } | Refusal::NoService(_)) => {
            unreachable(r.to_string())
        }
        Refusal::BadFrame(m) => EngineError::Unavailable(format!("node {owner} could not read the command: {m}")),
    }
}

impl<K: EntityKind> Service<K> {
    /// Sends a command to the node that owns `key` and waits for its answer. The command goes
    /// only to a reachable owner running this node's configuration; one that is not is
    /// `OwnerUnreachable` at once. After a timeout it is sent again with the same message id
    /// (the owner's inbox applies it once), up to `CLUSTER_REMOTE_ATTEMPTS` sends.
    pub(super) async fn command_remote(
        &self,
        partition: u32,
        owner: &NodeId,
        key: &K::Key,
        id: MessageId,
        cmd: K::Command,
    ) -> Result<K::Reply, EngineError> {
        let unreachable = |why: String| EngineError::OwnerUnreachable { partition, node: owner.to_string(), why };
        let Some(transport) = self.transport() else {
            return Err(unreachable("this node runs no cluster transport".into()));
        };
        let body = codec::to_body("command", &cmd, CLUSTER_FRAME_BYTES_MAX)
            .map_err(|e| EngineError::TooLarge(e.to_string()))?;
        let frame = Frame::Command {
            digest: transport.digest().to_owned(),
            to: endpoint_name::<K>(),
            key: key.to_string(),
            id,
            body,
        };
        let limit = Duration::from_millis(CLUSTER_REMOTE_CALL_TIMEOUT_MS);
        let mut last = String::new();
        for _ in 0..CLUSTER_REMOTE_ATTEMPTS {
            match transport.call(owner.as_str(), &frame, limit).await {
                Ok(Frame::Answer(Ok(reply))) => {
                    return codec::from_body::<K::Reply>("reply", &reply).map_err(|e| {
                        EngineError::Unavailable(format!(
                            "node {owner} answered with a reply that does not decode: {e}"
                        ))
                    })
                }
                Ok(Frame::Answer(Err(refusal))) => return Err(engine_error(owner, partition, refusal)),
                Ok(other) => {
                    return Err(EngineError::Unavailable(format!("node {owner} answered a command with {other:?}")))
                }
                Err(e @ CallError::Timeout { .. }) => last = e.to_string(),
                Err(CallError::Down { why, .. }) => return Err(unreachable(why)),
                Err(CallError::TooLarge(m)) => return Err(EngineError::TooLarge(m)),
                Err(e @ CallError::BadAnswer { .. }) => return Err(EngineError::Unavailable(e.to_string())),
            }
        }
        Err(EngineError::Unavailable(last))
    }

    /// Delivers events for entities `owner` owns to it (see `cluster::delivery::deliver_to`).
    pub(super) async fn deliver_remote(
        &self,
        owner: &NodeId,
        envelopes: Vec<Envelope>,
    ) -> Vec<Result<(), DeliveryError>> {
        match self.transport() {
            Some(t) => crate::cluster::delivery::deliver_to(t, owner.as_str(), &endpoint_name::<K>(), envelopes).await,
            None => {
                let why = "no cluster transport".to_owned();
                vec![Err(DeliveryError::Unreachable { node: owner.to_string(), why }); envelopes.len()]
            }
        }
    }
}

impl<K: EntityKind> Endpoint for Service<K> {
    fn command(&self, key: String, id: MessageId, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, Refusal>> {
        let me = self.clone();
        Box::pin(async move {
            let key = K::parse_key(&key).map_err(Refusal::Invalid)?;
            if let Route::Remote { partition, .. } = me.route(&key) {
                tracing::warn!(service = K::SERVICE, %key, partition, "a peer sent a command for a key this node does not own: refused");
                return Err(Refusal::NotOwner { partition, node: me.env().node.to_string() });
            }
            let cmd: K::Command = codec::from_body("command", &body).map_err(|e| {
                tracing::warn!(service = K::SERVICE, error = %e, "a peer's command does not decode: refused");
                Refusal::BadFrame(e.to_string())
            })?;
            let reply = me.command_here(&key, id, cmd).await.map_err(Refusal::from)?;
            codec::to_body("reply", &reply, CLUSTER_FRAME_BYTES_MAX - crate::limits::CLUSTER_FRAME_SLACK_BYTES)
                .map_err(|e| Refusal::TooLarge(e.to_string()))
        })
    }

    fn deliver(&self, envelopes: Vec<Envelope>) -> BoxFuture<'static, Vec<Result<(), DeliveryError>>> {
        let me = self.clone();
        Box::pin(async move { me.deliver_here(envelopes).await })
    }
}

//! Lanes of events to another node: the relay's deliveries to a subscriber there (an entity
//! service's, for keys that node owns, or a replicated subscriber's copy), in frames under the
//! cap, through that node's gateway, acknowledged once its commits are durable.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::remote::{CallError, Refusal};
use super::transport::Transport;
use super::wire::Frame;
use crate::limits::{CLUSTER_FRAME_BYTES_MAX, CLUSTER_FRAME_SLACK_BYTES, CLUSTER_REMOTE_CALL_TIMEOUT_MS};
use crate::persistence::{DeliveryError, Envelope, Subscriber};

/// A subscriber that runs on every node, as this node's relay reaches its copy on `node`: the
/// destination `{service}@{node}` of a replicated subscription.
pub struct RemoteSubscriber {
    /// The transport to reach it through.
    pub transport: Arc<Transport>,
    /// The node it runs on.
    pub node: String,
    /// Its name there (`{service}/{aggregate}`, or a read model's name).
    pub to: String,
}

impl Subscriber for RemoteSubscriber {
    fn deliver(&self, envelope: Envelope) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let lane = self.deliver_lane(vec![envelope]);
        Box::pin(async move { lane.await.pop().unwrap_or_else(|| Err(DeliveryError::Transient("no outcome".into()))) })
    }

    fn deliver_lane(&self, envelopes: Vec<Envelope>) -> BoxFuture<'static, Vec<Result<(), DeliveryError>>> {
        let (t, node, to) = (self.transport.clone(), self.node.clone(), self.to.clone());
        Box::pin(async move { deliver_to(&t, &node, &to, envelopes).await })
    }
}

/// Delivers events to the subscriber `to` on node `owner`, in frames under the cap (in order,
/// the next only once the previous all took effect). An owner that cannot be reached leaves them
/// `Unreachable` (the relay parks the lane); an envelope that cannot be encoded is `Permanent`.
pub async fn deliver_to(
    transport: &Transport,
    owner: &str,
    to: &str,
    envelopes: Vec<Envelope>,
) -> Vec<Result<(), DeliveryError>> {
    let n = envelopes.len();
    // Each envelope in its own checked encoding; one that does not encode is sent after
    // everything before it took effect (it never can), and what follows it waits.
    let mut encoded = Vec::with_capacity(n);
    let mut unencodable = None;
    for env in &envelopes {
        match env.encode() {
            Ok(b) => encoded.push(b),
            Err(e) => {
                unencodable = Some(DeliveryError::Permanent(format!("the envelope does not encode: {e}")));
                break;
            }
        }
    }
    // Frames under the cap (an envelope is far below it: `ENVELOPE_BYTES_MAX`).
    let room = CLUSTER_FRAME_BYTES_MAX - CLUSTER_FRAME_SLACK_BYTES;
    let mut frames: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut size = 0;
    for bytes in encoded {
        let cost = bytes.len() + 16;
        match frames.last_mut() {
            Some(f) if size + cost <= room => f.push(bytes),
            _ => {
                frames.push(vec![bytes]);
                size = 0;
            }
        }
        size += cost;
    }
    let mut out: Vec<Result<(), DeliveryError>> = Vec::with_capacity(n);
    let limit = Duration::from_millis(CLUSTER_REMOTE_CALL_TIMEOUT_MS);
    let digest = transport.digest().to_owned();
    for batch in frames {
        if out.iter().any(Result::is_err) {
            break;
        }
        let len = batch.len();
        let frame = Frame::Deliver { digest: digest.clone(), to: to.to_owned(), envelopes: batch };
        let results = match transport.call(owner, &frame, limit).await {
            Ok(Frame::Delivered(r)) if r.len() == len => {
                let took = r.iter().filter(|x| x.is_ok()).count();
                metrics::counter!("cluster_remote_events_total", "peer" => owner.to_owned()).increment(took as u64);
                r
            }
            Ok(Frame::Answer(Err(r @ (Refusal::OtherConfiguration { .. } | Refusal::NoService(_))))) => {
                vec![Err(DeliveryError::Unreachable { node: owner.to_owned(), why: r.to_string() }); len]
            }
            Ok(other) => {
                vec![Err(DeliveryError::Transient(format!("node {owner} answered a delivery with {other:?}"))); len]
            }
            Err(e @ CallError::Down { .. }) => {
                vec![Err(DeliveryError::Unreachable { node: owner.to_owned(), why: e.to_string() }); len]
            }
            Err(e @ CallError::Timeout { .. }) => {
                // A node that went silent meanwhile is not the events' fault: park.
                let silent = transport.peer(owner).is_none_or(|p| !p.reachable);
                let err = if silent {
                    DeliveryError::Unreachable { node: owner.to_owned(), why: e.to_string() }
                } else {
                    DeliveryError::Transient(e.to_string())
                };
                vec![Err(err); len]
            }
            Err(e @ CallError::TooLarge(_)) => vec![Err(DeliveryError::Transient(e.to_string())); len],
            Err(e @ CallError::BadAnswer { .. }) => vec![Err(DeliveryError::Transient(e.to_string())); len],
        };
        out.extend(results);
    }
    if let Some(e) = unencodable.filter(|_| !out.iter().any(Result::is_err)) {
        out.push(Err(e));
    }
    DeliveryError::pad(&mut out, n);
    out
}

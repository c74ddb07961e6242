//! The node's gateway: the one remotable actor of a node, in the `ractor::pg` group named after
//! the node, through which peers reach it. Entity actors stay local. The gateway answers
//! heartbeats (a `Hello` with the node's name and configuration digest) and status questions,
//! and hands commands and event lanes for entities this node owns to the service's
//! [`Endpoint`](super::remote::Endpoint), each call in its own task so one slow entity holds up
//! no other call. Payloads are bytes in our codec (`super::wire`), decoded here, so a bad frame
//! gets a typed refusal (or an empty answer), never a panic.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use super::remote::{Endpoints, Refusal};
use super::wire::{self, Frame};
use crate::persistence::{DeliveryError, Envelope, Row};

/// The `ractor::pg` group of `node`'s gateway.
pub fn group_of(node: &str) -> String {
    format!("bazaar.gateway.{node}")
}

/// A peer's gateway, once a session with `node` has brought its group member over (`None`
/// before that, or after the session dropped).
pub fn remote_gateway(node: &str) -> Option<ActorRef<GatewayMsg>> {
    ractor::pg::get_members(&group_of(node)).into_iter().find(|c| !c.get_id().is_local()).map(ActorRef::from)
}

/// What a gateway takes. The wire tag is the variant's name: never rename one.
#[derive(RactorClusterMessage)]
pub enum GatewayMsg {
    /// A heartbeat: a `Frame::Hello` in, ours out (empty when the frame did not decode).
    #[rpc]
    Hello(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// `bazaar cluster status`: a `Frame::Hello` in, a `Frame::Status` out (empty when the frame
    /// did not decode).
    #[rpc]
    Status(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// A `Frame::Command` in, a `Frame::Answer` out; a `Frame::Deliver` in, a
    /// `Frame::Delivered` out.
    #[rpc]
    Call(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// This node's own figures, read when a status is asked for: (outbox depth, dead letters), and
/// its peers as it sees them.
pub type StatusSource = std::sync::Arc<dyn Fn() -> ((u64, u64), Vec<(String, bool, Option<String>)>) + Send + Sync>;

/// The gateway actor.
#[derive(Debug)]
pub struct Gateway;

/// Who this gateway speaks for.
#[derive(Clone)]
pub struct GatewayArgs {
    /// The node's name.
    pub node: String,
    /// Its configuration digest.
    pub digest: String,
    /// Its figures.
    pub status: StatusSource,
    /// Its services, for commands and deliveries.
    pub endpoints: Endpoints,
    /// Pages of its stored aggregates (for reads of the whole cluster).
    pub rows: RowSource,
}

/// A page of a node's stored aggregates: (service, aggregate, key prefix, after) → rows and
/// the key to continue after.
pub type RowSource =
    std::sync::Arc<dyn Fn(&str, &str, &str, Option<&str>) -> Result<(Vec<Row>, Option<String>), String> + Send + Sync>;

impl Actor for Gateway {
    type Msg = GatewayMsg;
    type State = GatewayArgs;
    type Arguments = GatewayArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<GatewayMsg>,
        args: GatewayArgs,
    ) -> Result<GatewayArgs, ActorProcessingErr> {
        ractor::pg::join(group_of(&args.node), vec![myself.get_cell()]);
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<GatewayMsg>,
        msg: GatewayMsg,
        me: &mut GatewayArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GatewayMsg::Hello(bytes, reply) => {
                let answer = match wire::decode(&bytes) {
                    Ok(Frame::Hello { .. }) => Frame::Hello { node: me.node.clone(), digest: me.digest.clone() },
                    other => {
                        refuse(other, reply);
                        return Ok(());
                    }
                };
                let _ = reply.send(wire::encode(&answer).unwrap_or_default());
            }
            GatewayMsg::Status(bytes, reply) => {
                let answer = match wire::decode(&bytes) {
                    Ok(Frame::Hello { .. }) => {
                        // Reading the figures touches the store: off the runtime's threads.
                        let status = me.status.clone();
                        let Ok(((outbox_depth, dead_letters), peers)) =
                            tokio::task::spawn_blocking(move || status()).await
                        else {
                            let _ = reply.send(Vec::new());
                            return Ok(());
                        };
                        Frame::Status {
                            node: me.node.clone(),
                            digest: me.digest.clone(),
                            outbox_depth,
                            dead_letters,
                            peers,
                        }
                    }
                    other => {
                        refuse(other, reply);
                        return Ok(());
                    }
                };
                let _ = reply.send(wire::encode(&answer).unwrap_or_default());
            }
            GatewayMsg::Call(bytes, reply) => {
                let (endpoints, digest, rows) = (me.endpoints.clone(), me.digest.clone(), me.rows.clone());
                tokio::spawn(async move {
                    let answer = answer_call(&endpoints, &rows, &digest, &bytes).await;
                    let encoded = wire::encode(&answer)
                        .or_else(|e| wire::encode(&Frame::Answer(Err(Refusal::TooLarge(format!("the answer: {e}"))))));
                    let _ = reply.send(encoded.unwrap_or_default());
                });
            }
        }
        Ok(())
    }
}

/// Carries out a command or a delivery a peer sent, and says how it went.
async fn answer_call(endpoints: &Endpoints, rows: &RowSource, ours: &str, bytes: &[u8]) -> Frame {
    let frame = match wire::decode(bytes) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, len = bytes.len(), "a peer's call did not decode: refused");
            return Frame::Answer(Err(Refusal::BadFrame(e.to_string())));
        }
    };
    let other = |theirs: String| {
        tracing::warn!(%theirs, %ours, "a peer that runs another configuration called: refused");
        Refusal::OtherConfiguration { theirs, ours: ours.to_owned() }
    };
    match frame {
        Frame::Command { digest, .. } if digest != ours => Frame::Answer(Err(other(digest))),
        Frame::Command { to, key, id, body, .. } => match endpoints.get().and_then(|e| e.get(&to)) {
            None => {
                tracing::warn!(service = %to, "a peer called a service this node does not run (or not yet)");
                Frame::Answer(Err(Refusal::NoService(to)))
            }
            Some(ep) => Frame::Answer(ep.command(key, id, body).await),
        },
        Frame::Deliver { digest, .. } if digest != ours => Frame::Answer(Err(other(digest))),
        Frame::Deliver { to, envelopes, .. } => {
            let n = envelopes.len();
            let Some(ep) = endpoints.get().and_then(|e| e.get(&to)) else {
                return Frame::Delivered(vec![Err(DeliveryError::Transient(Refusal::NoService(to).to_string())); n]);
            };
            // Deliver what decodes, in order, up to the first envelope that does not; that one
            // can never be delivered, the ones after it wait for another try.
            let mut good = Vec::with_capacity(n);
            let mut bad = None;
            for raw in &envelopes {
                match Envelope::decode(raw) {
                    Ok(e) => good.push(e),
                    Err(e) => {
                        tracing::warn!(error = %e, destination = %to, "a peer sent an envelope that does not decode");
                        bad = Some(e.to_string());
                        break;
                    }
                }
            }
            let mut out = if good.is_empty() { Vec::new() } else { ep.deliver(good).await };
            if let Some(why) = bad {
                out.push(Err(DeliveryError::Permanent(format!("the envelope does not decode: {why}"))));
            }
            DeliveryError::pad(&mut out, n);
            Frame::Delivered(out)
        }
        Frame::States { digest, .. } if digest != ours => Frame::Answer(Err(other(digest))),
        Frame::States { service, aggregate, prefix, after, .. } => {
            // Reading the store: off the runtime's threads.
            let rows = rows.clone();
            let page = tokio::task::spawn_blocking(move || rows(&service, &aggregate, &prefix, after.as_deref())).await;
            match page {
                Ok(Ok((rows, next))) => Frame::Rows { rows, next },
                Ok(Err(e)) => Frame::Answer(Err(Refusal::Unavailable(e))),
                Err(e) => Frame::Answer(Err(Refusal::Unavailable(e.to_string()))),
            }
        }
        other => {
            tracing::warn!(frame = ?other, "a peer called with a frame that is not a command, a delivery or a read");
            Frame::Answer(Err(Refusal::BadFrame("not a command, a delivery or a read".into())))
        }
    }
}

/// Answers a frame that is not a question, or does not decode, with nothing.
fn refuse(frame: Result<Frame, crate::persistence::codec::CodecError>, reply: RpcReplyPort<Vec<u8>>) {
    match frame {
        Ok(f) => tracing::warn!(frame = ?f, "a peer sent a frame that is not a question"),
        Err(e) => tracing::warn!(error = %e, "a peer's frame did not decode"),
    }
    let _ = reply.send(Vec::new());
}

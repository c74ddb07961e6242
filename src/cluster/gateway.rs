//! The node's gateway: the one remotable actor of a node, in the `ractor::pg` group named after
//! the node, through which peers reach it. Entity actors stay local; today the gateway answers
//! heartbeats (a `Hello` with the node's name and configuration digest). Payloads are bytes in
//! our codec (`super::wire`), decoded here, so a bad frame gets an empty answer, never a panic.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use super::wire::{self, Frame};

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
}

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
        }
        Ok(())
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

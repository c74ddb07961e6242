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

/// What a gateway takes. The wire tag is the variant's name: never rename one.
#[derive(RactorClusterMessage)]
pub enum GatewayMsg {
    /// A heartbeat: a `Frame::Hello` in, ours out (empty when the frame did not decode).
    #[rpc]
    Hello(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// The gateway actor.
#[derive(Debug)]
pub struct Gateway;

/// Who this gateway speaks for.
#[derive(Debug, Clone)]
pub struct GatewayArgs {
    /// The node's name.
    pub node: String,
    /// Its configuration digest.
    pub digest: String,
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
                    Ok(Frame::Hello { .. }) => {
                        wire::encode(&Frame::Hello { node: me.node.clone(), digest: me.digest.clone() })
                            .unwrap_or_default()
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a peer's frame did not decode");
                        Vec::new()
                    }
                };
                let _ = reply.send(answer);
            }
        }
        Ok(())
    }
}

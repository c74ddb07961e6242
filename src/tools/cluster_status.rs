//! `bazaar cluster status --config FILE`: asks every configured node over the cluster transport
//! — as a short-lived client node holding the cluster's cookie — for its own figures, and prints
//! the nodes, whether each answered, the configuration digest each runs against the file's, the
//! partitions each owns under the file, its outbox depth and dead letters, and how it sees its
//! peers. No partition moves exist yet, and the report says so.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use ractor_cluster::{NodeServer, NodeServerMessage};

use crate::cluster::config::ClusterConfig;
use crate::cluster::gateway::{remote_gateway, GatewayMsg};
use crate::cluster::wire::{self, Frame};
use crate::cluster::Router;
use crate::limits::{CLUSTER_CALL_TIMEOUT_MS, CLUSTER_HANDSHAKE_TIMEOUT_MS};

/// What one node said, or why it said nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// Its name.
    pub name: String,
    /// Its cluster address.
    pub cluster_addr: SocketAddr,
    /// Partitions it owns under the file.
    pub owned: usize,
    /// Its answer, or why there was none.
    pub answer: Result<Answer, String>,
}

/// What a node said of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The configuration digest it runs.
    pub digest: String,
    /// Outbox entries not yet delivered.
    pub outbox_depth: u64,
    /// Dead letters kept.
    pub dead_letters: u64,
    /// Its peers as it sees them: (name, reachable, the digest they run).
    pub peers: Vec<(String, bool, Option<String>)>,
}

/// Asks every node of `cfg`.
pub async fn ask(cfg: &ClusterConfig) -> Result<Vec<NodeReport>, String> {
    let me = format!("bazaar-status-{}", std::process::id());
    let server = NodeServer::new(
        0,
        cfg.cookie.clone(),
        me.clone(),
        "127.0.0.1".into(),
        None,
        Some(ractor_cluster::node::NodeConnectionMode::Isolated),
    )
    .with_listen_addr(std::net::Ipv4Addr::LOCALHOST.into());
    let (server, _) =
        Actor::spawn(None, server, ()).await.map_err(|e| format!("cannot start a cluster client: {e}"))?;
    let ids = cfg.node_ids();
    let router = Router::new(ids[0].clone(), &ids, cfg.partitions);
    let hello = wire::encode(&Frame::Hello { node: me, digest: cfg.digest() }).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for n in &cfg.nodes {
        let answer = ask_one(&server, n.name.as_str(), n.cluster_addr, hello.clone()).await;
        out.push(NodeReport {
            name: n.name.to_string(),
            cluster_addr: n.cluster_addr,
            owned: router.owned_by(&n.name),
            answer,
        });
    }
    server.stop(None);
    Ok(out)
}

async fn ask_one(
    server: &ActorRef<NodeServerMessage>,
    node: &str,
    addr: SocketAddr,
    hello: Vec<u8>,
) -> Result<Answer, String> {
    crate::cluster::transport::connect(server, addr).await?;
    let deadline = Instant::now() + Duration::from_millis(CLUSTER_HANDSHAKE_TIMEOUT_MS);
    let gateway = loop {
        if let Some(g) = remote_gateway(node) {
            break g;
        }
        if Instant::now() > deadline {
            return Err(format!("no session within {CLUSTER_HANDSHAKE_TIMEOUT_MS} ms (another cookie?)"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let call =
        gateway.call(|port| GatewayMsg::Status(hello, port), Some(Duration::from_millis(CLUSTER_CALL_TIMEOUT_MS)));
    match call.await {
        Ok(CallResult::Success(bytes)) => match wire::decode(&bytes) {
            Ok(Frame::Status { node: name, digest, outbox_depth, dead_letters, peers }) if name == node => {
                Ok(Answer { digest, outbox_depth, dead_letters, peers })
            }
            Ok(_) => Err("answered with something else".into()),
            Err(e) => Err(format!("its answer did not decode: {e}")),
        },
        Ok(CallResult::Timeout) => Err(format!("no answer within {CLUSTER_CALL_TIMEOUT_MS} ms")),
        Ok(CallResult::SenderError) | Err(_) => Err("the session dropped".into()),
    }
}

/// The report as text, and whether every node answered running the file's configuration.
pub fn render(cfg: &ClusterConfig, reports: &[NodeReport]) -> (String, bool) {
    let digest = cfg.digest();
    let mut text = format!("configuration digest (this file): {digest}\npartitions: {}\n", cfg.partitions);
    text.push_str(&format!(
        "{:<16} {:<22} {:<9} {:<10} {:>10} {:>7} {:>12}  PEERS (as it sees them)\n",
        "NODE", "CLUSTER ADDR", "ANSWERS", "DIGEST", "PARTITIONS", "OUTBOX", "DEAD LETTERS"
    ));
    let mut all_well = true;
    for r in reports {
        match &r.answer {
            Ok(Answer { digest: theirs, outbox_depth: outbox, dead_letters: dead, peers }) => {
                let same = *theirs == digest;
                all_well &= same;
                let seen: Vec<String> = peers
                    .iter()
                    .map(|(p, up, d)| {
                        let how = match (up, d.as_deref() == Some(digest.as_str())) {
                            (false, _) => "down",
                            (true, true) => "up",
                            (true, false) => "up, other digest",
                        };
                        format!("{p}: {how}")
                    })
                    .collect();
                text.push_str(&format!(
                    "{:<16} {:<22} {:<9} {:<10} {:>10} {:>7} {:>12}  {}\n",
                    r.name,
                    r.cluster_addr,
                    "yes",
                    if same { "same".to_owned() } else { theirs.chars().take(8).collect::<String>() + "…" },
                    r.owned,
                    outbox,
                    dead,
                    seen.join(", ")
                ));
            }
            Err(why) => {
                all_well = false;
                text.push_str(&format!(
                    "{:<16} {:<22} {:<9} {:<10} {:>10} {:>7} {:>12}  {why}\n",
                    r.name, r.cluster_addr, "NO", "-", r.owned, "-", "-"
                ));
            }
        }
    }
    text.push_str("moves in progress: none (partitions do not move yet)\n");
    (text, all_well)
}

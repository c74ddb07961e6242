//! The cluster transport: this node's ractor_cluster `NodeServer` on its `cluster_addr` (that
//! address only) with the cluster's cookie, the gateway peers reach it through, and a
//! connection manager of ours around ractor_cluster's traps (DEPENDENCIES.md): of each pair of
//! nodes the one with the smaller name dials; connect and handshake are bounded by timeouts; a
//! session that drops is dialled again with jittered, doubling backoff; and an application
//! heartbeat to every peer's gateway marks a peer down when it has been silent for
//! `CLUSTER_PEER_SILENT_MS` — a stopped process whose TCP stays open included. A peer counts as
//! reachable only while it answers; the digest it runs is recorded (routing, the next step, goes
//! only to a reachable peer running ours).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage};
use tokio::task::JoinHandle;

use super::gateway::{remote_gateway, Gateway, GatewayArgs, GatewayMsg, RowSource, StatusSource};
use super::remote::{CallError, Endpoints};
use super::wire::{self, Frame};
use crate::domain::NodeId;
use crate::limits::{
    CLUSTER_CALL_TIMEOUT_MS, CLUSTER_CONNECT_TIMEOUT_MS, CLUSTER_FRAME_BYTES_MAX, CLUSTER_FRAME_OVERHEAD_BYTES,
    CLUSTER_HANDSHAKE_TIMEOUT_MS, CLUSTER_HEARTBEAT_MS, CLUSTER_PEER_SILENT_MS, CLUSTER_RECONNECT_MS_MAX,
    CLUSTER_RECONNECT_MS_MIN,
};

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The node server or the gateway actor did not start (the address taken, say).
    #[error("the cluster transport cannot start on {addr}: {reason}")]
    Start {
        /// The cluster address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// What this node knows of one peer.
#[derive(Debug, Clone, Default)]
struct PeerState {
    /// The ractor_cluster sessions with it that became ready and have not closed (by session
    /// id: a closing duplicate, or a stranger's failed handshake under its name, takes none away).
    sessions: std::collections::BTreeSet<u64>,
    /// When it last answered a heartbeat.
    heard: Option<Instant>,
    /// The configuration digest it last said it runs.
    digest: Option<String>,
    /// The last heartbeat's round trip, µs.
    rtt_us: u64,
}

/// One peer as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    /// It answered a heartbeat within `CLUSTER_PEER_SILENT_MS`.
    pub reachable: bool,
    /// The configuration digest it last said it runs (`None`: never heard from).
    pub digest: Option<String>,
    /// A ractor_cluster session with it is open and ready.
    pub session: bool,
    /// The last heartbeat's round trip, µs.
    pub rtt_us: u64,
}

type Peers = Arc<Mutex<BTreeMap<String, PeerState>>>;

fn lock(p: &Peers) -> std::sync::MutexGuard<'_, BTreeMap<String, PeerState>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens a TCP connection from `server` to the node server at `addr`, bounded by
/// `CLUSTER_CONNECT_TIMEOUT_MS` (ractor_cluster has none); the handshake follows on its own.
/// The error says why in words (ractor_cluster's own text is its debug form).
pub async fn connect(server: &ActorRef<NodeServerMessage>, addr: SocketAddr) -> Result<(), String> {
    use ractor_cluster::ClientConnectErr;
    let limit = Duration::from_millis(CLUSTER_CONNECT_TIMEOUT_MS);
    match tokio::time::timeout(limit, ractor_cluster::client_connect(server, addr)).await {
        Err(_) => Err(format!("no connection within {CLUSTER_CONNECT_TIMEOUT_MS} ms")),
        Ok(Ok(())) => Ok(()),
        Ok(Err(ClientConnectErr::Socket(io) | ClientConnectErr::Encryption(io))) => {
            Err(format!("cannot connect: {io}"))
        }
        Ok(Err(ClientConnectErr::Messaging(_))) => Err("cannot connect: this node's cluster server has stopped".into()),
    }
}

/// The node name in ractor_cluster's `{name}@{host}`.
fn peer_of(session_name: &str) -> &str {
    session_name.split_once('@').map_or(session_name, |(name, _)| name)
}

/// Session events, as ractor_cluster reports them (inside its node server: only a quick update).
struct Sessions(Peers);

impl Sessions {
    fn set(&self, ses: &NodeServerSessionInformation, up: bool) {
        // ractor_cluster names a peer `{name}@{host}`.
        let Some(name) = ses.peer_name.as_ref().map(|n| peer_of(&n.name).to_owned()) else { return };
        if let Some(p) = lock(&self.0).get_mut(&name) {
            if up {
                p.sessions.insert(ses.node_id);
            } else {
                p.sessions.remove(&ses.node_id);
            }
        }
    }
}

impl NodeEventSubscription for Sessions {
    fn node_session_opened(&self, _ses: NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        tracing::info!(peer = ?ses.peer_name.as_ref().map(|n| &n.name), addr = %ses.peer_addr, "cluster session closed");
        self.set(&ses, false);
    }

    fn node_session_authenticated(&self, _ses: NodeServerSessionInformation) {}

    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        tracing::info!(peer = ?ses.peer_name.as_ref().map(|n| &n.name), addr = %ses.peer_addr, "cluster session ready");
        self.set(&ses, true);
    }
}

/// A running transport.
pub struct Transport {
    digest: String,
    peers: Peers,
    server: ActorRef<NodeServerMessage>,
    gateway: ActorRef<GatewayMsg>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("digest", &self.digest).finish_non_exhaustive()
    }
}

fn jittered(ms: u64) -> Duration {
    Duration::from_millis(ms / 2 + rand::Rng::gen_range(&mut rand::thread_rng(), 0..=ms / 2))
}

/// What a node offers its peers through its gateway.
pub struct Offered {
    /// Its own figures: (outbox depth, dead letters).
    pub figures: Arc<dyn Fn() -> (u64, u64) + Send + Sync>,
    /// Its services, for commands and deliveries (set once they run).
    pub endpoints: Endpoints,
    /// Pages of its stored aggregates, for reads of the whole store.
    pub rows: RowSource,
}

impl Transport {
    /// Starts the node server on `listen` (that address only), the gateway, the dialling of
    /// every peer whose name sorts after ours, and the heartbeats.
    pub async fn start(
        me: &NodeId,
        listen: SocketAddr,
        cookie: &str,
        digest: String,
        peers: Vec<(NodeId, SocketAddr)>,
        offered: Offered,
    ) -> Result<Transport, TransportError> {
        let Offered { figures, endpoints, rows } = offered;
        let fail = |reason: String| TransportError::Start { addr: listen, reason };
        let server = NodeServer::new(
            listen.port(),
            cookie.to_owned(),
            me.to_string(),
            listen.ip().to_string(),
            None,
            Some(ractor_cluster::node::NodeConnectionMode::Isolated),
        )
        .with_listen_addr(listen.ip())
        .with_max_inbound_frame_size((CLUSTER_FRAME_BYTES_MAX + CLUSTER_FRAME_OVERHEAD_BYTES) as u64);
        let (server, _) = Actor::spawn(None, server, ()).await.map_err(|e| fail(e.to_string()))?;
        let table: Peers =
            Arc::new(Mutex::new(peers.iter().map(|(n, _)| (n.to_string(), PeerState::default())).collect()));
        server
            .cast(NodeServerMessage::SubscribeToEvents {
                id: "bazaar.transport".into(),
                subscription: Box::new(Sessions(table.clone())),
            })
            .map_err(|e| fail(e.to_string()))?;
        let seen = table.clone();
        let status: StatusSource = Arc::new(move || {
            let peers = views(&seen).into_iter().map(|(n, v)| (n, v.reachable, v.digest)).collect();
            (figures(), peers)
        });
        let args = GatewayArgs { node: me.to_string(), digest: digest.clone(), status, endpoints, rows };
        let (gateway, _) = Actor::spawn(None, Gateway, args).await.map_err(|e| fail(e.to_string()))?;
        let mut tasks = Vec::new();
        for (peer, addr) in peers.iter().filter(|(p, _)| p.as_str() > me.as_str()) {
            tasks.push(tokio::spawn(dial(server.clone(), table.clone(), peer.to_string(), *addr)));
        }
        let hello = wire::encode(&Frame::Hello { node: me.to_string(), digest: digest.clone() })
            .map_err(|e| fail(e.to_string()))?;
        tasks.push(tokio::spawn(heartbeat(table.clone(), hello, digest.clone())));
        tracing::info!(node = %me, %listen, peers = peers.len(), "cluster transport listening");
        Ok(Transport { digest, peers: table, server, gateway, tasks })
    }

    /// What this node knows of `peer` (`None`: not a configured peer).
    pub fn peer(&self, peer: &str) -> Option<PeerView> {
        views(&self.peers).into_iter().find(|(n, _)| n == peer).map(|(_, v)| v)
    }

    /// The configuration digest this node runs.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Sends `frame` to `node`'s gateway and waits (at most `limit`) for its answer. Only to a
    /// peer that answers heartbeats and runs this node's configuration: any other is `Down` at
    /// once, with nothing sent, so a caller never waits on a dead or foreign node. A frame over
    /// the cap is refused here, before sending.
    pub async fn call(&self, node: &str, frame: &Frame, limit: Duration) -> Result<Frame, CallError> {
        let down = |why: String| CallError::Down { node: node.to_owned(), why };
        let view = self.peer(node).ok_or_else(|| down("not a node of this configuration".into()))?;
        if !view.reachable {
            return Err(down(format!("silent for more than {CLUSTER_PEER_SILENT_MS} ms")));
        }
        if view.digest.as_deref() != Some(self.digest.as_str()) {
            return Err(down(format!("it runs configuration {}", view.digest.unwrap_or_default())));
        }
        let bytes = wire::encode(frame).map_err(|e| CallError::TooLarge(e.to_string()))?;
        let gateway = remote_gateway(node).ok_or_else(|| down("no session".into()))?;
        let started = Instant::now();
        let outcome = match gateway.call(|port| GatewayMsg::Call(bytes, port), Some(limit)).await {
            Ok(CallResult::Success(answer)) => {
                wire::decode(&answer).map_err(|e| CallError::BadAnswer { node: node.to_owned(), why: e.to_string() })
            }
            Ok(CallResult::Timeout) => Err(CallError::Timeout {
                node: node.to_owned(),
                ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
            }),
            Ok(CallResult::SenderError) | Err(_) => Err(down("the session dropped before the answer".into())),
        };
        let label = match &outcome {
            Ok(_) => "answered",
            Err(CallError::Timeout { .. }) => "timeout",
            Err(CallError::BadAnswer { .. }) => "bad_answer",
            Err(_) => "dropped",
        };
        let kind = match frame {
            Frame::Command { .. } => "command",
            Frame::Deliver { .. } => "deliver",
            Frame::States { .. } => "read",
            _ => "other",
        };
        metrics::counter!("cluster_remote_calls_total", "peer" => node.to_owned(), "kind" => kind, "outcome" => label)
            .increment(1);
        metrics::histogram!("cluster_remote_call_seconds", "peer" => node.to_owned(), "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        outcome
    }

    /// Every stored aggregate of `service/aggregate` whose key starts with `prefix` (`""`: all)
    /// that `node` holds, page by page.
    pub async fn collect(
        &self,
        node: &str,
        service: &str,
        aggregate: &str,
        prefix: &str,
    ) -> Result<Vec<crate::persistence::Row>, CallError> {
        let limit = Duration::from_millis(crate::limits::CLUSTER_REMOTE_CALL_TIMEOUT_MS);
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let frame = Frame::States {
                digest: self.digest.clone(),
                service: service.to_owned(),
                aggregate: aggregate.to_owned(),
                prefix: prefix.to_owned(),
                after: after.take(),
            };
            match self.call(node, &frame, limit).await? {
                Frame::Rows { rows, next } => {
                    out.extend(rows);
                    match next {
                        Some(n) => after = Some(n),
                        None => return Ok(out),
                    }
                }
                other => {
                    return Err(CallError::BadAnswer { node: node.to_owned(), why: format!("{other:?}") });
                }
            }
        }
    }

    /// What this node knows of every peer, by name.
    pub fn peers(&self) -> Vec<(String, PeerView)> {
        views(&self.peers)
    }

    /// Stops dialling and heartbeats, the gateway and the node server.
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
        self.gateway.stop(None);
        self.server.stop(None);
    }
}

fn views(peers: &Peers) -> Vec<(String, PeerView)> {
    let silent = Duration::from_millis(CLUSTER_PEER_SILENT_MS);
    lock(peers)
        .iter()
        .map(|(n, p)| {
            let v = PeerView {
                reachable: p.heard.is_some_and(|t| t.elapsed() < silent),
                digest: p.digest.clone(),
                session: !p.sessions.is_empty(),
                rtt_us: p.rtt_us,
            };
            (n.clone(), v)
        })
        .collect()
}

/// Keeps a session to `peer` open: dials when there is none, waits (bounded) for it to become
/// ready, and backs off, jittered and doubling, after a failure.
async fn dial(server: ActorRef<NodeServerMessage>, peers: Peers, peer: String, addr: SocketAddr) {
    let mut backoff = CLUSTER_RECONNECT_MS_MIN;
    let ready = |peers: &Peers| lock(peers).get(&peer).is_some_and(|p| !p.sessions.is_empty());
    loop {
        if ready(&peers) {
            backoff = CLUSTER_RECONNECT_MS_MIN;
            tokio::time::sleep(Duration::from_millis(CLUSTER_HEARTBEAT_MS)).await;
            continue;
        }
        let outcome = match connect(&server, addr).await {
            Err(why) => Err(why),
            Ok(()) => {
                let deadline = Instant::now() + Duration::from_millis(CLUSTER_HANDSHAKE_TIMEOUT_MS);
                while !ready(&peers) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if ready(&peers) {
                    Ok(())
                } else {
                    // ractor_cluster keeps a session that never authenticates: close it, or a
                    // stopped peer collects one per retry and they all wake at once.
                    close_unready(&server, &peers, &peer, addr).await;
                    Err(format!(
                        "connected, but no session within {CLUSTER_HANDSHAKE_TIMEOUT_MS} ms (a wrong cookie, or not a bazaar node)"
                    ))
                }
            }
        };
        match outcome {
            Ok(()) => tracing::info!(%peer, %addr, "dialled peer"),
            Err(why) => {
                tracing::warn!(%peer, %addr, reason = %why, retry_ms = backoff, "cannot reach peer");
                tokio::time::sleep(jittered(backoff)).await;
                backoff = (backoff * 2).min(CLUSTER_RECONNECT_MS_MAX);
            }
        }
    }
}

/// Stops the sessions to `addr` that never became ready.
async fn close_unready(server: &ActorRef<NodeServerMessage>, peers: &Peers, peer: &str, addr: SocketAddr) {
    let Ok(sessions) = ractor::call!(server, NodeServerMessage::GetSessions) else { return };
    let ready = lock(peers).get(peer).map(|p| p.sessions.clone()).unwrap_or_default();
    for (id, ses) in sessions {
        if ses.peer_addr == addr.to_string() && !ready.contains(&id) {
            ses.actor.stop(Some("no session within the handshake timeout".into()));
        }
    }
}

/// Every `CLUSTER_HEARTBEAT_MS`, says hello to every peer's gateway (concurrently, each call
/// bounded) and records who answered, how fast, and with which configuration digest.
async fn heartbeat(peers: Peers, hello: Vec<u8>, ours: String) {
    let mut warned: BTreeMap<String, String> = BTreeMap::new();
    loop {
        tokio::time::sleep(Duration::from_millis(CLUSTER_HEARTBEAT_MS)).await;
        let names: Vec<String> = lock(&peers).keys().cloned().collect();
        let calls = names.into_iter().map(|name| {
            let hello = hello.clone();
            async move {
                let gateway = remote_gateway(&name)?;
                let started = Instant::now();
                let call = gateway
                    .call(|port| GatewayMsg::Hello(hello, port), Some(Duration::from_millis(CLUSTER_CALL_TIMEOUT_MS)));
                match call.await {
                    Ok(CallResult::Success(bytes)) => match wire::decode(&bytes) {
                        Ok(Frame::Hello { node, digest }) if node == name => Some((name, digest, started.elapsed())),
                        Ok(other) => {
                            tracing::warn!(peer = %name, answer = ?other, "a gateway answered for another node, or not a hello");
                            None
                        }
                        Err(e) => {
                            tracing::warn!(peer = %name, error = %e, "a peer's heartbeat answer did not decode");
                            None
                        }
                    },
                    _ => None,
                }
            }
        });
        for (name, digest, rtt) in futures::future::join_all(calls).await.into_iter().flatten() {
            if digest != ours && warned.get(&name) != Some(&digest) {
                tracing::error!(peer = %name, theirs = %digest, ours = %ours, "peer runs another configuration: not routing to it");
                warned.insert(name.clone(), digest.clone());
            }
            if let Some(p) = lock(&peers).get_mut(&name) {
                p.heard = Some(Instant::now());
                p.digest = Some(digest);
                p.rtt_us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_name_names_its_node() {
        assert_eq!(peer_of("node-2@127.0.0.1"), "node-2");
        assert_eq!(peer_of("node-2"), "node-2");
    }
}

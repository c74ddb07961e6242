//! A running node: its store, committer, outbox relay, inbox pruner and services, wired together.
//!
//! Start-up order matters: the store opens once; subscriptions are collected from every
//! service before any entity starts (an entity fans its events out to them); the relay starts
//! last, when every subscriber is there. Shutdown runs the other way and ends with a flush.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actors::auth::{RevocationKind, UserCopyKind, UserKind};
use crate::actors::catalogue::{ProductCopyKind, ProductKind, StockProjectionKind};
use crate::actors::customer::CustomerKind;
use crate::actors::entity::EntityEnv;
use crate::actors::kind::{EntityKind, Statuses};
use crate::actors::notification::{NotificationsKind, SendRecordKind};
use crate::actors::order::{GateKind, OrderKind, PriceKind};
use crate::actors::payment::PaymentAccountKind;
use crate::actors::promo::{CataloguePromoKind, OrderPromoKind, PromoKind};
use crate::actors::shipping::ShipmentKind;
use crate::actors::stock::{StockBookingKind, StockItemKind};
use crate::actors::EngineError;
use crate::app::sender::{Channels, Sender};
use crate::clock::{Clock, SystemClock};
use crate::cluster::config::ClusterConfig;
use crate::cluster::delivery::RemoteSubscriber;
use crate::cluster::remote::{Endpoint, Endpoints, SubscriberEndpoint};
use crate::cluster::transport::{Offered, Transport};
use crate::cluster::Router;
use crate::domain::order::Deadlines;
use crate::domain::NodeId;
use crate::limits::{
    BOOKING_TIMEOUT_MS, INBOX_PRUNE_EVERY_MS, INBOX_RETENTION_MS, PARTITIONS_DEFAULT, PAYMENT_TIMEOUT_MS,
};
use crate::persistence::Topic;
use crate::persistence::{
    Committer, Durability, Relay, RelayConfig, ServiceTrees, Store, StoreError, StoreOptions, Subscriber, Subscriptions,
};
use crate::supervisors::{EntityConfig, Service};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A service could not start.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The configuration does not describe this node.
    #[error("{0}")]
    Config(String),
}

/// Everything a node needs to start.
#[derive(Clone)]
pub struct NodeOptions {
    /// This node's name.
    pub node: NodeId,
    /// Every node of the cluster (this one included).
    pub nodes: Vec<NodeId>,
    /// Partitions of the key space.
    pub partitions: u32,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Store settings.
    pub store: StoreOptions,
    /// Entity settings.
    pub entities: EntityConfig,
    /// Relay settings.
    pub relay: RelayConfig,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// How long inbox ids are kept, ms.
    pub inbox_retention_ms: u64,
    /// The saga's deadlines.
    pub deadlines: Deadlines,
    /// Notification channels.
    pub channels: Arc<Channels>,
    /// The payment sandbox's callback secret.
    pub payment_secret: Vec<u8>,
    /// The payment system: the sandbox, or an external hosted checkout.
    pub payments: crate::cluster::config::PaymentsConfig,
    /// The cluster's handshake cookie (unused by the embedded single node).
    pub cookie: String,
    /// Each configured node's (cluster address, HTTP address); empty for the embedded single
    /// node.
    pub addresses: std::collections::BTreeMap<NodeId, (std::net::SocketAddr, std::net::SocketAddr)>,
    /// Where this node's cluster server binds, when not at its cluster address.
    pub cluster_listen: Option<std::net::SocketAddr>,
}

impl NodeOptions {
    /// A single node with defaults, its data in `data_dir`.
    pub fn single(node: NodeId, data_dir: PathBuf) -> NodeOptions {
        NodeOptions {
            nodes: vec![node.clone()],
            node,
            partitions: PARTITIONS_DEFAULT,
            data_dir,
            store: StoreOptions::default(),
            entities: EntityConfig::default(),
            relay: RelayConfig::default(),
            clock: Arc::new(SystemClock),
            inbox_retention_ms: INBOX_RETENTION_MS,
            deadlines: Deadlines { booking_ms: BOOKING_TIMEOUT_MS, payment_ms: PAYMENT_TIMEOUT_MS },
            channels: Arc::new(Channels::default()),
            payment_secret: Vec::new(),
            payments: crate::cluster::config::PaymentsConfig::default(),
            addresses: Default::default(),
            cluster_listen: None,
            cookie: String::new(),
        }
    }

    /// The digest of the configuration this node runs (see `cluster::config::ownership_digest`).
    pub fn config_digest(&self) -> String {
        let nodes: Vec<_> =
            self.nodes.iter().map(|n| (n.clone(), self.addresses.get(n).map(|(cluster, _)| *cluster))).collect();
        crate::cluster::config::ownership_digest(self.partitions, &nodes)
    }

    /// The options of node `name` of a cluster config.
    pub fn from_config(cfg: &ClusterConfig, name: &str) -> Result<NodeOptions, NodeError> {
        let me = cfg.node(name).ok_or_else(|| NodeError::Config(format!("no node named {name:?} in the config")))?;
        let mut o = NodeOptions::single(me.name.clone(), me.data_dir.clone());
        o.nodes = cfg.node_ids();
        o.partitions = cfg.partitions;
        o.addresses = cfg.nodes.iter().map(|n| (n.name.clone(), (n.cluster_addr, n.http_addr))).collect();
        o.cookie = cfg.cookie.clone();
        o.cluster_listen = me.listen_addr;
        o.store = StoreOptions {
            durability: cfg.storage.durability,
            cache_bytes: cfg.storage.cache_bytes,
            ..StoreOptions::default()
        };
        o.entities =
            EntityConfig { live_max: cfg.entities.live_max, idle_ms: cfg.entities.idle_ms, ..EntityConfig::default() };
        o.payments = cfg.payments.clone();
        let n = &cfg.notifications;
        let smtp = n.smtp_endpoint().map_err(|e| NodeError::Config(format!("notifications.smtp: {e}")))?;
        o.channels = Arc::new(Channels {
            smtp: smtp.map(|(host, port)| crate::app::sender::SmtpConfig {
                host,
                port,
                from: n.smtp_from.clone().unwrap_or_default(),
            }),
            sms: n.sms_url.clone().map(|url| crate::app::sender::SmsConfig { url }),
            log: Default::default(),
        });
        Ok(o)
    }

    /// The same options with another durability.
    pub fn with_durability(mut self, d: Durability) -> NodeOptions {
        self.store.durability = d;
        self
    }
}

type Starter = Box<dyn FnOnce(Arc<Deps>) -> BoxFuture<'static, Result<Started, NodeError>> + Send>;

struct Started {
    type_id: TypeId,
    service: Box<dyn Any + Send + Sync>,
    destination: String,
    subscriber: Arc<dyn Subscriber>,
    endpoint: Arc<dyn Endpoint>,
    trees: ServiceTrees,
    stats: Arc<crate::supervisors::ServiceStats>,
    stop: Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>,
}

struct Deps {
    store: Store,
    committer: Committer,
    subscriptions: Arc<Subscriptions>,
    router: Arc<Router>,
    transport: Option<Arc<Transport>>,
    opts: NodeOptions,
}

/// Assembles a node from services.
pub struct NodeBuilder {
    opts: NodeOptions,
    subscriptions: Subscriptions,
    starters: Vec<Starter>,
    extra_subscribers: HashMap<String, Arc<dyn Subscriber>>,
    late_subscribers: Vec<(String, LateSubscriber)>,
    /// The extra subscribers that run on every node.
    replicated: std::collections::HashSet<String>,
}

/// Builds a subscriber that needs the node's services (called once they run).
pub type LateSubscriber = Box<dyn FnOnce(&Services<'_>) -> Option<Arc<dyn Subscriber>> + Send>;

/// The running services, by entity kind.
pub struct Services<'a>(&'a HashMap<TypeId, Box<dyn Any + Send + Sync>>);

impl Services<'_> {
    /// The service of entity kind `K`.
    pub fn get<K: EntityKind>(&self) -> Option<Service<K>> {
        self.0.get(&TypeId::of::<K>()).and_then(|b| b.downcast_ref::<Service<K>>()).cloned()
    }
}

impl NodeBuilder {
    /// A node with no services yet.
    pub fn new(opts: NodeOptions) -> NodeBuilder {
        NodeBuilder {
            opts,
            subscriptions: Subscriptions::default(),
            starters: Vec::new(),
            extra_subscribers: HashMap::new(),
            late_subscribers: Vec::new(),
            replicated: Default::default(),
        }
    }

    /// A node with the store's services: catalogue, customer, order, stock, payment, shipping
    /// and notification (with its sender on the configured channels).
    pub fn store(opts: NodeOptions) -> NodeBuilder {
        let channels = opts.channels.clone();
        NodeBuilder::new(opts)
            .service::<ProductKind>()
            .service::<ProductCopyKind>()
            .service::<StockProjectionKind>()
            .service::<CustomerKind>()
            .service::<GateKind>()
            .service::<OrderKind>()
            .service::<PriceKind>()
            .service::<StockItemKind>()
            .service::<StockBookingKind>()
            .service::<PaymentAccountKind>()
            .service::<ShipmentKind>()
            .service::<NotificationsKind>()
            .service::<SendRecordKind>()
            .service::<UserKind>()
            .service::<UserCopyKind>()
            .service::<RevocationKind>()
            .service::<PromoKind>()
            .service::<OrderPromoKind>()
            .service::<CataloguePromoKind>()
            .service::<crate::actors::idempotency::IdempotencyKind>()
            .late_subscriber(
                "notification/sender",
                Topic::NotificationSend,
                Box::new(move |s: &Services<'_>| {
                    s.get::<SendRecordKind>()
                        .map(|records| Arc::new(Sender::new(records, channels)) as Arc<dyn Subscriber>)
                }),
            )
    }

    /// Adds a subscriber of `topic` built once the services run.
    pub fn late_subscriber(mut self, name: &str, topic: Topic, build: LateSubscriber) -> NodeBuilder {
        self.subscriptions.add(topic, name);
        self.late_subscribers.push((name.to_owned(), build));
        self
    }

    /// Adds the service of entity kind `K`.
    pub fn service<K: EntityKind>(mut self) -> NodeBuilder {
        for t in K::topics() {
            let statuses = K::status_filter(*t).map(Statuses::names);
            if K::REPLICATED {
                self.subscriptions.add_replicated(*t, &destination::<K>(), statuses);
            } else {
                self.subscriptions.add_filtered(*t, &destination::<K>(), statuses);
            }
        }
        self.starters.push(Box::new(|deps: Arc<Deps>| {
            Box::pin(async move {
                let trees = deps.store.service(K::SERVICE, K::AGGREGATE)?;
                let env = Arc::new(EntityEnv {
                    store: deps.store.clone(),
                    trees: trees.clone(),
                    committer: deps.committer.clone(),
                    subscriptions: deps.subscriptions.clone(),
                    node: deps.opts.node.clone(),
                    clock: deps.opts.clock.clone(),
                });
                let svc =
                    Service::<K>::start(env, deps.opts.entities, deps.router.clone(), deps.transport.clone()).await?;
                let s2 = svc.clone();
                let stats = svc.stats_handle();
                Ok(Started {
                    type_id: TypeId::of::<K>(),
                    destination: destination::<K>(),
                    subscriber: Arc::new(svc.clone()),
                    endpoint: Arc::new(svc.clone()),
                    service: Box::new(svc),
                    trees,
                    stats,
                    stop: Box::new(move || {
                        let s = s2.clone();
                        Box::pin(async move { s.stop().await })
                    }),
                })
            })
        }));
        self
    }

    /// Adds a subscriber that is not an entity service (an external sink, a test probe) for
    /// `topic`, under the service name `name`.
    pub fn subscriber(mut self, name: &str, topic: Topic, sub: Arc<dyn Subscriber>) -> NodeBuilder {
        self.subscriptions.add(topic, name);
        self.extra_subscribers.insert(name.to_owned(), sub);
        self
    }

    /// Adds a subscriber that is not an entity service and runs on every node (a read model)
    /// for `topic`: every node's copy takes every event of it.
    pub fn replicated_subscriber(mut self, name: &str, topic: Topic, sub: Arc<dyn Subscriber>) -> NodeBuilder {
        self.subscriptions.add_replicated(topic, name, None);
        self.replicated.insert(name.to_owned());
        self.extra_subscribers.insert(name.to_owned(), sub);
        self
    }

    /// Opens the store and starts everything.
    pub async fn start(self) -> Result<Node, NodeError> {
        let opts = self.opts.clone();
        let store = {
            let dir = opts.data_dir.clone();
            let so = opts.store.clone();
            tokio::task::spawn_blocking(move || Store::open(&dir, &so))
                .await
                .map_err(|e| StoreError::Storage(e.to_string()))??
        };
        let committer = Committer::start(store.clone())?;
        let router = Arc::new(Router::new(opts.node.clone(), &opts.nodes, opts.partitions));
        // The transport runs before the services (they send through it); its gateway refuses
        // peers' calls until the services are there to take them.
        let endpoints: Endpoints = Arc::default();
        let transport = match (opts.nodes.len() > 1, opts.addresses.get(&opts.node)) {
            (true, Some((cluster_addr, _))) => {
                let listen = opts.cluster_listen.unwrap_or(*cluster_addr);
                let peers = opts
                    .addresses
                    .iter()
                    .filter(|(n, _)| **n != opts.node)
                    .map(|(n, (cluster, _))| (n.clone(), *cluster))
                    .collect();
                let s = store.clone();
                let figures: Arc<dyn Fn() -> (u64, u64) + Send + Sync> = Arc::new(move || {
                    let dead = s.dead_letters().map(|d| d.len()).unwrap_or(0);
                    (s.outbox_len() as u64, dead as u64)
                });
                let t = Transport::start(
                    &opts.node,
                    listen,
                    &opts.cookie,
                    opts.config_digest(),
                    peers,
                    Offered { figures, endpoints: endpoints.clone(), rows: rows_of(store.clone()) },
                )
                .await
                .map_err(|e| NodeError::Config(e.to_string()))?;
                Some(Arc::new(t))
            }
            _ => None,
        };
        let mut subscriptions = self.subscriptions;
        if transport.is_some() {
            subscriptions.set_peers(opts.nodes.iter().filter(|n| **n != opts.node).map(|n| n.to_string()).collect());
        }
        let deps = Arc::new(Deps {
            store: store.clone(),
            committer: committer.clone(),
            subscriptions: Arc::new(subscriptions),
            router: router.clone(),
            transport: transport.clone(),
            opts: opts.clone(),
        });
        let mut services = HashMap::new();
        let mut subscribers = self.extra_subscribers;
        let mut trees = Vec::new();
        let mut stats = Vec::new();
        let mut stops = Vec::new();
        let mut offered = HashMap::new();
        for start in self.starters {
            let s = start(deps.clone()).await?;
            offered.insert(s.destination.clone(), s.endpoint);
            subscribers.insert(s.destination.clone(), s.subscriber);
            services.insert(s.type_id, s.service);
            trees.push(s.trees);
            stats.push((s.destination.clone(), s.stats));
            stops.push(s.stop);
        }
        for (name, build) in self.late_subscribers {
            match build(&Services(&services)) {
                Some(sub) => {
                    subscribers.insert(name, sub);
                }
                None => return Err(NodeError::Config(format!("subscriber {name} lacks a service it needs"))),
            }
        }
        for name in &self.replicated {
            if let Some(sub) = subscribers.get(name) {
                offered.insert(name.clone(), Arc::new(SubscriberEndpoint(sub.clone())) as Arc<dyn Endpoint>);
            }
        }
        // A replicated subscriber's copy on each peer is reached through the transport.
        if let Some(t) = &transport {
            for (name, to, node) in deps.subscriptions.copies() {
                subscribers.insert(name, Arc::new(RemoteSubscriber { transport: t.clone(), node, to }));
            }
        }
        let _ = endpoints.set(offered);
        let relay =
            Relay::start(store.clone(), committer.clone(), subscribers.clone(), opts.clock.clone(), opts.relay.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let pruner = tokio::spawn(prune_loop(
            store.clone(),
            trees.clone(),
            opts.clock.clone(),
            opts.inbox_retention_ms,
            stop_rx,
        ));
        tracing::info!(node = %opts.node, dir = %opts.data_dir.display(), durability = opts.store.durability.name(), "node started");
        Ok(Node {
            opts,
            store,
            committer,
            router,
            relay: Some(relay),
            subscribers,
            subscriptions: deps.subscriptions.clone(),
            stats,
            services,
            trees,
            stops,
            pruner: Some((stop_tx, pruner)),
            transport,
        })
    }
}

/// Pages of `store`'s aggregates under the frame cap, for peers' reads of the whole cluster.
fn rows_of(store: Store) -> crate::cluster::gateway::RowSource {
    let room = crate::limits::CLUSTER_FRAME_BYTES_MAX - crate::limits::CLUSTER_FRAME_SLACK_BYTES;
    Arc::new(move |service: &str, aggregate: &str, prefix: &str, after: Option<&str>| {
        crate::persistence::page(&store, service, aggregate, prefix, after, room)
    })
}

/// The name events for aggregate kind `K` are addressed to: `{service}/{aggregate}`.
pub fn destination<K: EntityKind>() -> String {
    crate::supervisors::endpoint_name::<K>()
}

async fn prune_loop(
    store: Store,
    trees: Vec<ServiceTrees>,
    clock: Arc<dyn Clock>,
    retention_ms: u64,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(INBOX_PRUNE_EVERY_MS)) => {}
        }
        let cutoff = clock.now_ms().saturating_sub(retention_ms);
        let (s, t) = (store.clone(), trees.clone());
        let r = tokio::task::spawn_blocking(move || prune_all(&s, &t, cutoff)).await;
        match r {
            Ok(Ok(n)) if n > 0 => tracing::info!(removed = n, "inbox ids past retention pruned"),
            Ok(Err(e)) => tracing::warn!(error = %e, "inbox pruning failed; will retry"),
            _ => {}
        }
    }
}

fn prune_all(store: &Store, trees: &[ServiceTrees], cutoff_ms: u64) -> Result<usize, StoreError> {
    let mut n = 0;
    for t in trees {
        n += store.prune_inbox(t, cutoff_ms)?;
    }
    Ok(n)
}

/// A running node.
pub struct Node {
    opts: NodeOptions,
    store: Store,
    committer: Committer,
    router: Arc<Router>,
    relay: Option<Relay>,
    subscribers: HashMap<String, Arc<dyn Subscriber>>,
    subscriptions: Arc<Subscriptions>,
    stats: Vec<(String, Arc<crate::supervisors::ServiceStats>)>,
    services: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    trees: Vec<ServiceTrees>,
    stops: Vec<Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>>,
    pruner: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    transport: Option<Arc<Transport>>,
}

impl Node {
    /// The cluster transport (`None` for the embedded single node).
    pub fn transport(&self) -> Option<&Arc<Transport>> {
        self.transport.as_ref()
    }

    /// The service of entity kind `K`, if the node runs it.
    pub fn service<K: EntityKind>(&self) -> Option<Service<K>> {
        self.services.get(&TypeId::of::<K>()).and_then(|b| b.downcast_ref::<Service<K>>()).cloned()
    }

    /// Each service's supervisor counters, by `{service}/{aggregate}`.
    pub fn service_stats(&self) -> &[(String, Arc<crate::supervisors::ServiceStats>)] {
        &self.stats
    }

    /// The node's store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The node's committer.
    pub fn committer(&self) -> &Committer {
        &self.committer
    }

    /// Who subscribes to which topic on this node.
    pub fn subscriptions(&self) -> &Subscriptions {
        &self.subscriptions
    }

    /// The node's router.
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// The options the node started with.
    pub fn options(&self) -> &NodeOptions {
        &self.opts
    }

    /// Removes inbox ids older than the retention window now (the pruner does it every
    /// `INBOX_PRUNE_EVERY_MS`); returns how many went.
    pub async fn prune_inboxes(&self) -> Result<usize, StoreError> {
        let cutoff = self.opts.clock.now_ms().saturating_sub(self.opts.inbox_retention_ms);
        let (s, t) = (self.store.clone(), self.trees.clone());
        tokio::task::spawn_blocking(move || prune_all(&s, &t, cutoff))
            .await
            .map_err(|e| StoreError::Storage(e.to_string()))?
    }

    /// Stops the relay (entries stay in the outbox) — for tests of relay restarts.
    pub async fn stop_relay(&mut self) {
        if let Some(r) = self.relay.take() {
            r.stop().await;
        }
    }

    /// Starts the relay again after `stop_relay`, with the node's own subscribers.
    pub fn restart_relay(&mut self) {
        if self.relay.is_some() {
            return;
        }
        self.relay = Some(Relay::start(
            self.store.clone(),
            self.committer.clone(),
            self.subscribers.clone(),
            self.opts.clock.clone(),
            self.opts.relay.clone(),
        ));
    }

    /// Stops everything: services, relay, pruner, then commits what is queued and flushes.
    /// The data directory is released once every service handle obtained from the node is
    /// dropped too.
    pub async fn shutdown(mut self) {
        if let Some(t) = self.transport.take() {
            t.stop();
        }
        for stop in &self.stops {
            stop().await;
        }
        if let Some(r) = self.relay.take() {
            r.stop().await;
        }
        if let Some((tx, task)) = self.pruner.take() {
            let _ = tx.send(true);
            let _ = task.await;
        }
        self.committer.shutdown().await;
        // Stopped entity actors drop their store handles as they finish: give them a moment, so
        // the directory is released when this returns. Service handles a caller still holds keep
        // it open until dropped.
        let Node { store, services, subscribers, trees, stops, .. } = self;
        drop((services, subscribers, trees, stops));
        let closed = tokio::task::spawn_blocking(move || store.close(Duration::from_secs(1))).await.unwrap_or(false);
        if !closed {
            tracing::debug!("store handles outlive the node (a caller holds a service handle)");
        }
        tracing::info!("node stopped");
    }
}

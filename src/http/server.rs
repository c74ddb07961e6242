//! A whole store node with its HTTP front, built and started in one call (so tests start it on
//! port 0 with a fresh data directory, and `bazaar serve` on its configured address): the node
//! with its read models and metrics subscribers, the signing keys, and the listener.
//!
//! Secrets: the JWT signing key and the payment sandbox's callback secret come from the options;
//! when absent, they are generated at first start and kept in `<data>/secrets/` (never a
//! constant in the code).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actors::catalogue::view::{CatalogView, ViewFeed, VIEW_TOPICS};
use crate::app::metrics;
use crate::app::node::{Node, NodeBuilder, NodeError, NodeOptions};
use crate::app::secrets::kept_secret;
use crate::app::shop::Shop;
use crate::http::{self, App};
use crate::persistence::Topic;

/// How to start a store node.
#[derive(Clone)]
pub struct AppOptions {
    /// The node.
    pub node: NodeOptions,
    /// Where the HTTP front listens (port 0: any free port).
    pub http: SocketAddr,
    /// The JWT signing key (default: generated and kept in the data directory).
    pub jwt_secret: Option<Vec<u8>>,
    /// The HTTP front's settings (`[http]` of the cluster file).
    pub front: crate::cluster::config::HttpConfig,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The node failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A secret could not be read or written.
    #[error(transparent)]
    Secret(#[from] crate::app::secrets::SecretError),
    /// The catalogue's read model could not be built or loaded.
    #[error("catalogue view: {0}")]
    View(String),
    /// The store's operations could not be set up.
    #[error(transparent)]
    Engine(#[from] crate::actors::EngineError),
    /// The revoked tokens could not be read.
    #[error(transparent)]
    Shop(#[from] crate::app::shop::ShopError),
    /// The HTTP address could not be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// Which address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running store node.
pub struct Running {
    /// Where its HTTP front listens.
    pub addr: SocketAddr,
    /// Its operations.
    pub shop: Shop,
    node: Node,
    app: Arc<App>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl Running {
    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The HTTP front's state.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// The front's base URL.
    pub fn url(&self) -> String {
        http::base_url(self.addr)
    }

    /// Stops accepting, finishes requests in flight, stops the node and flushes.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        // In-flight requests finish (each is bounded by HTTP_REQUEST_TIMEOUT_MS, event streams
        // end on the signal); a connection that still holds on past the grace is cut, so a
        // stop always ends.
        let grace = std::time::Duration::from_millis(crate::limits::SHUTDOWN_GRACE_MS);
        if tokio::time::timeout(grace, &mut self.server).await.is_err() {
            tracing::warn!(
                grace_ms = crate::limits::SHUTDOWN_GRACE_MS,
                "connections still open after the grace; closing them"
            );
            self.server.abort();
        }
        let Running { shop, node, app, .. } = self;
        drop(shop);
        drop(app);
        node.shutdown().await;
    }

    /// Resolves when the front has stopped (after a signal).
    pub async fn stopped(&mut self) {
        let _ = (&mut self.server).await;
    }
}

/// Builds and starts a store node and its HTTP front.
pub async fn start(opts: AppOptions) -> Result<Running, AppError> {
    let data = opts.node.data_dir.clone();
    let mut node_opts = opts.node.clone();
    if node_opts.payment_secret.is_empty() {
        node_opts.payment_secret = kept_secret(&data, "payment.key")?;
    }
    let jwt = match opts.jwt_secret.clone() {
        Some(s) if !s.is_empty() => s,
        _ => kept_secret(&data, "jwt.key")?,
    };
    let view = Arc::new(CatalogView::new().map_err(AppError::View)?);
    let auth = Arc::new(http::auth::Auth::new(&jwt));
    let clock = node_opts.clock.clone();
    let mut builder = NodeBuilder::store(node_opts);
    for t in VIEW_TOPICS {
        builder = builder.replicated_subscriber("catalogue/view", t, Arc::new(ViewFeed(view.clone())));
    }
    let feed = http::auth::RevocationFeed { auth: auth.clone(), clock };
    builder = builder.replicated_subscriber("http/revocations", Topic::TokenRevoked, Arc::new(feed));
    builder = metrics::subscribe(builder);
    let node = builder.start().await?;
    view.load(node.store()).map_err(AppError::View)?;
    let shop = Shop::new(&node)?;
    // Accounts made offline reach the rest of the cluster in the background (their owner may
    // not be up yet).
    tokio::spawn(crate::app::announce::announce_until_done(
        shop.clone(),
        data.clone(),
        std::time::Duration::from_secs(2),
    ));
    let now = shop.now_ms();
    // Every revocation: each node keeps a copy of all of them (replicated).
    for (jti, exp) in shop.revoked_tokens(now)? {
        auth.revoke_local(&jti, exp, now);
    }
    let listener = tokio::net::TcpListener::bind(opts.http)
        .await
        .map_err(|source| AppError::Listen { addr: opts.http, source })?;
    let addr = listener.local_addr().map_err(|source| AppError::Listen { addr: opts.http, source })?;
    let metrics_text = metrics::renderer(&node);
    let o = node.options();
    let (stop, mut stop_rx) = watch::channel(false);
    let stopping = stop.subscribe();
    let app = Arc::new(App {
        shop: shop.clone(),
        view,
        auth,
        node: o.node.to_string(),
        nodes: o
            .nodes
            .iter()
            .map(|n| {
                let http = if *n == o.node { Some(addr) } else { o.addresses.get(n).map(|(_, h)| *h) };
                (n.to_string(), http.map(|a| a.to_string()), node.router().owned_by(n))
            })
            .collect(),
        config_digest: o.config_digest(),
        transport: node.transport().cloned(),
        partitions: node.router().local_partitions(),
        clock: o.clock.clone(),
        metrics: metrics_text,
        self_url: std::sync::RwLock::new(http::base_url(addr)),
        idempotency_locks: Default::default(),
        hashes: crate::app::passwords::HashPool::for_this_machine(),
        trusted_proxies: opts.front.trusted_proxies.clone(),
        openapi: http::openapi::document_json(),
        stopping,
    });
    let server = tokio::spawn(http::serve(listener, app.clone(), async move {
        let _ = stop_rx.changed().await;
    }));
    tracing::info!(%addr, "HTTP front listening");
    Ok(Running { addr, shop, node, app, stop, server })
}

impl Running {
    /// Asks the front to stop (as a signal would); `stop` waits for it.
    pub fn signal_stop(&self) {
        let _ = self.stop.send(true);
    }
}

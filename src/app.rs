//! A whole store node with its HTTP front, built and started in one call (so tests start it on
//! port 0 with a fresh data directory, and `bazaar serve` on its configured address).
//!
//! Secrets: the JWT signing key and the payment sandbox's callback secret come from the options;
//! when absent, they are generated at first start and kept in `<data>/secrets/` (never a
//! constant in the code).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::catalog_view::{CatalogView, ViewFeed, VIEW_TOPICS};
use crate::http::{self, App};
use crate::node::{Node, NodeBuilder, NodeError, NodeOptions};
use crate::persistence::{DeliveryError, Envelope, Subscriber, Topic};
use crate::shop::Shop;

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
    pub front: crate::config::HttpConfig,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The node failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A secret could not be read or written, or the address not bound.
    #[error("{0}")]
    Io(String),
}

/// Reads a secret kept in `<dir>/secrets/<name>`, creating it (32 random bytes, hex, mode 600)
/// when absent.
pub fn kept_secret(dir: &Path, name: &str) -> Result<Vec<u8>, AppError> {
    let secrets = dir.join("secrets");
    let path = secrets.join(name);
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if s.len() >= 32 {
            return Ok(s.as_bytes().to_vec());
        }
    }
    std::fs::create_dir_all(&secrets).map_err(|e| AppError::Io(format!("cannot create {}: {e}", secrets.display())))?;
    let value = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    std::fs::write(&path, &value).map_err(|e| AppError::Io(format!("cannot write {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(value.into_bytes())
}

/// Counts saga outcomes for `/metrics` (a node-local subscriber of order events).
struct SagaOutcomes;

impl Subscriber for SagaOutcomes {
    fn deliver(&self, env: Envelope) -> BoxFuture<'static, Result<(), DeliveryError>> {
        if matches!(env.aggregate_status.as_str(), "PAID" | "CANCELLED" | "COMPLETED") {
            metrics::counter!("saga_outcomes_total", "status" => env.aggregate_status.clone()).increment(1);
        }
        Box::pin(async { Ok(()) })
    }
}

fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Only the first node of a process installs it (tests start several).
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
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
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
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
    let handle = prometheus();
    let view = Arc::new(CatalogView::new().map_err(AppError::Io)?);
    let mut builder = NodeBuilder::store(node_opts);
    for t in VIEW_TOPICS {
        builder = builder.subscriber("catalogue/view", t, Arc::new(ViewFeed(view.clone())));
    }
    builder = builder.subscriber("metrics/sagas", Topic::OrderEvent, Arc::new(SagaOutcomes));
    let node = builder.start().await?;
    view.load(node.store()).map_err(AppError::Io)?;
    let shop = Shop::new(&node).map_err(|e| AppError::Io(e.to_string()))?;
    let auth = http::auth::Auth::new(&jwt);
    let now = shop.now_ms();
    for (jti, exp) in shop.revoked_tokens(now).map_err(|e| AppError::Io(e.to_string()))? {
        auth.revoke_local(&jti, exp, now);
    }
    let listener = tokio::net::TcpListener::bind(opts.http)
        .await
        .map_err(|e| AppError::Io(format!("cannot listen on {}: {e}", opts.http)))?;
    let addr = listener.local_addr().map_err(|e| AppError::Io(e.to_string()))?;
    let store = node.store().clone();
    let committer = node.committer().clone();
    let stats = node.service_stats().to_vec();
    let metrics_text: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || {
        metrics::gauge!("outbox_depth").set(store.outbox_len() as f64);
        metrics::gauge!("dead_letters").set(store.dead_letters().map(|d| d.len()).unwrap_or(0) as f64);
        let live: usize = stats.iter().map(|(_, s)| s.live.load(std::sync::atomic::Ordering::Relaxed)).sum();
        metrics::gauge!("live_entities").set(live as f64);
        for (name, s) in &stats {
            metrics::gauge!("live_entities_by_service", "service" => name.clone())
                .set(s.live.load(std::sync::atomic::Ordering::Relaxed) as f64);
        }
        let c = committer.stats();
        metrics::gauge!("commit_batches_total").set(c.batches.load(std::sync::atomic::Ordering::Relaxed) as f64);
        metrics::gauge!("commit_write_sets_total").set(c.write_sets.load(std::sync::atomic::Ordering::Relaxed) as f64);
        for (i, b) in c.batch_len_buckets.iter().enumerate() {
            let le = (1u64 << i).to_string();
            metrics::gauge!("commit_batches_by_size", "le" => le)
                .set(b.load(std::sync::atomic::Ordering::Relaxed) as f64);
        }
        handle.render()
    });
    let o = node.options();
    let app = Arc::new(App {
        shop: shop.clone(),
        view,
        auth,
        node: o.node.to_string(),
        nodes: o.nodes.iter().map(ToString::to_string).collect(),
        partitions: node.router().local_partitions(),
        store: node.store().clone(),
        clock: o.clock.clone(),
        metrics: metrics_text,
        self_url: std::sync::RwLock::new(http::base_url(addr)),
        idempotency_locks: Default::default(),
        hashes: crate::passwords::HashPool::for_this_machine(),
        trusted_proxies: opts.front.trusted_proxies.clone(),
    });
    let (stop, mut stop_rx) = watch::channel(false);
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

//! The node's metrics wiring for `/metrics`: the Prometheus recorder (one per process), a
//! node-local subscriber counting saga outcomes, and the gauges read from the node when the
//! metrics are rendered. The HTTP front counts its own requests.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::app::node::{Node, NodeBuilder};
use crate::domain::saga::OrderStatus;
use crate::persistence::{DeliveryError, Envelope, Subscriber, Topic};

/// Counts saga outcomes for `/metrics` (a node-local subscriber of order events).
struct SagaOutcomes;

impl Subscriber for SagaOutcomes {
    fn deliver(&self, env: Envelope) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let settled = OrderStatus::parse(&env.aggregate_status)
            .is_some_and(|s| matches!(s, OrderStatus::Paid | OrderStatus::Cancelled | OrderStatus::Completed));
        if settled {
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

/// Adds the saga-outcome counter to a node being built.
pub fn subscribe(builder: NodeBuilder) -> NodeBuilder {
    builder.subscriber("metrics/sagas", Topic::OrderEvent, Arc::new(SagaOutcomes))
}

/// Renders the node's metrics as Prometheus text, refreshing its gauges first.
pub fn renderer(node: &Node) -> Arc<dyn Fn() -> String + Send + Sync> {
    let handle = prometheus();
    let store = node.store().clone();
    let committer = node.committer().clone();
    let stats = node.service_stats().to_vec();
    let transport = node.transport().cloned();
    Arc::new(move || {
        metrics::gauge!("outbox_depth").set(store.outbox_len() as f64);
        metrics::gauge!("dead_letters").set(store.dead_letters().map(|d| d.len()).unwrap_or(0) as f64);
        let live: usize = stats.iter().map(|(_, s)| s.live.load(Relaxed)).sum();
        metrics::gauge!("live_entities").set(live as f64);
        for (name, s) in &stats {
            metrics::gauge!("live_entities_by_service", "service" => name.clone()).set(s.live.load(Relaxed) as f64);
        }
        let c = committer.stats();
        metrics::gauge!("commit_batches_total").set(c.batches.load(Relaxed) as f64);
        metrics::gauge!("commit_write_sets_total").set(c.write_sets.load(Relaxed) as f64);
        for (i, b) in c.batch_len_buckets.iter().enumerate() {
            let le = (1u64 << i).to_string();
            metrics::gauge!("commit_batches_by_size", "le" => le).set(b.load(Relaxed) as f64);
        }
        for (peer, v) in transport.iter().flat_map(|t| t.peers()) {
            metrics::gauge!("cluster_peer_session_up", "peer" => peer.clone()).set(u8::from(v.session) as f64);
            metrics::gauge!("cluster_peer_reachable", "peer" => peer.clone()).set(u8::from(v.reachable) as f64);
            metrics::gauge!("cluster_peer_heartbeat_rtt_seconds", "peer" => peer).set(v.rtt_us as f64 / 1e6);
        }
        handle.render()
    })
}

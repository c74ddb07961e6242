//! Entity lifecycle: activation, passivation under the live cap and when idle, restart after a
//! panic with state intact.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bazaar::actors::stock::StockItemKind;
use bazaar::actors::EngineError;
use bazaar::app::node::NodeBuilder;
use bazaar::clock::ManualClock;
use bazaar::domain::stock::StockCommand;
use bazaar::domain::{Qty, Sku};
use bazaar::persistence::Durability;
use bazaar::supervisors::EntityConfig;

use crate::support::{self, eventually, mid, CounterCmd, CounterKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_count_stays_under_the_cap_while_100k_entities_are_touched() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = support::options(dir.path(), Durability::None);
    let cap = 1_000;
    opts.entities = EntityConfig { live_max: cap, ..EntityConfig::default() };
    let node = NodeBuilder::store(opts).start().await.unwrap();
    let stock = node.service::<StockItemKind>().unwrap();
    let total: usize = 100_000;
    let writers = 64;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let stock = stock.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < total {
                let sku = Sku::parse(&format!("p-{i}")).unwrap();
                let v = stock
                    .command(&sku, mid(), StockCommand::Receive { qty: Qty::new(1), dims: None })
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(v.levels.received.get(), 1);
                i += writers;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = stock.stats();
    let peak = stats.live_peak.load(Ordering::Relaxed);
    assert!(peak <= cap, "peak {peak} live entities, cap {cap}");
    assert!(stats.activations.load(Ordering::Relaxed) >= total as u64);
    assert!(stats.passivations.load(Ordering::Relaxed) >= (total - cap) as u64);
    // Passivated entities come back with their state.
    for i in (0..total).step_by(997) {
        let sku = Sku::parse(&format!("p-{i}")).unwrap();
        let v = stock.command(&sku, mid(), StockCommand::Get).await.unwrap().unwrap();
        assert_eq!(v.levels.received.get(), 1, "{sku}");
    }
    assert!(stats.live_peak.load(Ordering::Relaxed) <= cap);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_entities_are_passivated_and_come_back_on_the_next_message() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let mut opts = support::options(dir.path(), Durability::Flush);
    opts.clock = clock.clone();
    opts.entities = EntityConfig { live_max: 100, idle_ms: 60_000, sweep_ms: 10 };
    let node = NodeBuilder::store(opts).service::<CounterKind>().start().await.unwrap();
    let counters = node.service::<CounterKind>().unwrap();
    for k in ["a", "b", "c"] {
        counters.command(&k.to_owned(), mid(), CounterCmd::Add(5)).await.unwrap();
    }
    assert_eq!(counters.stats().live.load(Ordering::Relaxed), 3);
    clock.advance(30_000);
    counters.command(&"a".to_owned(), mid(), CounterCmd::Add(1)).await.unwrap();
    clock.advance(40_000);
    // b and c have been idle 70 s, a only 40 s.
    eventually("b and c passivated", || async { counters.stats().live.load(Ordering::Relaxed) == 1 }).await;
    assert_eq!(counters.stats().passivations.load(Ordering::Relaxed), 2);
    let b = counters.command(&"b".to_owned(), mid(), CounterCmd::Get).await.unwrap();
    assert_eq!(b.value, 5, "state survives passivation");
    assert_eq!(counters.stats().live.load(Ordering::Relaxed), 2);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_handler_restarts_the_entity_with_its_state_intact() {
    let dir = tempfile::tempdir().unwrap();
    let node = support::start(dir.path(), Durability::Flush).await;
    let counters = node.service::<CounterKind>().unwrap();
    let key = "fragile".to_owned();
    // Adds in flight around the panic: each is acknowledged only if it is durable.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (c, k) = (counters.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let cmd = if i == 30 { CounterCmd::Panic } else { CounterCmd::Add(1) };
            (i, c.command(&k, mid(), cmd).await)
        }));
    }
    let mut acked = 0;
    for t in tasks {
        match t.await.unwrap() {
            (30, r) => assert!(matches!(r, Err(EngineError::Unavailable(_))), "the poison command fails: {r:?}"),
            (_, Ok(_)) => acked += 1,
            (_, Err(e)) => assert!(matches!(e, EngineError::Unavailable(_) | EngineError::CommitFailed(_)), "{e}"),
        }
    }
    let stats = counters.stats();
    assert!(stats.failures.load(Ordering::Relaxed) >= 1, "the panic was seen by the supervisor");
    let got = counters.command(&key, mid(), CounterCmd::Get).await.unwrap();
    assert_eq!(got.value, acked, "every acknowledged add and nothing else survived the restarts");
    assert_eq!(got.adds, u64::try_from(acked).unwrap());
    // The service as a whole is unaffected.
    let other = counters.command(&"sturdy".to_owned(), mid(), CounterCmd::Add(2)).await.unwrap();
    assert_eq!(other.value, 2);
    node.shutdown().await;
}

/// A node that owns only some partitions (node-1 of a two-node configuration) refuses the reads
/// that need every partition instead of answering with what it happens to hold; reads it can
/// answer whole, and the single node's, stay whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_some_partitions_refuses_whole_store_reads_instead_of_answering_partially() {
    use bazaar::actors::order::OrderKind;
    use bazaar::app::shop::{Shop, ShopError};
    use bazaar::domain::NodeId;

    let dir = tempfile::tempdir().unwrap();
    let mut o = support::options(dir.path(), Durability::Flush);
    o.nodes = vec![NodeId::parse("node-1").unwrap(), NodeId::parse("node-2").unwrap()];
    o.node = o.nodes[0].clone();
    let node = NodeBuilder::store(o).start().await.unwrap();
    let shop = Shop::new(&node).unwrap();
    let owned = node.router().local_partitions();
    assert!(owned > 0 && owned < node.router().partitions() as usize, "node-1 owns {owned} partitions");

    let orders = shop.scan::<OrderKind>().unwrap();
    assert!(!orders.is_whole());
    let partial = ShopError::Partial { owned, partitions: node.router().partitions() };
    assert_eq!(orders.whole(), Err(partial.clone()));
    assert_eq!(shop.sends().await.map(|s| s.len()), Err(partial.clone()));
    // Over HTTP: 503 with API.md's error, so a client retries rather than trusts a short list.
    let (status, body) = bazaar::http::error::ApiError::from(partial.clone()).parts();
    assert_eq!((status.as_u16(), body.error.as_str()), (503, "UNAVAILABLE"), "{}", body.message);
    assert!(shop.invariants().whole().is_err());
    // Knowingly partial reads still answer.
    assert!(shop.revoked_tokens(0).unwrap().is_empty());
    node.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let node = NodeBuilder::store(support::options(dir.path(), Durability::Flush)).start().await.unwrap();
    let shop = Shop::new(&node).unwrap();
    assert!(shop.scan::<OrderKind>().unwrap().is_whole());
    assert_eq!(shop.sends().await.map(|s| s.len()), Ok(0));
    node.shutdown().await;
}

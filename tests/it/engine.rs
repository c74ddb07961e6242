//! The transactional unit through the real pipeline: commands to stock item actors, the
//! committer, sled. Dedup, atomicity, rejections, overload.

use std::sync::Arc;

use bazaar::actors::stock::StockItemKind;
use bazaar::actors::EngineError;
use bazaar::domain::stock::{ReleaseReason, StockCommand};
use bazaar::domain::{DomainError, OrderId, Qty, Sku};
use bazaar::limits::MAILBOX_LEN_MAX;
use bazaar::persistence::store::InjectedAbort;
use bazaar::persistence::{Durability, OutboxEntry};

use crate::support::{self, mid, CounterCmd, CounterKind, HOLD, HOLDING};

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn receive(n: u32) -> StockCommand {
    StockCommand::Receive { qty: Qty::new(n), dims: None }
}

/// Stock events in the outbox for `sku`, by aggregate version.
fn outbox_versions(node: &bazaar::app::node::Node, sku: &str) -> Vec<u64> {
    let mut v: Vec<u64> = node
        .store()
        .outbox_scan(0, u64::MAX, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, raw)| OutboxEntry::decode(&raw).unwrap())
        .filter(|e| e.envelope.aggregate_id == sku)
        .map(|e| e.envelope.aggregate_version)
        .collect();
    v.sort_unstable();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_command_is_acknowledged_once_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = support::start(dir.path(), Durability::Flush).await;
    let stock = node.service::<StockItemKind>().unwrap();
    let item = sku("dedup-1");
    let id = mid();
    let first = stock.command(&item, id, receive(5)).await.unwrap().unwrap();
    let again = stock.command(&item, id, receive(5)).await.unwrap().unwrap();
    assert_eq!(first, again, "a repeat gets the first answer");
    let now = stock.command(&item, mid(), StockCommand::Get).await.unwrap().unwrap();
    assert_eq!(now.levels.received.get(), 5, "the repeat took no effect");
    drop(stock);
    node.shutdown().await;

    // The inbox is on disk: after a restart the repeat is still recognised.
    let node = support::start(dir.path(), Durability::Flush).await;
    let stock = node.service::<StockItemKind>().unwrap();
    let after = stock.command(&item, id, receive(5)).await.unwrap().unwrap();
    assert_eq!(after, first);
    let now = stock.command(&item, mid(), StockCommand::Get).await.unwrap().unwrap();
    assert_eq!(now.levels.received.get(), 5);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_leaves_neither_aggregate_change_nor_outbox_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = support::start(dir.path(), Durability::Flush).await;
    // Keep every outbox entry where it is, so the test can see which write sets produced one.
    node.stop_relay().await;
    let stock = node.service::<StockItemKind>().unwrap();
    let skus: Vec<Sku> = (0..32).map(|i| sku(&format!("atom-{i}"))).collect();
    for s in &skus {
        stock.command(s, mid(), receive(10)).await.unwrap().unwrap();
    }
    // The next batch aborts after two write sets went into its transaction.
    node.committer().inject_abort(InjectedAbort { after_written: 2 });
    let ids: Vec<_> = skus.iter().map(|_| mid()).collect();
    let mut tasks = Vec::new();
    for (s, id) in skus.iter().zip(&ids) {
        let (stock, s, id) = (stock.clone(), s.clone(), *id);
        tasks.push(tokio::spawn(async move { stock.command(&s, id, receive(1)).await }));
    }
    let mut failed = Vec::new();
    for (t, s) in tasks.into_iter().zip(&skus) {
        match t.await.unwrap() {
            Ok(Ok(_)) => {}
            Err(EngineError::CommitFailed(_)) => failed.push(s.clone()),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(!failed.is_empty(), "the injected abort failed a batch");
    for s in &skus {
        let got = stock.command(s, mid(), StockCommand::Get).await.unwrap().unwrap();
        let versions = outbox_versions(&node, s.as_str());
        if failed.contains(s) {
            assert_eq!(got.levels.received.get(), 10, "{s}: no aggregate change from the failed batch");
            assert_eq!(versions, vec![1], "{s}: no outbox entry from the failed batch");
        } else {
            assert_eq!(got.levels.received.get(), 11, "{s}: committed in another batch");
            assert_eq!(versions, vec![1, 2]);
        }
    }
    // The whole failed batch is retried by its callers with the same message ids, and lands once.
    for (s, id) in skus.iter().zip(&ids) {
        if failed.contains(s) {
            stock.command(s, *id, receive(1)).await.unwrap().unwrap();
            let got = stock.command(s, mid(), StockCommand::Get).await.unwrap().unwrap();
            assert_eq!(got.levels.received.get(), 11);
            assert_eq!(outbox_versions(&node, s.as_str()), vec![1, 2]);
        }
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bookings_never_overbook_and_rejections_are_replies() {
    let dir = tempfile::tempdir().unwrap();
    let node = support::start(dir.path(), Durability::Flush).await;
    let stock = node.service::<StockItemKind>().unwrap();
    let item = sku("hot-item");
    stock.command(&item, mid(), receive(100)).await.unwrap().unwrap();
    let mut tasks = Vec::new();
    for o in 0..250 {
        let (stock, item) = (stock.clone(), item.clone());
        tasks.push(tokio::spawn(async move {
            let order = OrderId::parse(&format!("o-{o}")).unwrap();
            stock.command(&item, mid(), StockCommand::Book { order, qty: Qty::new(1) }).await
        }));
    }
    let (mut booked, mut short) = (0, 0);
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Ok(_) => booked += 1,
            Err(DomainError::InsufficientStock { .. }) => short += 1,
            Err(e) => panic!("unexpected rejection {e}"),
        }
    }
    assert_eq!((booked, short), (100, 150));
    let got = stock.command(&item, mid(), StockCommand::Get).await.unwrap().unwrap();
    assert_eq!((got.levels.free.get(), got.levels.booked.get()), (0, 100));
    // A release brings units back; the same release again (a redelivery: same message id) does
    // nothing more, and releasing more than is booked is refused.
    let o = OrderId::parse("o-7").unwrap();
    let id = mid();
    for _ in 0..2 {
        let cmd = StockCommand::Release { order: o.clone(), qty: Qty::new(40), reason: ReleaseReason::OrderCancelled };
        stock.command(&item, id, cmd).await.unwrap().unwrap();
    }
    let got = stock.command(&item, mid(), StockCommand::Get).await.unwrap().unwrap();
    assert_eq!((got.levels.free.get(), got.levels.booked.get()), (40, 60));
    let too_much = StockCommand::Release { order: o, qty: Qty::new(61), reason: ReleaseReason::OrderCancelled };
    assert!(matches!(stock.command(&item, mid(), too_much).await.unwrap(), Err(DomainError::NotBooked { .. })));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
// Holding the lock across awaits is the point: it keeps the entity busy while the test fills
// its mailbox.
#[allow(clippy::await_holding_lock)]
async fn a_full_mailbox_answers_overloaded_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = support::start(dir.path(), Durability::None).await;
    let counters = Arc::new(node.service::<CounterKind>().unwrap());
    let key = "busy".to_owned();
    counters.command(&key, mid(), CounterCmd::Get).await.unwrap();
    // Keep the entity inside a handler while the test fills its mailbox.
    let guard = HOLD.lock().unwrap();
    let holder = {
        let (c, k) = (counters.clone(), key.clone());
        tokio::spawn(async move { c.command(&k, mid(), CounterCmd::Hold).await })
    };
    // Wait until the entity took the Hold message (its mailbox is empty again).
    support::eventually("the entity is holding", || async { HOLDING.load(std::sync::atomic::Ordering::SeqCst) }).await;
    let extra = 100;
    let mut tasks = Vec::new();
    for _ in 0..MAILBOX_LEN_MAX + extra {
        let (c, k) = (counters.clone(), key.clone());
        tasks.push(tokio::spawn(async move { c.command(&k, mid(), CounterCmd::Add(1)).await }));
    }
    // Every send has either queued or been refused before the hold is released.
    support::eventually("all sends attempted", || {
        let done = tasks.iter().filter(|t| t.is_finished()).count();
        async move { done >= extra }
    })
    .await;
    drop(guard);
    holder.await.unwrap().unwrap();
    let (mut ok, mut overloaded) = (0i64, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(EngineError::Overloaded { .. }) => overloaded += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(overloaded, extra, "exactly the sends past the bound are refused");
    let got = counters.command(&key, mid(), CounterCmd::Get).await.unwrap();
    assert_eq!(got.value, ok, "every accepted add took effect, nothing else");
    node.shutdown().await;
}

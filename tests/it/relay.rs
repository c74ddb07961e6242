//! The outbox relay: delivery to a real subscribing entity (the catalogue's stock projection),
//! redelivery after a relay restart, dead letters and their replay, duplicate events.

use std::sync::Arc;

use bazaar::actors::catalogue::{ProjectionQuery, StockProjectionKind};
use bazaar::actors::stock::StockItemKind;
use bazaar::app::node::{Node, NodeBuilder};
use bazaar::domain::stock::StockCommand;
use bazaar::domain::{Qty, Sku};
use bazaar::persistence::relay::replay_dead_letter;
use bazaar::persistence::{Durability, OutboxEntry, RelayConfig, Topic};

use crate::support::{self, eventually, mid, Probe, ProbeMode, ProbeSub};

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn receive(n: u32) -> StockCommand {
    StockCommand::Receive { qty: Qty::new(n), dims: None }
}

async fn node_with_probe(dir: &std::path::Path, probe: Arc<Probe>) -> Node {
    let mut opts = support::options(dir, Durability::Flush);
    opts.relay = RelayConfig {
        attempts_max: 3,
        backoff_ms_min: 1,
        backoff_ms_max: 4,
        delivery_timeout_ms: 2_000,
        window_len_max: 64,
        park_ms: 5,
    };
    NodeBuilder::store(opts).subscriber("probe", Topic::StockItem, Arc::new(ProbeSub(probe))).start().await.unwrap()
}

async fn projection_version(node: &Node, s: &Sku) -> u64 {
    let p = node.service::<StockProjectionKind>().unwrap();
    p.command(s, mid(), ProjectionQuery::Get).await.unwrap().stock_version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_projection_in_order_and_the_outbox_drains() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Arc::new(Probe::default());
    let node = node_with_probe(dir.path(), probe.clone()).await;
    let stock = node.service::<StockItemKind>().unwrap();
    let items: Vec<Sku> = (0..8).map(|i| sku(&format!("relay-{i}"))).collect();
    for round in 1..=5u64 {
        for s in &items {
            stock.command(s, mid(), receive(2)).await.unwrap().unwrap();
            let _ = round;
        }
    }
    for s in &items {
        eventually("the projection caught up", || async { projection_version(&node, s).await == 5 }).await;
        let p = node.service::<StockProjectionKind>().unwrap().command(s, mid(), ProjectionQuery::Get).await.unwrap();
        assert_eq!(p.levels.free.get(), 10);
        assert_eq!(p.applied, 5);
    }
    eventually("the outbox drained", || async { node.store().outbox_len() == 0 }).await;
    // In order per routing key: each item's versions arrive ascending at the probe.
    let seen = probe.seen();
    for s in &items {
        let versions: Vec<u64> = seen.iter().filter(|(_, k, _)| k == s.as_str()).map(|(_, _, v)| *v).collect();
        assert_eq!(versions, vec![1, 2, 3, 4, 5], "{s}");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_whose_node_is_unreachable_parks_without_using_attempts_and_drains_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Arc::new(Probe::default());
    probe.set(ProbeMode::Unreachable);
    // Three attempts would dead-letter a failing entry within milliseconds.
    let node = node_with_probe(dir.path(), probe.clone()).await;
    let stock = node.service::<StockItemKind>().unwrap();
    let s = sku("parked-1");
    for _ in 0..2 {
        stock.command(&s, mid(), receive(1)).await.unwrap().unwrap();
    }
    eventually("the lane was tried many times", || async { probe.seen().len() >= 12 }).await;
    assert!(node.store().dead_letters().unwrap().is_empty(), "an unreachable node dead-letters nothing");
    assert!(node.store().outbox_len() >= 2, "parked entries stay in the outbox");
    // Only the head was ever tried: the lane waits, in order.
    assert!(probe.seen().iter().all(|(_, _, v)| *v == 1));
    probe.set(ProbeMode::Ack);
    eventually("the parked lane drained", || async { node.store().outbox_len() == 0 }).await;
    assert!(node.store().dead_letters().unwrap().is_empty());
    let versions: Vec<u64> = probe.seen().iter().map(|(_, _, v)| *v).skip_while(|v| *v == 1).collect();
    assert_eq!(versions, vec![2], "the second after the first");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_relay_redelivers_what_was_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Arc::new(Probe::default());
    probe.set(ProbeMode::Swallow);
    let mut node = node_with_probe(dir.path(), probe.clone()).await;
    let stock = node.service::<StockItemKind>().unwrap();
    let s = sku("restart-1");
    for _ in 0..3 {
        stock.command(&s, mid(), receive(1)).await.unwrap().unwrap();
    }
    // The probe took the first event but never acknowledged it; the lane waits behind it.
    eventually("the probe got the first event", || async { !probe.seen().is_empty() }).await;
    let first_id = probe.seen()[0].0;
    node.stop_relay().await;
    assert!(node.store().outbox_len() >= 3, "unacknowledged entries stay in the outbox");
    probe.set(ProbeMode::Ack);
    node.restart_relay();
    eventually("everything delivered after the restart", || async { node.store().outbox_len() == 0 }).await;
    let per_id = probe.deliveries_per_id();
    assert_eq!(per_id.get(&first_id), Some(&2), "the unacknowledged event came again");
    assert_eq!(per_id.len(), 3);
    let versions: Vec<u64> = probe.seen().iter().map(|(_, _, v)| *v).collect();
    assert_eq!(versions, vec![1, 1, 2, 3], "in order, the repeat first");
    // The projection's inbox took each event once, whatever the relay repeated.
    eventually("projection at v3", || async { projection_version(&node, &s).await == 3 }).await;
    let p = node.service::<StockProjectionKind>().unwrap().command(&s, mid(), ProjectionQuery::Get).await.unwrap();
    assert_eq!(p.applied, 3);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_resumes_after_a_node_restart() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Arc::new(Probe::default());
    probe.set(ProbeMode::FailTransient);
    {
        let mut opts = support::options(dir.path(), Durability::Flush);
        // Retries slow enough that nothing is dead-lettered before the restart.
        opts.relay =
            RelayConfig { attempts_max: 1000, backoff_ms_min: 50, backoff_ms_max: 100, ..RelayConfig::default() };
        let node = NodeBuilder::store(opts)
            .subscriber("probe", Topic::StockItem, Arc::new(ProbeSub(probe.clone())))
            .start()
            .await
            .unwrap();
        let stock = node.service::<StockItemKind>().unwrap();
        for i in 0..4 {
            stock.command(&sku(&format!("resume-{i}")), mid(), receive(1)).await.unwrap().unwrap();
        }
        eventually("failing deliveries attempted", || async { probe.seen().len() >= 4 }).await;
        drop(stock);
        node.shutdown().await;
    }
    probe.set(ProbeMode::Ack);
    let node = node_with_probe(dir.path(), probe.clone()).await;
    eventually("the new node's relay delivered the old entries", || async { node.store().outbox_len() == 0 }).await;
    assert!(node.store().dead_letters().unwrap().is_empty());
    for i in 0..4 {
        eventually("projection", || async { projection_version(&node, &sku(&format!("resume-{i}"))).await == 1 }).await;
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_entries_become_dead_letters_and_replay_delivers_them() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Arc::new(Probe::default());
    probe.set(ProbeMode::FailTransient);
    let node = node_with_probe(dir.path(), probe.clone()).await;
    let stock = node.service::<StockItemKind>().unwrap();
    let s = sku("dead-1");
    stock.command(&s, mid(), receive(1)).await.unwrap().unwrap();
    stock.command(&s, mid(), receive(1)).await.unwrap().unwrap();
    eventually("both entries dead-lettered", || async { node.store().dead_letters().unwrap().len() == 2 }).await;
    let letters = node.store().dead_letters().unwrap();
    for (_, l) in &letters {
        let l = l.as_ref().unwrap();
        assert_eq!(l.destination.as_deref(), Some("probe"));
        assert_eq!(l.attempts, 3);
        assert!(l.reason.contains("probe says not now"), "{}", l.reason);
    }
    // The other subscriber (the projection) got both events all along.
    eventually("projection at v2", || async { projection_version(&node, &s).await == 2 }).await;
    // A permanent failure is dead-lettered at once, without retries.
    probe.set(ProbeMode::FailPermanent);
    stock.command(&s, mid(), receive(1)).await.unwrap().unwrap();
    eventually("the permanent failure is dead", || async { node.store().dead_letters().unwrap().len() == 3 }).await;
    let newest = node.store().dead_letters().unwrap().pop().unwrap().1.unwrap();
    assert_eq!(newest.attempts, 0);
    assert!(newest.reason.contains("never"));
    // Replay: each goes back to the outbox and is delivered.
    probe.set(ProbeMode::Ack);
    let before = probe.seen().len();
    for (seq, _) in node.store().dead_letters().unwrap() {
        replay_dead_letter(node.store(), node.committer(), seq).await.unwrap();
    }
    assert!(node.store().dead_letters().unwrap().is_empty());
    eventually("replayed entries delivered", || async {
        node.store().outbox_len() == 0 && probe.seen().len() == before + 3
    })
    .await;
    let versions: Vec<u64> = probe.seen()[before..].iter().map(|(_, _, v)| *v).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_outbox_entry_is_dead_lettered_with_its_bytes_and_others_still_flow() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Arc::new(Probe::default());
    let node = node_with_probe(dir.path(), probe.clone()).await;
    let stock = node.service::<StockItemKind>().unwrap();
    let s = sku("corrupt-1");
    // Append an entry whose bytes are damaged, through the committer like any other.
    let garbage = b"\xBA\x02\x01definitely not an outbox entry".to_vec();
    let ws = bazaar::persistence::WriteSet { outbox: vec![garbage.clone()], ..Default::default() };
    let (tx, rx) = tokio::sync::oneshot::channel();
    node.committer().submit(ws, Box::new(move |r| drop(tx.send(r)))).await;
    rx.await.unwrap().unwrap();
    stock.command(&s, mid(), receive(1)).await.unwrap().unwrap();
    eventually("the good event is delivered", || async { probe.seen().len() == 1 }).await;
    eventually("the bad one is dead", || async { node.store().dead_letters().unwrap().len() == 1 }).await;
    let (_, letter) = node.store().dead_letters().unwrap().pop().unwrap();
    let letter = letter.unwrap();
    assert_eq!(letter.entry, garbage, "the damaged bytes are kept as they were");
    assert!(letter.reason.contains("undecodable"), "{}", letter.reason);
    assert!(OutboxEntry::decode(&letter.entry).is_err());
    // Replaying it is refused with a typed error, and it stays.
    let seq = node.store().dead_letters().unwrap()[0].0;
    assert!(replay_dead_letter(node.store(), node.committer(), seq).await.is_err());
    assert_eq!(node.store().dead_letters().unwrap().len(), 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_reordered_events_take_effect_once() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Arc::new(Probe::default());
    let node = node_with_probe(dir.path(), probe.clone()).await;
    let stock = node.service::<StockItemKind>().unwrap();
    let s = sku("dup-events");
    for _ in 0..3 {
        stock.command(&s, mid(), receive(1)).await.unwrap().unwrap();
    }
    eventually("three events seen", || async { probe.seen().len() == 3 }).await;
    eventually("projection at v3", || async { projection_version(&node, &s).await == 3 }).await;
    let projection = node.service::<StockProjectionKind>().unwrap();
    let before = projection.command(&s, mid(), ProjectionQuery::Get).await.unwrap();
    assert_eq!((before.applied, before.levels.free.get()), (3, 3));
    // The very same envelopes again (duplicates by id), reversed and then in order.
    let events: Vec<_> = probe.envelopes.lock().unwrap().clone();
    for env in events.iter().rev().chain(events.iter()) {
        projection.deliver(env.clone()).await.unwrap();
    }
    // Old versions under new ids (stale by version): recorded, ignored.
    for env in &events {
        let mut stale = env.clone();
        stale.message_id = mid();
        projection.deliver(stale).await.unwrap();
    }
    let after = projection.command(&s, mid(), ProjectionQuery::Get).await.unwrap();
    assert_eq!(after, before, "repeats and stale versions change nothing");
    // An event that does not decode is refused for good (the relay dead-letters it).
    let mut bad = events[0].clone();
    bad.message_id = mid();
    bad.schema_version = 99;
    let err = projection.deliver(bad).await.unwrap_err();
    assert!(matches!(err, bazaar::persistence::DeliveryError::Permanent(_)), "{err}");
    node.shutdown().await;
}

/// A subscriber that records each lane delivery it gets (the events' versions, in the order
/// given) and fails, once, the event of one chosen version.
struct LaneProbe {
    batches: std::sync::Mutex<Vec<Vec<u64>>>,
    fail_once_at: std::sync::Mutex<Option<u64>>,
}

impl bazaar::persistence::Subscriber for LaneProbe {
    fn deliver(
        &self,
        env: bazaar::persistence::Envelope,
    ) -> futures::future::BoxFuture<'static, Result<(), bazaar::persistence::DeliveryError>> {
        let r = self.deliver_lane(vec![env]);
        Box::pin(async move { r.await.pop().unwrap_or(Ok(())) })
    }

    fn deliver_lane(
        &self,
        envelopes: Vec<bazaar::persistence::Envelope>,
    ) -> futures::future::BoxFuture<'static, Vec<Result<(), bazaar::persistence::DeliveryError>>> {
        let versions: Vec<u64> = envelopes.iter().map(|e| e.aggregate_version).collect();
        self.batches.lock().unwrap().push(versions.clone());
        let fail = *self.fail_once_at.lock().unwrap();
        let results = versions
            .iter()
            .map(|v| {
                if Some(*v) == fail {
                    *self.fail_once_at.lock().unwrap() = None;
                    Err(bazaar::persistence::DeliveryError::Transient("not now".into()))
                } else {
                    Ok(())
                }
            })
            .collect();
        Box::pin(async move { results })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lanes_waiting_events_go_together_in_order_and_a_failed_one_is_retried_from_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let lanes = Arc::new(LaneProbe { batches: Default::default(), fail_once_at: std::sync::Mutex::new(Some(7)) });
    let mut opts = support::options(dir.path(), Durability::Flush);
    opts.relay = RelayConfig { backoff_ms_min: 1, backoff_ms_max: 4, ..RelayConfig::default() };
    let mut node = NodeBuilder::store(opts).subscriber("lanes", Topic::StockItem, lanes.clone()).start().await.unwrap();
    let stock = node.service::<StockItemKind>().unwrap();
    let s = sku("hot-1");
    // Twenty changes of one item while the relay is stopped: twenty entries wait in each lane.
    node.stop_relay().await;
    for _ in 0..20 {
        stock.command(&s, mid(), receive(1)).await.unwrap().unwrap();
    }
    node.restart_relay();
    eventually("everything delivered", || async { node.store().outbox_len() == 0 }).await;
    let batches = lanes.batches.lock().unwrap().clone();
    // The first delivery carries the whole lane, in order; event 7 failed in it, so the retry
    // starts at 7 (events 1-6 and 8-20 were acknowledged already).
    assert_eq!(batches[0], (1..=20).collect::<Vec<u64>>(), "{batches:?}");
    assert_eq!(batches[1], vec![7], "{batches:?}");
    assert_eq!(batches.len(), 2, "{batches:?}");
    // The entity lane (the catalogue's projection) took all twenty, each once.
    eventually("projection at v20", || async { projection_version(&node, &s).await == 20 }).await;
    let p = node.service::<StockProjectionKind>().unwrap().command(&s, mid(), ProjectionQuery::Get).await.unwrap();
    assert_eq!(p.applied, 20);
    assert_eq!(p.levels.free.get(), 20);
    node.shutdown().await;
}

fn tool(args: &[&str], dir: &std::path::Path) -> (bool, String) {
    let out = support::bazaar().args(args).arg("--data-dir").arg(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `bazaar verify` and `bazaar dead-letters` end to end, as an operator runs them on the data
/// directory of a stopped node: verify counts what is there and passes; dead letters are listed
/// and put back in the outbox, and the next start delivers them; a damaged record makes verify
/// say so and fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_dead_letters_work_on_the_data_directory_of_a_stopped_node() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Arc::new(Probe::default());
    probe.set(ProbeMode::FailPermanent);
    let node = node_with_probe(dir.path(), probe.clone()).await;
    let stock = node.service::<StockItemKind>().unwrap();
    for name in ["tools-1", "tools-2"] {
        stock.command(&sku(name), mid(), receive(3)).await.unwrap().unwrap();
    }
    eventually("both dead-lettered and the projection told", || async {
        node.store().dead_letters().unwrap().len() == 2 && node.store().outbox_len() == 0
    })
    .await;
    drop(stock);
    node.shutdown().await;

    let (ok, text) = tool(&["verify"], dir.path());
    assert!(ok, "{text}");
    assert!(text.contains("stock items 2,") && text.contains("dead letters 2"), "{text}");
    assert!(text.contains("ok      money balanced") && !text.contains("BROKEN") && !text.contains("PROBLEM"), "{text}");

    let (ok, text) = tool(&["dead-letters", "list"], dir.path());
    assert!(ok, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in lines {
        assert!(line.contains("\tprobe\tattempts 0\t") && line.contains("never"), "{line}");
    }
    let (ok, text) = tool(&["dead-letters", "replay"], dir.path());
    assert!(ok, "{text}");
    assert_eq!(text.matches("is back in the outbox as").count(), 2, "{text}");
    let (ok, text) = tool(&["dead-letters", "list"], dir.path());
    assert!(ok && text.contains("no dead letters"), "{text}");
    let (ok, text) = tool(&["verify"], dir.path());
    assert!(ok && text.contains("outbox entries 2, dead letters 0"), "{text}");

    // The next start delivers the replayed entries to the subscriber that refused them.
    probe.set(ProbeMode::Ack);
    let before = probe.seen().len();
    let node = node_with_probe(dir.path(), probe.clone()).await;
    eventually("replayed entries delivered", || async {
        node.store().outbox_len() == 0 && probe.seen().len() == before + 2
    })
    .await;
    // A damaged stored record (written as raw bytes, as a disk fault would leave it).
    crate::support::damage_record::<StockItemKind>(&node, "tools-3").await;
    node.shutdown().await;
    let (ok, text) = tool(&["verify"], dir.path());
    assert!(!ok, "a damaged record fails verify: {text}");
    assert!(text.contains("PROBLEM") && text.contains("tools-3"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_in_pages_reads_every_aggregate_once_in_key_order() {
    use bazaar::persistence::{page, StateSource};
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_probe(dir.path(), Arc::new(Probe::default())).await;
    let stock = node.service::<StockItemKind>().unwrap();
    for i in 0..10 {
        stock.command(&sku(&format!("paged-{i}")), mid(), receive(1)).await.unwrap().unwrap();
    }
    let all = node.store().states("stock", "item").unwrap();
    assert_eq!(all.len(), 10);
    // One byte of room still gives one row a page; the pages join up to the whole scan.
    for room in [1, 200, 1 << 20] {
        let mut got = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let (rows, next) = page(node.store(), "stock", "item", "", after.as_deref(), room).unwrap();
            pages += 1;
            got.extend(rows);
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(got, all, "room {room}");
        assert!(room > 1000 || pages > 1, "room {room} took {pages} pages");
    }
    // Only the keys with the prefix, over as many pages as it takes.
    let one = &all[3].0;
    let (rows, next) = page(node.store(), "stock", "item", one, None, 1).unwrap();
    assert_eq!((rows.len(), &rows[0].0), (1, one));
    if let Some(after) = next {
        assert!(page(node.store(), "stock", "item", one, Some(&after), 1).unwrap().0.is_empty());
    }
    node.shutdown().await;
}

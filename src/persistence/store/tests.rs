use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::persistence::codec::Header;

fn open(dir: &Path) -> Store {
    Store::open(dir, &StoreOptions { durability: Durability::Flush, cache_bytes: 8 << 20, inbox_generation_ms: 10 })
        .unwrap()
}

fn id(n: u8) -> MessageId {
    MessageId::from_bytes([n; 16])
}

fn agg(version: u64, value: u64) -> Vec<u8> {
    codec::encode(Header { kind: RecordKind::Aggregate, schema: 1, version }, &value, 1024).unwrap()
}

fn inbox_write(n: u8, at: u64) -> InboxWrite {
    InboxWrite {
        id: id(n),
        recorded_at_ms: at,
        record: InboxRecord { recorded_at_ms: at, reply: Some(vec![n]) }.encode().unwrap(),
    }
}

fn ws(t: &ServiceTrees, msg: u8, key: &str, expected: u64, value: u64, outbox: usize) -> WriteSet {
    WriteSet {
        service: Some(t.clone()),
        inbox: Some(inbox_write(msg, 1000 + u64::from(msg))),
        state: Some(StateWrite {
            key: key.as_bytes().to_vec(),
            expected_version: expected,
            record: agg(expected + 1, value),
        }),
        outbox: (0..outbox).map(|i| vec![msg, u8::try_from(i).unwrap()]).collect(),
        ..WriteSet::default()
    }
}

fn value_of(store: &Store, t: &ServiceTrees, key: &str) -> Option<(u64, u64)> {
    store
        .load_aggregate(t, key.as_bytes())
        .unwrap()
        .map(|(h, body)| (h.version, codec::from_body::<u64>("v", &body).unwrap()))
}

#[test]
fn a_batch_skips_duplicates_and_stale_versions_without_aborting_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store.service("svc", "agg").unwrap();
    let mut versions = VersionCache::default();
    let first = ws(&t, 1, "a", 0, 10, 1);
    let (applied, next) = store.commit(&[&first], 0, None, &mut versions).unwrap();
    assert_eq!(applied, vec![Applied::Written { first_seq: 0, count: 1 }]);
    assert_eq!(next, 1);
    let dup = ws(&t, 1, "b", 0, 99, 1); // same message id: dropped even though "b" is new
    let stale = ws(&t, 2, "a", 0, 11, 1); // "a" is at version 1, not 0
    let good = ws(&t, 3, "a", 1, 12, 2);
    let dup_in_batch = ws(&t, 3, "c", 0, 13, 1); // same id as `good`, in the same batch
    let (applied, next) = store.commit(&[&dup, &stale, &good, &dup_in_batch], next, None, &mut versions).unwrap();
    assert!(matches!(applied[0], Applied::Duplicate(_)));
    assert_eq!(applied[1], Applied::Conflict(Some(1)));
    assert_eq!(applied[2], Applied::Written { first_seq: 1, count: 2 });
    assert!(matches!(applied[3], Applied::Duplicate(_)));
    assert_eq!(next, 3);
    assert_eq!(value_of(&store, &t, "a"), Some((2, 12)));
    // The same stale write is refused by a fresh cache too (read from sled this time).
    let (applied, _) = store.commit(&[&ws(&t, 4, "a", 0, 11, 1)], next, None, &mut VersionCache::default()).unwrap();
    assert_eq!(applied[0], Applied::Conflict(Some(2)));
    assert_eq!(value_of(&store, &t, "b"), None);
    assert_eq!(value_of(&store, &t, "c"), None);
    assert_eq!(store.outbox_len(), 3);
    assert_eq!(store.next_outbox_seq().unwrap(), 3);
    let rec = store.inbox_record(&t, &id(1)).unwrap().unwrap();
    assert_eq!(rec.reply, Some(vec![1]));
}

#[test]
fn an_aborted_batch_leaves_nothing_of_any_write_set() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store.service("svc", "agg").unwrap();
    let a = ws(&t, 1, "a", 0, 1, 1);
    let b = ws(&t, 2, "b", 0, 2, 1);
    let c = ws(&t, 3, "c", 0, 3, 1);
    let r = store.commit(&[&a, &b, &c], 0, Some(InjectedAbort { after_written: 2 }), &mut VersionCache::default());
    assert!(matches!(r, Err(StoreError::Injected(_))));
    for key in ["a", "b", "c"] {
        assert_eq!(value_of(&store, &t, key), None, "{key} must not be written");
    }
    assert_eq!(store.outbox_len(), 0);
    assert_eq!(store.inbox_len(&t), 0);
    assert_eq!(store.next_outbox_seq().unwrap(), 0);
    // The same batch then commits whole.
    let (applied, _) = store.commit(&[&a, &b, &c], 0, None, &mut VersionCache::default()).unwrap();
    assert!(applied.iter().all(|a| matches!(a, Applied::Written { .. })));
}

#[test]
fn inbox_ids_are_kept_inside_the_retention_window_and_pruned_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()); // generations of 10 ms
    let t = store.service("svc", "agg").unwrap();
    for (n, at) in [(0u8, 1000u64), (1, 1009), (2, 1010), (3, 1019), (4, 1025)] {
        let w = WriteSet { service: Some(t.clone()), inbox: Some(inbox_write(n, at)), ..WriteSet::default() };
        let (applied, _) = store.commit(&[&w], 0, None, &mut VersionCache::default()).unwrap();
        assert!(matches!(applied[0], Applied::Written { .. }));
    }
    // A cut-off inside a generation keeps that generation whole: nothing recorded at or after
    // the cut-off is ever pruned.
    assert_eq!(store.prune_inbox(&t, 1009).unwrap(), 0);
    assert!(store.inbox_record(&t, &id(0)).unwrap().is_some());
    // Cut-off 1010: the generation [1000, 1010) is wholly before it and goes.
    assert_eq!(store.prune_inbox(&t, 1010).unwrap(), 1);
    assert!(store.inbox_record(&t, &id(0)).unwrap().is_none());
    assert!(store.inbox_record(&t, &id(1)).unwrap().is_none());
    for n in 2..5 {
        assert!(store.inbox_record(&t, &id(n)).unwrap().is_some(), "id {n} is inside the window");
    }
    assert_eq!(store.prune_inbox(&t, 1010).unwrap(), 0);
    assert_eq!(store.inbox_len(&t), 3);
    // A duplicate is recognised across generations (recorded at 1019, repeated at 1025).
    let again = WriteSet { service: Some(t.clone()), inbox: Some(inbox_write(3, 1025)), ..WriteSet::default() };
    let (applied, _) = store.commit(&[&again], 0, None, &mut VersionCache::default()).unwrap();
    assert!(matches!(applied[0], Applied::Duplicate(_)));
    // Generations survive a restart, and pruning still finds them.
    drop(again);
    drop(t);
    drop(store);
    let store = open(dir.path());
    let t = store.service("svc", "agg").unwrap();
    assert!(store.inbox_record(&t, &id(3)).unwrap().is_some());
    assert_eq!(store.prune_inbox(&t, 1030).unwrap(), 2);
    assert_eq!(store.inbox_len(&t), 0);
}

#[test]
fn corrupt_stored_bytes_are_typed_errors_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store.service("svc", "agg").unwrap();
    store.commit(&[&ws(&t, 1, "good", 0, 7, 0)], 0, None, &mut VersionCache::default()).unwrap();
    t.state.insert("bad", &b"\xBA\x01\x01garbage-garbage-garbage"[..]).unwrap();
    t.state.insert("short", &b"\x00"[..]).unwrap();
    store.generation_tree(&t, 1000).unwrap().insert(id(9).as_bytes(), &b"junk"[..]).unwrap();
    assert!(matches!(store.load_aggregate(&t, b"bad"), Err(StoreError::Corrupt { .. })));
    assert!(matches!(store.load_aggregate(&t, b"short"), Err(StoreError::Corrupt { .. })));
    assert!(matches!(store.inbox_record(&t, &id(9)), Err(StoreError::Corrupt { .. })));
    assert_eq!(value_of(&store, &t, "good"), Some((1, 7)));
    let scanned: Vec<_> = store.scan_aggregates(&t).collect();
    assert_eq!(scanned.len(), 3);
    assert_eq!(scanned.iter().filter(|r| r.is_err()).count(), 2);
    // A write set against a corrupt aggregate is a conflict, not a panic and not an overwrite.
    let (applied, _) = store.commit(&[&ws(&t, 2, "bad", 0, 1, 0)], 0, None, &mut VersionCache::default()).unwrap();
    assert!(matches!(applied[..], [Applied::Conflict(_)]), "{applied:?}");
    assert!(matches!(store.load_aggregate(&t, b"bad"), Err(StoreError::Corrupt { .. })));
}

#[test]
fn a_second_open_of_a_held_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _held = open(dir.path());
    let err = Store::open(dir.path(), &StoreOptions::default()).err().unwrap();
    assert!(matches!(err, StoreError::Locked(_)), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
}

/// Copies a data directory as it is on disk right now — what a `kill -9` at this moment would
/// leave behind (sled holds only what its last checkpoint or its own buffer writes put there;
/// the rest is in the commit log). A file deleted while the copy runs (a trimmed log segment,
/// an old sled snapshot) is simply not there, as after a crash.
fn copy_dir(from: &Path, to: &Path) {
    copy_dir_except(from, to, "");
}

/// `copy_dir`, leaving out the top-level entry named `except`.
fn copy_dir_except(from: &Path, to: &Path, except: &str) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() == except {
            continue;
        }
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else if let Err(err) = std::fs::copy(e.path(), target) {
            assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{}: {err}", e.path().display());
        }
    }
}

#[test]
fn a_batch_logged_but_not_applied_is_replayed_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store.service("svc", "agg").unwrap();
    let mut versions = VersionCache::default();
    store.commit(&[&ws(&t, 1, "a", 0, 10, 1)], 0, None, &mut versions).unwrap();
    store.make_durable().unwrap();
    store.checkpoint().unwrap();
    store.checkpoint().unwrap();
    // Two batches after the checkpoint, durable in the log only; then the process dies.
    store.commit(&[&ws(&t, 2, "a", 1, 11, 2), &ws(&t, 3, "b", 0, 20, 0)], 1, None, &mut versions).unwrap();
    store.commit(&[&ws(&t, 4, "b", 1, 21, 1)], 3, None, &mut versions).unwrap();
    store.make_durable().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), crashed.path());
    drop(t);
    drop(store);
    let store = open(crashed.path());
    let t = store.service("svc", "agg").unwrap();
    assert_eq!(value_of(&store, &t, "a"), Some((2, 11)));
    assert_eq!(value_of(&store, &t, "b"), Some((2, 21)));
    for m in 1..=4 {
        assert!(store.inbox_record(&t, &id(m)).unwrap().is_some(), "message {m}");
    }
    assert_eq!(store.outbox_scan(0, u64::MAX, 100).unwrap().len(), 4);
    assert_eq!(store.next_outbox_seq().unwrap(), 4);
    // Replay is idempotent: a second crash right after it changes nothing.
    let again = tempfile::tempdir().unwrap();
    copy_dir(crashed.path(), again.path());
    let store2 = open(again.path());
    let t2 = store2.service("svc", "agg").unwrap();
    assert_eq!(value_of(&store2, &t2, "b"), Some((2, 21)));
}

#[test]
fn checkpoints_trim_the_commit_log_and_a_refusing_store_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store.service("svc", "agg").unwrap();
    let mut versions = VersionCache::default();
    for m in 0..50u8 {
        store.commit(&[&ws(&t, m, &format!("k{m}"), 0, 1, 1)], u64::from(m), None, &mut versions).unwrap();
    }
    let log_bytes = |d: &Path| -> u64 {
        std::fs::read_dir(d.join("wal")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
    };
    assert!(log_bytes(dir.path()) > 0);
    store.flush().unwrap();
    assert_eq!(log_bytes(dir.path()), 0, "everything is in sled now");
    let before = store.digest().unwrap();
    store.refuse_writes("test");
    let r = store.commit(&[&ws(&t, 99, "z", 0, 1, 1)], 50, None, &mut versions);
    assert!(matches!(r, Err(StoreError::Storage(_))), "{r:?}");
    assert_eq!(store.digest().unwrap(), before);
}

/// A crash snapshot taken while the store runs: the log first, then the rest, as a crash would
/// leave them (copying the log after sled could miss segments a later checkpoint deleted,
/// which no real crash can do).
fn snapshot(from: &Path, to: &Path) {
    copy_dir(&from.join("wal"), &to.join("wal"));
    copy_dir_except(from, to, "wal");
}

#[test]
fn crashes_during_concurrent_commits_and_checkpoints_keep_every_durable_batch() {
    use std::sync::atomic::AtomicBool;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store.service("svc", "agg").unwrap();
    let durable = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, t, durable, stop) = (store.clone(), t.clone(), durable.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut versions = VersionCache::default();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let mut w = ws(&t, 0, &format!("k{n:08}"), 0, n, 1);
                w.inbox = Some(InboxWrite {
                    id: MessageId::from_bytes((u128::from(n) << 8).to_be_bytes()),
                    recorded_at_ms: 1000,
                    record: InboxRecord { recorded_at_ms: 1000, reply: None }.encode().unwrap(),
                });
                store.commit(&[&w], n - 1, None, &mut versions).unwrap();
                store.make_durable().unwrap();
                durable.store(n, Ordering::Release);
            }
        })
    };
    // Two checkpointers, as when the pruner checkpoints beside the committer's.
    let checkpointers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    store.checkpoint().unwrap();
                }
            })
        })
        .collect();
    let mut snaps = Vec::new();
    for _ in 0..8 {
        std::thread::sleep(std::time::Duration::from_millis(30));
        let at = durable.load(Ordering::Acquire);
        let copy = tempfile::tempdir().unwrap();
        snapshot(dir.path(), copy.path());
        snaps.push((at, copy));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    for c in checkpointers {
        c.join().unwrap();
    }
    assert!(snaps.last().unwrap().0 > 20, "the writer made progress");
    for (at, copy) in snaps {
        let s = open(copy.path());
        let t = s.service("svc", "agg").unwrap();
        for n in (1..=at).step_by(7).chain(std::iter::once(at)) {
            assert_eq!(value_of(&s, &t, &format!("k{n:08}")), Some((1, n)), "batch {n} of {at} durable ones");
        }
        assert!(s.next_outbox_seq().unwrap() >= at, "outbox numbering covers the durable batches");
    }
}

#[derive(Debug, Clone)]
enum Op {
    Commit(Vec<(u8, u8, bool, usize)>),
    Restart,
    /// The process dies: the store reopens from what is on disk now.
    Crash,
    Checkpoint,
    Prune(u64),
    /// The relay's acknowledgements: the entries at these positions of the outbox go.
    Deliver(Vec<usize>),
    /// The relay records a failed attempt: the entry at this position is rewritten.
    Attempt(usize, u8),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0u8..24, 0u8..4, any::<bool>(), 0usize..3), 1..6).prop_map(Op::Commit),
        1 => Just(Op::Restart),
        2 => Just(Op::Crash),
        1 => Just(Op::Checkpoint),
        1 => (1000u64..1030).prop_map(Op::Prune),
        3 => prop::collection::vec(0usize..8, 1..4).prop_map(Op::Deliver),
        1 => (0usize..8, any::<u8>()).prop_map(|(at, b)| Op::Attempt(at, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The store against a BTreeMap model, through commits (with duplicates and stale
    /// versions), restarts, crashes (the directory as a kill -9 would leave it), checkpoints
    /// and pruning.
    #[test]
    fn the_store_behaves_like_its_model(ops in prop::collection::vec(arb_op(), 1..25)) {
        let mut dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let mut t = store.service("svc", "agg").unwrap();
        let mut states: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut inbox: BTreeMap<u8, u64> = BTreeMap::new();
        let mut outbox: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut next = store.next_outbox_seq().unwrap();
        let mut value = 0u64;
        let mut versions = VersionCache::default();
        for op in ops {
            match op {
                Op::Commit(specs) => {
                    let mut batch = Vec::new();
                    let mut pending_states = states.clone();
                    let mut pending_inbox = inbox.clone();
                    let mut expect = Vec::new();
                    let mut seq = next;
                    for (msg, key, stale, n_out) in specs {
                        value += 1;
                        let key = format!("k{key}");
                        let cur = pending_states.get(&key).map_or(0, |s| s.0);
                        let expected = if stale { cur + 1 } else { cur };
                        batch.push(ws(&t, msg, &key, expected, value, n_out));
                        if pending_inbox.contains_key(&msg) {
                            expect.push("dup");
                        } else if stale {
                            expect.push("conflict");
                        } else {
                            pending_inbox.entry(msg).or_insert(1000 + u64::from(msg));
                            pending_states.insert(key, (cur + 1, value));
                            for i in 0..n_out {
                                outbox.insert(seq, vec![msg, u8::try_from(i).unwrap()]);
                                seq += 1;
                            }
                            expect.push("written");
                        }
                    }
                    let refs: Vec<&WriteSet> = batch.iter().collect();
                    let (applied, new_next) = store.commit(&refs, next, None, &mut versions).unwrap();
                    store.make_durable().unwrap();
                    for (a, e) in applied.iter().zip(&expect) {
                        let got = match a { Applied::Written { .. } => "written", Applied::Duplicate(_) => "dup", Applied::Conflict(_) => "conflict" };
                        prop_assert_eq!(got, *e);
                    }
                    prop_assert_eq!(new_next, seq);
                    next = new_next;
                    states = pending_states;
                    inbox = pending_inbox;
                }
                Op::Restart => {
                    drop(t);
                    drop(store);
                    versions = VersionCache::default();
                    store = open(dir.path());
                    t = store.service("svc", "agg").unwrap();
                    prop_assert_eq!(store.next_outbox_seq().unwrap(), next);
                }
                Op::Crash => {
                    let crashed = tempfile::tempdir().unwrap();
                    copy_dir(dir.path(), crashed.path());
                    drop(t);
                    drop(store);
                    dir = crashed;
                    versions = VersionCache::default();
                    store = open(dir.path());
                    t = store.service("svc", "agg").unwrap();
                    prop_assert_eq!(store.next_outbox_seq().unwrap(), next);
                }
                Op::Checkpoint => store.checkpoint().unwrap(),
                Op::Deliver(at) => {
                    let seqs: Vec<u64> = outbox.keys().copied().collect();
                    let gone: BTreeSet<u64> = at.iter().filter_map(|i| seqs.get(*i).copied()).collect();
                    let w = WriteSet { outbox_removals: gone.iter().copied().collect(), ..WriteSet::default() };
                    store.commit(&[&w], next, None, &mut versions).unwrap();
                    store.make_durable().unwrap();
                    outbox.retain(|s, _| !gone.contains(s));
                }
                Op::Attempt(at, b) => {
                    if let Some(seq) = outbox.keys().nth(at).copied() {
                        let w = WriteSet { outbox_updates: vec![(seq, vec![b, b, b])], ..WriteSet::default() };
                        store.commit(&[&w], next, None, &mut versions).unwrap();
                        store.make_durable().unwrap();
                        outbox.insert(seq, vec![b, b, b]);
                    }
                }
                Op::Prune(cutoff) => {
                    store.prune_inbox(&t, cutoff).unwrap();
                    // Generations of 10 ms wholly before the cut-off go.
                    inbox.retain(|_, at| (*at / 10 + 1) * 10 > cutoff);
                }
            }
            for k in 0..4 {
                let key = format!("k{k}");
                prop_assert_eq!(value_of(&store, &t, &key), states.get(&key).copied());
            }
            for m in 0..24u8 {
                prop_assert_eq!(store.inbox_record(&t, &id(m)).unwrap().is_some(), inbox.contains_key(&m));
            }
            let stored: BTreeMap<u64, Vec<u8>> = store.outbox_scan(0, u64::MAX, usize::MAX).unwrap().into_iter().collect();
            prop_assert_eq!(&stored, &outbox);
            prop_assert_eq!(store.outbox_len(), outbox.len());
        }
    }
}

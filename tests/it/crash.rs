//! Crash tests: the real binary writes through the pipeline and is killed with SIGKILL at a
//! seeded random moment; the data directory must hold every acknowledged write and no half of a
//! write set. `BAZAAR_CRASH_SEEDS=N` runs N seeds (default 3).

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use bazaar::actors::catalogue::{ProjectionQuery, StockProjectionKind};
use bazaar::actors::kind::EntityKind;
use bazaar::actors::order::OrderKind;
use bazaar::actors::stock::StockItemKind;
use bazaar::app::node::NodeBuilder;
use bazaar::domain::stock::StockItem;
use bazaar::domain::{Ctx, NodeId};
use bazaar::persistence::StateSource;
use bazaar::persistence::{Durability, OutboxEntry, Store, StoreOptions, Topic};
use bazaar::tools::loadgen;

use crate::support::{self, eventually, mid};

const WRITERS: usize = 8;

fn seeds() -> Vec<u64> {
    let n: u64 = std::env::var("BAZAAR_CRASH_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    (1..=n).collect()
}

/// What a child process wrote to its stderr (read on a thread so the pipe never fills).
struct Stderr(std::thread::JoinHandle<String>);

impl Stderr {
    fn of(child: &mut std::process::Child) -> Stderr {
        let mut pipe = child.stderr.take().expect("stderr is piped");
        Stderr(std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
            text
        }))
    }

    fn text(self) -> String {
        self.0.join().unwrap_or_default()
    }
}

/// Asserts that the kill lands mid-write: the loadgen reached `wanted` acknowledgements and was
/// still running (a loadgen that failed to start, or finished, would make every check pass on a
/// store that saw nothing of a crash).
fn assert_killed_mid_run(child: &mut std::process::Child, got: usize, wanted: usize, stderr: Stderr) -> Stderr {
    let running = child.try_wait().map(|s| s.is_none()).unwrap_or(false);
    if got < wanted || !running {
        let _ = child.kill();
        let _ = child.wait();
        panic!("loadgen stopped before the kill ({got} of {wanted} acknowledgements): {}", stderr.text());
    }
    stderr
}

/// Runs `bazaar loadgen` until it acknowledged `kill_after` writes, kills it with SIGKILL, and
/// returns the highest acknowledged command number per writer.
fn run_and_kill(dir: &std::path::Path, seed: u64, kill_after: usize) -> HashMap<usize, u64> {
    let mut child = loadgen(&["--writers", &WRITERS.to_string(), "--ops", "1000000", "--seed", &seed.to_string()], dir);
    let stderr = Stderr::of(&mut child);
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut acked: HashMap<usize, u64> = HashMap::new();
    let mut count = 0;
    let record = |line: &str, acked: &mut HashMap<usize, u64>| {
        let mut parts = line.split_whitespace();
        if parts.next() == Some("ack") {
            let w: usize = parts.next().unwrap().parse().unwrap();
            let n: u64 = parts.next().unwrap().parse().unwrap();
            let e = acked.entry(w).or_insert(0);
            *e = (*e).max(n);
            true
        } else {
            false
        }
    };
    for line in lines.by_ref() {
        let line = line.unwrap();
        if record(&line, &mut acked) {
            count += 1;
            if count >= kill_after {
                break;
            }
        }
    }
    let _stderr = assert_killed_mid_run(&mut child, count, kill_after, stderr);
    child.kill().unwrap(); // SIGKILL on Unix
                           // Acknowledgements already in the pipe were given before the kill: they count too.
    for line in lines.map_while(Result::ok) {
        record(&line, &mut acked);
    }
    child.wait().unwrap();
    acked
}

/// `bazaar loadgen ARGS --data-dir DIR`, its output piped.
fn loadgen(args: &[&str], dir: &std::path::Path) -> std::process::Child {
    support::bazaar()
        .arg("loadgen")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bazaar loadgen")
}
#[test]
fn acknowledged_writes_survive_sigkill_and_no_write_set_is_half_applied() {
    for seed in seeds() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let kill_after = rng.gen_range(20..3000);
        let dir = tempfile::tempdir().unwrap();
        let acked = run_and_kill(dir.path(), seed, kill_after);
        let stored = check_after_crash(dir.path(), seed, &acked)
            .unwrap_or_else(|e| panic!("seed {seed} (killed after {kill_after} acks): {e}"));
        resume_and_drain(dir.path(), &stored);
    }
}

/// Checks the data directory against the schedule; returns each writer's stored version.
fn check_after_crash(dir: &std::path::Path, seed: u64, acked: &HashMap<usize, u64>) -> Result<Vec<u64>, String> {
    let store = Store::open(dir, &StoreOptions::default()).map_err(|e| e.to_string())?;
    let report = bazaar::tools::verify::verify_store(&store).map_err(|e| e.to_string())?;
    if !report.problems.is_empty() {
        return Err(format!("verify found problems: {:?}", report.problems));
    }
    let stock = store.service(StockItemKind::SERVICE, StockItemKind::AGGREGATE).map_err(|e| e.to_string())?;
    let proj =
        store.service(StockProjectionKind::SERVICE, StockProjectionKind::AGGREGATE).map_err(|e| e.to_string())?;
    let mut outbox: HashMap<String, BTreeSet<u64>> = HashMap::new();
    for (_, raw) in store.outbox_scan(0, u64::MAX, usize::MAX).map_err(|e| e.to_string())? {
        let e = OutboxEntry::decode(&raw).map_err(|e| e.to_string())?;
        assert_eq!(e.envelope.topic, Topic::StockItem);
        outbox.entry(e.envelope.aggregate_id.clone()).or_default().insert(e.envelope.aggregate_version);
    }
    let ctx =
        Ctx { now_ms: 0, node: NodeId::parse("check").unwrap(), cause: bazaar::domain::MessageId::from_bytes([0; 16]) };
    let mut versions = Vec::new();
    for w in 0..WRITERS {
        let sku = loadgen::sku(w);
        let (version, item) = match store.load_aggregate(&stock, sku.as_str().as_bytes()).map_err(|e| e.to_string())? {
            None => (0, StockItem::new(sku.clone())),
            Some((h, body)) => {
                (h.version, StockItemKind::decode_state(&sku, h.schema, &body).map_err(|e| e.to_string())?)
            }
        };
        let acked_n = acked.get(&w).copied().unwrap_or(0);
        if version < acked_n {
            return Err(format!("{sku}: command {acked_n} was acknowledged but the store is at version {version}"));
        }
        // The stored state is exactly the schedule's first `version` commands: nothing half-applied.
        let mut model = StockItem::new(sku.clone());
        for n in 1..=version {
            model = model.handle(&loadgen::command(n), &ctx).map_err(|e| format!("schedule {n}: {e}"))?.0;
        }
        if model != item {
            return Err(format!("{sku}: stored state at v{version} differs from the schedule's"));
        }
        // The inbox holds exactly the ids of the commands that took effect.
        for n in 1..=version + 3 {
            let present =
                store.inbox_record(&stock, &loadgen::message_id(seed, &sku, n)).map_err(|e| e.to_string())?.is_some();
            if present != (n <= version) {
                return Err(format!("{sku}: inbox has id of command {n}: {present}, version {version}"));
            }
        }
        // Every event of a stored version is either still in the outbox or already applied by
        // the projection; none exists beyond the stored version.
        let applied = match store.load_aggregate(&proj, sku.as_str().as_bytes()).map_err(|e| e.to_string())? {
            None => 0,
            Some((_, body)) => {
                StockProjectionKind::decode_state(&sku, 1, &body).map_err(|e| e.to_string())?.stock_version
            }
        };
        let pending = outbox.remove(sku.as_str()).unwrap_or_default();
        if applied > version {
            return Err(format!("{sku}: projection at v{applied} is ahead of the item at v{version}"));
        }
        if let Some(beyond) = pending.iter().find(|v| **v > version) {
            return Err(format!("{sku}: outbox holds an event of v{beyond} but the item is at v{version}"));
        }
        for v in applied + 1..=version {
            if !pending.contains(&v) {
                return Err(format!("{sku}: the event of v{v} is neither delivered nor in the outbox"));
            }
        }
        versions.push(version);
    }
    if !outbox.is_empty() {
        return Err(format!("outbox holds events of unknown items: {:?}", outbox.keys().collect::<Vec<_>>()));
    }
    Ok(versions)
}

/// A node started on the crashed directory delivers everything left in the outbox.
fn resume_and_drain(dir: &std::path::Path, versions: &[u64]) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let node = NodeBuilder::store(support::options(dir, Durability::Flush)).start().await.unwrap();
        let proj = node.service::<StockProjectionKind>().unwrap();
        for (w, v) in versions.iter().enumerate() {
            let sku = loadgen::sku(w);
            eventually("the projection catches up after the crash", || async {
                proj.command(&sku, mid(), ProjectionQuery::Get).await.unwrap().stock_version == *v
            })
            .await;
        }
        eventually("the outbox drains", || async { node.store().outbox_len() == 0 }).await;
        node.shutdown().await;
    });
}

/// Runs `bazaar loadgen --workload saga` until `kill_after` orders were paid, kills it with
/// SIGKILL mid-sagas, and returns the orders it reported paid.
fn run_sagas_and_kill(dir: &std::path::Path, seed: u64, kill_after: usize) -> Vec<String> {
    let timeouts = ["--booking-timeout-ms", "2000", "--payment-timeout-ms", "2000"];
    let seed_text = seed.to_string();
    let mut args = vec!["--workload", "saga", "--writers", "12", "--ops", "100000", "--seed", seed_text.as_str()];
    args.extend(timeouts);
    let mut child = loadgen(&args, dir);
    let stderr = Stderr::of(&mut child);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut paid = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(o) = line.strip_prefix("paid ") {
            paid.push(o.to_owned());
            if paid.len() >= kill_after {
                break;
            }
        }
    }
    let _stderr = assert_killed_mid_run(&mut child, paid.len(), kill_after, stderr);
    child.kill().unwrap();
    for line in lines.map_while(Result::ok) {
        if let Some(o) = line.strip_prefix("paid ") {
            paid.push(o.to_owned());
        }
    }
    child.wait().unwrap();
    paid
}

#[test]
fn sagas_killed_with_sigkill_all_finish_after_a_restart() {
    for seed in seeds() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
        let kill_after = rng.gen_range(5..80);
        let dir = tempfile::tempdir().unwrap();
        let paid = run_sagas_and_kill(dir.path(), seed, kill_after);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let mut o = support::options(dir.path(), Durability::Flush);
            o.deadlines = bazaar::domain::order::Deadlines { booking_ms: 2000, payment_ms: 2000 };
            let node = NodeBuilder::store(o).start().await.unwrap();
            let shop = bazaar::app::shop::Shop::new(&node).unwrap();
            // Every saga ends: paid, or cancelled by its deadline; nothing is left in flight.
            eventually("every saga finished", || async {
                let orders = node.store().states("order", "order").unwrap();
                let all_settled = orders.iter().all(|(k, schema, body)| {
                    let key = bazaar::domain::OrderId::parse(k).unwrap();
                    let o = OrderKind::decode_state(&key, *schema, body).unwrap().unwrap();
                    !o.status.is_unpaid()
                });
                all_settled && node.store().outbox_len() == 0
            })
            .await;
            let orders = node.store().states("order", "order").unwrap();
            assert!(!orders.is_empty());
            let report = shop.invariants().whole().unwrap();
            assert!(report.ok, "seed {seed}: {:#?}", report.violations());
            for o in &paid {
                let order = shop.order(&bazaar::domain::OrderId::parse(o).unwrap()).await.unwrap();
                assert!(order.status.is_paid(), "seed {seed}: {o} was reported paid but is {}", order.status.name());
            }
            drop(shop);
            node.shutdown().await;
        });
    }
}

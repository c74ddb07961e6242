//! `cargo bench --bench engine`: the transactional unit (inbox check + insert, aggregate
//! read-modify-write at version + 1, outbox append) through the real pipeline — stock item
//! actors, the node's committer, sled on disk, the relay delivering to a subscriber — at 1 and 64
//! concurrent entities, for durability flush (acknowledged after the commit log's `fdatasync`:
//! what survives a power cut, like PostgreSQL's synchronous_commit=on) and none. Each writer is
//! one client that waits for each acknowledgement before sending its next command (like one
//! pgbench client).
//!
//! Prints one line per setting: `engine durability=flush writers=64: 23456 commits/s` (median of
//! `BAZAAR_BENCH_RUNS` runs, default 5, of `BAZAAR_BENCH_SECS` seconds each, default 4), then the
//! average batch size and the process's peak RSS. Data goes to a fresh directory under
//! `BAZAAR_BENCH_DIR` (default: target/bench-data), on the project's disk.
//! `BAZAAR_BENCH_ONLY=flush:64` runs one setting only (for profiling); `BAZAAR_BENCH_VERBOSE=1`
//! prints, per run, the committer's and the syncer's time per write set and how busy each was.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

// The same allocator as the `bazaar` binary: sled allocates per operation, and mimalloc took
// ~8% off the committer's time per write set against glibc's malloc in this bench.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bazaar::actors::stock::StockItemKind;
use bazaar::app::node::{NodeBuilder, NodeOptions};
use bazaar::domain::NodeId;
use bazaar::persistence::{DeliveryError, Durability, Envelope, Subscriber, Topic};
use bazaar::tools::loadgen;

/// A subscriber standing for an external consumer (a broker forwarder): it acknowledges at once,
/// so the relay's delivery and deletion work is part of the measurement.
struct Sink(Arc<AtomicU64>);

impl Subscriber for Sink {
    fn deliver(&self, _env: Envelope) -> BoxFuture<'static, Result<(), DeliveryError>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct RunResult {
    commits_per_s: f64,
    batch_avg: f64,
    /// Events the relay delivered inside the measured window, of those produced in it.
    delivered_in_window: u64,
    produced_in_window: u64,
    /// Events produced but not yet delivered when the window closed.
    backlog_at_end: u64,
}

async fn one_run(base: &std::path::Path, durability: Durability, writers: usize, secs: u64, run: u64) -> RunResult {
    let dir = base.join(format!("{}-{writers}-{run}", durability.name()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = NodeOptions::single(NodeId::parse("bench").expect("valid"), dir.clone()).with_durability(durability);
    let delivered = Arc::new(AtomicU64::new(0));
    // Only the stock item service and a sink: one write set per command, the transactional
    // unit alone (the full store would add the catalogue projection's write set per event).
    let node = NodeBuilder::new(opts)
        .service::<StockItemKind>()
        .subscriber("sink", Topic::StockItem, Arc::new(Sink(delivered.clone())))
        .start()
        .await
        .expect("node starts");
    let stock = node.service::<StockItemKind>().expect("stock service");
    let acks = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let a2 = acks.clone();
    let on_ack: Arc<dyn Fn(usize, u64) + Send + Sync> = Arc::new(move |_, _| {
        a2.fetch_add(1, Ordering::Relaxed);
    });
    let load = {
        let (stock, stop) = (stock.clone(), stop.clone());
        tokio::spawn(async move { loadgen::run(&stock, run, writers, u64::MAX, stop, on_ack).await })
    };
    // Warm up (entity activation, sled's first segments), then measure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = node.committer().stats();
    let (b0, w0) = (stats.batches.load(Ordering::Relaxed), stats.write_sets.load(Ordering::Relaxed));
    let (cm0, du0) = (stats.commit_us.load(Ordering::Relaxed), stats.durable_us.load(Ordering::Relaxed));
    let (a0, d0) = (acks.load(Ordering::Relaxed), delivered.load(Ordering::Relaxed));
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (a1, d1) = (acks.load(Ordering::Relaxed), delivered.load(Ordering::Relaxed));
    let elapsed = t0.elapsed().as_secs_f64();
    let (b1, w1) = (stats.batches.load(Ordering::Relaxed), stats.write_sets.load(Ordering::Relaxed));
    let (cm1, du1) = (stats.commit_us.load(Ordering::Relaxed), stats.durable_us.load(Ordering::Relaxed));
    if std::env::var("BAZAAR_BENCH_VERBOSE").is_ok() {
        let ws = (w1 - w0).max(1) as f64;
        eprintln!(
            "  commit {:.1} us/ws (committer {:.0}% busy), fdatasync {:.1} us/ws (syncer {:.0}% busy), {:.2} write sets per command",
            (cm1 - cm0) as f64 / ws,
            ((cm1 - cm0) as f64 / 1e6) / elapsed * 100.0,
            (du1 - du0) as f64 / ws,
            ((du1 - du0) as f64 / 1e6) / elapsed * 100.0,
            ws / (a1 - a0).max(1) as f64
        );
    }
    stop.store(true, Ordering::Relaxed);
    match load.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("load failed: {e}"),
        Err(e) => panic!("load task failed: {e}"),
    }
    // Every event produced is delivered before the node stops: the relay kept up, or the figure
    // would count work it left behind.
    let produced = acks.load(Ordering::Relaxed);
    let drain = Instant::now() + Duration::from_secs(60);
    while delivered.load(Ordering::Relaxed) < produced || node.store().outbox_len() > 0 {
        let got = delivered.load(Ordering::Relaxed);
        assert!(Instant::now() < drain, "the relay did not deliver every event ({got} of {produced})");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stock);
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let batches = (b1 - b0).max(1);
    RunResult {
        commits_per_s: (a1 - a0) as f64 / elapsed,
        batch_avg: (w1 - w0) as f64 / batches as f64,
        delivered_in_window: d1 - d0,
        produced_in_window: a1 - a0,
        backlog_at_end: a1.saturating_sub(d1),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported, everything runs.
    let runs = env_u64("BAZAAR_BENCH_RUNS", 5).max(1);
    let secs = env_u64("BAZAAR_BENCH_SECS", 4).max(1);
    let base = std::env::var("BAZAAR_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data"));
    std::fs::create_dir_all(&base).expect("bench dir");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!(
        "engine bench: {runs} runs x {secs} s per setting, {} cores, data in {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        base.display()
    );
    // `BAZAAR_BENCH_ONLY=flush:64` runs one setting (for profiling).
    let only = std::env::var("BAZAAR_BENCH_ONLY").ok();
    // flush (durable on disk, the default) and none (handed to the OS, for comparison).
    for durability in [Durability::Flush, Durability::None] {
        for writers in [1usize, 64] {
            if only.as_deref().is_some_and(|o| o != format!("{}:{writers}", durability.name())) {
                continue;
            }
            let mut rates = Vec::new();
            let mut batches = Vec::new();
            let mut relay = Vec::new();
            for run in 0..runs {
                let r = rt.block_on(one_run(&base, durability, writers, secs, run));
                assert!(r.delivered_in_window > 0, "the relay delivered nothing in the window");
                rates.push(r.commits_per_s);
                batches.push(r.batch_avg);
                relay
                    .push(format!("{}/{} (backlog {})", r.delivered_in_window, r.produced_in_window, r.backlog_at_end));
            }
            let med = median(rates.clone());
            let runs_txt: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
            println!("engine durability={} writers={writers}: {med:.0} commits/s", durability.name());
            println!("  runs: [{}], median batch {:.1} write sets", runs_txt.join(", "), median(batches));
            println!("  relay, events delivered/produced in each window: [{}]", relay.join(", "));
        }
    }
    match peak_rss_kib() {
        Some(kib) => println!("engine peak RSS: {} MiB", kib / 1024),
        None => println!("engine peak RSS: unknown (no /proc/self/status)"),
    }
}

//! `cargo bench --bench saga`: whole sagas in-process, from order creation to PAID, with 64
//! concurrent customers (each places an order, waits until it is payable, pays it in full
//! through the sandbox callback, waits until the order is PAID, and starts the next). Every
//! service runs: gate, order, price list, stock booking and items, catalogue projection,
//! payment, shipping, notification with its sender (log sink).
//!
//! Prints `saga durability=flush customers=64: N sagas/s, M steps/s` (steps = durable messages
//! handled, i.e. write sets committed: commands and events alike), medians of
//! `BAZAAR_BENCH_RUNS` runs (default 3) of `BAZAAR_BENCH_SECS` seconds (default 5), for
//! durability flush and none, and the peak RSS. Each setting also prints the runs, the steps
//! per saga and the process's CPU time per saga (user + system, median), which varies less
//! than sagas/s on a shared machine.
//!
//! Knobs: `BAZAAR_BENCH_ONLY=flush|none`, `BAZAAR_BENCH_CUSTOMERS`, `BAZAAR_BENCH_LIVE_MAX`
//! (live entities per service), `BAZAAR_BENCH_CACHE_MIB` (sled's page cache),
//! `BAZAAR_BENCH_VERBOSE=1` (CPU by thread, entity activations and outbox entries per saga; the
//! commit pipeline's batches, the committer's time deciding, logging and applying them, and the
//! syncer's `fdatasync`s). `BAZAAR_BENCH_SAGAS=N` runs a fixed number of sagas instead of a
//! time (for instruction counts under callgrind).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bazaar::app::node::{NodeBuilder, NodeOptions};
use bazaar::app::shop::Shop;
use bazaar::domain::{MessageId, NodeId, Qty};
use bazaar::persistence::Durability;
use bazaar::tools::loadgen::{self, SagaEnd};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

async fn one_run(base: &Path, durability: Durability, customers: usize, secs: u64, run: u64) -> (f64, f64, u64, f64) {
    let dir = base.join(format!("saga-{}-{customers}-{run}", durability.name()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut opts = NodeOptions::single(NodeId::parse("bench").expect("valid"), dir.clone()).with_durability(durability);
    opts.payment_secret = b"bench".to_vec();
    if let Ok(v) = std::env::var("BAZAAR_BENCH_CACHE_MIB") {
        opts.store.cache_bytes = v.parse::<u64>().expect("a number") << 20;
    }
    if let Ok(v) = std::env::var("BAZAAR_BENCH_LIVE_MAX") {
        opts.entities.live_max = v.parse().expect("a number");
    }
    let node = NodeBuilder::store(opts).start().await.expect("node starts");
    let shop = Shop::new(&node).expect("shop");
    loadgen::prepare_sagas(&shop, customers).await.expect("catalogue");
    let paid = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // With BAZAAR_BENCH_SAGAS=N the run is a fixed amount of work (N sagas, then stop), for
    // instruction counts under callgrind rather than a rate.
    let quota = env_u64("BAZAAR_BENCH_SAGAS", 0);
    let started = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..customers {
        let (shop, paid, failed, stop) = (shop.clone(), paid.clone(), failed.clone(), stop.clone());
        let started = started.clone();
        tasks.push(tokio::spawn(async move {
            let c = loadgen::saga_customer(i);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && (quota == 0 || started.fetch_add(1, Ordering::Relaxed) < quota) {
                n += 1;
                let items = [(
                    loadgen::saga_product((i + usize::try_from(n).unwrap_or(0)) % loadgen::SAGA_PRODUCTS),
                    Qty::new(1),
                )];
                let id = MessageId::derived(&[b"bench", &run.to_be_bytes(), c.as_str().as_bytes(), &n.to_be_bytes()]);
                match loadgen::one_saga(&shop, id, &c, &items, 5).await {
                    Ok(SagaEnd::Paid(_)) => paid.fetch_add(1, Ordering::Relaxed),
                    Ok(SagaEnd::Cancelled(_)) | Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    if quota > 0 {
        let t0 = Instant::now();
        for t in tasks {
            let _ = t.await;
        }
        let el = t0.elapsed().as_secs_f64();
        let n = paid.load(Ordering::Relaxed);
        let w = node.committer().stats().write_sets.load(Ordering::Relaxed);
        drop(shop);
        node.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
        return (n as f64 / el, w as f64 / el, failed.load(Ordering::Relaxed), 0.0);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats = node.committer().stats();
    let (p0, w0, t0) = (paid.load(Ordering::Relaxed), stats.write_sets.load(Ordering::Relaxed), Instant::now());
    let c0 = cpu_ticks();
    let names = ["bazaar-committe", "bazaar-syncer", "tokio-rt-worker", "sled-io"];
    let th0 = names.map(thread_ticks);
    let activations = |n: &bazaar::app::node::Node| -> Vec<(u64, u64)> {
        n.service_stats()
            .iter()
            .map(|(_, s)| (s.activations.load(Ordering::Relaxed), s.activation_us.load(Ordering::Relaxed)))
            .collect()
    };
    let a0 = activations(&node);
    let pipeline = |s: &bazaar::persistence::CommitStats| {
        [&s.batches, &s.commit_us, &s.durable_us, &s.syncs].map(|c| c.load(Ordering::Relaxed))
    };
    let k0 = pipeline(stats);
    let seq0 = node.committer().durable_end();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (p1, w1, el) =
        (paid.load(Ordering::Relaxed), stats.write_sets.load(Ordering::Relaxed), t0.elapsed().as_secs_f64());
    let cpu_ms = (cpu_ticks() - c0) * 10;
    if std::env::var("BAZAAR_BENCH_VERBOSE").is_ok() {
        let k1 = pipeline(stats);
        let th1 = names.map(thread_ticks);
        println!(
            "  CPU by thread: committer {:.0}%, syncer {:.0}%, tokio workers {:.0}%, sled io {:.0}% (of one core)",
            (th1[0] - th0[0]) as f64 / el,
            (th1[1] - th0[1]) as f64 / el,
            (th1[2] - th0[2]) as f64 / el,
            (th1[3] - th0[3]) as f64 / el
        );
        let a1 = activations(&node);
        let (mut n, mut us) = (0, 0);
        for (before, after) in a0.iter().zip(&a1) {
            n += after.0 - before.0;
            us += after.1 - before.1;
        }
        println!(
            "  entity activations: {:.1} per saga, {:.0} µs of the supervisor's time each",
            n as f64 / (p1 - p0).max(1) as f64,
            us as f64 / n.max(1) as f64
        );
        let b = (k1[0] - k0[0]).max(1);
        println!(
            "  outbox entries per saga: {:.1}",
            (node.committer().durable_end() - seq0) as f64 / (p1 - p0).max(1) as f64
        );
        let syncs = (k1[3] - k0[3]).max(1);
        println!(
            "  pipeline: {:.0} batches/s of {:.1} write sets, {} µs deciding, logging and applying each (committer {:.0}% busy); {:.0} fdatasyncs/s of {} µs (syncer {:.0}% busy)",
            b as f64 / el,
            (w1 - w0) as f64 / b as f64,
            (k1[1] - k0[1]) / b,
            (k1[1] - k0[1]) as f64 / (el * 1e4),
            syncs as f64 / el,
            (k1[2] - k0[2]) / syncs,
            (k1[2] - k0[2]) as f64 / (el * 1e4)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    drop(shop);
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let cpu_us_per_saga = (cpu_ms * 1000) as f64 / (p1 - p0).max(1) as f64;
    ((p1 - p0) as f64 / el, (w1 - w0) as f64 / el, failed.load(Ordering::Relaxed), cpu_us_per_saga)
}

/// CPU time (user + system) the process used so far, in clock ticks of 10 ms.
fn cpu_ticks() -> u64 {
    stat_ticks("/proc/self/stat")
}

/// CPU ticks of the process's threads named `name` (e.g. the committer).
fn thread_ticks(name: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return 0 };
    dir.flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end().starts_with(name)))
        .map(|t| stat_ticks(&t.path().join("stat").to_string_lossy()))
        .sum()
}

fn stat_ticks(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let runs = env_u64("BAZAAR_BENCH_RUNS", 3).max(1);
    let secs = env_u64("BAZAAR_BENCH_SECS", 5).max(1);
    let customers = usize::try_from(env_u64("BAZAAR_BENCH_CUSTOMERS", 64)).unwrap_or(64);
    let base = std::env::var("BAZAAR_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data"));
    std::fs::create_dir_all(&base).expect("bench dir");
    let only = std::env::var("BAZAAR_BENCH_ONLY").ok();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("saga bench: {runs} runs x {secs} s per setting, {customers} customers, data in {}", base.display());
    for durability in [Durability::Flush, Durability::None] {
        if only.as_deref().is_some_and(|o| o != durability.name()) {
            continue;
        }
        let (mut sagas, mut steps, mut failed, mut cpu) = (Vec::new(), Vec::new(), 0, Vec::new());
        for run in 0..runs {
            let (s, w, f, c) = rt.block_on(one_run(&base, durability, customers, secs, run));
            sagas.push(s);
            steps.push(w);
            failed += f;
            cpu.push(c);
        }
        let (ms, mw) = (median(sagas.clone()), median(steps));
        println!("saga durability={} customers={customers}: {ms:.0} sagas/s, {mw:.0} steps/s", durability.name());
        let runs_txt: Vec<String> = sagas.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "  runs: [{}] sagas/s, {:.1} steps per saga, {:.0} µs of CPU per saga, {failed} sagas not paid",
            runs_txt.join(", "),
            mw / ms.max(1.0),
            median(cpu)
        );
    }
    match peak_rss_kib() {
        Some(kib) => println!("saga peak RSS: {} MiB", kib / 1024),
        None => println!("saga peak RSS: unknown"),
    }
}

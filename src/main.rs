//! The `bazaar` command: run a node, generate load, check or repair a data directory.
//! Thin on purpose: parsing and wiring only; everything else is in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::anyhow;

// sled allocates on every operation; mimalloc is measurably faster than glibc's malloc for it
// (see BENCHMARKS.md). Its version 2 (the `v2` feature) gives freed memory back to the system
// once entities are passivated; version 3 kept ~2x more resident after a load (measured).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand};

use bazaar::actors::stock::StockItemKind;
use bazaar::app::node::{NodeBuilder, NodeOptions};
use bazaar::cluster::config::ClusterConfig;
use bazaar::domain::NodeId;
use bazaar::persistence::{relay, Durability, Store, StoreOptions};

/// bazaar: an online book store as an actor system.
#[derive(Parser)]
#[command(name = "bazaar", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (with no flags: a single-node store with its data in ./data).
    Serve(ServeArgs),
    /// Drive the engine with a deterministic stock workload and print each acknowledged write.
    Loadgen(LoadgenArgs),
    /// Check every record of a data directory and the store's invariants (the node must be
    /// stopped). For a cluster, give every node's data directory (--data-dir repeated): the
    /// invariants are the whole store's, over all of them.
    Verify {
        /// The data directory (repeat it for each node of a cluster).
        #[arg(long = "data-dir", default_value = "./data", num_args = 1, action = clap::ArgAction::Append)]
        data_dir: Vec<PathBuf>,
    },
    /// List or replay dead letters of a data directory (the node must be stopped).
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Look at a running cluster.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Ask every node of the cluster file: reachability, configuration digests, partition
    /// owners, outbox depth and dead letters, each node's view of its peers, moves in progress.
    /// Exit 0 when every node answers running the file's configuration.
    Status {
        /// The cluster file.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The cluster file (default: a single node).
    #[arg(long)]
    config: Option<PathBuf>,
    /// This node's name in the cluster file.
    #[arg(long)]
    node: Option<String>,
    /// Where the HTTP front listens (overrides the cluster file; default 127.0.0.1:8080).
    #[arg(long)]
    http: Option<std::net::SocketAddr>,
    /// The data directory (overrides the cluster file; default ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The payment sandbox's callback secret (default: generated and kept in the data dir; a
    /// cluster needs the same one on every node).
    #[arg(long, env = "BAZAAR_PAYMENT_SECRET", hide_env_values = true)]
    payment_secret: Option<String>,
    /// The token signing key, at least 32 bytes (default: `jwt_secret_file` of the cluster file,
    /// else generated and kept in the data dir; a cluster needs the same one on every node).
    #[arg(long, env = "BAZAAR_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Seed demo books, stock, promo codes and one user per role, and print their credentials.
    #[arg(long)]
    demo: bool,
}

#[derive(Subcommand)]
enum UserAction {
    /// Create a user offline (the node must be stopped).
    Add {
        /// The data directory (created if it does not exist).
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// E-mail (the user id).
        #[arg(long)]
        email: String,
        /// Password (8 to 256 characters).
        #[arg(long)]
        password: String,
        /// CUSTOMER, OPERATOR, STOCK_OPERATOR, SHIPPING_OPERATOR or ADMIN.
        #[arg(long)]
        role: String,
    },
}

#[derive(clap::Args)]
struct LoadgenArgs {
    /// The data directory.
    #[arg(long)]
    data_dir: PathBuf,
    /// `stock`: writers drive stock items through a fixed schedule (prints `ack WRITER N`);
    /// `saga`: customers place and pay orders (prints `paid ORDER` / `cancelled ORDER`).
    #[arg(long, default_value = "stock", value_parser = ["stock", "saga"])]
    workload: String,
    /// Concurrent writers (stock) or customers (saga).
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Commands per writer (stock) or orders per customer (saga).
    #[arg(long, default_value_t = 1000)]
    ops: u64,
    /// Saga: how long an order may wait for its booking, ms.
    #[arg(long, default_value_t = bazaar::limits::BOOKING_TIMEOUT_MS)]
    booking_timeout_ms: u64,
    /// Saga: how long a booked order may stay unpaid, ms.
    #[arg(long, default_value_t = bazaar::limits::PAYMENT_TIMEOUT_MS)]
    payment_timeout_ms: u64,
    /// Seed of the message ids (the same seed again changes nothing).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// flush or none (fsync: another name of flush).
    #[arg(long, default_value = "flush", value_parser = parse_durability)]
    durability: Durability,
    /// Most live entity actors per service (default: the node's).
    #[arg(long)]
    live_max: Option<usize>,
    /// Idle time before an entity is passivated, ms (default: the node's).
    #[arg(long)]
    idle_ms: Option<u64>,
    /// sled's page cache, bytes (default: the node's).
    #[arg(long)]
    cache_bytes: Option<u64>,
    /// After the workload, keep the node running this long, s (to watch memory settle while
    /// idle entities are passivated).
    #[arg(long, default_value_t = 0)]
    hold_s: u64,
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// Print every dead letter.
    List {
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Put dead letters back into the outbox (delivered at the node's next start).
    Replay {
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Which dead letters (sequence numbers); none: all.
        seq: Vec<u64>,
    },
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    Durability::parse(s).ok_or_else(|| "expected flush or none".to_owned())
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,tantivy=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal: a log file gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().on_thread_park(give_memory_back).enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("bazaar: cannot start the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bazaar: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How often, at most, a worker thread that goes idle hands its freed memory back, s.
const GIVE_MEMORY_BACK_EVERY_S: u64 = 5;

/// Called when a runtime worker goes idle: at most every `GIVE_MEMORY_BACK_EVERY_S` it asks the
/// allocator to return the pages this thread's heap freed (mimalloc keeps them per thread until
/// that thread allocates again, so after a load, memory freed by passivated entities stayed
/// resident: measured 280 MiB → 175 MiB after 14,400 orders and idle).
fn give_memory_back() {
    thread_local!(static LAST: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) });
    LAST.with(|last| {
        let now = std::time::Instant::now();
        if last.get().is_none_or(|t| now.duration_since(t).as_secs() >= GIVE_MEMORY_BACK_EVERY_S) {
            last.set(Some(now));
            // SAFETY: `mi_collect` only walks and trims the calling thread's own heap.
            unsafe { libmimalloc_sys::mi_collect(true) };
        }
    });
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Loadgen(args) => loadgen(args).await,
        Command::Verify { data_dir } => {
            let stores = data_dir.iter().map(|d| open_existing(d)).collect::<anyhow::Result<Vec<Store>>>()?;
            let mut problems = 0;
            let mut outbox = 0;
            for (dir, store) in data_dir.iter().zip(&stores) {
                let r = bazaar::tools::verify::verify_store(store)?;
                println!(
                    "{}: stock items {}, stock projections {}, outbox entries {}, dead letters {}",
                    dir.display(),
                    r.stock_items,
                    r.stock_projections,
                    r.outbox_entries,
                    r.dead_letters
                );
                for p in &r.problems {
                    println!("PROBLEM {p}");
                }
                problems += r.problems.len();
                outbox += r.outbox_entries;
            }
            // The saga's invariants over every directory given; a stopped node may have events
            // still in its outbox, which the checker counts as not yet delivered rather than lost.
            let now = bazaar::clock::Clock::now_ms(&bazaar::clock::SystemClock);
            let report = bazaar::app::invariants::check(&bazaar::persistence::Union(&stores), now, 60_000);
            for c in &report.checks {
                println!("{} {}", if c.ok { "ok     " } else { "BROKEN " }, c.name);
                for v in &c.violations {
                    println!("        {v}");
                }
            }
            let in_flight = outbox > 0;
            if !report.ok && in_flight {
                println!("note: {outbox} events are still in an outbox; start the nodes to deliver them");
            }
            if !report.ok && stores.len() == 1 {
                println!("note: a node of a cluster holds only its partitions: give every node's --data-dir");
            }
            let ok = problems == 0 && (report.ok || in_flight);
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::DeadLetters { action } => dead_letters(action).await,
        Command::User { action: UserAction::Add { data_dir, email, password, role } } => {
            user_add(data_dir, email, password, role).await
        }
        Command::Cluster { action: ClusterAction::Status { config } } => {
            let cfg = ClusterConfig::load(&config)?;
            let reports = bazaar::tools::cluster_status::ask(&cfg).await.map_err(|e| anyhow!("{e}"))?;
            let (text, all_well) = bazaar::tools::cluster_status::render(&cfg, &reports);
            print!("{text}");
            Ok(if all_well { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// Shortest token signing key taken (HS256 wants a key as long as its hash).
const JWT_SECRET_BYTES_MIN: usize = 32;

/// A cluster's nodes must share the token key and the payment secret (a token issued by one
/// node is checked by another; a callback signed for one is taken by another), so several
/// nodes without both from the operator are refused; a key given is long enough.
fn check_secrets(cluster_size: usize, jwt: Option<&[u8]>, payment: &[u8]) -> anyhow::Result<()> {
    if jwt.is_some_and(|k| k.len() < JWT_SECRET_BYTES_MIN) {
        return Err(anyhow!("the token signing key (--jwt-secret) must be at least {JWT_SECRET_BYTES_MIN} bytes"));
    }
    if cluster_size > 1 && (jwt.is_none() || payment.is_empty()) {
        return Err(anyhow!(
            "a cluster of {cluster_size} nodes needs the same secrets on every node: give --jwt-secret (or \
             BAZAAR_JWT_SECRET, or jwt_secret_file in the cluster file) and --payment-secret (or \
             BAZAAR_PAYMENT_SECRET)"
        ));
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut front = bazaar::cluster::config::HttpConfig::default();
    let mut jwt_secret = args.jwt_secret.clone().filter(|s| !s.is_empty()).map(String::into_bytes);
    let mut cluster_size = 1;
    let (mut opts, mut http) = match &args.config {
        Some(path) => {
            let cfg = ClusterConfig::load(path)?;
            front = cfg.http.clone();
            cluster_size = cfg.nodes.len();
            if let (None, Some(file)) = (&jwt_secret, &cfg.jwt_secret_file) {
                let text =
                    std::fs::read_to_string(file).map_err(|e| anyhow!("jwt_secret_file {}: {e}", file.display()))?;
                jwt_secret = Some(text.trim().as_bytes().to_vec()).filter(|s| !s.is_empty());
            }
            let name = match &args.node {
                Some(n) => n.clone(),
                None if cfg.nodes.len() == 1 => cfg.nodes[0].name.to_string(),
                None => return Err(anyhow!("the config lists several nodes: say which with --node")),
            };
            let http = cfg.node(&name).map(|n| n.http_addr);
            (NodeOptions::from_config(&cfg, &name)?, http)
        }
        None => {
            let name = NodeId::parse(args.node.as_deref().unwrap_or("node-1")).map_err(|e| anyhow!("--node: {e}"))?;
            (NodeOptions::single(name, PathBuf::from("./data")), None)
        }
    };
    if let Some(d) = args.data_dir {
        opts.data_dir = d;
    }
    if let Some(h) = args.http {
        http = Some(h);
    }
    if let Some(s) = args.payment_secret.filter(|s| !s.is_empty()) {
        opts.payment_secret = s.into_bytes();
    }
    check_secrets(cluster_size, jwt_secret.as_deref(), &opts.payment_secret)?;
    let http = http.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 8080)));
    let mut running =
        bazaar::http::server::start(bazaar::http::server::AppOptions { node: opts, http, jwt_secret, front })
            .await
            .map_err(|e| match e {
                bazaar::http::server::AppError::Node(bazaar::app::node::NodeError::Store(
                    s @ bazaar::persistence::StoreError::Locked(_),
                )) => {
                    anyhow!("{s}")
                }
                other => anyhow!("cannot start the node: {other}"),
            })?;
    if args.demo {
        bazaar::tools::demo::seed(&running.shop, |p| bazaar::app::passwords::hash(p).map_err(|e| e.to_string()))
            .await
            .map_err(|e| anyhow!("demo seeding failed: {e}"))?;
        println!("demo data seeded; users (demo only):");
        for u in bazaar::tools::demo::USERS {
            println!("  {:<18} {:<22} {}", u.role.name(), u.email, u.password);
        }
        println!("promo codes: WELCOME10 (10% off), CLASSICS5 (5.00 off two classics, orders from 20.00)");
        println!(
            "warning: these demo users have well-known passwords; never seed them into a store anyone else can reach"
        );
    }
    println!(
        "bazaar node {} serving {} (data in {}); Ctrl-C stops it",
        running.node().options().node,
        running.url(),
        running.node().options().data_dir.display()
    );
    tokio::select! {
        _ = wait_for_stop() => {}
        _ = running.stopped() => {}
    }
    println!("stopping: finishing in-flight requests, flushing");
    running.stop().await;
    Ok(ExitCode::SUCCESS)
}

async fn user_add(data_dir: PathBuf, email: String, password: String, role: String) -> anyhow::Result<ExitCode> {
    let id = bazaar::domain::CustomerId::parse(&email)
        .map_err(|_| anyhow!("--email: {:?} is not a valid e-mail address", email))?;
    let role = bazaar::domain::auth::Role::parse(&role)
        .ok_or_else(|| anyhow!("--role must be CUSTOMER, OPERATOR, STOCK_OPERATOR, SHIPPING_OPERATOR or ADMIN"))?;
    let hash = bazaar::app::passwords::hash(&password).map_err(|e| anyhow!("--password: {e}"))?;
    let node = NodeBuilder::store(NodeOptions::single(NodeId::parse("admin")?, data_dir.clone()))
        .start()
        .await
        .map_err(start_failure)?;
    let shop = bazaar::app::shop::Shop::new(&node)?;
    let result = shop.create_user(&id, hash, role).await;
    if result.is_ok() {
        // The node announces it to the rest of its cluster once it runs.
        bazaar::app::announce::remember(&data_dir, &id)
            .map_err(|e| anyhow!("the user was created, but noting it for the cluster failed: {e}"))?;
    }
    drop(shop);
    node.shutdown().await;
    match result {
        Ok(u) => {
            println!("user {} created with role {}", u.customer_id, u.role.name());
            Ok(ExitCode::SUCCESS)
        }
        Err(bazaar::app::shop::ShopError::Domain(bazaar::domain::DomainError::AlreadyExists { .. })) => {
            Err(anyhow!("a user {id} exists already"))
        }
        Err(e) => Err(anyhow!("cannot create the user: {e}")),
    }
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn loadgen(args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    let name = NodeId::parse("loadgen")?;
    let mut opts = NodeOptions::single(name, args.data_dir.clone()).with_durability(args.durability);
    opts.deadlines =
        bazaar::domain::order::Deadlines { booking_ms: args.booking_timeout_ms, payment_ms: args.payment_timeout_ms };
    opts.payment_secret = b"loadgen".to_vec();
    if let Some(n) = args.live_max {
        opts.entities.live_max = n.max(1);
    }
    if let Some(ms) = args.idle_ms {
        opts.entities.idle_ms = ms.max(1);
    }
    if let Some(b) = args.cache_bytes {
        opts.store.cache_bytes = b.max(1024 * 1024);
    }
    let hold = std::time::Duration::from_secs(args.hold_s);
    let node = NodeBuilder::store(opts).start().await.map_err(start_failure)?;
    if args.workload == "saga" {
        let shop = bazaar::app::shop::Shop::new(&node)?;
        bazaar::tools::loadgen::prepare_sagas(&shop, args.writers).await?;
        let on_end: Arc<dyn Fn(usize, bazaar::tools::loadgen::SagaEnd) + Send + Sync> = Arc::new(|_, end| match end {
            bazaar::tools::loadgen::SagaEnd::Paid(o) => println!("paid {o}"),
            bazaar::tools::loadgen::SagaEnd::Cancelled(o) => println!("cancelled {o}"),
        });
        let done = bazaar::tools::loadgen::run_sagas(
            &shop,
            args.seed,
            args.writers,
            args.ops,
            Arc::new(AtomicBool::new(false)),
            on_end,
        )
        .await?;
        println!("done {done}");
        hold_and_report(&node, hold).await;
        drop(shop);
        node.shutdown().await;
        return Ok(ExitCode::SUCCESS);
    }
    let stock = node.service::<StockItemKind>().ok_or_else(|| anyhow!("no stock service"))?;
    let on_ack: Arc<dyn Fn(usize, u64) + Send + Sync> = Arc::new(|w, n| println!("ack {w} {n}"));
    let done = bazaar::tools::loadgen::run(
        &stock,
        args.seed,
        args.writers,
        args.ops,
        Arc::new(AtomicBool::new(false)),
        on_ack,
    )
    .await?;
    println!("done {done}");
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Opens the store of an existing data directory for a tool (a mistyped path is an error, not
/// a new empty store; a directory held by a running node is one clear line).
fn open_existing(data_dir: &std::path::Path) -> anyhow::Result<Store> {
    if !data_dir.join("db").exists() {
        return Err(anyhow!("no bazaar data directory at {} (is the path right?)", data_dir.display()));
    }
    Store::open(data_dir, &StoreOptions::default()).map_err(|e| anyhow!("{e}"))
}

/// The one line a node that cannot start prints.
fn start_failure(e: bazaar::app::node::NodeError) -> anyhow::Error {
    match e {
        bazaar::app::node::NodeError::Store(s @ bazaar::persistence::StoreError::Locked(_)) => anyhow!("{s}"),
        other => anyhow!("cannot start the node: {other}"),
    }
}

/// Keeps the node up for `hold`, printing each second how many entities are live (so memory
/// can be watched while idle entities are passivated).
async fn hold_and_report(node: &bazaar::app::node::Node, hold: std::time::Duration) {
    let until = tokio::time::Instant::now() + hold;
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let live: usize =
            node.service_stats().iter().map(|(_, s)| s.live.load(std::sync::atomic::Ordering::Relaxed)).sum();
        println!("live entities {live}");
    }
}

async fn dead_letters(action: DeadLetterAction) -> anyhow::Result<ExitCode> {
    match action {
        DeadLetterAction::List { data_dir } => {
            let store = open_existing(&data_dir)?;
            let letters = store.dead_letters()?;
            if letters.is_empty() {
                println!("no dead letters in {}", data_dir.display());
            }
            for (seq, letter) in letters {
                match letter {
                    Ok(l) => println!(
                        "{seq}\t{}\tattempts {}\t{}",
                        l.destination.as_deref().unwrap_or("?"),
                        l.attempts,
                        l.reason
                    ),
                    Err(e) => println!("{seq}\tunreadable: {e}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DeadLetterAction::Replay { data_dir, seq } => {
            let store = open_existing(&data_dir)?;
            let committer = bazaar::persistence::Committer::start(store.clone())?;
            let seqs = if seq.is_empty() { store.dead_letters()?.into_iter().map(|(s, _)| s).collect() } else { seq };
            let mut failed = false;
            for s in seqs {
                match relay::replay_dead_letter(&store, &committer, s).await {
                    Ok(new) => println!("dead letter {s} is back in the outbox as {new}"),
                    Err(e) => {
                        failed = true;
                        println!("dead letter {s}: {e}");
                    }
                }
            }
            committer.shutdown().await;
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}

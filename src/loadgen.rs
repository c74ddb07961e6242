//! A deterministic engine load: writers each drive one stock item through a fixed schedule of
//! commands that always succeed, so that after n acknowledged commands an item is at version n
//! and its state is known exactly. `bazaar loadgen` runs it (the crash tests kill it with
//! SIGKILL and check the data directory against the schedule); benches use it too.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::actors::stock::StockItemKind;
use crate::actors::EngineError;
use crate::domain::stock::{ReleaseReason, StockCommand};
use crate::domain::{DomainError, MessageId, OrderId, Qty, Sku};
use crate::supervisors::Service;

/// The SKU of writer `i`.
pub fn sku(i: usize) -> Sku {
    Sku::parse(&format!("load-{i:06}")).expect("load-NNNNNN is a valid sku")
}

fn order(n: u64) -> OrderId {
    OrderId::parse(&format!("o-{n}")).expect("o-N is a valid order id")
}

/// The n-th command (n ≥ 1) of every writer's schedule. Each succeeds and changes the item,
/// given that the ones before it did.
pub fn command(n: u64) -> StockCommand {
    match n % 3 {
        1 => StockCommand::Receive { qty: Qty::new(3), dims: None },
        2 => StockCommand::Book { order: order(n), qty: Qty::new(2) },
        _ if (n / 3) % 2 == 1 => StockCommand::Ship { order: order(n - 1) },
        _ => StockCommand::Release { order: order(n - 1), reason: ReleaseReason::OrderCancelled },
    }
}

/// The message id of writer `sku`'s n-th command under `seed`.
pub fn message_id(seed: u64, sku: &Sku, n: u64) -> MessageId {
    MessageId::derived(&[b"loadgen", &seed.to_be_bytes(), sku.as_str().as_bytes(), &n.to_be_bytes()])
}

/// Why a load run stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A scheduled command was rejected (a bug: the schedule always succeeds).
    #[error("command {n} of {sku} was rejected: {error}")]
    Rejected {
        /// The item.
        sku: Sku,
        /// The command's number.
        n: u64,
        /// The rejection.
        error: DomainError,
    },
}

/// Runs `writers` writers for `ops` commands each (or until `stop`). Message ids derive from
/// `seed`, so running the same seed again changes nothing (every command is a duplicate). `on_ack(writer, n)` runs after the n-th command is
/// acknowledged (durable). Returns the commands acknowledged.
pub async fn run(
    stock: &Service<StockItemKind>,
    seed: u64,
    writers: usize,
    ops: u64,
    stop: Arc<AtomicBool>,
    on_ack: Arc<dyn Fn(usize, u64) + Send + Sync>,
) -> Result<u64, LoadError> {
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let stock = stock.clone();
        let (stop, on_ack, done) = (stop.clone(), on_ack.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let sku = sku(w);
            let mut n = 0;
            while n < ops && !stop.load(Ordering::Relaxed) {
                n += 1;
                match stock.command(&sku, message_id(seed, &sku, n), command(n)).await? {
                    Ok(_) => {
                        done.fetch_add(1, Ordering::Relaxed);
                        on_ack(w, n);
                    }
                    Err(error) => return Err(LoadError::Rejected { sku, n, error }),
                }
            }
            Ok::<(), LoadError>(())
        }));
    }
    for t in tasks {
        match t.await {
            Ok(r) => r?,
            Err(e) => return Err(LoadError::Engine(EngineError::Unavailable(format!("writer task failed: {e}")))),
        }
    }
    Ok(done.load(Ordering::Relaxed))
}

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
        _ if (n / 3) % 2 == 1 => StockCommand::Ship { order: order(n - 1), qty: Qty::new(2) },
        _ => StockCommand::Release { order: order(n - 1), qty: Qty::new(2), reason: ReleaseReason::OrderCancelled },
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
    /// A store operation failed.
    #[error(transparent)]
    Shop(crate::app::shop::ShopError),
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

/// The e-mail of saga customer `i`.
pub fn saga_customer(i: usize) -> crate::domain::CustomerId {
    crate::domain::CustomerId::parse(&format!("load{i}@example.com")).expect("a valid address")
}

/// The products of the saga workload.
pub fn saga_product(k: usize) -> Sku {
    Sku::parse(&format!("load-book-{k}")).expect("a valid sku")
}

/// Products in the saga workload.
pub const SAGA_PRODUCTS: usize = 8;

/// Adds the saga workload's products and stock, and registers its customers (all idempotent).
pub async fn prepare_sagas(shop: &crate::app::shop::Shop, customers: usize) -> Result<(), LoadError> {
    use crate::app::shop::ShopError;
    for k in 0..SAGA_PRODUCTS {
        let p = saga_product(k);
        let price = crate::domain::Money::new(500 + 250 * i64::try_from(k).unwrap_or(0), crate::domain::Currency::EUR);
        match shop.add_product(&p, &format!("Load book {k}"), "A book for load tests.", price, None).await {
            Ok(_) => {
                let id = MessageId::derived(&[b"loadgen-stock", p.as_str().as_bytes()]);
                let stock = shop.items_service();
                stock
                    .command(&p, id, StockCommand::Receive { qty: Qty::new(10_000_000), dims: None })
                    .await?
                    .map_err(|error| LoadError::Rejected { sku: p.clone(), n: 0, error })?;
            }
            Err(ShopError::Domain(DomainError::AlreadyExists { .. })) => {}
            Err(e) => return Err(LoadError::Shop(e)),
        }
    }
    for k in 0..SAGA_PRODUCTS {
        // The order service learns prices from events: wait until it knows them all.
        let p = saga_product(k);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while shop.price(&[(p.clone(), Qty::new(1))], None).await.is_err() {
            if tokio::time::Instant::now() > deadline {
                return Err(LoadError::Engine(EngineError::Unavailable("prices never arrived".into())));
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    for i in 0..customers {
        let c = saga_customer(i);
        let comms = vec![crate::domain::customer::Communication {
            channel: crate::domain::customer::Channel::Email,
            address: c.to_string(),
        }];
        match shop.register_customer(&c, "Load", "Tester", comms).await {
            Ok(_) | Err(ShopError::Domain(DomainError::AlreadyExists { .. })) => {}
            Err(e) => return Err(LoadError::Shop(e)),
        }
    }
    Ok(())
}

/// How one saga of the workload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SagaEnd {
    /// Paid in full.
    Paid(OrderId),
    /// Cancelled (a failed payment, a timeout).
    Cancelled(OrderId),
}

/// Runs `customers` customers, each placing `orders` orders one after the other and paying
/// (seeded: mostly in full, sometimes in two parts, sometimes failing), until `stop`.
/// `on_end(customer, end)` runs when an order is paid (durably) or cancelled.
pub async fn run_sagas(
    shop: &crate::app::shop::Shop,
    seed: u64,
    customers: usize,
    orders: u64,
    stop: Arc<AtomicBool>,
    on_end: Arc<dyn Fn(usize, SagaEnd) + Send + Sync>,
) -> Result<u64, LoadError> {
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(customers);
    for i in 0..customers {
        let (shop, stop, on_end, done) = (shop.clone(), stop.clone(), on_end.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (u64::try_from(i).unwrap_or(0) << 20));
            let c = saga_customer(i);
            let mut n = 0;
            while n < orders && !stop.load(Ordering::Relaxed) {
                n += 1;
                let items = [(saga_product(rng.gen_range(0..SAGA_PRODUCTS)), Qty::new(rng.gen_range(1..3)))];
                let id = MessageId::derived(&[b"saga", &seed.to_be_bytes(), c.as_str().as_bytes(), &n.to_be_bytes()]);
                let end = one_saga(&shop, id, &c, &items, rng.gen_range(0..10u8)).await?;
                done.fetch_add(1, Ordering::Relaxed);
                on_end(i, end);
            }
            Ok::<(), LoadError>(())
        }));
    }
    for t in tasks {
        match t.await {
            Ok(r) => r?,
            Err(e) => return Err(LoadError::Engine(EngineError::Unavailable(format!("customer task failed: {e}")))),
        }
    }
    Ok(done.load(Ordering::Relaxed))
}

/// One order from placing to paid (or cancelled). `dice` (0..10) picks the payment: 0 fails,
/// 1 pays in two parts, else in full.
pub async fn one_saga(
    shop: &crate::app::shop::Shop,
    id: MessageId,
    c: &crate::domain::CustomerId,
    items: &[(Sku, Qty)],
    dice: u8,
) -> Result<SagaEnd, LoadError> {
    use crate::app::shop::ShopError;
    use crate::domain::saga::OrderStatus;
    let wait = std::time::Duration::from_secs(30);
    let start = tokio::time::Instant::now();
    let order = loop {
        match shop.place_order_as(id, c, items, None).await {
            Ok(o) => break o.id,
            Err(ShopError::Domain(DomainError::UnpaidOrderExists { order })) => {
                let status = shop.order(&order).await.map_err(LoadError::Shop)?.status;
                if status.is_unpaid() {
                    // Resuming after a restart: finish the order left unpaid.
                    break order;
                }
                // The previous order is settled; the gate hears of it in a moment.
                if start.elapsed() > wait {
                    return Err(LoadError::Engine(EngineError::Unavailable(format!("the gate of {c} stays closed"))));
                }
                shop.wait_gate_free(c, wait).await.map_err(LoadError::Shop)?;
            }
            Err(e) => return Err(LoadError::Shop(e)),
        }
    };
    let mut parts_left = if dice == 1 { 2 } else { 1 };
    loop {
        let p = match shop.redirect(&order, wait).await {
            Ok(p) => p,
            Err(ShopError::Domain(DomainError::NotPayable { reason: crate::domain::NotPayableReason::Cancelled })) => {
                return Ok(SagaEnd::Cancelled(order));
            }
            Err(ShopError::Domain(DomainError::NotPayable {
                reason: crate::domain::NotPayableReason::AlreadyPaid,
            })) => break,
            Err(e) => return Err(LoadError::Shop(e)),
        };
        let amount = if parts_left > 1 { p.amount.minor() / 2 } else { p.amount.minor() };
        let (body, sig) = shop.sandbox_callback(&p, dice != 0, amount);
        shop.callback(&body, &sig).await.map_err(LoadError::Shop)?;
        if dice == 0 {
            break;
        }
        parts_left -= 1;
        if parts_left == 0 {
            break;
        }
        // Wait until the order took the part before asking for the rest.
        shop.wait_order(&order, wait, |o| o.status == OrderStatus::PaidPartial).await.map_err(LoadError::Shop)?;
    }
    let o = shop
        .wait_order(&order, wait, |o| o.status.is_paid() || o.status == OrderStatus::Cancelled)
        .await
        .map_err(LoadError::Shop)?;
    if o.status.is_paid() {
        Ok(SagaEnd::Paid(order))
    } else if o.status == OrderStatus::Cancelled {
        Ok(SagaEnd::Cancelled(order))
    } else {
        Err(LoadError::Engine(EngineError::Unavailable(format!("order {order} stuck in {}", o.status.name()))))
    }
}

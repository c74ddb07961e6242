//! Whole sagas in-process (no HTTP): every hard case of the seed.

use std::sync::Arc;
use std::time::Duration;

use bazaar::app::node::{Node, NodeBuilder, NodeOptions};
use bazaar::app::shop::{Shop, ShopError};
use bazaar::clock::ManualClock;
use bazaar::domain::customer::{Channel, Communication};
use bazaar::domain::order::{Canceller, CommerceOrder};
use bazaar::domain::saga::{CancelReason, OrderStatus, PaymentStatus, ShipmentStatus};
use bazaar::domain::stock::Dimensions;
use bazaar::domain::{Currency, CustomerId, DomainError, Money, OrderId, Qty, Sku};
use bazaar::persistence::Durability;

use crate::support::{self, eventually};

pub fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::EUR)
}

pub fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

pub fn customer(s: &str) -> CustomerId {
    CustomerId::parse(s).unwrap()
}

/// A node with a small catalogue: book-a (12.50, 10 in stock), book-b (8.00, 5), book-c (20.00, 1).
pub async fn store(dir: &std::path::Path, opts: impl FnOnce(&mut NodeOptions)) -> (Node, Shop) {
    store_with(dir, opts, |b| b).await
}

/// Like `store`, with the node builder adjusted (extra subscribers).
pub async fn store_with(
    dir: &std::path::Path,
    opts: impl FnOnce(&mut NodeOptions),
    build: impl FnOnce(NodeBuilder) -> NodeBuilder,
) -> (Node, Shop) {
    let mut o = support::options(dir, Durability::Flush);
    o.payment_secret = b"test-secret".to_vec();
    opts(&mut o);
    let node = build(NodeBuilder::store(o)).start().await.unwrap();
    let shop = Shop::new(&node).unwrap();
    let dims = Dimensions { weight_g: 400, length_mm: 200, width_mm: 130, height_mm: 30 };
    for (id, price, qty) in [("book-a", 1250, 10), ("book-b", 800, 5), ("book-c", 2000, 1)] {
        if shop.product(&sku(id)).await.is_err() {
            shop.add_product(&sku(id), &format!("Book {id}"), "A book.", eur(price), None).await.unwrap();
            shop.receive_stock(&sku(id), Qty::new(qty), Some(dims)).await.unwrap();
        }
    }
    for id in ["book-a", "book-b", "book-c"] {
        eventually("the order service knows the price", || async {
            shop.price(&[(sku(id), Qty::new(1))], None).await.is_ok()
        })
        .await;
    }
    (node, shop)
}

pub async fn register(shop: &Shop, email: &str) -> CustomerId {
    let c = customer(email);
    let comms = vec![Communication { channel: Channel::Email, address: email.into() }];
    shop.register_customer(&c, "Ada", "Reader", comms).await.unwrap();
    c
}

pub async fn wait_status(shop: &Shop, id: &OrderId, status: OrderStatus) -> CommerceOrder {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let o = shop.order(id).await.unwrap();
        if o.status == status {
            return o;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} is {} and never reached {}",
            o.status.name(),
            status.name()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until nothing is in flight, then checks every invariant.
pub async fn settle_and_check(node: &Node, shop: &Shop) {
    eventually("the outbox drains", || async { node.store().outbox_len() == 0 }).await;
    let report = shop.invariants().whole().unwrap();
    assert!(report.ok, "invariants broken: {:#?}", report.violations());
}

async fn pay(shop: &Shop, id: &OrderId, amount: Option<i64>, succeeded: bool) -> bazaar::domain::payment::Payment {
    let p = shop.redirect(id, Duration::from_secs(10)).await.unwrap();
    let key = shop.sandbox().unwrap().link_key(&p.id);
    assert_eq!(p.redirect_url, format!("/sandbox/pay/{}?key={key}", p.id));
    let (body, sig) = shop.sandbox_callback(&p, succeeded, amount.unwrap_or(p.amount.minor()));
    shop.callback(&body, &sig).await.unwrap()
}

fn free(v: &bazaar::actors::stock::StockItemView) -> u32 {
    v.levels.free.get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_happy_path_goes_to_completed() {
    let dir = tempfile::tempdir().unwrap();
    let (node, shop) = store(dir.path(), |_| {}).await;
    let c = register(&shop, "ada@example.com").await;
    let order =
        shop.place_order(&c, &[(sku("book-a"), Qty::new(2)), (sku("book-b"), Qty::new(1))], None).await.unwrap();
    assert_eq!(order.status, OrderStatus::BookingPending);
    assert_eq!(order.fixed_price, eur(3300));
    assert_eq!(order.id.partition(), Some(node.router().partition_of(c.as_str().as_bytes())));
    // Read-your-writes: the order exists as soon as placing it returned.
    assert_eq!(shop.order(&order.id).await.unwrap().id, order.id);
    wait_status(&shop, &order.id, OrderStatus::Booked).await;
    assert_eq!(free(&shop.stock_item(&sku("book-a")).await.unwrap()), 8);
    let p = pay(&shop, &order.id, None, true).await;
    assert_eq!(p.status, PaymentStatus::Paid);
    wait_status(&shop, &order.id, OrderStatus::Paid).await;
    eventually("the shipment exists", || async { shop.shipment(&order.id).await.is_ok() }).await;
    let s = shop.shipment(&order.id).await.unwrap();
    assert_eq!((s.weight_g, s.height_mm, s.length_mm), (1200, 90, 200), "parcel from the stock items' units");
    assert_eq!(shop.ship(&order.id, ShipmentStatus::Assembled).await.unwrap().status, ShipmentStatus::Assembled);
    wait_status(&shop, &order.id, OrderStatus::ShippingPending).await;
    shop.ship(&order.id, ShipmentStatus::Shipped).await.unwrap();
    shop.ship(&order.id, ShipmentStatus::Delivered).await.unwrap();
    let done = wait_status(&shop, &order.id, OrderStatus::Completed).await;
    // Booked lines became shipped.
    eventually("stock shipped", || async { shop.stock_item(&sku("book-a")).await.unwrap().levels.shipped.get() == 2 })
        .await;
    // The customer was told twice (paid, shipped), through the log sink.
    eventually("two notifications sent", || async { shop.sends().await.unwrap().len() == 2 }).await;
    let sends = shop.sends().await.unwrap();
    assert!(sends.iter().all(|s| s.status == Some(bazaar::domain::notification::SendStatus::Sent)));
    assert!(sends.iter().all(|s| s.sink.as_deref() == Some("log")));
    // The timeline names every step in order.
    let steps: Vec<String> = done.timeline.iter().map(|t| t.event.clone()).collect();
    let expect = [
        "OrderEvent(BOOKING_PENDING)",
        "StockEvent(BOOKED)",
        "OrderEvent(BOOKED)",
        "PayEvent(PENDING)",
        "OrderEvent(PAY_PENDING)",
        "PayEvent(PAID)",
        "OrderEvent(PAID)",
        "ShippingEvent(ASSEMBLED)",
        "OrderEvent(SHIPPING_PENDING)",
        "ShippingEvent(SHIPPED)",
        "ShippingEvent(DELIVERED)",
        "OrderEvent(COMPLETED)",
    ];
    assert_eq!(steps, expect);
    assert!(done.timeline.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    settle_and_check(&node, &shop).await;
    // The gate is free for the next order.
    assert_eq!(shop.customer_orders(&c).await.unwrap().unpaid, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_double_pay_click_makes_exactly_one_order() {
    let dir = tempfile::tempdir().unwrap();
    let (node, shop) = store(dir.path(), |_| {}).await;
    let c = register(&shop, "clicker@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (shop, c) = (shop.clone(), c.clone());
        tasks.push(tokio::spawn(async move { shop.place_order(&c, &[(sku("book-a"), Qty::new(1))], None).await }));
    }
    let mut placed = Vec::new();
    let mut refused = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(o) => placed.push(o.id),
            Err(ShopError::Domain(DomainError::UnpaidOrderExists { order })) => refused.push(order),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(placed.len(), 1);
    assert_eq!(refused.len(), 99);
    assert!(refused.iter().all(|o| *o == placed[0]), "every refusal names the one order");
    // Paying for it frees the gate; a new order is then accepted.
    wait_status(&shop, &placed[0], OrderStatus::Booked).await;
    pay(&shop, &placed[0], None, true).await;
    wait_status(&shop, &placed[0], OrderStatus::Paid).await;
    eventually("the gate is free", || async { shop.customer_orders(&c).await.unwrap().unpaid.is_none() }).await;
    shop.place_order(&c, &[(sku("book-a"), Qty::new(1))], None).await.unwrap();
    settle_and_check(&node, &shop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_payment_then_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (node, shop) = store(dir.path(), |_| {}).await;
    let c = register(&shop, "partial@example.com").await;
    let order = shop.place_order(&c, &[(sku("book-a"), Qty::new(2))], None).await.unwrap();
    wait_status(&shop, &order.id, OrderStatus::Booked).await;
    let first = pay(&shop, &order.id, Some(1000), true).await;
    assert_eq!((first.status, first.paid_amount), (PaymentStatus::Partial, eur(1000)));
    let o = wait_status(&shop, &order.id, OrderStatus::PaidPartial).await;
    assert_eq!(o.paid_amount, eur(1000));
    // The next request opens a payment for the remainder; asking again returns the same one.
    let second = shop.redirect(&order.id, Duration::from_secs(5)).await.unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(second.amount, eur(1500));
    assert_eq!(shop.redirect(&order.id, Duration::from_secs(5)).await.unwrap().id, second.id);
    let (body, sig) = shop.sandbox_callback(&second, true, 1500);
    shop.callback(&body, &sig).await.unwrap();
    // A repeated callback is a no-op.
    let again = shop.callback(&body, &sig).await.unwrap();
    assert_eq!(again.status, PaymentStatus::Paid);
    let o = wait_status(&shop, &order.id, OrderStatus::Paid).await;
    assert_eq!(o.paid_amount, eur(2500));
    let account = shop.payments(&order.id).await.unwrap();
    assert_eq!((account.captured, account.refunded), (eur(2500), eur(0)));
    // A paid order cannot be paid again.
    assert!(matches!(
        shop.redirect(&order.id, Duration::from_secs(1)).await,
        Err(ShopError::Domain(DomainError::NotPayable { .. }))
    ));
    settle_and_check(&node, &shop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_payment_rolls_the_saga_back() {
    let dir = tempfile::tempdir().unwrap();
    let (node, shop) = store(dir.path(), |_| {}).await;
    let c = register(&shop, "failing@example.com").await;
    let before_a = free(&shop.stock_item(&sku("book-a")).await.unwrap());
    let before_b = free(&shop.stock_item(&sku("book-b")).await.unwrap());
    let order =
        shop.place_order(&c, &[(sku("book-a"), Qty::new(3)), (sku("book-b"), Qty::new(2))], None).await.unwrap();
    wait_status(&shop, &order.id, OrderStatus::Booked).await;
    pay(&shop, &order.id, Some(500), true).await; // a part first, captured...
    wait_status(&shop, &order.id, OrderStatus::PaidPartial).await;
    let failed = pay(&shop, &order.id, None, false).await; // ...then the rest fails
    assert_eq!(failed.status, PaymentStatus::Failed);
    let o = wait_status(&shop, &order.id, OrderStatus::Cancelled).await;
    assert_eq!(o.cancel_reason, Some(CancelReason::PaymentFailed));
    eventually("stock back to its starting counts", || async {
        free(&shop.stock_item(&sku("book-a")).await.unwrap()) == before_a
            && free(&shop.stock_item(&sku("book-b")).await.unwrap()) == before_b
    })
    .await;
    eventually("the captured part is refunded", || async {
        let a = shop.payments(&order.id).await.unwrap();
        a.refunded == eur(500) && a.payments[0].status == PaymentStatus::Refunded
    })
    .await;
    let a = shop.payments(&order.id).await.unwrap();
    assert_eq!((a.payments[0].paid_amount, a.payments[0].refunded_amount), (eur(500), eur(500)));
    assert_eq!(a.net(), eur(0), "nothing is kept of a failed order");
    // The customer is free to order again: the gate heard the order was cancelled.
    eventually("the gate is freed", || async { shop.customer_orders(&c).await.unwrap().unpaid.is_none() }).await;
    shop.place_order(&c, &[(sku("book-a"), Qty::new(1))], None).await.unwrap();
    settle_and_check(&node, &shop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_short_releases_every_other_line() {
    let dir = tempfile::tempdir().unwrap();
    let (node, shop) = store(dir.path(), |_| {}).await;
    let c = register(&shop, "short@example.com").await;
    let order = shop
        .place_order(
            &c,
            &[(sku("book-a"), Qty::new(4)), (sku("book-b"), Qty::new(1)), (sku("book-c"), Qty::new(2))],
            None,
        )
        .await
        .unwrap();
    let o = wait_status(&shop, &order.id, OrderStatus::Cancelled).await;
    assert_eq!(o.cancel_reason, Some(CancelReason::OutOfStock));
    eventually("every line released", || async {
        free(&shop.stock_item(&sku("book-a")).await.unwrap()) == 10
            && free(&shop.stock_item(&sku("book-b")).await.unwrap()) == 5
    })
    .await;
    assert_eq!(free(&shop.stock_item(&sku("book-c")).await.unwrap()), 1);
    assert!(matches!(
        shop.redirect(&order.id, Duration::from_millis(200)).await,
        Err(ShopError::Domain(DomainError::NotPayable { .. }))
    ));
    settle_and_check(&node, &shop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booked_order_not_paid_in_time_is_cancelled_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let c2 = clock.clone();
    let (node, shop) = store(dir.path(), move |o| {
        o.clock = c2;
        o.deadlines.payment_ms = 60_000;
    })
    .await;
    let c = register(&shop, "slow@example.com").await;
    let order = shop.place_order(&c, &[(sku("book-b"), Qty::new(2))], None).await.unwrap();
    wait_status(&shop, &order.id, OrderStatus::Booked).await;
    assert_eq!(free(&shop.stock_item(&sku("book-b")).await.unwrap()), 3);
    clock.advance(59_000);
    tokio::time::sleep(Duration::from_millis(200)).await; // several timer ticks: nothing is due yet
    assert_eq!(shop.order(&order.id).await.unwrap().status, OrderStatus::Booked);
    clock.advance(2_000);
    let o = wait_status(&shop, &order.id, OrderStatus::Cancelled).await;
    assert_eq!(o.cancel_reason, Some(CancelReason::Timeout));
    eventually("released", || async { free(&shop.stock_item(&sku("book-b")).await.unwrap()) == 5 }).await;
    // A payment that comes too late is refunded, not kept.
    assert!(matches!(
        shop.redirect(&order.id, Duration::from_millis(10)).await,
        Err(ShopError::Domain(DomainError::NotPayable { .. }))
    ));
    settle_and_check(&node, &shop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_and_operators_cancel_within_their_rights() {
    let dir = tempfile::tempdir().unwrap();
    let (node, shop) = store(dir.path(), |_| {}).await;
    let c = register(&shop, "canceller@example.com").await;
    let other = register(&shop, "other@example.com").await;
    let order = shop.place_order(&c, &[(sku("book-a"), Qty::new(1))], None).await.unwrap();
    wait_status(&shop, &order.id, OrderStatus::Booked).await;
    assert_eq!(
        shop.cancel_order(&order.id, Canceller::Customer(other)).await.unwrap_err(),
        ShopError::Domain(DomainError::NotOwner)
    );
    let o = shop.cancel_order(&order.id, Canceller::Customer(c.clone())).await.unwrap();
    assert_eq!((o.status, o.cancel_reason), (OrderStatus::Cancelled, Some(CancelReason::ByCustomer)));
    // A paid order: the customer can no longer cancel, an operator can (and the money goes back).
    eventually("gate freed", || async { shop.customer_orders(&c).await.unwrap().unpaid.is_none() }).await;
    let paid = shop.place_order(&c, &[(sku("book-a"), Qty::new(1))], None).await.unwrap();
    wait_status(&shop, &paid.id, OrderStatus::Booked).await;
    pay(&shop, &paid.id, None, true).await;
    wait_status(&shop, &paid.id, OrderStatus::Paid).await;
    assert!(matches!(
        shop.cancel_order(&paid.id, Canceller::Customer(c.clone())).await,
        Err(ShopError::Domain(DomainError::WrongState { .. }))
    ));
    let o = shop.cancel_order(&paid.id, Canceller::Operator).await.unwrap();
    assert_eq!(o.cancel_reason, Some(CancelReason::ByOperator));
    eventually("refunded", || async { shop.payments(&paid.id).await.unwrap().net().minor() == 0 }).await;
    settle_and_check(&node, &shop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_steps_only_go_forward() {
    let dir = tempfile::tempdir().unwrap();
    let (node, shop) = store(dir.path(), |_| {}).await;
    let c = register(&shop, "shipper@example.com").await;
    let order = shop.place_order(&c, &[(sku("book-a"), Qty::new(1))], None).await.unwrap();
    assert!(
        matches!(shop.shipment(&order.id).await, Err(ShopError::Domain(DomainError::NotFound { .. }))),
        "no shipment before payment"
    );
    wait_status(&shop, &order.id, OrderStatus::Booked).await;
    pay(&shop, &order.id, None, true).await;
    wait_status(&shop, &order.id, OrderStatus::Paid).await;
    eventually("shipment", || async { shop.shipment(&order.id).await.is_ok() }).await;
    // Straight to SHIPPED (a skip forward), then the same step again is fine, a step back is not.
    shop.ship(&order.id, ShipmentStatus::Shipped).await.unwrap();
    shop.ship(&order.id, ShipmentStatus::Shipped).await.unwrap();
    assert!(matches!(
        shop.ship(&order.id, ShipmentStatus::Assembled).await,
        Err(ShopError::Domain(DomainError::ShippingStepBackwards { .. }))
    ));
    wait_status(&shop, &order.id, OrderStatus::ShippingPending).await;
    eventually("stock shipped", || async { shop.stock_item(&sku("book-a")).await.unwrap().levels.shipped.get() == 1 })
        .await;
    settle_and_check(&node, &shop).await;
}

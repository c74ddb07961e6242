//! Sagas under reordering, duplication and redelivery of every event type.

use std::sync::Arc;
use std::time::Duration;

use bazaar::actors::order::OrderKind;
use bazaar::actors::EntityKind;
use bazaar::app::node::Node;
use bazaar::domain::saga::{BookedLine, OrderStatus, PayEvent, PaymentStatus, ShipmentStatus, StockEvent, StockStatus};
use bazaar::domain::{MessageId, NodeId, OrderId, Qty};
use bazaar::persistence::events::{self, Topic};
use bazaar::persistence::StateSource;
use bazaar::persistence::{Envelope, OutboxEntry, WriteSet};

use crate::saga::{eur, register, settle_and_check, sku, store, wait_status};
use crate::support::{eventually, mid, Probe, ProbeSub};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn envelope(topic: Topic, order: &OrderId, version: u64, status: &str, payload: Vec<u8>) -> Envelope {
    Envelope {
        message_id: mid(),
        topic,
        routing_key: order.to_string(),
        aggregate_id: order.to_string(),
        aggregate_version: version,
        aggregate_status: status.into(),
        origin_node: NodeId::parse("elsewhere").unwrap(),
        schema_version: topic.current_schema(),
        timestamp_ms: 0,
        causation_id: None,
        request_id: None,
        payload,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booked_arriving_after_pay_pending_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, shop) = store(dir.path(), |_| {}).await;
    let c = register(&shop, "hardcase1@example.com").await;
    node.stop_relay().await;
    let order = shop.place_order(&c, &[(sku("book-a"), Qty::new(1))], None).await.unwrap();
    let orders = node.service::<OrderKind>().unwrap();
    // PayEvent(PENDING) overtakes StockEvent(BOOKED) on the way to the order.
    let pending = PayEvent {
        order_id: order.id.clone(),
        payment_id: None,
        status: PaymentStatus::Pending,
        captured: eur(0),
        due: eur(1250),
    };
    orders
        .deliver(envelope(Topic::PayEvent, &order.id, 1, "PAYABLE", events::encode(&pending).unwrap()))
        .await
        .unwrap();
    assert_eq!(shop.order(&order.id).await.unwrap().status, OrderStatus::PayPending);
    let booked = StockEvent {
        order_id: order.id.clone(),
        order_version: 1,
        status: StockStatus::Booked,
        fixed_price: eur(1250),
        lines: vec![BookedLine { sku: sku("book-a"), qty: Qty::new(1), dims: None }],
    };
    orders
        .deliver(envelope(Topic::StockBooking, &order.id, 2, "BOOKED", events::encode(&booked).unwrap()))
        .await
        .unwrap();
    let o = shop.order(&order.id).await.unwrap();
    assert_eq!(o.status, OrderStatus::PayPending, "the late BOOKED is discarded");
    assert_eq!(o.timeline.last().unwrap().event, "discarded StockEvent(BOOKED)");
    assert_eq!(o.timeline.last().unwrap().node, "elsewhere", "the event's node is recorded (hard case 7)");
    // The rest of the saga runs for real and ends balanced.
    node.restart_relay();
    let p = shop.redirect(&order.id, Duration::from_secs(10)).await.unwrap();
    let (body, sig) = shop.sandbox_callback(&p, true, p.amount.minor());
    shop.callback(&body, &sig).await.unwrap();
    wait_status(&shop, &order.id, OrderStatus::Paid).await;
    settle_and_check(&node, &shop).await;
}

/// Every stored aggregate of every service the node runs: the whole business state (inboxes,
/// outbox and bookkeeping aside).
fn snapshot(node: &Node) -> Vec<(String, String, u16, Vec<u8>)> {
    let mut out = Vec::new();
    for (dest, _) in node.service_stats() {
        let (s, a) = dest.split_once('/').unwrap();
        for (k, schema, body) in node.store().states(s, a).unwrap() {
            out.push((dest.clone(), k, schema, body));
        }
    }
    out.sort();
    out
}

/// The whole state with each order's timeline, version and last change left out: a stale event
/// under a new id is (rightly) noted in its order's timeline as discarded, and nothing else may
/// move.
fn business_state(node: &Node) -> Vec<(String, String, String)> {
    snapshot(node)
        .into_iter()
        .map(|(dest, key, schema, body)| {
            let shown = if dest == "order/order" {
                let id = OrderId::parse(&key).unwrap();
                let mut o = OrderKind::decode_state(&id, schema, &body).unwrap().unwrap();
                o.timeline.clear();
                o.timeline_dropped = 0;
                o.version = 0;
                o.updated_at_ms = 0;
                format!("{o:?}")
            } else {
                format!("{schema}:{}", hex::encode(&body))
            };
            (dest, key, shown)
        })
        .collect()
}

/// Puts `envs` back into the outbox, addressed to every subscriber their topic and status have.
async fn replay(node: &Node, envs: &[Envelope]) {
    let mut outbox = Vec::new();
    for e in envs {
        for dest in node.subscriptions().destinations(e.topic, &e.aggregate_status) {
            if dest.starts_with("probe") {
                continue;
            }
            let entry =
                OutboxEntry { destination: dest.to_owned(), attempts: 0, last_error: None, envelope: e.clone() };
            outbox.push(entry.encode().unwrap());
        }
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    node.committer().submit(WriteSet { outbox, ..Default::default() }, Box::new(move |r| drop(tx.send(r)))).await;
    rx.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_takes_effect_once_however_often_and_in_whatever_order_it_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Arc::new(Probe::default());
    let p2 = probe.clone();
    let clock = Arc::new(bazaar::clock::ManualClock::new(1_800_000_000_000));
    let node_clock = clock.clone();
    let (node, shop) = crate::saga::store_with(
        dir.path(),
        move |o| o.clock = node_clock,
        move |b| {
            let mut b = b;
            for t in Topic::ALL {
                b = b.subscriber(&format!("probe-{}", t.name()), *t, Arc::new(ProbeSub(p2.clone())));
            }
            b
        },
    )
    .await;
    // Two full sagas (one completed, one failing) and a cancelled one exercise every topic.
    let c = register(&shop, "replayed@example.com").await;
    // An account (auth.user) and a revoked token (auth.revoked).
    let hash = bazaar::app::passwords::hash("replayed-password").unwrap();
    shop.create_user(&c, hash, bazaar::domain::auth::Role::Customer).await.unwrap();
    shop.revoke("replayed-token", 1_800_000_000_000 + 3_600_000).await.unwrap();
    // Order a uses a promo code, so promo.event and promo.used are exercised too.
    let rule = bazaar::domain::pricing::Rule {
        discount: bazaar::domain::pricing::Discount::Percent(10),
        product_ids: None,
        min_total: None,
        valid_from_ms: None,
        valid_until_ms: None,
        usage_limit: Some(5),
    };
    shop.create_promo("REPLAY10", "ten percent", rule).await.unwrap();
    // The order service prices from its projection of promo codes, fed by promo.event.
    eventually("the order service knows REPLAY10", || async { shop.promo_for_pricing("REPLAY10").await.is_ok() }).await;
    let a = shop
        .place_order_as(
            bazaar::actors::fresh_message_id(),
            &c,
            &[(sku("book-a"), Qty::new(2)), (sku("book-b"), Qty::new(1))],
            Some("REPLAY10"),
        )
        .await
        .unwrap();
    wait_status(&shop, &a.id, OrderStatus::Booked).await;
    let p = shop.redirect(&a.id, Duration::from_secs(5)).await.unwrap();
    let (body, sig) = shop.sandbox_callback(&p, true, 1000);
    shop.callback(&body, &sig).await.unwrap();
    wait_status(&shop, &a.id, OrderStatus::PaidPartial).await;
    let p = shop.redirect(&a.id, Duration::from_secs(5)).await.unwrap();
    let (body, sig) = shop.sandbox_callback(&p, true, p.amount.minor());
    shop.callback(&body, &sig).await.unwrap();
    wait_status(&shop, &a.id, OrderStatus::Paid).await;
    eventually("shipment", || async { shop.shipment(&a.id).await.is_ok() }).await;
    for s in [ShipmentStatus::Assembled, ShipmentStatus::Shipped, ShipmentStatus::Delivered] {
        shop.ship(&a.id, s).await.unwrap();
    }
    wait_status(&shop, &a.id, OrderStatus::Completed).await;
    let b = shop.place_order(&c, &[(sku("book-c"), Qty::new(1))], None).await.unwrap();
    wait_status(&shop, &b.id, OrderStatus::Booked).await;
    let p = shop.redirect(&b.id, Duration::from_secs(5)).await.unwrap();
    let (body, sig) = shop.sandbox_callback(&p, false, 0);
    shop.callback(&body, &sig).await.unwrap();
    wait_status(&shop, &b.id, OrderStatus::Cancelled).await;
    settle_and_check(&node, &shop).await;
    eventually("notifications sent", || async { shop.sends().await.unwrap().len() == 2 }).await;
    // A placement cut off after taking its promo hold: the hold asks the customer's gate
    // (promo.hold), which answers on promo.used.
    let promos = node.service::<bazaar::actors::promo::PromoKind>().unwrap();
    let (number, order) = shop.customer_orders(&c).await.unwrap().next_order(0);
    let hold = bazaar::actors::promo::PromoCommand::Hold { order, number, customer: c.clone() };
    promos.command(&"REPLAY10".to_owned(), bazaar::actors::fresh_message_id(), hold).await.unwrap().unwrap();
    clock.advance(bazaar::limits::PROMO_HOLD_MS);
    eventually("the hold was answered", || async {
        probe.envelopes.lock().unwrap().iter().any(|e| e.topic == Topic::PromoHold) && node.store().outbox_len() == 0
    })
    .await;
    settle_and_check(&node, &shop).await;

    let seen: Vec<Envelope> = probe.envelopes.lock().unwrap().clone();
    let topics: std::collections::BTreeSet<&str> = seen.iter().map(|e| e.topic.name()).collect();
    for t in Topic::ALL {
        assert!(topics.contains(t.name()), "no {} event was seen", t.name());
    }
    let before = snapshot(&node);
    assert!(
        before.iter().any(|(d, _, _, _)| d == "promo/code")
            && before.iter().any(|(d, _, _, _)| d == "shipping/shipment")
    );

    // Every event of every topic again, twice, in seeded random orders: duplicates by id change
    // nothing at all.
    for seed in 0..3u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut again: Vec<Envelope> = seen.iter().chain(seen.iter()).cloned().collect();
        again.shuffle(&mut rng);
        replay(&node, &again).await;
        settle_and_check(&node, &shop).await;
        assert_eq!(snapshot(&node), before, "seed {seed}: redelivered events changed stored state");
    }

    // Every fact again under a new id (a different message with stale content), in seeded random
    // orders: stale ones are discarded, so no aggregate moves (an order notes each in its
    // timeline). Requests addressed to one aggregate — a booking asking an item to book, a send
    // request, a promo use, a hold's question — are left out: their message id is what makes
    // them count once, and a new id is a new request, which no redelivery ever makes.
    let facts: Vec<Envelope> = seen
        .iter()
        .filter(|e| {
            !matches!(e.topic, Topic::StockReserve | Topic::NotificationSend | Topic::PromoUsed | Topic::PromoHold)
        })
        .cloned()
        .collect();
    let business = business_state(&node);
    for seed in 0..3u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + seed);
        let mut stale: Vec<Envelope> = facts
            .iter()
            .cloned()
            .map(|mut e| {
                e.message_id = MessageId::from_bytes(rng.gen());
                e
            })
            .collect();
        stale.shuffle(&mut rng);
        replay(&node, &stale).await;
        settle_and_check(&node, &shop).await;
        assert_eq!(business_state(&node), business, "seed {seed}: stale events changed the store's business state");
    }
    assert_eq!(shop.sends().await.unwrap().len(), 2, "no notification twice");
}

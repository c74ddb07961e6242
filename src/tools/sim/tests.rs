//! The simulation's own tests: seeds pass, replays are identical, scripted races end right.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::run::*;
use super::*;
use crate::actors::catalogue::{ProductCommand, ProductKind};
use crate::actors::kind::EntityKind;
use crate::actors::order::{GateCommand, GateKind, OrderCommand, OrderKind, PriceKind};
use crate::actors::promo::{PromoCommand, PromoKind};
use crate::actors::stock::StockItemKind;
use crate::app::invariants;
use crate::domain::order::{Canceller, Deadlines};
use crate::domain::pricing::{self, Line};
use crate::domain::stock::StockCommand;
use crate::domain::{Currency, CustomerId, Money, OrderId, Qty};
use crate::persistence::StateSource;

fn seeds() -> Vec<u64> {
    if let Some(s) = std::env::var("BAZAAR_SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![s];
    }
    let n: u64 = std::env::var("BAZAAR_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    (0..n).collect()
}

#[test]
fn sim_random_sagas_keep_every_invariant() {
    let mut steps = 0;
    let mut total = SimStats::default();
    for seed in seeds() {
        match run(seed) {
            Ok(sim) => {
                steps += sim.delivered;
                total.add(&sim.stats);
            }
            Err(e) => panic!("seed {seed} failed (replay with BAZAAR_SIM_SEED={seed}): {e}"),
        }
    }
    assert!(steps > 0);
    if seeds().len() >= 100 {
        // What the runs are for happened: promo codes were used, used up, and cut off.
        assert!(total.promo_orders > 0 && total.promo_refused > 0 && total.promo_cut_off > 0, "{total:?}");
        assert!(total.holds_checked > 0, "{total:?}");
        // And the cluster's faults: nodes crashed and links cut (at random and between a remote
        // commit and its answer or acknowledgement), calls found owners unreachable, lanes
        // parked, and shoppers learned of orders whose placement answer was lost.
        assert!(total.crashes > 0 && total.cuts > 0 && total.unreachable > 0 && total.parked > 0, "{total:?}");
        assert!(total.answers_lost > 0 && total.acks_lost > 0 && total.adopted > 0, "{total:?}");
        eprintln!("{total:?}");
    }
}

fn place_with(sim: &mut Sim, who: &CustomerId, token: &str) -> (Placement, u32) {
    let partition = crate::cluster::partition_of(who.as_str().as_bytes(), 16);
    let Ok(crate::actors::order::GateReply::State(g)) = sim.command::<GateKind>(who, GateCommand::Get) else {
        panic!("a gate answers with its state")
    };
    let (number, order) = g.next_order(partition);
    let hold = sim.new_id();
    let cmd = PromoCommand::Hold { order: order.clone(), number, customer: who.clone() };
    let code = sim.command_as::<PromoKind>(&token.to_owned(), hold, cmd).expect("a use is free");
    let price = sim.command::<PriceKind>(&sku("sim-a"), crate::actors::order::PriceQuery::Get).unwrap();
    let lines = vec![Line { product: sku("sim-a"), name: price.name, unit_price: price.price, qty: Qty::new(1) }];
    (Placement { token: token.into(), code, hold, number, order, lines }, partition)
}

fn live_with(sim: &Sim, token: &str) -> usize {
    sim.states("order", "order")
        .unwrap()
        .into_iter()
        .filter_map(|(k, schema, body)| OrderKind::decode_state(&OrderId::parse(&k).unwrap(), schema, &body).unwrap())
        .filter(|o| o.promo_code.as_deref() == Some(token) && o.status != crate::domain::saga::OrderStatus::Cancelled)
        .count()
}

/// A promo code `token` with one use, and product `sim-a` at 10 EUR.
fn one_use_code_and_a_product(sim: &mut Sim, token: &str, discount: pricing::Discount) {
    let rule = pricing::Rule {
        discount,
        product_ids: None,
        min_total: None,
        valid_from_ms: None,
        valid_until_ms: None,
        usage_limit: Some(1),
    };
    sim.command::<PromoKind>(&token.to_owned(), PromoCommand::Create { description: "one use".into(), rule }).unwrap();
    book_at_ten_euros(sim);
}

/// Product `sim-a` at 10 EUR.
fn book_at_ten_euros(sim: &mut Sim) {
    let add = ProductCommand::Add {
        name: "a".into(),
        description: String::new(),
        price: Money::new(1000, Currency::EUR),
        photo: None,
    };
    sim.command::<ProductKind>(&sku("sim-a"), add).unwrap();
}

#[test]
fn sim_a_hold_answered_by_its_gate_fences_the_late_placement() {
    let mut sim = Sim::new(7);
    let deadlines = Deadlines { booking_ms: 60_000, payment_ms: 60_000 };
    one_use_code_and_a_product(&mut sim, "ONLY-ONE", pricing::Discount::Percent(10));
    sim.command::<StockItemKind>(&sku("sim-a"), StockCommand::Receive { qty: Qty::new(5), dims: None }).unwrap();
    sim.drain();
    let (a, b) = (CustomerId::parse("a@example.com").unwrap(), CustomerId::parse("b@example.com").unwrap());
    // A's placement takes the only use, then stalls past its hold's check.
    let (slow, partition) = place_with(&mut sim, &a, "ONLY-ONE");
    sim.advance(crate::limits::PROMO_HOLD_MS);
    sim.drain();
    // The gate fenced A's order number, so the use went back and B gets it.
    let (fast, _) = place_with(&mut sim, &b, "ONLY-ONE");
    let mut s = Shopper::new(b.clone(), 1);
    sim.rng = ChaCha8Rng::seed_from_u64(1); // finish_placement's cut-off draw: not cut off
    finish_placement(&mut sim, &mut s, fast, partition, deadlines);
    assert!(s.current.is_some(), "B's order is placed");
    // A's stalled placement comes back: the gate refuses it, and one order holds the code.
    let mut s = Shopper::new(a.clone(), 1);
    let a_partition = crate::cluster::partition_of(a.as_str().as_bytes(), 16);
    sim.rng = ChaCha8Rng::seed_from_u64(1);
    finish_placement(&mut sim, &mut s, slow, a_partition, deadlines);
    assert_eq!(s.current, None, "A's late placement is refused");
    sim.drain();
    assert_eq!(live_with(&sim, "ONLY-ONE"), 1);
    let report = invariants::check(&sim, sim.now_ms, 0);
    assert!(report.ok, "{:?}", report.violations());
}

#[test]
fn sim_a_cancelled_order_gives_its_use_back_once_the_code_hears_of_it() {
    let mut sim = Sim::new(8);
    one_use_code_and_a_product(&mut sim, "ONCE", pricing::Discount::Amount(100));
    sim.drain();
    let deadlines = Deadlines { booking_ms: 60_000, payment_ms: 60_000 };
    let a = CustomerId::parse("a@example.com").unwrap();
    let (p, partition) = place_with(&mut sim, &a, "ONCE");
    let mut s = Shopper::new(a.clone(), 1);
    sim.rng = ChaCha8Rng::seed_from_u64(1);
    finish_placement(&mut sim, &mut s, p, partition, deadlines);
    let order = s.current.clone().expect("placed");
    sim.command::<OrderKind>(&order, OrderCommand::Cancel(Canceller::Customer(a.clone()))).unwrap();
    // Until the cancellation reaches the code, its one use is still given out.
    let b = CustomerId::parse("b@example.com").unwrap();
    let hold = PromoCommand::Hold { order: OrderId::for_customer(0, &b, 1), number: 1, customer: b.clone() };
    assert!(sim.command::<PromoKind>(&"ONCE".to_owned(), hold.clone()).is_err());
    sim.drain();
    assert!(sim.command::<PromoKind>(&"ONCE".to_owned(), hold).is_ok());
}

#[test]
fn sim_a_seed_replays_exactly() {
    let a = run(42).unwrap();
    let b = run(42).unwrap();
    assert_eq!(a.stored(), b.stored());
    assert_eq!(a.delivered, b.delivered);
    let c = run(43).unwrap();
    assert_ne!(a.stored(), c.stored());
}

/// The status of `order` as stored.
fn status_of(sim: &Sim, order: &OrderId) -> String {
    let (_, schema, body) =
        sim.states("order", "order").unwrap().into_iter().find(|(k, _, _)| *k == order.to_string()).expect("stored");
    OrderKind::decode_state(order, schema, &body).unwrap().expect("an order").status.name().to_owned()
}

#[test]
fn sim_a_lane_to_a_cut_off_node_parks_and_a_lost_acknowledgement_takes_effect_once() {
    let mut sim = Sim::cluster(11, 3);
    book_at_ten_euros(&mut sim);
    sim.command::<StockItemKind>(&sku("sim-a"), StockCommand::Receive { qty: Qty::new(1), dims: None }).unwrap();
    sim.drain();
    // A customer whose orders live on another node than the book's stock.
    let stock = sim.owner_of("sim-a");
    let who = (0..100)
        .map(|i| CustomerId::parse(&format!("c{i}@example.com")).unwrap())
        .find(|c| sim.owner_of(c.as_str()) != stock)
        .expect("16 partitions over 3 nodes");
    let home = sim.owner_of(who.as_str());
    sim.cut_link(home, stock);
    let price = sim.command::<PriceKind>(&sku("sim-a"), crate::actors::order::PriceQuery::Get).unwrap();
    let lines = vec![Line { product: sku("sim-a"), name: price.name, unit_price: price.price, qty: Qty::new(1) }];
    let priced = pricing::price(lines, None, sim.now_ms, Currency::EUR).unwrap();
    let partition = crate::cluster::partition_of(who.as_str().as_bytes(), PARTITIONS);
    let deadlines = Deadlines { booking_ms: 60_000, payment_ms: 60_000 };
    let cmd = GateCommand::Place { priced, partition, deadlines, hold: None };
    let Ok(crate::actors::order::GateReply::Placed(o)) = sim.command::<GateKind>(&who, cmd) else { panic!("placed") };
    // The booking cannot reach the stock's node: its lane parks, nothing is dead-lettered.
    for _ in 0..200 {
        sim.deliver_one(0.0);
    }
    assert!(sim.stats.parked > 0, "{:?}", sim.stats);
    assert_eq!(status_of(&sim, &o.id), "BOOKING_PENDING");
    assert!(sim.dead.is_empty(), "{:?}", sim.dead);
    // The link heals, and every remote commit loses its acknowledgement: delivered again, it
    // takes effect once (the book has one unit; booking it twice would fail the order).
    sim.cut.clear();
    sim.lose = 1.0;
    for _ in 0..200 {
        sim.deliver_one(0.0);
    }
    assert!(sim.stats.acks_lost > 0, "{:?}", sim.stats);
    sim.drain();
    assert_eq!(status_of(&sim, &o.id), "BOOKED");
    assert!(sim.dead.is_empty(), "{:?}", sim.dead);
    let report = invariants::check(&sim, sim.now_ms, 0);
    assert!(report.ok, "{:?}", report.violations());
    sim.check_placement().unwrap();
}

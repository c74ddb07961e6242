//! The simulation's own tests: seeds pass, replays are identical, scripted races end right.

use super::*;

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
                total.orders += sim.stats.orders;
                total.promo_orders += sim.stats.promo_orders;
                total.promo_refused += sim.stats.promo_refused;
                total.promo_cut_off += sim.stats.promo_cut_off;
                total.holds_checked += sim.stats.holds_checked;
            }
            Err(e) => panic!("seed {seed} failed (replay with BAZAAR_SIM_SEED={seed}): {e}"),
        }
    }
    assert!(steps > 0);
    if seeds().len() >= 100 {
        // What the runs are for happened: promo codes were used, used up, and cut off.
        assert!(total.promo_orders > 0 && total.promo_refused > 0 && total.promo_cut_off > 0, "{total:?}");
        assert!(total.holds_checked > 0, "{total:?}");
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
    let s = Shopper { id: b.clone(), orders_left: 1, current: None, placing: None };
    let mut s = s;
    sim.rng = ChaCha8Rng::seed_from_u64(1); // finish_placement's cut-off draw: not cut off
    finish_placement(&mut sim, &mut s, fast, partition, deadlines);
    assert!(s.current.is_some(), "B's order is placed");
    // A's stalled placement comes back: the gate refuses it, and one order holds the code.
    let mut s = Shopper { id: a.clone(), orders_left: 1, current: None, placing: None };
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
    let mut s = Shopper { id: a.clone(), orders_left: 1, current: None, placing: None };
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
    assert_eq!(a.states, b.states);
    assert_eq!(a.delivered, b.delivered);
    let c = run(43).unwrap();
    assert_ne!(a.states, c.states);
}

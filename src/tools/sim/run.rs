//! The scripted world a simulation runs: a catalogue and promo codes, shoppers who place
//! (with a double click now and then, or a promo code's hold first), pay in full, in parts or
//! failing, and cancel; operators who cancel and ship; a payment system that calls back late or
//! twice; relay restarts; the clock; and, on several nodes, crashes and cut links. Then the
//! checks every run must pass.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;

use super::{Failed, Sim, PARTITIONS};
use crate::actors::catalogue::{ProductCommand, ProductKind};
use crate::actors::customer::{CustomerCommand, CustomerKind};
use crate::actors::kind::EntityKind;
use crate::actors::notification::SendRecordKind;
use crate::actors::order::{GateCommand, GateKind, OrderCommand, OrderKind, PriceKind};
use crate::actors::payment::{PaymentAccountKind, PaymentCommand, PaymentReply};
use crate::actors::promo::{PromoCommand, PromoKind};
use crate::actors::shipping::{ShipmentKind, ShippingCommand};
use crate::actors::stock::StockItemKind;
use crate::app::invariants;
use crate::domain::customer::{Channel, Communication};
use crate::domain::notification::EventType;
use crate::domain::order::{Canceller, Deadlines};
use crate::domain::payment::{Callback, CallbackStatus, Payment};
use crate::domain::pricing::{self, Line};
use crate::domain::saga::ShipmentStatus;
use crate::domain::stock::StockCommand;
use crate::domain::{Currency, CustomerId, MessageId, Money, OrderId, Qty, Sku};
use crate::persistence::StateSource;

const PRODUCTS: [(&str, i64, u32); 3] = [("sim-a", 1000, 6), ("sim-b", 750, 3), ("sim-c", 2000, 1)];

pub(super) fn sku(s: &str) -> Sku {
    Sku::parse(s).expect("valid")
}

/// Promo codes of a run: (token, usage limit).
const CODES: [(&str, Option<u32>); 3] = [("SIM-ONE", Some(1)), ("SIM-TWO", Some(2)), ("SIM-ANY", None)];

/// A placement with a promo code between its hold and its order (as `Shop::place_order_as`
/// runs it, cut into steps so other work interleaves, and sometimes cut off for good).
#[derive(Debug, Clone)]
pub(super) struct Placement {
    pub(super) token: String,
    /// The code as its hold's answer gave it (what the order is priced with).
    pub(super) code: crate::domain::promo::Promocode,
    pub(super) hold: MessageId,
    pub(super) number: u64,
    pub(super) order: OrderId,
    pub(super) lines: Vec<Line>,
}

/// What a simulated customer does next.
#[derive(Debug, Clone)]
pub(super) struct Shopper {
    pub(super) id: CustomerId,
    pub(super) orders_left: u32,
    pub(super) current: Option<OrderId>,
    pub(super) placing: Option<Placement>,
    /// Every order this shopper was told it placed.
    pub(super) known: BTreeSet<OrderId>,
}

impl Shopper {
    pub(super) fn new(id: CustomerId, orders_left: u32) -> Shopper {
        Shopper { id, orders_left, current: None, placing: None, known: BTreeSet::new() }
    }

    /// Order `o` is placed (its answer came back, or the gate named it).
    fn placed(&mut self, sim: &mut Sim, o: OrderId) {
        self.known.insert(o.clone());
        self.current = Some(o);
        self.orders_left -= 1;
        sim.stats.orders += 1;
    }
}

/// One simulated run. `Err` says what broke.
pub fn run(seed: u64) -> Result<Sim, String> {
    // One seed in three runs one node, one two nodes, one three.
    let nodes = usize::try_from(seed % 3).unwrap_or(0) + 1;
    let mut sim = Sim::cluster(seed, nodes);
    let deadlines = Deadlines { booking_ms: 5_000, payment_ms: 20_000 };
    for (id, price, qty) in PRODUCTS {
        let r = sim.command::<ProductKind>(
            &sku(id),
            ProductCommand::Add {
                name: id.into(),
                description: String::new(),
                price: Money::new(price, Currency::EUR),
                photo: None,
            },
        );
        r.map_err(|e| e.to_string())?;
        sim.command::<StockItemKind>(&sku(id), StockCommand::Receive { qty: Qty::new(qty), dims: None })
            .map_err(|e| e.to_string())?;
    }
    for (token, limit) in CODES {
        let rule = pricing::Rule {
            discount: pricing::Discount::Percent(10),
            product_ids: None,
            min_total: None,
            valid_from_ms: None,
            valid_until_ms: None,
            usage_limit: limit,
        };
        let cmd = PromoCommand::Create { description: token.into(), rule };
        sim.command::<PromoKind>(&token.to_owned(), cmd).map_err(|e| e.to_string())?;
    }
    sim.drain();
    let customers = sim.rng.gen_range(1..=4);
    let mut shoppers: Vec<Shopper> = (0..customers)
        .map(|i| {
            let id = CustomerId::parse(&format!("sim{i}@example.com")).expect("valid");
            Shopper::new(id, sim.rng.gen_range(1..=3))
        })
        .collect();
    for s in &shoppers {
        // Some customers register late: their notifications must wait for the profile.
        if sim.rng.gen_bool(0.8) {
            let comms = vec![Communication { channel: Channel::Email, address: s.id.to_string() }];
            sim.command::<CustomerKind>(
                &s.id,
                CustomerCommand::Register { name: "Sim".into(), last_name: "User".into(), communications: comms },
            )
            .map_err(|e| e.to_string())?;
        }
    }
    let scheduled: u32 = shoppers.iter().map(|s| s.orders_left).sum();
    let mut callbacks: Vec<(OrderId, Callback)> = Vec::new();
    let dup = sim.rng.gen_range(0.0..0.3);
    // In a cluster, nodes crash and links are cut at random and between a remote commit and its
    // answer; a single node sees none of it.
    let faults = if nodes > 1 { 104 } else { 100 };
    sim.lose = if nodes > 1 { sim.rng.gen_range(0.0..0.05) } else { 0.0 };
    for _step in 0..8_000 {
        let busy = shoppers.iter().any(|s| s.orders_left > 0 || s.current.is_some() || s.placing.is_some())
            || !callbacks.is_empty();
        if !busy && !sim.pending() {
            break;
        }
        match sim.rng.gen_range(0..faults) {
            0..=54 => {
                sim.deliver_one(dup);
            }
            55..=69 => {
                let i = sim.rng.gen_range(0..shoppers.len());
                shop_step(&mut sim, &mut shoppers[i], deadlines, &mut callbacks);
            }
            70..=79 => {
                // The payment system calls back, maybe twice, maybe late.
                // Unanswered, it calls again later.
                if !callbacks.is_empty() {
                    let i = sim.rng.gen_range(0..callbacks.len());
                    let (order, c) = callbacks[i].clone();
                    let answered = sim.call::<PaymentAccountKind>(&order, PaymentCommand::Callback(c)).is_ok();
                    if answered && !sim.rng.gen_bool(0.2) {
                        callbacks.swap_remove(i);
                    }
                }
            }
            80..=84 => {
                // An operator cancels or ships some order.
                if let Some((key, _, _)) = sim.states("order", "order").ok().and_then(|v| {
                    if v.is_empty() {
                        None
                    } else {
                        let i = sim.rng.gen_range(0..v.len());
                        v.into_iter().nth(i)
                    }
                }) {
                    let order = OrderId::parse(&key).map_err(|e| e.to_string())?;
                    match sim.rng.gen_range(0..4) {
                        0 => {
                            let _ = sim.call::<OrderKind>(&order, OrderCommand::Cancel(Canceller::Operator));
                        }
                        n => {
                            let to =
                                [ShipmentStatus::Assembled, ShipmentStatus::Shipped, ShipmentStatus::Delivered][n - 1];
                            let _ = sim.call::<ShipmentKind>(&order, ShippingCommand::Step(to));
                        }
                    }
                }
            }
            85..=89 => {
                // A relay restart: every lane's head comes once more.
                for node in &mut sim.nodes {
                    let heads: Vec<_> = node.lanes.iter().map(|(l, q)| (l.clone(), q[0].clone())).collect();
                    for (l, e) in heads {
                        node.lanes.entry(l).or_default().insert(0, e);
                    }
                }
            }
            90..=92 => {
                for s in &shoppers {
                    if sim.rng.gen_bool(0.5) {
                        let comms = vec![Communication { channel: Channel::Email, address: s.id.to_string() }];
                        let _ = sim.call::<CustomerKind>(
                            &s.id,
                            CustomerCommand::Register {
                                name: "Late".into(),
                                last_name: "User".into(),
                                communications: comms,
                            },
                        );
                    }
                }
            }
            100 => {
                // A node crashes (one at a time: the others keep serving).
                if sim.nodes.iter().all(|n| n.up) {
                    let n = sim.rng.gen_range(0..nodes);
                    sim.crash(n);
                }
            }
            101 | 102 => {
                if let Some(n) = (0..nodes).find(|n| !sim.nodes[*n].up) {
                    sim.nodes[n].up = true;
                }
            }
            103 => {
                if sim.rng.gen_bool(0.5) {
                    let (a, b) = (sim.rng.gen_range(0..nodes), sim.rng.gen_range(0..nodes));
                    sim.cut_link(a, b);
                } else if let Some(l) = sim.cut.iter().next().copied() {
                    sim.cut.remove(&l);
                }
            }
            _ => {
                // Now and then a long pause, past a promo hold's check (`PROMO_HOLD_MS`).
                let ms = if sim.rng.gen_bool(0.15) {
                    sim.rng.gen_range(crate::limits::PROMO_HOLD_MS..2 * crate::limits::PROMO_HOLD_MS)
                } else {
                    sim.rng.gen_range(1..3_000)
                };
                sim.advance(ms);
            }
        }
    }
    // Whatever is left: every node comes back and every link heals, every late callback
    // arrives, then time runs past every deadline.
    sim.heal();
    for (order, c) in std::mem::take(&mut callbacks) {
        let _ = sim.command::<PaymentAccountKind>(&order, PaymentCommand::Callback(c));
    }
    sim.drain();
    sim.advance(deadlines.booking_ms + deadlines.payment_ms + 1);
    sim.drain();
    if !sim.dead.is_empty() {
        return Err(format!("deliveries or commands failed for good: {:?}", sim.dead));
    }
    // Every order the seed scheduled was placed (so a run that could not place one fails), and
    // every saga started also ended (checked below, order by order).
    let left: u32 = shoppers.iter().map(|s| s.orders_left).sum();
    if left > 0 || u64::from(scheduled) != sim.stats.orders {
        return Err(format!("{scheduled} orders scheduled, {} placed, {left} never placed", sim.stats.orders));
    }
    let report = invariants::check(&sim, sim.now_ms, 0);
    if !report.ok {
        return Err(format!("invariants broken: {:#?}", report.violations()));
    }
    sim.check_placement()?;
    // Notifications: one ORDER_PAID per order that was paid (its customer registered by now),
    // none for an order never paid.
    let mut paid_sends: BTreeMap<String, u32> = BTreeMap::new();
    for (k, schema, body) in sim.states("notification", "send")? {
        let rec = SendRecordKind::decode_state(&k, schema, &body).map_err(|e| e.to_string())?;
        let r = rec.request.ok_or("a send record without its request")?;
        if r.event_type == EventType::OrderPaid {
            *paid_sends.entry(r.order_id.to_string()).or_default() += 1;
        }
    }
    // Every saga ended: nothing unpaid is left once every deadline passed.
    for (k, schema, body) in sim.states("order", "order")? {
        let key = OrderId::parse(&k).map_err(|e| e.to_string())?;
        let o = OrderKind::decode_state(&key, schema, &body)
            .map_err(|e| e.to_string())?
            .ok_or("an empty order is stored")?;
        if o.status.is_unpaid() {
            return Err(format!("order {k} is still {} after every deadline", o.status.name()));
        }
        let was_paid = o.timeline.iter().any(|t| t.event == "OrderEvent(PAID)");
        let registered = !sim.states("customer", "profile")?.iter().all(|(c, _, _)| *c != o.customer_id.to_string());
        let sent = paid_sends.get(&k).copied().unwrap_or(0);
        if was_paid && registered && sent != 1 {
            return Err(format!("order {k} was paid; {sent} ORDER_PAID notices were sent"));
        }
        if !was_paid && sent != 0 {
            return Err(format!("order {k} was never paid but {sent} ORDER_PAID notices were sent"));
        }
    }
    Ok(sim)
}

fn shop_step(sim: &mut Sim, s: &mut Shopper, deadlines: Deadlines, callbacks: &mut Vec<(OrderId, Callback)>) {
    use crate::actors::order::GateReply;
    use crate::domain::DomainError;
    let redirect = "/sandbox/pay/{id}".to_owned();
    let partition = crate::cluster::partition_of(s.id.as_str().as_bytes(), PARTITIONS);
    if let Some(p) = s.placing.take() {
        finish_placement(sim, s, p, partition, deadlines);
        return;
    }
    match s.current.clone() {
        None if s.orders_left > 0 => {
            let mut lines = Vec::new();
            for _ in 0..sim.rng.gen_range(1..=2) {
                let (id, _, _) = PRODUCTS[sim.rng.gen_range(0..PRODUCTS.len())];
                let Ok(Some(price)) = sim.call::<PriceKind>(&sku(id), crate::actors::order::PriceQuery::Get) else {
                    return;
                };
                lines.push(Line {
                    product: sku(id),
                    name: price.name,
                    unit_price: price.price,
                    qty: Qty::new(sim.rng.gen_range(1..=2)),
                });
            }
            if sim.rng.gen_bool(0.5) {
                // With a promo code: take a hold now; the order comes in a later step.
                let token = CODES[sim.rng.gen_range(0..CODES.len())].0.to_owned();
                let Ok(Ok(GateReply::State(g))) = sim.call::<GateKind>(&s.id, GateCommand::Get) else {
                    return;
                };
                let (number, order) = g.next_order(partition);
                let hold = sim.new_id();
                let cmd = PromoCommand::Hold { order: order.clone(), number, customer: s.id.clone() };
                match sim.call_as::<PromoKind>(&token, hold, cmd) {
                    Ok(Ok(code)) => s.placing = Some(Placement { token, code, hold, number, order, lines }),
                    Ok(Err(_)) => sim.stats.promo_refused += 1,
                    // No answer: a hold taken is given back by its check.
                    Err(_) => {}
                }
                return;
            }
            let Ok(priced) = pricing::price(lines, None, sim.now_ms, Currency::EUR) else { return };
            // A double click: the same order placed twice, back to back.
            let clicks = if sim.rng.gen_bool(0.3) { 2 } else { 1 };
            for _ in 0..clicks {
                let placed = sim.call::<GateKind>(
                    &s.id,
                    GateCommand::Place { priced: priced.clone(), partition, deadlines, hold: None },
                );
                match placed {
                    Ok(Ok(GateReply::Placed(o))) => s.placed(sim, o.id),
                    // An order this shopper never heard of: its placement's answer was lost.
                    Ok(Err(DomainError::UnpaidOrderExists { order }))
                        if s.current.is_none() && !s.known.contains(&order) =>
                    {
                        sim.stats.adopted += 1;
                        s.placed(sim, order);
                    }
                    // The second click of a double click, or the gate has not yet heard that the
                    // shopper's last order was paid or cancelled (they try again later; the run
                    // fails if any scheduled order is never placed).
                    Ok(Err(DomainError::UnpaidOrderExists { .. })) => {}
                    // No answer: tried again later (the gate tells whether it took effect).
                    Err(_) => return,
                    other => sim.dead.push(format!("placing an order: {other:?}")),
                }
            }
        }
        None => {}
        Some(order) => match sim.rng.gen_range(0..10) {
            0 => {
                let cmd = OrderCommand::Cancel(Canceller::Customer(s.id.clone()));
                if !matches!(sim.call::<OrderKind>(&order, cmd), Err(Failed::Unreachable)) {
                    s.current = None;
                }
            }
            _ => {
                let opened = sim.call::<PaymentAccountKind>(
                    &order,
                    PaymentCommand::Open { links: crate::actors::payment::PaymentLinks::template(&redirect, &order) },
                );
                match opened {
                    Ok(Ok(PaymentReply::Payment(p))) => {
                        let c = callback(sim, &p);
                        callbacks.push((order, c));
                    }
                    Ok(Err(DomainError::NotPayable { reason }))
                        if reason != crate::domain::NotPayableReason::NotBookedYet =>
                    {
                        s.current = None;
                    }
                    _ => {}
                }
            }
        },
    }
}

/// The second half of a placement with a promo code: place under the hold, or give the hold
/// back when the gate refuses; one in ten is cut off (a crashed front) and leaves the hold to
/// its check, as does a placement that got no answer.
pub(super) fn finish_placement(sim: &mut Sim, s: &mut Shopper, p: Placement, partition: u32, deadlines: Deadlines) {
    use crate::actors::order::GateReply;
    use crate::domain::DomainError;
    if sim.rng.gen_bool(0.1) {
        sim.stats.promo_cut_off += 1;
        return;
    }
    let promo = pricing::Promo { token: p.code.token, rule: p.code.rule, used_count: p.code.used_count };
    let placed = match pricing::price(p.lines, Some(&promo), sim.now_ms, Currency::EUR) {
        Ok(priced) => {
            let cmd = GateCommand::Place { priced, partition, deadlines, hold: Some(p.number) };
            match sim.call::<GateKind>(&s.id, cmd) {
                Ok(r) => r,
                // Outcome unknown: the hold's check settles it; the gate tells the shopper.
                Err(_) => return,
            }
        }
        Err(e) => Err(e),
    };
    match placed {
        Ok(GateReply::Placed(o)) if o.id == p.order => {
            s.placed(sim, o.id);
            sim.stats.promo_orders += 1;
            return;
        }
        // The hold's number was fenced meanwhile, the order priced below the code's minimum, or
        // the gate has not yet heard that the last order was paid or cancelled.
        Err(
            DomainError::Raced { .. } | DomainError::UnpaidOrderExists { .. } | DomainError::PromoNotApplicable { .. },
        ) => {}
        other => sim.dead.push(format!("placing an order with {}: {other:?}", p.token)),
    }
    let _ = sim.call::<PromoKind>(&p.token, PromoCommand::Release { order: p.order, cause: p.hold });
}

fn callback(sim: &mut Sim, p: &Payment) -> Callback {
    let (status, amount) = match sim.rng.gen_range(0..10) {
        0 => (CallbackStatus::Failed, 0),
        1 => (CallbackStatus::Succeeded, p.amount.minor() / 2),
        2 => (CallbackStatus::Succeeded, p.amount.minor() + 100),
        _ => (CallbackStatus::Succeeded, p.amount.minor()),
    };
    Callback {
        payment_id: p.id.clone(),
        system_pay_id: format!("sim-{}", p.id),
        status,
        amount: Money::new(amount, Currency::EUR),
    }
}

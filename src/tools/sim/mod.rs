//! A deterministic simulation of the whole saga: every service's entity kind, driven through the
//! same pure handlers and the same planning code as the entity actors, over in-memory stores
//! with the engine's semantics (inbox deduplication per service, versioned states, outbox
//! fan-out by subscription, per-lane ordering, timers).
//!
//! A run is a function of its seed alone: customers place, pay (in full, in parts, or failing),
//! cancel; operators cancel and ship; the bus delivers pending events lane by lane in a random
//! interleaving, redelivers some (an acknowledgement lost, a relay restart), and the clock moves
//! so deadlines fire. At the end everything is drained and the invariant checker must find
//! nothing. `BAZAAR_SIM_SEEDS=N` runs N seeds; `BAZAAR_SIM_SEED=S` replays seed S.
//!
//! Over 600 lines on purpose: the in-memory engine (stores, inbox, outbox, lanes, timers) and
//! the scripted actors that drive it are one model read top to bottom; split, each half would
//! need the other's private state.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::marker::PhantomData;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::actors::catalogue::{ProductCommand, ProductKind, StockProjectionKind};
use crate::actors::customer::{CustomerCommand, CustomerKind};
use crate::actors::kind::EntityKind;
use crate::actors::kind::{Change, CommandOutcome, EventOutcome, Statuses, Timer, TimerOp};
use crate::actors::notification::{NotificationsKind, SendCommand, SendOutcome, SendRecordKind};
use crate::actors::order::{GateCommand, GateKind, OrderCommand, OrderKind, PriceKind};
use crate::actors::payment::{PaymentAccountKind, PaymentCommand, PaymentReply};
use crate::actors::plan::{plan, Plan};
use crate::actors::promo::{PromoCommand, PromoKind};
use crate::actors::shipping::{ShipmentKind, ShippingCommand};
use crate::actors::stock::{StockBookingKind, StockItemKind};
use crate::app::invariants;
use crate::domain::customer::{Channel, Communication};
use crate::domain::notification::{EventType, SendRequest};
use crate::domain::order::{Canceller, Deadlines};
use crate::domain::payment::{Callback, CallbackStatus, Payment};
use crate::domain::pricing::{self, Line};
use crate::domain::saga::ShipmentStatus;
use crate::domain::stock::StockCommand;
use crate::domain::{Ctx, Currency, CustomerId, MessageId, Money, NodeId, OrderId, Qty, Sku};
use crate::persistence::StateSource;
use crate::persistence::{DeliveryError, Envelope, Subscriptions};

type StateRow = (u16, Vec<u8>, u64);

/// The notification sender's destination.
const SENDER: &str = "notification/sender";

/// The simulated node: stores, bus and clock.
pub struct Sim {
    rng: ChaCha8Rng,
    now_ms: u64,
    node: NodeId,
    states: BTreeMap<String, BTreeMap<String, StateRow>>,
    inbox: BTreeMap<String, HashSet<MessageId>>,
    timers: BTreeSet<(u64, String, String, String, String)>,
    lanes: BTreeMap<(String, String), Vec<Envelope>>,
    subscriptions: Subscriptions,
    kinds: BTreeMap<String, Box<dyn SimKind>>,
    /// Deliveries that failed for good, and commands refused for a reason the run never causes
    /// (must stay empty).
    pub dead: Vec<String>,
    /// Events delivered, counting repeats.
    pub delivered: u64,
    /// What the run did (so a test can see that it did it).
    pub stats: SimStats,
}

/// Counts of what a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Orders placed.
    pub orders: u64,
    /// Of them, with a promo code.
    pub promo_orders: u64,
    /// Placements refused a promo code's use (its limit reached).
    pub promo_refused: u64,
    /// Placements cut off between their hold and their order (the hold left to its check).
    pub promo_cut_off: u64,
    /// Holds that asked their gate whether their order exists.
    pub holds_checked: u64,
}

/// A kind's event and timer handling with its types erased.
trait SimKind {
    fn event_key(&self, env: &Envelope) -> Result<String, String>;
    fn on_event(&self, sim: &mut Sim, key: &str, env: &Envelope) -> Result<(), DeliveryError>;
    fn on_timer(&self, sim: &mut Sim, key: &str, tag: &str, due_ms: u64);
}

struct Adapter<K>(PhantomData<fn() -> K>);

fn dest<K: EntityKind>() -> String {
    format!("{}/{}", K::SERVICE, K::AGGREGATE)
}

impl<K: EntityKind> SimKind for Adapter<K> {
    fn event_key(&self, env: &Envelope) -> Result<String, String> {
        K::event_key(env).map(|k| k.to_string())
    }

    fn on_event(&self, sim: &mut Sim, key: &str, env: &Envelope) -> Result<(), DeliveryError> {
        let key = K::parse_key(key).map_err(DeliveryError::Permanent)?;
        if sim.seen::<K>(&env.message_id) {
            return Ok(());
        }
        let (state, version) = sim.load::<K>(&key);
        let ctx = sim.ctx(env.message_id);
        let outcome = K::on_event(&key, &state, env, &ctx)?;
        sim.apply_outcome::<K>(&key, &state, version, env.message_id, outcome, &ctx);
        Ok(())
    }

    fn on_timer(&self, sim: &mut Sim, key: &str, tag: &str, due_ms: u64) {
        let Ok(k) = K::parse_key(key) else { return };
        let raw = crate::persistence::store::timer_key(due_ms, K::AGGREGATE, key, tag);
        let id = MessageId::derived(&[b"timer", &raw]);
        sim.timers.remove(&(due_ms, K::SERVICE.into(), K::AGGREGATE.into(), key.into(), tag.into()));
        if sim.seen::<K>(&id) {
            return;
        }
        let (state, version) = sim.load::<K>(&k);
        let ctx = sim.ctx(id);
        let outcome = K::on_timer(&k, &state, &Timer { tag: tag.into(), due_ms }, &ctx);
        sim.apply_outcome::<K>(&k, &state, version, id, outcome, &ctx);
    }
}

impl StateSource for Sim {
    fn states(&self, service: &str, aggregate: &str) -> Result<Vec<(String, u16, Vec<u8>)>, String> {
        Ok(self
            .states
            .get(&format!("{service}/{aggregate}"))
            .map(|m| m.iter().map(|(k, (s, b, _))| (k.clone(), *s, b.clone())).collect())
            .unwrap_or_default())
    }
}

impl Sim {
    /// A simulated node seeded with `seed`.
    pub fn new(seed: u64) -> Sim {
        let mut sim = Sim {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now_ms: 1_800_000_000_000,
            node: NodeId::parse("sim").expect("valid"),
            states: BTreeMap::new(),
            inbox: BTreeMap::new(),
            timers: BTreeSet::new(),
            lanes: BTreeMap::new(),
            subscriptions: Subscriptions::default(),
            kinds: BTreeMap::new(),
            dead: Vec::new(),
            delivered: 0,
            stats: SimStats::default(),
        };
        sim.add::<ProductKind>();
        sim.add::<StockProjectionKind>();
        sim.add::<CustomerKind>();
        sim.add::<GateKind>();
        sim.add::<OrderKind>();
        sim.add::<PriceKind>();
        sim.add::<StockItemKind>();
        sim.add::<StockBookingKind>();
        sim.add::<PaymentAccountKind>();
        sim.add::<ShipmentKind>();
        sim.add::<NotificationsKind>();
        sim.add::<SendRecordKind>();
        sim.add::<PromoKind>();
        sim.subscriptions.add(crate::persistence::Topic::NotificationSend, SENDER);
        sim
    }

    fn add<K: EntityKind>(&mut self) {
        for t in K::topics() {
            self.subscriptions.add_filtered(*t, &dest::<K>(), K::status_filter(*t).map(Statuses::names));
        }
        self.kinds.insert(dest::<K>(), Box::new(Adapter::<K>(PhantomData)));
    }

    fn ctx(&self, cause: MessageId) -> Ctx {
        Ctx { now_ms: self.now_ms, node: self.node.clone(), cause }
    }

    fn new_id(&mut self) -> MessageId {
        MessageId::from_bytes(self.rng.gen())
    }

    fn seen<K: EntityKind>(&self, id: &MessageId) -> bool {
        self.inbox.get(K::SERVICE).is_some_and(|s| s.contains(id))
    }

    fn load<K: EntityKind>(&self, key: &K::Key) -> (K::State, u64) {
        match self.states.get(&dest::<K>()).and_then(|m| m.get(&key.to_string())) {
            Some((schema, body, v)) => {
                (K::decode_state(key, *schema, body).expect("the sim stores only what it encoded"), *v)
            }
            None => (K::initial(key), 0),
        }
    }

    fn apply_outcome<K: EntityKind>(
        &mut self,
        key: &K::Key,
        state: &K::State,
        version: u64,
        id: MessageId,
        outcome: EventOutcome<K>,
        ctx: &Ctx,
    ) {
        let (change, extra) = match outcome {
            EventOutcome::Changed(c) => (Some(c), Vec::new()),
            EventOutcome::Emit(es) => (None, es),
            EventOutcome::Ignored => (None, Vec::new()),
        };
        self.apply_change::<K>(key, state, version, id, change.as_ref(), &extra, ctx);
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_change<K: EntityKind>(
        &mut self,
        key: &K::Key,
        state: &K::State,
        version: u64,
        id: MessageId,
        change: Option<&Change<K::State>>,
        extra: &[crate::actors::kind::Emit],
        ctx: &Ctx,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.rng.gen());
        let mut ids = move || MessageId::from_bytes(rng.gen());
        let p: Plan = plan::<K>(key, version, state, (id, None), change, extra, ctx, &mut ids).expect("plans encode");
        self.inbox.entry(K::SERVICE.into()).or_default().insert(id);
        let k = key.to_string();
        if let Some((schema, body)) = p.state {
            self.states.entry(dest::<K>()).or_default().insert(k.clone(), (schema, body, p.version));
        }
        for c in p.creates {
            let tree = format!("{}/{}", K::SERVICE, c.aggregate);
            let prev = self.states.entry(tree).or_default().insert(c.key.clone(), (c.schema, c.body, 1));
            assert!(prev.is_none(), "created {} over an existing aggregate", c.key);
            for t in c.timers {
                if let TimerOp::Set { tag, due_ms } = t {
                    self.timers.insert((due_ms, K::SERVICE.into(), c.aggregate.into(), c.key.clone(), tag));
                }
            }
        }
        for t in p.timers {
            match t {
                TimerOp::Set { tag, due_ms } => {
                    self.timers.insert((due_ms, K::SERVICE.into(), K::AGGREGATE.into(), k.clone(), tag));
                }
                TimerOp::Clear { tag, due_ms } => {
                    self.timers.remove(&(due_ms, K::SERVICE.into(), K::AGGREGATE.into(), k.clone(), tag));
                }
            }
        }
        for env in p.envelopes {
            let dests: Vec<String> =
                self.subscriptions.destinations(env.topic, &env.aggregate_status).map(str::to_owned).collect();
            for d in dests {
                self.lanes.entry((d, env.routing_key.clone())).or_default().push(env.clone());
            }
        }
    }

    /// Runs a command on entity `key` of kind `K`, as its actor would.
    pub fn command<K: EntityKind>(&mut self, key: &K::Key, cmd: K::Command) -> K::Reply {
        let id = self.new_id();
        self.command_as::<K>(key, id, cmd)
    }

    /// Runs a command under message id `id` (what its handler sees as the cause).
    pub fn command_as<K: EntityKind>(&mut self, key: &K::Key, id: MessageId, cmd: K::Command) -> K::Reply {
        let (state, version) = self.load::<K>(key);
        let ctx = self.ctx(id);
        match K::on_command(key, &state, cmd, &ctx) {
            CommandOutcome::Unchanged(r) => r,
            CommandOutcome::Changed { change, reply } => {
                self.apply_change::<K>(key, &state, version, id, Some(&change), &[], &ctx);
                reply
            }
        }
    }

    /// Delivers the head of a random lane. With probability `dup`, the head stays (its
    /// acknowledgement was lost) and comes again later. Returns false when nothing is pending.
    pub fn deliver_one(&mut self, dup: f64) -> bool {
        if self.lanes.is_empty() {
            return false;
        }
        let i = self.rng.gen_range(0..self.lanes.len());
        let lane = self.lanes.keys().nth(i).cloned().expect("index in range");
        let env = self.lanes.get(&lane).and_then(|q| q.first().cloned()).expect("lanes are never empty");
        let keep = self.rng.gen_bool(dup);
        if !keep {
            let q = self.lanes.get_mut(&lane).expect("present");
            q.remove(0);
            if q.is_empty() {
                self.lanes.remove(&lane);
            }
        }
        self.delivered += 1;
        if env.topic == crate::persistence::Topic::PromoHold {
            self.stats.holds_checked += 1;
        }
        if lane.0 == SENDER {
            self.send(&env);
            return true;
        }
        let Some(kind) = self.kinds.remove(&lane.0) else {
            self.dead.push(format!("no subscriber {}", lane.0));
            return true;
        };
        let r = kind.event_key(&env).map_err(DeliveryError::Permanent).and_then(|k| kind.on_event(self, &k, &env));
        self.kinds.insert(lane.0.clone(), kind);
        if let Err(e) = r {
            self.dead.push(format!("{} to {}: {e}", env.topic.name(), lane.0));
        }
        true
    }

    /// The notification sender: records the send (through the log sink) unless already sent.
    fn send(&mut self, env: &Envelope) {
        let r: SendRequest = match crate::persistence::events::decode(env.topic, env.schema_version, &env.payload) {
            Ok(r) => r,
            Err(e) => {
                self.dead.push(format!("notification.send: {e}"));
                return;
            }
        };
        let rec = self.command::<SendRecordKind>(&r.id, SendCommand::Get);
        if rec.status.is_none() {
            self.command::<SendRecordKind>(
                &r.id.clone(),
                SendCommand::Record { request: r, outcome: SendOutcome::Sent { sink: "log".into() } },
            );
        }
    }

    /// Moves the clock and fires every timer now due.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        while let Some(t) = self.timers.iter().next().cloned() {
            if t.0 > self.now_ms {
                break;
            }
            let (due, service, aggregate, key, tag) = t;
            let d = format!("{service}/{aggregate}");
            match self.kinds.remove(&d) {
                Some(kind) => {
                    kind.on_timer(self, &key, &tag, due);
                    self.kinds.insert(d, kind);
                }
                None => {
                    self.timers.remove(&(due, service, aggregate, key, tag));
                }
            }
        }
    }

    /// Delivers everything pending (no duplicates) and fires due timers, until quiet.
    pub fn drain(&mut self) {
        loop {
            while self.deliver_one(0.0) {}
            let before = self.timers.len();
            self.advance(0);
            if self.lanes.is_empty() && self.timers.len() == before {
                return;
            }
        }
    }

    /// The time.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }
}

const PRODUCTS: [(&str, i64, u32); 3] = [("sim-a", 1000, 6), ("sim-b", 750, 3), ("sim-c", 2000, 1)];

fn sku(s: &str) -> Sku {
    Sku::parse(s).expect("valid")
}

/// Promo codes of a run: (token, usage limit).
const CODES: [(&str, Option<u32>); 3] = [("SIM-ONE", Some(1)), ("SIM-TWO", Some(2)), ("SIM-ANY", None)];

/// A placement with a promo code between its hold and its order (as `Shop::place_order_as`
/// runs it, cut into steps so other work interleaves, and sometimes cut off for good).
#[derive(Debug, Clone)]
struct Placement {
    token: String,
    /// The code as its hold's answer gave it (what the order is priced with).
    code: crate::domain::promo::Promocode,
    hold: MessageId,
    number: u64,
    order: OrderId,
    lines: Vec<Line>,
}

/// What a simulated customer does next.
#[derive(Debug, Clone)]
struct Shopper {
    id: CustomerId,
    orders_left: u32,
    current: Option<OrderId>,
    placing: Option<Placement>,
}

/// One simulated run. `Err` says what broke.
pub fn run(seed: u64) -> Result<Sim, String> {
    let mut sim = Sim::new(seed);
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
        .map(|i| Shopper {
            id: CustomerId::parse(&format!("sim{i}@example.com")).expect("valid"),
            orders_left: sim.rng.gen_range(1..=3),
            current: None,
            placing: None,
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
    for _step in 0..4_000 {
        let busy = shoppers.iter().any(|s| s.orders_left > 0 || s.current.is_some() || s.placing.is_some())
            || !callbacks.is_empty();
        if !busy && sim.lanes.is_empty() {
            break;
        }
        match sim.rng.gen_range(0..100) {
            0..=54 => {
                sim.deliver_one(dup);
            }
            55..=69 => {
                let i = sim.rng.gen_range(0..shoppers.len());
                shop_step(&mut sim, &mut shoppers[i], deadlines, &mut callbacks);
            }
            70..=79 => {
                // The payment system calls back, maybe twice, maybe late.
                if !callbacks.is_empty() {
                    let i = sim.rng.gen_range(0..callbacks.len());
                    let (order, c) = callbacks[i].clone();
                    if !sim.rng.gen_bool(0.2) {
                        callbacks.swap_remove(i);
                    }
                    let _ = sim.command::<PaymentAccountKind>(&order, PaymentCommand::Callback(c));
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
                            let _ = sim.command::<OrderKind>(&order, OrderCommand::Cancel(Canceller::Operator));
                        }
                        n => {
                            let to =
                                [ShipmentStatus::Assembled, ShipmentStatus::Shipped, ShipmentStatus::Delivered][n - 1];
                            let _ = sim.command::<ShipmentKind>(&order, ShippingCommand::Step(to));
                        }
                    }
                }
            }
            85..=89 => {
                // A relay restart: every lane's head comes once more.
                let heads: Vec<_> = sim.lanes.iter().map(|(l, q)| (l.clone(), q[0].clone())).collect();
                for (l, e) in heads {
                    sim.lanes.entry(l).or_default().insert(0, e);
                }
            }
            90..=92 => {
                for s in &shoppers {
                    if sim.rng.gen_bool(0.5) {
                        let comms = vec![Communication { channel: Channel::Email, address: s.id.to_string() }];
                        let _ = sim.command::<CustomerKind>(
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
    // Whatever is left: every late callback arrives, then time runs past every deadline.
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
    let redirect = "/sandbox/pay/{id}".to_owned();
    let partition = crate::cluster::partition_of(s.id.as_str().as_bytes(), 16);
    if let Some(p) = s.placing.take() {
        finish_placement(sim, s, p, partition, deadlines);
        return;
    }
    match s.current.clone() {
        None if s.orders_left > 0 => {
            let mut lines = Vec::new();
            for _ in 0..sim.rng.gen_range(1..=2) {
                let (id, _, _) = PRODUCTS[sim.rng.gen_range(0..PRODUCTS.len())];
                let Some(price) = sim.command::<PriceKind>(&sku(id), crate::actors::order::PriceQuery::Get) else {
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
                let Ok(crate::actors::order::GateReply::State(g)) = sim.command::<GateKind>(&s.id, GateCommand::Get)
                else {
                    return;
                };
                let (number, order) = g.next_order(partition);
                let hold = sim.new_id();
                let cmd = PromoCommand::Hold { order: order.clone(), number, customer: s.id.clone() };
                match sim.command_as::<PromoKind>(&token, hold, cmd) {
                    Ok(code) => s.placing = Some(Placement { token, code, hold, number, order, lines }),
                    Err(_) => sim.stats.promo_refused += 1,
                }
                return;
            }
            let Ok(priced) = pricing::price(lines, None, sim.now_ms, Currency::EUR) else { return };
            // A double click: the same order placed twice, back to back.
            let clicks = if sim.rng.gen_bool(0.3) { 2 } else { 1 };
            for _ in 0..clicks {
                let placed = sim.command::<GateKind>(
                    &s.id,
                    GateCommand::Place { priced: priced.clone(), partition, deadlines, hold: None },
                );
                match placed {
                    Ok(crate::actors::order::GateReply::Placed(o)) => {
                        s.current = Some(o.id);
                        s.orders_left -= 1;
                        sim.stats.orders += 1;
                    }
                    // The second click of a double click, or the gate has not yet heard that the
                    // shopper's last order was paid or cancelled (they try again later; the run
                    // fails if any scheduled order is never placed).
                    Err(crate::domain::DomainError::UnpaidOrderExists { .. }) => {}
                    other => sim.dead.push(format!("placing an order: {other:?}")),
                }
            }
        }
        None => {}
        Some(order) => match sim.rng.gen_range(0..10) {
            0 => {
                let _ = sim.command::<OrderKind>(&order, OrderCommand::Cancel(Canceller::Customer(s.id.clone())));
                s.current = None;
            }
            _ => {
                let opened = sim.command::<PaymentAccountKind>(
                    &order,
                    PaymentCommand::Open { links: crate::actors::payment::PaymentLinks::template(&redirect, &order) },
                );
                match opened {
                    Ok(PaymentReply::Payment(p)) => {
                        let c = callback(sim, &p);
                        callbacks.push((order, c));
                    }
                    Err(crate::domain::DomainError::NotPayable { reason })
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
/// its check.
fn finish_placement(sim: &mut Sim, s: &mut Shopper, p: Placement, partition: u32, deadlines: Deadlines) {
    if sim.rng.gen_bool(0.1) {
        sim.stats.promo_cut_off += 1;
        return;
    }
    let promo = pricing::Promo { token: p.code.token, rule: p.code.rule, used_count: p.code.used_count };
    let placed = pricing::price(p.lines, Some(&promo), sim.now_ms, Currency::EUR).map(|priced| {
        sim.command::<GateKind>(&s.id, GateCommand::Place { priced, partition, deadlines, hold: Some(p.number) })
    });
    match placed {
        Ok(Ok(crate::actors::order::GateReply::Placed(o))) if o.id == p.order => {
            s.current = Some(o.id);
            s.orders_left -= 1;
            sim.stats.orders += 1;
            sim.stats.promo_orders += 1;
            return;
        }
        // The hold's number was fenced meanwhile, the order priced below the code's minimum, or
        // the gate has not yet heard that the last order was paid or cancelled.
        Ok(Err(crate::domain::DomainError::Raced { .. } | crate::domain::DomainError::UnpaidOrderExists { .. }))
        | Err(crate::domain::DomainError::PromoNotApplicable { .. }) => {}
        other => sim.dead.push(format!("placing an order with {}: {other:?}", p.token)),
    }
    let _ = sim.command::<PromoKind>(&p.token, PromoCommand::Release { order: p.order, cause: p.hold });
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

#[cfg(test)]
mod tests;

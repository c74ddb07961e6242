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
//! A run has one, two or three nodes, each with its own store, inbox, timers and relay lanes.
//! Keys go to their owners by the real `Router`, events to other nodes by the real
//! `Subscriptions` (a replicated subscriber's copies too). Nodes crash and links are cut, at
//! random and between a commit on one node and its answer or acknowledgement to another: calls
//! then answer as a real front would (503: nothing happened, or it happened and the answer was
//! lost), and lanes whose destination is unreachable park until it is back.
//!
//! This file is the engine (over 600 lines on purpose: stores, inbox, outbox, lanes, timers,
//! nodes and links are one model read top to bottom); `run` is the scripted world driving it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::marker::PhantomData;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::actors::catalogue::{ProductKind, StockProjectionKind};
use crate::actors::customer::CustomerKind;
use crate::actors::kind::EntityKind;
use crate::actors::kind::{Change, CommandOutcome, EventOutcome, Statuses, Timer, TimerOp};
use crate::actors::notification::{NotificationsKind, SendCommand, SendOutcome, SendRecordKind};
use crate::actors::order::{GateKind, OrderKind, PriceKind};
use crate::actors::payment::PaymentAccountKind;
use crate::actors::plan::{plan, Plan};
use crate::actors::promo::PromoKind;
use crate::actors::shipping::ShipmentKind;
use crate::actors::stock::{StockBookingKind, StockItemKind};
use crate::cluster::Router;
use crate::domain::notification::SendRequest;
use crate::domain::{Ctx, MessageId, NodeId};
use crate::persistence::StateSource;
use crate::persistence::{DeliveryError, Envelope, Subscriptions};

type StateRow = (u16, Vec<u8>, u64);
/// A timer: (due, service, aggregate, key, tag).
type TimerRow = (u64, String, String, String, String);

/// The notification sender's destination.
const SENDER: &str = "notification/sender";

/// Partitions of a simulated cluster (as `cluster.toml`'s default).
const PARTITIONS: u32 = 16;

/// One simulated node: its durable store (states, inbox, timers, outbox lanes) and whether it
/// runs. A crash loses nothing committed — as sled's atomic batches — only the answers and
/// acknowledgements not yet sent.
#[derive(Default)]
struct Node {
    states: BTreeMap<String, BTreeMap<String, StateRow>>,
    inbox: BTreeMap<String, HashSet<MessageId>>,
    timers: BTreeSet<TimerRow>,
    lanes: BTreeMap<(String, String), Vec<Envelope>>,
    subscriptions: Subscriptions,
    up: bool,
}

/// Why a call from one node to another got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// The owner is down or the link to it is cut: nothing happened (HTTP 503).
    Unreachable,
    /// It took effect, then the owner crashed or the link was cut before the answer came back
    /// (HTTP 503 too: the caller cannot tell the two apart).
    AnswerLost,
}

/// The simulated cluster: its nodes, the links between them, the bus and the clock. Ownership
/// comes from the same `Router` as a real node's (rendezvous over the configured names), never
/// from who is up.
pub struct Sim {
    rng: ChaCha8Rng,
    now_ms: u64,
    names: Vec<NodeId>,
    router: Router,
    nodes: Vec<Node>,
    /// The node running the handler at hand.
    at: usize,
    /// Links cut, as (lower, higher) node indexes.
    cut: BTreeSet<(usize, usize)>,
    /// The chance that a node crashes or its link is cut between a remote commit and its
    /// answer or acknowledgement.
    lose: f64,
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
    /// Nodes crashed (at random, or between a commit and its answer or acknowledgement).
    pub crashes: u64,
    /// Links cut.
    pub cuts: u64,
    /// Calls to another node that found it unreachable (nothing happened).
    pub unreachable: u64,
    /// Calls that took effect on another node whose answer was lost.
    pub answers_lost: u64,
    /// Remote deliveries committed whose acknowledgement was lost (so delivered again).
    pub acks_lost: u64,
    /// Lane heads left parked because their destination's node was unreachable.
    pub parked: u64,
    /// Orders a shopper learned of only from the gate (their placement's answer was lost).
    pub adopted: u64,
}

impl SimStats {
    /// Adds another run's counts.
    pub fn add(&mut self, o: &SimStats) {
        let SimStats {
            orders,
            promo_orders,
            promo_refused,
            promo_cut_off,
            holds_checked,
            crashes,
            cuts,
            unreachable,
            answers_lost,
            acks_lost,
            parked,
            adopted,
        } = *o;
        self.orders += orders;
        self.promo_orders += promo_orders;
        self.promo_refused += promo_refused;
        self.promo_cut_off += promo_cut_off;
        self.holds_checked += holds_checked;
        self.crashes += crashes;
        self.cuts += cuts;
        self.unreachable += unreachable;
        self.answers_lost += answers_lost;
        self.acks_lost += acks_lost;
        self.parked += parked;
        self.adopted += adopted;
    }
}

/// A kind's event and timer handling with its types erased.
trait SimKind {
    fn replicated(&self) -> bool;
    fn event_key(&self, env: &Envelope) -> Result<String, String>;
    fn on_event(&self, sim: &mut Sim, key: &str, env: &Envelope) -> Result<(), DeliveryError>;
    fn on_timer(&self, sim: &mut Sim, key: &str, tag: &str, due_ms: u64);
}

struct Adapter<K>(PhantomData<fn() -> K>);

fn dest<K: EntityKind>() -> String {
    format!("{}/{}", K::SERVICE, K::AGGREGATE)
}

impl<K: EntityKind> SimKind for Adapter<K> {
    fn replicated(&self) -> bool {
        K::REPLICATED
    }

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
        let at = sim.at;
        sim.nodes[at].timers.remove(&(due_ms, K::SERVICE.into(), K::AGGREGATE.into(), key.into(), tag.into()));
        if sim.seen::<K>(&id) {
            return;
        }
        let (state, version) = sim.load::<K>(&k);
        let ctx = sim.ctx(id);
        let outcome = K::on_timer(&k, &state, &Timer { tag: tag.into(), due_ms }, &ctx);
        sim.apply_outcome::<K>(&k, &state, version, id, outcome, &ctx);
    }
}

/// The whole cluster's stored aggregates, as `bazaar verify` reads several stopped nodes: each
/// partitioned key from the node holding it, a replicated key from the first node holding it.
impl StateSource for Sim {
    fn states(&self, service: &str, aggregate: &str) -> Result<Vec<(String, u16, Vec<u8>)>, String> {
        let tree = format!("{service}/{aggregate}");
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for node in &self.nodes {
            for (k, (s, b, _)) in node.states.get(&tree).into_iter().flatten() {
                if seen.insert(k.clone()) {
                    out.push((k.clone(), *s, b.clone()));
                }
            }
        }
        Ok(out)
    }
}

impl Sim {
    /// A simulated single node seeded with `seed`.
    pub fn new(seed: u64) -> Sim {
        Sim::cluster(seed, 1)
    }

    /// A simulated cluster of `nodes` nodes (at least one) seeded with `seed`.
    pub fn cluster(seed: u64, nodes: usize) -> Sim {
        let names: Vec<NodeId> =
            (1..=nodes.max(1)).map(|i| NodeId::parse(&format!("sim-{i}")).expect("valid")).collect();
        let router = Router::new(names[0].clone(), &names, PARTITIONS);
        let mut sim = Sim {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now_ms: 1_800_000_000_000,
            nodes: names.iter().map(|_| Node { up: true, ..Node::default() }).collect(),
            names,
            router,
            at: 0,
            cut: BTreeSet::new(),
            lose: 0.0,
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
        let names: Vec<String> = sim.names.iter().map(ToString::to_string).collect();
        for (i, node) in sim.nodes.iter_mut().enumerate() {
            node.subscriptions.add(crate::persistence::Topic::NotificationSend, SENDER);
            let peers = names.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, n)| n.clone()).collect();
            node.subscriptions.set_peers(peers);
        }
        sim
    }

    fn add<K: EntityKind>(&mut self) {
        for node in &mut self.nodes {
            for t in K::topics() {
                let statuses = K::status_filter(*t).map(Statuses::names);
                if K::REPLICATED {
                    node.subscriptions.add_replicated(*t, &dest::<K>(), statuses);
                } else {
                    node.subscriptions.add_filtered(*t, &dest::<K>(), statuses);
                }
            }
        }
        self.kinds.insert(dest::<K>(), Box::new(Adapter::<K>(PhantomData)));
    }

    fn ctx(&self, cause: MessageId) -> Ctx {
        Ctx { now_ms: self.now_ms, node: self.names[self.at].clone(), cause }
    }

    fn new_id(&mut self) -> MessageId {
        MessageId::from_bytes(self.rng.gen())
    }

    /// The node owning `key` under the configuration.
    fn owner_of(&self, key: &str) -> usize {
        let owner = self.router.owner(self.router.partition_of(key.as_bytes()));
        self.names.iter().position(|n| n == owner).unwrap_or(0)
    }

    /// Whether a call or delivery from node `from` reaches node `to`.
    fn reachable(&self, from: usize, to: usize) -> bool {
        from == to || (self.nodes[from].up && self.nodes[to].up && !self.cut.contains(&link(from, to)))
    }

    /// What goes wrong between a commit on `to` and its answer to `from`: `to` crashes (when
    /// every other node runs), or the link between them is cut.
    fn fault(&mut self, from: usize, to: usize) {
        if self.nodes.iter().all(|n| n.up) && self.rng.gen_bool(0.5) {
            self.crash(to);
        } else {
            self.cut_link(from, to);
        }
    }

    fn crash(&mut self, n: usize) {
        if self.nodes[n].up {
            self.nodes[n].up = false;
            self.stats.crashes += 1;
        }
    }

    fn cut_link(&mut self, a: usize, b: usize) {
        if a != b && self.cut.insert(link(a, b)) {
            self.stats.cuts += 1;
        }
    }

    /// Every node runs again and every link is whole; nothing is lost from here on.
    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.up = true;
        }
        self.cut.clear();
        self.lose = 0.0;
    }

    /// Each node's stored aggregates, by tree and key: (schema, body, version).
    #[allow(clippy::type_complexity)]
    pub fn stored(&self) -> Vec<&BTreeMap<String, BTreeMap<String, StateRow>>> {
        self.nodes.iter().map(|n| &n.states).collect()
    }

    fn seen<K: EntityKind>(&self, id: &MessageId) -> bool {
        self.nodes[self.at].inbox.get(K::SERVICE).is_some_and(|s| s.contains(id))
    }

    fn load<K: EntityKind>(&self, key: &K::Key) -> (K::State, u64) {
        match self.nodes[self.at].states.get(&dest::<K>()).and_then(|m| m.get(&key.to_string())) {
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

    /// Commits one write set on the node at hand, as its entity would: state, inbox, aggregates
    /// it creates, timers, and one outbox entry per destination of each event.
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
        let at = self.at;
        let k = key.to_string();
        for c in &p.creates {
            // A write set is one node's: what it creates must be that node's too.
            if !K::REPLICATED && self.owner_of(&c.key) != at {
                self.dead.push(format!("{k} on {} created {} owned by another node", self.names[at], c.key));
            }
        }
        let node = &mut self.nodes[at];
        node.inbox.entry(K::SERVICE.into()).or_default().insert(id);
        if let Some((schema, body)) = p.state {
            node.states.entry(dest::<K>()).or_default().insert(k.clone(), (schema, body, p.version));
        }
        for c in p.creates {
            let tree = format!("{}/{}", K::SERVICE, c.aggregate);
            let prev = node.states.entry(tree).or_default().insert(c.key.clone(), (c.schema, c.body, 1));
            assert!(prev.is_none(), "created {} over an existing aggregate", c.key);
            for t in c.timers {
                if let TimerOp::Set { tag, due_ms } = t {
                    node.timers.insert((due_ms, K::SERVICE.into(), c.aggregate.into(), c.key.clone(), tag));
                }
            }
        }
        for t in p.timers {
            match t {
                TimerOp::Set { tag, due_ms } => {
                    node.timers.insert((due_ms, K::SERVICE.into(), K::AGGREGATE.into(), k.clone(), tag));
                }
                TimerOp::Clear { tag, due_ms } => {
                    node.timers.remove(&(due_ms, K::SERVICE.into(), K::AGGREGATE.into(), k.clone(), tag));
                }
            }
        }
        for env in p.envelopes {
            let dests: Vec<String> =
                node.subscriptions.destinations(env.topic, &env.aggregate_status).map(str::to_owned).collect();
            for d in dests {
                node.lanes.entry((d, env.routing_key.clone())).or_default().push(env.clone());
            }
        }
    }

    /// Runs a command on entity `key` of kind `K` on its owner, as its actor would (nothing
    /// fails: set-up and scripted steps).
    pub fn command<K: EntityKind>(&mut self, key: &K::Key, cmd: K::Command) -> K::Reply {
        let id = self.new_id();
        self.command_as::<K>(key, id, cmd)
    }

    /// Runs a command under message id `id` (what its handler sees as the cause) on its owner.
    pub fn command_as<K: EntityKind>(&mut self, key: &K::Key, id: MessageId, cmd: K::Command) -> K::Reply {
        self.at = if K::REPLICATED { 0 } else { self.owner_of(&key.to_string()) };
        self.run_command::<K>(key, id, cmd)
    }

    fn run_command<K: EntityKind>(&mut self, key: &K::Key, id: MessageId, cmd: K::Command) -> K::Reply {
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

    /// A request to a random running node's front, which runs it on the key's owner — unless
    /// the owner is unreachable, or the answer is lost on the way back.
    pub fn call<K: EntityKind>(&mut self, key: &K::Key, cmd: K::Command) -> Result<K::Reply, Failed> {
        let id = self.new_id();
        self.call_as::<K>(key, id, cmd)
    }

    /// [`Sim::call`] under message id `id`.
    pub fn call_as<K: EntityKind>(&mut self, key: &K::Key, id: MessageId, cmd: K::Command) -> Result<K::Reply, Failed> {
        let up: Vec<usize> = (0..self.nodes.len()).filter(|i| self.nodes[*i].up).collect();
        if up.is_empty() {
            self.stats.unreachable += 1;
            return Err(Failed::Unreachable);
        }
        let front = up[self.rng.gen_range(0..up.len())];
        self.call_from::<K>(front, key, id, cmd)
    }

    fn call_from<K: EntityKind>(
        &mut self,
        front: usize,
        key: &K::Key,
        id: MessageId,
        cmd: K::Command,
    ) -> Result<K::Reply, Failed> {
        let owner = if K::REPLICATED { front } else { self.owner_of(&key.to_string()) };
        if !self.reachable(front, owner) {
            self.stats.unreachable += 1;
            return Err(Failed::Unreachable);
        }
        self.at = owner;
        let reply = self.run_command::<K>(key, id, cmd);
        if owner != front && self.rng.gen_bool(self.lose) {
            self.fault(front, owner);
            self.stats.answers_lost += 1;
            return Err(Failed::AnswerLost);
        }
        Ok(reply)
    }

    /// The node a lane's head is handled on: a replicated copy's named node (`{sub}@{node}`),
    /// the origin for a replicated subscriber's own copy and for the sender, else the owner of
    /// the event's entity. Also the subscriber's name.
    fn target(&self, origin: usize, dest: &str, env: &Envelope) -> Result<(usize, String), String> {
        if let Some((sub, node)) = dest.split_once('@') {
            let i = self.names.iter().position(|n| n.as_str() == node).ok_or(format!("no node {node}"))?;
            return Ok((i, sub.to_owned()));
        }
        match self.kinds.get(dest) {
            Some(kind) if !kind.replicated() => Ok((self.owner_of(&kind.event_key(env)?), dest.to_owned())),
            _ => Ok((origin, dest.to_owned())),
        }
    }

    /// Delivers the head of a random lane of a running node, as its relay would. With
    /// probability `dup`, the head stays (its acknowledgement was lost) and comes again later;
    /// a head whose destination is on an unreachable node stays parked; a remote commit can
    /// lose its acknowledgement (the node crashes or the link is cut). Returns false when no
    /// running node has anything pending.
    pub fn deliver_one(&mut self, dup: f64) -> bool {
        let lanes: Vec<(usize, (String, String))> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].up)
            .flat_map(|i| self.nodes[i].lanes.keys().map(move |l| (i, l.clone())))
            .collect();
        if lanes.is_empty() {
            return false;
        }
        let (origin, lane) = lanes[self.rng.gen_range(0..lanes.len())].clone();
        let env = self.nodes[origin].lanes.get(&lane).and_then(|q| q.first().cloned()).expect("lanes are never empty");
        let mut keep = self.rng.gen_bool(dup);
        let (target, sub) = match self.target(origin, &lane.0, &env) {
            Ok(t) => t,
            Err(e) => {
                self.dead.push(format!("{} to {}: {e}", env.topic.name(), lane.0));
                self.pop(origin, &lane);
                return true;
            }
        };
        if !self.reachable(origin, target) {
            self.stats.parked += 1;
            return true;
        }
        self.delivered += 1;
        if env.topic == crate::persistence::Topic::PromoHold {
            self.stats.holds_checked += 1;
        }
        if sub == SENDER {
            keep |= !self.send(origin, &env);
        } else if let Some(kind) = self.kinds.remove(&sub) {
            self.at = target;
            let r = kind.event_key(&env).map_err(DeliveryError::Permanent).and_then(|k| kind.on_event(self, &k, &env));
            self.kinds.insert(sub.clone(), kind);
            if let Err(e) = r {
                self.dead.push(format!("{} to {}: {e}", env.topic.name(), lane.0));
            }
        } else {
            self.dead.push(format!("no subscriber {sub}"));
        }
        if target != origin && self.rng.gen_bool(self.lose) {
            self.fault(origin, target);
            self.stats.acks_lost += 1;
            keep = true;
        }
        if !keep {
            self.pop(origin, &lane);
        }
        true
    }

    fn pop(&mut self, node: usize, lane: &(String, String)) {
        let lanes = &mut self.nodes[node].lanes;
        if let Some(q) = lanes.get_mut(lane) {
            q.remove(0);
            if q.is_empty() {
                lanes.remove(lane);
            }
        }
    }

    /// The notification sender on node `origin`: records the send (through the log sink)
    /// unless already sent. False when its record's owner did not answer (delivered again).
    fn send(&mut self, origin: usize, env: &Envelope) -> bool {
        let r: SendRequest = match crate::persistence::events::decode(env.topic, env.schema_version, &env.payload) {
            Ok(r) => r,
            Err(e) => {
                self.dead.push(format!("notification.send: {e}"));
                return true;
            }
        };
        let id = self.new_id();
        let Ok(rec) = self.call_from::<SendRecordKind>(origin, &r.id, id, SendCommand::Get) else { return false };
        if rec.status.is_some() {
            return true;
        }
        let id = self.new_id();
        let cmd = SendCommand::Record { request: r.clone(), outcome: SendOutcome::Sent { sink: "log".into() } };
        self.call_from::<SendRecordKind>(origin, &r.id, id, cmd).is_ok()
    }

    /// Moves the clock and fires every timer now due on a running node.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        loop {
            let due = (0..self.nodes.len())
                .filter(|i| self.nodes[*i].up)
                .filter_map(|i| self.nodes[i].timers.iter().next().map(|t| (t.clone(), i)))
                .filter(|(t, _)| t.0 <= self.now_ms)
                .min();
            let Some((t, i)) = due else { break };
            let (due, service, aggregate, key, tag) = t;
            let d = format!("{service}/{aggregate}");
            match self.kinds.remove(&d) {
                Some(kind) => {
                    self.at = i;
                    kind.on_timer(self, &key, &tag, due);
                    self.kinds.insert(d, kind);
                }
                None => {
                    self.nodes[i].timers.remove(&(due, service, aggregate, key, tag));
                }
            }
        }
    }

    /// Heals the cluster, then delivers everything pending (no duplicates) and fires due
    /// timers, until quiet.
    pub fn drain(&mut self) {
        self.heal();
        loop {
            while self.deliver_one(0.0) {}
            let before: usize = self.nodes.iter().map(|n| n.timers.len()).sum();
            self.advance(0);
            let after: usize = self.nodes.iter().map(|n| n.timers.len()).sum();
            if self.nodes.iter().all(|n| n.lanes.is_empty()) && after == before {
                return;
            }
        }
    }

    /// Whether any node's relay (running or not) has events pending.
    fn pending(&self) -> bool {
        self.nodes.iter().any(|n| !n.lanes.is_empty())
    }

    /// The time.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// What must hold of where things are stored once the cluster is quiet: every partitioned
    /// aggregate on its owner alone (never two owners), and every replicated copy the same on
    /// every node.
    fn check_placement(&self) -> Result<(), String> {
        let strip = |m: Option<&BTreeMap<String, StateRow>>| {
            m.into_iter().flatten().map(|(k, (s, b, _))| (k.clone(), *s, b.clone())).collect::<Vec<_>>()
        };
        let trees: BTreeSet<&String> = self.nodes.iter().flat_map(|n| n.states.keys()).collect();
        for tree in trees {
            let replicated = self.kinds.get(tree).is_some_and(|k| k.replicated());
            for (i, node) in self.nodes.iter().enumerate() {
                let rows = node.states.get(tree);
                if replicated {
                    if strip(rows) != strip(self.nodes[0].states.get(tree)) {
                        return Err(format!("{tree} on {} differs from {}", self.names[i], self.names[0]));
                    }
                } else if let Some(k) = rows.into_iter().flat_map(BTreeMap::keys).find(|k| self.owner_of(k) != i) {
                    return Err(format!("{tree} {k} is stored on {}, which does not own it", self.names[i]));
                }
            }
        }
        Ok(())
    }
}

fn link(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

mod run;
pub use run::run;

#[cfg(test)]
mod tests;

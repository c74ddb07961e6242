//! A service's supervisor and the handle callers use to reach its entities.
//!
//! The supervisor activates an entity on its first message (state loaded from sled), keeps at
//! most `live_max` of them alive (second-chance eviction: an entity used since the last look is
//! spared once), passivates those idle longer than `idle_ms`, and notices when one stops or
//! panics. It overrides `handle_supervisor_evt`: ractor's default would stop the whole service
//! when one entity stops.
//!
//! Invariant: at most one incarnation of an entity runs at a time, and a new one loads its
//! state only after every write set the old one submitted has completed (the supervisor waits
//! for a committer barrier after the old one stopped). So a restart after a panic or a
//! passivation always sees the latest durable state.
//! Invariant: live incarnations (running or stopping) never exceed `live_max`; an activation
//! past it waits for a passivation to finish.
//!
//! Callers go through [`Service`]: it looks the entity up in a shared registry (no hop through
//! the supervisor once the entity is live), bounds its mailbox, and retries a send that raced
//! with a passivation or a crash — the message id makes the retry idempotent.

use std::collections::{HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::oneshot;

use crate::actors::entity::{Entity, EntityArgs, EntityEnv, EntityHandle, EntityMsg, HandleShared, SendFailure};
use crate::actors::kind::EntityKind;
use crate::actors::{EngineError, Timer};
use crate::cluster::{Route, Router};
use crate::domain::MessageId;
use crate::limits::{
    ENTITY_IDLE_MS, ENTITY_IDLE_SWEEP_MS, ENTITY_SEND_ATTEMPTS_MAX, LIVE_ENTITIES_MAX, MAILBOX_LEN_MAX, TIMER_TICK_MS,
};
use crate::persistence::{DeliveryError, Envelope, Subscriber};

/// How many entities a service keeps alive and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityConfig {
    /// Most live entity actors of one service.
    pub live_max: usize,
    /// Idle time after which an entity is passivated, ms.
    pub idle_ms: u64,
    /// How often idle entities are looked for, ms.
    pub sweep_ms: u64,
}

impl Default for EntityConfig {
    fn default() -> Self {
        Self { live_max: LIVE_ENTITIES_MAX, idle_ms: ENTITY_IDLE_MS, sweep_ms: ENTITY_IDLE_SWEEP_MS }
    }
}

/// Counters of one service's supervisor.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Entity actors alive now (running or stopping).
    pub live: AtomicUsize,
    /// The most that were ever alive at once.
    pub live_peak: AtomicUsize,
    /// Activations (actor starts).
    pub activations: AtomicU64,
    /// Passivations requested (idle or over the cap).
    pub passivations: AtomicU64,
    /// Entity actors that failed (panicked or returned `Err`).
    pub failures: AtomicU64,
    /// Microseconds the supervisor spent starting entity actors (the state loads in the actor).
    pub activation_us: AtomicU64,
}

type Registry<K> = Mutex<HashMap<<K as EntityKind>::Key, EntityHandle<K>>>;
type Waiter<K> = oneshot::Sender<Result<EntityHandle<K>, EngineError>>;

/// Messages of a service supervisor (local only).
pub enum SupervisorMsg<K: EntityKind> {
    /// Find or start the entity.
    Activate {
        /// Its key.
        key: K::Key,
        /// Where its handle goes.
        reply: Waiter<K>,
    },
    /// Look for idle entities.
    Sweep,
    /// Everything the stopped incarnation of `key` submitted has completed.
    BarrierPassed {
        /// The key.
        key: K::Key,
    },
}

impl<K: EntityKind> ractor::Message for SupervisorMsg<K> {}

/// The supervisor actor of kind `K`'s service.
pub struct ServiceSupervisor<K: EntityKind>(PhantomData<fn() -> K>);

/// Start-up arguments of a supervisor.
pub struct SupervisorArgs<K: EntityKind> {
    env: Arc<EntityEnv>,
    registry: Arc<Registry<K>>,
    stats: Arc<ServiceStats>,
    config: EntityConfig,
    pending: Arc<AtomicUsize>,
}

/// The supervisor's state.
pub struct SupervisorState<K: EntityKind> {
    args: SupervisorArgs<K>,
    /// Every incarnation not yet terminated, by actor id.
    actors: HashMap<ActorId, K::Key>,
    /// Live keys in activation order (the eviction clock).
    clock: VecDeque<K::Key>,
    /// Keys whose old incarnation is stopping: activations wait here.
    blocked: HashMap<K::Key, Vec<Waiter<K>>>,
    /// Activations waiting for a free slot under `live_max`.
    waiting: VecDeque<(K::Key, Waiter<K>)>,
}

impl<K: EntityKind> SupervisorState<K> {
    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<K::Key, EntityHandle<K>>> {
        // A poisoned lock means a panic while holding it, and the map is still consistent
        // (every critical section is a single insert, remove or lookup).
        self.args.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_live(&self) {
        let n = self.actors.len();
        self.args.stats.live.store(n, Ordering::Relaxed);
        self.args.stats.live_peak.fetch_max(n, Ordering::Relaxed);
    }

    async fn activate(&mut self, myself: &ActorRef<SupervisorMsg<K>>, key: K::Key, reply: Waiter<K>) {
        let existing = self.registry().get(&key).cloned();
        if let Some(h) = existing {
            if h.is_alive() {
                let _ = reply.send(Ok(h));
                return;
            }
            // It is stopping; its termination will unblock the key.
            self.blocked.entry(key).or_default().push(reply);
            return;
        }
        if let Some(w) = self.blocked.get_mut(&key) {
            w.push(reply);
            return;
        }
        if self.actors.len() >= self.args.config.live_max {
            self.waiting.push_back((key, reply));
            self.evict_one();
            return;
        }
        let result = self.spawn(myself, key).await;
        let _ = reply.send(result);
    }

    async fn spawn(
        &mut self,
        myself: &ActorRef<SupervisorMsg<K>>,
        key: K::Key,
    ) -> Result<EntityHandle<K>, EngineError> {
        let shared = Arc::new(HandleShared::new(self.args.env.clock.now_ms()));
        let args = EntityArgs { key: key.clone(), env: self.args.env.clone(), shared: shared.clone() };
        let t0 = std::time::Instant::now();
        let spawned = Actor::spawn_linked(None, Entity::<K>::default(), args, myself.get_cell()).await;
        self.args
            .stats
            .activation_us
            .fetch_add(u64::try_from(t0.elapsed().as_micros()).unwrap_or(0), Ordering::Relaxed);
        match spawned {
            Ok((actor, _join)) => {
                let handle = EntityHandle::new(actor.clone(), shared);
                self.registry().insert(key.clone(), handle.clone());
                self.actors.insert(actor.get_id(), key.clone());
                self.clock.push_back(key);
                self.args.stats.activations.fetch_add(1, Ordering::Relaxed);
                self.set_live();
                Ok(handle)
            }
            Err(e) => {
                tracing::error!(service = K::SERVICE, key = %key, error = %e, "entity failed to start");
                Err(EngineError::Unavailable(format!("{} {key} cannot start: {e}", K::SERVICE)))
            }
        }
    }

    /// Passivates one live entity chosen by the second-chance clock; false if none could be.
    fn evict_one(&mut self) -> bool {
        let mut budget = 2 * self.clock.len();
        while budget > 0 {
            budget -= 1;
            let Some(key) = self.clock.pop_front() else {
                return false;
            };
            let handle = self.registry().get(&key).cloned();
            let Some(h) = handle else { continue };
            if h.shared().take_referenced() {
                self.clock.push_back(key);
                continue;
            }
            self.passivate(key, &h);
            return true;
        }
        false
    }

    fn passivate(&mut self, key: K::Key, handle: &EntityHandle<K>) {
        self.registry().remove(&key);
        self.blocked.entry(key).or_default();
        self.args.stats.passivations.fetch_add(1, Ordering::Relaxed);
        let _ = handle.actor().send_message(EntityMsg::Passivate);
    }

    fn sweep(&mut self) {
        let now = self.args.env.clock.now_ms();
        let idle: Vec<(K::Key, EntityHandle<K>)> = self
            .registry()
            .iter()
            .filter(|(_, h)| now.saturating_sub(h.shared().last_used_ms()) >= self.args.config.idle_ms)
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect();
        for (key, h) in idle {
            self.passivate(key, &h);
        }
        self.clock.retain(|k| self.args.registry.lock().map(|r| r.contains_key(k)).unwrap_or(true));
    }

    async fn stopped(&mut self, myself: &ActorRef<SupervisorMsg<K>>, id: ActorId) {
        let Some(key) = self.actors.remove(&id) else {
            return;
        };
        self.set_live();
        {
            let mut reg = self.registry();
            if reg.get(&key).is_some_and(|h| h.actor().get_id() == id) {
                reg.remove(&key);
            }
        }
        self.blocked.entry(key.clone()).or_default();
        let me = myself.clone();
        self.args
            .env
            .committer
            .barrier(Box::new(move || {
                let _ = me.send_message(SupervisorMsg::BarrierPassed { key });
            }))
            .await;
    }

    async fn unblocked(&mut self, myself: &ActorRef<SupervisorMsg<K>>, key: K::Key) {
        let waiters = self.blocked.remove(&key).unwrap_or_default();
        for w in waiters {
            self.waiting.push_front((key.clone(), w));
        }
        self.serve_waiting(myself).await;
    }

    async fn serve_waiting(&mut self, myself: &ActorRef<SupervisorMsg<K>>) {
        while self.actors.len() < self.args.config.live_max {
            let Some((key, w)) = self.waiting.pop_front() else {
                break;
            };
            self.activate(myself, key, w).await;
        }
        if !self.waiting.is_empty() && self.actors.len() >= self.args.config.live_max {
            self.evict_one();
        }
    }
}

impl<K: EntityKind> Actor for ServiceSupervisor<K> {
    type Msg = SupervisorMsg<K>;
    type State = SupervisorState<K>;
    type Arguments = SupervisorArgs<K>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let period = Duration::from_millis(args.config.sweep_ms);
        myself.send_interval(period, || SupervisorMsg::Sweep);
        Ok(SupervisorState {
            args,
            actors: HashMap::new(),
            clock: VecDeque::new(),
            blocked: HashMap::new(),
            waiting: VecDeque::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Activate { key, reply } => {
                st.args.pending.fetch_sub(1, Ordering::AcqRel);
                st.activate(&myself, key, reply).await;
            }
            SupervisorMsg::Sweep => st.sweep(),
            SupervisorMsg::BarrierPassed { key } => st.unblocked(&myself, key).await,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => st.stopped(&myself, cell.get_id()).await,
            SupervisionEvent::ActorFailed(cell, err) => {
                st.args.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(service = K::SERVICE, actor = %cell.get_id(), error = %err, "entity failed; it restarts from its stored state on its next message");
                st.stopped(&myself, cell.get_id()).await;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The handle callers use to reach a service's entities. Clones share it.
pub struct Service<K: EntityKind> {
    env: Arc<EntityEnv>,
    registry: Arc<Registry<K>>,
    supervisor: ActorRef<SupervisorMsg<K>>,
    router: Arc<Router>,
    stats: Arc<ServiceStats>,
    pending: Arc<AtomicUsize>,
    timers: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl<K: EntityKind> Clone for Service<K> {
    fn clone(&self) -> Self {
        Self {
            env: self.env.clone(),
            registry: self.registry.clone(),
            supervisor: self.supervisor.clone(),
            router: self.router.clone(),
            stats: self.stats.clone(),
            pending: self.pending.clone(),
            timers: self.timers.clone(),
        }
    }
}

/// Fires the service's due timers: every `TIMER_TICK_MS` it reads the timers due now and hands
/// each to its entity (which clears it in the same write set as its decision). A timer whose
/// delivery fails stays stored and fires again on a later tick.
async fn timer_loop<K: EntityKind>(service: Service<K>) {
    let inflight: Arc<Mutex<HashSet<Vec<u8>>>> = Arc::new(Mutex::new(HashSet::new()));
    loop {
        tokio::time::sleep(Duration::from_millis(TIMER_TICK_MS)).await;
        let (store, trees, now) = (service.env.store.clone(), service.env.trees.clone(), service.env.clock.now_ms());
        let due = match tokio::task::spawn_blocking(move || store.due_timers(&trees, now, 512)).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                tracing::warn!(service = K::SERVICE, error = %e, "cannot read due timers");
                continue;
            }
            Err(_) => continue,
        };
        for t in due {
            if !inflight.lock().unwrap_or_else(|p| p.into_inner()).insert(t.raw.clone()) {
                continue;
            }
            let Ok(key) = K::parse_key(&t.key) else {
                tracing::warn!(service = K::SERVICE, key = %t.key, "timer of an unparsable key left alone");
                continue;
            };
            let (svc, infl) = (service.clone(), inflight.clone());
            tokio::spawn(async move {
                let raw = t.raw.clone();
                if let Err(e) = svc.fire(&key, Timer { tag: t.tag, due_ms: t.due_ms }, t.raw).await {
                    tracing::debug!(service = K::SERVICE, key = %key, error = %e, "timer delivery failed; retried next tick");
                }
                infl.lock().unwrap_or_else(|p| p.into_inner()).remove(&raw);
            });
        }
    }
}

enum Sent<T> {
    Answer(T),
    /// Not enqueued (the actor had stopped): safe to retry.
    Retry,
    /// Enqueued, but the actor stopped before answering.
    Lost,
}

impl<K: EntityKind> Service<K> {
    /// Starts the service's supervisor.
    pub async fn start(
        env: Arc<EntityEnv>,
        config: EntityConfig,
        router: Arc<Router>,
    ) -> Result<Service<K>, EngineError> {
        let registry: Arc<Registry<K>> = Arc::new(Mutex::new(HashMap::new()));
        let stats = Arc::new(ServiceStats::default());
        let pending = Arc::new(AtomicUsize::new(0));
        let args = SupervisorArgs {
            env: env.clone(),
            registry: registry.clone(),
            stats: stats.clone(),
            config,
            pending: pending.clone(),
        };
        let (supervisor, _) = Actor::spawn(None, ServiceSupervisor::<K>(PhantomData), args)
            .await
            .map_err(|e| EngineError::Unavailable(format!("{} supervisor cannot start: {e}", K::SERVICE)))?;
        let service = Service { env, registry, supervisor, router, stats, pending, timers: Arc::new(Mutex::new(None)) };
        if K::USES_TIMERS {
            let task = tokio::spawn(timer_loop(service.clone()));
            *service.timers.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        }
        Ok(service)
    }

    /// The supervisor's counters.
    pub fn stats(&self) -> &ServiceStats {
        &self.stats
    }

    /// A shared handle to the supervisor's counters.
    pub fn stats_handle(&self) -> Arc<ServiceStats> {
        self.stats.clone()
    }

    /// The service's shared environment.
    pub fn env(&self) -> &Arc<EntityEnv> {
        &self.env
    }

    /// Stops the supervisor and with it every entity (their in-flight write sets still complete).
    pub async fn stop(&self) {
        if let Some(t) = self.timers.lock().unwrap_or_else(|p| p.into_inner()).take() {
            t.abort();
        }
        let _ = self.supervisor.stop_and_wait(Some("node stopping".into()), Some(Duration::from_secs(10))).await;
    }

    fn check_route(&self, key: &K::Key) -> Result<(), EngineError> {
        match self.router.route(key.to_string().as_bytes()) {
            Route::Local { .. } => Ok(()),
            Route::Remote { partition, node } => Err(EngineError::NotLocal { partition, node: node.to_string() }),
        }
    }

    async fn handle_for(&self, key: &K::Key) -> Result<EntityHandle<K>, EngineError> {
        let found = self.registry.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned();
        if let Some(h) = found {
            return Ok(h);
        }
        if self.pending.fetch_add(1, Ordering::AcqRel) >= 4 * MAILBOX_LEN_MAX {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::Overloaded { service: K::SERVICE.into(), key: key.to_string() });
        }
        let (tx, rx) = oneshot::channel();
        if self.supervisor.send_message(SupervisorMsg::Activate { key: key.clone(), reply: tx }).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::ShuttingDown);
        }
        rx.await.map_err(|_| EngineError::ShuttingDown)?
    }

    async fn send_once<T>(
        &self,
        key: &K::Key,
        make: impl FnOnce(oneshot::Sender<T>) -> EntityMsg<K>,
    ) -> Result<Sent<T>, EngineError> {
        let handle = self.handle_for(key).await?;
        let (tx, rx) = oneshot::channel();
        let sent = match handle.send(make(tx), self.env.clock.now_ms()) {
            Ok(()) => match rx.await {
                Ok(answer) => return Ok(Sent::Answer(answer)),
                Err(_) => Sent::Lost,
            },
            Err(SendFailure::Overloaded) => {
                return Err(EngineError::Overloaded { service: K::SERVICE.into(), key: key.to_string() })
            }
            Err(SendFailure::Stopped) => Sent::Retry,
        };
        // The supervisor learns of a stop a moment later: a retry before then would find the
        // stopped incarnation again and use up its attempts at once.
        self.stopped_one_gone(key, handle.actor().get_id()).await;
        Ok(sent)
    }

    /// Waits (a bounded while) until the registry no longer maps `key` to the actor `gone`.
    async fn stopped_one_gone(&self, key: &K::Key, gone: ActorId) {
        let mut pause = Duration::from_millis(1);
        for _ in 0..20 {
            let still = self
                .registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(key)
                .is_some_and(|h| h.actor().get_id() == gone);
            if !still {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Watches the entity `key`: the receiver wakes after each of its durable changes. A
    /// receiver whose `changed()` fails saw the entity passivate: subscribe again.
    pub async fn subscribe(&self, key: &K::Key) -> Result<tokio::sync::watch::Receiver<u64>, EngineError> {
        self.check_route(key)?;
        Ok(self.handle_for(key).await?.shared().subscribe())
    }

    /// Sends a command to the entity `key` and waits for its answer, which arrives only once
    /// everything the entity wrote before it is durable. A command whose id already took effect
    /// gets the first answer again and changes nothing.
    pub async fn command(&self, key: &K::Key, id: MessageId, cmd: K::Command) -> Result<K::Reply, EngineError> {
        self.check_route(key)?;
        let mut lost = 0;
        for _ in 0..ENTITY_SEND_ATTEMPTS_MAX {
            let c = cmd.clone();
            match self
                .send_once(key, |reply| EntityMsg::Command { id, cmd: c, reply, span: tracing::Span::current() })
                .await?
            {
                Sent::Answer(a) => return a,
                Sent::Retry => continue,
                // The entity stopped with the command in its mailbox (a passivation race), or
                // crashed on it: one more try, then give up rather than crash it again.
                Sent::Lost => {
                    lost += 1;
                    if lost > 1 {
                        break;
                    }
                }
            }
        }
        Err(EngineError::Unavailable(format!("{} {key} stopped before answering", K::SERVICE)))
    }

    /// Delivers an event to the entity its routing key names; resolves once it took effect
    /// durably (or was a duplicate).
    pub async fn deliver(&self, env: Envelope) -> Result<(), DeliveryError> {
        let key = K::event_key(&env).map_err(|e| DeliveryError::Permanent(format!("no entity for this event: {e}")))?;
        self.check_route(&key).map_err(|e| DeliveryError::Transient(e.to_string()))?;
        let ack = self.enqueue_event(&key, env).await?;
        ack.await.unwrap_or_else(|_| {
            Err(DeliveryError::Transient(format!("{} {key} stopped before acknowledging", K::SERVICE)))
        })
    }

    /// Delivers one lane's events: queues them all in their entities' mailboxes, in order, and
    /// only then waits for the acknowledgements, so an entity handles them back to back and
    /// their write sets share commit batches. Once one cannot be queued (an overloaded or
    /// unroutable entity), the rest are not sent either, so none overtakes it.
    pub async fn deliver_lane(&self, envelopes: Vec<Envelope>) -> Vec<Result<(), DeliveryError>> {
        let mut out: Vec<Option<Result<(), DeliveryError>>> = Vec::with_capacity(envelopes.len());
        let mut acks = Vec::new();
        let mut refused: Option<String> = None;
        for env in envelopes {
            if let Some(why) = &refused {
                out.push(Some(Err(DeliveryError::Transient(format!("not sent: {why}")))));
                continue;
            }
            let key = match K::event_key(&env) {
                Ok(k) => k,
                Err(e) => {
                    out.push(Some(Err(DeliveryError::Permanent(format!("no entity for this event: {e}")))));
                    continue;
                }
            };
            let queued = match self.check_route(&key) {
                Ok(()) => self.enqueue_event(&key, env).await,
                Err(e) => Err(DeliveryError::Transient(e.to_string())),
            };
            match queued {
                Ok(ack) => {
                    acks.push((out.len(), key, ack));
                    out.push(None);
                }
                Err(e) => {
                    refused = Some(e.to_string());
                    out.push(Some(Err(e)));
                }
            }
        }
        for (i, key, ack) in acks {
            out[i] = Some(ack.await.unwrap_or_else(|_| {
                Err(DeliveryError::Transient(format!("{} {key} stopped before acknowledging", K::SERVICE)))
            }));
        }
        out.into_iter().map(|r| r.unwrap_or_else(|| Err(DeliveryError::Transient("no outcome".into())))).collect()
    }

    /// Puts an event in its entity's mailbox (again on a fresh incarnation if the one found had
    /// just stopped); returns where its acknowledgement will come.
    async fn enqueue_event(
        &self,
        key: &K::Key,
        env: Envelope,
    ) -> Result<oneshot::Receiver<Result<(), DeliveryError>>, DeliveryError> {
        for _ in 0..ENTITY_SEND_ATTEMPTS_MAX {
            let handle = self.handle_for(key).await.map_err(|e| DeliveryError::Transient(e.to_string()))?;
            let (reply, ack) = oneshot::channel();
            match handle.send(EntityMsg::Event { env: env.clone(), reply }, self.env.clock.now_ms()) {
                Ok(()) => return Ok(ack),
                Err(SendFailure::Stopped) => continue,
                Err(SendFailure::Overloaded) => {
                    return Err(DeliveryError::Transient(
                        EngineError::Overloaded { service: K::SERVICE.into(), key: key.to_string() }.to_string(),
                    ))
                }
            }
        }
        Err(DeliveryError::Transient(format!("{} {key} kept stopping", K::SERVICE)))
    }
}

impl<K: EntityKind> Service<K> {
    /// Hands a due timer to its entity; resolves once the entity's decision is durable.
    pub async fn fire(&self, key: &K::Key, timer: Timer, raw: Vec<u8>) -> Result<(), DeliveryError> {
        self.check_route(key).map_err(|e| DeliveryError::Transient(e.to_string()))?;
        for _ in 0..ENTITY_SEND_ATTEMPTS_MAX {
            let (t, r) = (timer.clone(), raw.clone());
            match self.send_once(key, |reply| EntityMsg::Timer { timer: t, raw: r, reply }).await {
                Ok(Sent::Answer(a)) => return a,
                Ok(Sent::Retry) => continue,
                Ok(Sent::Lost) => return Err(DeliveryError::Transient("entity stopped before acknowledging".into())),
                Err(e) => return Err(DeliveryError::Transient(e.to_string())),
            }
        }
        Err(DeliveryError::Transient(format!("{} {key} kept stopping", K::SERVICE)))
    }
}

impl<K: EntityKind> Subscriber for Service<K> {
    fn deliver(&self, envelope: Envelope) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let me = self.clone();
        Box::pin(async move { Service::deliver(&me, envelope).await })
    }

    fn deliver_lane(&self, envelopes: Vec<Envelope>) -> BoxFuture<'static, Vec<Result<(), DeliveryError>>> {
        let me = self.clone();
        Box::pin(async move { Service::deliver_lane(&me, envelopes).await })
    }
}

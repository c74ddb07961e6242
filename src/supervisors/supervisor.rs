//! A service's supervisor: the actor that activates, passivates and restarts its entities.
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

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::oneshot;

use crate::actors::entity::{Entity, EntityArgs, EntityEnv, EntityHandle, EntityMsg, HandleShared};
use crate::actors::kind::EntityKind;
use crate::actors::EngineError;
use crate::limits::{ENTITY_IDLE_MS, ENTITY_IDLE_SWEEP_MS, LIVE_ENTITIES_MAX};

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

pub(super) type Registry<K> = Mutex<HashMap<<K as EntityKind>::Key, EntityHandle<K>>>;
pub(super) type Waiter<K> = oneshot::Sender<Result<EntityHandle<K>, EngineError>>;

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
pub struct ServiceSupervisor<K: EntityKind>(pub(super) PhantomData<fn() -> K>);

/// Start-up arguments of a supervisor.
pub struct SupervisorArgs<K: EntityKind> {
    pub(super) env: Arc<EntityEnv>,
    pub(super) registry: Arc<Registry<K>>,
    pub(super) stats: Arc<ServiceStats>,
    pub(super) config: EntityConfig,
    pub(super) pending: Arc<AtomicUsize>,
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

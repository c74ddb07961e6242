//! The handle callers use to reach a service's entities ([`Service`]): it looks the entity up in
//! a shared registry (no hop through the supervisor once the entity is live), bounds its
//! mailbox, and retries a send that raced with a passivation or a crash — the message id makes
//! the retry idempotent. It starts the service's supervisor (`super::supervisor`) and, for a
//! kind with timers, its timer loop (`super::timers`).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorId, ActorRef};
use tokio::sync::oneshot;

use crate::actors::entity::{EntityEnv, EntityHandle, EntityMsg, SendFailure};
use crate::actors::kind::EntityKind;
use crate::actors::{EngineError, Timer};
use crate::cluster::transport::Transport;
use crate::cluster::{Route, Router};
use crate::domain::{MessageId, NodeId};
use crate::limits::ENTITY_SEND_ATTEMPTS_MAX;
use crate::persistence::{DeliveryError, Envelope, Subscriber};

use super::supervisor::{EntityConfig, Registry, ServiceStats, ServiceSupervisor, SupervisorArgs, SupervisorMsg};
use super::timers::timer_loop;
use crate::limits::{SERVICE_PENDING_MAX, SERVICE_STOP_WAIT_MS};

/// The handle callers use to reach a service's entities. Clones share it.
pub struct Service<K: EntityKind> {
    env: Arc<EntityEnv>,
    registry: Arc<Registry<K>>,
    supervisor: ActorRef<SupervisorMsg<K>>,
    router: Arc<Router>,
    transport: Option<Arc<Transport>>,
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
            transport: self.transport.clone(),
            stats: self.stats.clone(),
            pending: self.pending.clone(),
            timers: self.timers.clone(),
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
    /// Starts the service's supervisor. Keys `router` places on another node go there over
    /// `transport` (none: the embedded single node, which owns every key).
    pub async fn start(
        env: Arc<EntityEnv>,
        config: EntityConfig,
        router: Arc<Router>,
        transport: Option<Arc<Transport>>,
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
        let service = Service {
            env,
            registry,
            supervisor,
            router,
            transport,
            stats,
            pending,
            timers: Arc::new(Mutex::new(None)),
        };
        if K::USES_TIMERS {
            let svc = service.clone();
            let fire = move |key: K::Key, timer: Timer, raw: Vec<u8>| {
                let svc = svc.clone();
                async move { svc.fire(&key, timer, raw).await }
            };
            let task = tokio::spawn(timer_loop::<K, _, _>(service.env.clone(), fire));
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
        let _ = self
            .supervisor
            .stop_and_wait(Some("node stopping".into()), Some(Duration::from_millis(SERVICE_STOP_WAIT_MS)))
            .await;
    }

    /// Where `key` is handled.
    pub(super) fn route(&self, key: &K::Key) -> Route {
        let key = key.to_string();
        if K::REPLICATED {
            return Route::Local { partition: self.router.partition_of(key.as_bytes()) };
        }
        self.router.route(key.as_bytes())
    }

    /// Refuses a key this node does not own (timers: they are only ever set by the owner).
    fn check_route(&self, key: &K::Key) -> Result<(), EngineError> {
        match self.route(key) {
            Route::Local { .. } => Ok(()),
            Route::Remote { partition, node } => Err(EngineError::OwnerUnreachable {
                partition,
                node: node.to_string(),
                why: "this node does not own it".into(),
            }),
        }
    }

    /// The transport calls for keys owned elsewhere go over (none: a single node).
    pub(super) fn transport(&self) -> Option<&Arc<Transport>> {
        self.transport.as_ref()
    }

    async fn handle_for(&self, key: &K::Key) -> Result<EntityHandle<K>, EngineError> {
        let found = self.registry.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned();
        if let Some(h) = found {
            return Ok(h);
        }
        if self.pending.fetch_add(1, Ordering::AcqRel) >= SERVICE_PENDING_MAX {
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

    /// Watches the entity `key`: [`Changes::changed`] returns after each of its durable
    /// changes (an entity on another node is polled every `REMOTE_WATCH_POLL_MS`). When it fails
    /// the entity passivated: subscribe again.
    pub async fn subscribe(&self, key: &K::Key) -> Result<Changes, EngineError> {
        match self.route(key) {
            Route::Local { .. } => Ok(Changes::Local(self.handle_for(key).await?.shared().subscribe())),
            Route::Remote { .. } => Ok(Changes::Remote),
        }
    }

    /// Sends a command to the entity `key` and waits for its answer, which arrives only once
    /// everything the entity wrote before it is durable. A command whose id already took effect
    /// gets the first answer again and changes nothing.
    /// A key another node owns goes to that node (see `command_remote`).
    pub async fn command(&self, key: &K::Key, id: MessageId, cmd: K::Command) -> Result<K::Reply, EngineError> {
        match self.route(key) {
            Route::Local { .. } => self.command_here(key, id, cmd).await,
            Route::Remote { partition, node } => self.command_remote(partition, &node, key, id, cmd).await,
        }
    }

    /// `command` for a key this node owns.
    pub(super) async fn command_here(
        &self,
        key: &K::Key,
        id: MessageId,
        cmd: K::Command,
    ) -> Result<K::Reply, EngineError> {
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
        self.deliver_lane(vec![env]).await.pop().unwrap_or_else(|| Err(DeliveryError::Transient("no outcome".into())))
    }

    /// Delivers one lane's events, each to its entity's owner: the runs of events for entities
    /// here are queued locally (`deliver_here`), runs for another node go to it in one call
    /// (`deliver_remote`). Once one run fails, the runs after it are not sent, so none
    /// overtakes it; they report the same kind of failure (a lane waiting for a node parks).
    pub async fn deliver_lane(&self, envelopes: Vec<Envelope>) -> Vec<Result<(), DeliveryError>> {
        if K::REPLICATED || self.router.owns_all() {
            return self.deliver_here(envelopes).await;
        }
        let n = envelopes.len();
        let mut out = Vec::with_capacity(n);
        let mut runs: Vec<(Option<NodeId>, Vec<Envelope>)> = Vec::new();
        for env in envelopes {
            // An event naming no entity is refused here, where `deliver_here` says why.
            let owner = match K::event_key(&env).map(|k| self.route(&k)) {
                Ok(Route::Remote { node, .. }) => Some(node),
                _ => None,
            };
            match runs.last_mut() {
                Some((o, run)) if *o == owner => run.push(env),
                _ => runs.push((owner, vec![env])),
            }
        }
        for (owner, run) in runs {
            if out.iter().any(Result::is_err) {
                DeliveryError::pad(&mut out, n);
                break;
            }
            let results = match owner {
                None => self.deliver_here(run).await,
                Some(node) => self.deliver_remote(&node, run).await,
            };
            out.extend(results);
        }
        out
    }

    /// Delivers events to entities this node owns: queues them all in their entities'
    /// mailboxes, in order, and only then waits for the acknowledgements, so an entity handles
    /// them back to back and their write sets share commit batches. Once one cannot be queued
    /// (an overloaded or unowned entity), the rest are not sent either, so none overtakes it.
    pub(super) async fn deliver_here(&self, envelopes: Vec<Envelope>) -> Vec<Result<(), DeliveryError>> {
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

/// Wakes a caller waiting for an entity to change ([`Service::subscribe`]).
pub enum Changes {
    /// An entity here: woken by each durable change.
    Local(tokio::sync::watch::Receiver<u64>),
    /// An entity on another node: woken every `REMOTE_WATCH_POLL_MS`, to look again.
    Remote,
}

/// The watched entity passivated: subscribe again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passivated;

impl Changes {
    /// Returns after the entity's next durable change (or, for one elsewhere, after a pause).
    pub async fn changed(&mut self) -> Result<(), Passivated> {
        match self {
            Changes::Local(rx) => rx.changed().await.map_err(|_| Passivated),
            Changes::Remote => {
                tokio::time::sleep(Duration::from_millis(crate::limits::REMOTE_WATCH_POLL_MS)).await;
                Ok(())
            }
        }
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

//! Helpers shared by the integration tests: a node on a temporary directory, a test entity
//! kind with knobs (panic, hold), a probe subscriber, and `eventually`.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use bazaar::actors::{Change, CommandOutcome, EntityKind, EventOutcome};
use bazaar::app::node::{Node, NodeBuilder, NodeOptions};
use bazaar::domain::{Ctx, MessageId, NodeId};
use bazaar::persistence::codec::{self, CodecError};
use bazaar::persistence::{DeliveryError, Durability, Envelope, Subscriber, Topic};

/// A fresh message id.
/// The real `bazaar` binary of this build, logging warnings only.
pub fn bazaar() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_bazaar"));
    c.env("RUST_LOG", "warn");
    c
}

pub fn mid() -> MessageId {
    MessageId::from_bytes(*uuid::Uuid::new_v4().as_bytes())
}

/// Options of a single node on `dir`.
pub fn options(dir: &Path, durability: Durability) -> NodeOptions {
    let mut o = NodeOptions::single(NodeId::parse("test-node").unwrap(), dir.to_owned()).with_durability(durability);
    o.store.cache_bytes = 16 << 20;
    o
}

/// The store's node plus the test counter service.
pub async fn start(dir: &Path, durability: Durability) -> Node {
    NodeBuilder::store(options(dir, durability)).service::<CounterKind>().start().await.unwrap()
}

/// Writes raw bytes as the stored record of `K`'s aggregate `key`, through the committer as a
/// disk fault would leave them (the record no longer decodes).
pub async fn damage_record<K: EntityKind>(node: &Node, key: &str) {
    let trees = node.store().service(K::SERVICE, K::AGGREGATE).unwrap();
    let state = bazaar::persistence::store::StateWrite {
        key: key.as_bytes().to_vec(),
        expected_version: 0,
        record: b"\x00\x01 not a record".to_vec(),
    };
    let ws = bazaar::persistence::WriteSet { service: Some(trees), state: Some(state), ..Default::default() };
    let (tx, rx) = tokio::sync::oneshot::channel();
    node.committer().submit(ws, Box::new(move |r| drop(tx.send(r)))).await;
    rx.await.unwrap().unwrap();
}
/// Waits until `check` holds, polling; fails the test after 30 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A lock tests hold to keep a counter entity busy inside its handler (`CounterCmd::Hold`).
pub static HOLD: Mutex<()> = Mutex::new(());

/// Set once a counter entity is inside `CounterCmd::Hold`, waiting for `HOLD`.
pub static HOLDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Commands of the test counter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CounterCmd {
    /// Add to the value.
    Add(i64),
    /// Panic inside the handler (a bug in a handler).
    Panic,
    /// Block inside the handler until the test releases `HOLD`.
    Hold,
    /// Read.
    Get,
}

/// The test counter's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// The sum of every Add applied.
    pub value: i64,
    /// Adds applied.
    pub adds: u64,
}

/// A test entity kind: a counter keyed by any id. A fixture written the way the real kinds are
/// (so it looks like them on purpose: it exercises the same generic actor).
#[derive(Debug)]
pub struct CounterKind;

impl EntityKind for CounterKind {
    const SERVICE: &'static str = "test";
    const AGGREGATE: &'static str = "counter";
    type Key = String;
    type State = Counter;
    type Command = CounterCmd;
    type Reply = Counter;

    fn topics() -> &'static [Topic] {
        &[]
    }

    fn parse_key(s: &str) -> Result<String, String> {
        if s.is_empty() {
            Err("empty".into())
        } else {
            Ok(s.to_owned())
        }
    }

    fn initial(_key: &String) -> Counter {
        Counter::default()
    }

    fn encode_state(state: &Counter) -> Result<(u16, Vec<u8>), CodecError> {
        Ok((1, codec::to_body("counter", state, 1024)?))
    }

    fn decode_state(_key: &String, schema: u16, body: &[u8]) -> Result<Counter, CodecError> {
        if schema != 1 {
            return Err(CodecError::UnknownSchema { what: "counter".into(), version: schema });
        }
        codec::from_body("counter", body)
    }

    fn status(_state: &Counter) -> String {
        "COUNTING".into()
    }

    fn on_command(_key: &String, state: &Counter, cmd: CounterCmd, _ctx: &Ctx) -> CommandOutcome<Self> {
        match cmd {
            CounterCmd::Add(n) => {
                let next = Counter { value: state.value + n, adds: state.adds + 1 };
                CommandOutcome::Changed { reply: next.clone(), change: Change::to(next) }
            }
            CounterCmd::Panic => panic!("a bug in a handler"),
            CounterCmd::Hold => {
                HOLDING.store(true, Ordering::SeqCst);
                drop(HOLD.lock().unwrap_or_else(|p| p.into_inner()));
                CommandOutcome::Unchanged(state.clone())
            }
            CounterCmd::Get => CommandOutcome::Unchanged(state.clone()),
        }
    }

    fn on_event(
        _key: &String,
        _state: &Counter,
        _env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        Err(DeliveryError::Permanent("counters take no events".into()))
    }
}

/// What a probe subscriber does with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProbeMode {
    /// Acknowledge.
    Ack = 0,
    /// Fail, retryably.
    FailTransient = 1,
    /// Fail for good.
    FailPermanent = 2,
    /// Take the delivery and never answer (an acknowledgement lost).
    Swallow = 3,
    /// Say the subscriber's node cannot be reached (the lane parks).
    Unreachable = 4,
}

/// A subscriber that records every delivery and answers as its mode says.
#[derive(Default)]
pub struct Probe {
    mode: AtomicU8,
    /// Every delivery, in arrival order.
    pub envelopes: Mutex<Vec<Envelope>>,
}

impl Probe {
    /// Sets the mode.
    pub fn set(&self, m: ProbeMode) {
        self.mode.store(m as u8, Ordering::SeqCst);
    }

    /// Deliveries so far.
    /// (message id, routing key, aggregate version) of every delivery, in arrival order.
    pub fn seen(&self) -> Vec<(MessageId, String, u64)> {
        self.envelopes
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.message_id, e.routing_key.clone(), e.aggregate_version))
            .collect()
    }

    /// How many times each message id was delivered.
    pub fn deliveries_per_id(&self) -> HashMap<MessageId, usize> {
        let mut m = HashMap::new();
        for (id, _, _) in self.seen() {
            *m.entry(id).or_insert(0) += 1;
        }
        m
    }
}

/// A shared probe as a subscriber.
pub struct ProbeSub(pub Arc<Probe>);

impl Subscriber for ProbeSub {
    fn deliver(&self, env: Envelope) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let probe = self.0.clone();
        Box::pin(async move {
            probe.envelopes.lock().unwrap().push(env);
            match probe.mode.load(Ordering::SeqCst) {
                0 => Ok(()),
                1 => Err(DeliveryError::Transient("probe says not now".into())),
                2 => Err(DeliveryError::Permanent("probe says never".into())),
                4 => Err(DeliveryError::Unreachable { node: "node-9".into(), why: "the probe's node is away".into() }),
                _ => std::future::pending().await,
            }
        })
    }
}

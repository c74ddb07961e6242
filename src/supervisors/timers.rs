//! A service's timer loop: every `TIMER_TICK_MS` it reads the timers due now and hands each to
//! its entity through the service's `fire` (the entity clears it in the same write set as its
//! decision). A timer whose delivery fails stays stored and fires again on a later tick.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::actors::entity::EntityEnv;
use crate::actors::kind::EntityKind;
use crate::actors::Timer;
use crate::limits::{TIMERS_DUE_BATCH_MAX, TIMER_TICK_MS};
use crate::persistence::DeliveryError;

/// Fires the service's due timers: every `TIMER_TICK_MS` it reads the timers due now and hands
/// each to its entity (which clears it in the same write set as its decision). A timer whose
/// delivery fails stays stored and fires again on a later tick.
pub(super) async fn timer_loop<K, F, Fut>(env: Arc<EntityEnv>, fire: F)
where
    K: EntityKind,
    F: Fn(K::Key, Timer, Vec<u8>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), DeliveryError>> + Send + 'static,
{
    let inflight: Arc<Mutex<HashSet<Vec<u8>>>> = Arc::new(Mutex::new(HashSet::new()));
    loop {
        tokio::time::sleep(Duration::from_millis(TIMER_TICK_MS)).await;
        let (store, trees, now) = (env.store.clone(), env.trees.clone(), env.clock.now_ms());
        let due = match tokio::task::spawn_blocking(move || store.due_timers(&trees, now, TIMERS_DUE_BATCH_MAX)).await {
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
            let (fire, infl) = (fire.clone(), inflight.clone());
            tokio::spawn(async move {
                let raw = t.raw.clone();
                if let Err(e) = fire(key.clone(), Timer { tag: t.tag, due_ms: t.due_ms }, t.raw).await {
                    tracing::debug!(service = K::SERVICE, key = %key, error = %e, "timer delivery failed; retried next tick");
                }
                infl.lock().unwrap_or_else(|p| p.into_inner()).remove(&raw);
            });
        }
    }
}

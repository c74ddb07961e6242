//! Password hashing: argon2id with a random per-user salt (PHC strings). Deliberately slow
//! (tens of ms): callers run it on a blocking thread.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Shortest password accepted.
pub const PASSWORD_LEN_MIN: usize = 8;
/// Longest password accepted (hashing cost grows with length).
pub const PASSWORD_LEN_MAX: usize = 256;

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too short or too long.
    #[error("a password has {PASSWORD_LEN_MIN} to {PASSWORD_LEN_MAX} characters")]
    Length,
    /// The hasher failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Hashes a password with argon2id and a fresh salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let n = password.chars().count();
    if !(PASSWORD_LEN_MIN..=PASSWORD_LEN_MAX).contains(&n) {
        return Err(PasswordError::Length);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `hash` (false for a hash that does not parse).
pub fn verify(password: &str, hash: &str) -> bool {
    if password.len() > 4 * PASSWORD_LEN_MAX {
        return false;
    }
    match PasswordHash::new(hash) {
        Ok(h) => Argon2::default().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// Why a hash was not computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every worker is busy and the queue is full: try again shortly.
    #[error("too many passwords are being checked at once")]
    Busy,
    /// The worker thread failed.
    #[error("the password worker failed")]
    Failed,
}

/// Runs password hashing (argon2id: ~19 MiB and tens of ms each) with bounded concurrency: at
/// most `workers` at once, at most `queue` more waiting, and anything beyond refused at once
/// (so a flood of logins costs a bounded amount of memory and leaves the rest of the node
/// responsive, instead of piling hashes onto the blocking pool).
pub struct HashPool {
    workers: usize,
    admitted: tokio::sync::Semaphore,
    running: tokio::sync::Semaphore,
    in_flight: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
    refused: std::sync::atomic::AtomicU64,
}

impl HashPool {
    /// A pool of `workers` hashes at once with `queue` more waiting.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self {
            workers,
            admitted: tokio::sync::Semaphore::new(workers + queue),
            running: tokio::sync::Semaphore::new(workers),
            in_flight: Default::default(),
            peak: Default::default(),
            refused: Default::default(),
        }
    }

    /// A pool sized to the machine: one worker per core (at most `PASSWORD_HASH_WORKERS_MAX`)
    /// and `PASSWORD_HASH_QUEUE_PER_WORKER` waiting per worker.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let workers = cores.clamp(1, crate::limits::PASSWORD_HASH_WORKERS_MAX);
        Self::new(workers, workers * crate::limits::PASSWORD_HASH_QUEUE_PER_WORKER)
    }

    /// Runs `f` on a blocking thread when a worker is free; `Busy` at once when the queue is
    /// full.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, PoolError> {
        use std::sync::atomic::Ordering;
        let Ok(_admitted) = self.admitted.try_acquire() else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(PoolError::Busy);
        };
        let _running = self.running.acquire().await.map_err(|_| PoolError::Failed)?;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let out = tokio::task::spawn_blocking(f).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        out.map_err(|_| PoolError::Failed)
    }

    /// Hashes that may run at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Hashes running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Most hashes that ever ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Requests refused because the queue was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_per_salt() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        assert!(verify("correct horse", &a));
        assert!(!verify("correct hors", &a));
        assert!(!verify("correct horse", "not a hash"));
        assert_eq!(hash("short"), Err(PasswordError::Length));
    }

    // The lock is held across awaits on purpose: it keeps the pool's workers busy meanwhile.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_runs_at_most_its_workers_and_refuses_past_its_queue() {
        static HELD: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let pool = std::sync::Arc::new(HashPool::new(2, 3));
        let guard = HELD.lock().unwrap();
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.run(|| drop(HELD.lock())).await })
            })
            .collect();
        // Five admitted: two running (blocked on the lock), three waiting; the sixth is refused.
        while pool.in_flight() < 2 || pool.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|| ()).await, Err(PoolError::Busy));
        assert_eq!(pool.refused(), 1);
        drop(guard);
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(()));
        }
        assert_eq!(pool.peak(), 2);
        assert_eq!(pool.run(|| 7).await, Ok(7), "free again");
    }
}

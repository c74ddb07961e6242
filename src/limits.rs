//! Every bound of the node, with its unit and the reason for its value.
//!
//! A limit lives here and nowhere else, so that the relations between limits can be checked at
//! compile time (`const _: () = assert!(..)` at the bottom). Going over a limit is a typed error
//! (overload, too large), never a silent drop.

/// Most write sets one commit batch takes: one commit-log record, applied to sled at once.
///
/// 256 keeps one batch's apply (~15 µs of sled work per write set on a slow 2-vCPU guest) near
/// 4 ms, which bounds how long a write set can wait behind the batch before it.
pub const COMMIT_BATCH_LEN_MAX: usize = 256;

/// Batches applied but not yet acknowledged (their log record waits for `fdatasync`) before the
/// committer waits for the disk (backpressure when the disk falls behind).
pub const SYNC_QUEUE_LEN_MAX: usize = 64;

/// Size at which the commit log starts a new segment, bytes. Segments are deleted whole once a
/// checkpoint covers them; at ~15 MB/s of log under full load that is a few seconds each.
pub const WAL_SEGMENT_BYTES: u64 = 32 * 1024 * 1024;

/// How often sled is made durable and the commit log trimmed, ms. The log holds about two
/// intervals of batches, which is also what a restart replays.
pub const CHECKPOINT_EVERY_MS: u64 = 1_000;

/// Write sets queued for the committer before senders wait (backpressure, not loss).
pub const COMMIT_QUEUE_LEN_MAX: usize = 8 * COMMIT_BATCH_LEN_MAX;

/// Aggregate versions the committer remembers (it writes every aggregate, so it knows them
/// exactly); each hit saves a read while a batch is decided. ~100 bytes each: ~20 MiB at most.
pub const VERSION_CACHE_LEN_MAX: usize = 200_000;

/// Messages queued in one entity's mailbox before a sender gets `Overloaded`.
///
/// ractor's mailboxes are unbounded; this bound is ours. 1,024 queued commands at ~30 µs each
/// is ~30 ms of work for one entity: more than that is a client to slow down, not to buffer.
pub const MAILBOX_LEN_MAX: usize = 1024;

/// Entity actors one service keeps alive at once on a node (default; config may change it).
///
/// Memory is bounded by the live set, not by the number of aggregates ever stored. Measured
/// (2026-12-02, glibc's in-use heap during a 50,000-order run): a live entity costs ~18 KiB
/// (its state, ractor's channels and task, the handle), and the order saga keeps five services
/// at their cap, so 2,000 per service is ~180 MiB of live entities at most; 5,000 was ~450 MiB
/// for ~5% more sagas/s, 1,000 ~90 MiB for ~10% fewer (BENCHMARKS.md).
pub const LIVE_ENTITIES_MAX: usize = 2_000;

/// An entity not touched for this long is passivated (default; config may change it), in ms.
/// An order's entities go quiet once its saga step is done; a minute keeps the ones a shopper
/// comes back to warm.
pub const ENTITY_IDLE_MS: u64 = 60 * 1000;

/// How often a supervisor looks for idle entities, in ms.
pub const ENTITY_IDLE_SWEEP_MS: u64 = 1_000;

/// Times a sender retries when the entity it addressed stopped under it (passivated or
/// crashed) before the message was handled. The message id makes a retry idempotent.
pub const ENTITY_SEND_ATTEMPTS_MAX: u32 = 4;

/// How long an inbox id is kept after it was recorded, in ms: duplicates inside this window
/// are always detected. Seven days covers every redelivery the relay makes (minutes) and an
/// operator replaying a dead letter after a long weekend.
pub const INBOX_RETENTION_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// How often the inbox pruner runs, in ms.
pub const INBOX_PRUNE_EVERY_MS: u64 = 60 * 1000;

/// Width of one inbox generation tree, in ms of recording time. Pruning drops whole
/// generations, so an id lives between `INBOX_RETENTION_MS` and that plus one generation; a
/// duplicate check reads every live generation (two, normally).
pub const INBOX_GENERATION_MS: u64 = INBOX_RETENTION_MS;

/// Delivery attempts of one outbox entry before it moves to the dead-letter tree.
pub const RELAY_ATTEMPTS_MAX: u32 = 8;

/// Attempts a notification send makes before it is recorded FAILED (one less than the relay's,
/// so the send is settled before the relay would dead-letter it).
pub const NOTIFICATION_SEND_ATTEMPTS_MAX: u32 = RELAY_ATTEMPTS_MAX - 1;

/// How long one SMTP or SMS exchange may take, ms.
pub const NOTIFICATION_SEND_TIMEOUT_MS: u64 = 10_000;

/// First retry delay of a failed delivery, in ms; doubled per attempt up to the cap below.
pub const RELAY_BACKOFF_MS_MIN: u64 = 20;

/// Largest retry delay of a failed delivery, in ms.
pub const RELAY_BACKOFF_MS_MAX: u64 = 5_000;

/// Outbox entries of one lane (subscriber, routing key) delivered together. A hot entity (a
/// stock item every order books) takes them in one go, their write sets sharing commit
/// batches, instead of one commit round trip each; well under `MAILBOX_LEN_MAX`.
pub const RELAY_LANE_BATCH_LEN_MAX: usize = 64;

/// Outbox entries the relay holds in memory at once (loaded, in flight or waiting to retry).
pub const RELAY_WINDOW_LEN_MAX: usize = 4_096;

/// How long the relay waits for a subscriber's durable acknowledgement, in ms, before it
/// counts the attempt as failed and retries.
pub const RELAY_DELIVERY_TIMEOUT_MS: u64 = 10_000;

/// Largest encoded envelope (event) in bytes. Events are small facts; anything near this is a
/// bug. It is also far below ractor_cluster's 16 MiB frame limit, past which a whole session
/// between two nodes is torn down.
pub const ENVELOPE_BYTES_MAX: usize = 64 * 1024;

/// Largest encoded aggregate in bytes: it is rewritten on every change, so it must stay small.
pub const AGGREGATE_BYTES_MAX: usize = 1024 * 1024;

/// Largest encoded stored record of any kind (an outbox entry wraps an envelope plus its
/// delivery bookkeeping; a dead letter also keeps the reason).
pub const RECORD_BYTES_MAX: usize = AGGREGATE_BYTES_MAX + 64 * 1024;

/// Longest a node waits for a TCP connection to a peer, ms (ractor_cluster has no timeout).
pub const CLUSTER_CONNECT_TIMEOUT_MS: u64 = 2_000;

/// Longest a node waits for a connected peer's session to authenticate and become ready, ms
/// (a wrong cookie never does).
pub const CLUSTER_HANDSHAKE_TIMEOUT_MS: u64 = 3_000;

/// How often a node sends each peer's gateway a heartbeat, ms.
pub const CLUSTER_HEARTBEAT_MS: u64 = 500;

/// A peer not heard from for this long is down (a stopped process whose TCP stays open
/// included), ms.
pub const CLUSTER_PEER_SILENT_MS: u64 = 2_000;

/// A lane whose subscriber's node cannot be reached tries again after this long, ms (no
/// attempt counted: an unreachable node is not the entry's fault).
pub const RELAY_PARK_MS: u64 = 500;

/// Longest one remote command or delivery to a peer's gateway may take before it is sent again
/// (with the same message id), ms.
pub const CLUSTER_REMOTE_CALL_TIMEOUT_MS: u64 = 3_000;

/// How often a caller waiting for an entity on another node to change looks again, ms (an
/// entity here wakes its watchers instead).
pub const REMOTE_WATCH_POLL_MS: u64 = 100;

/// Sends of one remote command (the first and its retries after a timeout, all with one
/// message id) before the caller is told the owner is unavailable.
pub const CLUSTER_REMOTE_ATTEMPTS: u32 = 2;

/// What ractor_cluster adds around one of our frames (message name, reply port, lengths): the
/// inbound limit a node sets is our frame cap plus this, so a frame we let through is never
/// one that tears the session down.
pub const CLUSTER_FRAME_OVERHEAD_BYTES: usize = 64 * 1024;

/// Room kept in a frame for everything but its payload (the envelopes of a delivery, a reply).
pub const CLUSTER_FRAME_SLACK_BYTES: usize = 4 * 1024;

/// Longest one heartbeat call to a peer may take, ms.
pub const CLUSTER_CALL_TIMEOUT_MS: u64 = 1_000;

/// Shortest and longest wait before dialling a peer again, ms (jittered, doubling).
pub const CLUSTER_RECONNECT_MS_MIN: u64 = 100;
/// See `CLUSTER_RECONNECT_MS_MIN`.
pub const CLUSTER_RECONNECT_MS_MAX: u64 = 5_000;

/// Largest frame one cluster message may have, in bytes (ractor_cluster drops the whole
/// session above 16 MiB).
pub const CLUSTER_FRAME_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Longest id (SKU, order id, customer id = e-mail, routing key) in bytes.
pub const ID_BYTES_MAX: usize = 128;

/// Most lines in one order.
pub const ORDER_LINES_MAX: usize = 100;

/// Most units of one product in one order line.
pub const ORDER_LINE_QTY_MAX: u32 = 10_000;

/// Events kept in an order's timeline (an order sees ~10; a pathological one stops growing here
/// and the timeline says how many were left out).
pub const TIMELINE_LEN_MAX: usize = 64;

/// Payments one order may open (each failed or partial payment opens the next).
pub const PAYMENTS_PER_ORDER_MAX: usize = 20;

/// Uses of one promo code held at once for orders being placed. A hold lives from the
/// placement's start to its end (milliseconds), or `PROMO_HOLD_MS` when the placement was cut
/// off; beyond this many at once, placements with the code are refused and may be retried.
pub const PROMO_HOLDS_MAX: usize = 4_096;

/// How long a promo code's hold waits for its order before asking the customer's gate whether
/// the order came to exist, ms. Only liveness depends on it: the gate's answer, not the clock,
/// decides whether the use is given back.
pub const PROMO_HOLD_MS: u64 = 10_000;

/// Recent orders a customer gate remembers (the rest stay in the order service's trees).
pub const GATE_RECENT_ORDERS_MAX: usize = 50;

/// Longest product name or description, in bytes.
pub const TEXT_BYTES_MAX: usize = 4_096;

/// Communication channels one customer may list.
pub const COMMUNICATIONS_MAX: usize = 8;

/// Time an order may stay BOOKING_PENDING before it is cancelled (TIMEOUT), ms (default).
pub const BOOKING_TIMEOUT_MS: u64 = 60 * 1000;

/// Time a booked order may stay unpaid before it is cancelled (TIMEOUT), ms (default).
pub const PAYMENT_TIMEOUT_MS: u64 = 15 * 60 * 1000;

/// How often the order service's supervisor looks for due saga deadlines, ms.
pub const TIMER_TICK_MS: u64 = 50;

/// Most due timers one tick of a timer loop reads (the rest wait for the next tick).
pub const TIMERS_DUE_BATCH_MAX: usize = 512;

/// Most commands and events waiting, over all of a service's entities, before more are refused
/// as busy (each entity's own mailbox holds `MAILBOX_LEN_MAX`).
pub const SERVICE_PENDING_MAX: usize = 4 * MAILBOX_LEN_MAX;

/// How long a stopping service waits for its supervisor and entities to stop, ms.
pub const SERVICE_STOP_WAIT_MS: u64 = 10_000;

/// Most password hashes computed at once (argon2id takes ~19 MiB and tens of ms each); the
/// pool is one per core up to this.
pub const PASSWORD_HASH_WORKERS_MAX: usize = 8;

/// Password checks waiting per hashing worker before more are refused (429 with Retry-After):
/// at ~50 ms a hash, a waiter is answered within a fraction of a second.
pub const PASSWORD_HASH_QUEUE_PER_WORKER: usize = 4;

/// Longest human text stored in a record (a dead letter's reason, an error message), in bytes.
pub const REASON_BYTES_MAX: usize = 1_024;

/// Partitions of the key space when the config does not say (a power of two, so that adding
/// nodes later moves whole partitions).
pub const PARTITIONS_DEFAULT: u32 = 256;

/// Most partitions a cluster may configure.
pub const PARTITIONS_MAX: u32 = 65_536;

/// sled's page cache, in bytes. sled's default (1 GiB) tracks on-disk size rather than RAM;
/// measured RSS 205 MB at the default vs 45–69 MB at 16 MiB for 500k values of 200 B.
pub const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Largest request body, bytes (API.md: 64 KiB).
pub const HTTP_BODY_BYTES_MAX: usize = 64 * 1024;

/// Longest request target (path and query) answered, bytes; past it, 414 (the HTTP library's
/// own limit, 64 KiB, answers with an empty body: ours comes first).
pub const HTTP_URI_BYTES_MAX: usize = 8 * 1024;

/// Most request headers answered; past it, 431 (the HTTP library refuses past 100 with an empty
/// body: ours comes first).
pub const HTTP_HEADERS_LEN_MAX: usize = 64;

/// Most bytes of request headers (names and values) answered; past it, 431.
pub const HTTP_HEADER_BYTES_MAX: usize = 16 * 1024;

/// Longest a request may take before it is answered 503, ms (so a stuck service never hangs a
/// client; the slowest legitimate wait, `/pay/redirectUrl` for a booking, is
/// `PAY_REDIRECT_WAIT_MS`).
pub const HTTP_REQUEST_TIMEOUT_MS: u64 = 30_000;

/// Longest an event stream (`GET /order/{id}/events`) stays open, ms; the client reconnects.
/// Short enough that a stream left open by a client that vanished without closing its
/// connection ends soon.
pub const SSE_STREAM_MS: u64 = 60_000;

/// A comment is sent on an idle event stream this often, ms (so proxies keep it open and a
/// client sees it alive).
pub const SSE_KEEP_ALIVE_MS: u64 = 15_000;

/// How long a stopping front waits for open connections before it cuts them, ms (longer
/// than any request may take).
pub const SHUTDOWN_GRACE_MS: u64 = HTTP_REQUEST_TIMEOUT_MS + 5_000;

/// How long `/pay/redirectUrl` waits for an order's booking before answering 409, ms.
pub const PAY_REDIRECT_WAIT_MS: u64 = 3_000;

/// Most orders `GET /orders` lists for an operator (newest first).
pub const ORDERS_LISTED_MAX: usize = 500;

/// How long the sandbox payment page waits for the store to take its callback, ms.
pub const SANDBOX_CALLBACK_TIMEOUT_MS: u64 = 10_000;

/// How long a token is valid, ms.
pub const TOKEN_TTL_MS: u64 = 60 * 60 * 1000;

/// `/checkToken` returns a fresh token when the caller's expires within this, ms.
pub const TOKEN_REFRESH_WINDOW_MS: u64 = 10 * 60 * 1000;

const _: () = assert!(PAY_REDIRECT_WAIT_MS < HTTP_REQUEST_TIMEOUT_MS);
const _: () =
    assert!(CLUSTER_HEARTBEAT_MS < CLUSTER_PEER_SILENT_MS && CLUSTER_CALL_TIMEOUT_MS < CLUSTER_PEER_SILENT_MS);
const _: () = assert!(CLUSTER_RECONNECT_MS_MIN <= CLUSTER_RECONNECT_MS_MAX);
const _: () = assert!(TOKEN_REFRESH_WINDOW_MS < TOKEN_TTL_MS);
const _: () = assert!(COMMIT_QUEUE_LEN_MAX >= COMMIT_BATCH_LEN_MAX);
const _: () = assert!(SYNC_QUEUE_LEN_MAX > 0 && CHECKPOINT_EVERY_MS > 0);
const _: () = assert!(WAL_SEGMENT_BYTES >= 1024 * 1024);
const _: () = assert!(ENVELOPE_BYTES_MAX + 4 * 1024 <= RECORD_BYTES_MAX);
const _: () = assert!(AGGREGATE_BYTES_MAX <= RECORD_BYTES_MAX);
const _: () = assert!(RECORD_BYTES_MAX < CLUSTER_FRAME_BYTES_MAX);
const _: () = assert!(CLUSTER_FRAME_BYTES_MAX + CLUSTER_FRAME_OVERHEAD_BYTES < 16 * 1024 * 1024);
const _: () = assert!(CLUSTER_REMOTE_CALL_TIMEOUT_MS < RELAY_DELIVERY_TIMEOUT_MS);
const _: () = assert!(RELAY_BACKOFF_MS_MIN <= RELAY_BACKOFF_MS_MAX);
const _: () = assert!(RELAY_LANE_BATCH_LEN_MAX > 0 && RELAY_LANE_BATCH_LEN_MAX <= MAILBOX_LEN_MAX / 4);
const _: () = assert!(RELAY_BACKOFF_MS_MAX < RELAY_DELIVERY_TIMEOUT_MS);
const _: () = assert!(PARTITIONS_DEFAULT.is_power_of_two());
const _: () = assert!(PARTITIONS_DEFAULT <= PARTITIONS_MAX);
const _: () = assert!(INBOX_PRUNE_EVERY_MS < INBOX_RETENTION_MS);
const _: () = assert!(INBOX_GENERATION_MS > 0 && INBOX_GENERATION_MS <= INBOX_RETENTION_MS);
const _: () = assert!(ENTITY_IDLE_SWEEP_MS < ENTITY_IDLE_MS);

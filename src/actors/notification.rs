//! The notification service (the seed's notification sidecar with its mail and sms services).
//!
//! `NotificationsKind`, one per customer, keeps the service's own copies of the customer's
//! contact details and orders (fed by events; it never reads another service's trees) and, on
//! ORDER_PAID and ORDER_SHIPPED, publishes one `notification.send` per channel. The sender (a
//! subscriber of that topic, on the relay's at-least-once delivery with backoff) sends through
//! SMTP (lettre) or an SMS gateway (HTTP POST) when configured, and otherwise through the log
//! sink, which records what would have been sent. Each send is recorded (`SendRecordKind`) with
//! its status and attempts; a send already SENT is never repeated, and a failing send never
//! blocks or rolls back an order — it is retried, then recorded FAILED.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::entity::EntityKind;
use super::plan::{Change, CommandOutcome, Emit, EventOutcome};
use super::{from_state_v1, state_v1};
use crate::domain::customer::{Channel, Customer};
use crate::domain::notification::{Notifications, SendRecord, SendRequest, SendStatus};
use crate::domain::saga::ShippingEvent;
use crate::domain::{Ctx, CustomerId, MessageId};
use crate::limits::RELAY_ATTEMPTS_MAX;
use crate::persistence::codec::CodecError;
use crate::persistence::events::{self, Topic};
use crate::persistence::{DeliveryError, Envelope, Subscriber};
use crate::supervisors::Service;

fn permanent(e: impl std::fmt::Display) -> DeliveryError {
    DeliveryError::Permanent(e.to_string())
}

/// Reading a customer's notification state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationsQuery {
    /// The state.
    Get,
}

/// The notification service's per-customer entity kind.
#[derive(Debug)]
pub struct NotificationsKind;

const PAID: &[&str] = &["PAID"];
const SHIPPED: &[&str] = &["SHIPPED"];

fn with_sends(next: Notifications, sends: Vec<SendRequest>) -> Result<EventOutcome<NotificationsKind>, DeliveryError> {
    let mut emits = Vec::with_capacity(sends.len());
    for s in &sends {
        emits.push(Emit::new(Topic::NotificationSend, s.id.clone(), events::encode(s).map_err(permanent)?));
    }
    Ok(EventOutcome::Changed(Change::to(next).emit_all(emits)))
}

impl EntityKind for NotificationsKind {
    const SERVICE: &'static str = "notification";
    const AGGREGATE: &'static str = "customer";
    type Key = CustomerId;
    type State = Notifications;
    type Command = NotificationsQuery;
    type Reply = Notifications;

    fn topics() -> &'static [Topic] {
        &[Topic::CustomerEvent, Topic::OrderEvent, Topic::ShippingEvent]
    }

    fn status_filter(topic: Topic) -> Option<&'static [&'static str]> {
        match topic {
            Topic::OrderEvent => Some(PAID),
            Topic::ShippingEvent => Some(SHIPPED),
            _ => None,
        }
    }

    fn parse_key(s: &str) -> Result<CustomerId, String> {
        CustomerId::try_from(s.to_owned()).map_err(|e| e.to_string())
    }

    fn event_key(env: &Envelope) -> Result<CustomerId, String> {
        match env.topic {
            Topic::OrderEvent => events::decode_order_event(env.schema_version, &env.payload)
                .map(|e| e.customer_id)
                .map_err(|e| e.to_string()),
            Topic::ShippingEvent => events::decode::<ShippingEvent>(env.topic, env.schema_version, &env.payload)
                .map(|e| e.customer_id)
                .map_err(|e| e.to_string()),
            _ => Self::parse_key(&env.routing_key),
        }
    }

    fn initial(_key: &CustomerId) -> Notifications {
        Notifications::default()
    }

    fn encode_state(state: &Notifications) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("notifications", state)
    }

    fn decode_state(_key: &CustomerId, schema: u16, body: &[u8]) -> Result<Notifications, CodecError> {
        from_state_v1("notifications", schema, body)
    }

    fn status(state: &Notifications) -> String {
        if state.customer.is_some() { "KNOWN" } else { "UNKNOWN" }.into()
    }

    fn on_command(
        _key: &CustomerId,
        state: &Notifications,
        _cmd: NotificationsQuery,
        _ctx: &Ctx,
    ) -> CommandOutcome<Self> {
        CommandOutcome::Unchanged(state.clone())
    }

    fn on_event(
        _key: &CustomerId,
        state: &Notifications,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        let step = match env.topic {
            Topic::CustomerEvent => {
                let c: Customer = events::decode(env.topic, env.schema_version, &env.payload).map_err(permanent)?;
                state.on_customer(&c, env.aggregate_version)
            }
            Topic::OrderEvent => {
                let e = events::decode_order_event(env.schema_version, &env.payload).map_err(permanent)?;
                state.on_order(&e, env.message_id)
            }
            Topic::ShippingEvent => {
                let e: ShippingEvent =
                    events::decode(env.topic, env.schema_version, &env.payload).map_err(permanent)?;
                state.on_shipping(&e, env.message_id)
            }
            t => return Err(permanent(format!("notifications take no {} events", t.name()))),
        };
        match step {
            Some((next, sends)) => with_sends(next, sends),
            None => Ok(EventOutcome::Ignored),
        }
    }
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendOutcome {
    /// Sent through `sink`.
    Sent {
        /// `smtp`, `sms` or `log`.
        sink: String,
    },
    /// Failed.
    Failed {
        /// Why.
        error: String,
        /// No more attempts will be made.
        last: bool,
    },
}

/// What can be asked of a send record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendCommand {
    /// Record an attempt.
    Record {
        /// What was to be sent.
        request: SendRequest,
        /// How it went.
        outcome: SendOutcome,
    },
    /// Read it.
    Get,
}

/// The send record entity kind (one per notification id).
#[derive(Debug)]
pub struct SendRecordKind;

impl EntityKind for SendRecordKind {
    const SERVICE: &'static str = "notification";
    const AGGREGATE: &'static str = "send";
    type Key = String;
    type State = SendRecord;
    type Command = SendCommand;
    type Reply = SendRecord;

    fn topics() -> &'static [Topic] {
        &[]
    }

    fn parse_key(s: &str) -> Result<String, String> {
        if s.starts_with("n-") && s.len() <= crate::limits::ID_BYTES_MAX {
            Ok(s.to_owned())
        } else {
            Err(format!("{s:?} is not a notification id"))
        }
    }

    fn initial(_key: &String) -> SendRecord {
        SendRecord::default()
    }

    fn encode_state(state: &SendRecord) -> Result<(u16, Vec<u8>), CodecError> {
        state_v1("send record", state)
    }

    fn decode_state(_key: &String, schema: u16, body: &[u8]) -> Result<SendRecord, CodecError> {
        from_state_v1("send record", schema, body)
    }

    fn status(state: &SendRecord) -> String {
        state.status.map_or("NEW", SendStatus::name).to_owned()
    }

    fn on_command(_key: &String, state: &SendRecord, cmd: SendCommand, ctx: &Ctx) -> CommandOutcome<Self> {
        let (request, outcome) = match cmd {
            SendCommand::Get => return CommandOutcome::Unchanged(state.clone()),
            SendCommand::Record { request, outcome } => (request, outcome),
        };
        if state.status == Some(SendStatus::Sent) || state.status == Some(SendStatus::Failed) {
            return CommandOutcome::Unchanged(state.clone());
        }
        let mut next = state.clone();
        next.request = Some(request);
        next.attempts = next.attempts.saturating_add(1);
        if next.created_at_ms == 0 {
            next.created_at_ms = ctx.now_ms.max(1);
        }
        match outcome {
            SendOutcome::Sent { sink } => {
                next.status = Some(SendStatus::Sent);
                next.sent_at_ms = Some(ctx.now_ms);
                next.sink = Some(sink);
            }
            SendOutcome::Failed { error, last } => {
                next.status = Some(if last { SendStatus::Failed } else { SendStatus::Retrying });
                next.last_error = Some(error);
            }
        }
        CommandOutcome::Changed { reply: next.clone(), change: Change::to(next) }
    }

    fn on_event(
        _key: &String,
        _state: &SendRecord,
        env: &Envelope,
        _ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError> {
        Err(permanent(format!("send records take no {} events", env.topic.name())))
    }
}

/// Where mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// The SMTP server's host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The sender address.
    pub from: String,
}

/// Where text messages go: JSON `{"to","text"}` POSTed to `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsConfig {
    /// The gateway's URL (http only: the gateway is expected beside the node).
    pub url: String,
}

/// The log sink: what would have been sent, kept in memory (the last 1,000) and logged.
#[derive(Debug, Default)]
pub struct LogSink {
    lines: Mutex<VecDeque<String>>,
}

impl LogSink {
    fn record(&self, r: &SendRequest) {
        let line = format!("{} {} to {}: {}", r.event_type.name(), r.channel.name(), r.address, r.subject);
        tracing::info!(notification = %r.id, "{line}");
        let mut l = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if l.len() >= 1_000 {
            l.pop_front();
        }
        l.push_back(line);
    }

    /// What was "sent", oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }
}

/// The configured channels.
#[derive(Debug, Default)]
pub struct Channels {
    /// SMTP, when configured (else mail goes to the log sink).
    pub smtp: Option<SmtpConfig>,
    /// The SMS gateway, when configured (else texts go to the log sink).
    pub sms: Option<SmsConfig>,
    /// The log sink.
    pub log: LogSink,
}

/// Attempts a send makes before it is recorded FAILED (one less than the relay's, so the send
/// is settled before the relay would dead-letter it).
pub const SEND_ATTEMPTS_MAX: u32 = RELAY_ATTEMPTS_MAX - 1;

/// How long one SMTP or SMS exchange may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

fn send_mail(cfg: &SmtpConfig, r: &SendRequest) -> Result<(), String> {
    use lettre::message::header::ContentType;
    use lettre::{Message, SmtpTransport, Transport};
    let msg = Message::builder()
        .from(cfg.from.parse().map_err(|e| format!("bad sender address: {e}"))?)
        .to(r.address.parse().map_err(|e| format!("bad recipient address: {e}"))?)
        .subject(r.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(r.body.clone())
        .map_err(|e| e.to_string())?;
    let transport =
        SmtpTransport::builder_dangerous(cfg.host.as_str()).port(cfg.port).timeout(Some(SEND_TIMEOUT)).build();
    transport.send(&msg).map(|_| ()).map_err(|e| format!("smtp: {e}"))
}

fn send_sms(cfg: &SmsConfig, r: &SendRequest) -> Result<(), String> {
    let body = serde_json::json!({ "to": r.address, "text": format!("{}\n{}", r.subject, r.body) }).to_string();
    ureq::post(&cfg.url)
        .timeout(SEND_TIMEOUT)
        .set("Content-Type", "application/json")
        .send_string(&body)
        .map(|_| ())
        .map_err(|e| format!("sms gateway: {e}"))
}

/// The sender: takes `notification.send` events, sends, records.
pub struct Sender {
    records: Service<SendRecordKind>,
    channels: Arc<Channels>,
}

impl Sender {
    /// A sender recording into `records` through `channels`.
    pub fn new(records: Service<SendRecordKind>, channels: Arc<Channels>) -> Self {
        Self { records, channels }
    }

    async fn deliver_one(
        records: Service<SendRecordKind>,
        channels: Arc<Channels>,
        env: Envelope,
    ) -> Result<(), DeliveryError> {
        let r: SendRequest = events::decode(env.topic, env.schema_version, &env.payload).map_err(permanent)?;
        let key = SendRecordKind::parse_key(&r.id).map_err(permanent)?;
        let now =
            records.command(&key, MessageId::from_bytes(*uuid::Uuid::new_v4().as_bytes()), SendCommand::Get).await;
        let record = now.map_err(|e| DeliveryError::Transient(e.to_string()))?;
        if matches!(record.status, Some(SendStatus::Sent | SendStatus::Failed)) {
            return Ok(());
        }
        let attempt = record.attempts + 1;
        let (req, ch) = (r.clone(), channels.clone());
        let sent = tokio::task::spawn_blocking(move || match (req.channel, &ch.smtp, &ch.sms) {
            (Channel::Email, Some(cfg), _) => send_mail(cfg, &req).map(|()| "smtp"),
            (Channel::Sms, _, Some(cfg)) => send_sms(cfg, &req).map(|()| "sms"),
            _ => {
                ch.log.record(&req);
                Ok("log")
            }
        })
        .await
        .unwrap_or_else(|e| Err(format!("send task failed: {e}")));
        let last = attempt >= SEND_ATTEMPTS_MAX;
        let outcome = match &sent {
            Ok(sink) => SendOutcome::Sent { sink: (*sink).to_owned() },
            Err(e) => SendOutcome::Failed { error: e.clone(), last },
        };
        let id = MessageId::derived(&[b"send-attempt", env.message_id.as_bytes(), &attempt.to_be_bytes()]);
        records
            .command(&key, id, SendCommand::Record { request: r, outcome })
            .await
            .map_err(|e| DeliveryError::Transient(e.to_string()))?;
        match sent {
            Ok(_) => Ok(()),
            // Recorded FAILED: settled, nothing more to retry.
            Err(_) if last => Ok(()),
            Err(e) => Err(DeliveryError::Transient(e)),
        }
    }
}

impl Subscriber for Sender {
    fn deliver(&self, env: Envelope) -> BoxFuture<'static, Result<(), DeliveryError>> {
        Box::pin(Self::deliver_one(self.records.clone(), self.channels.clone(), env))
    }
}

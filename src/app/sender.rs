//! The notification sender, an adapter at the edge of the notification service: it takes
//! `notification.send` events (a subscriber of that topic, on the relay's at-least-once
//! delivery with backoff), sends through SMTP (lettre) or an SMS gateway (HTTP POST) when
//! configured and otherwise through the log sink, which records what would have been sent, and
//! records each attempt on the send's record (`SendRecordKind`) through its service.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::actors::kind::EntityKind;
use crate::actors::notification::{SendCommand, SendOutcome, SendRecordKind};
use crate::domain::customer::Channel;
use crate::domain::notification::{SendRequest, SendStatus};
use crate::domain::MessageId;
use crate::limits::{NOTIFICATION_SEND_ATTEMPTS_MAX, NOTIFICATION_SEND_TIMEOUT_MS};
use crate::persistence::events;
use crate::persistence::{DeliveryError, Envelope, Subscriber};
use crate::supervisors::Service;

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
    let transport = SmtpTransport::builder_dangerous(cfg.host.as_str())
        .port(cfg.port)
        .timeout(Some(Duration::from_millis(NOTIFICATION_SEND_TIMEOUT_MS)))
        .build();
    transport.send(&msg).map(|_| ()).map_err(|e| format!("smtp: {e}"))
}

fn send_sms(cfg: &SmsConfig, r: &SendRequest) -> Result<(), String> {
    let body = serde_json::json!({ "to": r.address, "text": format!("{}\n{}", r.subject, r.body) }).to_string();
    ureq::post(&cfg.url)
        .timeout(Duration::from_millis(NOTIFICATION_SEND_TIMEOUT_MS))
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
        let r: SendRequest =
            events::decode(env.topic, env.schema_version, &env.payload).map_err(DeliveryError::permanent)?;
        let key = SendRecordKind::parse_key(&r.id).map_err(DeliveryError::permanent)?;
        let now = records.command(&key, crate::actors::fresh_message_id(), SendCommand::Get).await;
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
        let last = attempt >= NOTIFICATION_SEND_ATTEMPTS_MAX;
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

//! Notifications over real protocols: lettre talks SMTP to a server the test runs on loopback;
//! texts are POSTed to an HTTP gateway the test runs.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use bazaar::app::sender::{Channels, SmsConfig, SmtpConfig};
use bazaar::domain::customer::{Channel, Communication};
use bazaar::domain::notification::SendStatus;
use bazaar::domain::saga::OrderStatus;
use bazaar::domain::Qty;
use bazaar::persistence::RelayConfig;

use crate::saga::{customer, settle_and_check, sku, store, wait_status};
use crate::support::eventually;

/// A minimal SMTP server: accepts every message and hands over (recipients, data).
async fn smtp_server() -> (u16, mpsc::UnboundedReceiver<(Vec<String>, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 test.local ESMTP\r\n").await.unwrap();
                let mut rcpt = Vec::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        w.write_all(b"250-test.local\r\n250 8BITMIME\r\n").await.unwrap();
                    } else if cmd.starts_with("MAIL FROM") {
                        w.write_all(b"250 OK\r\n").await.unwrap();
                    } else if cmd.starts_with("RCPT TO") {
                        rcpt.push(line.trim_end()[8..].trim().trim_matches(|c| c == '<' || c == '>').to_owned());
                        w.write_all(b"250 OK\r\n").await.unwrap();
                    } else if cmd == "DATA" {
                        w.write_all(b"354 go on\r\n").await.unwrap();
                        let mut data = String::new();
                        loop {
                            line.clear();
                            r.read_line(&mut line).await.unwrap();
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(&line);
                        }
                        tx.send((std::mem::take(&mut rcpt), data)).unwrap();
                        w.write_all(b"250 queued\r\n").await.unwrap();
                    } else if cmd == "QUIT" {
                        w.write_all(b"221 bye\r\n").await.unwrap();
                        return;
                    } else {
                        w.write_all(b"250 OK\r\n").await.unwrap();
                    }
                }
            });
        }
    });
    (port, rx)
}

/// A minimal HTTP gateway: answers `status` to every POST and hands over the bodies. It accepts
/// connections like `smtp_server` above (a fake server per protocol; what they say differs).
async fn sms_gateway(status: u16) -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sms", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(sock);
                let mut len = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).await.unwrap();
                tx.send(String::from_utf8(body).unwrap()).unwrap();
                let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                r.get_mut().write_all(reply.as_bytes()).await.unwrap();
            });
        }
    });
    (url, rx)
}

async fn paid_order(shop: &bazaar::app::shop::Shop, email: &str, phone: &str) -> bazaar::domain::OrderId {
    let c = customer(email);
    let comms = vec![
        Communication { channel: Channel::Email, address: email.into() },
        Communication { channel: Channel::Sms, address: phone.into() },
    ];
    shop.register_customer(&c, "Grace", "Hopper", comms).await.unwrap();
    let order = shop.place_order(&c, &[(sku("book-b"), Qty::new(1))], None).await.unwrap();
    wait_status(shop, &order.id, OrderStatus::Booked).await;
    let p = shop.redirect(&order.id, Duration::from_secs(5)).await.unwrap();
    let (body, sig) = shop.sandbox_callback(&p, true, p.amount.minor());
    shop.callback(&body, &sig).await.unwrap();
    wait_status(shop, &order.id, OrderStatus::Paid).await;
    order.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_paid_goes_out_by_real_smtp_and_sms() {
    let dir = tempfile::tempdir().unwrap();
    let (port, mut mails) = smtp_server().await;
    let (url, mut texts) = sms_gateway(200).await;
    let channels = Arc::new(Channels {
        smtp: Some(SmtpConfig { host: "127.0.0.1".into(), port, from: "shop@bazaar.test".into() }),
        sms: Some(SmsConfig { url }),
        log: Default::default(),
    });
    let (node, shop) = store(dir.path(), move |o| o.channels = channels).await;
    let order = paid_order(&shop, "grace@example.com", "+4915112345678").await;
    let (rcpt, data) = tokio::time::timeout(Duration::from_secs(20), mails.recv()).await.unwrap().unwrap();
    assert_eq!(rcpt, vec!["grace@example.com".to_owned()]);
    assert!(data.contains(&format!("Subject: Your order {order} is paid")), "{data}");
    assert!(data.contains("From: shop@bazaar.test"), "{data}");
    assert!(data.contains("Hello Grace Hopper"), "{data}");
    let text = tokio::time::timeout(Duration::from_secs(20), texts.recv()).await.unwrap().unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["to"], "+4915112345678");
    assert!(json["text"].as_str().unwrap().contains(&order.to_string()));
    eventually("both sends recorded", || async {
        let s = shop.sends().await.unwrap();
        s.len() == 2 && s.iter().all(|r| r.status == Some(SendStatus::Sent))
    })
    .await;
    let mut sinks: Vec<_> = shop.sends().await.unwrap().into_iter().filter_map(|r| r.sink).collect();
    sinks.sort();
    assert_eq!(sinks, vec!["sms", "smtp"]);
    settle_and_check(&node, &shop).await;
    // Nothing was sent twice.
    assert!(mails.try_recv().is_err());
    assert!(texts.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_gateway_is_retried_then_recorded_failed_and_the_order_is_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let (url, mut texts) = sms_gateway(500).await;
    let channels = Arc::new(Channels { smtp: None, sms: Some(SmsConfig { url }), log: Default::default() });
    let (node, shop) = store(dir.path(), move |o| {
        o.channels = channels;
        o.relay = RelayConfig { backoff_ms_min: 1, backoff_ms_max: 5, ..RelayConfig::default() };
    })
    .await;
    let order = paid_order(&shop, "retry@example.com", "+4915199999999").await;
    eventually("the text is recorded failed", || async {
        shop.sends().await.unwrap().iter().any(|r| r.status == Some(SendStatus::Failed))
    })
    .await;
    let sends = shop.sends().await.unwrap();
    let sms = sends.iter().find(|r| r.status == Some(SendStatus::Failed)).unwrap();
    assert_eq!(sms.attempts, bazaar::limits::NOTIFICATION_SEND_ATTEMPTS_MAX);
    assert!(sms.last_error.as_deref().unwrap().contains("500"), "{:?}", sms.last_error);
    let mut tries = 0;
    while texts.try_recv().is_ok() {
        tries += 1;
    }
    assert_eq!(tries, bazaar::limits::NOTIFICATION_SEND_ATTEMPTS_MAX);
    // Mail had no server configured: it went to the log sink.
    let mail = sends.iter().find(|r| r.sink.as_deref() == Some("log")).unwrap();
    assert_eq!(mail.status, Some(SendStatus::Sent));
    assert_eq!(shop.order(&order).await.unwrap().status, OrderStatus::Paid);
    assert!(node.store().dead_letters().unwrap().is_empty(), "a settled failure is not a dead letter");
    settle_and_check(&node, &shop).await;
}

//! What a hostile tester found (issue 11), each as a test that failed before the fix: promo
//! limits under concurrency, callbacks that over- or under-capture, the sandbox driven by
//! strangers, login floods and lock-outs, and the 409 right after paying.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use super::client::*;

/// Signs `n` customers up (a few at a time: each sign-up hashes a password) and logs them in.
async fn customers(s: &Srv, prefix: &str, n: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(4) {
        let batch = join_all(chunk.iter().map(|i| s.customer_named(&format!("{prefix}{i}@example.com")))).await;
        tokens.extend(batch);
    }
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_promo_codes_limit_holds_when_twenty_customers_use_it_at_once() {
    let s = Srv::start().await;
    let admin = s.token(ADMIN).await;
    for (round, limit) in [(0, 1), (1, 1), (2, 2), (3, 2), (4, 2)] {
        let token = format!("RACE{round}");
        let body = json!({"token": token, "description": "race",
                          "rule": {"type": "PERCENT", "percent": 10, "usageLimit": limit}});
        assert_eq!(s.post("/promocode", Some(&admin), &body).await.status, StatusCode::CREATED);
        eventually("the code is known to pricing", || async {
            s.post("/calcPrice", None, &order_body(&[("book-frankenstein", 1)], Some(&token))).await.status
                == StatusCode::OK
        })
        .await;
        let racers = customers(&s, &format!("racer{round}-"), 20).await;
        let body = order_body(&[("book-frankenstein", 1)], Some(&token));
        let answers = join_all(racers.iter().map(|t| s.post("/order/add", Some(t), &body))).await;
        let placed: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::CREATED).collect();
        assert_eq!(placed.len(), limit, "round {round}: {limit} orders may use {token}, got {}", placed.len());
        for a in answers.iter().filter(|a| a.status != StatusCode::CREATED) {
            a.assert_error(422, "invalid");
            assert!(a.text.contains("usage limit"), "{}", a.text);
        }
        // A cancelled order gives its use back: the next customer gets it.
        let (first, owner) = answers.iter().zip(&racers).find(|(a, _)| a.status == StatusCode::CREATED).unwrap();
        let id = first.body["id"].as_str().unwrap();
        let c = s.post_empty(&format!("/order/{id}/cancel"), Some(owner)).await;
        assert_eq!(c.status, StatusCode::OK, "{}", c.text);
        let late = customers(&s, &format!("late{round}-"), 1).await.remove(0);
        eventually("the cancelled order's use is back", || async {
            s.post("/order/add", Some(&late), &order_body(&[("book-frankenstein", 1)], Some(&token))).await.status
                == StatusCode::CREATED
        })
        .await;
    }
    assert_invariants(&s).await;
    s.stop().await;
}

/// Waits for every event to be delivered, then asks GET /invariants.
pub async fn assert_invariants(s: &Srv) {
    s.settled_digest().await;
    let op = s.token(OPERATOR).await;
    let r = s.get("/invariants", Some(&op)).await;
    assert_eq!(r.body["ok"], true, "{}", r.text);
}

/// A booked order of a new customer, with its open payment (redirect answer).
async fn payable_order(s: &Srv, email: &str) -> (String, String, serde_json::Value) {
    let t = s.customer_named(email).await;
    let o = s.order(&t, &[("book-frankenstein", 1)], None).await;
    let id = o["id"].as_str().unwrap().to_owned();
    let r = s.get(&format!("/pay/redirectUrl?orderId={id}"), Some(&t)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    (t, id, r.body)
}

async fn signed_callback(s: &Srv, payment_id: &str, status: &str, amount: i64) -> Answer {
    let body = json!({"paymentId": payment_id, "systemPayId": format!("sys-{payment_id}"),
                      "status": status, "amount": amount})
    .to_string();
    let sig = s.running().shop.payment_system().sign(body.as_bytes());
    let req = s.raw(reqwest::Method::POST, "/pay/callback").await;
    s.send(req.header("content-type", "application/json").header("x-signature", sig).body(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_capture_at_most_what_is_due_and_need_an_amount() {
    let s = Srv::start().await;
    // Ten times the amount: the order is paid, the excess is owed back on that payment.
    let (t, id, pay) = payable_order(&s, "over@example.com").await;
    let pid = pay["paymentId"].as_str().unwrap();
    let due = pay["amount"].as_i64().unwrap();
    assert_eq!(signed_callback(&s, pid, "SUCCEEDED", 10 * due).await.status, StatusCode::NO_CONTENT);
    s.wait_status(&t, &id, "PAID").await;
    let p = s.get(&format!("/payments/{id}"), Some(&t)).await;
    assert_eq!(p.body[0]["paidAmount"], 10 * due, "{}", p.text);
    assert_eq!(p.body[0]["refundedAmount"], 9 * due, "{}", p.text);
    assert_eq!(p.body[0]["status"], "PAID");

    // Zero and negative SUCCEEDED amounts are refused and change nothing; the real one lands.
    let (t, id, pay) = payable_order(&s, "zero@example.com").await;
    let pid = pay["paymentId"].as_str().unwrap();
    let due = pay["amount"].as_i64().unwrap();
    let before = s.settled_digest().await;
    for amount in [0, -1, -due] {
        signed_callback(&s, pid, "SUCCEEDED", amount).await.assert_error(422, "invalid");
    }
    signed_callback(&s, pid, "FAILED", -5).await.assert_error(422, "invalid");
    assert_eq!(s.settled_digest().await, before, "refused callbacks changed stored state");
    assert_eq!(signed_callback(&s, pid, "SUCCEEDED", due).await.status, StatusCode::NO_CONTENT);
    s.wait_status(&t, &id, "PAID").await;
    let p = s.get(&format!("/payments/{id}"), Some(&t)).await;
    assert_eq!((p.body[0]["paidAmount"].as_i64(), p.body[0]["refundedAmount"].as_i64()), (Some(due), Some(0)));
    assert_invariants(&s).await;
    s.stop().await;
}

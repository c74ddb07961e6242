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
    let sig = s.running().shop.sandbox().unwrap().sign(body.as_bytes());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_page_opens_only_through_its_link_and_takes_no_cross_site_posts() {
    let s = Srv::start().await;
    let (t, id, pay) = payable_order(&s, "victim@example.com").await;
    let pid = pay["paymentId"].as_str().unwrap();
    let link = pay["redirectUrl"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&format!("/sandbox/pay/{pid}?key=")), "{link}");
    let (_, _, other) = payable_order(&s, "other@example.com").await;
    let other_key = other["redirectUrl"].as_str().unwrap().split("key=").nth(1).unwrap().to_owned();
    let before = s.settled_digest().await;
    // Without its key, with a made-up key, or with another payment's key: no such page.
    for path in [
        format!("/sandbox/pay/{pid}"),
        format!("/sandbox/pay/{pid}?key=00000000000000000000000000000000"),
        format!("/sandbox/pay/{pid}?key={other_key}"),
        format!("/sandbox/pay/{pid}?key="),
        format!("/sandbox/pay/{pid}?key=zz&key=yy"),
    ] {
        s.get(&path, None).await.assert_error(404, "not_found");
        let post = s.raw(reqwest::Method::POST, &path).await.form(&[("action", "fail")]);
        s.send(post).await.assert_error(404, "not_found");
    }
    // With its key, but posted from another site.
    let evil = s.raw(reqwest::Method::POST, &link).await.form(&[("action", "fail")]);
    s.send(evil.header("origin", "https://evil.example")).await.assert_error(403, "forbidden");
    let evil = s.raw(reqwest::Method::POST, &link).await.form(&[("action", "part")]);
    s.send(evil.header("sec-fetch-site", "cross-site")).await.assert_error(403, "forbidden");
    assert_eq!(s.settled_digest().await, before, "refused sandbox requests changed stored state");
    // The page itself: no script, no referrer, no cache.
    let page = s.get(&link, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let h = |n: &str| page.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(h("content-security-policy").contains("default-src 'none'"), "{:?}", page.headers);
    assert_eq!(h("referrer-policy"), "no-referrer");
    assert_eq!(h("cache-control"), "no-store");
    // Its owner's link works, from the page itself.
    let own = s.raw(reqwest::Method::POST, &link).await.form(&[("action", "full")]);
    let done = s.send(own.header("origin", s.base.clone())).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    s.wait_status(&t, &id, "PAID").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_sandbox_off_shoppers_go_to_the_real_checkout_and_sandbox_pages_do_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path());
    o.node.payments = bazaar::cluster::config::PaymentsConfig {
        sandbox: false,
        checkout_url: Some("https://pay.example/c/{id}".into()),
    };
    let s = Srv::start_with(dir, o).await;
    let (_, _, pay) = payable_order(&s, "real@example.com").await;
    let pid = pay["paymentId"].as_str().unwrap();
    assert_eq!(pay["redirectUrl"], format!("https://pay.example/c/{pid}"));
    // Even the key the sandbox would have used opens nothing.
    let key = bazaar::actors::payment::Sandbox::new(&std::fs::read(s.dir.path().join("secrets/payment.key")).unwrap())
        .link_key(&bazaar::domain::PaymentId::parse(pid).unwrap());
    s.get(&format!("/sandbox/pay/{pid}?key={key}"), None).await.assert_error(404, "not_found");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_a_password_is_slowed_without_locking_its_owner_out() {
    let s = Srv::start().await;
    let (attacker, owner, sprayer) = ([127, 0, 0, 66], [127, 0, 0, 77], [127, 0, 0, 88]);
    for _ in 0..5 {
        s.login_from(attacker, ("reader@bazaar.test", "guess-guess"), &[]).await.assert_error(401, "unauthorized");
    }
    // The guesser waits, even with the right password from there...
    s.login_from(attacker, READER, &[]).await.assert_error(429, "too_many_requests");
    // ...but the owner, from elsewhere, gets in.
    assert_eq!(s.login_from(owner, READER, &[]).await.status, StatusCode::OK);
    // Trying many accounts once each is slowed too, per address; a forwarded-for header from a
    // peer that is not a configured proxy changes nothing.
    let mut refused = 0;
    for i in 0..30 {
        let email = format!("someone{i}@example.com");
        let fake = format!("10.9.8.{i}");
        let a = s.login_from(sprayer, (&email, "guess-guess"), &[("x-forwarded-for", &fake)]).await;
        match a.status.as_u16() {
            401 => assert_eq!(refused, 0, "once throttled, the address stays throttled"),
            429 => refused += 1,
            other => panic!("{other}: {}", a.text),
        }
    }
    assert!(refused >= 10, "{refused} of 30 refused");
    assert_eq!(s.login_from(owner, ADMIN, &[]).await.status, StatusCode::OK, "other addresses are not affected");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path());
    let proxy = [127, 0, 0, 99];
    o.front.trusted_proxies = vec![std::net::IpAddr::from(proxy)];
    let s = Srv::start_with(dir, o).await;
    for _ in 0..5 {
        let a = s.login_from(proxy, ("reader@bazaar.test", "nope-nope"), &[("x-forwarded-for", "203.0.113.7")]).await;
        a.assert_error(401, "unauthorized");
    }
    s.login_from(proxy, READER, &[("x-forwarded-for", "203.0.113.7")]).await.assert_error(429, "too_many_requests");
    // The same proxy, another client behind it: not throttled.
    let other = s.login_from(proxy, READER, &[("x-forwarded-for", "203.0.113.8")]).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customer_who_saw_their_order_paid_can_order_again_at_once() {
    let s = Srv::start().await;
    let stock = s.token(STOCK).await;
    let more =
        json!({"id": "book-frankenstein", "quantity": 500, "weight": 300, "length": 200, "width": 130, "height": 25});
    assert_eq!(s.post("/stock/items", Some(&stock), &more).await.status, StatusCode::OK);
    let shoppers = customers(&s, "again-", 16).await;
    let rounds = join_all(shoppers.iter().map(|t| async {
        let mut refused = 0;
        for _ in 0..3 {
            let o = s.order(t, &[("book-frankenstein", 1)], None).await;
            let id = o["id"].as_str().unwrap().to_owned();
            s.pay(t, &id, "full").await;
            s.wait_status(t, &id, "PAID").await;
            // Seen PAID: the very next order is not refused for that order.
            let next = s.post("/order/add", Some(t), &order_body(&[("book-frankenstein", 1)], None)).await;
            if next.status == StatusCode::CONFLICT && next.body["orderId"] == id.as_str() {
                refused += 1;
            }
            assert_eq!(next.status, StatusCode::CREATED, "{}", next.text);
            let c = s.post_empty(&format!("/order/{}/cancel", next.body["id"].as_str().unwrap()), Some(t)).await;
            assert_eq!(c.status, StatusCode::OK, "{}", c.text);
            s.wait_status(t, next.body["id"].as_str().unwrap(), "CANCELLED").await;
        }
        refused
    }))
    .await;
    assert_eq!(rounds.iter().sum::<u32>(), 0, "orders refused for an order already paid");
    assert_invariants(&s).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_requests_get_json_errors_in_the_stores_words() {
    let s = Srv::start().await;
    let me = s.token(READER).await;
    // HEAD works wherever GET does, and 405 says so.
    let head = s.send(s.raw(reqwest::Method::HEAD, "/health").await).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.text.is_empty(), "HEAD has no body");
    let put = s.send(s.raw(reqwest::Method::PUT, "/health").await).await;
    put.assert_error(405, "method_not_allowed");
    assert_eq!(put.headers["allow"], "GET, HEAD");
    // A long path, many headers: JSON 414 and 431.
    let long = format!("/order/{}", "x".repeat(10_000));
    s.get(&long, Some(&me)).await.assert_error(414, "uri_too_long");
    let mut many = s.raw(reqwest::Method::GET, "/health").await;
    for i in 0..80 {
        many = many.header(format!("x-extra-{i}"), "v");
    }
    s.send(many).await.assert_error(431, "headers_too_large");
    // An echoed id is cut short; no library's wording leaks.
    let id = "y".repeat(5_000);
    let a = s.get(&format!("/order/{id}"), Some(&me)).await;
    a.assert_error(404, "not_found");
    assert!(a.text.len() < 400, "{} bytes", a.text.len());
    for token in ["a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "%%%"] {
        let a = s.get("/orders", Some(token)).await;
        a.assert_error(401, "unauthorized");
        for leak in ["Base64", "variant", "expected one of", "Json", "Error("] {
            assert!(!a.text.contains(leak), "{token}: {}", a.text);
        }
    }
    // A key named twice is refused, and nothing is placed.
    let dup = r#"{"itemsList":[{"id":"book-frankenstein","quantity":1,"quantity":-5}]}"#;
    let req =
        s.raw(reqwest::Method::POST, "/order/add").await.bearer_auth(&me).header("content-type", "application/json");
    let a = s.send(req.body(dup)).await;
    a.assert_error(400, "bad_request");
    assert!(a.text.contains("appears twice"), "{}", a.text);
    assert!(s.get("/orders", Some(&me)).await.body.as_array().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_tells_every_step_in_words_and_a_cancelled_shipment_says_so() {
    let s = Srv::start().await;
    let me = s.customer("story@example.com").await;
    let o = s.order(&me, &[("book-frankenstein", 1)], None).await;
    let id = o["id"].as_str().unwrap().to_owned();
    s.pay(&me, &id, "full").await;
    s.wait_status(&me, &id, "PAID").await;
    let shipper = s.token(SHIPPING).await;
    eventually("the shipment", || async {
        s.get(&format!("/shipping/{id}"), Some(&shipper)).await.status == StatusCode::OK
    })
    .await;
    for step in ["ASSEMBLED", "SHIPPED"] {
        let a = s.post(&format!("/shipping/{id}/status"), Some(&shipper), &json!({"status": step})).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }
    s.wait_status(&me, &id, "SHIPPING_PENDING").await;
    let events = || async {
        let t = s.get(&format!("/order/{id}/timeline"), Some(&me)).await;
        t.body.as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    eventually("both notices are on the timeline", || async {
        events().await.iter().filter(|e| e.starts_with("Notification:")).count() == 2
    })
    .await;
    let events = events().await;
    for expected in [
        "Order placed; its books are being reserved",
        "Stock: every book is reserved",
        "Payment: a payment was opened",
        "Paid in full; the parcel will be prepared",
        "Shipping: the shipment was created; the parcel will be packed",
        "Shipping: the parcel is packed",
        "Shipping: handed to the carrier",
        "Notification: payment confirmation by e-mail to story@example.com sent",
        "Notification: shipping notice by e-mail to story@example.com sent",
    ] {
        assert!(events.iter().any(|e| e == expected), "no {expected:?} in {events:#?}");
    }
    assert!(events.iter().all(|e| !e.contains("Event(")), "{events:#?}");

    // An operator cancels a paid order before it leaves: its shipment reads CANCELLED.
    let other = s.order(&me, &[("book-frankenstein", 1)], None).await;
    let oid = other["id"].as_str().unwrap().to_owned();
    s.pay(&me, &oid, "full").await;
    s.wait_status(&me, &oid, "PAID").await;
    eventually("the second shipment", || async {
        s.get(&format!("/shipping/{oid}"), Some(&shipper)).await.status == StatusCode::OK
    })
    .await;
    let op = s.token(OPERATOR).await;
    assert_eq!(s.post_empty(&format!("/order/{oid}/cancel"), Some(&op)).await.status, StatusCode::OK);
    eventually("the shipment reads CANCELLED", || async {
        s.get(&format!("/shipping/{oid}"), Some(&shipper)).await.body["status"] == "CANCELLED"
    })
    .await;
    s.stop().await;
}

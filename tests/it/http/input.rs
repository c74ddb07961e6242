//! Bad input of every shape gets API.md's typed JSON error and changes nothing stored; the
//! double click; Idempotency-Key.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::client::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_non_json_and_wrongly_typed_bodies_are_refused_and_change_nothing() {
    let s = Srv::start().await;
    let me = s.token(READER).await;
    let admin = s.token(ADMIN).await;
    let before = s.settled_digest().await;
    let post_raw = |path: &'static str, token: String, ctype: &'static str, body: Vec<u8>| {
        let s = &s;
        async move {
            s.send(s.http.post(format!("{}{path}", s.base)).bearer_auth(token).header("content-type", ctype).body(body))
                .await
        }
    };
    // Routes that take a JSON body, each with a token that may use it.
    let routes: [(&'static str, &String); 5] = [
        ("/order/add", &me),
        ("/calcPrice", &me),
        ("/customer", &me),
        ("/product/add", &admin),
        ("/promocode", &admin),
    ];
    for (path, token) in routes {
        let r = post_raw(path, token.clone(), "application/json", b"{\"itemsList\": [".to_vec()).await;
        r.assert_error(400, "bad_request");
        assert!(r.body["message"].as_str().unwrap().contains("malformed JSON"), "says what was wrong: {}", r.text);
        post_raw(path, token.clone(), "text/plain", b"{}".to_vec()).await.assert_error(415, "unsupported_media_type");
        post_raw(path, token.clone(), "application/x-www-form-urlencoded", b"a=b".to_vec())
            .await
            .assert_error(415, "unsupported_media_type");
        let mut big = b"{\"itemsList\":[],\"pad\":\"".to_vec();
        big.extend(std::iter::repeat_n(b'x', 70 * 1024));
        big.extend(b"\"}");
        post_raw(path, token.clone(), "application/json", big).await.assert_error(413, "payload_too_large");
        post_raw(path, token.clone(), "application/json", b"[1,2,3]".to_vec()).await.assert_error(422, "invalid");
        post_raw(path, token.clone(), "application/json", vec![0xff, 0xfe, 0x00])
            .await
            .assert_error(400, "bad_request");
    }
    // Wrongly typed and invalid values, unknown books and codes, a line over the per-line cap: all 422,
    // each saying where and why (409 is kept for conflicts with stored state, tested elsewhere).
    for (body, status, code, says) in [
        (json!({"itemsList": "three books"}), 422, "invalid", "itemsList"),
        (json!({"itemsList": [{"id": "book-jane-eyre", "quantity": -1}]}), 422, "invalid", "itemsList[0].quantity"),
        (json!({"itemsList": [{"id": "book-jane-eyre", "quantity": 1.5}]}), 422, "invalid", "itemsList[0].quantity"),
        (json!({"itemsList": [{"id": "book-jane-eyre", "quantity": 0}]}), 422, "invalid", "quantity"),
        (
            json!({"itemsList": [{"id": "book-jane-eyre", "quantity": 4294967296u64}]}),
            422,
            "invalid",
            "itemsList[0].quantity",
        ),
        (json!({"itemsList": [{"id": 7, "quantity": 1}]}), 422, "invalid", "itemsList[0].id: invalid type"),
        (json!({"itemsList": []}), 422, "invalid", "itemsList"),
        (json!({"itemsList": [{"id": "no-such-book", "quantity": 1}]}), 422, "invalid", "no-such-book"),
        (
            json!({"itemsList": [{"id": "book-jane-eyre", "quantity": 1}], "promoCode": 5}),
            422,
            "invalid",
            "at promoCode",
        ),
        (
            json!({"itemsList": [{"id": "book-jane-eyre", "quantity": 1}], "promoCode": "NO-SUCH-CODE"}),
            422,
            "invalid",
            "no such code",
        ),
        (json!({"itemsList": [{"id": "book-jane-eyre", "quantity": 1}], "surprise": true}), 422, "invalid", "surprise"),
        (json!({"itemsList": [{"id": "book-jane-eyre", "quantity": 100000}]}), 422, "invalid", "at most"),
    ] {
        let r = s.post("/order/add", Some(&me), &body).await;
        r.assert_error(status, code);
        assert!(r.text.contains(says), "{body} → {}", r.text);
    }
    let bad_signups = [
        json!({"email": "not-an-email", "password": "long-enough-pw", "name": "A", "lastName": "B", "communications": []}),
        json!({"email": "a@b.example", "password": "short", "name": "A", "lastName": "B", "communications": []}),
        json!({"email": "a@b.example", "password": "long-enough-pw", "name": "A", "lastName": "B",
               "communications": [{"type": "PIGEON", "address": "loft 3"}]}),
        json!({"email": "a@b.example", "password": "long-enough-pw", "name": "A", "lastName": "B",
               "communications": [{"type": "EMAIL", "address": "nope"}]}),
        json!({"email": "a@b.example", "password": "long-enough-pw", "name": "", "lastName": "B", "communications": []}),
        json!({"email": "a@b.example", "password": "long-enough-pw"}),
    ];
    for body in bad_signups {
        s.post("/customer", None, &body).await.assert_error(422, "invalid");
    }
    s.post("/customer", None, &json!({"email": "reader@bazaar.test", "password": "long-enough-pw", "name": "A", "lastName": "B", "communications": []}))
        .await
        .assert_error(409, "email_taken");
    s.post("/product/add", Some(&admin), &json!({"name": "Free", "description": "x", "price": -1}))
        .await
        .assert_error(422, "invalid");
    s.post("/product/add", Some(&admin), &json!({"name": "", "description": "x", "price": 100}))
        .await
        .assert_error(422, "invalid");
    let stock = s.token(STOCK).await;
    s.post(
        "/stock/items",
        Some(&stock),
        &json!({"id": "ghost", "quantity": 1, "weight": 1, "length": 1, "width": 1, "height": 1}),
    )
    .await
    .assert_error(422, "invalid");
    s.post(
        "/stock/items",
        Some(&stock),
        &json!({"id": "book-jane-eyre", "quantity": 0, "weight": 1, "length": 1, "width": 1, "height": 1}),
    )
    .await
    .assert_error(422, "invalid");

    // Unknown ids, routes and methods.
    for path in [
        "/product/no-such-book",
        "/stock/freeItems/no-such-book",
        "/order/o1-00000000-1",
        "/order/not%20an%20id",
        "/order/o1-00000000-1/timeline",
        "/payments/o1-00000000-1",
        "/shipping/o1-00000000-1",
        "/pay/redirectUrl?orderId=o1-00000000-1",
        "/sandbox/pay/o1-00000000-1-p1",
        "/sandbox/pay/%ff%fe",
        "/nothing/here",
        "/order/o1-00000000-1/events",
        "/assets/000000000000/app.js",
    ] {
        let public = ["/sandbox", "/product", "/stock", "/assets"];
        let token = if public.iter().any(|p| path.starts_with(p)) { None } else { Some(me.as_str()) };
        let r = s.get(path, token).await;
        r.assert_error(404, "not_found");
    }
    for (m, path) in [
        (Method::DELETE, "/order/add"),
        (Method::GET, "/order/add"),
        (Method::PUT, "/products"),
        (Method::POST, "/health"),
        (Method::PATCH, "/customer"),
    ] {
        s.send(s.raw(m, path).await).await.assert_error(405, "method_not_allowed");
    }
    // Bad queries.
    for q in ["/products?size=0", "/products?size=101", "/products?page=-1", "/products?promo=maybe", "/products?x=1"] {
        s.get(q, None).await.assert_error(400, "bad_request");
    }
    s.get("/pay/redirectUrl", Some(&me)).await.assert_error(400, "bad_request");
    // Payment callbacks: unsigned, badly signed, malformed.
    let cb = json!({"paymentId": "o1-00000000-1-p1", "systemPayId": "x", "status": "SUCCEEDED", "amount": 100});
    s.post("/pay/callback", None, &cb).await.assert_error(401, "unauthorized");
    let r = s.send(s.http.post(format!("{}/pay/callback", s.base)).header("x-signature", "00ff").json(&cb)).await;
    r.assert_error(401, "unauthorized");
    // A sandbox form with a made-up action.
    let r = s.send(s.http.post(format!("{}/sandbox/pay/o1-00000000-1-p1", s.base)).form(&[("action", "steal")])).await;
    assert!(matches!(r.status.as_u16(), 400 | 404), "{}", r.text);

    assert_eq!(s.settled_digest().await, before, "a refused request changed stored state");
    s.stop().await;
}

/// The double click over HTTP: 20 concurrent orders from one customer → one 201, nineteen 409
/// naming that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_orders_from_one_customer_make_one_order() {
    let s = Srv::start().await;
    let me = s.token(READER).await;
    let body = order_body(&[("book-frankenstein", 1)], None);
    let answers = futures::future::join_all((0..20).map(|_| s.post("/order/add", Some(&me), &body))).await;
    let created: Vec<&Answer> = answers.iter().filter(|a| a.status == StatusCode::CREATED).collect();
    assert_eq!(created.len(), 1, "{:?}", answers.iter().map(|a| &a.text).collect::<Vec<_>>());
    let id = created[0].body["id"].as_str().unwrap();
    for a in answers.iter().filter(|a| a.status != StatusCode::CREATED) {
        a.assert_error(409, "unpaid_order_exists");
        assert_eq!(a.body["orderId"], id, "the 409 names the order");
    }
    let mine = s.get("/orders", Some(&me)).await.body;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    // Once paid, the next order is accepted.
    s.pay(&me, id, "full").await;
    s.wait_status(&me, id, "PAID").await;
    assert_eq!(s.post("/order/add", Some(&me), &body).await.status, StatusCode::CREATED);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_returns_the_first_answer_and_does_nothing_else() {
    let s = Srv::start().await;
    let me = s.token(READER).await;
    let body = order_body(&[("book-moby-dick", 2)], None);
    let send = |key: &'static str, body: Value| {
        let (s, me) = (&s, me.clone());
        async move {
            s.send(
                s.http.post(format!("{}/order/add", s.base)).bearer_auth(me).header("idempotency-key", key).json(&body),
            )
            .await
        }
    };
    // Concurrent repeats: all get the same 201.
    let answers = futures::future::join_all((0..5).map(|_| send("click-1", body.clone()))).await;
    for a in &answers {
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        assert_eq!(a.body, answers[0].body);
    }
    let later = send("click-1", body.clone()).await;
    assert_eq!(later.body, answers[0].body);
    assert_eq!(s.get("/orders", Some(&me)).await.body.as_array().unwrap().len(), 1);
    // The key with another body is refused, not answered with someone else's result.
    send("click-1", order_body(&[("book-moby-dick", 3)], None)).await.assert_error(422, "invalid");
    // A new key is a new request (here: refused, the first order is unpaid).
    let r = send("click-2", body.clone()).await;
    r.assert_error(409, "unpaid_order_exists");
    // A sign-up repeated with its key creates one customer; the same key from another body is
    // refused rather than returning the first sign-up.
    let signup = json!({"email": "kim@example.com", "password": "kims-password", "name": "Kim", "lastName": "Lee", "communications": []});
    let a = s.send(s.http.post(format!("{}/customer", s.base)).header("idempotency-key", "k").json(&signup)).await;
    let b = s.send(s.http.post(format!("{}/customer", s.base)).header("idempotency-key", "k").json(&signup)).await;
    assert_eq!((a.status, b.status), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(a.body, b.body);
    let mut other = signup.clone();
    other["email"] = json!("eve@example.com");
    let c = s.send(s.http.post(format!("{}/customer", s.base)).header("idempotency-key", "k").json(&other)).await;
    c.assert_error(422, "invalid");
    // A key outside the documented shape (`^[!-~]{1,200}$`) is refused and changes nothing —
    // also one that is not text at all, which must not pass for a request without a key.
    let before = s.settled_digest().await;
    let fresh = json!({"email": "lin@example.com", "password": "lins-password", "name": "Lin", "lastName": "Wu", "communications": []});
    let bad_keys: Vec<reqwest::header::HeaderValue> = vec![
        reqwest::header::HeaderValue::from_static("two words"),
        reqwest::header::HeaderValue::from_str(&"k".repeat(201)).unwrap(),
        reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
    ];
    for key in bad_keys {
        let r = s.send(s.http.post(format!("{}/customer", s.base)).header("idempotency-key", key).json(&fresh)).await;
        r.assert_error(400, "bad_request");
    }
    assert_eq!(s.settled_digest().await, before, "a refused request changed stored state");
    s.stop().await;
}

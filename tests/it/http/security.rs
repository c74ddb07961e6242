//! Who may do what: role and ownership denials on every route, bad tokens of every kind,
//! logout, brute-force throttling — and, after each refusal, proof that nothing stored changed.

use base64::Engine;
use bazaar::http::auth::Claims;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::client::*;

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn claims(sub: &str, role: &str, exp: u64) -> Claims {
    Claims {
        sub: sub.into(),
        role: role.into(),
        exp,
        iat: now_s() - 10,
        jti: uuid::Uuid::new_v4().simple().to_string(),
    }
}

fn sign(c: &Claims, alg: jsonwebtoken::Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), c, &jsonwebtoken::EncodingKey::from_secret(secret)).unwrap()
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_the_wrong_role_and_other_customers() {
    let s = Srv::start().await;
    let ann = s.customer("ann@example.com").await;
    let bob = s.customer("bob@example.com").await;
    let stock = s.token(STOCK).await;
    let shipper = s.token(SHIPPING).await;
    let op = s.token(OPERATOR).await;
    // Ann has a paid order (so it has payments, a shipment, a timeline and a notification).
    let o = s.order(&ann, &[("book-jane-eyre", 1)], None).await;
    let id = o["id"].as_str().unwrap().to_owned();
    s.pay(&ann, &id, "full").await;
    s.wait_status(&ann, &id, "PAID").await;
    eventually("ann's shipment", || async {
        s.get(&format!("/shipping/{id}"), Some(&ann)).await.status == StatusCode::OK
    })
    .await;
    eventually("ann's notice", || async {
        s.get("/notifications", Some(&ann)).await.body.as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    let before = s.settled_digest().await;

    // Not the owner: Bob sees and changes nothing of Ann's.
    for path in [
        format!("/order/{id}"),
        format!("/order/{id}/timeline"),
        format!("/payments/{id}"),
        format!("/shipping/{id}"),
        format!("/pay/redirectUrl?orderId={id}"),
    ] {
        s.get(&path, Some(&bob)).await.assert_error(403, "forbidden");
    }
    s.post_empty(&format!("/order/{id}/cancel"), Some(&bob)).await.assert_error(403, "forbidden");
    let bobs = s.get("/notifications", Some(&bob)).await;
    assert_eq!(bobs.body, json!([]), "a customer sees only their own notifications");
    let bobs = s.get(&format!("/notifications?orderId={id}"), Some(&bob)).await;
    assert_eq!(bobs.body, json!([]), "not even by asking for another's order");
    assert_eq!(s.get("/orders", Some(&bob)).await.body, json!([]));

    // Wrong role, route by route (ADMIN may do everything, so it is not in these lists).
    let product = json!({"name": "X", "description": "Y", "price": 100});
    let item = json!({"id": "book-jane-eyre", "quantity": 1, "weight": 1, "length": 1, "width": 1, "height": 1});
    let promo = json!({"token": "NOPE", "description": "x", "rule": {"type": "PERCENT", "percent": 5}});
    let user = json!({"email": "eve@example.com", "password": "long-enough-pw", "role": "ADMIN"});
    let order = order_body(&[("book-jane-eyre", 1)], None);
    let ship = json!({"status": "SHIPPED"});
    let denied: Vec<(Method, String, Option<serde_json::Value>, Vec<&String>)> = vec![
        (Method::POST, "/product/add".into(), Some(product), vec![&ann, &op, &stock, &shipper]),
        (Method::POST, "/stock/items".into(), Some(item), vec![&ann, &op, &shipper]),
        (Method::POST, "/promocode".into(), Some(promo), vec![&ann, &op, &stock, &shipper]),
        (Method::POST, "/user".into(), Some(user), vec![&ann, &op, &stock, &shipper]),
        (Method::POST, "/order/add".into(), Some(order), vec![&op, &stock, &shipper]),
        (Method::POST, format!("/shipping/{id}/status"), Some(ship), vec![&ann, &op, &stock]),
        (Method::POST, format!("/order/{id}/cancel"), None, vec![&stock, &shipper]),
        (Method::GET, format!("/order/{id}"), None, vec![&stock, &shipper]),
        (Method::GET, format!("/order/{id}/timeline"), None, vec![&stock, &shipper]),
        (Method::GET, format!("/payments/{id}"), None, vec![&stock, &shipper]),
        (Method::GET, format!("/shipping/{id}"), None, vec![&stock]),
        (Method::GET, "/orders".into(), None, vec![&stock, &shipper]),
        (Method::GET, "/notifications".into(), None, vec![&stock, &shipper]),
        (Method::GET, "/invariants".into(), None, vec![&ann, &stock, &shipper]),
        (Method::GET, "/cluster".into(), None, vec![&ann, &stock, &shipper]),
        (Method::GET, "/customer".into(), None, vec![&op, &stock, &shipper]),
        (Method::PUT, "/customer".into(), Some(json!({"name": "Z"})), vec![&op, &stock, &shipper]),
    ];
    for (method, path, body, tokens) in &denied {
        for t in tokens {
            let mut req = s.raw(method.clone(), path).await.bearer_auth(t);
            if let Some(b) = body {
                req = req.json(b);
            }
            s.send(req).await.assert_error(403, "forbidden");
        }
        // And without any token: 401.
        let mut req = s.raw(method.clone(), path).await;
        if let Some(b) = body {
            req = req.json(b);
        }
        s.send(req).await.assert_error(401, "unauthorized");
    }
    assert_eq!(s.settled_digest().await, before, "a refused request changed stored state");

    // The same routes do work for their roles.
    assert_eq!(s.get(&format!("/order/{id}"), Some(&op)).await.status, StatusCode::OK);
    assert_eq!(s.get(&format!("/shipping/{id}"), Some(&shipper)).await.status, StatusCode::OK);
    let all = s.get("/orders", Some(&op)).await;
    assert_eq!(all.body.as_array().unwrap().len(), 1);
    let paid = s.get("/orders?status=PAID", Some(&op)).await;
    assert_eq!(paid.body.as_array().unwrap().len(), 1);
    assert_eq!(s.get("/orders?status=CANCELLED", Some(&op)).await.body, json!([]));
    s.get("/orders?status=NONSENSE", Some(&op)).await.assert_error(400, "bad_request");
    let notes = s.get(&format!("/notifications?orderId={id}"), Some(&op)).await;
    assert!(!notes.body.as_array().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_revoked_tokens_are_refused() {
    let s = Srv::start().await;
    let me = s.token(READER).await;
    let before = s.settled_digest().await;
    let order = order_body(&[("book-jane-eyre", 1)], None);
    let refused = |token: String| {
        let (s, order) = (&s, order.clone());
        async move {
            s.get("/customer", Some(&token)).await.assert_error(401, "unauthorized");
            s.post("/order/add", Some(&token), &order).await.assert_error(401, "unauthorized");
            s.send(s.http.get(format!("{}/checkToken", s.base)).bearer_auth(&token))
                .await
                .assert_error(401, "unauthorized");
        }
    };
    // Expired (signed with the real secret).
    refused(sign(&claims("reader@bazaar.test", "CUSTOMER", now_s() - 5), jsonwebtoken::Algorithm::HS256, JWT_SECRET))
        .await;
    // Wrong secret.
    refused(sign(&claims("reader@bazaar.test", "ADMIN", now_s() + 600), jsonwebtoken::Algorithm::HS256, b"guessed"))
        .await;
    // Another algorithm with the right secret.
    refused(sign(&claims("reader@bazaar.test", "CUSTOMER", now_s() + 600), jsonwebtoken::Algorithm::HS512, JWT_SECRET))
        .await;
    // alg: none.
    let c = claims("reader@bazaar.test", "ADMIN", now_s() + 600);
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(&serde_json::to_vec(&c).unwrap()));
    refused(none).await;
    // Tampered: a real token whose payload says ADMIN.
    let parts: Vec<&str> = me.split('.').collect();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["role"] = json!("ADMIN");
    refused(format!("{}.{}.{}", parts[0], b64(&serde_json::to_vec(&payload).unwrap()), parts[2])).await;
    // Garbage and a signed token naming an unknown role.
    refused("not.a.jwt".into()).await;
    refused(sign(&claims("reader@bazaar.test", "GOD", now_s() + 600), jsonwebtoken::Algorithm::HS256, JWT_SECRET))
        .await;
    let r = s.send(s.http.get(format!("{}/customer", s.base)).header("authorization", "Basic eDp5")).await;
    r.assert_error(401, "unauthorized");
    assert_eq!(s.settled_digest().await, before, "a refused token changed stored state");

    // The real token still works; after logout it is refused, also after a restart.
    assert_eq!(s.get("/customer", Some(&me)).await.status, StatusCode::OK);
    let check = s.get("/checkToken", Some(&me)).await;
    assert_eq!(check.body["valid"], true);
    assert_eq!(check.body["token"], me.as_str(), "far from expiry: the same token");
    assert_eq!(s.post_empty("/user/logout", Some(&me)).await.status, StatusCode::NO_CONTENT);
    refused(me.clone()).await;
    let other = s.token(READER).await;
    assert_eq!(s.get("/checkToken", Some(&other)).await.status, StatusCode::OK, "only that token is revoked");
    let dir = s.stop().await;
    let s = Srv::start_in(dir).await;
    s.get("/checkToken", Some(&me)).await.assert_error(401, "unauthorized");
    assert_eq!(s.get("/checkToken", Some(&other)).await.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_token_refreshes_a_token_near_its_expiry() {
    let s = Srv::start().await;
    let soon =
        sign(&claims("reader@bazaar.test", "CUSTOMER", now_s() + 120), jsonwebtoken::Algorithm::HS256, JWT_SECRET);
    let a = s.get("/checkToken", Some(&soon)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["customerId"], "reader@bazaar.test");
    assert_eq!(a.body["role"], "CUSTOMER");
    let fresh = a.body["token"].as_str().unwrap();
    assert_ne!(fresh, soon, "a fresh token near expiry");
    assert_eq!(s.get("/customer", Some(fresh)).await.status, StatusCode::OK);
    let t = s.login(READER).await.body;
    assert!(t["expiredTime"].as_str().unwrap().ends_with('Z'), "RFC 3339: {t}");
    assert_eq!(t["role"], "CUSTOMER");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_throttle_that_account_only() {
    let s = Srv::start().await;
    for _ in 0..5 {
        s.login(("reader@bazaar.test", "wrong-password")).await.assert_error(401, "unauthorized");
    }
    let locked = s.login(("reader@bazaar.test", "wrong-password")).await;
    locked.assert_error(429, "too_many_requests");
    let retry: u64 = locked.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    // Even the right password waits; the e-mail's case does not matter.
    s.login(READER).await.assert_error(429, "too_many_requests");
    s.login(("READER@bazaar.test", "reader-demo-pass")).await.assert_error(429, "too_many_requests");
    // Other accounts are not locked out.
    assert_eq!(s.login(ADMIN).await.status, StatusCode::OK);
    // Unknown accounts fail like wrong passwords (no hint which e-mails exist).
    let u = s.login(("nobody@example.com", "whatever-pass")).await;
    u.assert_error(401, "unauthorized");
    assert_eq!(u.body["message"], s.login(("admin@bazaar.test", "wrong-password")).await.body["message"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_users_are_created_by_an_admin_and_disabled_users_cannot_log_in() {
    let s = Srv::start().await;
    let admin = s.token(ADMIN).await;
    let u = s
        .post(
            "/user",
            Some(&admin),
            &json!({"email": "Pat@Example.com", "password": "pat-long-password", "role": "SHIPPING_OPERATOR"}),
        )
        .await;
    assert_eq!(u.status, StatusCode::CREATED, "{}", u.text);
    assert_eq!(u.body["customerId"], "pat@example.com");
    let pat = s.token(("pat@example.com", "pat-long-password")).await;
    assert_eq!(s.get("/checkToken", Some(&pat)).await.body["role"], "SHIPPING_OPERATOR");
    s.post(
        "/user",
        Some(&admin),
        &json!({"email": "pat@example.com", "password": "pat-long-password", "role": "ADMIN"}),
    )
    .await
    .assert_error(409, "already_exists");
    s.post("/user", Some(&admin), &json!({"email": "x@example.com", "password": "short", "role": "ADMIN"}))
        .await
        .assert_error(422, "invalid");
    s.post("/user", Some(&admin), &json!({"email": "x@example.com", "password": "long-enough-pw", "role": "KING"}))
        .await
        .assert_error(422, "invalid");

    // isEnable is honoured.
    let id = bazaar::domain::CustomerId::parse("pat@example.com").unwrap();
    s.running().shop.set_user_enabled(&id, false).await.unwrap();
    s.login(("pat@example.com", "pat-long-password")).await.assert_error(401, "unauthorized");
    s.get("/checkToken", Some(&pat)).await.assert_error(401, "unauthorized");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storefront_is_served_with_a_strict_policy_and_cached_by_version() {
    let s = Srv::start().await;
    let page = s.get("/", None).await;
    assert_eq!(page.status, 200);
    let h = |a: &Answer, name: &str| a.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(h(&page, "content-type").starts_with("text/html"));
    let csp = h(&page, "content-security-policy");
    assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'") && !csp.contains("unsafe"), "{csp}");
    assert_eq!(h(&page, "x-content-type-options"), "nosniff");
    assert_eq!(h(&page, "referrer-policy"), "no-referrer");
    assert_eq!(h(&page, "cache-control"), "no-cache");
    // No inline script or style in the page itself.
    assert!(!page.text.contains("<script>") && !page.text.contains("<style") && !page.text.contains(" style="));
    // Revalidating the page: 304 with its ETag, no body.
    let etag = h(&page, "etag");
    let again = s.send(s.http.get(s.url("/")).header("if-none-match", &etag)).await;
    assert_eq!(again.status, 304);
    assert!(again.text.is_empty());
    // Its assets under the version it names: cached for good; another version is 404.
    let start = page.text.find("src=\"/assets/").unwrap() + 5;
    let link: String = page.text[start..].chars().take_while(|c| *c != '"').collect();
    assert!(link.ends_with("/app.js"), "{link}");
    let js = s.get(&link, None).await;
    assert_eq!(js.status, 200);
    assert!(h(&js, "content-type").starts_with("text/javascript"));
    assert_eq!(h(&js, "cache-control"), "public, max-age=31536000, immutable");
    // Gzipped for a client that takes it: the same bytes once inflated, under its own ETag.
    let r = s.http.get(s.url(&link)).header("accept-encoding", "br, gzip;q=0.8").send().await.unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_ne!(r.headers()["etag"].to_str().unwrap(), h(&js, "etag"));
    let gz = r.bytes().await.unwrap();
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
    assert_eq!(plain, js.text);
    assert!(gz.len() < js.text.len());
    let version = link.split('/').nth(2).unwrap();
    s.get(&link.replace(version, "000000000000"), None).await.assert_error(404, "not_found");
    s.get(&link.replace("app.js", "nothing.js"), None).await.assert_error(404, "not_found");
    s.get(&link.replace("app.js", "..%2Fsecrets"), None).await.assert_error(404, "not_found");
}

//! The seed's four user scenarios, over HTTP alone, plus the rest of the contract's happy paths
//! (customers, promo codes, shipping, cancelling, operations).

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::client::*;

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect()
}

/// Scenario 1: search the catalogue, by words, by promotion, by stock; see each product's
/// quantity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_1_catalogue_search_by_words_promotions_and_stock() {
    let s = Srv::start().await;
    // Full text over name and description.
    let a = s.get("/products?q=whale", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(ids(&a.body), ["book-moby-dick"]);
    let a = s.get("/products?q=epic", None).await;
    let mut found = ids(&a.body);
    found.sort();
    assert_eq!(found, ["book-the-odyssey", "book-war-and-peace"], "description words match");
    assert_eq!(ids(&s.get("/products?q=zeppelin", None).await.body), Vec::<String>::new());

    // Every book shows its free quantity (the stock service's projection).
    let all = s.get("/products?size=100", None).await.body;
    assert_eq!(all["total"], 10);
    let free: std::collections::HashMap<String, u64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_owned(), p["freeQuantity"].as_u64().unwrap()))
        .collect();
    assert_eq!(free["book-jane-eyre"], 12);
    assert_eq!(free["book-great-expectations"], 0);
    let a = s.get("/products?inStock=true&size=100", None).await;
    assert_eq!(a.body["total"], 9);
    assert!(!ids(&a.body).contains(&"book-great-expectations".to_owned()));
    let item = s.get("/stock/freeItems/book-jane-eyre", None).await;
    assert_eq!(item.body, json!({"id": "book-jane-eyre", "freeQuantity": 12, "bookedQuantity": 0}));

    // Promotions: a code limited to one product marks only that product once its projection
    // has it (the demo's WELCOME10 applies to every book, so expire it out of the picture by
    // asking for a code-specific product set).
    let admin = s.token(ADMIN).await;
    let a = s
        .post(
            "/promocode",
            Some(&admin),
            &json!({"token": "WHALE20", "description": "20% off Moby-Dick",
                    "rule": {"type": "PERCENT", "percent": 20, "productIds": ["book-moby-dick"]}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    eventually("Moby-Dick shows WHALE20", || async {
        let p = s.get("/product/book-moby-dick", None).await.body;
        p["promotions"].as_array().unwrap().iter().any(|x| x["token"] == "WHALE20")
    })
    .await;
    let jane = s.get("/product/book-jane-eyre", None).await.body;
    assert!(jane["promotions"].as_array().unwrap().iter().all(|x| x["token"] != "WHALE20"));
    let promo = s.get("/products?promo=true&size=100", None).await.body;
    let promoted = promo["items"].as_array().unwrap();
    assert!(promoted.iter().any(|p| p["id"] == "book-moby-dick"), "promo=true lists the promoted book: {promo}");
    for p in promoted {
        assert!(!p["promotions"].as_array().unwrap().is_empty(), "promo=true lists only promoted books: {p}");
    }
    let listed = s.get("/promocodes", None).await.body;
    let tokens: Vec<&str> = listed.as_array().unwrap().iter().map(|p| p["token"].as_str().unwrap()).collect();
    assert!(tokens.contains(&"WHALE20") && tokens.contains(&"WELCOME10"), "{listed}");

    // Pages partition the results.
    let p0 = ids(&s.get("/products?size=4&page=0", None).await.body);
    let p1 = ids(&s.get("/products?size=4&page=1", None).await.body);
    let p2 = s.get("/products?size=4&page=2", None).await.body;
    assert_eq!((p0.len(), p1.len(), p2["items"].as_array().unwrap().len()), (4, 4, 2));
    assert!(p0.iter().all(|i| !p1.contains(i)));
    assert_eq!((p2["page"].as_u64(), p2["size"].as_u64(), p2["total"].as_u64()), (Some(2), Some(4), Some(10)));
    s.stop().await;
}

/// Scenario 2: the personal account shows orders with payment and shipping status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_2_personal_account_shows_orders_payments_and_shipping() {
    let s = Srv::start().await;
    let me = s.customer("ann@example.com").await;
    let profile = s.get("/customer", Some(&me)).await;
    assert_eq!(profile.status, StatusCode::OK);
    assert_eq!(profile.body["customerId"], "ann@example.com");
    assert_eq!(profile.body["lastName"], "Lovelace");

    // One order paid and shipped, one cancelled before payment.
    let first = s.order(&me, &[("book-jane-eyre", 1)], None).await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    s.wait_status(&me, &first_id, "BOOKED").await.to_string();
    s.pay(&me, &first_id, "full").await;
    s.wait_status(&me, &first_id, "PAID").await;
    let shipper = s.token(SHIPPING).await;
    eventually("a shipment", || async {
        s.get(&format!("/shipping/{first_id}"), Some(&shipper)).await.status == StatusCode::OK
    })
    .await;
    let shipped = s.post(&format!("/shipping/{first_id}/status"), Some(&shipper), &json!({"status": "SHIPPED"})).await;
    assert_eq!(shipped.status, StatusCode::OK, "{}", shipped.text);
    assert_eq!(shipped.body["status"], "SHIPPED");
    let second = s.order(&me, &[("book-middlemarch", 2)], None).await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    let cancelled = s.post_empty(&format!("/order/{second_id}/cancel"), Some(&me)).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    assert_eq!(cancelled.body["status"], "CANCELLED");

    let account = s.get("/orders", Some(&me)).await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.text);
    let list = account.body.as_array().unwrap();
    assert_eq!(list.len(), 2, "{}", account.text);
    assert_eq!(list[0]["id"], second_id.as_str(), "newest first");
    assert_eq!(list[0]["status"], "CANCELLED");
    assert_eq!(list[1]["status"], "SHIPPING_PENDING", "shipped, not yet delivered");
    let pays = list[1]["payments"].as_array().unwrap();
    assert_eq!(pays.len(), 1);
    assert_eq!(pays[0]["status"], "PAID");
    assert_eq!(pays[0]["paidAmount"], 1250);
    assert_eq!(list[1]["shipping"]["status"], "SHIPPED");
    assert_eq!(list[1]["shipping"]["orderItemList"][0]["name"], "Jane Eyre");
    assert!(list[0]["shipping"].is_null(), "a cancelled order ships nothing");

    // Payments, shipment and timeline, one by one.
    let pays = s.get(&format!("/payments/{first_id}"), Some(&me)).await;
    assert_eq!(pays.body[0]["orderId"], first_id.as_str());
    assert_eq!(pays.body[0]["systemStatus"], "SUCCEEDED");
    let ship = s.get(&format!("/shipping/{first_id}"), Some(&me)).await;
    assert_eq!(ship.body["id"], first_id.as_str());
    assert_eq!(ship.body["weight"], 450);
    let tl = s.get(&format!("/order/{first_id}/timeline"), Some(&me)).await;
    let statuses: Vec<&str> = tl.body.as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    for st in ["BOOKING_PENDING", "BOOKED", "PAY_PENDING", "PAID", "SHIPPED"] {
        assert!(statuses.contains(&st), "timeline has {st}: {statuses:?}");
    }
    // Notifications: ORDER_PAID and ORDER_SHIPPED, by e-mail.
    eventually("two notifications", || async {
        s.get("/notifications", Some(&me)).await.body.as_array().is_some_and(|l| l.len() == 2)
    })
    .await;
    let notes = s.get("/notifications", Some(&me)).await.body;
    let mut kinds: Vec<&str> = notes.as_array().unwrap().iter().map(|n| n["eventType"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["ORDER_PAID", "ORDER_SHIPPED"]);
    assert!(notes.as_array().unwrap().iter().all(|n| n["channel"] == "EMAIL" && n["address"] == "ann@example.com"));

    // The profile can change; its id cannot.
    let changed = s
        .put(
            "/customer",
            Some(&me),
            &json!({"name": "Augusta", "communications": [{"type": "SMS", "address": "+441234567890"}]}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(changed.body["name"], "Augusta");
    assert_eq!(changed.body["lastName"], "Lovelace");
    assert_eq!(changed.body["communications"][0]["type"], "SMS");
    s.stop().await;
}

/// Scenario 3: price an order with a promo code, place it, pay part and then the rest in the
/// sandbox; the saga ends PAID with every invariant holding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_3_place_an_order_and_pay_for_it_in_the_sandbox() {
    let s = Srv::start().await;
    let me = s.token(READER).await;
    let lines = [("book-war-and-peace", 1), ("book-don-quixote", 1)];
    let price = s.post("/calcPrice", None, &order_body(&lines, Some("CLASSICS5"))).await;
    assert_eq!(price.status, StatusCode::OK, "{}", price.text);
    assert_eq!(price.body["total"], 1990 + 1750);
    assert_eq!(price.body["discount"], 500);
    assert_eq!(price.body["fixedPrice"], 1990 + 1750 - 500);

    let o = s.order(&me, &lines, Some("CLASSICS5")).await;
    let id = o["id"].as_str().unwrap().to_owned();
    assert_eq!(o["fixedPrice"], price.body["fixedPrice"], "the order is priced by the same function");
    assert_eq!(o["discount"], 500);
    assert_eq!(o["promoCode"], "CLASSICS5");
    assert_eq!(o["customerId"], "reader@bazaar.test");

    // redirectUrl waits for the booking; the same payment is returned until it is settled.
    let first = s.pay(&me, &id, "part").await;
    assert_eq!(first["amount"], 3240);
    s.wait_status(&me, &id, "PAID_PARTIAL").await;
    let rest = s.pay(&me, &id, "full").await;
    assert_ne!(rest["paymentId"], first["paymentId"]);
    assert_eq!(rest["amount"], 3240 - 1620);
    let paid = s.wait_status(&me, &id, "PAID").await;
    assert_eq!(paid["fixedPrice"], 3240);
    let again = s.get(&format!("/pay/redirectUrl?orderId={id}"), Some(&me)).await;
    again.assert_error(409, "order_paid");

    // Stock: the books are booked for the order.
    let wp = s.get("/stock/freeItems/book-war-and-peace", None).await.body;
    assert_eq!((wp["freeQuantity"].as_u64(), wp["bookedQuantity"].as_u64()), (Some(6), Some(1)));
    // The operator's view: the invariants hold.
    let op = s.token(OPERATOR).await;
    eventually("the outbox drains", || async { s.running().node().store().outbox_len() == 0 }).await;
    let inv = s.get("/invariants", Some(&op)).await;
    assert_eq!(inv.status, StatusCode::OK);
    assert_eq!(inv.body["ok"], true, "{}", inv.text);
    assert!(inv.body["checks"].as_array().unwrap().len() >= 5);
    s.stop().await;
}

/// Scenario 4: an admin adds a book; it can be found, stocked and ordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_4_an_admin_adds_a_product_to_the_catalogue() {
    let s = Srv::start().await;
    let admin = s.token(ADMIN).await;
    let a = s
        .post(
            "/product/add",
            Some(&admin),
            &json!({"name": "The Master and Margarita", "description": "Bulgakov's devil visits Soviet Moscow.",
                    "price": 1425, "photo": "https://example.com/mm.jpg"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(a.body["price"], 1425);
    assert_eq!(a.body["freeQuantity"], 0);
    eventually("the new book is searchable", || async {
        ids(&s.get("/products?q=bulgakov", None).await.body) == [id.clone()]
    })
    .await;
    let p = s.get(&format!("/product/{id}"), None).await;
    assert_eq!(p.body["name"], "The Master and Margarita");
    assert_eq!(p.body["photo"], "https://example.com/mm.jpg");

    let stock = s.token(STOCK).await;
    let r = s
        .post(
            "/stock/items",
            Some(&stock),
            &json!({"id": id, "quantity": 4, "weight": 520, "length": 200, "width": 130, "height": 35}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!((r.body["quantity"].as_u64(), r.body["freeQuantity"].as_u64()), (Some(4), Some(4)));
    eventually("the catalogue shows the stock", || async {
        s.get(&format!("/product/{id}"), None).await.body["freeQuantity"] == 4
    })
    .await;
    let me = s.token(READER).await;
    let o = s.order(&me, &[(id.as_str(), 2)], None).await;
    s.wait_status(&me, o["id"].as_str().unwrap(), "BOOKED").await;
    eventually("2 left", || async { s.get(&format!("/product/{id}"), None).await.body["freeQuantity"] == 2 }).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promo_codes_are_created_checked_and_used_up_once_per_order() {
    let s = Srv::start().await;
    let admin = s.token(ADMIN).await;
    let body = json!({"token": "ONCE", "description": "2.00 off, once",
                      "rule": {"type": "AMOUNT", "amount": 200, "usageLimit": 1, "minTotal": 1000}});
    let a = s.post("/promocode", Some(&admin), &body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["usedCount"], 0);
    assert_eq!(a.body["rule"]["type"], "AMOUNT");
    s.post("/promocode", Some(&admin), &body).await.assert_error(409, "already_exists");
    for bad in [
        json!({"type": "PERCENT", "percent": 0}),
        json!({"type": "PERCENT", "percent": 101}),
        json!({"type": "AMOUNT", "amount": -5}),
        json!({"type": "BOGO"}),
        json!({"type": "PERCENT", "percent": 10, "validFrom": "yesterday"}),
        json!({"type": "PERCENT", "percent": 10, "validFrom": "2030-01-01T00:00:00Z", "validUntil": "2029-01-01T00:00:00Z"}),
    ] {
        let r = s.post("/promocode", Some(&admin), &json!({"token": "BAD", "description": "x", "rule": bad})).await;
        r.assert_error(422, "invalid");
    }
    // Below minTotal the code does not apply; unknown and expired codes are refused.
    eventually("ONCE is known to pricing", || async {
        s.post("/calcPrice", None, &order_body(&[("book-jane-eyre", 1)], Some("ONCE"))).await.status == StatusCode::OK
    })
    .await;
    s.post("/calcPrice", None, &order_body(&[("book-frankenstein", 1)], Some("ONCE")))
        .await
        .assert_error(422, "invalid");
    s.post("/calcPrice", None, &order_body(&[("book-frankenstein", 1)], Some("NOPE")))
        .await
        .assert_error(422, "invalid");
    let expired = json!({"token": "GONE", "description": "expired",
                         "rule": {"type": "PERCENT", "percent": 50, "validUntil": "2020-01-01T00:00:00Z"}});
    assert_eq!(s.post("/promocode", Some(&admin), &expired).await.status, StatusCode::CREATED);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let gone = s.post("/calcPrice", None, &order_body(&[("book-frankenstein", 1)], Some("GONE"))).await;
    gone.assert_error(422, "invalid");
    assert!(gone.text.contains("expired"), "an expired code says so, unlike an unknown one: {}", gone.text);
    let nope = s.post("/calcPrice", None, &order_body(&[("book-frankenstein", 1)], Some("NOPE"))).await;
    assert!(nope.text.contains("no such code"), "{}", nope.text);
    let listed = s.get("/promocodes", None).await.body;
    assert!(listed.as_array().unwrap().iter().all(|p| p["token"] != "GONE"), "expired codes are not listed");

    // The one use: the first order takes it; once the use is counted, the code is used up.
    let me = s.token(READER).await;
    let o = s.order(&me, &[("book-jane-eyre", 1)], Some("ONCE")).await;
    assert_eq!(o["discount"], 200);
    assert_eq!(o["fixedPrice"], 1050);
    eventually("ONCE is used up", || async {
        s.post("/calcPrice", None, &order_body(&[("book-jane-eyre", 1)], Some("ONCE"))).await.status
            == StatusCode::UNPROCESSABLE_ENTITY
    })
    .await;
    let other = s.customer("bob@example.com").await;
    let r = s.post("/order/add", Some(&other), &order_body(&[("book-jane-eyre", 1)], Some("ONCE"))).await;
    r.assert_error(422, "invalid");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_moves_forward_only_and_operators_cancel_paid_orders_with_a_refund() {
    let s = Srv::start().await;
    let me = s.token(READER).await;
    let shipper = s.token(SHIPPING).await;
    let op = s.token(OPERATOR).await;
    let o = s.order(&me, &[("book-frankenstein", 3)], None).await;
    let id = o["id"].as_str().unwrap().to_owned();
    // Not paid: no shipment yet.
    s.wait_status(&me, &id, "BOOKED").await;
    s.post(&format!("/shipping/{id}/status"), Some(&shipper), &json!({"status": "SHIPPED"}))
        .await
        .assert_error(404, "not_found");
    // The owner cannot cancel once paid; an operator can, and the payment is refunded.
    s.pay(&me, &id, "full").await;
    s.wait_status(&me, &id, "PAID").await;
    s.post_empty(&format!("/order/{id}/cancel"), Some(&me)).await.assert_error(409, "wrong_state");
    let c = s.post_empty(&format!("/order/{id}/cancel"), Some(&op)).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text);
    assert_eq!(c.body["status"], "CANCELLED");
    eventually("the refund", || async {
        s.get(&format!("/payments/{id}"), Some(&me)).await.body[0]["status"] == "REFUNDED"
    })
    .await;
    eventually("stock released", || async {
        s.get("/stock/freeItems/book-frankenstein", None).await.body["freeQuantity"] == 15
    })
    .await;

    // A second order ships: a step may skip forward, never back, never repeat differently.
    let o = s.order(&me, &[("book-frankenstein", 1)], None).await;
    let id = o["id"].as_str().unwrap().to_owned();
    s.pay(&me, &id, "full").await;
    s.wait_status(&me, &id, "PAID").await;
    eventually("a shipment", || async {
        s.get(&format!("/shipping/{id}"), Some(&shipper)).await.status == StatusCode::OK
    })
    .await;
    let step = |st: &'static str| {
        let (s, id, shipper) = (&s, id.clone(), shipper.clone());
        async move { s.post(&format!("/shipping/{id}/status"), Some(&shipper), &json!({"status": st})).await }
    };
    assert_eq!(step("SHIPPED").await.body["status"], "SHIPPED");
    step("ASSEMBLED").await.assert_error(409, "shipping_step_backwards");
    step("PENDING").await.assert_error(422, "invalid");
    step("LOST").await.assert_error(422, "invalid");
    assert_eq!(step("DELIVERED").await.body["status"], "DELIVERED");
    s.wait_status(&me, &id, "COMPLETED").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_routes_answer_health_metrics_openapi_cluster_and_invariants() {
    let s = Srv::start().await;
    let h = s.get("/health", None).await;
    assert_eq!(h.body, json!({"status": "ok", "node": "node-1", "partitions": 256}));

    // One saga, so every family of metrics has a value.
    let me = s.token(READER).await;
    let o = s.order(&me, &[("book-jane-eyre", 1)], None).await;
    s.pay(&me, o["id"].as_str().unwrap(), "full").await;
    s.wait_status(&me, o["id"].as_str().unwrap(), "PAID").await;
    // The saga counter hears of PAID from the relay, a moment after the order is PAID.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut m = s.get("/metrics", None).await;
    while !m.text.contains("saga_outcomes_total{") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        m = s.get("/metrics", None).await;
    }
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    for family in [
        "http_requests_total{",
        "http_request_duration_seconds",
        "saga_outcomes_total{",
        "outbox_depth",
        "dead_letters",
        "live_entities",
        "commit_batches_by_size{",
    ] {
        assert!(m.text.contains(family), "/metrics has {family}");
    }
    assert!(m.text.contains(r#"route="/order/add""#), "per-route counters");

    let doc = s.get("/openapi.json", None).await.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for r in bazaar::http::routes::ROUTES {
        let m = r.method.as_str().to_ascii_lowercase();
        assert!(doc["paths"][r.path][&m].is_object(), "the OpenAPI document has {m} {}", r.path);
    }
    // Every request carries a request id back.
    assert!(s.get("/health", None).await.headers.contains_key("x-request-id"));

    let admin = s.token(ADMIN).await;
    let c = s.get("/cluster", Some(&admin)).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text);
    assert!(c.text.contains("node-1"));
    s.get("/cluster", Some(&me)).await.assert_error(403, "forbidden");
    s.get("/invariants", Some(&me)).await.assert_error(403, "forbidden");
    s.stop().await;
}

/// Sign-up is one operation: when the customer record cannot be written (here a damaged stored
/// record, as a disk fault would leave it), the user it had created is taken back — the e-mail
/// cannot log in, a retry meets the same fault rather than "taken", and nothing half-made stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_whose_registration_fails_leaves_no_user_behind() {
    use bazaar::actors::customer::CustomerKind;

    let s = Srv::start().await;
    let email = "halfway@example.com";
    let node = s.running().node();
    crate::support::damage_record::<CustomerKind>(node, email).await;

    let body = json!({
        "email": email, "password": "long-enough-pass", "name": "Half", "lastName": "Way",
        "communications": [{"type": "EMAIL", "address": email}],
    });
    for attempt in 0..2 {
        let a = s.post("/customer", None, &body).await;
        assert!(
            a.status.is_server_error(),
            "attempt {attempt}: the registration cannot succeed: {} {}",
            a.status,
            a.text
        );
        let id = bazaar::domain::CustomerId::parse(email).unwrap();
        let user = s.running().shop.user(&id).await;
        assert!(user.is_err(), "attempt {attempt}: the user was taken back, found {user:?}");
        s.login((email, "long-enough-pass")).await.assert_error(401, "unauthorized");
    }
    // Others sign up as before.
    let other = json!({
        "email": "whole@example.com", "password": "long-enough-pass", "name": "Whole", "lastName": "One",
        "communications": [{"type": "EMAIL", "address": "whole@example.com"}],
    });
    assert_eq!(s.post("/customer", None, &other).await.status, StatusCode::CREATED);
    assert_eq!(s.login(("whole@example.com", "long-enough-pass")).await.status, StatusCode::OK);
    s.stop().await;
}

/// Reads server-sent events from `r` until `until` says stop; returns each event's (name, data).
async fn read_events(r: &mut reqwest::Response, until: impl Fn(&[(String, Value)]) -> bool) -> Vec<(String, Value)> {
    let mut text = String::new();
    let mut events: Vec<(String, Value)> = Vec::new();
    while !until(&events) {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), r.chunk())
            .await
            .expect("an event within 20 s")
            .unwrap();
        let Some(chunk) = chunk else { break };
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim_start().to_owned()))
            };
            if let (Some(event), Some(data)) = (field("event"), field("data")) {
                events.push((event, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_pushes_each_change_to_its_event_stream_until_it_ends() {
    let s = Srv::start().await;
    let t = s.customer("sse@example.com").await;
    let o = s.order(&t, &[("book-moby-dick", 1)], None).await;
    let id = o["id"].as_str().unwrap().to_owned();
    s.wait_status(&t, &id, "BOOKED").await;
    // Another customer may not watch it; an unknown order is 404.
    let other = s.customer("nosy@example.com").await;
    s.get(&format!("/order/{id}/events"), Some(&other)).await.assert_error(403, "forbidden");
    s.get("/order/o1-00000000-1/events", Some(&t)).await.assert_error(404, "not_found");
    // A client without an overall timeout: the stream stays open.
    let http = reqwest::Client::new();
    let mut r = http.get(s.url(&format!("/order/{id}/events"))).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    // At once: the order as it stands.
    let first = read_events(&mut r, |e| !e.is_empty()).await;
    assert_eq!(first[0].0, "order");
    assert_eq!(first[0].1["status"], "BOOKED");
    // Paying moves it on; each change arrives on the open stream, without asking again.
    s.pay(&t, &id, "full").await;
    let moved = read_events(&mut r, |e| e.iter().any(|(_, o)| o["status"] == "PAID")).await;
    let versions: Vec<u64> = moved.iter().map(|(_, o)| o["version"].as_u64().unwrap()).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "versions only grow: {versions:?}");
    assert!(versions[0] > first[0].1["version"].as_u64().unwrap());
    // A cancelled order's stream says so and ends.
    let t2 = s.customer("sse2@example.com").await;
    let o2 = s.order(&t2, &[("book-jane-eyre", 1)], None).await;
    let id2 = o2["id"].as_str().unwrap().to_owned();
    let mut r2 = http.get(s.url(&format!("/order/{id2}/events"))).bearer_auth(&t2).send().await.unwrap();
    read_events(&mut r2, |e| !e.is_empty()).await;
    s.post_empty(&format!("/order/{id2}/cancel"), Some(&t2)).await;
    let last = read_events(&mut r2, |_| false).await;
    assert_eq!(last.last().unwrap().1["status"], "CANCELLED", "{last:?}");
    // A stream still open when the front stops ends with it: stopping does not wait on it.
    let mut open = http.get(s.url(&format!("/order/{id}/events"))).bearer_auth(&t).send().await.unwrap();
    read_events(&mut open, |e| !e.is_empty()).await;
    tokio::time::timeout(std::time::Duration::from_secs(20), s.stop()).await.expect("the front stopped");
    assert!(read_events(&mut open, |_| false).await.is_empty(), "the stream ended");
}

//! Three real `bazaar serve` processes from one cluster.toml on loopback: a shopper's requests go
//! to nodes that own nothing they touch, and the saga crosses nodes both ways (commands to the
//! owner's gateway, events through each node's relay to the subscriber's node).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bazaar::cluster::Router;
use bazaar::domain::NodeId;
use reqwest::StatusCode;
use serde_json::json;

use super::client::*;
use crate::support::bazaar;

const JWT: &str = "a-cluster-wide-token-key-of-40-bytes-xyz";
const PAYMENT: &str = "a-cluster-wide-payment-secret";
const NAMES: [&str; 3] = ["node-1", "node-2", "node-3"];

/// A three-node cluster on this machine: its file, its nodes' processes and clients.
struct Cluster {
    dir: tempfile::TempDir,
    file: std::path::PathBuf,
    children: Vec<Option<Child>>,
    nodes: Vec<Srv>,
    ids: Vec<NodeId>,
    router: Router,
    /// Where peers dial each node.
    cluster_addrs: Vec<std::net::SocketAddr>,
    /// (where peers dial node-2, where it binds), when a proxy sits between.
    proxy_ports: Option<(u16, u16)>,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster::with_listen(false)
    }

    /// A cluster; when `proxied`, node-2's cluster server binds one port while its peers dial
    /// another (`proxy_ports`: for a proxy the test controls).
    fn with_listen(proxied: bool) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("cookie = \"three-node-cookie\"\n");
        let mut nodes = Vec::new();
        let mut cluster_addrs = Vec::new();
        let ports = free_ports(8);
        let listen = proxied.then_some((ports[6], ports[7]));
        for (i, name) in NAMES.iter().enumerate() {
            let http = ports[2 * i];
            let (cluster, bind) = match listen {
                Some((dialled, bound)) if i == 1 => (dialled, format!("listen_addr = \"127.0.0.1:{bound}\"\n")),
                _ => (ports[2 * i + 1], String::new()),
            };
            cluster_addrs.push(std::net::SocketAddr::from(([127, 0, 0, 1], cluster)));
            text.push_str(&format!(
                "[[node]]\nname = \"{name}\"\ncluster_addr = \"127.0.0.1:{cluster}\"\n{bind}http_addr = \"127.0.0.1:{http}\"\ndata_dir = \"d{i}\"\n"
            ));
            nodes.push(Srv {
                running: None,
                dir: tempfile::tempdir().unwrap(),
                base: format!("http://127.0.0.1:{http}"),
                http: client(),
            });
        }
        let file = dir.path().join("cluster.toml");
        std::fs::write(&file, text).unwrap();
        let ids: Vec<NodeId> = NAMES.iter().map(|n| NodeId::parse(n).unwrap()).collect();
        let router = Router::new(ids[0].clone(), &ids, 256);
        Cluster { dir, file, children: vec![None, None, None], nodes, ids, router, cluster_addrs, proxy_ports: listen }
    }

    /// The index of the node that owns `key`.
    fn owner(&self, key: &str) -> usize {
        let o = self.router.owner(self.router.partition_of(key.as_bytes()));
        self.ids.iter().position(|n| n == o).unwrap()
    }

    /// The first of `candidates` that node `i` owns.
    fn owned_by(&self, i: usize, candidates: impl Fn(u32) -> String) -> String {
        (0..).map(candidates).find(|k| self.owner(k) == i).unwrap()
    }

    /// Adds a user offline on the data directory of the node that owns the e-mail.
    fn user_add(&self, email: &str, password: &str, role: &str) {
        self.user_add_on(self.owner(email), email, password, role);
    }

    /// Adds a user offline on node `i`'s data directory.
    fn user_add_on(&self, i: usize, email: &str, password: &str, role: &str) {
        let dir = self.dir.path().join(format!("d{i}"));
        let out = bazaar()
            .args(["user", "add", "--email", email, "--password", password, "--role", role, "--data-dir"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// Node `i`'s log (its stderr, at `warn`).
    fn log(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("{}.log", NAMES[i]))
    }

    fn start(&mut self, i: usize) {
        let child = bazaar()
            .args(["serve", "--config"])
            .arg(&self.file)
            .args(["--node", NAMES[i]])
            .env("BAZAAR_JWT_SECRET", JWT)
            .env("BAZAAR_PAYMENT_SECRET", PAYMENT)
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(self.log(i)).unwrap())
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
        // A fresh client for each incarnation: pooled connections to the last one are dead.
        self.nodes[i].http = client();
    }

    async fn wait_up(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let up = || async {
            let r = self.nodes[i].http.get(format!("{}/health", self.nodes[i].base)).send().await;
            r.is_ok_and(|r| r.status() == StatusCode::OK)
        };
        while !up().await {
            assert!(Instant::now() < deadline, "{} did not come up", NAMES[i]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until node `i` sees node `peer` as `reachable`.
    async fn sees(&self, i: usize, token: &str, peer: usize, reachable: bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let c = self.nodes[i].get("/cluster", Some(token)).await;
            assert_eq!(c.status, StatusCode::OK, "{}", c.text);
            let seen = c.body["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["name"] == NAMES[peer] && n["reachable"] == reachable);
            if seen {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} does not see {} as reachable={reachable}: {}",
                NAMES[i],
                NAMES[peer],
                c.text
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every node's outbox is empty, asserting none holds a dead letter.
    async fn drained(&self, token: &str) {
        for (i, srv) in self.nodes.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let v = srv.get("/cluster", Some(token)).await;
                assert_eq!(v.body["deadLetters"], 0, "{}: {}", NAMES[i], v.text);
                if v.body["outboxDepth"] == 0 {
                    break;
                }
                assert!(Instant::now() < deadline, "{}'s outbox does not drain: {}", NAMES[i], v.text);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Waits until node `i` sees every other node as reachable.
    async fn sees_all(&self, i: usize, token: &str) {
        for peer in (0..3).filter(|p| *p != i) {
            self.sees(i, token, peer, true).await;
        }
    }

    fn signal(&self, i: usize, sig: &str) {
        let pid = self.children[i].as_ref().unwrap().id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill9(i);
        }
        // A failed test shows what each node logged.
        if std::thread::panicking() {
            for (i, name) in NAMES.iter().enumerate() {
                let log = std::fs::read_to_string(self.log(i)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- {name} (last {} lines) ---", tail.len());
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// Tokens of the cluster's staff, each account added offline on the node that owns it.
struct Staff {
    /// The admin's e-mail (the account lives on node-3).
    admin_email: String,
    admin: String,
    stock: String,
    ship: String,
    op: String,
}

impl Cluster {
    /// Adds the staff, starts every node, waits until each sees the others, logs the staff in
    /// (through nodes that do not hold their accounts).
    async fn up(&mut self) -> Staff {
        let admin = (self.owned_by(2, |i| format!("admin{i}@bazaar.test")), "admin-pass-1");
        let stocker = (self.owned_by(1, |i| format!("stock{i}@bazaar.test")), "stock-pass-1");
        let shipper = (self.owned_by(0, |i| format!("ship{i}@bazaar.test")), "ship-pass-1");
        let operator = (self.owned_by(1, |i| format!("operator{i}@bazaar.test")), "operator-pass-1");
        self.user_add(&admin.0, admin.1, "ADMIN");
        self.user_add(&stocker.0, stocker.1, "STOCK_OPERATOR");
        self.user_add(&shipper.0, shipper.1, "SHIPPING_OPERATOR");
        self.user_add(&operator.0, operator.1, "OPERATOR");
        // An account made on a node that does not own it: created on its owner once both run.
        let stray = self.owned_by(0, |i| format!("stray{i}@bazaar.test"));
        self.user_add_on(2, &stray, "stray-pass-1", "OPERATOR");
        for i in 0..3 {
            self.start(i);
        }
        for i in 0..3 {
            self.wait_up(i).await;
        }
        let n = &self.nodes;
        // The operator's account is on node-2: node-1 answers 503 (not 401) until it reaches it.
        let deadline = Instant::now() + Duration::from_secs(20);
        let op = loop {
            let a = n[0].login((&operator.0, operator.1)).await;
            if a.status == StatusCode::OK {
                break a.body["token"].as_str().unwrap().to_owned();
            }
            a.assert_error(503, "UNAVAILABLE");
            assert!(Instant::now() < deadline, "node-1 never reached node-2");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for i in 0..3 {
            self.sees_all(i, &op).await;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while n[1].login((&stray, "stray-pass-1")).await.status != StatusCode::OK {
            assert!(Instant::now() < deadline, "the account made on node-3 for node-1 never reached node-2");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Staff {
            admin: n[0].token((&admin.0, admin.1)).await,
            admin_email: admin.0.clone(),
            stock: n[2].token((&stocker.0, stocker.1)).await,
            ship: n[1].token((&shipper.0, shipper.1)).await,
            op,
        }
    }

    /// Two books, one owned by node-2 and one by node-3, added and stocked through node-1.
    async fn books(&self, staff: &Staff, quantity: u32) -> (String, String) {
        let n = &self.nodes;
        let b2 = self.owned_by(1, |i| format!("book-two-{i}"));
        let b3 = self.owned_by(2, |i| format!("book-three-{i}"));
        for (id, price) in [(&b2, 1200), (&b3, 800)] {
            let a = n[0]
                .post(
                    "/product/add",
                    Some(&staff.admin),
                    &json!({"id": id, "name": id, "description": "a book", "price": price}),
                )
                .await;
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
            let a = n[0]
                .post(
                    "/stock/items",
                    Some(&staff.stock),
                    &json!({"id": id, "quantity": quantity, "weight": 1, "length": 1, "width": 1, "height": 1}),
                )
                .await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        }
        (b2, b3)
    }
}

/// Scenario 3 across three nodes: the customer (and with them their orders and payments) on
/// one node, the two books' stock on the other two, and every request sent to a node that owns
/// nothing it touches; then the order is shipped, and a request for a key on a stopped node is
/// answered 503 at once while the rest of the store keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_serve_one_store_and_a_saga_crosses_them() {
    let mut c = Cluster::new();
    let staff = c.up().await;
    let (b2, b3) = c.books(&staff, 5).await;
    let n = &c.nodes;
    let (op, ship_t) = (&staff.op, &staff.ship);
    // The catalogue is replicated: every node lists both books, found by their words, with
    // their free quantities, and a promotion added through node-2 marks b3 on every node.
    let a = n[1]
        .post(
            "/promocode",
            Some(&staff.admin),
            &json!({"token": "THREE10", "description": "10% off book three",
                    "rule": {"type": "PERCENT", "percent": 10, "productIds": [b3]}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    for (i, srv) in n.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let all = srv.get("/products?q=book&size=100", None).await.body;
            let promo = srv.get("/products?promo=true&size=100", None).await.body;
            let free = |b: &str| {
                all["items"].as_array().unwrap().iter().find(|p| p["id"] == b).and_then(|p| p["freeQuantity"].as_u64())
            };
            let promoted: Vec<&str> =
                promo["items"].as_array().unwrap().iter().filter_map(|p| p["id"].as_str()).collect();
            if free(&b2) == Some(5) && free(&b3) == Some(5) && promoted == [b3.as_str()] {
                break;
            }
            assert!(Instant::now() < deadline, "{}'s catalogue: {all} / promotions: {promo}", NAMES[i]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The customer lives on node-1; everything they do goes through node-2 and node-3.
    let email = c.owned_by(0, |i| format!("shopper{i}@example.com"));
    let me = n[1].customer(&email).await;
    let lines = [(b2.as_str(), 2), (b3.as_str(), 1)];
    let price = n[2].post("/calcPrice", None, &order_body(&lines, None)).await;
    assert_eq!(price.status, StatusCode::OK, "{}", price.text);
    assert_eq!(price.body["total"], 2 * 1200 + 800);
    let o = n[2].order(&me, &lines, None).await;
    let id = o["id"].as_str().unwrap().to_owned();
    assert_eq!(c.owner(&id), 0, "an order lives with its customer");
    n[1].wait_status(&me, &id, "BOOKED").await;
    let paid = n[1].pay(&me, &id, "full").await;
    assert_eq!(paid["amount"], 3200);
    n[2].wait_status(&me, &id, "PAID").await;
    for (book, booked) in [(&b2, 2), (&b3, 1)] {
        let s = n[0].get(&format!("/stock/freeItems/{book}"), None).await;
        assert_eq!(
            (s.body["freeQuantity"].as_u64(), s.body["bookedQuantity"].as_u64()),
            (Some(5 - booked), Some(booked)),
            "{book}: {}",
            s.text
        );
    }
    // Shipped through node-3 once the shipment exists (it follows the payment by an event).
    let deadline = Instant::now() + Duration::from_secs(20);
    while n[2].get(&format!("/shipping/{id}"), Some(ship_t)).await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "no shipment for {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = n[2].post(&format!("/shipping/{id}/status"), Some(ship_t), &json!({"status": "SHIPPED"})).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text);
    // The order's timeline, asked of a node that does not hold it, has the notification sent
    // on payment (the sends live with the order and are read there).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = n[2].get(&format!("/order/{id}/timeline"), Some(&me)).await;
        assert_eq!(t.status, StatusCode::OK, "{}", t.text);
        if t.body.as_array().unwrap().iter().any(|s| s["service"] == "notification") {
            break;
        }
        assert!(Instant::now() < deadline, "no notification in the timeline: {}", t.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reads of the whole store gather from every node: the operator's orders and notifications,
    // and the customer's own notifications, asked of nodes that hold none of them.
    let all = n[1].get("/orders", Some(op)).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert!(all.body.as_array().unwrap().iter().any(|o| o["id"] == id.as_str()), "{}", all.text);
    let sent = n[2].get(&format!("/notifications?orderId={id}"), Some(op)).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
    assert!(sent.body.as_array().unwrap().iter().any(|x| x["eventType"] == "ORDER_PAID"), "{}", sent.text);
    let own = n[1].get("/notifications", Some(&me)).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    assert_eq!(own.body.as_array().unwrap().len(), sent.body.as_array().unwrap().len(), "{}", own.text);
    let inv = n[2].get("/invariants", Some(op)).await;
    assert_eq!((inv.status, &inv.body["ok"]), (StatusCode::OK, &json!(true)), "{}", inv.text);
    let mine = n[1].get("/orders", Some(&me)).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
    assert_eq!(mine.body[0]["shipping"]["status"], "SHIPPED", "{}", mine.text);

    // node-2 stopped (its TCP stays open): its book answers 503 with Retry-After, quickly, on
    // the other nodes; node-3's book is served as ever. Back after SIGCONT.
    c.signal(1, "-STOP");
    c.sees(0, op, 1, false).await;
    let asked = Instant::now();
    let r = n[0].get(&format!("/stock/freeItems/{b2}"), None).await;
    r.assert_error(503, "UNAVAILABLE");
    assert!(r.headers.contains_key("retry-after"));
    assert!(asked.elapsed() < Duration::from_secs(2), "answered in {:?}", asked.elapsed());
    let r = n[0].get(&format!("/stock/freeItems/{b3}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    c.signal(1, "-CONT");
    c.sees(0, op, 1, true).await;
    let r = n[0].get(&format!("/stock/freeItems/{b2}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Logged out through node-2: the token is refused on every node once the revocation has
    // reached it (and a node that starts later reads it from its copy).
    assert_eq!(n[2].get("/customer", Some(&me)).await.status, StatusCode::OK);
    let out = n[1].post_empty("/user/logout", Some(&me)).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    for (i, srv) in n.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let a = srv.get("/customer", Some(&me)).await;
            if a.status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(Instant::now() < deadline, "{} still takes the revoked token: {}", NAMES[i], a.text);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Killed and restarted, node-3 refuses it again once it has its copy of the revocation
    // (from its own store, or redelivered by node-2 when the in-memory check had it first).
    c.kill9(2);
    c.start(2);
    c.wait_up(2).await;
    c.sees_all(2, op).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = c.nodes[2].get("/customer", Some(&me)).await;
        if a.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(Instant::now() < deadline, "restarted node-3 takes the revoked token: {}", a.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until order `id` has one of `statuses`; returns its body.
async fn settles(srv: &Srv, token: &str, id: &str, statuses: &[&str]) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let a = srv.get(&format!("/order/{id}"), Some(token)).await;
        if a.status == StatusCode::OK && statuses.iter().any(|s| a.body["status"] == *s) {
            return a.body;
        }
        assert!(Instant::now() < deadline, "order {id} never reached {statuses:?}: {}", a.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node killed (SIGKILL) while three dozen sagas cross it: its keys answer 503 at once on the
/// other nodes, which keep serving theirs; restarted, it replays its log, its peers dial it again,
/// the parked lanes drain, and every saga ends (booked and paid, or cancelled); every
/// acknowledged order is there, stock is conserved, nothing is dead-lettered and every outbox
/// drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_saga_comes_back_and_every_saga_ends() {
    const ORDERS: usize = 48;
    const KILL_AT: usize = 32;
    const STOCK: u64 = 1000;
    let mut c = Cluster::new();
    let staff = c.up().await;
    let (b2, b3) = c.books(&staff, STOCK as u32).await;
    let emails: Vec<String> = (0..ORDERS).map(|i| format!("killed-saga-{i}@example.com")).collect();
    assert!((0..3).all(|node| emails.iter().any(|e| c.owner(e) == node)), "customers on every node");
    // One at a time: password hashing is bounded per node, and a flood gets 429.
    let mut tokens = Vec::new();
    for (i, e) in emails.iter().enumerate() {
        tokens.push(c.nodes[i % 2].customer(e).await);
    }
    let lines = [(b2.as_str(), 1), (b3.as_str(), 1)];
    // node-3 owns b3 and a third of the customers: killed while orders are being placed, once
    // `KILL_AT` are acknowledged, so sagas are in flight (those after it are refused: 503).
    let acked = std::sync::atomic::AtomicUsize::new(0);
    let pid = c.children[2].as_ref().unwrap().id().to_string();
    let place = futures::future::join_all(tokens.iter().enumerate().map(|(i, t)| {
        let (srv, acked) = (&c.nodes[i % 2], &acked);
        async move {
            let a = srv.post("/order/add", Some(t), &order_body(&lines, None)).await;
            if a.status == StatusCode::CREATED {
                acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            a
        }
    }));
    let kill = async {
        while acked.load(std::sync::atomic::Ordering::SeqCst) < KILL_AT {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    };
    let (answers, ()) = futures::future::join(place, kill).await;
    c.kill9(2);
    let mut ids = vec![None; ORDERS];
    for (i, a) in answers.iter().enumerate() {
        match a.status {
            StatusCode::CREATED => ids[i] = Some(a.body["id"].as_str().unwrap().to_owned()),
            _ => a.assert_error(503, "UNAVAILABLE"),
        }
    }
    let placed = ids.iter().flatten().count();
    assert!(placed >= KILL_AT, "{placed} acknowledged");
    let n = &c.nodes;
    let asked = Instant::now();
    let r = n[0].get(&format!("/stock/freeItems/{b3}"), None).await;
    r.assert_error(503, "UNAVAILABLE");
    assert!(r.headers.contains_key("retry-after"));
    assert!(asked.elapsed() < Duration::from_secs(2), "answered in {:?}", asked.elapsed());
    let r = n[0].get(&format!("/stock/freeItems/{b2}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Accounts are on every node: node-3's admin, created offline on node-3's data directory,
    // logs in through node-1 while node-3 is down.
    let a = n[0].login((&staff.admin_email, "admin-pass-1")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let here = (0..ORDERS).find(|i| c.owner(&emails[*i]) == 0 && ids[*i].is_some()).unwrap();
    let r = n[1].get(&format!("/order/{}", ids[here].as_ref().unwrap()), Some(&tokens[here])).await;
    assert_eq!(r.status, StatusCode::OK, "an order on node-1 is served while node-3 is down: {}", r.text);
    // The whole cluster's invariants cannot be checked without node-3: 503 naming it, not a
    // verdict on two thirds of the store.
    let inv = n[0].get("/invariants", Some(&staff.op)).await;
    inv.assert_error(503, "UNAVAILABLE");
    assert!(inv.body["message"].as_str().unwrap().contains("node-3"), "{}", inv.text);
    // Sagas of node-1's and node-2's customers wait for node-3's stock: in flight at the kill.
    let mut waiting = 0;
    for i in (0..ORDERS).filter(|i| c.owner(&emails[*i]) != 2) {
        if let Some(id) = &ids[i] {
            let o = n[i % 2].get(&format!("/order/{id}"), Some(&tokens[i])).await;
            waiting += usize::from(o.body["status"] != "BOOKED" && o.body["status"] != "CANCELLED");
        }
    }
    eprintln!("{placed} orders acknowledged; {waiting} of those on node-1 and node-2 still booking at the kill");

    c.start(2);
    c.wait_up(2).await;
    for i in 0..3 {
        c.sees_all(i, &staff.op).await;
    }
    let n = &c.nodes;
    // Every saga ends: booked (then paid) or cancelled by its deadline. Every acknowledged order
    // is in its customer's account; a placement answered 503 may or may not have taken effect
    // (the owner died between commit and answer), so each account is read for what it holds.
    let mut paid = 0u64;
    let mut cancelled = 0;
    for (i, token) in tokens.iter().enumerate() {
        let mine = n[i % 3].get("/orders", Some(token)).await;
        assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
        let held: Vec<String> =
            mine.body.as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect();
        if let Some(id) = &ids[i] {
            assert_eq!(held, std::slice::from_ref(id), "the acknowledged order is there, and only it");
        }
        for id in &held {
            let o = settles(&n[i % 3], token, id, &["BOOKED", "CANCELLED"]).await;
            if o["status"] == "BOOKED" {
                n[(i + 1) % 3].pay(token, id, "full").await;
                settles(&n[i % 3], token, id, &["PAID", "SHIPPING_PENDING"]).await;
                paid += 1;
            } else {
                cancelled += 1;
            }
        }
    }
    eprintln!("{paid} paid, {cancelled} cancelled");
    assert!(paid > 0, "sagas went on after the restart");
    // Stock conserved on both books, every outbox drained, nothing dead-lettered.
    for book in [&b2, &b3] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = n[0].get(&format!("/stock/freeItems/{book}"), None).await;
            let (free, booked) = (s.body["freeQuantity"].as_u64(), s.body["bookedQuantity"].as_u64());
            if (free, booked) == (Some(STOCK - paid), Some(paid)) {
                break;
            }
            assert!(Instant::now() < deadline, "{book}: {} with {paid} paid", s.text);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    c.drained(&staff.op).await;
    // Every node checks the whole cluster's invariants, and they hold.
    for (i, srv) in n.iter().enumerate() {
        let inv = srv.get("/invariants", Some(&staff.op)).await;
        assert_eq!(inv.status, StatusCode::OK, "{}: {}", NAMES[i], inv.text);
        assert_eq!(inv.body["ok"], true, "{}: {}", NAMES[i], inv.text);
    }
    // Stopped, the three data directories together keep every invariant (`bazaar verify` over
    // all of them: one alone holds only its partitions).
    for i in 0..3 {
        c.kill9(i);
    }
    let mut verify = bazaar();
    verify.arg("verify");
    for i in 0..3 {
        verify.arg("--data-dir").arg(c.dir.path().join(format!("d{i}")));
    }
    let out = verify.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("BROKEN") && !text.contains("PROBLEM") && text.contains("ok "), "{text}");
}

/// A TCP proxy the test controls: it passes bytes, swallows them while keeping the connections
/// open (a blackhole), or closes every connection and refuses new ones (a reset).
struct Proxy {
    mode: tokio::sync::watch::Sender<u8>,
    task: tokio::task::JoinHandle<()>,
}

const PASS: u8 = 0;
const BLACKHOLE: u8 = 1;
const RESET: u8 = 2;

impl Proxy {
    async fn start(listen: u16, target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", listen)).await.unwrap();
        let (mode, rx) = tokio::sync::watch::channel(PASS);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if *rx.borrow() == RESET {
                    continue; // dropped: closed at once
                }
                let rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else { return };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::select! {
                        _ = pump(ri, wo, rx.clone()) => {}
                        _ = pump(ro, wi, rx) => {}
                    }
                });
            }
        });
        Proxy { mode, task }
    }

    fn set(&self, mode: u8) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` while the mode passes; swallows while it is a blackhole; returns (so
/// both halves close) on a reset.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: tokio::sync::watch::Receiver<u8>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            read = from.read(&mut buf) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                let now = *mode.borrow();
                match now {
                    PASS => if to.write_all(&buf[..n]).await.is_err() { return },
                    BLACKHOLE => {}
                    _ => return,
                }
            }
            changed = mode.changed() => {
                if changed.is_err() || *mode.borrow() == RESET {
                    return;
                }
            }
        }
    }
}

/// The link between node-1 and node-2 runs through a proxy: blackholed (TCP stays open) each
/// marks the other down by the heartbeat while node-3 stays reachable to both; the saga's
/// events from node-1 to node-2 park (nothing dead-lettered); then the connections are reset
/// and new ones refused; healed, node-1 dials again, the parked lanes drain and every saga ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_parks_lanes_and_they_drain_when_it_heals() {
    let mut c = Cluster::with_listen(true);
    let (dialled, bound) = c.proxy_ports.unwrap();
    let proxy = Proxy::start(dialled, bound).await;
    let staff = c.up().await;
    let (b2, b3) = c.books(&staff, 100).await;
    let n = &c.nodes;
    // Customers on node-1, ordering through node-3 (node-1 cannot price node-2's book while cut).
    let mut shoppers = Vec::new();
    for i in 0..6 {
        let email = c.owned_by(0, |k| format!("cut-{i}-{k}@example.com"));
        shoppers.push(n[0].customer(&email).await);
    }

    proxy.set(BLACKHOLE);
    c.sees(0, &staff.op, 1, false).await;
    c.sees(1, &staff.op, 0, false).await;
    c.sees(0, &staff.op, 2, true).await;
    c.sees(1, &staff.op, 2, true).await;
    let r = n[0].get(&format!("/stock/freeItems/{b2}"), None).await;
    r.assert_error(503, "UNAVAILABLE");
    let lines = [(b2.as_str(), 1), (b3.as_str(), 1)];
    let mut ids = Vec::new();
    for t in &shoppers {
        ids.push(n[2].order(t, &lines, None).await["id"].as_str().unwrap().to_owned());
    }
    // The bookings of b2 wait on node-1 for node-2: parked, not failing.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = n[0].get("/metrics", None).await.text;
        let parked = m
            .lines()
            .find(|l| l.starts_with("relay_parked_lanes{peer=\"node-2\"} "))
            .and_then(|l| l.split(' ').nth(1)?.parse::<f64>().ok());
        if parked.is_some_and(|p| p >= 1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "no parked lane on node-1: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (t, id) in shoppers.iter().zip(&ids) {
        let o = n[2].get(&format!("/order/{id}"), Some(t)).await;
        assert_ne!(o.body["status"], "BOOKED", "booked without node-2: {}", o.text);
    }
    proxy.set(RESET);
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.sees(0, &staff.op, 1, false).await;
    proxy.set(PASS);
    c.sees(0, &staff.op, 1, true).await;
    c.sees(1, &staff.op, 0, true).await;
    for (t, id) in shoppers.iter().zip(&ids) {
        settles(&n[1], t, id, &["BOOKED"]).await;
        n[0].pay(t, id, "full").await;
        settles(&n[2], t, id, &["PAID", "SHIPPING_PENDING"]).await;
    }
    c.drained(&staff.op).await;
    let m = n[0].get("/metrics", None).await.text;
    assert!(m.lines().any(|l| l == "relay_parked_lanes{peer=\"node-2\"} 0"), "no lane parked once healed: {m}");
}

/// A peer holding the cookie (so past the handshake) that sends garbage: a frame that does not
/// decode, a command whose body does not, one routed by another configuration, one for a key
/// the node does not own, an envelope that does not decode, and a frame over the inbound cap.
/// Each is refused with a typed answer (or, over the cap, the session is closed) and a log line;
/// nothing stored changes and the node keeps serving, its peers still connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_garbage_or_an_oversized_frame_changes_nothing() {
    use bazaar::cluster::gateway::{remote_gateway, GatewayMsg};
    use bazaar::cluster::remote::Refusal;
    use bazaar::cluster::wire::{self, Frame};
    use bazaar::persistence::DeliveryError;
    use ractor::rpc::CallResult;

    let mut c = Cluster::new();
    let staff = c.up().await;
    let (b2, _) = c.books(&staff, 7).await;
    let b1 = c.owned_by(0, |i| format!("book-one-{i}"));
    let n = &c.nodes;
    let a = n[0]
        .post("/product/add", Some(&staff.admin), &json!({"id": b1, "name": b1, "description": "a book", "price": 100}))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let stock = |book: String| async move { n[0].get(&format!("/stock/freeItems/{book}"), None).await.text };
    // The new product reaches the stock service by an event: wait for it before looking.
    let deadline = Instant::now() + Duration::from_secs(20);
    while n[0].get(&format!("/stock/freeItems/{b1}"), None).await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "{b1} never reached the stock service");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = (stock(b1.clone()).await, stock(b2.clone()).await);
    let digest = bazaar::cluster::config::ClusterConfig::load(&c.file).unwrap().digest();

    // The rogue: a client node with the cluster's cookie, connected to node-1.
    let server = ractor_cluster::NodeServer::new(
        0,
        "three-node-cookie".into(),
        "rogue".into(),
        "127.0.0.1".into(),
        None,
        Some(ractor_cluster::node::NodeConnectionMode::Isolated),
    )
    .with_listen_addr(std::net::Ipv4Addr::LOCALHOST.into());
    let (server, _) = ractor::Actor::spawn(None, server, ()).await.unwrap();
    let gateway = || async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(g) = remote_gateway("node-1") {
                return g;
            }
            assert!(Instant::now() < deadline, "no session with node-1");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    ractor_cluster::client_connect(&server, c.cluster_addrs[0]).await.unwrap();
    let g = gateway().await;
    let call = |bytes: Vec<u8>| {
        let g = g.clone();
        async move {
            match g.call(|port| GatewayMsg::Call(bytes, port), Some(Duration::from_secs(5))).await.unwrap() {
                CallResult::Success(answer) => wire::decode(&answer).expect("a typed answer"),
                other => panic!("no answer: {other:?}"),
            }
        }
    };
    let id = bazaar::domain::MessageId::from_bytes([7; 16]);
    let command = |digest: &str, to: &str, key: &str, body: Vec<u8>| {
        wire::encode(&Frame::Command { digest: digest.into(), to: to.into(), key: key.into(), id, body }).unwrap()
    };
    let refused = |f: Frame| match f {
        Frame::Answer(Err(r)) => r,
        other => panic!("not refused: {other:?}"),
    };
    assert!(matches!(refused(call(b"not a frame at all".to_vec()).await), Refusal::BadFrame(_)));
    let mut flipped = command(&digest, "stock/item", &b1, vec![1, 2, 3]);
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    assert!(matches!(refused(call(flipped).await), Refusal::BadFrame(_)), "a damaged frame fails its CRC");
    let bad_body = refused(call(command(&digest, "stock/item", &b1, b"\xff\xff garbage".to_vec())).await);
    assert!(matches!(bad_body, Refusal::BadFrame(_)), "{bad_body:?}");
    let other = refused(call(command("another-digest", "stock/item", &b1, Vec::new())).await);
    assert!(matches!(other, Refusal::OtherConfiguration { .. }), "{other:?}");
    let not_mine = refused(call(command(&digest, "stock/item", &b2, Vec::new())).await);
    assert!(matches!(not_mine, Refusal::NotOwner { .. }), "{not_mine:?}");
    let nobody = refused(call(command(&digest, "no/such", &b1, Vec::new())).await);
    assert!(matches!(nobody, Refusal::NoService(_)), "{nobody:?}");
    let deliver = wire::encode(&Frame::Deliver {
        digest: digest.clone(),
        to: "catalogue/stock_levels".into(),
        envelopes: vec![b"not an envelope".to_vec()],
    })
    .unwrap();
    match call(deliver).await {
        Frame::Delivered(r) => assert!(matches!(r[..], [Err(DeliveryError::Permanent(_))]), "{r:?}"),
        other => panic!("{other:?}"),
    }
    // A heartbeat that is not one gets an empty answer.
    match g.call(|port| GatewayMsg::Hello(b"garbage".to_vec(), port), Some(Duration::from_secs(5))).await.unwrap() {
        CallResult::Success(answer) => assert!(answer.is_empty()),
        other => panic!("{other:?}"),
    }
    // Over the inbound cap: node-1 closes the session (ractor_cluster's limit) — and no more.
    let huge = vec![0u8; 6 * 1024 * 1024];
    let r = g.call(|port| GatewayMsg::Call(huge, port), Some(Duration::from_secs(5))).await;
    assert!(!matches!(r, Ok(CallResult::Success(_))), "an oversized frame was answered");
    let deadline = Instant::now() + Duration::from_secs(10);
    while remote_gateway("node-1").is_some() {
        assert!(Instant::now() < deadline, "the session outlived an oversized frame");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop(None);

    // Nothing changed, every node still serves and still sees the others; the log says why.
    assert_eq!((stock(b1.clone()).await, stock(b2.clone()).await), before);
    for i in 0..3 {
        c.sees_all(i, &staff.op).await;
    }
    let log = std::fs::read_to_string(c.log(0)).unwrap();
    for says in [
        "a peer's call did not decode",
        "a peer's command does not decode",
        "does not own",
        "runs another configuration",
        "an envelope that does not decode",
        "exceeds configured limit",
    ] {
        assert!(log.contains(says), "node-1's log says {says:?}: {log}");
    }
}

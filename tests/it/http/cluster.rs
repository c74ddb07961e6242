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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A three-node cluster on this machine: its file, its nodes' processes and clients.
struct Cluster {
    dir: tempfile::TempDir,
    file: std::path::PathBuf,
    children: Vec<Option<Child>>,
    nodes: Vec<Srv>,
    ids: Vec<NodeId>,
    router: Router,
}

impl Cluster {
    fn new() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("cookie = \"three-node-cookie\"\n");
        let mut nodes = Vec::new();
        for (i, name) in NAMES.iter().enumerate() {
            let (http, cluster) = (free_port(), free_port());
            text.push_str(&format!(
                "[[node]]\nname = \"{name}\"\ncluster_addr = \"127.0.0.1:{cluster}\"\nhttp_addr = \"127.0.0.1:{http}\"\ndata_dir = \"d{i}\"\n"
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
        Cluster { dir, file, children: vec![None, None, None], nodes, ids, router }
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
        let dir = self.dir.path().join(format!("d{}", self.owner(email)));
        let out = bazaar()
            .args(["user", "add", "--email", email, "--password", password, "--role", role, "--data-dir"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    fn start(&mut self, i: usize) {
        let child = bazaar()
            .args(["serve", "--config"])
            .arg(&self.file)
            .args(["--node", NAMES[i]])
            .env("BAZAAR_JWT_SECRET", JWT)
            .env("BAZAAR_PAYMENT_SECRET", PAYMENT)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
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
    }
}

/// Scenario 3 across three nodes: the customer (and with them their orders and payments) on
/// one node, the two books' stock on the other two, and every request sent to a node that owns
/// nothing it touches; then the order is shipped, and a customer's request for a key on a
/// stopped node is answered 503 at once while the rest of the store keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_serve_one_store_and_a_saga_crosses_them() {
    let mut c = Cluster::new();
    let admin = (c.owned_by(2, |i| format!("admin{i}@bazaar.test")), "admin-pass-1");
    let stocker = (c.owned_by(1, |i| format!("stock{i}@bazaar.test")), "stock-pass-1");
    let shipper = (c.owned_by(0, |i| format!("ship{i}@bazaar.test")), "ship-pass-1");
    let operator = (c.owned_by(1, |i| format!("operator{i}@bazaar.test")), "operator-pass-1");
    c.user_add(&admin.0, admin.1, "ADMIN");
    c.user_add(&stocker.0, stocker.1, "STOCK_OPERATOR");
    c.user_add(&shipper.0, shipper.1, "SHIPPING_OPERATOR");
    c.user_add(&operator.0, operator.1, "OPERATOR");
    for i in 0..3 {
        c.start(i);
    }
    for i in 0..3 {
        c.wait_up(i).await;
    }
    let n = &c.nodes;
    // Logins answered by a node that does not hold the account.
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
        c.sees_all(i, &op).await;
    }
    let admin_t = n[0].token((&admin.0, admin.1)).await;
    let stock_t = n[2].token((&stocker.0, stocker.1)).await;
    let ship_t = n[1].token((&shipper.0, shipper.1)).await;

    // Two books, one owned by node-2 and one by node-3, added and stocked through node-1.
    let b2 = c.owned_by(1, |i| format!("book-two-{i}"));
    let b3 = c.owned_by(2, |i| format!("book-three-{i}"));
    for (id, price) in [(&b2, 1200), (&b3, 800)] {
        let a = n[0]
            .post(
                "/product/add",
                Some(&admin_t),
                &json!({"id": id, "name": id, "description": "a book", "price": price}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let a = n[0]
            .post(
                "/stock/items",
                Some(&stock_t),
                &json!({"id": id, "quantity": 5, "weight": 1, "length": 1, "width": 1, "height": 1}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
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
    while n[2].get(&format!("/shipping/{id}"), Some(&ship_t)).await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "no shipment for {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = n[2].post(&format!("/shipping/{id}/status"), Some(&ship_t), &json!({"status": "SHIPPED"})).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text);
    let mine = n[1].get("/orders", Some(&me)).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
    assert_eq!(mine.body[0]["shipping"]["status"], "SHIPPED", "{}", mine.text);

    // node-2 stopped (its TCP stays open): its book answers 503 with Retry-After, quickly, on
    // the other nodes; node-3's book is served as ever. Back after SIGCONT.
    c.signal(1, "-STOP");
    c.sees(0, &op, 1, false).await;
    let asked = Instant::now();
    let r = n[0].get(&format!("/stock/freeItems/{b2}"), None).await;
    r.assert_error(503, "UNAVAILABLE");
    assert!(r.headers.contains_key("retry-after"));
    assert!(asked.elapsed() < Duration::from_secs(2), "answered in {:?}", asked.elapsed());
    let r = n[0].get(&format!("/stock/freeItems/{b3}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    c.signal(1, "-CONT");
    c.sees(0, &op, 1, true).await;
    let r = n[0].get(&format!("/stock/freeItems/{b2}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

//! A store node started in-process on port 0 with the demo data, and a small HTTP client for
//! it (reqwest: a real client over real TCP).

use std::time::Duration;

use bazaar::app::node::NodeOptions;
use bazaar::domain::NodeId;
use bazaar::http::server::{AppOptions, Running};
use reqwest::StatusCode;
use serde_json::{json, Value};

pub use crate::support::eventually;

/// The JWT secret of test nodes (so tests can forge tokens the way an attacker could not).
pub const JWT_SECRET: &[u8] = b"test-jwt-secret-0123456789abcdef0123456789";

/// A demo user's credentials.
pub const ADMIN: (&str, &str) = ("admin@bazaar.test", "admin-demo-pass");
pub const OPERATOR: (&str, &str) = ("operator@bazaar.test", "operator-demo-pass");
pub const STOCK: (&str, &str) = ("stock@bazaar.test", "stock-demo-pass");
pub const SHIPPING: (&str, &str) = ("shipping@bazaar.test", "shipping-demo-pass");
pub const READER: (&str, &str) = ("reader@bazaar.test", "reader-demo-pass");

/// A running node and a client for it.
pub struct Srv {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub http: reqwest::Client,
}

/// An answer: status, JSON body (`Null` when empty or not JSON) and headers.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body's `error` code.
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    /// Asserts an API.md error: this status, a JSON body with `error` and `message`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.text);
        assert_eq!(
            self.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "errors are JSON: {}",
            self.text
        );
        assert_eq!(self.code(), code, "error code of {}", self.text);
        assert!(self.body["message"].as_str().is_some_and(|m| !m.is_empty()), "a message: {}", self.text);
    }
}

/// `n` distinct free ports on 127.0.0.1 (all held while choosing, so none is handed out twice).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

pub fn options(dir: &std::path::Path) -> AppOptions {
    AppOptions {
        node: NodeOptions::single(NodeId::parse("node-1").unwrap(), dir.to_path_buf()),
        http: "127.0.0.1:0".parse().unwrap(),
        jwt_secret: Some(JWT_SECRET.to_vec()),
        front: Default::default(),
    }
}

impl Srv {
    /// A fresh node with the demo data.
    pub async fn start() -> Srv {
        let dir = tempfile::tempdir().unwrap();
        Srv::start_in(dir).await
    }

    /// A node on `dir` (seeded with the demo data, which is idempotent).
    pub async fn start_in(dir: tempfile::TempDir) -> Srv {
        let o = options(dir.path());
        Srv::start_with(dir, o).await
    }

    /// A node on `dir` started with `o` (seeded with the demo data).
    pub async fn start_with(dir: tempfile::TempDir, o: AppOptions) -> Srv {
        let running = bazaar::http::server::start(o).await.unwrap();
        bazaar::tools::demo::seed(&running.shop, |p| bazaar::app::passwords::hash(p).map_err(|e| e.to_string()))
            .await
            .unwrap();
        let base = running.url();
        let srv = Srv { running: Some(running), dir, base, http: client() };
        // The catalogue view is fed by events: wait until it shows the demo stock.
        eventually("the demo catalogue", || async {
            let a = srv.get("/product/book-frankenstein", None).await;
            a.status == StatusCode::OK && a.body["freeQuantity"].as_u64().unwrap_or(0) > 0
        })
        .await;
        srv
    }

    /// Stops the node (gracefully) and returns its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        self.dir
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    /// A fingerprint of everything the node stores, once every event in flight is delivered.
    pub async fn settled_digest(&self) -> u128 {
        let node = self.running().node();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while node.store().outbox_len() > 0 {
            assert!(std::time::Instant::now() < deadline, "the outbox did not drain");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        node.store().digest().unwrap()
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let r = req.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, headers, text }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth(req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(Self::auth(self.http.get(self.url(path)), token)).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        self.send(Self::auth(self.http.post(self.url(path)).json(body), token)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        self.send(Self::auth(self.http.put(self.url(path)).json(body), token)).await
    }

    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(Self::auth(self.http.post(self.url(path)), token)).await
    }

    pub async fn raw(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// Logs in with HTTP Basic.
    pub async fn login(&self, (email, password): (&str, &str)) -> Answer {
        self.send(self.http.get(self.url("/token")).basic_auth(email, Some(password))).await
    }

    /// Logs in with HTTP Basic from the local address `ip` (127.x.y.z: loopback takes them all),
    /// with extra headers.
    pub async fn login_from(&self, ip: [u8; 4], (email, password): (&str, &str), headers: &[(&str, &str)]) -> Answer {
        let c = reqwest::Client::builder().local_address(std::net::IpAddr::from(ip)).build().unwrap();
        let mut req = c.get(self.url("/token")).basic_auth(email, Some(password));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// A token, or a panic.
    pub async fn token(&self, who: (&str, &str)) -> String {
        let a = self.login(who).await;
        assert_eq!(a.status, StatusCode::OK, "login of {}: {}", who.0, a.text);
        a.body["token"].as_str().unwrap().to_owned()
    }

    /// Signs a customer up and returns a token for them.
    pub async fn customer(&self, email: &str) -> String {
        self.customer_named(email).await
    }

    /// Signs a customer up and returns a token for them (an owned future, for `join_all`).
    pub fn customer_named(&self, email: &str) -> impl std::future::Future<Output = String> + '_ {
        let email = email.to_owned();
        async move { self.sign_up(&email).await }
    }

    async fn sign_up(&self, email: &str) -> String {
        let a = self
            .post(
                "/customer",
                None,
                &json!({"email": email, "password": "a-good-password", "name": "Ada", "lastName": "Lovelace",
                        "communications": [{"type": "EMAIL", "address": email}]}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "sign-up of {email}: {}", a.text);
        self.token((email, "a-good-password")).await
    }

    /// Places an order; panics unless 201.
    pub async fn order(&self, token: &str, lines: &[(&str, u32)], promo: Option<&str>) -> Value {
        let a = self.post("/order/add", Some(token), &order_body(lines, promo)).await;
        assert_eq!(a.status, StatusCode::CREATED, "order: {}", a.text);
        a.body
    }

    /// Waits for an order's status.
    pub async fn wait_status(&self, token: &str, order: &str, status: &str) -> Value {
        let path = format!("/order/{order}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let a = self.get(&path, Some(token)).await;
            if a.body["status"] == status {
                return a.body;
            }
            assert!(std::time::Instant::now() < deadline, "order {order} never reached {status}: {}", a.text);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Pays what is due through the sandbox page (`action` full, part or fail); returns the
    /// redirect answer's body.
    pub async fn pay(&self, token: &str, order: &str, action: &str) -> Value {
        let r = self.get(&format!("/pay/redirectUrl?orderId={order}"), Some(token)).await;
        assert_eq!(r.status, StatusCode::OK, "redirectUrl: {}", r.text);
        let url = r.body["redirectUrl"].as_str().unwrap().to_owned();
        let page = self.get(&url, None).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains(r#"value="full""#) && page.text.contains(r#"value="fail""#), "{}", page.text);
        let done = self.send(self.http.post(self.url(&url)).form(&[("action", action)])).await;
        assert_eq!(done.status, StatusCode::OK, "sandbox: {}", done.text);
        assert!(done.text.contains("(204"), "the callback was accepted: {}", done.text);
        r.body
    }
}

pub fn order_body(lines: &[(&str, u32)], promo: Option<&str>) -> Value {
    let items: Vec<Value> = lines.iter().map(|(id, q)| json!({"id": id, "quantity": q})).collect();
    match promo {
        Some(p) => json!({"itemsList": items, "promoCode": p}),
        None => json!({"itemsList": items}),
    }
}

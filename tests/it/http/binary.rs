//! The real `bazaar` binary: kill -9 mid-saga and restart, SIGTERM, `bazaar user add`, --help.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use super::client::*;
use crate::support::bazaar;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `bazaar serve` on `dir` and waits until it answers /health.
async fn serve(dir: &std::path::Path, port: u16, demo: bool) -> (Child, Srv) {
    let mut cmd = bazaar();
    cmd.args(["serve", "--http", &format!("127.0.0.1:{port}"), "--data-dir"]).arg(dir);
    cmd.env("BAZAAR_PAYMENT_SECRET", "binary-test-payment-secret");
    if demo {
        cmd.arg("--demo");
    }
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start bazaar serve");
    let srv = Srv {
        running: None,
        dir: tempfile::tempdir().unwrap(),
        base: format!("http://127.0.0.1:{port}"),
        http: client(),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = srv.http.get(format!("{}/health", srv.base)).send().await {
            if r.status() == StatusCode::OK {
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "bazaar serve did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, srv)
}

fn kill9(child: &mut Child) {
    // std's kill is SIGKILL on unix.
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_with_sigkill_mid_saga_finishes_every_saga_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut child, s) = serve(dir.path(), port, true).await;
    eventually("demo stock is visible", || async {
        s.get("/product/book-frankenstein", None).await.body["freeQuantity"].as_u64().unwrap_or(0) > 0
    })
    .await;
    // Six customers: three pay (the kill lands while their payments' consequences — shipment,
    // notification — are in flight), three only place an order (killed while booking).
    let mut customers = Vec::new();
    for i in 0..6 {
        customers.push(s.customer(&format!("c{i}@example.com")).await);
    }
    let mut paid = Vec::new();
    for t in &customers[..3] {
        let o = s.order(t, &[("book-frankenstein", 1)], None).await;
        let id = o["id"].as_str().unwrap().to_owned();
        s.wait_status(t, &id, "BOOKED").await;
        paid.push((t.clone(), id));
    }
    for (t, id) in &paid {
        s.pay(t, id, "full").await;
    }
    let mut placed = Vec::new();
    for t in &customers[3..] {
        let o = s.order(t, &[("book-jane-eyre", 2)], None).await;
        placed.push((t.clone(), o["id"].as_str().unwrap().to_owned()));
    }
    kill9(&mut child);

    let (mut child, s) = serve(dir.path(), port, false).await;
    // Tokens survive (the signing key is kept in the data dir); every acknowledged saga
    // continues from where it was.
    for (t, id) in &paid {
        s.wait_status(t, id, "PAID").await;
        eventually("its shipment", || async {
            s.get(&format!("/shipping/{id}"), Some(t)).await.status == StatusCode::OK
        })
        .await;
        eventually("one ORDER_PAID notice", || async {
            let n = s.get(&format!("/notifications?orderId={id}"), Some(t)).await.body;
            n.as_array().is_some_and(|l| l.iter().filter(|x| x["eventType"] == "ORDER_PAID").count() == 1)
        })
        .await;
    }
    for (t, id) in &placed {
        s.wait_status(t, id, "BOOKED").await;
        s.pay(t, id, "full").await;
        s.wait_status(t, id, "PAID").await;
    }
    let op = s.token(OPERATOR).await;
    eventually("the invariants hold", || async { s.get("/invariants", Some(&op)).await.body["ok"] == true }).await;
    let fr = s.get("/stock/freeItems/book-frankenstein", None).await.body;
    assert_eq!((fr["freeQuantity"].as_u64(), fr["bookedQuantity"].as_u64()), (Some(12), Some(3)));
    let je = s.get("/stock/freeItems/book-jane-eyre", None).await.body;
    assert_eq!((je["freeQuantity"].as_u64(), je["bookedQuantity"].as_u64()), (Some(6), Some(6)));

    // SIGTERM: stops accepting, flushes, exits 0; the data directory is free again.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    let out = bazaar()
        .args([
            "user",
            "add",
            "--email",
            "ops@example.com",
            "--password",
            "ops-password",
            "--role",
            "OPERATOR",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (mut child, s) = serve(dir.path(), port, false).await;
    assert_eq!(s.login(("ops@example.com", "ops-password")).await.body["role"], "OPERATOR");
    kill9(&mut child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_add_explains_a_held_data_directory_and_a_taken_email_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let add = |email: &str| {
        bazaar()
            .args(["user", "add", "--email", email, "--password", "long-enough-pw", "--role", "ADMIN", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let first = add("root@example.com");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).contains("root@example.com"));
    let again = add("root@example.com");
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("exists already") && err.trim().lines().count() == 1, "{err}");

    let port = free_port();
    let (mut child, _s) = serve(dir.path(), port, false).await;
    let held = add("second@example.com");
    assert!(!held.status.success());
    let err = String::from_utf8_lossy(&held.stderr);
    assert!(err.contains("in use by a running node") && err.trim().lines().count() == 1, "{err}");
    assert!(!err.contains("panicked"));
    // Every tool says the same one line about a held directory (not the OS error).
    for args in [&["verify"][..], &["dead-letters", "list"], &["dead-letters", "replay"]] {
        let out = bazaar().args(args).arg("--data-dir").arg(dir.path()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains("in use by a running node") && err.trim().lines().count() == 1, "{args:?}: {err}");
        assert!(!err.contains("WouldBlock") && !err.contains("os error"), "{args:?}: {err}");
    }
    kill9(&mut child);
    // Stopped: the tools run end to end on it.
    let verify = bazaar().args(["verify", "--data-dir"]).arg(dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{text}{}", String::from_utf8_lossy(&verify.stderr));
    assert!(text.contains("ok      money balanced") && !text.contains("BROKEN"), "{text}");
    let list = bazaar().args(["dead-letters", "list", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(list.status.success());
    assert!(String::from_utf8_lossy(&list.stdout).contains("no dead letters"));
    // A mistyped directory is refused, not created.
    let missing = dir.path().join("no-such-dir");
    for args in [&["verify"][..], &["dead-letters", "list"]] {
        let out = bazaar().args(args).arg("--data-dir").arg(&missing).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("no bazaar data directory"), "{args:?}: {err}");
        assert!(!missing.exists(), "{args:?} created the directory");
    }

    let bad = bazaar()
        .args([
            "user",
            "add",
            "--email",
            "x@example.com",
            "--password",
            "long-enough-pw",
            "--role",
            "KING",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--role"));
    let bad = bazaar()
        .args(["user", "add", "--email", "not-an-email", "--password", "long-enough-pw", "--role", "ADMIN"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("not a valid e-mail address"), "{err}");
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["user", "add", "--help"],
        &["loadgen", "--help"],
        &["verify", "--help"],
        &["dead-letters", "--help"],
        &["dead-letters", "list", "--help"],
        &["dead-letters", "replay", "--help"],
        &["cluster", "--help"],
        &["cluster", "status", "--help"],
    ] {
        let out = bazaar().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
    }
    let out = bazaar().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--node",
        "--http",
        "--data-dir",
        "--payment-secret",
        "--jwt-secret",
        "--demo",
        "BAZAAR_PAYMENT_SECRET",
        "BAZAAR_JWT_SECRET",
    ] {
        assert!(text.contains(flag), "serve --help names {flag}");
    }
}

/// The resident memory of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.trim().parse().ok()).unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_logins_for_made_up_accounts_hashes_a_bounded_number_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut child, s) = serve(dir.path(), port, false).await;
    let pid = child.id();
    let rss_before = rss_kib(pid);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Sample memory and /health's latency while the flood runs (recorded, not asserted).
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak
        })
    };
    let health = {
        let (stop, base) = (stop.clone(), s.base.clone());
        tokio::spawn(async move {
            let c = client();
            let mut worst = Duration::ZERO;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = std::time::Instant::now();
                let r = c.get(format!("{base}/health")).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                worst = worst.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            worst
        })
    };
    // Four waves of 64 logins at once for made-up accounts, each from its own address (so the
    // per-address throttle does not hide the hashing pool).
    let (mut unauthorized, mut busy) = (0, 0);
    for wave in 0..4 {
        let logins = (0..64u8).map(|i| {
            let url = format!("{}/token", s.base);
            async move {
                let c = reqwest::Client::builder()
                    .local_address(std::net::IpAddr::from([127, 0, 1 + wave, i]))
                    .build()
                    .unwrap();
                let r = c
                    .get(url)
                    .basic_auth(format!("ghost{wave}-{i}@example.com"), Some("a-guess-123"))
                    .send()
                    .await
                    .unwrap();
                let retry = r.headers().contains_key("retry-after");
                let status = r.status();
                let body: serde_json::Value = r.json().await.unwrap();
                (status, retry, body)
            }
        });
        for (status, retry, body) in futures::future::join_all(logins).await {
            match status {
                StatusCode::UNAUTHORIZED => unauthorized += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    assert!(retry, "a 429 says when to retry");
                    assert_eq!(body["error"], "too_many_requests");
                    busy += 1;
                }
                other => panic!("a login answered {other}: {body}"),
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rss_peak = sampler.await.unwrap();
    let worst_health = health.await.unwrap();
    let m = s.get("/metrics", None).await.text;
    let (workers, peak) = (metric(&m, "password_hash_workers"), metric(&m, "password_hashes_in_flight_peak"));
    println!(
        "login flood: {unauthorized} x 401, {busy} x 429; hashes at once: peak {peak} of {workers} workers; \
         RSS {rss_before} KiB before, {rss_peak} KiB peak, {} KiB after; slowest /health {worst_health:?}",
        rss_kib(pid)
    );
    assert!(busy > 0, "past the queue, logins are refused at once");
    assert!(unauthorized > 0, "the admitted ones are checked");
    assert!(workers >= 1.0 && peak >= 1.0 && peak <= workers, "peak {peak}, workers {workers}");
    kill9(&mut child);
}

/// Waits until `base` answers /health.
async fn wait_up(base: &str) {
    let http = client();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !matches!(http.get(format!("{base}/health")).send().await, Ok(r) if r.status() == StatusCode::OK) {
        assert!(std::time::Instant::now() < deadline, "{base} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A two-node cluster file: the nodes must be given the same secrets (refused at start in one
/// line otherwise), and then a token issued by one node is taken by the other; both run the
/// same configuration digest and count the same owners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_needs_shared_secrets_and_then_each_node_takes_the_others_tokens() {
    use bazaar::cluster::config::ClusterConfig;
    use bazaar::cluster::Router;
    use bazaar::domain::NodeId;

    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(4);
    let (h1, h2, c1, c2) = (p[0], p[1], p[2], p[3]);
    let file = dir.path().join("cluster.toml");
    std::fs::write(
        &file,
        format!(
            "cookie = \"test-cookie\"\n\
             [[node]]\nname = \"node-1\"\ncluster_addr = \"127.0.0.1:{c1}\"\nhttp_addr = \"127.0.0.1:{h1}\"\ndata_dir = \"d1\"\n\
             [[node]]\nname = \"node-2\"\ncluster_addr = \"127.0.0.1:{c2}\"\nhttp_addr = \"127.0.0.1:{h2}\"\ndata_dir = \"d2\"\n"
        ),
    )
    .unwrap();
    let serve_with = |config: &std::path::Path, node: &str, jwt: Option<&str>, payment: Option<&str>| {
        let mut cmd = bazaar();
        cmd.args(["serve", "--config"]).arg(config).args(["--node", node]);
        cmd.env_remove("BAZAAR_JWT_SECRET").env_remove("BAZAAR_PAYMENT_SECRET");
        if let Some(j) = jwt {
            cmd.env("BAZAAR_JWT_SECRET", j);
        }
        if let Some(p) = payment {
            cmd.env("BAZAAR_PAYMENT_SECRET", p);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        cmd
    };
    let serve = |node: &str, jwt: Option<&str>, payment: Option<&str>| serve_with(&file, node, jwt, payment);
    let (jwt, payment) = ("a-cluster-wide-token-key-of-40-bytes-xyz", "a-cluster-wide-payment-secret");

    // Refused at start, in one line, without both secrets or with a short key.
    for (j, p, says) in [
        (None, None, "--jwt-secret"),
        (Some(jwt), None, "--payment-secret"),
        (None, Some(payment), "--jwt-secret"),
        (Some("short"), Some(payment), "at least 32 bytes"),
    ] {
        let out = serve("node-1", j, p).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started without the secrets");
        assert!(err.contains(says) && err.trim().lines().count() == 1, "one line naming {says}: {err}");
    }

    // An operator whose account lives on node-1's partitions, made offline.
    let nodes = [NodeId::parse("node-1").unwrap(), NodeId::parse("node-2").unwrap()];
    let router = Router::new(nodes[0].clone(), &nodes, 256);
    let email = (0..)
        .map(|i| format!("operator{i}@bazaar.test"))
        .find(|e| router.owner(router.partition_of(e.as_bytes())) == &nodes[0])
        .unwrap();
    let added = bazaar()
        .args(["user", "add", "--email", &email, "--password", "operator-pass-1", "--role", "OPERATOR", "--data-dir"])
        .arg(dir.path().join("d1"))
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));

    let mut one = serve("node-1", Some(jwt), Some(payment)).stderr(Stdio::null()).spawn().unwrap();
    let mut two = serve("node-2", Some(jwt), Some(payment)).stderr(Stdio::null()).spawn().unwrap();
    let (b1, b2) = (format!("http://127.0.0.1:{h1}"), format!("http://127.0.0.1:{h2}"));
    wait_up(&b1).await;
    wait_up(&b2).await;
    let http = client();
    let login = http.get(format!("{b1}/token")).basic_auth(&email, Some("operator-pass-1")).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let token = login.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned();

    let digest = ClusterConfig::load(&file).unwrap().digest();
    // What `base` says of `peer`: (reachable, the digest it runs); and the whole answer checked.
    let view = |base: String, me: &'static str, peer: &'static str| {
        let (http, token, digest) = (http.clone(), token.clone(), digest.clone());
        async move {
            let r = http.get(format!("{base}/cluster")).bearer_auth(&token).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{me} takes a token node-1 issued");
            let c: serde_json::Value = r.json().await.unwrap();
            assert_eq!(c["node"], me);
            assert_eq!(c["configDigest"], digest.as_str());
            assert_eq!(c["moves"], serde_json::json!([]));
            let ns = c["nodes"].as_array().unwrap();
            assert_eq!(ns.len(), 2);
            let total: u64 = ns.iter().map(|n| n["partitions"].as_u64().unwrap()).sum();
            assert_eq!(total, 256, "every partition has one owner: {c}");
            let mine = ns.iter().find(|n| n["name"] == me).unwrap();
            assert_eq!(
                (mine["reachable"].as_bool(), mine["configDigest"].as_str()),
                (Some(true), Some(digest.as_str()))
            );
            let theirs = ns.iter().find(|n| n["name"] == peer).unwrap();
            assert!(mine["partitions"].as_u64().unwrap() > 0 && theirs["partitions"].as_u64().unwrap() > 0);
            (theirs["reachable"].as_bool().unwrap(), theirs["configDigest"].as_str().map(str::to_owned))
        }
    };
    let up = Some(digest.clone());
    let sees = |base: &String, me: &'static str, peer: &'static str, want: (bool, Option<String>)| {
        let (base, want) = (base.clone(), want.clone());
        let view = &view;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                let got = view(base.clone(), me, peer).await;
                if got == want {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "{me} sees {peer} as {got:?}, not {want:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // Sessions open and heartbeats flow both ways: each sees the other, running the same file.
    sees(&b1, "node-1", "node-2", (true, up.clone())).await;
    sees(&b2, "node-2", "node-1", (true, up.clone())).await;
    // Per peer metrics: the session is up (ractor_cluster's `name@host` matched to the peer) and
    // the heartbeat answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let m = http.get(format!("{b1}/metrics")).send().await.unwrap().text().await.unwrap();
        let has = |family: &str| {
            m.lines().any(|l| l.starts_with(family) && l.contains(r#"peer="node-2""#) && l.ends_with(" 1"))
        };
        if has("cluster_peer_session_up")
            && has("cluster_peer_reachable")
            && m.contains("cluster_peer_heartbeat_rtt_seconds")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "per-peer metrics: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The operator asks the running nodes.
    let status = || bazaar().args(["cluster", "status", "--config"]).arg(&file).output().unwrap();
    let out = status();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&digest), "{text}");
    for (name, peer) in [("node-1", "node-2"), ("node-2", "node-1")] {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {text}"));
        assert!(line.contains(" yes ") && line.contains(" same ") && line.contains(&format!("{peer}: up")), "{line}");
    }
    assert!(text.contains("moves in progress: none"), "{text}");

    // A stopped process keeps its TCP open: only the heartbeat notices, within seconds.
    let signal = |sig: &str, child: &Child| {
        assert!(Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success());
    };
    signal("-STOP", &two);
    let stopped_at = std::time::Instant::now();
    sees(&b1, "node-1", "node-2", (false, up.clone())).await;
    assert!(stopped_at.elapsed() < Duration::from_secs(10), "noticed in {:?}", stopped_at.elapsed());
    signal("-CONT", &two);
    sees(&b1, "node-1", "node-2", (true, up.clone())).await;

    // Killed and started again: node-1 dials it again.
    kill9(&mut two);
    sees(&b1, "node-1", "node-2", (false, up.clone())).await;
    let out = status();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "a node down is not a healthy cluster: {text}");
    let line = text.lines().find(|l| l.starts_with("node-2")).unwrap();
    assert!(line.contains(" NO ") && line.contains("connect"), "{line}");
    // A key whose owner is down answers 503 UNAVAILABLE with Retry-After at once (no TCP wait);
    // a key node-1 owns is answered as ever (an unknown item: 404).
    let owned_by = |owner: &NodeId| {
        (0..).map(|i| format!("book-{i}")).find(|s| router.owner(router.partition_of(s.as_bytes())) == owner).unwrap()
    };
    let asked = std::time::Instant::now();
    let r = http.get(format!("{b1}/stock/freeItems/{}", owned_by(&nodes[1]))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "UNAVAILABLE");
    assert!(asked.elapsed() < Duration::from_secs(2), "answered in {:?}", asked.elapsed());
    let r = http.get(format!("{b1}/stock/freeItems/{}", owned_by(&nodes[0]))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(text.lines().find(|l| l.starts_with("node-1")).unwrap().contains("node-2: down"), "{text}");
    let mut two = serve("node-2", Some(jwt), Some(payment)).stderr(Stdio::null()).spawn().unwrap();
    wait_up(&b2).await;
    sees(&b1, "node-1", "node-2", (true, up.clone())).await;
    kill9(&mut two);

    // node-2 run with another cookie: refused, never reachable (its digest, like the cookie, is
    // not exchanged). Then with another partition count: reachable, its other digest shown.
    let text = std::fs::read_to_string(&file).unwrap();
    let other_cookie = dir.path().join("other-cookie.toml");
    std::fs::write(&other_cookie, text.replace("test-cookie", "another-cookie")).unwrap();
    let mut two = serve_with(&other_cookie, "node-2", Some(jwt), Some(payment)).stderr(Stdio::null()).spawn().unwrap();
    wait_up(&b2).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!view(b1.clone(), "node-1", "node-2").await.0, "a node with another cookie is refused");
    kill9(&mut two);
    let other_partitions = dir.path().join("other-partitions.toml");
    std::fs::write(&other_partitions, format!("partitions = 128\n{text}")).unwrap();
    let theirs = ClusterConfig::load(&other_partitions).unwrap().digest();
    assert_ne!(theirs, digest);
    let mut two =
        serve_with(&other_partitions, "node-2", Some(jwt), Some(payment)).stderr(Stdio::null()).spawn().unwrap();
    wait_up(&b2).await;
    sees(&b1, "node-1", "node-2", (true, Some(theirs))).await;
    // Reachable, but routing by another configuration: node-1 sends it nothing (503).
    let r = http.get(format!("{b1}/stock/freeItems/{}", owned_by(&nodes[1]))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = r.json::<serde_json::Value>().await.unwrap();
    assert_eq!(body["error"], "UNAVAILABLE");
    assert!(body["message"].as_str().unwrap().contains("configuration"), "{body}");
    kill9(&mut two);
    kill9(&mut one);
}

//! Operators and analysts: online rebuild with a swap while queries answer,
//! a crash during a rebuild, digests (live = rebuilt = as of now), offline
//! rebuild errors that change nothing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{get_json, post_json, wait_live, Server, BIN};

/// A small, varied history: customers, calls, cases.
fn history(n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..n {
        let c = format!("c{i}");
        let t = |m: usize| {
            format!(
                "2026-11-{:02}T{:02}:{:02}:00Z",
                1 + i % 20,
                8 + m / 60,
                m % 60
            )
        };
        out.push(json!({"event_id": format!("{c}-reg"), "type": "customer.registered", "occurred_at": t(0), "source": "crm",
            "customer_id": c, "data": {"name": format!("Customer {i}"), "identities": [{"kind": "email", "value": format!("C{i}@Example.com")}]}}));
        out.push(json!({"event_id": format!("{c}-call"), "type": "interaction.started", "occurred_at": t(5), "source": "pbx",
            "interaction_id": format!("i{i}"), "customer_id": c, "data": {"channel": "phone", "direction": "inbound"}}));
        out.push(json!({"event_id": format!("{c}-end"), "type": "interaction.ended", "occurred_at": t(9), "source": "pbx",
            "interaction_id": format!("i{i}"), "data": {"outcome": "completed", "talk_seconds": 200}}));
        out.push(json!({"event_id": format!("{c}-case"), "type": "case.opened", "occurred_at": t(10), "source": "crm",
            "case_id": format!("k{i}"), "customer_id": c, "data": {"category": "billing", "origin_interaction_id": format!("i{i}")}}));
        if i % 3 == 0 {
            out.push(json!({"event_id": format!("{c}-res"), "type": "case.resolved", "occurred_at": t(30), "source": "crm",
                "case_id": format!("k{i}"), "data": {"resolution": "refunded"}}));
        }
    }
    out
}

async fn publish_all(server: &Server, events: &[Value]) -> String {
    let client = reqwest::Client::new();
    let mut token = String::new();
    for chunk in events.chunks(1000) {
        let r: Value = post_json(&client, server.url("/v1/events"), &chunk).await;
        assert_eq!(r["rejected"], 0, "{r}");
        token = r["consistency_token"].as_str().unwrap().to_string();
    }
    token
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn digests(args: &[&str]) -> String {
    let (ok, stdout, stderr) = run(args);
    assert!(ok, "{args:?}: {stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_rebuild_swaps_while_queries_keep_answering() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]).await;
    let token = publish_all(&server, &history(1500)).await;
    let client = reqwest::Client::new();
    let before: Value = get_json(
        &client,
        server.url(&format!(
            "/v1/customers/c7?consistent_with={token}&wait_ms=30000"
        )),
    )
    .await;
    wait_live(&server, "customers").await;

    let r = client
        .post(server.url("/v1/projections/customers/rebuild"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let again = client
        .post(server.url("/v1/projections/customers/rebuild"))
        .send()
        .await
        .unwrap();
    assert!(
        again.status() == 409 || again.status() == 202,
        "{}",
        again.status()
    );
    let unknown = client
        .post(server.url("/v1/projections/nope/rebuild"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // Queries keep answering the same while the fresh copy is built; the
    // rebuilding state is visible.
    let mut saw_rebuilding = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c: Value = get_json(&client, server.url("/v1/customers/c7")).await;
        assert_eq!(c, before, "queries answer the same during the rebuild");
        let ps: Value = get_json(&client, server.url("/v1/projections")).await;
        let p = ps
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "customers")
            .unwrap()
            .clone();
        if p["status"] == "rebuilding" {
            saw_rebuilding = true;
            let progress = p["rebuild_progress"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&progress));
        } else if p["status"] == "live" && saw_rebuilding {
            break;
        }
        assert!(Instant::now() < deadline, "rebuild did not finish: {p}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // After the swap: same answer, new events still flow.
    let after: Value = get_json(&client, server.url("/v1/customers/c7")).await;
    assert_eq!(after, before);
    let more = vec![
        json!({"event_id": "late-1", "type": "customer.profile_updated", "occurred_at": "2026-11-21T10:00:00Z",
        "source": "crm", "customer_id": "c7", "data": {"name": "Renamed"}}),
    ];
    let token = publish_all(&server, &more).await;
    let c: Value = get_json(
        &client,
        server.url(&format!("/v1/customers/c7?consistent_with={token}")),
    )
    .await;
    assert_eq!(c["name"], "Renamed");
    wait_live(&server, "customers").await;
    assert!(server.terminate().success());
    // The swapped-in copy equals a rebuild from the log.
    let d = dir.path().to_str().unwrap();
    let live = digests(&["digest", "--data-dir", d]);
    assert_eq!(live, digests(&["rebuild", "--data-dir", d, "--digest"]));
    // And the offline rebuild, which took the place of the read models, is
    // a finished one (built without writing ahead, marked unfinished until
    // its end): `digest` opens it as it opens any store.
    assert_eq!(live, digests(&["digest", "--data-dir", d]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_an_online_rebuild_leaves_the_live_copy_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]).await;
    let token = publish_all(&server, &history(1500)).await;
    let client = reqwest::Client::new();
    let before: Value = get_json(
        &client,
        server.url(&format!(
            "/v1/cases/k9?consistent_with={token}&wait_ms=30000"
        )),
    )
    .await;
    assert_eq!(
        client
            .post(server.url("/v1/projections/cases/rebuild"))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    tokio::time::sleep(Duration::from_millis(30)).await;
    server.kill();
    let server = Server::start(dir.path(), &[]).await;
    let r = client.get(server.url("/v1/cases/k9")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut now: Value = r.json().await.unwrap();
    let mut before = before;
    // The SLA block is judged against the clock; compare the rest.
    now["sla"] = Value::Null;
    before["sla"] = Value::Null;
    assert_eq!(now, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_rebuilt_and_as_of_now_digests_agree_and_time_travel_differs() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]).await;
    publish_all(&server, &history(300)).await;
    for p in ["customers", "cases", "campaigns"] {
        wait_live(&server, p).await;
    }
    assert!(server.terminate().success());
    let d = dir.path().to_str().unwrap();
    let live = digests(&["digest", "--data-dir", d]);
    let rebuilt = digests(&[
        "rebuild",
        "--data-dir",
        d,
        "--digest",
        "--out",
        dir.path().join("r1").to_str().unwrap(),
    ]);
    let as_of_now = digests(&[
        "rebuild",
        "--data-dir",
        d,
        "--digest",
        "--as-of",
        "2099-01-01T00:00:00Z",
        "--out",
        dir.path().join("r2").to_str().unwrap(),
    ]);
    let known_now = digests(&[
        "rebuild",
        "--data-dir",
        d,
        "--digest",
        "--known-at",
        "2099-01-01T00:00:00Z",
        "--out",
        dir.path().join("r3").to_str().unwrap(),
    ]);
    assert_eq!(live.lines().count(), 3);
    assert_eq!(live, rebuilt);
    assert_eq!(live, as_of_now);
    assert_eq!(live, known_now);
    let past = digests(&[
        "rebuild",
        "--data-dir",
        d,
        "--digest",
        "--as-of",
        "2026-11-05T00:00:00Z",
        "--out",
        dir.path().join("r4").to_str().unwrap(),
    ]);
    assert_ne!(past, live, "an earlier moment is a different view");
    // Nothing was known before the first publish.
    let known_then = digests(&[
        "rebuild",
        "--data-dir",
        d,
        "--digest",
        "--known-at",
        "2000-01-01T00:00:00Z",
        "--out",
        dir.path().join("r5").to_str().unwrap(),
    ]);
    let empty = digests(&[
        "rebuild",
        "--data-dir",
        d,
        "--digest",
        "--as-of",
        "2000-01-01T00:00:00Z",
        "--out",
        dir.path().join("r6").to_str().unwrap(),
    ]);
    assert_eq!(known_then, empty);
    // A past view can be served read-only.
    let ro = Server::start(&dir.path().join("r4"), &["--read-only"]).await;
    let c: Value = reqwest::get(ro.url("/v1/customers/c3"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["customer_id"], "c3");
    let late = reqwest::get(ro.url("/v1/customers/c10")).await.unwrap();
    assert_eq!(
        late.status(),
        404,
        "c10 registered on 2026-11-11, after the as-of time"
    );
}

fn tree_snapshot(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for e in walk(dir) {
        out.push((e.0, e.1));
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push((
                    p.display().to_string(),
                    e.metadata().map(|m| m.len()).unwrap_or(0),
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_refuses_bad_input_and_a_data_dir_in_use_changing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    publish_all(&server, &history(20)).await;
    let d = dir.path().to_str().unwrap();
    let (ok, _, err) = run(&["rebuild", "--data-dir", d, "--digest"]);
    assert!(!ok && err.contains("in use"), "{err}");
    drop(server);
    let snapshot = tree_snapshot(dir.path());
    for (args, says) in [
        (
            vec![
                "rebuild",
                "--data-dir",
                d,
                "--as-of",
                "last tuesday",
                "--out",
                "/tmp/never",
            ],
            "--as-of",
        ),
        (
            vec![
                "rebuild",
                "--data-dir",
                d,
                "--known-at",
                "2026-13-01T00:00:00Z",
                "--out",
                "/tmp/never",
            ],
            "--known-at",
        ),
        (
            vec!["rebuild", "--data-dir", d, "--projection", "orders"],
            "unknown projection",
        ),
        (
            vec![
                "rebuild",
                "--data-dir",
                d,
                "--as-of",
                "2026-11-01T00:00:00Z",
            ],
            "need --out",
        ),
        (
            vec!["rebuild", "--data-dir", "/nonexistent/dir"],
            "holds no embedded log",
        ),
    ] {
        let (ok, _, err) = run(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(!Path::new("/tmp/never").exists());
    assert_eq!(tree_snapshot(dir.path()), snapshot, "nothing changed");
}

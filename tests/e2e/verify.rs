//! Checks shared by the fault tests: read models caught up, live read models
//! equal to a fresh rebuild from the log, a mixed publishing load.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{get_json, Server, BIN};

/// Waits until every projection of `server` is live with lag 0. Fails when
/// they make no progress for two minutes (a debug build applies a long
/// backlog slowly, e.g. after many crash rounds, but steadily).
/// Waits until the server has read its read-model store whole (it does so
/// in the background after it starts; `/readyz` says how far), so that
/// damage at rest has been found and dealt with.
pub async fn wait_store_checked(server: &Server) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = client.get(server.url("/readyz")).send().await.unwrap();
        let ok = r.status().is_success();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if ok && body["store_check"]["state"] == "done" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the store check did not finish within 120 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_caught_up(server: &Server) {
    let client = reqwest::Client::new();
    let mut deadline = Instant::now() + Duration::from_secs(120);
    let mut applied = 0u64;
    loop {
        let ps: Value = get_json(&client, server.url("/v1/projections")).await;
        let all = ps.as_array().unwrap();
        if all.iter().all(|p| p["status"] == "live" && p["lag"] == 0) {
            return;
        }
        let now: u64 = all
            .iter()
            .filter_map(|p| p["events_applied"].as_u64())
            .sum();
        if now > applied {
            applied = now;
            deadline = Instant::now() + Duration::from_secs(120);
        }
        assert!(
            Instant::now() < deadline,
            "read models did not catch up (no progress for 120 s): {ps}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn lines(args: &[&str], data_dir: &Path) -> BTreeSet<String> {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let set: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(!set.is_empty(), "{args:?} printed no digest");
    set
}

/// `NAME DIGEST` of the live read models of a stopped server's data dir.
pub fn live_digests(data_dir: &Path) -> BTreeSet<String> {
    lines(&["digest"], data_dir)
}

/// `NAME DIGEST` of read models rebuilt from the log, into a scratch dir.
pub fn rebuilt_digests(data_dir: &Path) -> BTreeSet<String> {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("rebuilt");
    let d = dir.to_str().unwrap().to_string();
    lines(&["rebuild", "--digest", "--out", &d], data_dir)
}

/// Starts a server on `data_dir`, lets every read model catch up with the
/// log, stops it with SIGTERM and proves each read model equals a fresh
/// rebuild. Returns the digests.
pub async fn assert_read_models_equal_a_rebuild(data_dir: &Path) -> BTreeSet<String> {
    let mut server = Server::start(data_dir, &[]).await;
    wait_caught_up(&server).await;
    assert!(server.terminate().success(), "clean stop");
    let live = live_digests(data_dir);
    let rebuilt = rebuilt_digests(data_dir);
    assert_eq!(
        live, rebuilt,
        "live read models differ from a fresh rebuild of the log"
    );
    assert_eq!(live.len(), 3, "customers, cases and campaigns: {live:?}");
    live
}

/// A batch of events for every read model, ids prefixed by `tag`: customers
/// registered and updated, cases opened and noted, interactions, campaign
/// attempts.
pub fn mixed_batch(tag: &str, worker: usize, n: usize) -> Vec<Value> {
    let t = "2026-11-20T10:00:00Z";
    (0..n)
        .map(|i| {
            let id = format!("{tag}-{i}");
            let cust = format!("cust-{worker}-{}", i % 7);
            match i % 5 {
                0 => json!({"event_id": id, "type": "customer.registered", "occurred_at": t, "source": "e2e",
                            "customer_id": cust, "data": {"name": format!("Name {id}"),
                            "identities": [{"kind": "account", "value": format!("acc-{id}")}]}}),
                1 => json!({"event_id": id, "type": "case.opened", "occurred_at": t, "source": "e2e",
                            "case_id": format!("case-{id}"), "customer_id": cust,
                            "data": {"category": "billing"}}),
                2 => json!({"event_id": id, "type": "case.note_added", "occurred_at": t, "source": "e2e",
                            "case_id": format!("case-{worker}"), "data": {"text": format!("note {id}")}}),
                3 => json!({"event_id": id, "type": "interaction.recorded", "occurred_at": t, "source": "e2e",
                            "interaction_id": format!("int-{id}"), "customer_id": cust,
                            "data": {"channel": "chat", "direction": "inbound"}}),
                _ => json!({"event_id": id, "type": "campaign.attempt_made", "occurred_at": t, "source": "e2e",
                            "campaign_id": format!("camp-{worker}"), "customer_id": cust,
                            "data": {"channel": "phone", "result": "no_answer"}}),
            }
        })
        .collect()
}

//! SIGTERM drains in-flight publishes; size limits answer 413; the schemas in
//! the repository match the code.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::{log_ids, note, Server, BIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_publishing_stops_cleanly_and_keeps_every_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]).await;
    eprintln!(
        "serve was ready in {:?} on an empty data dir",
        server.ready_in
    );
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let mut tasks = Vec::new();
    for w in 0..4 {
        let base = server.base.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for b in 0.. {
                let body: Vec<Value> = (0..100)
                    .map(|i| note(&format!("w{w}-b{b}-{i}"), "k"))
                    .collect();
                let Ok(r) = client
                    .post(format!("{base}/v1/events"))
                    .json(&body)
                    .send()
                    .await
                else {
                    return;
                };
                if !r.status().is_success() {
                    return;
                }
                let Ok(a) = r.json::<Value>().await else {
                    return;
                };
                for r in a["results"].as_array().unwrap() {
                    acked
                        .lock()
                        .unwrap()
                        .insert(r["event_id"].as_str().unwrap().to_string());
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = server.terminate();
    assert!(status.success(), "clean exit: {status:?}");
    for t in tasks {
        t.await.unwrap();
    }
    let ids = log_ids(dir.path());
    let acked = acked.lock().unwrap();
    assert!(!acked.is_empty());
    assert!(
        acked.iter().all(|id| ids.get(id) == Some(&1)),
        "every acknowledged event once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limits_answer_413_with_the_error_body() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    // The request limit (16 MiB by default), set low: a body the client can
    // finish sending before the server answers and closes (with 16 MiB the
    // client may meet the closed socket mid-send and never read the 413).
    let small_dir = tempfile::tempdir().unwrap();
    let small = Server::start(
        small_dir.path(),
        &["--projections", "", "--max-request-bytes", "65536"],
    )
    .await;
    let big = format!("[{}]", "1,".repeat(64 * 1024) + "1");
    let r = client
        .post(small.url("/v1/events"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "payload_too_large");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("65536"),
        "{e}"
    );
    drop(small);
    let server = Server::start(dir.path(), &["--projections", ""]).await;
    // Default event limit: 256 KiB.
    let mut ev = note("huge", "k");
    ev["data"]["text"] = Value::String("x".repeat(300 * 1024));
    let r = client
        .post(server.url("/v1/events"))
        .json(&vec![note("small", "k"), ev])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"].as_str().unwrap().contains("event 1"),
        "{e}"
    );
    drop(server);
    assert!(
        log_ids(dir.path()).is_empty(),
        "nothing of a refused request is appended"
    );
}

#[test]
fn the_schemas_in_the_repository_match_the_code() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let out = std::process::Command::new(BIN)
        .args(["schemas", "--check"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "schemas/ drifted from the code:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn schemas_check_fails_on_a_drifted_directory() {
    let d = tempfile::tempdir().unwrap();
    assert!(std::process::Command::new(BIN)
        .args(["schemas", "--write"])
        .arg(d.path())
        .status()
        .unwrap()
        .success());
    std::fs::remove_file(d.path().join("case.closed.v1.json")).unwrap();
    std::fs::write(d.path().join("envelope.json"), "{}").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["schemas", "--check"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("case.closed.v1.json: missing") && err.contains("envelope.json: differs"),
        "{err}"
    );
}

#[test]
fn the_event_reference_page_is_generated_from_the_schemas() {
    let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.md");
    let on_disk = std::fs::read_to_string(&page).expect("docs/events.md");
    assert!(
        on_disk == crm_events::schema::markdown(),
        "docs/events.md is stale: run `crm-ledger schemas --docs docs/events.md`"
    );
}

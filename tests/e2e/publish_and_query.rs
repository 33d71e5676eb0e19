//! Publish in every body form, read your writes with the consistency token,
//! the `publish` and `replay` commands.

use std::process::Command;

use serde_json::{json, Value};

use crate::support::{get_json, note, post_json, Server, BIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_array_and_ndjson_bodies_and_read_your_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let opened = json!({"event_id": "o1", "type": "case.opened", "occurred_at": "2026-11-20T09:00:00Z",
        "source": "crm-ui", "case_id": "k1", "data": {"category": "billing"}});
    let r: Value = post_json(&client, server.url("/v1/events"), &opened).await;
    assert_eq!(r["accepted"], 1);
    let token = r["consistency_token"].as_str().unwrap().to_string();
    assert_eq!(r["results"][0]["position"], token.as_str());
    let case: Value = get_json(
        &client,
        server.url(&format!("/v1/cases/k1?consistent_with={token}")),
    )
    .await;
    assert_eq!(case["category"], "billing", "{case}");

    let r: Value = post_json(
        &client,
        server.url("/v1/events"),
        &vec![note("n1", "k1"), note("n2", "k1")],
    )
    .await;
    assert_eq!(r["accepted"], 2);
    let ndjson = format!("{}\n\n{}\r\n", note("n3", "k1"), note("n1", "k1"));
    let r: Value = client
        .post(server.url("/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r["accepted"].as_u64(), r["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    let token = r["consistency_token"].as_str().unwrap();
    let case: Value = get_json(
        &client,
        server.url(&format!("/v1/cases/k1?consistent_with={token}")),
    )
    .await;
    assert_eq!(case["history"].as_array().unwrap().len(), 4, "{case}");

    let projections: Value = get_json(&client, server.url("/v1/projections")).await;
    let names: Vec<&str> = projections
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"cases"), "{projections}");
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    let check = ready["store_check"]["state"].as_str().unwrap_or_default();
    assert!(
        ["pending", "running", "done"].contains(&check),
        "/readyz says how far the store check is: {ready}"
    );
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("crm_events_accepted_total"), "{metrics}");
    assert!(
        metrics.contains("crm_projection_commit_seconds{projection=\"cases\",quantile=\"0.99\"}"),
        "{metrics}"
    );
    let openapi: Value = get_json(&client, server.url("/openapi.json")).await;
    assert!(openapi["paths"]["/v1/events"]["post"].is_object());
    assert!(openapi["paths"]["/v1/cases/{id}"]["get"].is_object());
    let dl: Value = get_json(&client, server.url("/v1/dead-letters")).await;
    assert!(
        dl["items"].is_array() && dl["next_cursor"].is_null(),
        "{dl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_command_sends_a_file_and_exits_non_zero_on_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--projections", ""]).await;
    let file = dir.path().join("events.ndjson");
    let mut lines: Vec<String> = (0..2500)
        .map(|i| note(&format!("p{i}"), &format!("k{}", i % 7)).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = Command::new(BIN)
        .args([
            "publish",
            file.to_str().unwrap(),
            "--url",
            &server.base,
            "--batch",
            "300",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2500 events read: 2500 accepted, 0 duplicates, 0 rejected"),
        "{stdout}"
    );
    // Again with one bad line: duplicates are fine, the reject fails the run.
    lines.push("{\"event_id\": \"bad\"}".into());
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = Command::new(BIN)
        .args(["publish", file.to_str().unwrap(), "--url", &server.base])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("0 accepted, 2500 duplicates, 1 rejected"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2501 (bad)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_filters_by_time_type_and_customer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--projections", ""]).await;
    let client = reqwest::Client::new();
    let ev = |id: &str, t: &str, at: &str, extra: Value| {
        let mut e = json!({"event_id": id, "type": t, "occurred_at": at, "source": "s"});
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    };
    let events = vec![
        ev(
            "a",
            "customer.registered",
            "2026-11-01T00:00:00Z",
            json!({"customer_id": "c1", "data": {}}),
        ),
        ev(
            "b",
            "customer.registered",
            "2026-11-02T00:00:00Z",
            json!({"customer_id": "c2", "data": {}}),
        ),
        ev(
            "c",
            "customer.merged",
            "2026-11-03T00:00:00Z",
            json!({"customer_id": "c1", "data": {"merged_customer_id": "c2"}}),
        ),
        ev(
            "d",
            "interaction.started",
            "2026-11-04T00:00:00Z",
            json!({"interaction_id": "i1", "data": {"channel": "sms", "direction": "inbound"}}),
        ),
        ev(
            "e",
            "interaction.identified",
            "2026-11-04T00:01:00Z",
            json!({"interaction_id": "i1", "customer_id": "c2", "data": {}}),
        ),
        ev(
            "f",
            "interaction.ended",
            "2026-11-04T00:02:00Z",
            json!({"interaction_id": "i1", "data": {"outcome": "completed"}}),
        ),
        ev(
            "g",
            "case.opened",
            "2026-11-05T00:00:00Z",
            json!({"case_id": "k9", "customer_id": "c3", "data": {"category": "x"}}),
        ),
        ev(
            "h",
            "case.closed",
            "2026-11-06T00:00:00Z",
            json!({"case_id": "k9", "data": {}}),
        ),
    ];
    let r: Value = post_json(&client, server.url("/v1/events"), &events).await;
    assert_eq!(r["accepted"], 8);
    let replay = |args: &[&str]| -> Vec<String> {
        let out = Command::new(BIN)
            .arg("replay")
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["event_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        replay(&[]),
        ["a", "b", "c", "d", "e", "f", "g", "h"],
        "all, in log order, while the server runs"
    );
    assert_eq!(replay(&["--type", "case."]), ["g", "h"]);
    assert_eq!(
        replay(&[
            "--from",
            "2026-11-03T00:00:00Z",
            "--until",
            "2026-11-05T00:00:00Z"
        ]),
        ["c", "d", "e", "f"]
    );
    assert_eq!(
        replay(&["--customer", "c1"]),
        ["a", "b", "c", "d", "e", "f"],
        "merged c2 and its interaction"
    );
    assert_eq!(replay(&["--customer", "c3"]), ["g", "h"]);
    let out = Command::new(BIN)
        .args(["replay", "--from", "last tuesday", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from"));
    // --publishable output is accepted by a ledger as it is.
    let out = Command::new(BIN)
        .arg("replay")
        .arg("--publishable")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert!(first.get("recorded_at").is_none() && first.get("position").is_none());
    let v = crm_events::Validator::new();
    assert!(v.validate(first).is_ok());
}

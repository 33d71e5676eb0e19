//! The benchmark commands' own correctness (never their speed): `bench
//! rebuild --stages` replays into sled exactly the read models that
//! `rebuild` builds, so its store figure is the cost of the real writes.

use crate::support::{post_json, wait_live, Server, BIN};
use serde_json::{json, Value};
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_rebuild_stages_commits_what_a_rebuild_builds() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let mut events = Vec::new();
    // More than one rebuild batch (5,000 events), so that the second batch
    // moves and deletes what the first one wrote.
    for i in 0..1700 {
        let t = |m: u32| format!("2026-11-{:02}T09:{m:02}:00Z", 1 + i % 20);
        events.push(json!({"event_id": format!("b{i}-reg"), "type": "customer.registered", "occurred_at": t(0), "source": "crm",
            "customer_id": format!("c{}", i % 150), "data": {"name": format!("Customer {i}"), "identities": [{"kind": "phone", "value": format!("+4420794600{:02}", i % 100)}]}}));
        events.push(json!({"event_id": format!("b{i}-call"), "type": "interaction.started", "occurred_at": t(5), "source": "pbx",
            "interaction_id": format!("i{i}"), "customer_id": format!("c{}", i % 150), "data": {"channel": "phone", "direction": "inbound"}}));
        events.push(json!({"event_id": format!("b{i}-case"), "type": "case.opened", "occurred_at": t(9), "source": "crm",
            "case_id": format!("k{i}"), "customer_id": format!("c{}", i % 150), "data": {"category": "billing", "origin_interaction_id": format!("i{i}")}}));
    }
    for i in (0..1700).step_by(10) {
        // Re-attributed: its index entries and timeline move (deletes).
        events.push(json!({"event_id": format!("b{i}-id"), "type": "interaction.identified", "occurred_at": format!("2026-11-{:02}T09:07:00Z", 1 + i % 20), "source": "crm",
            "interaction_id": format!("i{i}"), "customer_id": format!("c{}", (i + 1) % 150), "data": {"method": "agent_search"}}));
    }
    for chunk in events.chunks(500) {
        let r: Value = post_json(&client, server.url("/v1/events"), &chunk).await;
        assert_eq!(r["rejected"], 0, "{r}");
    }
    for p in ["customers", "cases", "campaigns"] {
        wait_live(&server, p).await;
    }
    assert!(server.terminate().success());
    let d = dir.path().to_str().unwrap();

    let stdout =
        succeeds(Command::new(BIN).args(["bench", "rebuild", "--data-dir", d, "--stages"]));
    for stage in ["1 read", "2 parse", "3 fold", "4 store"] {
        assert!(stdout.contains(stage), "no stage {stage:?} in:\n{stdout}");
    }
    assert!(
        stdout.contains("stages over 5270 log events"),
        "not every event was read:\n{stdout}"
    );
    assert!(
        stdout.contains("(5270 log events ="),
        "not every batch was committed:\n{stdout}"
    );
    let mut staged: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("digest ").map(str::to_string))
        .collect();

    let mut rebuilt: Vec<String> = succeeds(
        Command::new(BIN)
            .args(["rebuild", "--data-dir", d, "--out"])
            .arg(dir.path().join("rebuilt"))
            .arg("--digest"),
    )
    .lines()
    .map(str::to_string)
    .collect();
    staged.sort();
    rebuilt.sort();
    assert_eq!(staged.len(), 3, "{stdout}");
    assert_eq!(staged, rebuilt);
}

/// `bench ingest` in open loop: every event is sent and accepted once, and
/// the report says what the machine did meanwhile (its disk and any stall),
/// which is how a slow moment of the machine is told from the server's.
#[test]
fn bench_ingest_open_loop_sends_every_event_and_reports_the_machine() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = succeeds(
        Command::new(BIN)
            // The demo history and the server's data dir go there.
            .env("TMPDIR", dir.path())
            .args(["bench", "ingest", "--customers", "600", "--days", "5"])
            .args(["--events", "3000", "--rate", "20000", "--batch", "250"])
            .args(["--clients", "3", "--server-args", "--role ingest"]),
    );
    assert!(
        stdout.contains("ingest: 3000 events in")
            && stdout.contains("(accepted 3000, duplicates 0, rejected 0, failed 0)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("written to disk during the load"),
        "{stdout}"
    );
    assert!(stdout.contains("machine stalls: "), "{stdout}");
    assert!(stdout.contains("disk stalls: "), "{stdout}");
    assert!(
        !stdout.contains("not watched"),
        "the disk probe could not be created:\n{stdout}"
    );
}

/// `bench query`: with either HTTP client every query of the load is
/// answered (the command exits with 1 on any error), and the report says
/// what CPU the server and the load generator used meanwhile.
#[test]
fn bench_query_answers_every_request_with_either_client() {
    for client in ["light", "reqwest"] {
        let dir = tempfile::tempdir().unwrap();
        let stdout = succeeds(
            Command::new(BIN)
                .env("TMPDIR", dir.path())
                .args(["bench", "query", "--customers", "600", "--days", "5"])
                .args(["--store-events", "2000", "--qps", "300", "--seconds", "2"])
                .args([
                    "--ingest-rate",
                    "200",
                    "--batch",
                    "100",
                    "--connections",
                    "4",
                ])
                .args(["--client", client]),
        );
        for line in [
            "GET /v1/customers/{id}: 0 errors",
            "GET /v1/lookup: 0 errors",
            "CPU during the query load: server ",
            "queries: 600 in",
        ] {
            assert!(stdout.contains(line), "{client}: no {line:?} in:\n{stdout}");
        }
    }
}

/// Runs `cmd`, fails the test (with its output) unless it succeeds, and
/// returns its standard output.
fn succeeds(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

//! Every invalid example gets a 4xx or a per-event rejection that names the
//! field, and nothing invalid is appended.

use serde_json::{json, Value};

use crate::support::{log_ids, Server};

fn ok_event(id: &str) -> Value {
    json!({"event_id": id, "type": "interaction.started", "occurred_at": "2026-11-20T09:00:00Z",
           "source": "pbx", "interaction_id": "i-1", "data": {"channel": "phone", "direction": "inbound"}})
}

fn with(id: &str, f: impl FnOnce(&mut Value)) -> Value {
    let mut e = ok_event(id);
    f(&mut e);
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_events_are_rejected_by_name_and_never_appended() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--projections", ""]).await;
    let client = reqwest::Client::new();
    // (event, the path the error must name)
    let cases: Vec<(Value, &str)> = vec![
        (
            with("b1", |e| {
                e.as_object_mut().unwrap().remove("event_id");
            }),
            "/event_id",
        ),
        (
            with("b2", |e| e["type"] = json!("interaction.exploded")),
            "/type",
        ),
        (
            with("b3", |e| e["occurred_at"] = json!("2026-11-20 09:00")),
            "/occurred_at",
        ),
        (
            with("b4", |e| e["occurred_at"] = json!("2026-11-20T09:00:00")),
            "/occurred_at",
        ),
        (
            with("b5", |e| {
                e.as_object_mut().unwrap().remove("source");
            }),
            "/source",
        ),
        (
            with("b6", |e| {
                e.as_object_mut().unwrap().remove("interaction_id");
            }),
            "/interaction_id",
        ),
        (
            with("b7", |e| e["data"]["channel"] = json!("pigeon")),
            "/data/channel",
        ),
        (
            with("b8", |e| {
                e["data"].as_object_mut().unwrap().remove("direction");
            }),
            "/data/direction",
        ),
        (
            with("b9", |e| {
                e["data"]["from"] = json!({"kind": "phone", "value": "555-0100"})
            }),
            "/data/from/value",
        ),
        (
            with("b10", |e| {
                e["data"]["from"] = json!({"kind": "email", "value": "not-an-email"})
            }),
            "/data/from/value",
        ),
        (
            with("b11", |e| {
                e["data"]["from"] = json!({"kind": "fax", "value": "1"})
            }),
            "/data/from/kind",
        ),
        (
            with("b12", |e| e["interacton_id"] = json!("typo")),
            "/interacton_id",
        ),
        (
            with("b13", |e| e["recorded_at"] = json!("2026-11-20T09:00:00Z")),
            "/recorded_at",
        ),
        (with("b14", |e| e["version"] = json!(2)), "/version"),
        (with("b15", |e| e["data"] = json!("text")), "/data"),
        (
            with("b16", |e| e["event_id"] = json!("x".repeat(200))),
            "/event_id",
        ),
        (with("b17", |e| e["source"] = json!("")), "/source"),
        (
            with("b18", |e| e["customer_id"] = json!(42)),
            "/customer_id",
        ),
        (
            json!({"event_id": "b19", "type": "campaign.contact_outcome", "occurred_at": "2026-11-20T09:00:00Z",
                "source": "dialer", "campaign_id": "m", "customer_id": "c", "data": {"outcome": "callback_requested"}}),
            "/data/callback_at",
        ),
        (
            json!({"event_id": "b20", "type": "customer.merged", "occurred_at": "2026-11-20T09:00:00Z",
                "source": "crm", "customer_id": "c", "data": {"merged_customer_id": "c"}}),
            "/data/merged_customer_id",
        ),
        (
            json!({"event_id": "b21", "type": "case.escalated", "occurred_at": "2026-11-20T09:00:00Z",
                "source": "crm", "case_id": "k", "data": {"to_tier": 0}}),
            "/data/to_tier",
        ),
        (json!(["nested array"]), ""),
        (json!(17), ""),
    ];
    let body: Vec<Value> = cases.iter().map(|(e, _)| e.clone()).collect();
    let resp = client
        .post(server.url("/v1/events"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["accepted"], 0);
    assert_eq!(answer["rejected"].as_u64().unwrap() as usize, cases.len());
    assert!(answer["consistency_token"].is_null());
    for ((event, path), result) in cases.iter().zip(answer["results"].as_array().unwrap()) {
        assert_eq!(result["status"], "rejected", "{event}");
        let details = result["error"]["details"].as_array().unwrap();
        assert!(
            details.iter().any(|d| d["path"] == *path),
            "{event}: expected an error at {path:?}, got {details:?}"
        );
    }
    // Bodies that are not JSON at all: 400 with the error body.
    for (ct, body) in [
        ("application/json", "{not json"),
        ("application/json", "hello"),
        ("application/json", ""),
        ("application/json", "[1,"),
    ] {
        let r = client
            .post(server.url("/v1/events"))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body:?}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "bad_request");
    }
    // A conflicting re-use of an event id is rejected and reported.
    let first = client
        .post(server.url("/v1/events"))
        .json(&ok_event("c1"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.json::<Value>().await.unwrap()["accepted"], 1);
    let conflict = with("c1", |e| e["data"]["channel"] = json!("chat"));
    let r: Value = client
        .post(server.url("/v1/events"))
        .json(&conflict)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["results"][0]["status"], "rejected");
    assert_eq!(r["results"][0]["error"]["code"], "conflict");
    assert_eq!(r["results"][0]["error"]["details"][0]["path"], "/event_id");
    drop(server);
    let ids = log_ids(dir.path());
    assert_eq!(
        ids.len(),
        1,
        "only the one valid event was appended: {ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_parameters_are_checked_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--projections", "cases"]).await;
    let client = reqwest::Client::new();
    for (url, status, path) in [
        ("/v1/cases?limit=0", 422, "limit"),
        ("/v1/cases?limit=abc", 400, "limit"),
        ("/v1/cases?statuss=open", 400, "statuss"),
        ("/v1/cases?cursor=forged.0000", 400, "cursor"),
        (
            "/v1/cases?consistent_with=yesterday",
            400,
            "consistent_with",
        ),
        ("/v1/cases?wait_ms=-1", 400, "wait_ms"),
        ("/v1/cases/nope", 404, ""),
    ] {
        let r = client.get(server.url(url)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{url}");
        let e: Value = r.json().await.unwrap();
        assert!(e["error"]["code"].is_string(), "{url}: {e}");
        if !path.is_empty() {
            assert_eq!(e["error"]["details"][0]["path"], path, "{url}: {e}");
        }
    }
    // A position not yet written: 504 after the wait.
    let r = client
        .get(server.url("/v1/cases?consistent_with=0:999&wait_ms=100"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
}

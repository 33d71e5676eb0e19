//! A large publish is validated on several threads (`publish::check_all`);
//! its answer and its appends must still be in input order, with each
//! rejection at its own index and naming its field, exactly as a batch
//! validated on one thread. Through the real router (`oneshot`) over a real
//! embedded log.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use crm_http::{router, AppState, Limits};
use crm_log::embedded::{EmbeddedConfig, EmbeddedLog};
use crm_log::{Checkpoint, Log};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// Event `i` of the batch: valid, or (every 7th, and every 11th) broken in
/// a way only validation can tell, or (every 13th) not JSON at all.
fn line(i: usize) -> (String, Expect) {
    let mut e = json!({
        "event_id": format!("big-{i}"),
        "type": "interaction.message",
        "occurred_at": "2026-11-20T09:30:00Z",
        "source": "chat",
        "interaction_id": format!("i-{}", i % 17),
        "data": {"author": "customer", "text": format!("message {i}")}
    });
    if i % 13 == 5 {
        return (format!("{{not json {i}"), Expect::Unparsable);
    }
    if i % 7 == 3 {
        e.as_object_mut().unwrap().remove("source");
        return (e.to_string(), Expect::Rejected("/source"));
    }
    if i % 11 == 4 {
        e["data"]["author"] = json!("robot");
        return (e.to_string(), Expect::Rejected("/data/author"));
    }
    (e.to_string(), Expect::Accepted)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Accepted,
    Rejected(&'static str),
    Unparsable,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_is_answered_and_appended_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap());
    let app = router(AppState::new(
        Some(log.clone()),
        Vec::new(),
        Limits::default(),
        None,
    ));

    let n = 1000;
    let (lines, expected): (Vec<String>, Vec<Expect>) = (0..n).map(line).unzip();
    let response = app
        .oneshot(
            Request::post("/v1/events")
                .header("content-type", "application/x-ndjson")
                .body(Body::from(lines.join("\n")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), n);

    let mut accepted_ids = Vec::new();
    for (i, (r, want)) in results.iter().zip(&expected).enumerate() {
        match want {
            Expect::Accepted => {
                assert_eq!(r["status"], "accepted", "event {i}: {r}");
                assert_eq!(r["event_id"], format!("big-{i}"), "event {i}");
                accepted_ids.push(format!("big-{i}"));
            }
            Expect::Rejected(field) => {
                assert_eq!(r["status"], "rejected", "event {i}: {r}");
                assert_eq!(r["event_id"], format!("big-{i}"), "event {i}");
                let fields: Vec<&str> = r["error"]["details"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["path"].as_str().unwrap())
                    .collect();
                assert!(
                    fields.contains(field),
                    "event {i}: {fields:?}, want {field}"
                );
            }
            Expect::Unparsable => {
                assert_eq!(r["status"], "rejected", "event {i}: {r}");
                assert_eq!(r["event_id"], Value::Null, "event {i}");
            }
        }
    }
    assert_eq!(body["accepted"], accepted_ids.len());
    assert_eq!(body["rejected"], n - accepted_ids.len());

    // The log holds exactly the accepted events, in input order.
    let mut reader = log.reader(&Checkpoint::default()).await.unwrap();
    let mut stored = Vec::new();
    while stored.len() < accepted_ids.len() {
        let batch = reader
            .next_batch(10_000, Duration::from_millis(200))
            .await
            .unwrap();
        assert!(!batch.is_empty(), "the log holds {} events", stored.len());
        stored.extend(batch.into_iter().map(|r| r.event_id));
    }
    assert_eq!(stored, accepted_ids);
}

//! A read-model store that fails (sled after an I/O error) is reopened by
//! the projector; meanwhile queries answer 503 `read_model_unavailable`
//! with Retry-After, never a wrong answer or a bare 500.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use crm_http::auth::Security;
use crm_http::{router_with, AppState, Limits};
use crm_log::embedded::{EmbeddedConfig, EmbeddedLog};
use crm_log::Log;
use crm_projector::{Projector, RunnerConfig, Store};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn call(router: &Router, req: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        retry,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn publish(id: &str, name: &str) -> Request<Body> {
    let e = json!({"event_id": id, "type": "customer.registered", "occurred_at": "2026-11-20T09:30:00Z",
                   "source": "test", "customer_id": format!("cust-{id}"), "data": {"name": name}});
    Request::post("/v1/events")
        .header("content-type", "application/json")
        .body(Body::from(e.to_string()))
        .unwrap()
}

/// Polls `path` until its status is `want`.
async fn wait_status(router: &Router, path: &str, want: StatusCode) -> (Option<String>, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, retry, body) = call(router, get(path)).await;
        if status == want {
            return (retry, body);
        }
        assert!(
            Instant::now() < deadline,
            "{path}: still {status} {body}, waited for {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_503_while_the_store_is_reopened_then_200() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap());
    let store = Store::open(&dir.path().join("store"), 8 << 20).unwrap();
    let projector = Projector::start(
        &store,
        log.clone(),
        vec![Arc::new(crm_customers::CustomersProjection)],
        RunnerConfig::default(),
    )
    .unwrap();
    let state = AppState::new(
        Some(log),
        projector.handles.clone(),
        Limits::default(),
        None,
    );
    let router = router_with(state, Security::open());

    let (status, _, body) = call(&router, publish("a", "Ana")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_status(&router, "/v1/customers/cust-a", StatusCode::OK).await;

    // Every commit fails from now on, as after sled met a full disk; a
    // reader still holds the old tree, so the reopen waits for it (as it
    // waits for a full disk to get room): queries meanwhile answer 503.
    let held = projector.handles[0].kv();
    store.inject_commit_failures(u32::MAX);
    let (status, _, body) = call(&router, publish("b", "Bo")).await;
    assert_eq!(status, StatusCode::OK, "the log still takes events: {body}");
    let (retry, body) = wait_status(
        &router,
        "/v1/customers/cust-a",
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(body["error"]["code"], "read_model_unavailable", "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    let (status, _, body) = call(&router, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // The cause goes away: the next reopen sticks and both events are there.
    store.inject_commit_failures(0);
    drop(held);
    let (_, body) = wait_status(&router, "/v1/customers/cust-b", StatusCode::OK).await;
    assert_eq!(body["name"], "Bo", "{body}");
    let (status, _, body) = call(&router, get("/v1/customers/cust-a")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_status(&router, "/readyz", StatusCode::OK).await;
    projector.stop().await;
}

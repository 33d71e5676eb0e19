//! A whole `POST /v1/events` through the router: body splitting (object,
//! array, NDJSON), limits, validation, the answer. The log is an in-memory
//! stand-in that accepts everything, so the fuzzer measures the ingest path
//! and not fsync. First byte: the content type; the rest: the body.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::Request;
use crm_http::{router, AppState, Limits};
use crm_log::{Append, AppendOutcome, Checkpoint, Log, LogError, LogReader, LogRecord, Position};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[derive(Default)]
struct MemLog(AtomicU64);

struct NoReader;

#[async_trait]
impl LogReader for NoReader {
    async fn next_batch(&mut self, _: usize, _: Duration) -> Result<Vec<LogRecord>, LogError> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl Log for MemLog {
    fn backend(&self) -> &'static str {
        "memory"
    }
    async fn append(&self, batch: Vec<Append>) -> Result<Vec<AppendOutcome>, LogError> {
        Ok(batch
            .iter()
            .map(|_| {
                AppendOutcome::Appended(Position {
                    partition: 0,
                    offset: self.0.fetch_add(1, Ordering::Relaxed),
                })
            })
            .collect())
    }
    fn deduplicates(&self) -> bool {
        false
    }
    async fn reader(&self, _: &Checkpoint) -> Result<Box<dyn LogReader>, LogError> {
        Ok(Box::new(NoReader))
    }
    async fn end(&self) -> Result<Checkpoint, LogError> {
        Ok(Checkpoint::default())
    }
    async fn health(&self) -> Result<(), LogError> {
        Ok(())
    }
}

struct Harness {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

const CONTENT_TYPES: [Option<&str>; 4] = [
    None,
    Some("application/json"),
    Some("application/x-ndjson"),
    Some("text/plain"),
];

fuzz_target!(|data: &[u8]| {
    let h = HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let limits = Limits {
            max_request_bytes: 64 * 1024,
            max_event_bytes: 16 * 1024,
            max_batch_events: 100,
        };
        let log: Arc<dyn Log> = Arc::new(MemLog::default());
        let router = router(AppState::new(Some(log), Vec::new(), limits, None));
        Harness { rt, router }
    });
    let Some((&ct, body)) = data.split_first() else {
        return;
    };
    let mut req = Request::post("/v1/events");
    if let Some(ct) = CONTENT_TYPES[ct as usize % CONTENT_TYPES.len()] {
        req = req.header("content-type", ct);
    }
    let req = req.body(Body::from(body.to_vec())).unwrap();
    let (status, bytes) = h.rt.block_on(async {
        let resp = h.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    });
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("the answer is JSON");
    match status.as_u16() {
        200 => {
            let results = v["results"].as_array().expect("results");
            for r in results {
                match r["status"].as_str() {
                    Some("accepted") | Some("duplicate") => assert!(r["position"].is_string()),
                    Some("rejected") => {
                        assert!(r["error"]["code"].is_string());
                        assert!(r["error"]["details"]
                            .as_array()
                            .is_some_and(|d| !d.is_empty()));
                    }
                    other => panic!("unknown result status {other:?}"),
                }
            }
        }
        400 | 413 => assert!(v["error"]["code"].is_string()),
        s => panic!("status {s}: {v}"),
    }
});

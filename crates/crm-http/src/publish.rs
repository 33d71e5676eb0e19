//! `POST /v1/events`: one event, a JSON array of events, or NDJSON.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;
use crm_events::FieldError;
use crm_log::{Append, AppendOutcome, Token};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::error::{ApiError, Detail, ErrorInfo};
use crate::AppState;

/// The answer to a publish.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishResponse {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// One per input event, in input order.
    pub results: Vec<EventResult>,
    /// Hand to any query as `?consistent_with=` to read your writes; null
    /// when nothing was accepted or duplicate.
    pub consistency_token: Option<String>,
}

/// What happened to one event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventResult {
    /// Null when the input had no string `event_id`.
    pub event_id: Option<String>,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: &'static str,
    /// Where the event is in the log (`partition:offset`), also a valid
    /// consistency token; for a duplicate, where the original is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// One event of the body, before validation.
enum Input<'a> {
    Raw(&'a str),
    /// A line or element that is not JSON at all.
    Unparsable(String),
}

fn is_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let ct = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            ct == "application/x-ndjson" || ct == "application/ndjson" || ct == "application/jsonl"
        })
        .unwrap_or(false)
}

/// Splits the body into events. `Err` when it is not JSON/NDJSON at all.
fn split(body: &str, ndjson: bool) -> Result<Vec<Input<'_>>, ApiError> {
    if ndjson {
        let mut out = Vec::new();
        for (i, line) in body.split('\n').enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<&RawValue>(line) {
                Ok(raw) => out.push(Input::Raw(raw.get())),
                Err(e) => out.push(Input::Unparsable(format!(
                    "line {} is not JSON: {e}",
                    i + 1
                ))),
            }
        }
        return Ok(out);
    }
    let trimmed = body.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the body is not a JSON array of events: {e}"),
            )
        })?;
        Ok(items.into_iter().map(|r| Input::Raw(r.get())).collect())
    } else if trimmed.starts_with('{') {
        let raw: &RawValue = serde_json::from_str(body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the body is not a JSON event (for NDJSON send Content-Type: application/x-ndjson): {e}"),
            )
        })?;
        Ok(vec![Input::Raw(raw.get())])
    } else if trimmed.is_empty() {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body is empty: send an event, an array of events, or NDJSON",
        ))
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body is not JSON: send an event object, an array of events, or NDJSON with Content-Type: application/x-ndjson",
        ))
    }
}

fn event_id_of(raw: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        event_id: Option<serde_json::Value>,
    }
    serde_json::from_str::<IdOnly>(raw)
        .ok()
        .and_then(|v| v.event_id)
        .and_then(|v| v.as_str().map(str::to_string))
}

fn rejection(code: &str, message: String, details: Vec<FieldError>) -> ErrorInfo {
    ErrorInfo {
        code: code.into(),
        message,
        details: details.into_iter().map(Detail::from).collect(),
    }
}

fn summarize(errors: &[FieldError]) -> String {
    let first: Vec<String> = errors.iter().take(3).map(|e| e.to_string()).collect();
    let more = errors.len().saturating_sub(3);
    if more > 0 {
        format!("{} (and {more} more)", first.join("; "))
    } else {
        first.join("; ")
    }
}

/// Publishes in progress at once: twice the cores, at least 4.
fn publish_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new((cores * 2).max(4))
    })
}

/// What became of one input: its append (the event encoded, with its id),
/// or its rejection.
type Checked = Result<(Append, String), ErrorInfo>;

/// Validates and encodes one input.
fn check(state: &AppState, input: &Input<'_>, now: chrono::DateTime<Utc>) -> Checked {
    match input {
        Input::Unparsable(why) => Err(rejection(
            "validation",
            why.clone(),
            vec![FieldError::new("", why.clone())],
        )),
        Input::Raw(raw) => match state.validator.validate_json(raw.as_bytes()) {
            Ok(mut e) => {
                e.recorded_at = Some(now);
                // The stored JSON and its content hash in one serialisation.
                let (payload, content_hash) = e.encode();
                let append = Append {
                    stream_key: e.stream_key(),
                    content_hash,
                    event_type: e.event_type().as_str().to_string(),
                    version: e.version,
                    payload,
                    event_id: e.event_id.clone(),
                };
                Ok((append, e.event_id))
            }
            Err(errors) => Err(rejection("validation", summarize(&errors), errors)),
        },
    }
}

/// Inputs below this count are checked on the calling thread: splitting
/// them would cost more than it saves.
const PARALLEL_FROM: usize = 64;

/// The threads that validate and encode the events of large publishes: one
/// per core. A request of 1,000 events is about 5-6 ms of CPU on one core
/// (docs/performance.md); split across the cores it is answered in about
/// half that when the machine is not saturated. The pool is shared by all
/// publishes, so validation never takes more than the machine's cores, and
/// a request's pieces are finished before the next request's are started
/// (rayon's workers drain their own queues before taking new work).
fn validation_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(cores)
            .thread_name(|i| format!("validate-{i}"))
            .build()
            .expect("the validation threads start")
    })
}

/// Validates and encodes every input, in input order: on the validation
/// threads for a large batch, on the calling thread for a small one.
fn check_all(state: &AppState, inputs: &[Input<'_>]) -> Vec<Checked> {
    let now = Utc::now();
    if inputs.len() < PARALLEL_FROM {
        return inputs.iter().map(|i| check(state, i, now)).collect();
    }
    use rayon::prelude::*;
    validation_pool().install(|| {
        inputs
            .par_iter()
            .with_min_len(PARALLEL_FROM / 2)
            .map(|i| check(state, i, now))
            .collect()
    })
}

/// A body, split, validated and encoded: per input in order its event id
/// (`Ok`) or its rejection, and the appends of the valid ones in order.
struct Prepared {
    rows: Vec<Result<String, (Option<String>, ErrorInfo)>>,
    appends: Vec<Append>,
}

fn prepare(state: &AppState, bytes: &[u8], ndjson: bool) -> Result<Prepared, ApiError> {
    let limits = &state.limits;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body is not UTF-8: {e}"),
        )
    })?;
    let inputs = split(text, ndjson)?;
    if inputs.len() > limits.max_batch_events {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "{} events in one request; at most {} are taken",
                inputs.len(),
                limits.max_batch_events
            ),
        ));
    }
    for (i, input) in inputs.iter().enumerate() {
        if let Input::Raw(raw) = input {
            if raw.len() > limits.max_event_bytes {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!(
                        "event {i} is {} bytes; an event may be at most {} bytes",
                        raw.len(),
                        limits.max_event_bytes
                    ),
                )
                .with_detail(&format!("/{i}"), "too large"));
            }
        }
    }
    let checked = check_all(state, &inputs);
    let mut appends = Vec::with_capacity(checked.len());
    let mut rows = Vec::with_capacity(checked.len());
    for (input, c) in inputs.iter().zip(checked) {
        match c {
            Ok((append, event_id)) => {
                appends.push(append);
                rows.push(Ok(event_id));
            }
            Err(error) => {
                let event_id = match input {
                    Input::Raw(raw) => event_id_of(raw),
                    Input::Unparsable(_) => None,
                };
                rows.push(Err((event_id, error)));
            }
        }
    }
    Ok(Prepared { rows, appends })
}

#[utoipa::path(
    post, path = "/v1/events", tag = "publish",
    request_body(content = Object, description = "One event, a JSON array of events, or NDJSON (Content-Type: application/x-ndjson), per events.md.",
        content_type = "application/json"),
    responses(
        (status = 200, description = "The body was read; each result says what happened to its event.", body = PublishResponse),
        (status = 400, description = "The body is not JSON/NDJSON at all.", body = crate::error::ErrorBody),
        (status = 413, description = "Past the size limits (request, event, batch length).", body = crate::error::ErrorBody),
        (status = 503, description = "The log cannot take writes now; nothing was acknowledged. Retry-After says when to retry.", body = crate::error::ErrorBody),
        (status = 507, description = "The log's disk is full; nothing was acknowledged.", body = crate::error::ErrorBody),
    )
)]
pub async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PublishResponse>, ApiError> {
    let started = std::time::Instant::now();
    if !state.publishes {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_served",
            "this process does not take publishes (see --role): send events to an ingest process",
        ));
    }
    let Some(log) = state.log.clone() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "read_only",
            "this server is read-only: publish is refused",
        ));
    };
    // The projections of this process make room while publishes are
    // answered, waiting ones included (crm_projector::lanes).
    let _publishing = state.ingest_activity.as_ref().map(|a| a.begin());
    // Only a few publishes are read, validated and appended at once: the
    // work is CPU-bound, and more in flight would only hold more bodies and
    // events in memory. The others wait here with their bodies still in the
    // sockets, so an overload makes latency grow, not memory.
    let _permit = publish_permits()
        .acquire()
        .await
        .map_err(|_| ApiError::internal("publish permits closed"))?;
    let limits = &state.limits;
    let bytes: Bytes = axum::body::to_bytes(body, limits.max_request_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the request body is larger than {} bytes; split it into smaller batches",
                    limits.max_request_bytes
                ),
            )
        })?;
    // Splitting, validation and encoding are CPU work: off the async
    // workers unless the body is small. The body moves in whole (no copy of
    // each event).
    let ndjson = is_ndjson(&headers);
    let Prepared { rows, appends } = if bytes.len() > 16 * 1024 {
        let st = state.clone();
        tokio::task::spawn_blocking(move || prepare(&st, &bytes, ndjson))
            .await
            .map_err(|e| ApiError::internal(format!("validation task failed: {e}")))??
    } else {
        prepare(&state, &bytes, ndjson)?
    };

    let outcomes = if appends.is_empty() {
        Vec::new()
    } else {
        log.append(appends).await?
    };

    let mut outcomes = outcomes.into_iter();
    let mut token = Token::default();
    let (mut accepted, mut duplicates, mut rejected) = (0, 0, 0);
    let mut results = Vec::with_capacity(rows.len());
    for row in rows {
        let result = match row {
            Err((event_id, error)) => {
                rejected += 1;
                EventResult {
                    event_id,
                    status: "rejected",
                    position: None,
                    error: Some(error),
                }
            }
            Ok(event_id) => match outcomes.next().expect("one outcome per append") {
                AppendOutcome::Appended(p) => {
                    accepted += 1;
                    token.include(p);
                    EventResult {
                        event_id: Some(event_id),
                        status: "accepted",
                        position: Some(p.to_string()),
                        error: None,
                    }
                }
                AppendOutcome::Duplicate(p) => {
                    duplicates += 1;
                    token.include(p);
                    EventResult {
                        event_id: Some(event_id),
                        status: "duplicate",
                        position: Some(p.to_string()),
                        error: None,
                    }
                }
                AppendOutcome::Conflict(p) => {
                    rejected += 1;
                    metrics::counter!("crm_publish_conflicts_total").increment(1);
                    tracing::warn!(event_id = %event_id, original = %p, "event_id re-used with different content: rejected");
                    let msg = format!("event_id {:?} was already published with different content (at {p}); event ids are unique forever", event_id);
                    EventResult {
                        event_id: Some(event_id.clone()),
                        status: "rejected",
                        position: None,
                        error: Some(rejection(
                            "conflict",
                            msg.clone(),
                            vec![FieldError::new("/event_id", msg)],
                        )),
                    }
                }
            },
        };
        results.push(result);
    }
    metrics::counter!("crm_events_accepted_total").increment(accepted as u64);
    metrics::counter!("crm_events_duplicate_total").increment(duplicates as u64);
    metrics::counter!("crm_events_rejected_total").increment(rejected as u64);
    metrics::histogram!("crm_publish_seconds").record(started.elapsed().as_secs_f64());
    Ok(Json(PublishResponse {
        accepted,
        duplicates,
        rejected,
        results,
        consistency_token: (!token.is_empty()).then(|| token.to_string()),
    }))
}

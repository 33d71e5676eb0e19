//! Operations routes: projections, dead letters, health, readiness, metrics.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crm_log::Token;
use crm_projection::query::{decode_cursor, encode_cursor, limit, Page};
use crm_projection::{DeadLetter, KvRead, DEAD_LETTER_PREFIX};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::params::Params;
use crate::AppState;

/// One projection's progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionInfo {
    pub name: String,
    /// `live`, `rebuilding` or `failed`.
    pub status: String,
    /// The last applied position per partition, as a consistency token
    /// (null before the first event).
    pub position: Option<String>,
    /// Events in the log not yet applied.
    pub lag: Option<u64>,
    pub last_event_at: Option<String>,
    pub events_applied: u64,
    /// 0..1 while rebuilding.
    pub rebuild_progress: Option<f64>,
    /// Why it failed, when it did (it retries by itself).
    pub error: Option<String>,
}

fn applied_token(cp: &crm_log::Checkpoint) -> Option<String> {
    let mut t = Token::default();
    for (p, next) in &cp.0 {
        if *next > 0 {
            t.0.insert(*p, next - 1);
        }
    }
    (!t.is_empty()).then(|| t.to_string())
}

#[utoipa::path(get, path = "/v1/projections", tag = "operations",
    responses((status = 200, body = [ProjectionInfo])))]
pub async fn projections(State(state): State<AppState>) -> Json<Vec<ProjectionInfo>> {
    let end = match &state.log {
        Some(log) => log.end().await.ok(),
        None => None,
    };
    Json(
        state
            .projections
            .iter()
            .map(|h| {
                let s = h.status();
                let lag = end.as_ref().map(|e| s.checkpoint.lag_behind(e));
                metrics::gauge!("crm_projection_lag_events", "projection" => h.name())
                    .set(lag.unwrap_or(0) as f64);
                ProjectionInfo {
                    name: s.name,
                    status: serde_json::to_value(&s.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    position: applied_token(&s.checkpoint),
                    lag,
                    last_event_at: s.last_event_at,
                    events_applied: s.events_applied,
                    rebuild_progress: s.rebuild_progress,
                    error: s.error,
                }
            })
            .collect(),
    )
}

/// A dead letter, with the projection that could not apply it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterItem {
    pub projection: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: String,
    pub error: String,
    /// True while the projection still expects to apply it (e.g. waiting for
    /// the `case.opened` of its case).
    pub parked: bool,
}

#[utoipa::path(get, path = "/v1/dead-letters", tag = "operations",
    params(("projection" = Option<String>, Query, description = "only this projection"),
           ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "Page of dead letters", body = Object),
              (status = 400, body = crate::error::ErrorBody)))]
pub async fn dead_letters(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Page<DeadLetterItem>>, ApiError> {
    let p = Params::new(
        &q,
        &[
            "projection",
            "limit",
            "cursor",
            "consistent_with",
            "wait_ms",
        ],
    )?;
    let limit = limit(p.usize("limit")?)?;
    let only = p.str("projection");
    if let Some(name) = only {
        if !state.projections.iter().any(|h| h.name() == name) {
            return Err(ApiError::invalid_param(
                "projection",
                format!("no projection named {name:?}"),
            ));
        }
    }
    let handles: Vec<_> = state
        .projections
        .iter()
        .filter(|h| only.is_none_or(|n| n == h.name()))
        .cloned()
        .collect();
    crate::consistency::wait(&state, &p, &handles).await?;
    // Position: projection index, then key within its dead letters.
    let (mut start_idx, mut after): (usize, Option<Vec<u8>>) = (0, None);
    if let Some(c) = p.str("cursor") {
        let raw = decode_cursor("dead-letters", c)?;
        let (idx, key) = raw
            .split_first()
            .ok_or_else(|| ApiError::bad_param("cursor", "is not a cursor this list handed out"))?;
        start_idx = *idx as usize;
        after = Some(key.to_vec());
    }
    // Read one more than asked: if it exists, there is a next page.
    let mut items: Vec<(usize, Vec<u8>, DeadLetterItem)> = Vec::new();
    for (idx, h) in handles.iter().enumerate().skip(start_idx) {
        let after_key = if idx == start_idx {
            after.clone()
        } else {
            None
        };
        for (k, v) in h.kv().scan(
            DEAD_LETTER_PREFIX,
            after_key.as_deref(),
            limit + 1 - items.len(),
        )? {
            let dl: DeadLetter =
                serde_json::from_slice(&v).map_err(|e| ApiError::internal(e.to_string()))?;
            items.push((
                idx,
                k,
                DeadLetterItem {
                    projection: h.name().to_string(),
                    event_id: dl.event_id,
                    event_type: dl.event_type,
                    occurred_at: dl.occurred_at,
                    error: dl.error,
                    parked: dl.parked,
                },
            ));
        }
        if items.len() > limit {
            break;
        }
    }
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        let (idx, k, _) = items.last().expect("limit >= 1");
        let mut pos = vec![*idx as u8];
        pos.extend_from_slice(k);
        Some(encode_cursor("dead-letters", &pos))
    } else {
        None
    };
    Ok(Json(Page {
        items: items.into_iter().map(|(_, _, i)| i).collect(),
        next_cursor,
    }))
}

#[utoipa::path(post, path = "/v1/projections/{name}/rebuild", tag = "operations",
    params(("name" = String, Path, description = "customers, cases or campaigns")),
    responses((status = 202, description = "Rebuilding beside the live copy; GET /v1/projections shows progress"),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 503, description = "The read-model store is being reopened", body = crate::error::ErrorBody)))]
pub async fn rebuild(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Some(projector) = &state.projector else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "read_only",
            "this server runs no projectors: nothing to rebuild",
        ));
    };
    match projector.rebuild(&name) {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            Json(
                serde_json::json!({"name": name, "status": "rebuilding", "progress": "/v1/projections"}),
            ),
        )),
        Err(e @ crm_projector::RebuildError::Unknown(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            e.to_string(),
        )),
        Err(e @ crm_projector::RebuildError::AlreadyRebuilding(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            e.to_string(),
        )),
        Err(e @ crm_projector::RebuildError::Recovering) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "read_model_unavailable",
            e.to_string(),
        )
        .with_retry_after(1)),
    }
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Log reachable, projections loaded. `store_check` (with projections) says whether the read models' store was read whole since it was opened: `pending`, `running` (`entries`), `done` (`entries`, `ms`) or `failed` (`error`; the store is then reopened, and moved aside and rebuilt from the log if the damage is still there)"), (status = 503, body = crate::error::ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if let Some(log) = &state.log {
        log.health().await.map_err(ApiError::from)?;
    }
    let failed: Vec<String> = state
        .projections
        .iter()
        .filter(|h| h.status().status == crm_projector::State::Failed)
        .map(|h| h.name().to_string())
        .collect();
    if !failed.is_empty() {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("projections failing: {}", failed.join(", ")),
        );
        e.retry_after = Some(1);
        return Err(e);
    }
    let mut body = serde_json::json!({
        "status": "ready",
        "log": state.log.as_ref().map(|l| l.backend()).unwrap_or("none (read-only)"),
        "projections": state.projections.iter().map(|h| h.name()).collect::<Vec<_>>(),
    });
    // Whether the read models' store was read whole since it was opened
    // (in the background after a start; crm_projector::store).
    if let Some(p) = state
        .projector
        .as_ref()
        .filter(|_| !state.projections.is_empty())
    {
        body["store_check"] = serde_json::to_value(p.store_check()).unwrap_or_default();
    }
    Ok(Json(body))
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Refresh the lag gauges before rendering.
    let _ = projections(State(state.clone())).await;
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

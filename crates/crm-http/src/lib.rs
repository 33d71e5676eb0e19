//! # crm-http
//!
//! The HTTP API of crm-ledger (`shared/spec/api.md`): `POST /v1/events`
//! appends to the log; the query routes read the projections' sled trees;
//! the operations routes report progress, dead letters, health, readiness,
//! metrics and the OpenAPI description. Every error is an [`error::ApiError`]
//! rendered as the contract's error body.
//!
//! The router is built from an [`AppState`]; the binary serves it with
//! graceful shutdown, tests drive it with `tower::ServiceExt::oneshot` or over
//! a real socket.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use crm_events::Validator;
use crm_log::Log;
use crm_projector::Handle;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub mod auth;
pub mod consistency;
pub mod error;
pub mod openapi;
pub mod ops;
pub mod params;
pub mod publish;
pub mod queries;

/// Size limits of publish (api.md; 413 past them).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body: 16 MiB by default.
    pub max_request_bytes: usize,
    /// Largest single event: 256 KiB by default.
    pub max_event_bytes: usize,
    /// Most events in one request.
    pub max_batch_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 16 * 1024 * 1024,
            max_event_bytes: 256 * 1024,
            max_batch_events: 10_000,
        }
    }
}

/// Everything a request may need.
pub struct Inner {
    /// `None` for a read-only server (`serve --read-only`): publish refused.
    pub log: Option<Arc<dyn Log>>,
    pub validator: Validator,
    pub projections: Vec<Arc<Handle>>,
    pub limits: Limits,
    pub metrics: Option<PrometheusHandle>,
    /// The clock queries use for "now" (expiry, overdue callbacks, SLA).
    pub clock: fn() -> DateTime<Utc>,
    /// The running projectors, for online rebuilds (`None` when read-only).
    pub projector: Option<Arc<crm_projector::Projector>>,
    /// Whether this process takes publishes (`--role ingest|all`).
    pub publishes: bool,
    /// Whether this process answers query routes (`--role query|all`).
    pub queries: bool,
    /// Told of every publish, so that the projections of this process make
    /// room for it (see [`crm_projector::lanes`]).
    pub ingest_activity: Option<Arc<crm_projector::IngestActivity>>,
}

/// Shared state of the router.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        log: Option<Arc<dyn Log>>,
        projections: Vec<Arc<Handle>>,
        limits: Limits,
        metrics: Option<PrometheusHandle>,
    ) -> Self {
        AppState(Arc::new(Inner {
            log,
            validator: Validator::new(),
            projections,
            limits,
            metrics,
            clock: Utc::now,
            projector: None,
            publishes: true,
            queries: true,
            ingest_activity: None,
        }))
    }

    /// Which parts of the API this process serves (`serve --role`): a
    /// process that does not publish answers publish with 404 `not_served`,
    /// one that does not query answers the query routes so.
    pub fn with_roles(mut self, publishes: bool, queries: bool) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("set the roles before sharing the state");
        inner.publishes = publishes;
        inner.queries = queries;
        self
    }

    /// Tells `activity` of every publish (the projections' lanes).
    pub fn with_ingest_activity(mut self, activity: Arc<crm_projector::IngestActivity>) -> Self {
        Arc::get_mut(&mut self.0)
            .expect("set the ingest activity before sharing the state")
            .ingest_activity = Some(activity);
        self
    }

    /// Lets `POST /v1/projections/{name}/rebuild` reach the projectors.
    pub fn with_projector(mut self, projector: Arc<crm_projector::Projector>) -> Self {
        Arc::get_mut(&mut self.0)
            .expect("set the projector before sharing the state")
            .projector = Some(projector);
        self
    }

    /// The handle of a projection this server runs.
    pub fn handle(&self, name: &str) -> Option<&Arc<Handle>> {
        self.projections.iter().find(|h| h.name() == name)
    }
}

async fn not_found() -> impl IntoResponse {
    error::ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; see /openapi.json",
    )
}

/// The whole API, without authentication or rate limits (tests; a
/// loopback-only server uses [`router_with`] and [`auth::Security::open`]).
pub fn router(state: AppState) -> Router {
    router_with(state, auth::Security::open())
}

/// The whole API behind [`auth`]: API keys and roles, rate limits. They run
/// before routing, so 401/403/429 never depend on whether an id exists.
pub fn router_with(state: AppState, security: auth::Security) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/v1/events", post(publish::publish))
        .route("/v1/projections", get(ops::projections))
        .route("/v1/projections/{name}/rebuild", post(ops::rebuild))
        .route("/v1/dead-letters", get(ops::dead_letters))
        .merge(queries::routes())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(security),
            auth::middleware,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            error::ApiError::internal("the server failed to answer this request").into_response()
        }))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id, key = tracing::field::Empty)
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// How long graceful shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

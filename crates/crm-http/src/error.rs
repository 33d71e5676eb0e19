//! One error type for every route, rendered as the contract's error body:
//! `{"error": {"code": "...", "message": "...", "details": [...]}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crm_events::FieldError;
use crm_log::LogError;
use crm_projection::query::QueryError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorInfo {
    /// Machine-readable: `validation`, `conflict`, `bad_request`, `not_found`,
    /// `payload_too_large`, `log_unavailable`, `insufficient_storage`,
    /// `timeout`, `read_only`, `internal`.
    pub code: String,
    pub message: String,
    /// Per-field problems, each with the JSON pointer or parameter it is about.
    pub details: Vec<Detail>,
}

/// One problem with one field or parameter.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Detail {
    /// JSON pointer into the event (`/data/channel`) or the name of a query
    /// parameter (`cursor`).
    pub path: String,
    pub message: String,
}

impl From<FieldError> for Detail {
    fn from(e: FieldError) -> Self {
        Detail {
            path: e.path,
            message: e.message,
        }
    }
}

/// An error answer: a status, the body, and maybe `Retry-After`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub info: ErrorInfo,
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            info: ErrorInfo {
                code: code.into(),
                message: message.into(),
                details: Vec::new(),
            },
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn with_detail(mut self, path: &str, message: impl Into<String>) -> Self {
        self.info.details.push(Detail {
            path: path.into(),
            message: message.into(),
        });
        self
    }

    /// 400 about one query parameter.
    pub fn bad_param(param: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{param}: {message}"),
        )
        .with_detail(param, message)
    }

    /// 422 about one query parameter.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            format!("{param}: {message}"),
        )
        .with_detail(param, message)
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} {id:?}"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::BadRequest { param, message } => ApiError::bad_param(&param, message),
            QueryError::Invalid { param, message } => ApiError::invalid_param(&param, message),
            QueryError::Store(e) if e.is_unavailable() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "read_model_unavailable",
                e.0,
            )
            .with_retry_after(1),
            QueryError::Store(e) => {
                tracing::error!(error = %e, "read model could not be read");
                ApiError::internal("the read model could not be read")
            }
        }
    }
}

impl From<crm_projection::StoreError> for ApiError {
    fn from(e: crm_projection::StoreError) -> Self {
        QueryError::Store(e).into()
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Full(m) => {
                let mut err = ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    format!("the log's disk is full; nothing of this request was appended: {m}"),
                );
                err.retry_after = Some(30);
                err
            }
            other => {
                let mut err = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "log_unavailable",
                    format!("{other}; nothing of this request was acknowledged, retry later"),
                );
                err.retry_after = Some(1);
                err
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(ErrorBody { error: self.info })).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&secs.to_string()).expect("digits"),
            );
        }
        resp
    }
}

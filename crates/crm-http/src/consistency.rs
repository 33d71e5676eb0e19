//! `?consistent_with=TOKEN&wait_ms=N` on every query route: wait until every
//! read model the route reads has applied the token, or answer 504.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use crm_log::Token;
use crm_projector::Handle;

use crate::error::ApiError;
use crate::params::Params;
use crate::AppState;

/// Default and largest wait (api.md: default 5000 ms).
const DEFAULT_WAIT_MS: u64 = 5000;
const MAX_WAIT_MS: u64 = 60_000;

/// The names every query route takes besides its own.
pub const PARAMS: [&str; 2] = ["consistent_with", "wait_ms"];

/// Waits for the token of `p`, if any, on `handles`.
pub async fn wait(
    _state: &AppState,
    p: &Params<'_>,
    handles: &[Arc<Handle>],
) -> Result<(), ApiError> {
    let wait_ms = match p.usize("wait_ms")? {
        None => DEFAULT_WAIT_MS,
        Some(ms) if ms as u64 <= MAX_WAIT_MS => ms as u64,
        Some(ms) => {
            return Err(ApiError::invalid_param(
                "wait_ms",
                format!("{ms} is more than the largest wait, {MAX_WAIT_MS}"),
            ))
        }
    };
    let Some(raw) = p.str("consistent_with") else {
        return Ok(());
    };
    let token: Token = raw.parse().map_err(|e| {
        ApiError::bad_param(
            "consistent_with",
            format!("is not a consistency token: {e}"),
        )
    })?;
    if crm_projector::wait_for(handles, &token, Duration::from_millis(wait_ms)).await {
        Ok(())
    } else {
        let behind: Vec<&str> = handles
            .iter()
            .filter(|h| !h.applied().borrow().covers(&token))
            .map(|h| h.name())
            .collect();
        Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "read models not caught up with {raw} within {wait_ms} ms: {}",
                behind.join(", ")
            ),
        ))
    }
}

//! Query routes over the read models. Each route names the projections it
//! reads, honours `?consistent_with=&wait_ms=`, and refuses unknown
//! parameters.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use crm_projection::query::Page;
use crm_projector::Handle;

use crate::consistency;
use crate::error::ApiError;
use crate::params::Params;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/customers/{id}", get(customer))
        .route("/v1/customers/{id}/timeline", get(timeline))
        .route("/v1/lookup", get(lookup))
        .route("/v1/interactions", get(interactions))
        .route("/v1/interactions/{id}", get(interaction))
        .route("/v1/cases", get(cases_list))
        .route("/v1/cases/{id}", get(case))
        .route("/v1/campaigns/{id}", get(campaign))
        .route("/v1/campaigns/{id}/contacts", get(campaign_contacts))
        .route(
            "/v1/campaigns/{id}/contacts/{customer_id}",
            get(campaign_contact),
        )
        .route("/v1/campaigns/{id}/violations", get(campaign_violations))
}

/// Checks the parameters (the route's own plus the consistency ones), finds
/// the projection and waits for the token if one was given.
async fn prepare<'a>(
    state: &AppState,
    q: &'a HashMap<String, String>,
    own: &[&str],
    projection: &str,
) -> Result<(Params<'a>, Arc<Handle>), ApiError> {
    let mut allowed: Vec<&str> = own.to_vec();
    allowed.extend(consistency::PARAMS);
    let p = Params::new(q, &allowed)?;
    if !state.queries {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_served",
            "this process does not answer queries (see --role): ask a query process",
        ));
    }
    let h = state.handle(projection).cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_served",
            format!("this server does not run the {projection} read model (see --projections and --role)"),
        )
    })?;
    consistency::wait(state, &p, std::slice::from_ref(&h)).await?;
    Ok((p, h))
}

fn owned(p: &Params<'_>, name: &str) -> Option<String> {
    p.str(name).map(str::to_string)
}

// ------------------------------------------------------------------ cases

#[utoipa::path(get, path = "/v1/cases/{id}", tag = "cases",
    params(("id" = String, Path, description = "case id"),
           ("consistent_with" = Option<String>, Query), ("wait_ms" = Option<u64>, Query)),
    responses((status = 200, body = crm_cases::CaseView),
              (status = 404, body = crate::error::ErrorBody), (status = 504, body = crate::error::ErrorBody)))]
pub async fn case(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<crm_cases::CaseView>, ApiError> {
    let (_, h) = prepare(&state, &q, &[], "cases").await?;
    crm_cases::get_case(&h.kv(), &id, (state.clock)())?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("case", &id))
}

#[utoipa::path(get, path = "/v1/cases", tag = "cases",
    params(("customer_id" = Option<String>, Query, description = "cases of this customer and of customers merged into it"),
           ("status" = Option<String>, Query, description = "open, resolved, closed or voided"),
           ("category" = Option<String>, Query), ("queue" = Option<String>, Query),
           ("tier" = Option<u32>, Query), ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query),
           ("consistent_with" = Option<String>, Query), ("wait_ms" = Option<u64>, Query)),
    responses((status = 200, description = "page of case summaries: {items, next_cursor}", body = Object),
              (status = 400, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn cases_list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Page<crm_cases::CaseSummary>>, ApiError> {
    let own = [
        "customer_id",
        "status",
        "category",
        "queue",
        "tier",
        "limit",
        "cursor",
    ];
    let (p, h) = prepare(&state, &q, &own, "cases").await?;
    let params = crm_cases::CaseListParams {
        customer_id: owned(&p, "customer_id"),
        status: owned(&p, "status"),
        category: owned(&p, "category"),
        queue: owned(&p, "queue"),
        tier: owned(&p, "tier"),
        limit: p.usize("limit")?,
        cursor: owned(&p, "cursor"),
    };
    Ok(Json(crm_cases::list_cases(
        &h.kv(),
        &params,
        (state.clock)(),
    )?))
}

// -------------------------------------------------------------- customers

#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "customer id; a merged id answers with its survivor's view"),
           ("consistent_with" = Option<String>, Query), ("wait_ms" = Option<u64>, Query)),
    responses((status = 200, body = crm_customers::CustomerView),
              (status = 404, body = crate::error::ErrorBody), (status = 504, body = crate::error::ErrorBody)))]
pub async fn customer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<crm_customers::CustomerView>, ApiError> {
    let (_, h) = prepare(&state, &q, &[], "customers").await?;
    crm_customers::customer(&h.kv(), &id, (state.clock)())?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("customer", &id))
}

#[utoipa::path(get, path = "/v1/customers/{id}/timeline", tag = "customers",
    params(("id" = String, Path),
           ("order" = Option<String>, Query, description = "desc (default) or asc"),
           ("channel" = Option<String>, Query), ("type" = Option<String>, Query, description = "type prefix, e.g. case."),
           ("from" = Option<String>, Query, description = "RFC 3339, inclusive"), ("to" = Option<String>, Query, description = "RFC 3339, exclusive"),
           ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query),
           ("consistent_with" = Option<String>, Query), ("wait_ms" = Option<u64>, Query)),
    responses((status = 200, description = "page of timeline items: {items, next_cursor}", body = Object),
              (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn timeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Page<crm_customers::TimelineItem>>, ApiError> {
    let own = ["order", "channel", "type", "from", "to", "limit", "cursor"];
    let (p, h) = prepare(&state, &q, &own, "customers").await?;
    let params = crm_customers::TimelineParams {
        order: owned(&p, "order"),
        channel: owned(&p, "channel"),
        event_type: owned(&p, "type"),
        from: owned(&p, "from"),
        to: owned(&p, "to"),
        limit: p.usize("limit")?,
        cursor: owned(&p, "cursor"),
    };
    crm_customers::timeline(&h.kv(), &id, &params)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("customer", &id))
}

#[utoipa::path(get, path = "/v1/lookup", tag = "customers",
    params(("kind" = String, Query, description = "phone, email, chat_handle, social, account, card or external"),
           ("value" = String, Query, description = "normalised like ingest"),
           ("consistent_with" = Option<String>, Query), ("wait_ms" = Option<u64>, Query)),
    responses((status = 200, description = "zero, one or many matches", body = crm_customers::LookupResponse),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn lookup(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<crm_customers::LookupResponse>, ApiError> {
    let (p, h) = prepare(&state, &q, &["kind", "value"], "customers").await?;
    let kind = p
        .str("kind")
        .ok_or_else(|| ApiError::invalid_param("kind", "is required"))?;
    let value = p
        .str("value")
        .ok_or_else(|| ApiError::invalid_param("value", "is required"))?;
    Ok(Json(crm_customers::lookup(&h.kv(), kind, value)?))
}

#[utoipa::path(get, path = "/v1/interactions/{id}", tag = "interactions",
    params(("id" = String, Path), ("consistent_with" = Option<String>, Query), ("wait_ms" = Option<u64>, Query)),
    responses((status = 200, body = crm_customers::InteractionView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn interaction(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<crm_customers::InteractionView>, ApiError> {
    let (_, h) = prepare(&state, &q, &[], "customers").await?;
    crm_customers::interaction(&h.kv(), &id)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("interaction", &id))
}

#[utoipa::path(get, path = "/v1/interactions", tag = "interactions",
    params(("unidentified" = Option<bool>, Query, description = "true: no customer; false: identified; absent: all"),
           ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query),
           ("consistent_with" = Option<String>, Query), ("wait_ms" = Option<u64>, Query)),
    responses((status = 200, description = "page of interactions: {items, next_cursor}", body = Object),
              (status = 400, body = crate::error::ErrorBody)))]
pub async fn interactions(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Page<crm_customers::InteractionListItem>>, ApiError> {
    let (p, h) = prepare(
        &state,
        &q,
        &["unidentified", "limit", "cursor"],
        "customers",
    )
    .await?;
    let params = crm_customers::InteractionListParams {
        unidentified: p.bool("unidentified")?,
        limit: p.usize("limit")?,
        cursor: owned(&p, "cursor"),
    };
    Ok(Json(crm_customers::interactions(&h.kv(), &params)?))
}

// -------------------------------------------------------------- campaigns

#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path), ("consistent_with" = Option<String>, Query), ("wait_ms" = Option<u64>, Query)),
    responses((status = 200, body = crm_campaigns::CampaignView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn campaign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<crm_campaigns::CampaignView>, ApiError> {
    let (_, h) = prepare(&state, &q, &[], "campaigns").await?;
    crm_campaigns::campaign(&h.kv(), &id)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("campaign", &id))
}

#[utoipa::path(get, path = "/v1/campaigns/{id}/contacts", tag = "campaigns",
    params(("id" = String, Path),
           ("state" = Option<String>, Query, description = "pending, retry, callback, done or suppressed"),
           ("agent_id" = Option<String>, Query, description = "an agent's work list"),
           ("due_only" = Option<bool>, Query, description = "with state=callback: only callbacks due by now"),
           ("now" = Option<String>, Query, description = "RFC 3339; default: the server's clock"),
           ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query),
           ("consistent_with" = Option<String>, Query), ("wait_ms" = Option<u64>, Query)),
    responses((status = 200, description = "page of contacts: {items, next_cursor}", body = Object),
              (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn campaign_contacts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Page<crm_campaigns::ContactItem>>, ApiError> {
    let own = ["state", "agent_id", "due_only", "now", "limit", "cursor"];
    let (p, h) = prepare(&state, &q, &own, "campaigns").await?;
    let params = crm_campaigns::ContactsParams {
        state: owned(&p, "state"),
        agent_id: owned(&p, "agent_id"),
        now: Some(owned(&p, "now").unwrap_or_else(|| crm_events::format_time(&(state.clock)()))),
        due_only: p.bool("due_only")?,
        limit: p.usize("limit")?,
        cursor: owned(&p, "cursor"),
    };
    crm_campaigns::contacts(&h.kv(), &id, &params)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("campaign", &id))
}

#[utoipa::path(get, path = "/v1/campaigns/{id}/contacts/{customer_id}", tag = "campaigns",
    params(("id" = String, Path), ("customer_id" = String, Path, description = "a merged id answers with its survivor"),
           ("consistent_with" = Option<String>, Query), ("wait_ms" = Option<u64>, Query)),
    responses((status = 200, body = crm_campaigns::ContactDetail), (status = 404, body = crate::error::ErrorBody)))]
pub async fn campaign_contact(
    State(state): State<AppState>,
    Path((id, customer_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<crm_campaigns::ContactDetail>, ApiError> {
    let (_, h) = prepare(&state, &q, &[], "campaigns").await?;
    crm_campaigns::contact(&h.kv(), &id, &customer_id)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("campaign contact", &format!("{id}/{customer_id}")))
}

#[utoipa::path(get, path = "/v1/campaigns/{id}/violations", tag = "campaigns",
    params(("id" = String, Path), ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query),
           ("consistent_with" = Option<String>, Query), ("wait_ms" = Option<u64>, Query)),
    responses((status = 200, description = "page of compliance violations: {items, next_cursor}", body = Object),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn campaign_violations(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Page<crm_campaigns::Violation>>, ApiError> {
    let (p, h) = prepare(&state, &q, &["limit", "cursor"], "campaigns").await?;
    let params = crm_campaigns::ViolationsParams {
        limit: p.usize("limit")?,
        cursor: owned(&p, "cursor"),
    };
    crm_campaigns::violations(&h.kv(), &id, &params)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("campaign", &id))
}

//! `GET /openapi.json`: the OpenAPI 3 description, generated with utoipa from
//! the handlers' annotations and the response types.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "crm-ledger", description = "Event-sourced ledger for contact-center CRM data: publish events, query the unified customer view, case history and campaign outcomes."),
    paths(
        crate::publish::publish,
        crate::ops::projections,
        crate::ops::rebuild,
        crate::ops::dead_letters,
        crate::ops::healthz,
        crate::ops::readyz,
        crate::ops::metrics,
        crate::queries::customer,
        crate::queries::timeline,
        crate::queries::lookup,
        crate::queries::interaction,
        crate::queries::interactions,
        crate::queries::case,
        crate::queries::cases_list,
        crate::queries::campaign,
        crate::queries::campaign_contacts,
        crate::queries::campaign_contact,
        crate::queries::campaign_violations,
    ),
    components(schemas(
        crate::error::ErrorBody, crate::error::ErrorInfo, crate::error::Detail,
        crate::publish::PublishResponse, crate::publish::EventResult,
        crate::ops::ProjectionInfo, crate::ops::DeadLetterItem,
    )),
    tags((name = "publish"), (name = "customers"), (name = "interactions"), (name = "cases"), (name = "campaigns"), (name = "operations"))
)]
pub struct ApiDoc;

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

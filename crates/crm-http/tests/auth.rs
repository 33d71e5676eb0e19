//! Access control: every route x every role, through the router
//! (`tower::ServiceExt::oneshot`), plus rate limits.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use crm_http::auth::{hash_key, KeySet, RateLimit, Role, Security};
use crm_http::{router_with, AppState, Limits};
use crm_log::embedded::{EmbeddedConfig, EmbeddedLog};
use crm_log::Log;
use crm_projection::Projection;
use crm_projector::{Projector, RunnerConfig, Store};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const PUBLISHER: &str = "publisher-key-0000000000000001";
const READER: &str = "reader-key-000000000000000002";
const ADMIN: &str = "admin-key-0000000000000000003";
/// A key listed twice, as publisher and as reader: it has both roles.
const BOTH: &str = "both-key-00000000000000000004";

struct App {
    router: Router,
    _projector: Projector,
    _dir: tempfile::TempDir,
}

fn keys() -> KeySet {
    let text = format!(
        "# role hash name\npublisher {} pbx\nreader {} dashboards\nadmin blake3:{} ops\n\
         publisher {} svc\nreader {} svc\n",
        hash_key(PUBLISHER),
        hash_key(READER),
        hash_key(ADMIN),
        hash_key(BOTH),
        hash_key(BOTH),
    );
    KeySet::parse_file(&text, "test-keys").unwrap()
}

async fn app(security: Security) -> App {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap());
    let store = Store::open(&dir.path().join("store"), 8 << 20).unwrap();
    let projections: Vec<Arc<dyn Projection>> = vec![
        Arc::new(crm_customers::CustomersProjection),
        Arc::new(crm_cases::CasesProjection),
        Arc::new(crm_campaigns::CampaignsProjection),
    ];
    let projector =
        Projector::start(&store, log.clone(), projections, RunnerConfig::default()).unwrap();
    let state = AppState::new(
        Some(log),
        projector.handles.clone(),
        Limits::default(),
        None,
    );
    App {
        router: router_with(state, security),
        _projector: projector,
        _dir: dir,
    }
}

async fn call(
    router: &Router,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

fn event(id: &str) -> Value {
    json!({"event_id": id, "type": "customer.registered", "occurred_at": "2026-11-20T09:30:00Z",
           "source": "test", "customer_id": "cust-1", "data": {"name": "Ana"}})
}

/// Who may call what. `None`: open to anyone; `Some(None)`: any valid key;
/// `Some(Some(role))`: that role (or admin).
type Need = Option<Option<Role>>;

/// Every route of the API with a sample path. `the_route_table_covers_every_documented_route`
/// keeps it complete.
fn routes() -> Vec<(Method, &'static str, &'static str, Need)> {
    use Role::*;
    let r = Some(Some(Reader));
    vec![
        (
            Method::POST,
            "/v1/events",
            "/v1/events",
            Some(Some(Publisher)),
        ),
        (Method::GET, "/v1/customers/{id}", "/v1/customers/cust-1", r),
        (
            Method::GET,
            "/v1/customers/{id}/timeline",
            "/v1/customers/cust-1/timeline",
            r,
        ),
        (
            Method::GET,
            "/v1/lookup",
            "/v1/lookup?kind=account&value=A1",
            r,
        ),
        (
            Method::GET,
            "/v1/interactions",
            "/v1/interactions?unidentified=true",
            r,
        ),
        (
            Method::GET,
            "/v1/interactions/{id}",
            "/v1/interactions/i-1",
            r,
        ),
        (Method::GET, "/v1/cases", "/v1/cases", r),
        (Method::GET, "/v1/cases/{id}", "/v1/cases/c-1", r),
        (Method::GET, "/v1/campaigns/{id}", "/v1/campaigns/k-1", r),
        (
            Method::GET,
            "/v1/campaigns/{id}/contacts",
            "/v1/campaigns/k-1/contacts",
            r,
        ),
        (
            Method::GET,
            "/v1/campaigns/{id}/contacts/{customer_id}",
            "/v1/campaigns/k-1/contacts/cust-1",
            r,
        ),
        (
            Method::GET,
            "/v1/campaigns/{id}/violations",
            "/v1/campaigns/k-1/violations",
            r,
        ),
        (Method::GET, "/v1/projections", "/v1/projections", r),
        (
            Method::GET,
            "/v1/dead-letters",
            "/v1/dead-letters",
            Some(Some(Admin)),
        ),
        (
            Method::POST,
            "/v1/projections/{name}/rebuild",
            "/v1/projections/cases/rebuild",
            Some(Some(Admin)),
        ),
        (Method::GET, "/metrics", "/metrics", Some(None)),
        (Method::GET, "/healthz", "/healthz", None),
        (Method::GET, "/readyz", "/readyz", None),
        (Method::GET, "/openapi.json", "/openapi.json", None),
    ]
}

fn has(key: &str, role: Role) -> bool {
    match key {
        ADMIN => true,
        PUBLISHER => role == Role::Publisher,
        READER => role == Role::Reader,
        BOTH => role != Role::Admin,
        _ => false,
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_by_every_role() {
    let app = app(Security::new(Some(keys()), None)).await;
    let mut n = 0;
    for (method, template, path, need) in routes() {
        for key in [
            None,
            Some("not-a-key"),
            Some(PUBLISHER),
            Some(READER),
            Some(ADMIN),
            Some(BOTH),
        ] {
            let body =
                (method == Method::POST && path == "/v1/events").then(|| event(&format!("e-{n}")));
            n += 1;
            let (status, resp) = call(&app.router, method.clone(), path, key, body).await;
            let ctx = format!("{method} {template} with {key:?}: {status} {resp}");
            let allowed = match need {
                None => true,
                Some(None) => key.is_some_and(|k| k != "not-a-key"),
                Some(Some(role)) => key.is_some_and(|k| has(k, role)),
            };
            if allowed {
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{ctx}");
                assert!(
                    !matches!(code(&resp), "unauthorized" | "forbidden"),
                    "{ctx}"
                );
                assert!(status.as_u16() < 500, "{ctx}");
            } else if key.is_none() || key == Some("not-a-key") {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{ctx}");
                assert_eq!(code(&resp), "unauthorized", "{ctx}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{ctx}");
                assert_eq!(code(&resp), "forbidden", "{ctx}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_do_not_tell_whether_an_id_exists() {
    let app = app(Security::new(Some(keys()), None)).await;
    let (s, r) = call(
        &app.router,
        Method::POST,
        "/v1/events",
        Some(ADMIN),
        Some(event("x1")),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let token = r["consistency_token"].as_str().unwrap().to_string();
    let (s, _) = call(
        &app.router,
        Method::GET,
        &format!("/v1/customers/cust-1?consistent_with={token}"),
        Some(READER),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "the customer exists");
    for key in [None, Some("not-a-key"), Some(PUBLISHER)] {
        let known = call(&app.router, Method::GET, "/v1/customers/cust-1", key, None).await;
        let unknown = call(&app.router, Method::GET, "/v1/customers/nobody", key, None).await;
        assert_eq!(known, unknown, "{key:?}");
        assert!(known.0 == StatusCode::UNAUTHORIZED || known.0 == StatusCode::FORBIDDEN);
        let msg = known.1.to_string();
        assert!(!msg.contains("cust-1") && !msg.contains("nobody"), "{msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_paths_and_headers_get_no_further() {
    let app = app(Security::new(Some(keys()), None)).await;
    // Encoded or unknown paths need admin (deny by default): a reader
    // cannot reach dead letters by spelling the path differently.
    for path in [
        "/v1/dead%2Dletters",
        "/v1/dead-letters/",
        "/v1//dead-letters",
        "/v1/customers/cust-1/../../dead-letters",
        "/v1/nothing",
    ] {
        let (s, r) = call(&app.router, Method::GET, path, Some(READER), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {r}");
        let (s, _) = call(&app.router, Method::GET, path, Some(ADMIN), None).await;
        assert_ne!(s, StatusCode::OK, "{path} is no route");
    }
    // A reader may not write to a read route.
    let (s, _) = call(
        &app.router,
        Method::DELETE,
        "/v1/cases/c-1",
        Some(READER),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Malformed Authorization headers: 401 with WWW-Authenticate.
    for value in ["Basic abc", "Bearer", "Bearer ", READER, "bearer"] {
        let req = Request::get("/v1/cases")
            .header("authorization", value)
            .body(Body::empty())
            .unwrap();
        let resp = app.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{value:?}");
        assert!(resp.headers().contains_key("www-authenticate"));
    }
    // The scheme is case-insensitive.
    let req = Request::get("/v1/cases")
        .header("authorization", format!("bEaReR {READER}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.router.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
}

#[test]
fn the_route_table_covers_every_documented_route() {
    use utoipa::OpenApi;
    let doc = crm_http::openapi::ApiDoc::openapi();
    let table: Vec<(String, String)> = routes()
        .into_iter()
        .map(|(m, t, _, _)| (m.to_string(), t.to_string()))
        .collect();
    let doc = serde_json::to_value(&doc).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let m = method.to_ascii_uppercase();
            if !matches!(m.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
                continue;
            }
            assert!(
                table.contains(&(m.clone(), path.clone())),
                "{m} {path} is documented but not in the access table of this test \
                 (and so maybe not in crm_http::auth::required): decide who may call it"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after_per_key() {
    let app = app(Security::new(
        Some(keys()),
        Some(RateLimit {
            per_second: 0.2,
            burst: 3.0,
        }),
    ))
    .await;
    for _ in 0..3 {
        let (s, _) = call(&app.router, Method::GET, "/v1/cases", Some(READER), None).await;
        assert_eq!(s, StatusCode::OK);
    }
    let req = Request::get("/v1/cases")
        .header("authorization", format!("Bearer {READER}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another key has its own bucket; health is never limited.
    let (s, _) = call(&app.router, Method::GET, "/v1/cases", Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::OK);
    for _ in 0..10 {
        let (s, _) = call(&app.router, Method::GET, "/healthz", None, None).await;
        assert_eq!(s, StatusCode::OK);
    }
    // Failed attempts count against the client address: guessing keys is
    // limited too.
    let mut limited = false;
    for _ in 0..10 {
        let (s, _) = call(&app.router, Method::GET, "/v1/cases", Some("guess"), None).await;
        limited |= s == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(limited, "key guessing is rate limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_everything_is_open_and_limited_per_address() {
    let app = app(Security::new(
        None,
        Some(RateLimit {
            per_second: 1.0,
            burst: 2.0,
        }),
    ))
    .await;
    let (s, r) = call(&app.router, Method::GET, "/v1/dead-letters", None, None).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (s, _) = call(&app.router, Method::GET, "/v1/cases", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, r) = call(&app.router, Method::GET, "/v1/cases", None, None).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{r}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _) = call(&app.router, Method::GET, "/v1/cases", None, None).await;
    assert_eq!(s, StatusCode::OK, "the bucket refills");
}

//! A bounded fuzz of the ingest path with proptest, through the real router
//! (`tower::ServiceExt::oneshot`) over a real embedded log: arbitrary bytes,
//! arbitrary JSON values, mutated valid events, and NDJSON bodies mixing
//! good lines, garbage and blank lines. For every input: no panic (the
//! router's panic catcher would answer 500), no hang (each request has a
//! deadline), and an answer that is either 200 with one named result per
//! event or a 4xx with a named error.
//!
//! `CRM_FUZZ_CASES` scales the number of cases (default: a quick run for the
//! normal test suite). The cargo-fuzz targets in `fuzz/` run the same
//! properties for longer.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use crm_events::Validator;
use crm_http::{router, AppState, Limits};
use crm_log::embedded::{EmbeddedConfig, EmbeddedLog};
use crm_log::Log;
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use tower::ServiceExt;

fn cases(default: u32) -> u32 {
    std::env::var("CRM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One valid event of most types: the seeds that mutations start from.
fn seeds() -> Vec<Value> {
    let env = |id: &str, t: &str, ids: Value, data: Value| {
        let mut e = json!({"event_id": id, "type": t, "occurred_at": "2026-11-20T09:30:00+01:00",
                           "source": "fuzz", "data": data});
        for (k, v) in ids.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    };
    vec![
        env(
            "s1",
            "customer.registered",
            json!({"customer_id": "cu1"}),
            json!({"name": "Ana López", "identities": [{"kind": "phone", "value": "0044 20 7946 0958"},
                   {"kind": "email", "value": " Ana@Example.COM "}], "attributes": {"tier": "gold"}}),
        ),
        env(
            "s2",
            "customer.identity_added",
            json!({"customer_id": "cu1"}),
            json!({"identity": {"kind": "account", "value": "A-1"}, "verified": true}),
        ),
        env(
            "s3",
            "customer.merged",
            json!({"customer_id": "cu1"}),
            json!({"merged_customer_id": "cu2", "reason": "same person"}),
        ),
        env(
            "s4",
            "consent.granted",
            json!({"customer_id": "cu1"}),
            json!({"channel": "email", "purpose": "marketing", "expires_at": "2027-01-01T00:00:00Z"}),
        ),
        env(
            "s5",
            "interaction.started",
            json!({"interaction_id": "i1", "customer_id": "cu1"}),
            json!({"channel": "phone", "direction": "inbound", "from": {"kind": "phone", "value": "+34 600 000 000"},
                   "queue": "billing", "ivr": {"path": ["main", "billing"], "inputs": {"digit": "2"}}}),
        ),
        env(
            "s6",
            "interaction.message",
            json!({"interaction_id": "i1"}),
            json!({"author": "customer", "text": "Hola", "subject": "Factura"}),
        ),
        env(
            "s7",
            "interaction.recorded",
            json!({"interaction_id": "i2"}),
            json!({"channel": "email", "direction": "outbound", "ended_at": "2026-11-20T10:30:00Z",
                   "to": {"kind": "email", "value": "x@example.com"}}),
        ),
        env(
            "s8",
            "case.opened",
            json!({"case_id": "c1", "customer_id": "cu1"}),
            json!({"category": "billing", "priority": "high", "tier": 1, "origin_interaction_id": "i1"}),
        ),
        env(
            "s9",
            "case.note_added",
            json!({"case_id": "c1"}),
            json!({"text": "called back"}),
        ),
        env(
            "s10",
            "case.escalated",
            json!({"case_id": "c1"}),
            json!({"to_tier": 2, "reason": "angry"}),
        ),
        env(
            "s11",
            "case.resolved",
            json!({"case_id": "c1"}),
            json!({"resolution": "refunded"}),
        ),
        env(
            "s12",
            "campaign.created",
            json!({"campaign_id": "k1"}),
            json!({"name": "Winter", "channel": "phone", "purpose": "marketing", "max_attempts": 3,
                   "starts_at": "2026-11-01T00:00:00Z", "ends_at": "2026-12-01T00:00:00Z"}),
        ),
        env(
            "s13",
            "campaign.attempt_made",
            json!({"campaign_id": "k1", "customer_id": "cu1"}),
            json!({"channel": "phone", "result": "connected"}),
        ),
        env(
            "s14",
            "campaign.contact_outcome",
            json!({"campaign_id": "k1", "customer_id": "cu1"}),
            json!({"outcome": "callback_requested", "callback_at": "2026-11-21T09:00:00Z"}),
        ),
    ]
}

#[test]
fn the_seeds_are_valid() {
    let v = Validator::new();
    for s in seeds() {
        if let Err(e) = v.validate(s.clone()) {
            panic!("{s}: {e:?}");
        }
    }
}

struct App {
    router: Router,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn app() -> App {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let router = rt.block_on(async {
        let log: Arc<dyn Log> =
            Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap());
        let limits = Limits {
            max_request_bytes: 256 * 1024,
            max_event_bytes: 64 * 1024,
            max_batch_events: 50,
        };
        router(AppState::new(Some(log), Vec::new(), limits, None))
    });
    App {
        router,
        rt,
        _dir: dir,
    }
}

/// Sends one body and checks the answer; `Err` says what was wrong.
fn check(app: &App, body: Vec<u8>, content_type: Option<&str>) -> Result<(), TestCaseError> {
    let mut req = Request::post("/v1/events");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let req = req.body(Body::from(body)).unwrap();
    let router = app.router.clone();
    let (status, bytes) = app
        .rt
        .block_on(async move {
            tokio::time::timeout(Duration::from_secs(10), async move {
                let resp = router.oneshot(req).await.unwrap();
                let status = resp.status();
                let bytes = resp.into_body().collect().await.unwrap().to_bytes();
                (status, bytes)
            })
            .await
        })
        .map_err(|_| TestCaseError::fail("no answer within 10 s"))?;
    let text = String::from_utf8_lossy(&bytes);
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
        TestCaseError::fail(format!("{status}: the answer is not JSON ({e}): {text}"))
    })?;
    match status {
        StatusCode::OK => {
            let results = v["results"]
                .as_array()
                .ok_or_else(|| TestCaseError::fail(format!("200 without results: {text}")))?;
            let n = |k: &str| v[k].as_u64().unwrap_or(u64::MAX);
            prop_assert_eq!(
                n("accepted") + n("duplicates") + n("rejected"),
                results.len() as u64,
                "{}",
                text
            );
            for r in results {
                match r["status"].as_str() {
                    Some("accepted") | Some("duplicate") => {
                        prop_assert!(r["position"].is_string(), "{}", r);
                    }
                    Some("rejected") => {
                        let code = r["error"]["code"].as_str().unwrap_or("");
                        prop_assert!(
                            code == "validation" || code == "conflict",
                            "unnamed rejection: {}",
                            r
                        );
                        let details = r["error"]["details"].as_array();
                        prop_assert!(
                            details.is_some_and(
                                |d| !d.is_empty() && d.iter().all(|d| d["path"].is_string())
                            ),
                            "a rejection names no path: {}",
                            r
                        );
                    }
                    _ => prop_assert!(false, "unknown result status: {}", r),
                }
            }
        }
        s if s.is_client_error() => {
            prop_assert!(
                matches!(s.as_u16(), 400 | 413),
                "unexpected status {}: {}",
                s,
                text
            );
            let code = v["error"]["code"].as_str().unwrap_or("");
            prop_assert!(!code.is_empty(), "a 4xx without a code: {}", text);
        }
        s => prop_assert!(false, "status {} (a 5xx is a crash or a bug): {}", s, text),
    }
    Ok(())
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json")),
        Just(Some("application/x-ndjson")),
        Just(Some("application/jsonl; charset=utf-8")),
        Just(Some("text/plain")),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("customer.registered"),
            Just("case.opened"),
            Just("2026-11-20T09:30:00Z"),
            Just("+44 20 7946 0958"),
            Just("phone"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("event_id".to_string()),
                    Just("type".to_string()),
                    Just("data".to_string()),
                    Just("customer_id".to_string()),
                    Just("version".to_string()),
                    "[a-z_]{1,10}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A mutation of a JSON value at a random place.
#[derive(Debug, Clone)]
enum Mutation {
    Remove,
    Replace(Value),
    Insert(String, Value),
    LongString(usize),
    Nest(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::Remove),
        json_value().prop_map(Mutation::Replace),
        ("[a-z_]{1,12}", json_value()).prop_map(|(k, v)| Mutation::Insert(k, v)),
        (0usize..70_000).prop_map(Mutation::LongString),
        (1usize..200).prop_map(Mutation::Nest),
    ]
}

/// Applies `m` at the `pick`-th node of `v` (pre-order).
fn mutate(v: &mut Value, pick: &mut usize, m: &Mutation) -> bool {
    if *pick == 0 {
        match m {
            Mutation::Remove => *v = Value::Null,
            Mutation::Replace(r) => *v = r.clone(),
            Mutation::Insert(k, x) => match v {
                Value::Object(o) => {
                    o.insert(k.clone(), x.clone());
                }
                Value::Array(a) => a.push(x.clone()),
                _ => *v = x.clone(),
            },
            Mutation::LongString(n) => *v = Value::String("é".repeat(*n / 2)),
            Mutation::Nest(n) => {
                for _ in 0..*n {
                    *v = json!([v.take()]);
                }
            }
        }
        return true;
    }
    *pick -= 1;
    match v {
        Value::Object(o) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            for k in keys {
                if *pick == 0 && matches!(m, Mutation::Remove) {
                    o.remove(&k);
                    return true;
                }
                if mutate(o.get_mut(&k).unwrap(), pick, m) {
                    return true;
                }
            }
            false
        }
        Value::Array(a) => a.iter_mut().any(|x| mutate(x, pick, m)),
        _ => false,
    }
}

fn mutated_event() -> impl Strategy<Value = Value> {
    let n = seeds().len();
    (
        0..n,
        prop::collection::vec((0usize..40, mutation()), 1..4),
        any::<u32>(),
    )
        .prop_map(move |(i, muts, id)| {
            let mut e = seeds()[i].clone();
            e["event_id"] = json!(format!("m{id}"));
            for (pick, m) in muts {
                let mut p = pick;
                mutate(&mut e, &mut p, &m);
            }
            e
        })
}

#[test]
fn arbitrary_bytes_are_answered_without_a_panic() {
    let app = app();
    let mut runner = TestRunner::new(Config {
        cases: cases(300),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(prop::collection::vec(any::<u8>(), 0..2048), content_type()),
            |(bytes, ct)| check(&app, bytes, ct),
        )
        .unwrap();
}

#[test]
fn arbitrary_json_is_answered_without_a_panic() {
    let app = app();
    let mut runner = TestRunner::new(Config {
        cases: cases(300),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(json_value(), content_type()), |(v, ct)| {
            check(&app, v.to_string().into_bytes(), ct)
        })
        .unwrap();
}

#[test]
fn mutated_valid_events_are_accepted_or_rejected_with_a_path() {
    let app = app();
    let mut runner = TestRunner::new(Config {
        cases: cases(400),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(prop::collection::vec(mutated_event(), 1..5), any::<bool>()),
            |(events, as_ndjson)| {
                if as_ndjson {
                    let body: Vec<String> = events.iter().map(|e| e.to_string()).collect();
                    check(
                        &app,
                        body.join("\n").into_bytes(),
                        Some("application/x-ndjson"),
                    )
                } else {
                    check(
                        &app,
                        Value::Array(events).to_string().into_bytes(),
                        Some("application/json"),
                    )
                }
            },
        )
        .unwrap();
}

#[test]
fn ndjson_bodies_mixing_events_garbage_and_blank_lines() {
    let app = app();
    let line = prop_oneof![
        (0..seeds().len()).prop_map(|i| seeds()[i].to_string()),
        mutated_event().prop_map(|e| e.to_string()),
        ".{0,60}",
        Just(String::new()),
        Just("\r".to_string()),
        Just("   ".to_string()),
        Just("{".to_string()),
        Just("[{}]".to_string()),
        Just("\u{feff}{}".to_string()),
    ];
    let mut runner = TestRunner::new(Config {
        cases: cases(300),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(
                prop::collection::vec(line, 0..70),
                prop_oneof![Just("\n"), Just("\r\n")],
            ),
            |(lines, sep)| {
                check(
                    &app,
                    lines.join(sep).into_bytes(),
                    Some("application/x-ndjson"),
                )
            },
        )
        .unwrap();
}

#[test]
fn hostile_shapes_get_a_clear_answer() {
    let app = app();
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let mut event = seeds()[8].clone();
    event["data"]["custom"] = serde_json::from_str(&deep(40)).unwrap();
    let bodies: Vec<(Vec<u8>, Option<&str>)> = vec![
        (deep(100_000).into_bytes(), Some("application/json")),
        (deep(100_000).into_bytes(), Some("application/x-ndjson")),
        (
            format!("[{}]", event).into_bytes(),
            Some("application/json"),
        ),
        (b"\xff\xfe{}".to_vec(), None),
        (
            "\n".repeat(200_000).into_bytes(),
            Some("application/x-ndjson"),
        ),
        (vec![b' '; 200_000], None),
        (format!("[{}]", "{},".repeat(60) + "{}").into_bytes(), None),
        ("\"x\"".into(), None),
        ("[]".into(), None),
        ("{}".into(), None),
        ("null".into(), None),
        ("{\"event_id\": \"a\u{0}b\"}".into(), None),
        (
            format!("{{\"event_id\": \"{}\"}}", "\\ud800").into_bytes(),
            None,
        ),
    ];
    for (body, ct) in bodies {
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).to_string();
        check(&app, body, ct).unwrap_or_else(|e| panic!("{shown}: {e}"));
    }
}

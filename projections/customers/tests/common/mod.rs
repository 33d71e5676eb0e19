//! Helpers shared by the tests: build events from JSON, fold them, and check
//! on the way that every fold is order independent.
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use crm_customers::*;
use crm_projection::query::QueryError;
use crm_projection::testkit;
use crm_projection::MemStore;
use serde_json::{json, Value};

/// `2026-11-20T09:00:00Z` plus `minutes`.
pub fn at(minutes: i64) -> String {
    let base: DateTime<Utc> = "2026-11-20T09:00:00Z".parse().unwrap();
    crm_events::format_time(&(base + Duration::minutes(minutes)))
}

pub fn now() -> DateTime<Utc> {
    "2026-11-21T00:00:00Z".parse().unwrap()
}

/// Completes a test event: `source` and `data` default.
pub fn ev(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.entry("source").or_insert(json!("test"));
    o.entry("data").or_insert(json!({}));
    v
}

/// Validates and folds `values` in the given order, after checking that
/// eight other delivery orders reach the same state.
pub fn fold(values: Vec<Value>) -> MemStore {
    let events = testkit::events(values.into_iter().map(ev));
    testkit::assert_order_independent(&CustomersProjection, &events, 0..8)
}

/// Applies more events on top of a store (arrival after a first read).
pub fn apply_more(store: &mut MemStore, values: Vec<Value>) {
    for e in testkit::events(values.into_iter().map(ev)) {
        testkit::apply_one(&CustomersProjection, store, &e);
    }
}

pub fn view(store: &MemStore, id: &str) -> CustomerView {
    customer(store, id, now())
        .unwrap()
        .unwrap_or_else(|| panic!("{id} is unknown"))
}

pub fn tl(store: &MemStore, id: &str) -> Vec<TimelineItem> {
    tl_with(
        store,
        id,
        TimelineParams {
            limit: Some(1000),
            ..Default::default()
        },
    )
}

pub fn tl_with(store: &MemStore, id: &str, p: TimelineParams) -> Vec<TimelineItem> {
    timeline(store, id, &p).unwrap().unwrap().items
}

pub fn ids(items: &[TimelineItem]) -> Vec<&str> {
    items.iter().map(|i| i.event_id.as_str()).collect()
}

pub fn recent_ids(v: &CustomerView) -> Vec<&str> {
    v.recent_interactions
        .iter()
        .map(|r| r.interaction_id.as_str())
        .collect()
}

pub fn match_ids(r: &LookupResponse) -> Vec<&str> {
    r.matches.iter().map(|m| m.customer_id.as_str()).collect()
}

pub fn invalid_param(e: QueryError) -> String {
    match e {
        QueryError::Invalid { param, .. } => param,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

pub fn registered(id: &str, cust: &str, name: &str, identities: Value) -> Value {
    json!({"event_id": id, "type": "customer.registered", "occurred_at": at(0), "customer_id": cust,
           "data": {"name": name, "identities": identities}})
}

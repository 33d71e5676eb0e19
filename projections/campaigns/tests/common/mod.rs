//! Event builders and a checked fold shared by the tests.
#![allow(dead_code)]

use crm_campaigns::{audit, CampaignsProjection};
use crm_events::Event;
use crm_projection::testkit;
use crm_projection::MemStore;
use serde_json::{json, Value};

/// `2026-11-{day}T{hm}:00Z`, e.g. `t(20, "09:30")`.
pub fn t(day: u32, hm: &str) -> String {
    format!("2026-11-{day:02}T{hm}:00Z")
}

pub fn created(id: &str, k: &str, at: &str, data: Value) -> Value {
    let mut d = json!({"name": format!("Campaign {k}"), "channel": "phone", "purpose": "survey"});
    d.as_object_mut()
        .unwrap()
        .extend(data.as_object().unwrap().clone());
    json!({"event_id": id, "type": "campaign.created", "occurred_at": at, "source": "dialer",
           "campaign_id": k, "data": d})
}

pub fn added(id: &str, k: &str, c: &str, at: &str, agent: Option<&str>) -> Value {
    let mut data = json!({"identity": {"kind": "phone", "value": "+4420 7946 0000"}});
    if let Some(a) = agent {
        data["agent_id"] = json!(a);
    }
    json!({"event_id": id, "type": "campaign.contact_added", "occurred_at": at, "source": "dialer",
           "campaign_id": k, "customer_id": c, "data": data})
}

pub fn assigned(id: &str, k: &str, c: &str, at: &str, agent: &str) -> Value {
    json!({"event_id": id, "type": "campaign.contact_assigned", "occurred_at": at, "source": "dialer",
           "campaign_id": k, "customer_id": c, "agent_id": agent, "data": {}})
}

pub fn attempt(
    id: &str,
    k: &str,
    c: &str,
    at: &str,
    channel: &str,
    result: &str,
    agent: Option<&str>,
) -> Value {
    let mut v = json!({"event_id": id, "type": "campaign.attempt_made", "occurred_at": at, "source": "dialer",
           "campaign_id": k, "customer_id": c, "data": {"channel": channel, "result": result}});
    if let Some(a) = agent {
        v["agent_id"] = json!(a);
    }
    v
}

pub fn outcome(id: &str, k: &str, c: &str, at: &str, outcome: &str, extra: Value) -> Value {
    let mut data = json!({"outcome": outcome});
    data.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"event_id": id, "type": "campaign.contact_outcome", "occurred_at": at, "source": "dialer",
           "campaign_id": k, "customer_id": c, "data": data})
}

pub fn grant(
    id: &str,
    c: &str,
    at: &str,
    channel: &str,
    purpose: &str,
    expires: Option<&str>,
) -> Value {
    let mut data = json!({"channel": channel, "purpose": purpose});
    if let Some(e) = expires {
        data["expires_at"] = json!(e);
    }
    json!({"event_id": id, "type": "consent.granted", "occurred_at": at, "source": "crm-ui",
           "customer_id": c, "data": data})
}

pub fn revoke(id: &str, c: &str, at: &str, channel: &str, purpose: &str) -> Value {
    json!({"event_id": id, "type": "consent.revoked", "occurred_at": at, "source": "crm-ui",
           "customer_id": c, "data": {"channel": channel, "purpose": purpose}})
}

pub fn merged(id: &str, survivor: &str, m: &str, at: &str) -> Value {
    json!({"event_id": id, "type": "customer.merged", "occurred_at": at, "source": "crm-ui",
           "customer_id": survivor, "data": {"merged_customer_id": m}})
}

pub fn unmerged(id: &str, survivor: &str, m: &str, at: &str) -> Value {
    json!({"event_id": id, "type": "customer.unmerged", "occurred_at": at, "source": "crm-ui",
           "customer_id": survivor, "data": {"merged_customer_id": m}})
}

pub fn status(id: &str, k: &str, kind: &str, at: &str) -> Value {
    json!({"event_id": id, "type": format!("campaign.{kind}"), "occurred_at": at, "source": "dialer",
           "campaign_id": k, "data": {}})
}

/// Folds `values` in the given order, asserts that 24 other delivery orders
/// (each stream's own order kept) reach the same bytes, and that the result
/// equals a rebuild from its facts (for every campaign id in `campaigns`).
pub fn fold(values: Vec<Value>, campaigns: &[&str]) -> MemStore {
    let events: Vec<Event> = testkit::events(values);
    let store = testkit::assert_order_independent(&CampaignsProjection, &events, 0..24);
    for k in campaigns {
        audit(&store, k).unwrap_or_else(|e| panic!("audit of {k}: {e}"));
    }
    store
}

/// Folds exactly in the given order (no other orders, no audit).
pub fn fold_in_order(values: Vec<Value>) -> MemStore {
    let events: Vec<Event> = testkit::events(values);
    testkit::fold(&CampaignsProjection, &events)
}

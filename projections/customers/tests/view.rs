//! The rest of the customer view: consents, cases, campaigns, profile.

mod common;

use chrono::{DateTime, Utc};
use common::*;
use crm_customers::*;
use serde_json::{json, Value};

fn consent(
    id: &str,
    ty: &str,
    minutes: i64,
    channel: &str,
    purpose: &str,
    expires: Option<&str>,
) -> Value {
    let mut data = json!({"channel": channel, "purpose": purpose});
    if let Some(x) = expires {
        data["expires_at"] = json!(x);
    }
    json!({"event_id": id, "type": ty, "occurred_at": at(minutes), "customer_id": "c1", "data": data})
}

fn consents_history() -> Vec<Value> {
    vec![
        registered("r1", "c1", "Ana", json!([])),
        consent("g1", "consent.granted", 10, "email", "marketing", None),
        consent("v1", "consent.revoked", 20, "email", "marketing", None),
        // Published after the revocation but happened before it: it does not undo it.
        consent("g0", "consent.granted", 15, "email", "marketing", None),
        consent(
            "g2",
            "consent.granted",
            10,
            "sms",
            "survey",
            Some("2026-12-01T00:00:00Z"),
        ),
        consent(
            "g3",
            "consent.granted",
            10,
            "phone",
            "service",
            Some("2026-11-20T12:00:00Z"),
        ),
    ]
}

#[test]
fn consents_per_channel_and_purpose_judged_by_occurred_at() {
    let store = fold(consents_history());
    let v = view(&store, "c1");
    let by: Vec<(&str, &str, &str, &str)> = v
        .consents
        .iter()
        .map(|c| {
            (
                c.channel.as_str(),
                c.purpose.as_str(),
                c.status.as_str(),
                c.since.as_str(),
            )
        })
        .collect();
    assert_eq!(
        by,
        [
            ("email", "marketing", "revoked", at(20).as_str()),
            ("phone", "service", "expired", "2026-11-20T12:00:00Z"),
            ("sms", "survey", "granted", at(10).as_str()),
        ]
    );
    let email = &v.consents[0];
    let hist: Vec<(&str, &str)> = email
        .history
        .iter()
        .map(|h| (h.event_id.as_str(), h.action.as_str()))
        .collect();
    assert_eq!(
        hist,
        [("g1", "granted"), ("g0", "granted"), ("v1", "revoked")]
    );
    assert_eq!(
        v.consents[2].expires_at.as_deref(),
        Some("2026-12-01T00:00:00Z")
    );
}

#[test]
fn expiry_is_judged_at_the_now_of_the_query() {
    let store = fold(consents_history());
    let before: DateTime<Utc> = "2026-11-20T11:00:00Z".parse().unwrap();
    let later: DateTime<Utc> = "2026-12-02T00:00:00Z".parse().unwrap();
    let status = |now, ch: &str| {
        let v = customer(&store, "c1", now).unwrap().unwrap();
        v.consents
            .into_iter()
            .find(|c| c.channel == ch)
            .unwrap()
            .status
    };
    assert_eq!(status(before, "phone"), "granted");
    assert_eq!(status(later, "phone"), "expired");
    assert_eq!(status(before, "sms"), "granted");
    assert_eq!(status(later, "sms"), "expired");
}

fn case_event(id: &str, ty: &str, minutes: i64, case: &str, extra: Value) -> Value {
    let mut e = json!({"event_id": id, "type": ty, "occurred_at": at(minutes), "case_id": case});
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

#[test]
fn voided_cases_are_left_out_of_counts_and_statuses_follow_event_time() {
    let store = fold(vec![
        registered("r1", "c1", "Ana", json!([])),
        case_event(
            "a1",
            "case.opened",
            1,
            "k-open",
            json!({"customer_id": "c1",
            "data": {"category": "billing", "priority": "high", "tier": 2}}),
        ),
        case_event(
            "a2",
            "case.escalated",
            2,
            "k-open",
            json!({"data": {"to_tier": 3}}),
        ),
        case_event(
            "b1",
            "case.opened",
            3,
            "k-void",
            json!({"customer_id": "c1", "data": {"category": "prank"}}),
        ),
        case_event(
            "b2",
            "case.voided",
            4,
            "k-void",
            json!({"data": {"reason": "prank"}}),
        ),
        case_event(
            "c1",
            "case.opened",
            5,
            "k-resolved",
            json!({"customer_id": "c1", "data": {"category": "x"}}),
        ),
        case_event(
            "c2",
            "case.resolved",
            6,
            "k-resolved",
            json!({"data": {"resolution": "refunded"}}),
        ),
        case_event(
            "d1",
            "case.opened",
            7,
            "k-reopened",
            json!({"customer_id": "c1", "data": {"category": "y"}}),
        ),
        case_event(
            "d2",
            "case.resolved",
            8,
            "k-reopened",
            json!({"data": {"resolution": "done"}}),
        ),
        case_event(
            "d3",
            "case.reopened",
            9,
            "k-reopened",
            json!({"data": {"reason": "not done"}}),
        ),
        case_event(
            "e1",
            "case.opened",
            10,
            "k-closed",
            json!({"customer_id": "c1", "data": {"category": "z"}}),
        ),
        case_event("e2", "case.closed", 11, "k-closed", json!({})),
        // Published out of time order: the resolution happened after the reopen.
        case_event(
            "f1",
            "case.opened",
            12,
            "k-late",
            json!({"customer_id": "c1", "data": {"category": "w"}}),
        ),
        case_event(
            "f2",
            "case.resolved",
            15,
            "k-late",
            json!({"data": {"resolution": "done"}}),
        ),
        case_event("f3", "case.reopened", 14, "k-late", json!({})),
    ]);
    let v = view(&store, "c1");
    assert_eq!(v.stats.cases_total, 5);
    assert_eq!(v.stats.cases_open, 2);
    let open: Vec<&str> = v.open_cases.iter().map(|c| c.case_id.as_str()).collect();
    assert_eq!(open, ["k-reopened", "k-open"]);
    let k = &v.open_cases[1];
    assert_eq!(
        (
            k.category.as_deref(),
            k.status.as_str(),
            k.priority.as_str(),
            k.tier
        ),
        (Some("billing"), "open", "high", 3)
    );
    assert_eq!(k.opened_at, at(1));
    // Voided cases stay in the history.
    assert!(tl(&store, "c1").iter().any(|i| i.event_id == "b2"));
}

#[test]
fn case_events_before_case_opened_and_late_case_customers() {
    let store = fold(vec![
        // The case's events are published before its case.opened.
        case_event(
            "a2",
            "case.note_added",
            2,
            "k1",
            json!({"data": {"text": "called back"}}),
        ),
        case_event(
            "a1",
            "case.opened",
            1,
            "k1",
            json!({"data": {"category": "billing"}}),
        ),
        case_event(
            "a3",
            "case.customer_identified",
            3,
            "k1",
            json!({"customer_id": "c1"}),
        ),
        // Re-identified to another customer.
        case_event(
            "b1",
            "case.opened",
            1,
            "k2",
            json!({"customer_id": "c1", "data": {"category": "x"}}),
        ),
        case_event(
            "b2",
            "case.customer_identified",
            2,
            "k2",
            json!({"customer_id": "c2"}),
        ),
    ]);
    let c1 = view(&store, "c1");
    assert_eq!(c1.stats.cases_total, 1);
    assert_eq!(
        c1.open_cases
            .iter()
            .map(|c| c.case_id.as_str())
            .collect::<Vec<_>>(),
        ["k1"]
    );
    assert_eq!(ids(&tl(&store, "c1")), ["a3", "a2", "a1"]);
    let c2 = view(&store, "c2");
    assert_eq!(c2.stats.cases_total, 1);
    assert_eq!(ids(&tl(&store, "c2")), ["b2", "b1"]);
}

#[test]
fn campaigns_count_attempts_and_keep_the_latest_outcome() {
    let camp = |id: &str, ty: &str, minutes: i64, data: Value| {
        json!({"event_id": id, "type": ty, "occurred_at": at(minutes), "campaign_id": "camp-1",
               "customer_id": "c1", "data": data})
    };
    let store = fold(vec![
        json!({"event_id": "p0", "type": "campaign.created", "occurred_at": at(0), "campaign_id": "camp-1",
               "data": {"name": "Winter offer", "channel": "phone", "purpose": "marketing"}}),
        camp("p1", "campaign.contact_added", 1, json!({})),
        camp(
            "p2",
            "campaign.attempt_made",
            2,
            json!({"channel": "phone", "result": "no_answer"}),
        ),
        camp(
            "p3",
            "campaign.attempt_made",
            3,
            json!({"channel": "phone", "result": "connected"}),
        ),
        camp(
            "p5",
            "campaign.contact_outcome",
            5,
            json!({"outcome": "converted", "value": 10.0}),
        ),
        camp(
            "p4",
            "campaign.contact_outcome",
            4,
            json!({"outcome": "callback_requested", "callback_at": at(60)}),
        ),
    ]);
    let v = view(&store, "c1");
    assert_eq!(v.campaigns.len(), 1);
    let c = &v.campaigns[0];
    assert_eq!(c.campaign_id, "camp-1");
    assert_eq!(c.name.as_deref(), Some("Winter offer"));
    assert_eq!(c.attempts, 2);
    assert_eq!(c.last_outcome.as_deref(), Some("converted"));
    assert_eq!(c.last_result.as_deref(), Some("connected"));
    let items = tl(&store, "c1");
    assert_eq!(ids(&items), ["p5", "p4", "p3", "p2", "p1"]);
    assert_eq!(items[2].channel.as_deref(), Some("phone"));
    assert_eq!(items[2].campaign_id.as_deref(), Some("camp-1"));
}

#[test]
fn profile_updates_are_latest_by_occurred_at_and_null_removes() {
    let store = fold(vec![
        json!({"event_id": "r1", "type": "customer.registered", "occurred_at": at(0), "customer_id": "c1",
               "data": {"name": "Ana", "attributes": {"tier": "gold", "lang": "es"}}}),
        json!({"event_id": "u2", "type": "customer.profile_updated", "occurred_at": at(5), "customer_id": "c1",
               "data": {"name": "Ana Lopez", "attributes": {"lang": null}}}),
        json!({"event_id": "u1", "type": "customer.profile_updated", "occurred_at": at(3), "customer_id": "c1",
               "data": {"name": "Ana L", "attributes": {"tier": "silver"}}}),
        json!({"event_id": "i1", "type": "customer.identity_added", "occurred_at": at(6), "customer_id": "c1",
               "data": {"identity": {"kind": "phone", "value": "+44 20 7946 0958"}, "verified": true}}),
    ]);
    let v = view(&store, "c1");
    assert_eq!(v.name.as_deref(), Some("Ana Lopez"));
    assert_eq!(
        v.attributes,
        [("tier".to_string(), json!("silver"))]
            .into_iter()
            .collect()
    );
    assert_eq!(v.identities.len(), 1);
    assert_eq!(
        (v.identities[0].value.as_str(), v.identities[0].verified),
        ("+442079460958", true)
    );
    assert_eq!(v.merged_into, None);
}

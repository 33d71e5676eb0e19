//! Ingest validation: every rule of events.md, each error naming its field.

use crm_events::{EventData, EventType, Validator};
use serde_json::{json, Value};

fn v() -> Validator {
    Validator::new()
}

fn base(t: &str) -> Value {
    json!({
        "event_id": "e-1", "type": t, "occurred_at": "2026-11-20T09:30:00+01:00",
        "source": "pbx-east", "customer_id": "c-1", "interaction_id": "i-1",
        "case_id": "k-1", "campaign_id": "m-1", "data": {}
    })
}

fn errors(ev: Value) -> Vec<(String, String)> {
    v().validate(ev)
        .expect_err("should be rejected")
        .into_iter()
        .map(|e| (e.path, e.message))
        .collect()
}

fn paths(ev: Value) -> Vec<String> {
    errors(ev).into_iter().map(|(p, _)| p).collect()
}

#[test]
fn a_valid_event_is_typed_and_its_time_held_in_utc() {
    let mut ev = base("interaction.started");
    ev["data"] = json!({"channel": "phone", "direction": "inbound",
        "from": {"kind": "phone", "value": "0044 20 7946 0958"}, "custom": {"x": 1}});
    let e = v().validate(ev).unwrap();
    assert_eq!(e.event_type(), EventType::InteractionStarted);
    assert_eq!(e.version, 1);
    assert_eq!(e.occurred_at.to_rfc3339(), "2026-11-20T08:30:00+00:00");
    let EventData::InteractionStarted(d) = &e.data else {
        panic!()
    };
    assert_eq!(d.from.as_ref().unwrap().value, "+442079460958");
    assert_eq!(
        d.extra["custom"],
        json!({"x": 1}),
        "unknown data fields pass through"
    );
    assert_eq!(e.stream_key(), "interaction/i-1");
}

/// The smallest valid `data` of every type in the catalog.
fn minimal_data() -> Vec<(&'static str, Value)> {
    vec![
        ("customer.registered", json!({})),
        ("customer.profile_updated", json!({})),
        (
            "customer.identity_added",
            json!({"identity": {"kind": "email", "value": "A@B.CO"}}),
        ),
        (
            "customer.identity_removed",
            json!({"identity": {"kind": "card", "value": "4111"}}),
        ),
        ("customer.merged", json!({"merged_customer_id": "c-2"})),
        ("customer.unmerged", json!({"merged_customer_id": "c-2"})),
        (
            "consent.granted",
            json!({"channel": "sms", "purpose": "marketing"}),
        ),
        (
            "consent.revoked",
            json!({"channel": "any", "purpose": "survey"}),
        ),
        (
            "interaction.started",
            json!({"channel": "chat", "direction": "inbound"}),
        ),
        ("interaction.message", json!({"author": "bot"})),
        ("interaction.assigned", json!({})),
        ("interaction.transferred", json!({})),
        ("interaction.ended", json!({"outcome": "abandoned"})),
        (
            "interaction.recorded",
            json!({"channel": "email", "direction": "outbound"}),
        ),
        ("interaction.identified", json!({})),
        ("case.opened", json!({"category": "billing"})),
        ("case.interaction_linked", json!({})),
        ("case.customer_identified", json!({})),
        ("case.categorized", json!({"category": "fraud"})),
        ("case.assigned", json!({})),
        ("case.escalated", json!({"to_tier": 2})),
        ("case.note_added", json!({"text": "called back"})),
        ("case.responded", json!({})),
        ("case.resolved", json!({"resolution": "refunded"})),
        ("case.reopened", json!({})),
        ("case.closed", json!({})),
        ("case.voided", json!({"reason": "prank"})),
        (
            "campaign.created",
            json!({"name": "Q4", "channel": "phone", "purpose": "marketing"}),
        ),
        ("campaign.contact_added", json!({})),
        ("campaign.contact_assigned", json!({})),
        (
            "campaign.attempt_made",
            json!({"channel": "phone", "result": "busy"}),
        ),
        ("campaign.contact_outcome", json!({"outcome": "declined"})),
        ("campaign.paused", json!({})),
        ("campaign.resumed", json!({})),
        ("campaign.completed", json!({})),
    ]
}

#[test]
fn every_catalog_type_accepts_its_minimal_event() {
    let minimal = minimal_data();
    assert_eq!(minimal.len(), EventType::ALL.len());
    for (t, data) in minimal {
        let mut ev = base(t);
        ev["data"] = data.clone();
        let e = v().validate(ev).unwrap_or_else(|e| panic!("{t}: {e:?}"));
        assert_eq!(e.event_type().as_str(), t);
    }
}

#[test]
fn every_catalog_type_keeps_unknown_data_fields_when_validated_and_when_read_back() {
    let custom = json!({"ticket": {"refs": [1, "b", null]}, "zz": 2.5});
    for (t, data) in minimal_data() {
        let mut data = data.as_object().unwrap().clone();
        data.insert("x-custom".into(), custom.clone());
        data.insert("a_custom".into(), json!("first in order"));
        let mut ev = base(t);
        ev["data"] = Value::Object(data);
        // Validation reads the data from a parsed value ...
        let e = v().validate(ev).unwrap_or_else(|e| panic!("{t}: {e:?}"));
        let stored: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(stored["data"]["x-custom"], custom, "{t}: validated");
        assert_eq!(
            stored["data"]["a_custom"], "first in order",
            "{t}: validated"
        );
        // ... the projections from the stored text.
        let back = crm_events::Event::from_stored_json(&e.to_json()).unwrap();
        assert_eq!(back, e, "{t}: read back");
        assert_eq!(back.to_json(), e.to_json(), "{t}: read back");
    }
}

#[test]
fn required_data_fields_are_named() {
    assert_eq!(
        paths(base("interaction.started")),
        ["/data/channel", "/data/direction"]
    );
    assert_eq!(paths(base("case.opened")), ["/data/category"]);
    assert_eq!(paths(base("case.voided")), ["/data/reason"]);
    assert_eq!(
        paths(base("campaign.attempt_made")),
        ["/data/channel", "/data/result"]
    );
}

#[test]
fn required_envelope_fields_are_named_per_type() {
    let mut ev = base("interaction.identified");
    ev.as_object_mut().unwrap().remove("customer_id");
    assert_eq!(paths(ev), ["/customer_id"]);
    let mut ev = base("case.interaction_linked");
    ev.as_object_mut().unwrap().remove("interaction_id");
    assert_eq!(paths(ev), ["/interaction_id"]);
    let mut ev = base("customer.registered");
    for f in ["event_id", "occurred_at", "source", "data", "customer_id"] {
        ev.as_object_mut().unwrap().remove(f);
    }
    let mut p = paths(ev);
    p.sort();
    assert_eq!(
        p,
        [
            "/customer_id",
            "/data",
            "/event_id",
            "/occurred_at",
            "/source"
        ]
    );
}

#[test]
fn enums_are_enforced() {
    let mut ev = base("interaction.ended");
    ev["data"] = json!({"outcome": "hung_up"});
    assert_eq!(paths(ev), ["/data/outcome"]);
    let mut ev = base("consent.granted");
    ev["data"] = json!({"channel": "fax", "purpose": "marketing"});
    assert_eq!(paths(ev), ["/data/channel"]);
    let mut ev = base("customer.identity_added");
    ev["data"] = json!({"identity": {"kind": "pager", "value": "1"}});
    assert_eq!(paths(ev), ["/data/identity/kind"]);
}

#[test]
fn unknown_type_and_version_are_named() {
    let (p, m) = errors(base("interaction.teleported")).remove(0);
    assert_eq!(p, "/type");
    assert!(m.contains("interaction.teleported"), "{m}");
    let mut ev = base("case.closed");
    ev["version"] = json!(7);
    assert_eq!(paths(ev), ["/version"]);
    let mut ev = base("case.closed");
    ev["version"] = json!(0);
    assert!(paths(ev).contains(&"/version".to_string()));
}

#[test]
fn times_must_be_rfc3339_with_offset() {
    for bad in [
        "2026-11-20 09:30:00",
        "2026-11-20T09:30:00",
        "yesterday",
        "2026-13-01T00:00:00Z",
    ] {
        let mut ev = base("case.closed");
        ev["occurred_at"] = json!(bad);
        assert_eq!(paths(ev), ["/occurred_at"], "{bad}");
    }
    let mut ev = base("campaign.contact_outcome");
    ev["data"] = json!({"outcome": "callback_requested", "callback_at": "tomorrow"});
    assert_eq!(paths(ev), ["/data/callback_at"]);
}

#[test]
fn callback_at_is_required_for_callback_requested() {
    let mut ev = base("campaign.contact_outcome");
    ev["data"] = json!({"outcome": "callback_requested"});
    assert_eq!(paths(ev), ["/data/callback_at"]);
}

#[test]
fn unknown_top_level_fields_are_rejected_but_data_fields_pass() {
    let mut ev = base("case.closed");
    ev["custmer_id"] = json!("typo");
    ev["data"] = json!({"anything": [1, 2]});
    assert_eq!(paths(ev), ["/custmer_id"]);
    let mut ev = base("case.closed");
    ev["recorded_at"] = json!("2026-11-20T09:30:00Z");
    let (p, m) = errors(ev).remove(0);
    assert_eq!(p, "/recorded_at");
    assert!(m.contains("set by the ledger"), "{m}");
}

#[test]
fn identities_that_cannot_be_normalised_are_named() {
    let mut ev = base("customer.registered");
    ev["data"] = json!({"identities": [
        {"kind": "email", "value": "ok@example.com"},
        {"kind": "phone", "value": "not a number"},
        {"kind": "email", "value": "nobody"}]});
    assert_eq!(
        paths(ev),
        ["/data/identities/1/value", "/data/identities/2/value"]
    );
    let mut ev = base("interaction.started");
    ev["data"] = json!({"channel": "phone", "direction": "inbound", "from": {"kind": "phone", "value": "12"}});
    assert_eq!(paths(ev), ["/data/from/value"]);
}

#[test]
fn bad_shapes_are_rejected_with_a_path() {
    assert_eq!(paths(json!([1])), [""]);
    assert_eq!(paths(json!("x")), [""]);
    let mut ev = base("case.escalated");
    ev["data"] = json!({"to_tier": "two"});
    assert_eq!(paths(ev), ["/data/to_tier"]);
    let mut ev = base("case.closed");
    ev["event_id"] = json!("");
    assert_eq!(paths(ev), ["/event_id"]);
    let mut ev = base("case.closed");
    ev["event_id"] = json!("x".repeat(129));
    assert_eq!(paths(ev), ["/event_id"]);
    let mut ev = base("case.closed");
    ev["customer_id"] = Value::Null;
    assert_eq!(paths(ev), ["/customer_id"]);
    let mut ev = base("customer.merged");
    ev["data"] = json!({"merged_customer_id": "c-1"});
    assert_eq!(paths(ev), ["/data/merged_customer_id"]);
    assert_eq!(v().validate_json(b"{not json").unwrap_err()[0].path, "");
}

#[test]
fn stored_form_round_trips_and_hash_ignores_recorded_at() {
    let mut ev = base("case.opened");
    ev["data"] = json!({"category": "billing", "related": {"order": "o-9"}, "x-extra": true});
    let mut e = v().validate(ev).unwrap();
    let h = e.content_hash();
    e.recorded_at = Some(e.occurred_at);
    assert_eq!(e.content_hash(), h);
    let back = crm_events::Event::from_stored_json(&e.to_json()).unwrap();
    assert_eq!(back, e);
    // The stored form is itself a valid event once the ledger's field is removed.
    let mut stored: Value = serde_json::from_str(&e.to_json()).unwrap();
    stored.as_object_mut().unwrap().remove("recorded_at");
    assert_eq!(v().validate(stored).unwrap(), {
        e.recorded_at = None;
        e
    });
}

#[test]
fn interaction_ended_v1_is_stored_as_published_and_upcast_to_v2() {
    let mut v1 = base("interaction.ended");
    v1["data"] = json!({"outcome": "completed", "talk_seconds": 120, "handle_seconds": 150.5, "wrapup_code": "OK"});
    let e1 = v().validate(v1).unwrap();
    assert_eq!(e1.version, 1);
    let EventData::InteractionEnded(d) = &e1.data else {
        panic!()
    };
    assert_eq!(d.durations.talk_seconds, Some(120.0));
    assert_eq!(d.durations.handle_seconds, Some(150.5));
    let stored = e1.to_json();
    assert!(
        stored.contains("\"version\":1") && stored.contains("\"talk_seconds\":120"),
        "{stored}"
    );
    assert_eq!(crm_events::Event::from_stored_json(&stored).unwrap(), e1);

    let mut v2 = base("interaction.ended");
    v2["version"] = json!(2);
    v2["data"] = json!({"outcome": "completed", "durations": {"talk_seconds": 120, "handle_seconds": 150.5}, "wrapup_code": "OK"});
    let e2 = v().validate(v2).unwrap();
    assert_eq!(e2.version, 2);
    assert_eq!(e2.data, e1.data, "v1 upcasts to exactly the v2 data");
    assert!(e2.published_data.is_none());

    let mut bad = base("interaction.ended");
    bad["version"] = json!(2);
    bad["data"] = json!({"outcome": "completed", "durations": {"talk_secs": 1}});
    assert_eq!(paths(bad), ["/data/durations/talk_secs"]);
    let mut bad = base("interaction.ended");
    bad["version"] = json!(2);
    bad["data"] = json!({"outcome": "completed", "durations": {"hold_seconds": -1}});
    assert_eq!(paths(bad), ["/data/durations/hold_seconds"]);
}

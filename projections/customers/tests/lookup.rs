//! Screen pop: lookup by any identity, normalised like ingest, answering
//! zero, one or several customers, merged ones once as their survivor.

mod common;

use common::*;
use crm_customers::*;
use crm_projection::query::QueryError;
use serde_json::json;

fn base() -> Vec<serde_json::Value> {
    vec![
        registered(
            "ra",
            "c-a",
            "Ana",
            json!([{"kind": "phone", "value": "+44 20 7946 0958"},
                                               {"kind": "email", "value": "Ana@Example.com"}]),
        ),
        // A shared household phone.
        registered(
            "rb",
            "c-b",
            "Bea",
            json!([{"kind": "phone", "value": "0044 20 7946 0958"}]),
        ),
        registered("rc", "c-c", "Cid", json!([])),
        json!({"event_id": "ic1", "type": "customer.identity_added", "occurred_at": at(1), "customer_id": "c-c",
               "data": {"identity": {"kind": "account", "value": "ACC-1"}, "verified": true}}),
        json!({"event_id": "ic2", "type": "customer.identity_added", "occurred_at": at(2), "customer_id": "c-c",
               "data": {"identity": {"kind": "card", "value": "4111111111111111"}}}),
        // Activity: c-b called later than c-a; c-a has an open case.
        json!({"event_id": "x1", "type": "interaction.recorded", "occurred_at": at(10), "interaction_id": "i1",
               "customer_id": "c-a", "data": {"channel": "phone", "direction": "inbound"}}),
        json!({"event_id": "x2", "type": "interaction.recorded", "occurred_at": at(20), "interaction_id": "i2",
               "customer_id": "c-b", "data": {"channel": "phone", "direction": "inbound"}}),
        json!({"event_id": "k1", "type": "case.opened", "occurred_at": at(11), "case_id": "case-1", "customer_id": "c-a",
               "data": {"category": "billing"}}),
    ]
}

#[test]
fn lookup_answers_zero_one_or_several_customers() {
    let store = fold(base());
    let none = lookup(&store, "phone", "+1 212 555 0142").unwrap();
    assert!(none.matches.is_empty());
    let one = lookup(&store, "email", "  ANA@example.COM ").unwrap();
    assert_eq!(match_ids(&one), ["c-a"]);
    assert_eq!(one.matches[0].name.as_deref(), Some("Ana"));
    // Messy formats normalise like ingest; most recently active first.
    let several = lookup(&store, "phone", "+44 (0)20-7946-0958").unwrap();
    assert_eq!(match_ids(&several), ["c-b", "c-a"]);
    let a = &several.matches[1];
    assert_eq!(a.open_cases, 1);
    assert_eq!(a.last_interaction_at.as_deref(), Some(at(10).as_str()));
    assert_eq!(several.matches[0].open_cases, 0);
    assert_eq!(
        several.matches[0].last_interaction_at.as_deref(),
        Some(at(20).as_str())
    );
}

#[test]
fn lookup_by_account_and_card_works_like_phone_and_email() {
    let store = fold(base());
    let acc = lookup(&store, "account", " ACC-1 ").unwrap();
    assert_eq!(match_ids(&acc), ["c-c"]);
    assert!(acc.matches[0].verified);
    let card = lookup(&store, "card", "4111111111111111").unwrap();
    assert_eq!(match_ids(&card), ["c-c"]);
    assert!(!card.matches[0].verified);
}

#[test]
fn removed_identities_no_longer_match_even_if_published_out_of_time_order() {
    let mut events = base();
    events.push(json!({"event_id": "ic3", "type": "customer.identity_removed", "occurred_at": at(30), "customer_id": "c-c",
        "data": {"identity": {"kind": "card", "value": "4111111111111111"}}}));
    // An add published later but that happened before the removal does not bring it back.
    events.push(json!({"event_id": "ic4", "type": "customer.identity_added", "occurred_at": at(25), "customer_id": "c-c",
        "data": {"identity": {"kind": "card", "value": "4111111111111111"}}}));
    let store = fold(events);
    assert!(lookup(&store, "card", "4111111111111111")
        .unwrap()
        .matches
        .is_empty());
    assert!(view(&store, "c-c")
        .identities
        .iter()
        .all(|i| i.kind != "card"));
}

#[test]
fn merged_customers_appear_once_as_their_survivor() {
    let mut events = base();
    events.push(json!({"event_id": "m1", "type": "customer.merged", "occurred_at": at(40), "customer_id": "c-b",
        "data": {"merged_customer_id": "c-a", "reason": "duplicate"}}));
    let store = fold(events);
    let r = lookup(&store, "phone", "+442079460958").unwrap();
    assert_eq!(match_ids(&r), ["c-b"]);
    // The survivor's figures include the merged customer's.
    assert_eq!(r.matches[0].open_cases, 1);
    assert_eq!(r.matches[0].name.as_deref(), Some("Bea"));
    assert_eq!(
        match_ids(&lookup(&store, "email", "ana@example.com").unwrap()),
        ["c-b"]
    );
}

#[test]
fn bad_kind_or_value_is_invalid_naming_the_parameter() {
    let store = fold(base());
    assert_eq!(
        invalid_param(lookup(&store, "fax", "123").unwrap_err()),
        "kind"
    );
    assert_eq!(
        invalid_param(lookup(&store, "", "123").unwrap_err()),
        "kind"
    );
    assert_eq!(
        invalid_param(lookup(&store, "phone", "020 7946 0958").unwrap_err()),
        "value"
    );
    assert_eq!(
        invalid_param(lookup(&store, "email", "not-an-email").unwrap_err()),
        "value"
    );
    assert_eq!(
        invalid_param(lookup(&store, "card", "   ").unwrap_err()),
        "value"
    );
    assert!(matches!(
        lookup(&store, "phone", "x"),
        Err(QueryError::Invalid { .. })
    ));
}

#[test]
fn ivr_inputs_feed_suggestions_but_never_attribute() {
    let mut events = base();
    events.push(json!({"event_id": "v1", "type": "interaction.started", "occurred_at": at(50), "interaction_id": "i-ivr",
        "data": {"channel": "phone", "direction": "inbound", "from": {"kind": "phone", "value": "+12125550142"},
                 "ivr": {"path": ["main", "cards"], "inputs": {"account": " ACC-1 ", "card_number": "4111111111111111",
                                                               "menu": "2"}}}}));
    let store = fold(events);
    let i = interaction(&store, "i-ivr").unwrap().unwrap();
    assert_eq!(i.customer_id, None);
    let hints: Vec<(&str, &str, &str)> = i
        .identity_hints
        .iter()
        .map(|h| (h.kind.as_str(), h.value.as_str(), h.source.as_str()))
        .collect();
    assert_eq!(
        hints,
        [
            ("account", "ACC-1", "ivr"),
            ("card", "4111111111111111", "ivr"),
            ("phone", "+12125550142", "from")
        ]
    );
    let suggested: Vec<(&str, Vec<&str>)> = i
        .suggestions
        .iter()
        .map(|s| {
            (
                s.kind.as_str(),
                s.matches.iter().map(|m| m.customer_id.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        suggested,
        [
            ("account", vec!["c-c"]),
            ("card", vec!["c-c"]),
            ("phone", vec![])
        ]
    );
    assert_eq!(i.ivr.as_ref().unwrap()["inputs"]["account"], " ACC-1 ");
    // The unidentified list carries the hints the desktop passes to lookup.
    let page = interactions(
        &store,
        &InteractionListParams {
            unidentified: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].identity_hints.len(), 3);
    let h = &page.items[0].identity_hints[1];
    assert_eq!(
        match_ids(&lookup(&store, &h.kind, &h.value).unwrap()),
        ["c-c"]
    );
    // Nothing is attributed to c-c.
    assert_eq!(view(&store, "c-c").stats.interactions_total, 0);
}

#[test]
fn an_outbound_interaction_suggests_its_callee() {
    let mut events = base();
    events.push(json!({"event_id": "o1", "type": "interaction.started", "occurred_at": at(50), "interaction_id": "i-out",
        "data": {"channel": "phone", "direction": "outbound", "from": {"kind": "phone", "value": "+12125550142"},
                 "to": {"kind": "phone", "value": "+442079460958"}}}));
    let store = fold(events);
    let i = interaction(&store, "i-out").unwrap().unwrap();
    assert_eq!(i.suggestions.len(), 1);
    assert_eq!(i.suggestions[0].source, "to");
    assert_eq!(i.suggestions[0].matches.len(), 2);
}

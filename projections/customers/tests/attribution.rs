//! Caller is not customer: an interaction belongs to the customer its events
//! name, never to the owner of the number it came from.

mod common;

use common::*;
use crm_customers::*;
use serde_json::json;

const A_PHONE: &str = "+442079460958";

fn call_from_a_identified_as_b() -> Vec<serde_json::Value> {
    vec![
        registered(
            "ra",
            "c-a",
            "Ana",
            json!([{"kind": "phone", "value": A_PHONE}]),
        ),
        registered("rb", "c-b", "Bea", json!([])),
        json!({"event_id": "s1", "type": "interaction.started", "occurred_at": at(10), "interaction_id": "i1",
               "data": {"channel": "phone", "direction": "inbound", "from": {"kind": "phone", "value": A_PHONE}}}),
        json!({"event_id": "s2", "type": "interaction.identified", "occurred_at": at(11), "interaction_id": "i1",
               "customer_id": "c-b", "data": {"method": "agent_search"}}),
        json!({"event_id": "s3", "type": "interaction.ended", "occurred_at": at(15), "interaction_id": "i1",
               "data": {"outcome": "completed"}}),
    ]
}

#[test]
fn a_call_from_as_phone_identified_as_b_belongs_to_b_alone() {
    let store = fold(call_from_a_identified_as_b());
    let a = view(&store, "c-a");
    assert_eq!(a.stats.interactions_total, 0);
    assert!(a.recent_interactions.is_empty());
    assert!(tl(&store, "c-a").iter().all(|i| i.interaction_id.is_none()));
    let b = view(&store, "c-b");
    assert_eq!(b.stats.interactions_total, 1);
    assert_eq!(recent_ids(&b), ["i1"]);
    assert_eq!(ids(&tl(&store, "c-b")), ["s3", "s2", "s1", "rb"]);
    let i = interaction(&store, "i1").unwrap().unwrap();
    assert_eq!(i.customer_id.as_deref(), Some("c-b"));
    assert_eq!(i.identified_by.as_deref(), Some("agent_search"));
    // The phone still finds A: lookup matches identities, not callers.
    assert_eq!(
        match_ids(&lookup(&store, "phone", A_PHONE).unwrap()),
        ["c-a"]
    );
}

#[test]
fn a_from_identity_alone_never_attributes() {
    let mut events = call_from_a_identified_as_b();
    events.retain(|e| e["event_id"] != "s2");
    let store = fold(events);
    assert_eq!(view(&store, "c-a").stats.interactions_total, 0);
    let i = interaction(&store, "i1").unwrap().unwrap();
    assert_eq!(i.customer_id, None);
    // ... but it suggests A.
    assert_eq!(i.suggestions.len(), 1);
    assert_eq!(i.suggestions[0].source, "from");
    assert_eq!(
        match_ids(&LookupResponse {
            matches: i.suggestions[0].matches.clone()
        }),
        ["c-a"]
    );
}

#[test]
fn identified_takes_precedence_over_an_envelope_customer_id() {
    let store = fold(vec![
        json!({"event_id": "s1", "type": "interaction.started", "occurred_at": at(10), "interaction_id": "i1",
               "customer_id": "c-a", "data": {"channel": "phone", "direction": "inbound"}}),
        json!({"event_id": "s2", "type": "interaction.identified", "occurred_at": at(5), "interaction_id": "i1",
               "customer_id": "c-b", "data": {"method": "verified"}}),
        // A later envelope customer_id does not override an identification.
        json!({"event_id": "s3", "type": "interaction.ended", "occurred_at": at(20), "interaction_id": "i1",
               "customer_id": "c-a", "data": {"outcome": "completed"}}),
    ]);
    assert_eq!(
        interaction(&store, "i1")
            .unwrap()
            .unwrap()
            .customer_id
            .as_deref(),
        Some("c-b")
    );
    assert_eq!(view(&store, "c-b").stats.interactions_total, 1);
    assert!(
        customer(&store, "c-a", now()).unwrap().is_none(),
        "nothing is c-a's"
    );
}

#[test]
fn the_latest_identification_by_occurred_at_wins_not_the_last_published() {
    let store = fold(vec![
        json!({"event_id": "s1", "type": "interaction.recorded", "occurred_at": at(0), "interaction_id": "i1",
               "data": {"channel": "email", "direction": "inbound"}}),
        json!({"event_id": "id-2", "type": "interaction.identified", "occurred_at": at(9), "interaction_id": "i1",
               "customer_id": "c-b"}),
        json!({"event_id": "id-1", "type": "interaction.identified", "occurred_at": at(5), "interaction_id": "i1",
               "customer_id": "c-a"}),
        // Same time: the larger event_id wins.
        json!({"event_id": "s2", "type": "interaction.recorded", "occurred_at": at(0), "interaction_id": "i2",
               "data": {"channel": "sms", "direction": "inbound"}}),
        json!({"event_id": "id-z", "type": "interaction.identified", "occurred_at": at(5), "interaction_id": "i2",
               "customer_id": "c-b"}),
        json!({"event_id": "id-y", "type": "interaction.identified", "occurred_at": at(5), "interaction_id": "i2",
               "customer_id": "c-a"}),
    ]);
    assert_eq!(
        interaction(&store, "i1")
            .unwrap()
            .unwrap()
            .customer_id
            .as_deref(),
        Some("c-b")
    );
    assert_eq!(
        interaction(&store, "i2")
            .unwrap()
            .unwrap()
            .customer_id
            .as_deref(),
        Some("c-b")
    );
    assert_eq!(view(&store, "c-b").stats.interactions_total, 2);
    assert!(
        customer(&store, "c-a", now()).unwrap().is_none(),
        "nothing is c-a's"
    );
}

#[test]
fn unidentified_interactions_are_listed_and_join_history_when_identified() {
    let mut store = fold(vec![
        registered("ra", "c-a", "Ana", json!([])),
        json!({"event_id": "s1", "type": "interaction.started", "occurred_at": at(10), "interaction_id": "i1",
               "data": {"channel": "chat", "direction": "inbound"}}),
        json!({"event_id": "s2", "type": "interaction.message", "occurred_at": at(11), "interaction_id": "i1",
               "data": {"author": "customer", "text": "hi"}}),
        json!({"event_id": "k1", "type": "interaction.recorded", "occurred_at": at(12), "interaction_id": "i2",
               "customer_id": "c-a", "data": {"channel": "email", "direction": "inbound"}}),
    ]);
    let page = interactions(
        &store,
        &InteractionListParams {
            unidentified: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        page.items
            .iter()
            .map(|i| i.interaction_id.as_str())
            .collect::<Vec<_>>(),
        ["i1"]
    );
    assert_eq!(page.items[0].customer_id, None);
    assert_eq!(page.items[0].channel.as_deref(), Some("chat"));
    let identified = interactions(
        &store,
        &InteractionListParams {
            unidentified: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        identified
            .items
            .iter()
            .map(|i| i.interaction_id.as_str())
            .collect::<Vec<_>>(),
        ["i2"]
    );
    let all = interactions(&store, &InteractionListParams::default()).unwrap();
    assert_eq!(
        all.items
            .iter()
            .map(|i| i.interaction_id.as_str())
            .collect::<Vec<_>>(),
        ["i2", "i1"]
    );
    assert_eq!(view(&store, "c-a").stats.interactions_total, 1);

    apply_more(
        &mut store,
        vec![
            json!({"event_id": "s3", "type": "interaction.identified", "occurred_at": at(13),
        "interaction_id": "i1", "customer_id": "c-a", "data": {"method": "ivr"}}),
        ],
    );
    let page = interactions(
        &store,
        &InteractionListParams {
            unidentified: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(page.items.is_empty());
    let a = view(&store, "c-a");
    assert_eq!(a.stats.interactions_total, 2);
    assert_eq!(a.stats.interactions_by_channel.get("chat"), Some(&1));
    assert_eq!(recent_ids(&a), ["i2", "i1"]);
    assert_eq!(ids(&tl(&store, "c-a")), ["s3", "k1", "s2", "s1", "ra"]);
}

#[test]
fn an_identification_published_before_the_other_events_attributes_them() {
    let store = fold(vec![
        json!({"event_id": "s0", "type": "interaction.identified", "occurred_at": at(10), "interaction_id": "i1",
               "customer_id": "c-a", "data": {"method": "ani"}}),
        json!({"event_id": "s1", "type": "interaction.started", "occurred_at": at(9), "interaction_id": "i1",
               "data": {"channel": "phone", "direction": "inbound"}}),
        json!({"event_id": "s2", "type": "interaction.ended", "occurred_at": at(12), "interaction_id": "i1",
               "data": {"outcome": "completed"}}),
    ]);
    let a = view(&store, "c-a");
    assert_eq!(a.stats.interactions_total, 1);
    assert_eq!(a.stats.interactions_by_channel.get("phone"), Some(&1));
    assert_eq!(
        a.stats.first_interaction_at.as_deref(),
        Some(at(9).as_str())
    );
    assert_eq!(ids(&tl(&store, "c-a")), ["s2", "s0", "s1"]);
    assert!(interactions(
        &store,
        &InteractionListParams {
            unidentified: Some(true),
            ..Default::default()
        }
    )
    .unwrap()
    .items
    .is_empty());
}

#[test]
fn re_identification_moves_the_interaction_and_its_events_from_a_to_b() {
    let mut store = fold(vec![
        registered("ra", "c-a", "Ana", json!([])),
        registered("rb", "c-b", "Bea", json!([])),
        json!({"event_id": "s1", "type": "interaction.started", "occurred_at": at(10), "interaction_id": "i1",
               "data": {"channel": "phone", "direction": "inbound"}}),
        json!({"event_id": "s2", "type": "interaction.identified", "occurred_at": at(11), "interaction_id": "i1",
               "customer_id": "c-a", "data": {"method": "ani"}}),
    ]);
    assert_eq!(ids(&tl(&store, "c-a")), ["s2", "s1", "ra"]);
    apply_more(
        &mut store,
        vec![
            json!({"event_id": "s3", "type": "interaction.identified", "occurred_at": at(12),
        "interaction_id": "i1", "customer_id": "c-b", "data": {"method": "verified"}}),
        ],
    );
    assert_eq!(ids(&tl(&store, "c-a")), ["ra"]);
    assert_eq!(ids(&tl(&store, "c-b")), ["s3", "s2", "s1", "rb"]);
    assert_eq!(view(&store, "c-a").stats.interactions_total, 0);
    assert_eq!(view(&store, "c-b").stats.interactions_total, 1);
}

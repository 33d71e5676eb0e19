//! Reversible merge: the merged customer folds into the survivor; an
//! unmerge gives back exactly what carried the merged id.

mod common;

use common::*;
use crm_customers::*;
use serde_json::{json, Value};

fn merged(id: &str, minutes: i64, survivor: &str, merged: &str) -> Value {
    json!({"event_id": id, "type": "customer.merged", "occurred_at": at(minutes), "customer_id": survivor,
           "data": {"merged_customer_id": merged, "reason": "duplicate"}})
}

fn unmerged(id: &str, minutes: i64, survivor: &str, merged: &str) -> Value {
    json!({"event_id": id, "type": "customer.unmerged", "occurred_at": at(minutes), "customer_id": survivor,
           "data": {"merged_customer_id": merged}})
}

fn recorded(id: &str, minutes: i64, iid: &str, cust: &str, channel: &str) -> Value {
    json!({"event_id": id, "type": "interaction.recorded", "occurred_at": at(minutes), "interaction_id": iid,
           "customer_id": cust, "data": {"channel": channel, "direction": "inbound"}})
}

/// A and B, each with identities, interactions, cases, consents and campaign contacts.
fn two_customers() -> Vec<Value> {
    vec![
        registered(
            "ra",
            "c-a",
            "Ana (old)",
            json!([{"kind": "email", "value": "ana@old.example"}]),
        ),
        json!({"event_id": "pa", "type": "customer.profile_updated", "occurred_at": at(1), "customer_id": "c-a",
               "data": {"attributes": {"tier": "gold", "lang": "es"}}}),
        registered(
            "rb",
            "c-b",
            "Ana Lopez",
            json!([{"kind": "phone", "value": "+442079460958"}]),
        ),
        json!({"event_id": "pb", "type": "customer.profile_updated", "occurred_at": at(1), "customer_id": "c-b",
               "data": {"attributes": {"tier": "silver"}}}),
        recorded("xa", 10, "i-a", "c-a", "email"),
        recorded("xb", 11, "i-b", "c-b", "phone"),
        json!({"event_id": "ka", "type": "case.opened", "occurred_at": at(12), "case_id": "case-a", "customer_id": "c-a",
               "data": {"category": "billing"}}),
        json!({"event_id": "na", "type": "consent.granted", "occurred_at": at(13), "customer_id": "c-a",
               "data": {"channel": "email", "purpose": "marketing"}}),
        json!({"event_id": "ca", "type": "campaign.contact_added", "occurred_at": at(14), "campaign_id": "camp-1",
               "customer_id": "c-a"}),
        json!({"event_id": "cb", "type": "campaign.attempt_made", "occurred_at": at(15), "campaign_id": "camp-1",
               "customer_id": "c-a", "data": {"channel": "email", "result": "delivered"}}),
    ]
}

#[test]
fn the_merged_id_answers_with_the_survivors_view() {
    let mut events = two_customers();
    events.push(merged("m1", 20, "c-b", "c-a"));
    let store = fold(events);
    let via_a = view(&store, "c-a");
    assert_eq!(via_a.customer_id, "c-b");
    assert_eq!(via_a.merged_into.as_deref(), Some("c-b"));
    let b = view(&store, "c-b");
    assert_eq!(b.merged_into, None);
    assert_eq!(b.merged_from, ["c-a"]);
    assert_eq!(via_a.merged_from, ["c-a"]);
    assert_eq!(b.name.as_deref(), Some("Ana Lopez"));
    // The survivor's attributes win; the merged customer's fill the gaps.
    assert_eq!(b.attributes["tier"], "silver");
    assert_eq!(b.attributes["lang"], "es");
    let idents: Vec<(&str, &str)> = b
        .identities
        .iter()
        .map(|i| (i.kind.as_str(), i.value.as_str()))
        .collect();
    assert_eq!(
        idents,
        [("email", "ana@old.example"), ("phone", "+442079460958")]
    );
    assert_eq!(b.stats.interactions_total, 2);
    assert_eq!(recent_ids(&b), ["i-b", "i-a"]);
    assert_eq!(b.stats.cases_open, 1);
    assert_eq!(b.open_cases[0].case_id, "case-a");
    assert_eq!(b.consents.len(), 1);
    assert_eq!(b.consents[0].status, "granted");
    assert_eq!(b.campaigns.len(), 1);
    assert_eq!(b.campaigns[0].attempts, 1);
    // Both timelines, the merge event once.
    let items = tl(&store, "c-b");
    assert_eq!(items.iter().filter(|i| i.event_id == "m1").count(), 1);
    assert_eq!(items.len(), two_customers().len() + 1);
    assert_eq!(ids(&tl(&store, "c-a")), ids(&items));
    // The interaction answers with the survivor.
    assert_eq!(
        interaction(&store, "i-a")
            .unwrap()
            .unwrap()
            .customer_id
            .as_deref(),
        Some("c-b")
    );
}

#[test]
fn unmerge_restores_exactly_what_was_the_merged_customers_own() {
    let mut events = two_customers();
    events.push(merged("m1", 20, "c-b", "c-a"));
    // After the merge: the survivor gets a new interaction and a new case.
    events.push(recorded("xb2", 25, "i-b2", "c-b", "chat"));
    events.push(
        json!({"event_id": "kb", "type": "case.opened", "occurred_at": at(26), "case_id": "case-b",
                       "customer_id": "c-b", "data": {"category": "fraud"}}),
    );
    events.push(unmerged("u1", 30, "c-b", "c-a"));
    let store = fold(events);
    let a = view(&store, "c-a");
    assert_eq!(a.customer_id, "c-a");
    assert_eq!(a.merged_into, None);
    assert_eq!(a.name.as_deref(), Some("Ana (old)"));
    assert_eq!(recent_ids(&a), ["i-a"]);
    assert_eq!(a.stats.cases_total, 1);
    assert_eq!(a.open_cases[0].case_id, "case-a");
    assert_eq!(a.identities.len(), 1);
    assert_eq!(a.consents.len(), 1);
    assert_eq!(a.campaigns.len(), 1);
    let b = view(&store, "c-b");
    assert!(b.merged_from.is_empty());
    assert_eq!(recent_ids(&b), ["i-b2", "i-b"]);
    assert_eq!(b.stats.cases_total, 1);
    assert_eq!(b.open_cases[0].case_id, "case-b");
    assert!(b.consents.is_empty());
    assert!(b.campaigns.is_empty());
    assert_eq!(b.attributes.get("lang"), None);
    assert_eq!(
        match_ids(&lookup(&store, "email", "ana@old.example").unwrap()),
        ["c-a"]
    );
    assert!(tl(&store, "c-b").iter().all(|i| i.event_id != "xa"));
    assert!(tl(&store, "c-a").iter().all(|i| i.event_id != "xb2"));
}

#[test]
fn a_merge_undone_and_redone_is_in_force() {
    let mut events = two_customers();
    events.push(merged("m1", 20, "c-b", "c-a"));
    events.push(unmerged("u1", 30, "c-b", "c-a"));
    events.push(merged("m2", 40, "c-b", "c-a"));
    let store = fold(events);
    assert_eq!(view(&store, "c-a").merged_into.as_deref(), Some("c-b"));
}

#[test]
fn chains_resolve_to_the_last_survivor_and_unmerging_the_middle_link_works() {
    let mut events = two_customers();
    events.push(registered("rc", "c-c", "Ana L.", json!([])));
    events.push(recorded("xc", 16, "i-c", "c-c", "sms"));
    events.push(merged("m1", 20, "c-b", "c-a"));
    events.push(merged("m2", 21, "c-c", "c-b"));
    let chained = fold(events.clone());
    let via_a = view(&chained, "c-a");
    assert_eq!(via_a.customer_id, "c-c");
    assert_eq!(via_a.merged_into.as_deref(), Some("c-c"));
    assert_eq!(via_a.merged_from, ["c-a", "c-b"]);
    assert_eq!(via_a.stats.interactions_total, 3);
    assert_eq!(view(&chained, "c-b").merged_into.as_deref(), Some("c-c"));
    assert_eq!(
        match_ids(&lookup(&chained, "email", "ana@old.example").unwrap()),
        ["c-c"]
    );

    // Unmerge the middle link (B from C): A stays merged into B.
    events.push(unmerged("u2", 30, "c-c", "c-b"));
    let split = fold(events);
    let b = view(&split, "c-b");
    assert_eq!(b.merged_into, None);
    assert_eq!(b.merged_from, ["c-a"]);
    assert_eq!(recent_ids(&b), ["i-b", "i-a"]);
    assert_eq!(view(&split, "c-a").merged_into.as_deref(), Some("c-b"));
    let c = view(&split, "c-c");
    assert!(c.merged_from.is_empty());
    assert_eq!(recent_ids(&c), ["i-c"]);
}

#[test]
fn unmerging_the_first_link_of_a_chain_keeps_the_second() {
    let mut events = two_customers();
    events.push(registered("rc", "c-c", "Ana L.", json!([])));
    events.push(merged("m1", 20, "c-b", "c-a"));
    events.push(merged("m2", 21, "c-c", "c-b"));
    events.push(unmerged("u1", 30, "c-b", "c-a"));
    let store = fold(events);
    assert_eq!(view(&store, "c-a").merged_into, None);
    assert_eq!(view(&store, "c-b").merged_into.as_deref(), Some("c-c"));
    assert_eq!(view(&store, "c-c").merged_from, ["c-b"]);
}

#[test]
fn merge_cycles_resolve_to_one_survivor() {
    // A into B, then (without an unmerge) B into A: the oldest edge of the
    // cycle is ignored, so A survives, whichever id is asked.
    let mut events = two_customers();
    events.push(merged("m1", 20, "c-b", "c-a"));
    events.push(merged("m2", 30, "c-a", "c-b"));
    let store = fold(events);
    assert_eq!(view(&store, "c-a").customer_id, "c-a");
    assert_eq!(view(&store, "c-a").merged_into, None);
    assert_eq!(view(&store, "c-b").customer_id, "c-a");
    assert_eq!(view(&store, "c-a").merged_from, ["c-b"]);
}

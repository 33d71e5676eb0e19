//! Merged customers count once, under the survivor; unmerge restores.

mod common;

use common::*;
use crm_campaigns::{
    campaign, contact, contacts, violations, ContactItem, ContactsParams, ViolationsParams,
};
use crm_projection::MemStore;
use serde_json::{json, Value};

fn items(s: &MemStore, k: &str) -> Vec<ContactItem> {
    contacts(s, k, &ContactsParams::default())
        .unwrap()
        .unwrap()
        .items
}

fn base() -> Vec<Value> {
    let k = "k1";
    vec![
        created("e0", k, &t(18, "08:00"), json!({})),
        added("e1", k, "c1", &t(18, "09:00"), Some("A")),
        added("e2", k, "c2", &t(18, "09:00"), Some("B")),
        added("e3", k, "c3", &t(18, "09:00"), None),
        attempt("a1", k, "c1", &t(20, "10:00"), "phone", "no_answer", None),
        attempt("a2", k, "c2", &t(20, "11:00"), "phone", "connected", None),
        outcome(
            "o2",
            k,
            "c2",
            &t(20, "11:05"),
            "converted",
            json!({"value": 10}),
        ),
        attempt("a3", k, "c3", &t(20, "12:00"), "phone", "busy", None),
    ]
}

#[test]
fn a_merged_contact_counts_once_under_the_survivor_and_unmerge_restores_it() {
    let k = "k1";
    let plain = fold(base(), &[k]);
    let before = campaign(&plain, k).unwrap().unwrap();
    assert_eq!(
        (
            before.contacts_total,
            before.contacts_attempted,
            before.contacts_reached
        ),
        (3, 3, 1)
    );

    let mut evs = base();
    evs.push(merged("m1", "c1", "c2", &t(21, "08:00")));
    let s = fold(evs.clone(), &[k]);
    let v = campaign(&s, k).unwrap().unwrap();
    assert_eq!(
        (
            v.contacts_total,
            v.contacts_attempted,
            v.contacts_reached,
            v.attempts_total
        ),
        (2, 2, 1, 3)
    );
    assert_eq!(v.outcomes["converted"], 1);
    assert_eq!(v.value_total, 10.0);
    let list = items(&s, k);
    assert_eq!(
        list.iter()
            .map(|i| i.customer_id.as_str())
            .collect::<Vec<_>>(),
        ["c1", "c3"]
    );
    assert_eq!(list[0].merged_ids, ["c2"]);
    assert_eq!(list[0].attempts, 2);
    assert_eq!(list[0].last_outcome.as_deref(), Some("converted"));
    // The latest assignment of the group (both at 09:00: event id order) decides.
    assert_eq!(list[0].agent_id.as_deref(), Some("B"));
    // A merged id answers with its survivor's contact.
    assert_eq!(
        contact(&s, k, "c2").unwrap().unwrap().contact.customer_id,
        "c1"
    );

    // Unmerge restores exactly the state without the merge.
    evs.push(unmerged("m2", "c1", "c2", &t(22, "08:00")));
    let s = fold(evs, &[k]);
    assert_eq!(campaign(&s, k).unwrap().unwrap(), before);
    assert_eq!(items(&s, k), items(&plain, k));
}

#[test]
fn merge_chains_resolve_to_the_last_survivor_and_unmerging_a_middle_link_splits_them() {
    let k = "k1";
    let mut evs = base();
    // c3 into c2, c2 into c1: all three are one contact under c1.
    evs.push(merged("m1", "c2", "c3", &t(21, "08:00")));
    evs.push(merged("m2", "c1", "c2", &t(21, "09:00")));
    let s = fold(evs.clone(), &[k]);
    let v = campaign(&s, k).unwrap().unwrap();
    assert_eq!((v.contacts_total, v.attempts_total), (1, 3));
    assert_eq!(items(&s, k)[0].merged_ids, ["c2", "c3"]);
    // Unmerging c2 from c1 brings c2 back, with c3 still merged into it.
    evs.push(unmerged("m3", "c1", "c2", &t(22, "08:00")));
    let s = fold(evs, &[k]);
    let list = items(&s, k);
    assert_eq!(
        list.iter()
            .map(|i| i.customer_id.as_str())
            .collect::<Vec<_>>(),
        ["c1", "c2"]
    );
    assert_eq!(list[1].merged_ids, ["c3"]);
    assert_eq!(campaign(&s, k).unwrap().unwrap().contacts_total, 2);
}

#[test]
fn a_merge_cycle_resolves_deterministically() {
    let k = "k1";
    let mut evs = base();
    evs.push(merged("m1", "c2", "c1", &t(21, "08:00")));
    evs.push(merged("m2", "c1", "c2", &t(21, "09:00")));
    let s = fold(evs, &[k]);
    let list = items(&s, k);
    assert_eq!(
        list.iter()
            .map(|i| i.customer_id.as_str())
            .collect::<Vec<_>>(),
        ["c1", "c3"]
    );
}

#[test]
fn consents_of_merged_customers_apply_to_the_merged_contact_while_merged() {
    let k = "k1";
    let evs = vec![
        created("e0", k, &t(18, "08:00"), json!({"purpose": "marketing"})),
        attempt("a1", k, "c1", &t(20, "10:00"), "phone", "busy", None),
        // c2 (a duplicate record of the same person) holds the consent
        grant("g1", "c2", &t(19, "08:00"), "phone", "marketing", None),
    ];
    let count = |s: &MemStore| campaign(s, k).unwrap().unwrap().compliance_violations;
    let s = fold(evs.clone(), &[k]);
    assert_eq!(count(&s), 1, "c1 alone has no consent");

    let mut merged_evs = evs.clone();
    merged_evs.push(merged("m1", "c1", "c2", &t(21, "08:00")));
    let s = fold(merged_evs.clone(), &[k]);
    assert_eq!(count(&s), 0, "while merged, the group's consents apply");
    assert!(violations(&s, k, &ViolationsParams::default())
        .unwrap()
        .unwrap()
        .items
        .is_empty());

    // A later revocation on the merged id holds for the group.
    let mut revoked = merged_evs.clone();
    revoked.push(revoke("r1", "c2", &t(19, "12:00"), "any", "marketing"));
    let s = fold(revoked, &[k]);
    assert_eq!(count(&s), 1);
    let v = &violations(&s, k, &ViolationsParams::default())
        .unwrap()
        .unwrap()
        .items[0];
    assert_eq!(
        (v.customer_id.as_str(), v.reason.as_str()),
        ("c1", "consent_revoked")
    );

    merged_evs.push(unmerged("m2", "c1", "c2", &t(22, "08:00")));
    let s = fold(merged_evs, &[k]);
    assert_eq!(count(&s), 1, "unmerged, c2's consent is c2's alone again");
}

#[test]
fn a_do_not_contact_of_a_merged_id_suppresses_the_survivor_in_other_campaigns() {
    let s = fold(
        vec![
            created("e0", "k1", &t(18, "08:00"), json!({})),
            created("f0", "k2", &t(18, "08:00"), json!({})),
            outcome(
                "o1",
                "k1",
                "c2",
                &t(19, "10:00"),
                "do_not_contact",
                json!({}),
            ),
            attempt("b1", "k2", "c1", &t(20, "10:00"), "phone", "busy", None),
            merged("m1", "c1", "c2", &t(21, "08:00")),
        ],
        &["k1", "k2"],
    );
    let v = campaign(&s, "k2").unwrap().unwrap();
    assert_eq!(v.compliance_violations, 1);
    assert_eq!(
        items(&s, "k2")[0].suppressed_reason.as_deref(),
        Some("do_not_contact")
    );
    // In k1 the contact shows under the survivor.
    assert_eq!(items(&s, "k1")[0].customer_id, "c1");
}

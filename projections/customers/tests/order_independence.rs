//! Order independence: the stored state is byte for byte the same for every
//! delivery order that keeps each stream's own order, over generated
//! histories that mix every family (merges and unmerges, late and repeated
//! identification, case events before case.opened, links before the
//! interaction, consents, campaign contacts).

mod common;

use std::collections::BTreeSet;

use common::*;
use crm_customers::*;
use crm_projection::testkit;
use proptest::prelude::*;
use serde_json::{json, Value};

type Raw = (u8, u8, u8, u8, u8);

const PHONES: [&str; 3] = ["+442079460958", "+12125550142", "+33142685300"];

fn identity(x: u8) -> Value {
    match x % 5 {
        0 | 1 => json!({"kind": "phone", "value": PHONES[(x / 5 % 3) as usize]}),
        2 => json!({"kind": "email", "value": format!("u{}@example.com", x / 5 % 2)}),
        3 => json!({"kind": "account", "value": format!("ACC-{}", x / 5 % 2)}),
        _ => json!({"kind": "card", "value": format!("41111111{}", x / 5 % 2)}),
    }
}

/// Turns raw numbers into a valid history; the order of the list is each
/// stream's publish order.
fn build(raw: &[Raw]) -> Vec<Value> {
    let cust = |x: u8| format!("c{}", x % 4);
    raw.iter()
        .enumerate()
        .map(|(n, &(family, op, a, b, minute))| {
            let id = format!("e{n:03}");
            let t = at(minute as i64);
            match family % 4 {
                0 => {
                    let c = cust(a);
                    let other = if b % 4 == a % 4 { cust(b.wrapping_add(1)) } else { cust(b) };
                    let consent_channel = ["email", "sms", "phone"][(b % 3) as usize];
                    let (ty, data) = match op % 9 {
                        0 => ("customer.registered", json!({"name": format!("N{b}"), "identities": [identity(b)]})),
                        1 => ("customer.profile_updated", json!({"name": format!("M{b}"), "attributes": {"k": if b % 2 == 0 { json!(b) } else { Value::Null }}})),
                        2 => ("customer.identity_added", json!({"identity": identity(b), "verified": b % 2 == 0})),
                        3 => ("customer.identity_removed", json!({"identity": identity(b)})),
                        4 | 5 => ("customer.merged", json!({"merged_customer_id": other})),
                        6 => ("customer.unmerged", json!({"merged_customer_id": other})),
                        7 => ("consent.granted", json!({"channel": consent_channel, "purpose": "marketing",
                                                       "expires_at": at(b as i64 % 40)})),
                        _ => ("consent.revoked", json!({"channel": consent_channel, "purpose": "marketing"})),
                    };
                    json!({"event_id": id, "type": ty, "occurred_at": t, "customer_id": c, "data": data})
                }
                1 => {
                    let iid = format!("i{}", a % 5);
                    let mut e = json!({"event_id": id, "occurred_at": t, "interaction_id": iid});
                    let channels = ["phone", "email", "chat", "sms", "social", "video"];
                    let (ty, data) = match op % 9 {
                        0 | 1 => {
                            let mut d = json!({"channel": channels[(b % 6) as usize], "direction": if b % 2 == 0 { "inbound" } else { "outbound" },
                                               "from": identity(b), "queue": format!("q{}", b % 2)});
                            if b % 3 == 0 {
                                d["ivr"] = json!({"path": ["main"], "inputs": {"account": format!("ACC-{}", b % 2)}});
                            }
                            ("interaction.started", d)
                        }
                        2 => ("interaction.message", json!({"author": "customer", "text": "hi"})),
                        3 => {
                            e["agent_id"] = json!(format!("ag{}", b % 3));
                            ("interaction.assigned", json!({"queue": "q"}))
                        }
                        4 => ("interaction.transferred", json!({"to_queue": "q2", "to_agent_id": format!("ag{}", b % 3)})),
                        5 => ("interaction.ended", json!({"outcome": "completed"})),
                        6 => ("interaction.recorded", json!({"channel": channels[(b % 6) as usize], "direction": "inbound", "outcome": "completed"})),
                        _ => {
                            e["customer_id"] = json!(cust(b));
                            ("interaction.identified", json!({"method": "ani"}))
                        }
                    };
                    if ty != "interaction.identified" && b % 5 == 0 {
                        e["customer_id"] = json!(cust(b / 5));
                    }
                    e["type"] = json!(ty);
                    e["data"] = data;
                    e
                }
                2 => {
                    let case = format!("k{}", a % 3);
                    let mut e = json!({"event_id": id, "occurred_at": t, "case_id": case});
                    let (ty, data) = match op % 11 {
                        0 | 1 => {
                            if b % 2 == 0 {
                                e["customer_id"] = json!(cust(b / 2));
                            }
                            let mut d = json!({"category": format!("cat{}", b % 3), "priority": "high"});
                            if b % 3 != 0 {
                                d["origin_interaction_id"] = json!(format!("i{}", b % 5));
                            }
                            ("case.opened", d)
                        }
                        2 => {
                            e["interaction_id"] = json!(format!("i{}", b % 5));
                            ("case.interaction_linked", json!({}))
                        }
                        3 => {
                            e["customer_id"] = json!(cust(b));
                            ("case.customer_identified", json!({}))
                        }
                        4 => ("case.categorized", json!({"category": "other"})),
                        5 => ("case.escalated", json!({"to_tier": 2})),
                        6 => ("case.resolved", json!({"resolution": "done"})),
                        7 => ("case.reopened", json!({})),
                        8 => ("case.closed", json!({})),
                        9 => ("case.voided", json!({"reason": "test"})),
                        _ => ("case.responded", json!({"channel": "email"})),
                    };
                    e["type"] = json!(ty);
                    e["data"] = data;
                    e
                }
                _ => {
                    let camp = format!("p{}", a % 2);
                    let c = cust(b);
                    let (ty, data) = match op % 5 {
                        0 => ("campaign.created", json!({"name": "Offer", "channel": "phone", "purpose": "marketing"})),
                        1 => ("campaign.contact_added", json!({})),
                        2 | 3 => ("campaign.attempt_made", json!({"channel": "phone", "result": "no_answer"})),
                        _ => ("campaign.contact_outcome", json!({"outcome": "declined"})),
                    };
                    let mut e = json!({"event_id": id, "type": ty, "occurred_at": t, "campaign_id": camp, "data": data});
                    if ty != "campaign.created" {
                        e["customer_id"] = json!(c);
                    }
                    e
                }
            }
        })
        .collect()
}

/// Query-level invariants of a folded history.
fn check_views(store: &crm_projection::MemStore, history: &[Value]) {
    let interactions_seen: BTreeSet<&str> = history
        .iter()
        .filter_map(|e| {
            e["type"]
                .as_str()
                .filter(|t| t.starts_with("interaction."))
                .and(e["interaction_id"].as_str())
        })
        .collect();
    let mut survivors = BTreeSet::new();
    for c in 0..4 {
        let id = format!("c{c}");
        if let Some(v) = customer(store, &id, now()).unwrap() {
            survivors.insert(v.customer_id.clone());
            let items = timeline(
                store,
                &id,
                &TimelineParams {
                    limit: Some(1000),
                    ..Default::default()
                },
            )
            .unwrap()
            .unwrap()
            .items;
            let keys: Vec<(&str, &str)> = items
                .iter()
                .map(|i| (i.occurred_at.as_str(), i.event_id.as_str()))
                .collect();
            let mut sorted = keys.clone();
            sorted.sort_by(|a, b| b.cmp(a));
            sorted.dedup();
            assert_eq!(
                keys, sorted,
                "timeline of {id} is newest first without duplicates"
            );
        }
    }
    // Every interaction is either unidentified or counted by exactly one customer.
    let counted: u64 = survivors
        .iter()
        .map(|s| view(store, s).stats.interactions_total)
        .sum();
    let unidentified = interactions(
        store,
        &InteractionListParams {
            unidentified: Some(true),
            limit: Some(1000),
            cursor: None,
        },
    )
    .unwrap()
    .items
    .len() as u64;
    assert_eq!(counted + unidentified, interactions_seen.len() as u64);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn state_is_the_same_for_every_delivery_order(raw in prop::collection::vec((0u8..4, any::<u8>(), any::<u8>(), any::<u8>(), 0u8..30), 1..70)) {
        let history = build(&raw);
        let events = testkit::events(history.iter().cloned().map(ev));
        let store = testkit::assert_order_independent(&CustomersProjection, &events, 0..6);
        check_views(&store, &history);
    }
}

#[test]
fn a_dense_mixed_history_is_order_independent_over_many_seeds() {
    // A fixed pseudo-random history with every family and many collisions.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let raw: Vec<Raw> = (0..300)
        .map(|_| {
            let r = next();
            (
                (r % 4) as u8,
                (r >> 8) as u8,
                (r >> 16) as u8,
                (r >> 24) as u8,
                ((r >> 32) % 30) as u8,
            )
        })
        .collect();
    let history = build(&raw);
    let events = testkit::events(history.iter().cloned().map(ev));
    let store = testkit::assert_order_independent(&CustomersProjection, &events, 0..40);
    check_views(&store, &history);
}

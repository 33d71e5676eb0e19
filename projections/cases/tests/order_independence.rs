//! Order independence: the stored state is the same, byte for byte, for
//! every delivery order that keeps each stream's own order. Histories mix
//! case events (including events before `case.opened`, a second
//! `case.opened`, cases never opened, out-of-order `occurred_at`, late
//! identification, voids and reopens), the events of their interactions
//! (started/recorded, several starts, none) and merges/unmerges (chains and
//! cycles) of their customers.

use chrono::{DateTime, Duration, Utc};
use crm_cases::{
    count_cases, get_case, list_cases, CaseCountParams, CaseListParams, CasesProjection,
};
use crm_projection::testkit::{assert_order_independent, events};
use proptest::prelude::*;
use serde_json::{json, Value};

const CUSTOMERS: usize = 4;
const INTERACTIONS: usize = 4;
const CASES: usize = 3;

#[derive(Debug, Clone)]
enum CaseOp {
    Opened {
        customer: Option<usize>,
        origin: Option<usize>,
        category: usize,
        queue: usize,
        tier: u32,
        dues: bool,
    },
    Linked(usize),
    Identified(usize),
    Categorized(usize),
    Assigned {
        agent: Option<usize>,
        queue: Option<usize>,
    },
    Escalated {
        tier: u32,
        queue: Option<usize>,
    },
    Note,
    Responded,
    Resolved,
    Reopened,
    Closed,
    Voided,
}

#[derive(Debug, Clone)]
enum InteractionOp {
    Started(usize),
    Recorded(usize),
    Message,
    Ended,
}

#[derive(Debug, Clone)]
enum CustomerOp {
    Merged(usize),
    Unmerged(usize),
}

fn case_op() -> impl Strategy<Value = CaseOp> {
    prop_oneof![
        4 => (
            proptest::option::of(0..CUSTOMERS),
            proptest::option::of(0..INTERACTIONS),
            0..3usize,
            0..2usize,
            1..3u32,
            any::<bool>()
        )
            .prop_map(|(customer, origin, category, queue, tier, dues)| CaseOp::Opened {
                customer, origin, category, queue, tier, dues
            }),
        2 => (0..INTERACTIONS).prop_map(CaseOp::Linked),
        1 => (0..CUSTOMERS).prop_map(CaseOp::Identified),
        1 => (0..3usize).prop_map(CaseOp::Categorized),
        1 => (proptest::option::of(0..3usize), proptest::option::of(0..2usize))
            .prop_map(|(agent, queue)| CaseOp::Assigned { agent, queue }),
        1 => (1..4u32, proptest::option::of(0..2usize)).prop_map(|(tier, queue)| CaseOp::Escalated { tier, queue }),
        1 => Just(CaseOp::Note),
        2 => Just(CaseOp::Responded),
        2 => Just(CaseOp::Resolved),
        1 => Just(CaseOp::Reopened),
        1 => Just(CaseOp::Closed),
        1 => Just(CaseOp::Voided),
    ]
}

fn interaction_op() -> impl Strategy<Value = InteractionOp> {
    prop_oneof![
        (0..3usize).prop_map(InteractionOp::Started),
        (0..3usize).prop_map(InteractionOp::Recorded),
        Just(InteractionOp::Message),
        Just(InteractionOp::Ended),
    ]
}

fn customer_op() -> impl Strategy<Value = CustomerOp> {
    prop_oneof![
        2 => (0..CUSTOMERS).prop_map(CustomerOp::Merged),
        1 => (0..CUSTOMERS).prop_map(CustomerOp::Unmerged),
    ]
}

/// A stream: its operations, each with the minute it occurred at (not
/// necessarily increasing: late publishes happen).
fn stream<T: std::fmt::Debug + Clone>(
    op: impl Strategy<Value = T>,
    max: usize,
) -> impl Strategy<Value = Vec<(T, i64)>> {
    proptest::collection::vec((op, 0..40i64), 0..max)
}

fn t0() -> DateTime<Utc> {
    "2026-11-20T09:00:00Z".parse().unwrap()
}

fn at(minute: i64) -> String {
    crm_events::format_time(&(t0() + Duration::minutes(minute)))
}

const CHANNELS: [&str; 3] = ["phone", "email", "chat"];

fn history(
    cases: &[Vec<(CaseOp, i64)>],
    interactions: &[Vec<(InteractionOp, i64)>],
    customers: &[Vec<(CustomerOp, i64)>],
) -> Vec<Value> {
    let mut out = Vec::new();
    let base = |id: String, ty: &str, minute: i64| json!({"event_id": id, "type": ty, "occurred_at": at(minute), "source": "prop", "data": {}});
    for (k, ops) in cases.iter().enumerate() {
        for (n, (op, minute)) in ops.iter().enumerate() {
            let case_id = format!("k-{k}");
            let id = format!("case-{k}-{n}");
            let mut e = match op {
                CaseOp::Opened {
                    customer,
                    origin,
                    category,
                    queue,
                    tier,
                    dues,
                } => {
                    let mut e = base(id, "case.opened", *minute);
                    e["data"] = json!({"category": format!("cat-{category}"), "queue": format!("q-{queue}"), "tier": tier});
                    if let Some(c) = customer {
                        e["customer_id"] = json!(format!("cu-{c}"));
                    }
                    if let Some(i) = origin {
                        e["data"]["origin_interaction_id"] = json!(format!("i-{i}"));
                    }
                    if *dues {
                        e["data"]["first_response_due"] = json!(at(minute + 10));
                        e["data"]["resolve_due"] = json!(at(minute + 30));
                    }
                    e
                }
                CaseOp::Linked(i) => {
                    let mut e = base(id, "case.interaction_linked", *minute);
                    e["interaction_id"] = json!(format!("i-{i}"));
                    e
                }
                CaseOp::Identified(c) => {
                    let mut e = base(id, "case.customer_identified", *minute);
                    e["customer_id"] = json!(format!("cu-{c}"));
                    e
                }
                CaseOp::Categorized(c) => {
                    let mut e = base(id, "case.categorized", *minute);
                    e["data"] = json!({"category": format!("cat-{c}")});
                    e
                }
                CaseOp::Assigned { agent, queue } => {
                    let mut e = base(id, "case.assigned", *minute);
                    if let Some(a) = agent {
                        e["agent_id"] = json!(format!("ag-{a}"));
                    }
                    if let Some(q) = queue {
                        e["data"] = json!({"queue": format!("q-{q}")});
                    }
                    e
                }
                CaseOp::Escalated { tier, queue } => {
                    let mut e = base(id, "case.escalated", *minute);
                    e["data"] = json!({"to_tier": tier, "reason": "prop"});
                    if let Some(q) = queue {
                        e["data"]["queue"] = json!(format!("q-{q}"));
                    }
                    e
                }
                CaseOp::Note => {
                    let mut e = base(id, "case.note_added", *minute);
                    e["data"] = json!({"text": "note"});
                    e
                }
                CaseOp::Responded => base(id, "case.responded", *minute),
                CaseOp::Resolved => {
                    let mut e = base(id, "case.resolved", *minute);
                    e["data"] = json!({"resolution": "fixed"});
                    e
                }
                CaseOp::Reopened => base(id, "case.reopened", *minute),
                CaseOp::Closed => base(id, "case.closed", *minute),
                CaseOp::Voided => {
                    let mut e = base(id, "case.voided", *minute);
                    e["data"] = json!({"reason": "test"});
                    e
                }
            };
            e["case_id"] = json!(case_id);
            out.push(e);
        }
    }
    for (i, ops) in interactions.iter().enumerate() {
        for (n, (op, minute)) in ops.iter().enumerate() {
            let id = format!("int-{i}-{n}");
            let mut e = match op {
                InteractionOp::Started(c) => {
                    let mut e = base(id, "interaction.started", *minute);
                    e["data"] = json!({"channel": CHANNELS[*c], "direction": "inbound"});
                    e
                }
                InteractionOp::Recorded(c) => {
                    let mut e = base(id, "interaction.recorded", *minute);
                    e["data"] = json!({"channel": CHANNELS[*c], "direction": "outbound"});
                    e
                }
                InteractionOp::Message => {
                    let mut e = base(id, "interaction.message", *minute);
                    e["data"] = json!({"author": "customer"});
                    e
                }
                InteractionOp::Ended => {
                    let mut e = base(id, "interaction.ended", *minute);
                    e["data"] = json!({"outcome": "completed"});
                    e
                }
            };
            e["interaction_id"] = json!(format!("i-{i}"));
            out.push(e);
        }
    }
    for (c, ops) in customers.iter().enumerate() {
        for (n, (op, minute)) in ops.iter().enumerate() {
            let (ty, other) = match op {
                CustomerOp::Merged(o) => ("customer.merged", o),
                CustomerOp::Unmerged(o) => ("customer.unmerged", o),
            };
            if *other == c {
                continue; // ingest rejects a self-merge
            }
            let mut e = base(format!("cust-{c}-{n}"), ty, *minute);
            e["customer_id"] = json!(format!("cu-{c}"));
            e["data"] = json!({"merged_customer_id": format!("cu-{other}")});
            out.push(e);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn state_is_the_same_for_every_delivery_order(
        cases in proptest::collection::vec(stream(case_op(), 12), CASES),
        interactions in proptest::collection::vec(stream(interaction_op(), 4), INTERACTIONS),
        customers in proptest::collection::vec(stream(customer_op(), 4), CUSTOMERS),
    ) {
        let evs = events(history(&cases, &interactions, &customers));
        let store = assert_order_independent(&CasesProjection, &evs, 0..12);

        // Every query answers on any such state (merge cycles included).
        let now = t0() + Duration::minutes(35);
        for k in 0..CASES {
            let _ = get_case(&store, &format!("k-{k}"), now).unwrap();
        }
        for c in 0..CUSTOMERS {
            let customer = format!("cu-{c}");
            let page = list_cases(
                &store,
                &CaseListParams { customer_id: Some(customer.clone()), ..Default::default() },
                now,
            ).unwrap();
            let counts = count_cases(
                &store,
                &CaseCountParams { customer_id: Some(customer.clone()), ..Default::default() },
                now,
            ).unwrap();
            prop_assert_eq!(counts.total + counts.voided, page.items.len() as u64);
            // Every listed case resolves to the same customer as the filter.
            let survivor = page.items.first().and_then(|s| s.customer_id.clone());
            for s in &page.items {
                prop_assert_eq!(&s.customer_id, &survivor);
            }
        }
    }
}

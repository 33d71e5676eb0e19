//! Property: for generated histories mixing campaign events, consents,
//! do-not-contacts, merges, unmerges (chains and cycles included) and
//! campaign events before `campaign.created`, every delivery order that keeps
//! each stream's own order reaches the same bytes, and that state equals a
//! rebuild from its facts.

use crm_campaigns::{audit, campaign, CampaignsProjection};
use crm_events::Event;
use crm_projection::testkit;
use proptest::prelude::*;
use serde_json::{json, Value};

const CUSTOMERS: [&str; 4] = ["c1", "c2", "c3", "c4"];
const CAMPAIGNS: [&str; 2] = ["k1", "k2"];
const AGENTS: [&str; 2] = ["A", "B"];
const PURPOSES: [&str; 4] = ["marketing", "service", "survey", "collections"];
const CAMPAIGN_CHANNELS: [&str; 5] = ["phone", "email", "sms", "social", "mixed"];
const ATTEMPT_CHANNELS: [&str; 5] = ["phone", "email", "sms", "social", "chat"];
const RESULTS: [&str; 8] = [
    "connected",
    "busy",
    "no_answer",
    "voicemail",
    "invalid_number",
    "delivered",
    "bounced",
    "failed",
];
const OUTCOMES: [&str; 6] = [
    "converted",
    "interested",
    "declined",
    "callback_requested",
    "do_not_contact",
    "wrong_person",
];
const CONSENT_CHANNELS: [&str; 6] = ["phone", "sms", "email", "chat", "social", "any"];
const CONSENT_PURPOSES: [&str; 3] = ["marketing", "service", "survey"];

/// Times on a 30-minute grid over four days: ties happen, days differ.
fn time(slot: u32) -> String {
    let base: chrono::DateTime<chrono::Utc> = "2026-11-20T00:00:00Z".parse().unwrap();
    crm_events::format_time(&(base + chrono::Duration::minutes(30 * i64::from(slot % 200))))
}

#[derive(Debug, Clone)]
struct CampaignSpec {
    purpose: usize,
    channel: usize,
    requires_consent: Option<bool>,
    max_attempts: u32,
    /// Where `campaign.created` sits in the campaign's own stream.
    created_at_index: usize,
}

#[derive(Debug, Clone)]
struct CampaignOp {
    k: usize,
    c: usize,
    kind: u8,
    agent: Option<usize>,
    channel: usize,
    result: usize,
    outcome: usize,
    value: Option<i32>,
    slot: u32,
    callback_slot: u32,
}

#[derive(Debug, Clone)]
struct CustomerOp {
    c: usize,
    kind: u8,
    channel: usize,
    purpose: usize,
    expires: Option<u32>,
    other: usize,
    slot: u32,
}

fn campaign_spec() -> impl Strategy<Value = CampaignSpec> {
    (
        0..4usize,
        0..5usize,
        prop::option::of(any::<bool>()),
        1..4u32,
        prop_oneof![4 => Just(0usize), 1 => 0..6usize],
    )
        .prop_map(
            |(purpose, channel, requires_consent, max_attempts, created_at_index)| CampaignSpec {
                purpose,
                channel,
                requires_consent,
                max_attempts,
                created_at_index,
            },
        )
}

fn campaign_op() -> impl Strategy<Value = CampaignOp> {
    (
        (0..2usize, 0..4usize, 0..6u8, prop::option::of(0..2usize)),
        (
            0..5usize,
            0..8usize,
            0..6usize,
            prop::option::of(-50..500i32),
            0..200u32,
            0..200u32,
        ),
    )
        .prop_map(
            |((k, c, kind, agent), (channel, result, outcome, value, slot, callback_slot))| {
                CampaignOp {
                    k,
                    c,
                    kind,
                    agent,
                    channel,
                    result,
                    outcome,
                    value,
                    slot,
                    callback_slot,
                }
            },
        )
}

fn customer_op() -> impl Strategy<Value = CustomerOp> {
    (
        0..4usize,
        0..4u8,
        0..6usize,
        0..3usize,
        prop::option::of(0..200u32),
        1..4usize,
        0..200u32,
    )
        .prop_map(
            |(c, kind, channel, purpose, expires, other, slot)| CustomerOp {
                c,
                kind,
                channel,
                purpose,
                expires,
                other,
                slot,
            },
        )
}

fn build(specs: &[CampaignSpec], cops: &[CampaignOp], uops: &[CustomerOp]) -> Vec<Value> {
    let mut n = 0;
    let mut id = || {
        n += 1;
        format!("ev{n:03}")
    };
    let mut streams: Vec<Vec<Value>> = vec![Vec::new(); CAMPAIGNS.len()];
    for op in cops {
        let (k, c) = (CAMPAIGNS[op.k], CUSTOMERS[op.c]);
        let mut v = json!({"event_id": id(), "occurred_at": time(op.slot), "source": "gen",
                           "campaign_id": k, "customer_id": c});
        let agent = op.agent.map(|a| AGENTS[a]);
        match op.kind {
            0 => {
                v["type"] = json!("campaign.contact_added");
                v["data"] = match agent {
                    Some(a) => json!({"agent_id": a}),
                    None => json!({}),
                };
            }
            1 => {
                v["type"] = json!("campaign.contact_assigned");
                v["data"] = json!({});
                if let Some(a) = agent {
                    v["agent_id"] = json!(a);
                }
            }
            2 | 3 => {
                v["type"] = json!("campaign.attempt_made");
                v["data"] =
                    json!({"channel": ATTEMPT_CHANNELS[op.channel], "result": RESULTS[op.result]});
                if let Some(a) = agent {
                    v["agent_id"] = json!(a);
                }
            }
            4 => {
                v["type"] = json!("campaign.contact_outcome");
                let mut data = json!({"outcome": OUTCOMES[op.outcome]});
                if OUTCOMES[op.outcome] == "callback_requested" {
                    data["callback_at"] = json!(time(op.callback_slot));
                }
                if let Some(x) = op.value {
                    data["value"] = json!(f64::from(x) / 100.0);
                }
                v["data"] = data;
                if let Some(a) = agent {
                    v["agent_id"] = json!(a);
                }
            }
            _ => {
                let kinds = ["campaign.paused", "campaign.resumed", "campaign.completed"];
                v["type"] = json!(kinds[op.result % 3]);
                v["data"] = json!({});
                v.as_object_mut().unwrap().remove("customer_id");
            }
        }
        streams[op.k].push(v);
    }
    for (i, spec) in specs.iter().enumerate() {
        let mut data = json!({"name": format!("Campaign {i}"), "channel": CAMPAIGN_CHANNELS[spec.channel],
                              "purpose": PURPOSES[spec.purpose], "max_attempts": spec.max_attempts});
        if let Some(r) = spec.requires_consent {
            data["requires_consent"] = json!(r);
        }
        let created = json!({"event_id": id(), "type": "campaign.created", "occurred_at": time(0),
                             "source": "gen", "campaign_id": CAMPAIGNS[i], "data": data});
        let at = spec.created_at_index.min(streams[i].len());
        streams[i].insert(at, created);
    }
    let mut out: Vec<Value> = streams.into_iter().flatten().collect();
    for op in uops {
        let c = CUSTOMERS[op.c];
        let mut v = json!({"event_id": id(), "occurred_at": time(op.slot), "source": "gen", "customer_id": c});
        match op.kind {
            0 => {
                v["type"] = json!("consent.granted");
                let mut data = json!({"channel": CONSENT_CHANNELS[op.channel], "purpose": CONSENT_PURPOSES[op.purpose]});
                if let Some(e) = op.expires {
                    data["expires_at"] = json!(time(e));
                }
                v["data"] = data;
            }
            1 => {
                v["type"] = json!("consent.revoked");
                v["data"] = json!({"channel": CONSENT_CHANNELS[op.channel], "purpose": CONSENT_PURPOSES[op.purpose]});
            }
            kind => {
                v["type"] = json!(if kind == 2 {
                    "customer.merged"
                } else {
                    "customer.unmerged"
                });
                v["data"] =
                    json!({"merged_customer_id": CUSTOMERS[(op.c + op.other) % CUSTOMERS.len()]});
            }
        }
        out.push(v);
    }
    out
}

fn is_customer_stream(e: &Event) -> bool {
    e.event_type().stream_kind() == crm_events::StreamKind::Customer
}

proptest! {
    // PROPTEST_CASES raises the number of histories (e.g. 2000 for a soak).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_delivery_order_reaches_the_same_state(
        specs in prop::collection::vec(campaign_spec(), 2..=2),
        cops in prop::collection::vec(campaign_op(), 0..40),
        uops in prop::collection::vec(customer_op(), 0..16),
    ) {
        let events: Vec<Event> = testkit::events(build(&specs, &cops, &uops));
        let projection = CampaignsProjection;
        let reference = testkit::assert_order_independent(&projection, &events, 0..8);
        // The extreme orders: every customer event (consents, merges) after
        // every campaign event, and before.
        let (customer, campaign_evs): (Vec<Event>, Vec<Event>) =
            events.iter().cloned().partition(is_customer_stream);
        let late: Vec<Event> = campaign_evs.iter().chain(&customer).cloned().collect();
        let early: Vec<Event> = customer.iter().chain(&campaign_evs).cloned().collect();
        prop_assert_eq!(testkit::digest(&testkit::fold(&projection, &late)), testkit::digest(&reference));
        prop_assert_eq!(testkit::digest(&testkit::fold(&projection, &early)), testkit::digest(&reference));
        for k in CAMPAIGNS {
            if let Err(e) = audit(&reference, k) {
                return Err(TestCaseError::fail(format!("audit of {k}: {e}")));
            }
            if let Some(v) = campaign(&reference, k).unwrap() {
                for r in [v.contact_rate, v.conversion_rate] {
                    prop_assert!((0.0..=1.0).contains(&r));
                }
                prop_assert_eq!(v.states.values().sum::<u64>(), v.contacts_total);
                prop_assert!(v.contacts_reached <= v.contacts_attempted);
                prop_assert!(v.contacts_attempted <= v.contacts_total);
                for s in v.by_agent.values().chain(v.by_channel.values()).chain(v.by_day.values()) {
                    prop_assert!((0.0..=1.0).contains(&s.contact_rate));
                    prop_assert!((0.0..=1.0).contains(&s.conversion_rate));
                }
            }
        }
    }
}

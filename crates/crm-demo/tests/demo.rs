//! The demo history honours the event contract, covers the whole catalog,
//! is reproducible and keeps every stream in order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use crm_demo::{generate, DemoConfig, Summary};
use crm_events::identity::normalize;
use crm_events::{EventType, IdentityKind, Validator};
use serde_json::Value;

fn small() -> DemoConfig {
    DemoConfig::new(200, 7, 42)
}

/// The small history, generated once for all tests.
fn history() -> &'static (Vec<Value>, Summary) {
    static H: OnceLock<(Vec<Value>, Summary)> = OnceLock::new();
    H.get_or_init(|| {
        let mut events = Vec::new();
        let summary = generate(&small(), |v| events.push(v));
        (events, summary)
    })
}

fn text(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v["occurred_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn stream(v: &Value) -> String {
    let ty = v["type"].as_str().unwrap();
    let field = match ty.split('.').next().unwrap() {
        "customer" | "consent" => "customer_id",
        "interaction" => "interaction_id",
        "case" => "case_id",
        _ => "campaign_id",
    };
    format!("{field}/{}", v[field].as_str().unwrap())
}

#[test]
fn every_event_passes_validation() {
    let (events, summary) = history();
    assert_eq!(summary.events as usize, events.len());
    let validator = Validator::new();
    let mut failures = Vec::new();
    for v in events {
        if let Err(errors) = validator.validate(v.clone()) {
            failures.push(format!("{}\n  {:?}", text(v), errors));
        }
    }
    assert!(
        failures.is_empty(),
        "{} invalid events, e.g.:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_whole_catalog_is_covered() {
    let (events, summary) = history();
    let seen: BTreeSet<&str> = events.iter().map(|v| v["type"].as_str().unwrap()).collect();
    let all: BTreeSet<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    let missing: Vec<_> = all.difference(&seen).collect();
    assert!(missing.is_empty(), "types never generated: {missing:?}");
    assert_eq!(seen, all);
    assert_eq!(summary.by_type.len(), all.len());
}

#[test]
fn event_ids_are_unique() {
    let (events, _) = history();
    let ids: BTreeSet<&str> = events
        .iter()
        .map(|v| v["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), events.len());
}

#[test]
fn same_seed_same_bytes_other_seed_other_history() {
    let (events, _) = history();
    let again: Vec<String> = {
        let mut out = Vec::new();
        generate(&small(), |v| out.push(text(&v)));
        out
    };
    let first: Vec<String> = events.iter().map(text).collect();
    assert!(first == again, "same config must give identical output");
    let mut other = Vec::new();
    generate(&DemoConfig::new(200, 7, 43), |v| other.push(text(&v)));
    assert_ne!(first, other);
}

#[test]
fn occurred_at_never_decreases_within_a_stream() {
    check_stream_times(&history().0);
}

fn check_stream_times(events: &[Value]) {
    let mut last: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    for v in events {
        let s = stream(v);
        let t = time(v);
        if let Some(prev) = last.get(&s) {
            assert!(*prev <= t, "{s}: {} after {prev}", text(v));
        }
        last.insert(s, t);
    }
}

#[test]
fn streams_are_in_logical_order() {
    check_stream_order(&history().0);
}

fn check_stream_order(events: &[Value]) {
    let mut by_stream: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for v in events {
        by_stream
            .entry(stream(v))
            .or_default()
            .push(v["type"].as_str().unwrap());
    }
    for (s, types) in &by_stream {
        if s.starts_with("interaction_id/") {
            let started = types.iter().position(|t| *t == "interaction.started");
            let ended = types.iter().position(|t| *t == "interaction.ended");
            if let Some(e) = ended {
                assert!(started.is_some_and(|b| b < e), "{s}: {types:?}");
            }
            if types.contains(&"interaction.recorded") {
                assert_eq!(types.len(), 1, "{s}: a recorded interaction is one event");
            }
            if let Some(b) = started {
                assert_eq!(b, 0, "{s}: {types:?}");
            }
        } else if s.starts_with("case_id/") {
            assert_eq!(types[0], "case.opened", "{s}: {types:?}");
            assert_eq!(types.iter().filter(|t| **t == "case.opened").count(), 1);
            for end in ["case.closed", "case.voided"] {
                if let Some(i) = types.iter().position(|t| *t == end) {
                    assert_eq!(i, types.len() - 1, "{s}: nothing after {end}: {types:?}");
                }
            }
            // Every reopening follows a resolution.
            let mut resolved = false;
            for t in types {
                match *t {
                    "case.resolved" => resolved = true,
                    "case.reopened" => {
                        assert!(resolved, "{s}: {types:?}");
                        resolved = false;
                    }
                    "case.closed" => assert!(resolved, "{s}: closed unresolved: {types:?}"),
                    _ => {}
                }
            }
        } else if s.starts_with("campaign_id/") {
            assert_eq!(types[0], "campaign.created", "{s}");
            if let Some(i) = types.iter().position(|t| *t == "campaign.completed") {
                assert_eq!(i, types.len() - 1, "{s}: nothing after completion");
            }
        } else {
            assert_eq!(types[0], "customer.registered", "{s}: {types:?}");
        }
    }
}

#[test]
fn references_point_at_real_things() {
    check_references(&history().0);
}

fn check_references(events: &[Value]) {
    let mut interactions = BTreeSet::new();
    let mut cases = BTreeSet::new();
    let mut customers = BTreeSet::new();
    for v in events {
        match v["type"].as_str().unwrap() {
            "interaction.started" | "interaction.recorded" => {
                interactions.insert(v["interaction_id"].as_str().unwrap().to_string());
            }
            "case.opened" => {
                cases.insert(v["case_id"].as_str().unwrap().to_string());
            }
            "customer.registered" => {
                customers.insert(v["customer_id"].as_str().unwrap().to_string());
            }
            _ => {}
        }
    }
    for v in events {
        let d = &v["data"];
        for key in ["origin_interaction_id", "interaction_id"] {
            if let Some(ix) = d[key].as_str() {
                assert!(
                    interactions.contains(ix),
                    "unknown interaction in {}",
                    text(v)
                );
            }
        }
        if v["type"] == "case.interaction_linked" {
            assert!(interactions.contains(v["interaction_id"].as_str().unwrap()));
        }
        if let Some(dup) = d["duplicate_of"].as_str() {
            assert!(cases.contains(dup), "{}", text(v));
        }
        if let Some(c) = v["customer_id"].as_str() {
            assert!(
                customers.contains(c),
                "unregistered customer in {}",
                text(v)
            );
        }
        if let Some(c) = d["merged_customer_id"].as_str() {
            assert!(customers.contains(c), "{}", text(v));
        }
    }
}

#[test]
fn identities_are_messy_but_normalise() {
    let (events, _) = history();
    let mut raw = 0;
    let mut messy = 0;
    let mut check = |id: &Value| {
        let kind: IdentityKind = id["kind"].as_str().unwrap().parse().unwrap();
        let value = id["value"].as_str().unwrap();
        let n = normalize(kind, value).unwrap_or_else(|e| panic!("{value:?}: {e}"));
        raw += 1;
        if n != value {
            messy += 1;
        }
    };
    for v in events {
        let d = &v["data"];
        for key in ["from", "to", "identity"] {
            if d[key].is_object() {
                check(&d[key]);
            }
        }
        if let Some(ids) = d["identities"].as_array() {
            ids.iter().for_each(&mut check);
        }
    }
    assert!(
        raw > 1000 && messy * 3 > raw,
        "{messy} of {raw} identities are messy"
    );
}

#[test]
fn the_feed_is_mostly_in_time_order_with_some_late_arrivals() {
    let (events, summary) = history();
    let mut max = time(&events[0]);
    let mut late = 0;
    for v in events {
        let t = time(v);
        if t < max {
            late += 1;
        } else {
            max = t;
        }
    }
    assert_eq!(late, summary.late_events);
    assert!(late > 0, "some late arrivals");
    assert!(
        late * 20 < events.len() as u64,
        "{late} late of {}",
        events.len()
    );
    assert!(summary.consent_violations > 0);
}

#[test]
fn other_seeds_and_sizes_keep_the_same_invariants() {
    for (customers, days, seed) in [(50, 3, 1), (300, 10, 7), (120, 20, 2026)] {
        let mut events = Vec::new();
        let summary = generate(&DemoConfig::new(customers, days, seed), |v| events.push(v));
        assert_eq!(summary.events as usize, events.len());
        check_stream_times(&events);
        check_stream_order(&events);
        check_references(&events);
    }
}

#[test]
fn defaults_are_documented_values() {
    let d = DemoConfig::default();
    assert_eq!((d.customers, d.days, d.seed), (1000, 30, 42));
    assert_eq!(d.start.to_rfc3339(), "2026-10-01T00:00:00+00:00");
}

#[test]
fn a_failing_consumer_stops_the_stream() {
    let (events, _) = history();
    let mut seen = Vec::new();
    let result = crm_demo::try_generate(&small(), |v| {
        if seen.len() == 100 {
            return Err("disk full");
        }
        seen.push(v);
        Ok(())
    });
    assert_eq!(result, Err("disk full"));
    assert_eq!(seen[..], events[..100]);
    let all = crm_demo::try_generate::<()>(&small(), |_| Ok(())).unwrap();
    assert_eq!(all.events as usize, events.len());
}

use std::time::Instant;
use crm_customers::*;
use crm_events::Event;
use crm_projection::{testkit, MemStore};
use serde_json::json;

#[test]
#[ignore]
fn scale() {
    let n_cust = 10_000u64;
    let mut store = MemStore::default();
    let t0 = Instant::now();
    let mut count = 0;
    for c in 0..n_cust {
        let cust = format!("cust-{c:06}");
        let mut evs = vec![json!({"event_id": format!("r{c}"), "type": "customer.registered", "occurred_at": "2026-01-01T00:00:00Z", "source": "t", "customer_id": cust,
            "data": {"name": "X", "identities": [{"kind": "phone", "value": format!("+4420794{:05}", c % 90000)}, {"kind": "email", "value": format!("u{c}@x.com")}]}})];
        for i in 0..8 {
            let iid = format!("i{c}-{i}");
            evs.push(json!({"event_id": format!("s{c}-{i}"), "type": "interaction.started", "occurred_at": format!("2026-02-{:02}T10:00:00Z", i+1), "source": "t", "interaction_id": iid, "customer_id": cust, "data": {"channel": "phone", "direction": "inbound"}}));
            evs.push(json!({"event_id": format!("a{c}-{i}"), "type": "interaction.assigned", "occurred_at": format!("2026-02-{:02}T10:01:00Z", i+1), "source": "t", "interaction_id": iid, "agent_id": "ag", "data": {}}));
            evs.push(json!({"event_id": format!("e{c}-{i}"), "type": "interaction.ended", "occurred_at": format!("2026-02-{:02}T10:05:00Z", i+1), "source": "t", "interaction_id": iid, "data": {"outcome": "completed"}}));
        }
        evs.push(json!({"event_id": format!("k{c}"), "type": "case.opened", "occurred_at": "2026-02-01T10:02:00Z", "source": "t", "case_id": format!("k{c}"), "customer_id": cust, "data": {"category": "b", "origin_interaction_id": format!("i{c}-0")}}));
        evs.push(json!({"event_id": format!("n{c}"), "type": "consent.granted", "occurred_at": "2026-02-01T10:02:00Z", "source": "t", "customer_id": cust, "data": {"channel": "email", "purpose": "marketing"}}));
        for v in evs {
            let e = Event::from_stored_json(&v.to_string()).unwrap();
            testkit::apply_one(&CustomersProjection, &mut store, &e);
            count += 1;
        }
    }
    eprintln!("{count} events folded in {:?}; {} keys", t0.elapsed(), store.map.len());
    let now = "2026-06-01T00:00:00Z".parse().unwrap();
    let t = Instant::now();
    for c in 0..1000 { customer(&store, &format!("cust-{:06}", c * 7), now).unwrap().unwrap(); }
    eprintln!("customer view: {:?} each", t.elapsed() / 1000);
    let t = Instant::now();
    for c in 0..1000 { assert!(!lookup(&store, "email", &format!("u{}@x.com", c * 7)).unwrap().matches.is_empty()); }
    eprintln!("lookup: {:?} each", t.elapsed() / 1000);
    let t = Instant::now();
    for c in 0..1000 { timeline(&store, &format!("cust-{:06}", c * 7), &TimelineParams::default()).unwrap().unwrap(); }
    eprintln!("timeline page: {:?} each", t.elapsed() / 1000);
}

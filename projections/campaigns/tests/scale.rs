//! Each event touches a bounded number of keys, whatever the campaign size.

mod common;

use common::*;
use crm_campaigns::CampaignsProjection;
use crm_projection::{testkit, MemStore, Projection, Tx};
use serde_json::{json, Value};

fn cost(store: &MemStore, event: Value) -> (usize, usize) {
    let e = &testkit::events(vec![event])[0];
    let counting = testkit::CountingKv::new(store);
    let mut tx = Tx::new(&counting);
    CampaignsProjection.apply(&mut tx, e).unwrap();
    (counting.reads(), tx.into_changes().len())
}

#[test]
fn events_touch_a_bounded_number_of_keys_in_a_large_campaign() {
    let n = 2000;
    let mut evs = vec![created(
        "e0",
        "k1",
        &t(18, "08:00"),
        json!({"purpose": "marketing"}),
    )];
    for i in 0..n {
        let c = format!("c{i:05}");
        evs.push(added(
            &format!("add{i}"),
            "k1",
            &c,
            &t(18, "09:00"),
            Some(if i % 2 == 0 { "A" } else { "B" }),
        ));
        evs.push(attempt(
            &format!("att{i}"),
            "k1",
            &c,
            &t(20, "10:00"),
            "phone",
            "busy",
            None,
        ));
        evs.push(grant(
            &format!("g{i}"),
            &c,
            &t(19, "08:00"),
            "phone",
            "marketing",
            None,
        ));
    }
    let store = testkit::fold(&CampaignsProjection, &testkit::events(evs));
    let probes = [
        revoke("r1", "c00007", &t(21, "08:00"), "any", "marketing"),
        attempt(
            "x1",
            "k1",
            "c00008",
            &t(21, "10:00"),
            "phone",
            "connected",
            None,
        ),
        outcome(
            "x2",
            "k1",
            "c00009",
            &t(21, "10:00"),
            "do_not_contact",
            json!({}),
        ),
        assigned("x3", "k1", "c00010", &t(21, "10:00"), "C"),
        merged("x4", "c00011", "c00012", &t(21, "10:00")),
        status("x5", "k1", "paused", &t(21, "10:00")),
    ];
    for p in probes {
        let (reads, writes) = cost(&store, p.clone());
        eprintln!("{}: {reads} entries read, {writes} keys written", p["type"]);
        assert!(
            reads < 60 && writes < 30,
            "{} reads {reads} entries and writes {writes} keys",
            p["type"]
        );
    }
}

//! A log holding `interaction.ended` v1 and v2 replays to the same read model
//! as a log holding only v2.

use crm_customers::CustomersProjection;
use crm_projection::testkit::{digest, events, fold};
use serde_json::{json, Value};

fn ended(id: &str, i: &str, talk: u32, v2: bool) -> Value {
    if v2 {
        json!({"event_id": id, "type": "interaction.ended", "version": 2, "occurred_at": "2026-11-20T10:05:00Z",
               "source": "pbx", "interaction_id": i,
               "data": {"outcome": "completed", "durations": {"talk_seconds": talk, "handle_seconds": talk + 30}, "wrapup_code": "W"}})
    } else {
        json!({"event_id": id, "type": "interaction.ended", "occurred_at": "2026-11-20T10:05:00Z",
               "source": "pbx", "interaction_id": i,
               "data": {"outcome": "completed", "talk_seconds": talk, "handle_seconds": talk + 30, "wrapup_code": "W"}})
    }
}

fn history(v2_for: impl Fn(usize) -> bool) -> Vec<Value> {
    let mut out = vec![
        json!({"event_id": "reg", "type": "customer.registered", "occurred_at": "2026-11-20T09:00:00Z",
        "source": "crm", "customer_id": "c1", "data": {"name": "Ana"}}),
    ];
    for n in 0..6 {
        let i = format!("i{n}");
        out.push(json!({"event_id": format!("s{n}"), "type": "interaction.started", "occurred_at": "2026-11-20T10:00:00Z",
            "source": "pbx", "interaction_id": i, "customer_id": "c1", "data": {"channel": "phone", "direction": "inbound"}}));
        out.push(ended(&format!("e{n}"), &i, 60 + n as u32, v2_for(n)));
    }
    out
}

#[test]
fn mixed_v1_and_v2_log_folds_to_the_same_state_as_v2_only() {
    let mixed = events(history(|n| n % 2 == 0));
    let only_v2 = events(history(|_| true));
    let only_v1 = events(history(|_| false));
    let p = CustomersProjection;
    let d = digest(&fold(&p, &only_v2));
    assert_eq!(digest(&fold(&p, &mixed)), d);
    assert_eq!(digest(&fold(&p, &only_v1)), d);
    let store = fold(&p, &mixed);
    let view = crm_customers::interaction(&store, "i1").unwrap().unwrap();
    let v = serde_json::to_value(&view).unwrap();
    assert_eq!(v["talk_seconds"], json!(61.0), "{v}");
}

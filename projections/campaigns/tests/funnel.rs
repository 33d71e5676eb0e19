//! Funnel figures and rates, overall and by agent, channel and day.

mod common;

use common::*;
use crm_campaigns::{campaign, contacts, ContactState, ContactsParams};
use serde_json::json;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn funnel_and_rates_per_campaign_and_by_channel_and_day() {
    let k = "k1";
    let s = fold(
        vec![
            created(
                "e0",
                k,
                &t(19, "08:00"),
                json!({"channel": "mixed", "purpose": "survey"}),
            ),
            added("e1", k, "c1", &t(19, "09:00"), None),
            added("e2", k, "c2", &t(19, "09:00"), None),
            added("e3", k, "c3", &t(19, "09:00"), None),
            added("e4", k, "c4", &t(19, "09:00"), None),
            added("e5", k, "c5", &t(19, "09:00"), None),
            // c1: no answer on the 20th, connected and converted on the 21st
            attempt("a1", k, "c1", &t(20, "10:00"), "phone", "no_answer", None),
            attempt("a2", k, "c1", &t(21, "10:00"), "phone", "connected", None),
            outcome(
                "o1",
                k,
                "c1",
                &t(21, "10:05"),
                "converted",
                json!({"value": 100.5}),
            ),
            // c2: busy three times (max_attempts 3): done, never reached
            attempt("a3", k, "c2", &t(20, "10:00"), "phone", "busy", None),
            attempt("a4", k, "c2", &t(20, "11:00"), "phone", "busy", None),
            attempt("a5", k, "c2", &t(20, "12:00"), "phone", "busy", None),
            // c3: connected, declined
            attempt("a6", k, "c3", &t(20, "10:00"), "phone", "connected", None),
            outcome("o2", k, "c3", &t(20, "10:05"), "declined", json!({})),
            // c4: never attempted
            // c5: email delivered; interested then converted (latest counts)
            attempt("a7", k, "c5", &t(21, "08:00"), "email", "delivered", None),
            outcome("o3", k, "c5", &t(21, "09:00"), "interested", json!({})),
            outcome(
                "o4",
                k,
                "c5",
                &t(21, "12:00"),
                "converted",
                json!({"value": 20.25}),
            ),
        ],
        &[k],
    );
    let v = campaign(&s, k).unwrap().expect("campaign exists");
    assert_eq!(v.name, "Campaign k1");
    assert_eq!(
        (v.channel.as_str(), v.purpose.as_str(), v.status.as_str()),
        ("mixed", "survey", "active")
    );
    assert_eq!(v.contacts_total, 5);
    assert_eq!(v.contacts_attempted, 4);
    assert_eq!(v.contacts_reached, 3);
    assert_eq!(v.attempts_total, 7);
    assert_eq!(v.outcomes["converted"], 2);
    assert_eq!(v.outcomes["declined"], 1);
    assert_eq!(
        v.outcomes["interested"], 0,
        "only the latest outcome of a contact counts"
    );
    assert_eq!(v.outcomes.len(), 6, "every outcome is named");
    assert!(close(v.contact_rate, 3.0 / 4.0));
    assert!(close(v.conversion_rate, 2.0 / 3.0));
    assert!(close(v.attempts_per_contact, 7.0 / 4.0));
    assert!(close(v.value_total, 120.75));
    assert_eq!(v.contacts_converted, 2);
    assert_eq!(v.compliance_violations, 0);
    assert_eq!(v.states["pending"], 1);
    assert_eq!(v.states["done"], 4);

    let phone = &v.by_channel["phone"];
    assert_eq!(
        (
            phone.contacts,
            phone.attempted,
            phone.reached,
            phone.attempts
        ),
        (3, 3, 2, 6)
    );
    assert_eq!(phone.outcomes.get("converted"), Some(&1));
    assert_eq!(phone.outcomes.get("declined"), Some(&1));
    assert!(close(phone.contact_rate, 2.0 / 3.0));
    assert!(close(phone.conversion_rate, 0.5));
    assert!(close(phone.attempts_per_contact, 2.0));
    assert!(close(phone.value, 100.5));
    let email = &v.by_channel["email"];
    assert_eq!(
        (
            email.contacts,
            email.attempted,
            email.reached,
            email.attempts
        ),
        (1, 1, 1, 1)
    );
    assert!(close(email.conversion_rate, 1.0));
    assert!(close(email.value, 20.25));

    assert_eq!(
        v.by_day.keys().collect::<Vec<_>>(),
        ["2026-11-20", "2026-11-21"]
    );
    let d20 = &v.by_day["2026-11-20"];
    assert_eq!((d20.attempted, d20.reached, d20.attempts), (3, 1, 5));
    assert_eq!(d20.outcomes.get("declined"), Some(&1));
    assert!(close(d20.contact_rate, 1.0 / 3.0));
    assert!(close(d20.conversion_rate, 0.0));
    let d21 = &v.by_day["2026-11-21"];
    assert_eq!((d21.attempted, d21.reached, d21.attempts), (2, 2, 2));
    assert_eq!(
        d21.outcomes.get("converted"),
        Some(&2),
        "outcomes follow the day of their attempt"
    );
    assert!(close(d21.conversion_rate, 1.0));
    assert!(close(d21.value, 120.75));
    assert!(v.by_agent.is_empty(), "no agent was named anywhere");

    // The contacts list agrees with the figures.
    let all = contacts(&s, k, &ContactsParams::default())
        .unwrap()
        .unwrap();
    assert_eq!(all.items.len(), 5);
    let c2 = all.items.iter().find(|i| i.customer_id == "c2").unwrap();
    assert_eq!(
        (c2.state, c2.attempts, c2.last_result.as_deref()),
        (ContactState::Done, 3, Some("busy"))
    );
    let c5 = all.items.iter().find(|i| i.customer_id == "c5").unwrap();
    assert_eq!(c5.last_outcome.as_deref(), Some("converted"));
}

#[test]
fn rates_are_zero_when_nothing_was_attempted_or_reached() {
    let s = fold(
        vec![
            created("e0", "k1", &t(19, "08:00"), json!({})),
            added("e1", "k1", "c1", &t(19, "09:00"), None),
            added("e2", "k2", "c1", &t(19, "09:00"), None),
            created("f0", "k2", &t(19, "08:00"), json!({})),
            attempt("a1", "k2", "c1", &t(20, "10:00"), "phone", "busy", None),
        ],
        &["k1", "k2"],
    );
    let v = campaign(&s, "k1").unwrap().unwrap();
    assert_eq!((v.contacts_total, v.contacts_attempted), (1, 0));
    assert_eq!(
        (v.contact_rate, v.conversion_rate, v.attempts_per_contact),
        (0.0, 0.0, 0.0)
    );
    let v = campaign(&s, "k2").unwrap().unwrap();
    assert_eq!((v.contacts_attempted, v.contacts_reached), (1, 0));
    assert_eq!(
        (v.contact_rate, v.conversion_rate, v.attempts_per_contact),
        (0.0, 0.0, 1.0)
    );
    let json = serde_json::to_value(&v).unwrap();
    for field in [
        "campaign_id",
        "name",
        "channel",
        "purpose",
        "status",
        "contacts_total",
        "contacts_attempted",
        "contacts_reached",
        "attempts_total",
        "outcomes",
        "contact_rate",
        "conversion_rate",
        "attempts_per_contact",
        "value_total",
        "callbacks_pending",
        "compliance_violations",
        "by_agent",
        "by_channel",
        "by_day",
    ] {
        assert!(json.get(field).is_some(), "api.md field {field} is missing");
    }
}

#[test]
fn value_sums_are_exact_and_independent_of_order() {
    // 0.1 + 0.2 + 0.3 in floating point depends on the order of addition;
    // in millionths it does not.
    let mut evs = vec![created("e0", "k1", &t(19, "08:00"), json!({}))];
    for (i, v) in [0.1, 0.2, 0.3, 1e-7, 12345.678901].iter().enumerate() {
        let c = format!("c{i}");
        evs.push(attempt(
            &format!("a{i}"),
            "k1",
            &c,
            &t(20, "10:00"),
            "phone",
            "connected",
            None,
        ));
        evs.push(outcome(
            &format!("o{i}"),
            "k1",
            &c,
            &t(20, "10:05"),
            "converted",
            json!({"value": v}),
        ));
    }
    let s = fold(evs, &["k1"]);
    let v = campaign(&s, "k1").unwrap().unwrap();
    assert_eq!(v.value_total, 12346.278901);
}

#[test]
fn agents_get_attempts_of_their_assignment_at_that_time_and_contacts_of_their_current_one() {
    let k = "k1";
    let s = fold(
        vec![
            created("e0", k, &t(19, "08:00"), json!({})),
            // c1: A's on the 20th, reassigned to B on the 21st
            added("e1", k, "c1", &t(19, "09:00"), Some("A")),
            attempt("a1", k, "c1", &t(20, "10:00"), "phone", "no_answer", None),
            assigned("e2", k, "c1", &t(21, "08:00"), "B"),
            attempt("a2", k, "c1", &t(21, "10:00"), "phone", "connected", None),
            outcome(
                "o1",
                k,
                "c1",
                &t(21, "10:05"),
                "converted",
                json!({"value": 50}),
            ),
            // c2: A's, but the attempt names agent C explicitly
            added("e3", k, "c2", &t(19, "09:00"), Some("A")),
            attempt(
                "a3",
                k,
                "c2",
                &t(20, "11:00"),
                "phone",
                "connected",
                Some("C"),
            ),
            outcome(
                "o2",
                k,
                "c2",
                &t(20, "11:05"),
                "callback_requested",
                json!({"callback_at": t(22, "10:00")}),
            ),
        ],
        &[k],
    );
    let v = campaign(&s, k).unwrap().unwrap();
    let a = &v.by_agent["A"];
    assert_eq!(
        (a.contacts, a.attempted, a.reached, a.attempts),
        (1, 1, 0, 1)
    );
    assert_eq!(
        a.callbacks_pending,
        Some(1),
        "c2 is A's and waits for a callback"
    );
    assert_eq!(a.states.as_ref().unwrap().get("callback"), Some(&1));
    let b = &v.by_agent["B"];
    assert_eq!(
        (b.contacts, b.attempted, b.reached, b.attempts),
        (1, 1, 1, 1)
    );
    assert_eq!(b.outcomes.get("converted"), Some(&1));
    assert!(close(b.conversion_rate, 1.0));
    assert!(close(b.value, 50.0));
    let c = &v.by_agent["C"];
    assert_eq!(
        (c.contacts, c.attempted, c.reached, c.attempts),
        (0, 1, 1, 1)
    );
    assert_eq!(
        c.outcomes.get("callback_requested"),
        Some(&1),
        "an outcome follows its attempt's agent"
    );

    // Work lists per agent follow the current assignment.
    let of = |agent: &str| {
        contacts(
            &s,
            k,
            &ContactsParams {
                agent_id: Some(agent.into()),
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap()
        .items
        .into_iter()
        .map(|i| i.customer_id)
        .collect::<Vec<_>>()
    };
    assert_eq!(of("A"), ["c2"]);
    assert_eq!(of("B"), ["c1"]);
    assert!(of("C").is_empty());
    let a_callbacks = contacts(
        &s,
        k,
        &ContactsParams {
            agent_id: Some("A".into()),
            state: Some("callback".into()),
            ..Default::default()
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(a_callbacks.items.len(), 1);
    let detail = crm_campaigns::contact(&s, k, "c1").unwrap().unwrap();
    assert_eq!(
        detail
            .attempts
            .iter()
            .map(|a| a.agent_id.as_deref())
            .collect::<Vec<_>>(),
        [Some("A"), Some("B")]
    );
    assert_eq!(detail.outcomes[0].agent_id.as_deref(), Some("B"));
}

#[test]
fn a_reassignment_published_with_an_earlier_time_is_placed_by_event_time() {
    // The stream order says B then A, but A's assignment happened later.
    let k = "k1";
    let s = fold(
        vec![
            created("e0", k, &t(19, "08:00"), json!({})),
            assigned("e2", k, "c1", &t(21, "08:00"), "A"),
            assigned("e1", k, "c1", &t(20, "08:00"), "B"),
            attempt("a1", k, "c1", &t(20, "10:00"), "phone", "busy", None),
        ],
        &[k],
    );
    let v = campaign(&s, k).unwrap().unwrap();
    assert_eq!(v.by_agent["B"].attempts, 1);
    assert_eq!(v.by_agent["A"].contacts, 1);
    assert_eq!(v.by_agent["B"].contacts, 0);
}

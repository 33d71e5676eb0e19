//! Compliance judged by event time, whichever stream arrives first.

mod common;

use common::*;
use crm_campaigns::{
    campaign, contacts, violations, ContactState, ContactsParams, Violation, ViolationsParams,
};
use crm_projection::MemStore;
use serde_json::{json, Value};

fn violation_list(s: &MemStore, k: &str) -> Vec<Violation> {
    violations(s, k, &ViolationsParams::default())
        .unwrap()
        .unwrap()
        .items
}

fn summary(s: &MemStore, k: &str) -> Vec<(String, String)> {
    violation_list(s, k)
        .into_iter()
        .map(|v| (v.attempt_event_id, v.reasons.join("+")))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn a_revocation_arriving_after_the_attempts_makes_later_attempts_violations() {
    let k = "k1";
    let campaign_stream = vec![
        created("e0", k, &t(18, "08:00"), json!({"purpose": "marketing"})),
        added("e1", k, "c1", &t(18, "09:00"), Some("A")),
        attempt("a1", k, "c1", &t(20, "10:00"), "phone", "no_answer", None),
        attempt("a2", k, "c1", &t(22, "10:00"), "phone", "connected", None),
    ];
    let customer_stream = vec![
        grant("g1", "c1", &t(19, "08:00"), "phone", "marketing", None),
        revoke("r1", "c1", &t(21, "08:00"), "phone", "marketing"),
    ];
    // Consent last, consent first, and (inside `fold`) 24 interleavings.
    let late: Vec<Value> = campaign_stream
        .iter()
        .chain(&customer_stream)
        .cloned()
        .collect();
    let early: Vec<Value> = customer_stream
        .iter()
        .chain(&campaign_stream)
        .cloned()
        .collect();
    let s = fold(late.clone(), &[k]);
    assert_eq!(s, fold(early, &[k]));

    let v = violation_list(&s, k);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].attempt_event_id, "a2");
    assert_eq!(v[0].reason, "consent_revoked");
    assert_eq!(v[0].customer_id, "c1");
    assert_eq!(v[0].agent_id.as_deref(), Some("A"));
    assert_eq!(
        serde_json::to_value(&v[0]).unwrap()["occurred_at"],
        "2026-11-22T10:00:00Z"
    );
    let view = campaign(&s, k).unwrap().unwrap();
    assert_eq!(view.compliance_violations, 1);
    assert_eq!(view.by_agent["A"].compliance_violations, 1);
    assert_eq!(view.by_day["2026-11-22"].compliance_violations, 1);
    assert_eq!(view.by_day["2026-11-20"].compliance_violations, 0);
    assert_eq!(view.consent_purpose.as_deref(), Some("marketing"));
    let item = &contacts(&s, k, &ContactsParams::default())
        .unwrap()
        .unwrap()
        .items[0];
    assert_eq!(item.state, ContactState::Suppressed);
    assert_eq!(item.suppressed_reason.as_deref(), Some("consent_revoked"));
    assert_eq!(item.violations, 1);

    // Before the revocation is known, nothing is a violation.
    let partial = fold(late[..5].to_vec(), &[k]);
    assert!(violation_list(&partial, k).is_empty());
    assert_eq!(
        campaign(&partial, k)
            .unwrap()
            .unwrap()
            .compliance_violations,
        0
    );
}

#[test]
fn consent_is_judged_per_channel_purpose_and_expiry_with_any_covering_every_channel() {
    let k = "k1";
    let s = fold(
        vec![
            created(
                "e0",
                k,
                &t(18, "08:00"),
                json!({"purpose": "marketing", "channel": "mixed"}),
            ),
            // c1: any-channel marketing consent until the 21st
            attempt("a1", k, "c1", &t(20, "10:00"), "sms", "delivered", None),
            attempt("a2", k, "c1", &t(22, "10:00"), "sms", "delivered", None),
            grant(
                "g1",
                "c1",
                &t(19, "08:00"),
                "any",
                "marketing",
                Some(&t(21, "00:00")),
            ),
            // c2: service consent does not allow marketing; phone consent not email
            grant("g2", "c2", &t(19, "08:00"), "any", "service", None),
            grant("g3", "c2", &t(19, "08:00"), "phone", "marketing", None),
            attempt("a3", k, "c2", &t(20, "10:00"), "email", "bounced", None),
            attempt("a4", k, "c2", &t(20, "11:00"), "phone", "busy", None),
            // c3: never asked; c4: revoked any, then granted email again
            attempt("a5", k, "c3", &t(20, "10:00"), "phone", "busy", None),
            grant("g4", "c4", &t(18, "08:00"), "any", "marketing", None),
            revoke("r4", "c4", &t(19, "08:00"), "any", "marketing"),
            grant("g5", "c4", &t(20, "08:00"), "email", "marketing", None),
            attempt("a6", k, "c4", &t(19, "10:00"), "email", "delivered", None),
            attempt("a7", k, "c4", &t(20, "10:00"), "email", "delivered", None),
            attempt("a8", k, "c4", &t(20, "11:00"), "phone", "busy", None),
            // a grant made at the attempt's very time counts
            grant("g6", "c5", &t(20, "10:00"), "phone", "marketing", None),
            attempt("a9", k, "c5", &t(20, "10:00"), "phone", "busy", None),
        ],
        &[k],
    );
    assert_eq!(
        summary(&s, k),
        pairs(&[
            ("a6", "consent_revoked"),
            ("a3", "no_consent"),
            ("a5", "no_consent"),
            ("a8", "consent_revoked"),
            ("a2", "consent_expired"),
        ])
    );
    let items = contacts(&s, k, &ContactsParams::default())
        .unwrap()
        .unwrap()
        .items;
    let by = |c: &str| items.iter().find(|i| i.customer_id == c).unwrap();
    // c1's only consent expires on the 21st: listed with its expiry; c3 has none.
    assert_eq!(
        by("c1").consent_expires_at.unwrap().to_rfc3339(),
        "2026-11-21T00:00:00+00:00"
    );
    assert_eq!(by("c3").state, ContactState::Suppressed);
    assert_eq!(by("c3").suppressed_reason.as_deref(), Some("no_consent"));
    assert_eq!(
        by("c2").state,
        ContactState::Retry,
        "phone consent is enough for a mixed campaign"
    );
}

#[test]
fn consent_expiry_moves_a_contact_to_suppressed_at_query_time() {
    let k = "k1";
    let s = fold(
        vec![
            created("e0", k, &t(18, "08:00"), json!({"purpose": "marketing"})),
            added("e1", k, "c1", &t(18, "09:00"), Some("A")),
            added("e2", k, "c2", &t(18, "09:00"), Some("A")),
            added("e3", k, "c3", &t(18, "09:00"), Some("A")),
            grant(
                "g1",
                "c1",
                &t(18, "08:00"),
                "phone",
                "marketing",
                Some(&t(25, "00:00")),
            ),
            grant("g2", "c2", &t(18, "08:00"), "phone", "marketing", None),
        ],
        &[k],
    );
    let ids = |state: &str, now: Option<String>| {
        contacts(
            &s,
            k,
            &ContactsParams {
                state: Some(state.into()),
                now,
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap()
        .items
        .into_iter()
        .map(|i| (i.customer_id, i.suppressed_reason))
        .collect::<Vec<_>>()
    };
    let p = |c: &str| (c.to_string(), None::<String>);
    let sup = |c: &str, r: &str| (c.to_string(), Some(r.to_string()));
    assert_eq!(ids("pending", Some(t(24, "00:00"))), [p("c1"), p("c2")]);
    assert_eq!(
        ids("suppressed", Some(t(24, "00:00"))),
        [sup("c3", "no_consent")]
    );
    assert_eq!(ids("pending", Some(t(26, "00:00"))), [p("c2")]);
    assert_eq!(
        ids("suppressed", Some(t(26, "00:00"))),
        [sup("c3", "no_consent"), sup("c1", "consent_expired")]
    );
    assert_eq!(
        ids("pending", None),
        [p("c1"), p("c2")],
        "without now, expiry is not applied"
    );
    // Paging across the two parts of the suppressed list.
    let first = contacts(
        &s,
        k,
        &ContactsParams {
            state: Some("suppressed".into()),
            now: Some(t(26, "00:00")),
            limit: Some(1),
            ..Default::default()
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(first.items[0].customer_id, "c3");
    let second = contacts(
        &s,
        k,
        &ContactsParams {
            state: Some("suppressed".into()),
            now: Some(t(26, "00:00")),
            limit: Some(1),
            cursor: first.next_cursor,
            ..Default::default()
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(second.items[0].customer_id, "c1");
    assert_eq!(second.items[0].state, ContactState::Suppressed);
    assert!(second.next_cursor.is_none());
    // The agent's list too.
    let a = contacts(
        &s,
        k,
        &ContactsParams {
            state: Some("suppressed".into()),
            now: Some(t(26, "00:00")),
            agent_id: Some("A".into()),
            ..Default::default()
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(a.items.len(), 2);
}

#[test]
fn do_not_contact_holds_in_every_campaign_from_its_event_time() {
    let s = fold(
        vec![
            created("e0", "k1", &t(18, "08:00"), json!({})),
            attempt(
                "a1",
                "k1",
                "c1",
                &t(20, "10:00"),
                "phone",
                "connected",
                None,
            ),
            outcome(
                "o1",
                "k1",
                "c1",
                &t(20, "10:05"),
                "do_not_contact",
                json!({}),
            ),
            attempt(
                "a2",
                "k1",
                "c1",
                &t(21, "10:00"),
                "phone",
                "connected",
                None,
            ),
            created(
                "f0",
                "k2",
                &t(18, "08:00"),
                json!({"purpose": "collections"}),
            ),
            attempt("b1", "k2", "c1", &t(19, "10:00"), "phone", "busy", None),
            attempt("b2", "k2", "c1", &t(20, "10:05"), "phone", "busy", None),
            attempt("b3", "k2", "c1", &t(22, "10:00"), "phone", "busy", None),
        ],
        &["k1", "k2"],
    );
    assert_eq!(summary(&s, "k1"), pairs(&[("a2", "do_not_contact")]));
    assert_eq!(
        summary(&s, "k2"),
        pairs(&[("b3", "do_not_contact")]),
        "at the same instant as the outcome is not after it"
    );
    let k2 = contacts(&s, "k2", &ContactsParams::default())
        .unwrap()
        .unwrap()
        .items;
    assert_eq!(k2[0].state, ContactState::Suppressed);
    assert_eq!(k2[0].suppressed_reason.as_deref(), Some("do_not_contact"));
}

#[test]
fn consent_is_needed_only_where_the_campaign_requires_it() {
    let mk = |k: &str, data: Value| {
        vec![
            created(&format!("{k}-0"), k, &t(18, "08:00"), data),
            attempt(
                &format!("{k}-1"),
                k,
                "c1",
                &t(20, "10:00"),
                "phone",
                "busy",
                None,
            ),
        ]
    };
    let mut evs = Vec::new();
    evs.extend(mk("marketing", json!({"purpose": "marketing"})));
    evs.extend(mk(
        "marketing-no",
        json!({"purpose": "marketing", "requires_consent": false}),
    ));
    evs.extend(mk("service", json!({"purpose": "service"})));
    evs.extend(mk(
        "service-yes",
        json!({"purpose": "service", "requires_consent": true}),
    ));
    evs.extend(mk(
        "survey-yes",
        json!({"purpose": "survey", "requires_consent": true}),
    ));
    evs.extend(mk(
        "collections-yes",
        json!({"purpose": "collections", "requires_consent": true}),
    ));
    evs.push(grant("g1", "c1", &t(19, "00:00"), "phone", "survey", None));
    let all = [
        "marketing",
        "marketing-no",
        "service",
        "service-yes",
        "survey-yes",
        "collections-yes",
    ];
    let s = fold(evs, &all);
    let count = |k: &str| campaign(&s, k).unwrap().unwrap().compliance_violations;
    assert_eq!(
        count("marketing"),
        1,
        "marketing requires consent by default"
    );
    assert_eq!(count("marketing-no"), 0);
    assert_eq!(count("service"), 0, "service does not by default");
    assert_eq!(count("service-yes"), 1);
    assert_eq!(count("survey-yes"), 0, "the survey consent covers it");
    assert_eq!(
        count("collections-yes"),
        0,
        "collections has no consent purpose"
    );
    assert_eq!(
        campaign(&s, "collections-yes")
            .unwrap()
            .unwrap()
            .consent_purpose,
        None
    );
}

//! Work lists: pending, retry, callback (with `now`), done, suppressed;
//! status; query parameters and paging.

mod common;

use common::*;
use crm_campaigns::{
    campaign, contacts, violations, ContactItem, ContactState, ContactsParams, ViolationsParams,
};
use crm_projection::query::QueryError;
use crm_projection::MemStore;
use serde_json::json;

fn list(s: &MemStore, state: &str, now: Option<&str>) -> Vec<ContactItem> {
    contacts(
        s,
        "k1",
        &ContactsParams {
            state: Some(state.into()),
            now: now.map(Into::into),
            ..Default::default()
        },
    )
    .unwrap()
    .unwrap()
    .items
}

fn ids(items: &[ContactItem]) -> Vec<&str> {
    items.iter().map(|i| i.customer_id.as_str()).collect()
}

fn scenario() -> MemStore {
    let k = "k1";
    fold(
        vec![
            created("e0", k, &t(19, "08:00"), json!({"max_attempts": 3})),
            added("p1", k, "p1", &t(19, "09:00"), None),
            // retries, the longest waiting first
            attempt("r1a", k, "r1", &t(20, "09:00"), "phone", "busy", None),
            attempt("r2a", k, "r2", &t(20, "08:00"), "phone", "no_answer", None),
            attempt("r3a", k, "r3", &t(20, "08:30"), "phone", "voicemail", None),
            // attempts used up
            attempt("x1a", k, "x1", &t(20, "08:00"), "phone", "no_answer", None),
            attempt("x1b", k, "x1", &t(20, "09:00"), "phone", "no_answer", None),
            attempt("x1c", k, "x1", &t(20, "10:00"), "phone", "no_answer", None),
            // not retried: invalid number
            attempt(
                "i1a",
                k,
                "i1",
                &t(20, "08:00"),
                "phone",
                "invalid_number",
                None,
            ),
            // callbacks, due first
            attempt(
                "cb1a",
                k,
                "cb1",
                &t(20, "09:00"),
                "phone",
                "connected",
                None,
            ),
            outcome(
                "cb1o",
                k,
                "cb1",
                &t(20, "09:05"),
                "callback_requested",
                json!({"callback_at": t(22, "10:00")}),
            ),
            outcome(
                "cb2o",
                k,
                "cb2",
                &t(20, "09:05"),
                "callback_requested",
                json!({"callback_at": t(21, "10:00")}),
            ),
            // a callback that was attempted since: back to retry
            outcome(
                "cb3o",
                k,
                "cb3",
                &t(20, "10:00"),
                "callback_requested",
                json!({"callback_at": t(20, "15:00")}),
            ),
            attempt(
                "cb3a",
                k,
                "cb3",
                &t(20, "15:01"),
                "phone",
                "no_answer",
                None,
            ),
            // do not contact
            attempt("d1a", k, "d1", &t(20, "09:00"), "phone", "connected", None),
            outcome("d1o", k, "d1", &t(20, "09:05"), "do_not_contact", json!({})),
        ],
        &[k],
    )
}

#[test]
fn each_contact_is_in_exactly_one_work_list() {
    let s = scenario();
    assert_eq!(ids(&list(&s, "pending", None)), ["p1"]);
    assert_eq!(
        ids(&list(&s, "retry", None)),
        ["r2", "r3", "r1", "cb3"],
        "longest waiting first"
    );
    assert_eq!(
        ids(&list(&s, "callback", None)),
        ["cb2", "cb1"],
        "earliest callback first"
    );
    assert_eq!(ids(&list(&s, "done", None)), ["i1", "x1"]);
    let suppressed = list(&s, "suppressed", None);
    assert_eq!(ids(&suppressed), ["d1"]);
    assert_eq!(
        suppressed[0].suppressed_reason.as_deref(),
        Some("do_not_contact")
    );
    assert_eq!(
        suppressed[0].last_outcome.as_deref(),
        Some("do_not_contact")
    );
    let v = campaign(&s, "k1").unwrap().unwrap();
    assert_eq!(v.callbacks_pending, 2);
    assert_eq!(v.states.values().sum::<u64>(), v.contacts_total);
    assert_eq!(v.states["retry"], 4);
    let r1 = &list(&s, "retry", None)[2];
    assert_eq!((r1.attempts, r1.last_result.as_deref()), (1, Some("busy")));
    assert_eq!(r1.identity, None);
    assert_eq!(
        list(&s, "pending", None)[0]
            .identity
            .as_ref()
            .unwrap()
            .value,
        "+442079460000"
    );
}

#[test]
fn callbacks_carry_overdue_against_now_and_can_be_limited_to_due_ones() {
    let s = scenario();
    let now = t(21, "12:00");
    let cbs = list(&s, "callback", Some(&now));
    assert_eq!(ids(&cbs), ["cb2", "cb1"]);
    assert_eq!(cbs[0].overdue, Some(true));
    assert_eq!(cbs[1].overdue, Some(false));
    assert_eq!(
        cbs[0].callback_at.unwrap().to_rfc3339(),
        "2026-11-21T10:00:00+00:00"
    );
    assert_eq!(
        list(&s, "callback", None)[0].overdue,
        None,
        "no now, no judgement"
    );
    let due = contacts(
        &s,
        "k1",
        &ContactsParams {
            state: Some("callback".into()),
            now: Some(now.clone()),
            due_only: Some(true),
            ..Default::default()
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(ids(&due.items), ["cb2"]);
    // The serialised item uses RFC 3339 UTC with Z.
    let j = serde_json::to_value(&cbs[0]).unwrap();
    assert_eq!(j["callback_at"], "2026-11-21T10:00:00Z");
    for f in [
        "customer_id",
        "state",
        "attempts",
        "last_result",
        "last_outcome",
        "callback_at",
        "agent_id",
    ] {
        assert!(j.get(f).is_some(), "api.md field {f}");
    }
}

#[test]
fn status_follows_paused_resumed_completed_by_event_time() {
    let k = "k1";
    let base = || vec![created("e0", k, &t(19, "08:00"), json!({}))];
    let status_of = |extra: Vec<serde_json::Value>| {
        let mut evs = base();
        evs.extend(extra);
        campaign(&fold(evs, &[k]), k).unwrap().unwrap().status
    };
    assert_eq!(status_of(vec![]), "active");
    assert_eq!(
        status_of(vec![status("s1", k, "paused", &t(20, "08:00"))]),
        "paused"
    );
    assert_eq!(
        status_of(vec![
            status("s1", k, "paused", &t(20, "08:00")),
            status("s2", k, "resumed", &t(20, "09:00"))
        ]),
        "active"
    );
    // Published out of event-time order: the later event time wins.
    assert_eq!(
        status_of(vec![
            status("s2", k, "resumed", &t(20, "09:00")),
            status("s1", k, "paused", &t(20, "10:00"))
        ]),
        "paused"
    );
    assert_eq!(
        status_of(vec![
            status("s1", k, "completed", &t(20, "08:00")),
            status("s2", k, "resumed", &t(20, "09:00"))
        ]),
        "completed",
        "completed is final"
    );
}

#[test]
fn events_before_campaign_created_are_parked_then_counted() {
    let k = "k1";
    let before = fold_in_order(vec![
        added("e1", k, "c1", &t(19, "09:00"), None),
        attempt("a1", k, "c1", &t(20, "09:00"), "phone", "connected", None),
    ]);
    assert!(
        campaign(&before, k).unwrap().is_none(),
        "no campaign.created yet: 404"
    );
    assert!(contacts(&before, k, &ContactsParams::default())
        .unwrap()
        .is_none());
    let dl = crm_projection::dead_letter_key("a1");
    let letter: crm_projection::DeadLetter = serde_json::from_slice(&before.map[&dl]).unwrap();
    assert!(letter.parked && letter.error.contains("campaign.created"));

    let s = fold(
        vec![
            added("e1", k, "c1", &t(19, "09:00"), None),
            attempt("a1", k, "c1", &t(20, "09:00"), "phone", "connected", None),
            created("e0", k, &t(19, "08:00"), json!({})),
        ],
        &[k],
    );
    assert!(s.map.keys().all(|key| key[0] != 0), "dead letters cleared");
    let v = campaign(&s, k).unwrap().unwrap();
    assert_eq!((v.contacts_total, v.contacts_reached), (1, 1));
}

#[test]
fn a_second_campaign_created_is_dead_lettered() {
    let s = fold_in_order(vec![
        created("e0", "k1", &t(19, "08:00"), json!({})),
        created("e1", "k1", &t(19, "09:00"), json!({"name": "Other"})),
    ]);
    assert_eq!(campaign(&s, "k1").unwrap().unwrap().name, "Campaign k1");
    let letter: crm_projection::DeadLetter =
        serde_json::from_slice(&s.map[&crm_projection::dead_letter_key("e1")]).unwrap();
    assert!(!letter.parked);
}

#[test]
fn queries_reject_bad_parameters_and_answer_none_for_unknown_campaigns() {
    let s = scenario();
    let p = |f: fn(&mut ContactsParams)| {
        let mut p = ContactsParams::default();
        f(&mut p);
        contacts(&s, "k1", &p)
    };
    let invalid = |r: Result<_, QueryError>, param: &str| match r {
        Err(QueryError::Invalid { param: p, .. }) => assert_eq!(p, param),
        other => panic!(
            "expected 422 on {param}, got {:?}",
            other.map(|_: Option<_>| ())
        ),
    };
    invalid(p(|p| p.state = Some("later".into())), "state");
    invalid(p(|p| p.now = Some("yesterday".into())), "now");
    invalid(p(|p| p.limit = Some(0)), "limit");
    invalid(p(|p| p.limit = Some(1001)), "limit");
    invalid(p(|p| p.due_only = Some(true)), "now");
    invalid(
        p(|p| {
            p.due_only = Some(true);
            p.now = Some("2026-11-21T00:00:00Z".into());
        }),
        "due_only",
    );
    assert!(matches!(
        p(|p| p.cursor = Some("00.0000000000000000".into())),
        Err(QueryError::BadRequest { .. })
    ));
    // A cursor of another list does not decode.
    let page = contacts(
        &s,
        "k1",
        &ContactsParams {
            limit: Some(1),
            ..Default::default()
        },
    )
    .unwrap()
    .unwrap();
    let cursor = page.next_cursor.unwrap();
    assert!(matches!(
        contacts(
            &s,
            "k1",
            &ContactsParams {
                state: Some("retry".into()),
                cursor: Some(cursor),
                ..Default::default()
            }
        ),
        Err(QueryError::BadRequest { .. })
    ));
    assert!(campaign(&s, "nope").unwrap().is_none());
    assert!(contacts(&s, "nope", &ContactsParams::default())
        .unwrap()
        .is_none());
    assert!(violations(&s, "nope", &ViolationsParams::default())
        .unwrap()
        .is_none());
    assert!(crm_campaigns::contact(&s, "k1", "nobody")
        .unwrap()
        .is_none());
}

#[test]
fn pages_cover_every_contact_once() {
    let s = scenario();
    for state in [None, Some("retry")] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = contacts(
                &s,
                "k1",
                &ContactsParams {
                    state: state.map(Into::into),
                    limit: Some(1),
                    cursor,
                    ..Default::default()
                },
            )
            .unwrap()
            .unwrap();
            assert!(page.items.len() <= 1);
            seen.extend(page.items.into_iter().map(|i| i.customer_id));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        let expected = match state {
            None => {
                contacts(&s, "k1", &ContactsParams::default())
                    .unwrap()
                    .unwrap()
                    .items
            }
            Some(st) => list(&s, st, None),
        };
        assert_eq!(
            seen,
            expected
                .iter()
                .map(|i| i.customer_id.clone())
                .collect::<Vec<_>>()
        );
    }
    let all = contacts(&s, "k1", &ContactsParams::default())
        .unwrap()
        .unwrap();
    assert_eq!(all.items.len(), 10);
    assert!(all.next_cursor.is_none());
    assert!(all
        .items
        .iter()
        .any(|i| i.state == ContactState::Suppressed));
}

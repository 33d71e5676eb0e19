//! Behaviour of the `cases` projection, one test per requirement.

use chrono::{DateTime, Duration, Utc};
use crm_cases::{
    count_cases, get_case, list_cases, waiting_cases, CaseCountParams, CaseListParams, CaseView,
    CasesProjection, Status,
};
use crm_events::Event;
use crm_projection::query::QueryError;
use crm_projection::testkit::{self, assert_order_independent, events, fold};
use crm_projection::{DeadLetter, KvRead, MemStore, DEAD_LETTER_PREFIX};
use serde_json::{json, Value};

const T0: &str = "2026-11-20T09:00:00Z";

fn t0() -> DateTime<Utc> {
    T0.parse().unwrap()
}

/// `T0 + minutes`, as RFC 3339.
fn at(minutes: i64) -> String {
    crm_events::format_time(&(t0() + Duration::minutes(minutes)))
}

fn now(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

/// An event: envelope ids and `data` come from `fields`.
fn ev(id: &str, ty: &str, minute: i64, fields: Value) -> Value {
    let mut e = json!({"event_id": id, "type": ty, "occurred_at": at(minute), "source": "test", "data": {}});
    for (k, v) in fields.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

fn case(store: &MemStore, id: &str, minute: i64) -> CaseView {
    get_case(store, id, now(minute))
        .unwrap()
        .unwrap_or_else(|| panic!("case {id} not found"))
}

fn dead_letters(store: &MemStore) -> Vec<DeadLetter> {
    store
        .map
        .iter()
        .filter(|(k, _)| k.starts_with(DEAD_LETTER_PREFIX))
        .map(|(_, v)| serde_json::from_slice(v).unwrap())
        .collect()
}

fn list(store: &dyn KvRead, params: CaseListParams) -> Vec<String> {
    let mut out = Vec::new();
    let mut params = CaseListParams {
        limit: Some(2),
        ..params
    };
    loop {
        let page = list_cases(store, &params, now(0)).unwrap();
        out.extend(page.items.into_iter().map(|s| s.case_id));
        match page.next_cursor {
            Some(c) => params.cursor = Some(c),
            None => return out,
        }
    }
}

fn by_customer(store: &dyn KvRead, customer: &str) -> Vec<String> {
    list(
        store,
        CaseListParams {
            customer_id: Some(customer.into()),
            ..Default::default()
        },
    )
}

fn opened(id: &str, case_id: &str, minute: i64, data: Value) -> Value {
    let mut data = data;
    if data.get("category").is_none() {
        data["category"] = json!("billing");
    }
    ev(
        id,
        "case.opened",
        minute,
        json!({"case_id": case_id, "data": data}),
    )
}

fn types(view: &CaseView) -> Vec<String> {
    view.history.iter().map(|h| h.event_type.clone()).collect()
}

// ------------------------------------------------------------ interactions

#[test]
fn a_case_gathers_many_interactions_and_one_interaction_joins_many_cases_whichever_stream_comes_first(
) {
    let case_events = events(vec![
        opened(
            "k1-open",
            "k1",
            1,
            json!({"origin_interaction_id": "call-1"}),
        ),
        ev(
            "k1-link",
            "case.interaction_linked",
            30,
            json!({"case_id": "k1", "interaction_id": "mail-2"}),
        ),
        opened(
            "k2-open",
            "k2",
            2,
            json!({"origin_interaction_id": "call-1", "category": "tech"}),
        ),
    ]);
    let interaction_events = events(vec![
        ev(
            "call-1-start",
            "interaction.started",
            0,
            json!({"interaction_id": "call-1", "agent_id": "ag-1",
                   "data": {"channel": "phone", "direction": "inbound", "queue": "billing"}}),
        ),
        ev(
            "call-1-end",
            "interaction.ended",
            5,
            json!({"interaction_id": "call-1", "data": {"outcome": "completed"}}),
        ),
        ev(
            "mail-2-rec",
            "interaction.recorded",
            25,
            json!({"interaction_id": "mail-2", "data": {"channel": "email", "direction": "inbound"}}),
        ),
    ]);
    let cases_first: Vec<Event> = case_events
        .iter()
        .chain(&interaction_events)
        .cloned()
        .collect();
    let interactions_first: Vec<Event> = interaction_events
        .iter()
        .chain(&case_events)
        .cloned()
        .collect();
    let a = fold(&CasesProjection, &cases_first);
    let b = fold(&CasesProjection, &interactions_first);
    assert_eq!(a, b, "same state whichever stream arrives first");

    let k1 = case(&a, "k1", 60);
    let got: Vec<(&str, Option<&str>, Option<&str>, bool)> = k1
        .interactions
        .iter()
        .map(|i| {
            (
                i.interaction_id.as_str(),
                i.channel.as_deref(),
                i.started_at.as_deref(),
                i.origin,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("call-1", Some("phone"), Some(at(0).as_str()), true),
            ("mail-2", Some("email"), Some(at(25).as_str()), false),
        ]
    );
    let k2 = case(&a, "k2", 60);
    assert_eq!(k2.interactions.len(), 1);
    assert_eq!(k2.interactions[0].interaction_id, "call-1");
    assert_eq!(k2.interactions[0].channel.as_deref(), Some("phone"));

    // Before the interaction's own events arrive, the link is known but its channel is not.
    let only_cases = fold(&CasesProjection, &case_events);
    let k1 = case(&only_cases, "k1", 60);
    assert_eq!(k1.interactions.len(), 2);
    assert!(k1
        .interactions
        .iter()
        .all(|i| i.channel.is_none() && i.started_at.is_none()));
}

#[test]
fn history_starts_with_the_origin_interactions_start_even_when_the_case_arrives_first() {
    let evs = events(vec![
        opened("open", "k1", 3, json!({"origin_interaction_id": "chat-9"})),
        ev(
            "note",
            "case.note_added",
            4,
            json!({"case_id": "k1", "data": {"text": "asked for refund"}}),
        ),
        // Published later, on the interaction stream.
        ev(
            "chat-start",
            "interaction.started",
            1,
            json!({"interaction_id": "chat-9", "data": {"channel": "chat", "direction": "inbound"}}),
        ),
        ev(
            "chat-msg",
            "interaction.message",
            2,
            json!({"interaction_id": "chat-9", "data": {"author": "customer"}}),
        ),
    ]);
    let store = fold(&CasesProjection, &evs);
    let view = case(&store, "k1", 10);
    assert_eq!(
        types(&view),
        ["interaction.started", "case.opened", "case.note_added"]
    );
    assert_eq!(view.history[0].event_id, "chat-start");
    assert_eq!(view.history[0].interaction_id.as_deref(), Some("chat-9"));
    assert_eq!(view.history[0].occurred_at, at(1));

    // A one-shot interaction.recorded is a start too; it is first even when
    // stamped after the opening (clock skew between systems).
    let evs = events(vec![
        opened("open", "k1", 3, json!({"origin_interaction_id": "sms-1"})),
        ev(
            "sms-rec",
            "interaction.recorded",
            5,
            json!({"interaction_id": "sms-1", "data": {"channel": "sms", "direction": "inbound"}}),
        ),
    ]);
    let view = case(&fold(&CasesProjection, &evs), "k1", 10);
    assert_eq!(types(&view), ["interaction.recorded", "case.opened"]);
}

// --------------------------------------------------------- personalisation

#[test]
fn a_non_personalised_case_gets_its_customer_later() {
    let evs = events(vec![
        opened("open", "k1", 0, json!({})),
        ev(
            "ident",
            "case.customer_identified",
            10,
            json!({"case_id": "k1", "customer_id": "cu-1"}),
        ),
    ]);
    let before = fold(&CasesProjection, &evs[..1]);
    let view = case(&before, "k1", 5);
    assert_eq!(view.customer_id, None);
    assert!(by_customer(&before, "cu-1").is_empty());

    let after = fold(&CasesProjection, &evs);
    let view = case(&after, "k1", 15);
    assert_eq!(view.customer_id.as_deref(), Some("cu-1"));
    assert_eq!(view.history[1].summary, "customer identified: cu-1");
    assert_eq!(by_customer(&after, "cu-1"), ["k1"]);
}

// ------------------------------------------------------------------- voids

#[test]
fn a_voided_case_is_kept_with_its_reason_and_left_out_of_counts_and_sla() {
    let evs = events(vec![
        opened(
            "o1",
            "k1",
            0,
            json!({"first_response_due": at(10), "resolve_due": at(60)}),
        ),
        ev(
            "o1c",
            "case.customer_identified",
            0,
            json!({"case_id": "k1", "customer_id": "cu-1"}),
        ),
        ev(
            "v1",
            "case.voided",
            5,
            json!({"case_id": "k1", "data": {"reason": "duplicate", "duplicate_of": "k2"}}),
        ),
        opened(
            "o2",
            "k2",
            0,
            json!({"first_response_due": at(10), "resolve_due": at(60)}),
        ),
        ev(
            "o2c",
            "case.customer_identified",
            0,
            json!({"case_id": "k2", "customer_id": "cu-1"}),
        ),
    ]);
    let store = fold(&CasesProjection, &evs);
    let view = case(&store, "k1", 120);
    assert_eq!(view.status, Status::Voided);
    assert_eq!(view.void_reason.as_deref(), Some("duplicate"));
    assert_eq!(view.duplicate_of.as_deref(), Some("k2"));
    assert_eq!(
        types(&view),
        ["case.opened", "case.customer_identified", "case.voided"]
    );
    assert_eq!(
        view.sla.first_response_breached, None,
        "no SLA outcome for a voided case"
    );
    assert_eq!(view.sla.resolve_breached, None);
    assert!(!view.sla.counted);
    assert_eq!(view.time_to_resolution_seconds, None);

    let counts = count_cases(
        &store,
        &CaseCountParams {
            customer_id: Some("cu-1".into()),
            ..Default::default()
        },
        now(120),
    )
    .unwrap();
    assert_eq!((counts.total, counts.open, counts.voided), (1, 1, 1));
    assert_eq!(
        (counts.first_response_breached, counts.resolve_breached),
        (1, 1),
        "only k2 counts"
    );

    // Still listed (never deleted), with its status.
    assert_eq!(by_customer(&store, "cu-1"), ["k1", "k2"]);
    let open = list(
        &store,
        CaseListParams {
            status: Some("open".into()),
            ..Default::default()
        },
    );
    assert_eq!(open, ["k2"]);
    let voided = list(
        &store,
        CaseListParams {
            status: Some("voided".into()),
            ..Default::default()
        },
    );
    assert_eq!(voided, ["k1"]);
}

// --------------------------------------------------------------- lifecycle

fn lifecycle() -> Vec<Event> {
    events(vec![
        opened(
            "open",
            "k1",
            0,
            json!({"category": "billing", "subcategory": "invoice", "priority": "high", "queue": "t1-billing",
                   "first_response_due": at(30), "resolve_due": at(240), "related": {"account": "AC-7"}}),
        ),
        ev(
            "assign",
            "case.assigned",
            2,
            json!({"case_id": "k1", "agent_id": "ag-1", "data": {"queue": "t1-billing"}}),
        ),
        ev(
            "cat",
            "case.categorized",
            5,
            json!({"case_id": "k1", "data": {"category": "payments", "subcategory": "refund"}}),
        ),
        ev(
            "resp",
            "case.responded",
            20,
            json!({"case_id": "k1", "data": {"channel": "email"}}),
        ),
        ev(
            "esc",
            "case.escalated",
            30,
            json!({"case_id": "k1", "agent_id": "ag-1",
                   "data": {"to_tier": 2, "reason": "needs refund approval", "queue": "t2-payments"}}),
        ),
        ev(
            "assign2",
            "case.assigned",
            31,
            json!({"case_id": "k1", "agent_id": "ag-7", "data": {}}),
        ),
        ev(
            "resp2",
            "case.responded",
            45,
            json!({"case_id": "k1", "data": {"channel": "phone"}}),
        ),
        ev(
            "res",
            "case.resolved",
            60,
            json!({"case_id": "k1", "data": {"resolution": "refunded", "resolution_code": "RF"}}),
        ),
        ev(
            "reopen",
            "case.reopened",
            120,
            json!({"case_id": "k1", "data": {"reason": "refund not received"}}),
        ),
        ev(
            "esc2",
            "case.escalated",
            125,
            json!({"case_id": "k1", "data": {"to_tier": 3, "reason": "bank trace"}}),
        ),
        ev(
            "res2",
            "case.resolved",
            300,
            json!({"case_id": "k1", "data": {"resolution": "bank traced"}}),
        ),
        ev("close", "case.closed", 310, json!({"case_id": "k1"})),
        ev(
            "note",
            "case.note_added",
            311,
            json!({"case_id": "k1", "data": {"text": "done", "visibility": "customer"}}),
        ),
    ])
}

#[test]
fn lifecycle_assign_categorize_escalate_respond_resolve_reopen_close() {
    let store = fold(&CasesProjection, &lifecycle());
    let v = case(&store, "k1", 1000);
    assert_eq!(v.status, Status::Closed);
    assert_eq!(
        (v.category.as_str(), v.subcategory.as_deref()),
        ("payments", Some("refund"))
    );
    assert_eq!(v.priority, "high");
    assert_eq!(v.tier, 3);
    assert_eq!(v.queue.as_deref(), Some("t2-payments"));
    assert_eq!(v.assignee.as_deref(), Some("ag-7"));
    assert_eq!(v.related, json!({"account": "AC-7"}));
    assert_eq!(v.escalation_path, [1, 2, 3]);
    let esc: Vec<(u32, u32, &str, Option<&str>)> = v
        .escalations
        .iter()
        .map(|e| (e.from_tier, e.to_tier, e.at.as_str(), e.reason.as_deref()))
        .collect();
    assert_eq!(
        esc,
        vec![
            (1, 2, at(30).as_str(), Some("needs refund approval")),
            (2, 3, at(125).as_str(), Some("bank trace")),
        ]
    );
    assert_eq!(v.first_response_at.as_deref(), Some(at(20).as_str()));
    assert_eq!(v.time_to_first_response_seconds, Some(1200.0));
    assert_eq!(v.reopen_count, 1);
    // The last resolution counts: opened at 0, resolved again at 300.
    assert_eq!(v.resolved_at.as_deref(), Some(at(300).as_str()));
    assert_eq!(v.first_resolved_at.as_deref(), Some(at(60).as_str()));
    assert_eq!(v.resolution.as_deref(), Some("bank traced"));
    assert_eq!(v.closed_at.as_deref(), Some(at(310).as_str()));
    assert_eq!(v.time_to_resolution_seconds, Some(18000.0));
    assert_eq!(v.sla.first_response_breached, Some(false));
    assert_eq!(
        v.sla.resolve_breached,
        Some(true),
        "judged on the final resolution (300 > 240)"
    );
    assert_eq!(
        (v.responses_count, v.notes_count, v.customer_notes_count),
        (2, 1, 1)
    );
    assert_eq!(v.events_count, 13);
    assert_eq!(v.history.len(), 13);
    assert_eq!(
        v.history[4].summary,
        "escalated to tier 2 (queue t2-payments): needs refund approval"
    );

    // While reopened the case is open, and its resolution clock runs against `now`.
    let reopened = fold(&CasesProjection, &lifecycle()[..9]);
    let v = case(&reopened, "k1", 200);
    assert_eq!(v.status, Status::Open);
    assert_eq!(v.resolved_at, None);
    assert_eq!(v.time_to_resolution_seconds, None);
    assert_eq!(v.sla.resolve_breached, Some(false));
    assert_eq!(case(&reopened, "k1", 241).sla.resolve_breached, Some(true));
    assert_eq!(v.assignee.as_deref(), Some("ag-7"));

    // Escalating into another queue leaves the case unassigned there.
    let escalated = fold(&CasesProjection, &lifecycle()[..5]);
    let v = case(&escalated, "k1", 30);
    assert_eq!((v.tier, v.assignee.as_deref()), (2, None));
}

#[test]
fn a_reopen_only_counts_from_a_resolved_or_closed_case() {
    let evs = events(vec![
        opened("open", "k1", 0, json!({})),
        ev("reopen-open", "case.reopened", 1, json!({"case_id": "k1"})),
        ev(
            "res",
            "case.resolved",
            2,
            json!({"case_id": "k1", "data": {"resolution": "x"}}),
        ),
        ev("reopen", "case.reopened", 3, json!({"case_id": "k1"})),
        ev("close", "case.closed", 4, json!({"case_id": "k1"})),
        ev("reopen2", "case.reopened", 5, json!({"case_id": "k1"})),
    ]);
    let v = case(&fold(&CasesProjection, &evs), "k1", 10);
    assert_eq!(v.reopen_count, 2);
    assert_eq!(v.status, Status::Open);
    assert_eq!(v.history.len(), 6, "every event stays in history");
}

// --------------------------------------------------------------------- SLA

#[test]
fn sla_is_judged_by_event_time_and_against_now_while_pending() {
    let open = opened(
        "open",
        "k1",
        0,
        json!({"first_response_due": at(30), "resolve_due": at(120)}),
    );
    let pending = fold(&CasesProjection, &events(vec![open.clone()]));
    let v = case(&pending, "k1", 29);
    assert_eq!(
        (v.sla.first_response_breached, v.sla.resolve_breached),
        (Some(false), Some(false))
    );
    assert_eq!(v.sla.evaluated_at, at(29));
    let v = case(&pending, "k1", 31);
    assert_eq!(
        (v.sla.first_response_breached, v.sla.resolve_breached),
        (Some(true), Some(false))
    );
    let v = case(&pending, "k1", 121);
    assert_eq!(
        (v.sla.first_response_breached, v.sla.resolve_breached),
        (Some(true), Some(true))
    );
    assert_eq!(v.time_to_first_response_seconds, None);

    // A late response is breached whatever `now` is; an early one never.
    let late = fold(
        &CasesProjection,
        &events(vec![
            open.clone(),
            ev("r", "case.responded", 31, json!({"case_id": "k1"})),
        ]),
    );
    assert_eq!(case(&late, "k1", 0).sla.first_response_breached, Some(true));
    let early = fold(
        &CasesProjection,
        &events(vec![
            open.clone(),
            ev("r", "case.responded", 29, json!({"case_id": "k1"})),
            ev(
                "s",
                "case.resolved",
                100,
                json!({"case_id": "k1", "data": {"resolution": "ok"}}),
            ),
        ]),
    );
    let v = case(&early, "k1", 10_000);
    assert_eq!(
        (v.sla.first_response_breached, v.sla.resolve_breached),
        (Some(false), Some(false))
    );
    assert_eq!(v.time_to_first_response_seconds, Some(1740.0));
    assert_eq!(v.time_to_resolution_seconds, Some(6000.0));

    // Without due times there is nothing to breach.
    let none = fold(
        &CasesProjection,
        &events(vec![opened("open", "k1", 0, json!({}))]),
    );
    let v = case(&none, "k1", 10_000);
    assert_eq!(
        (v.sla.first_response_breached, v.sla.resolve_breached),
        (None, None)
    );
}

// ------------------------------------------------------------------- lists

fn many_cases() -> Vec<Event> {
    let mut out = Vec::new();
    for (i, (cat, queue, tier, customer)) in [
        ("billing", "q-a", 1, Some("cu-1")),
        ("billing", "q-b", 2, Some("cu-2")),
        ("tech", "q-a", 1, Some("cu-1")),
        ("tech", "q-a", 2, None),
        ("billing", "q-a", 2, Some("cu-1")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = opened(
            &format!("o{i}"),
            &format!("k{i}"),
            i as i64,
            json!({"category": cat, "queue": queue, "tier": tier}),
        );
        if let Some(c) = customer {
            e["customer_id"] = json!(c);
        }
        out.push(e);
    }
    out.push(ev(
        "r3",
        "case.resolved",
        10,
        json!({"case_id": "k3", "data": {"resolution": "ok"}}),
    ));
    out.push(ev(
        "r4",
        "case.resolved",
        10,
        json!({"case_id": "k4", "data": {"resolution": "ok"}}),
    ));
    events(out)
}

#[test]
fn lists_filter_by_customer_status_category_queue_and_tier_and_paginate() {
    let store = fold(&CasesProjection, &many_cases());
    let q = |p: CaseListParams| list(&store, p);
    assert_eq!(q(CaseListParams::default()), ["k0", "k1", "k2", "k3", "k4"]);
    assert_eq!(by_customer(&store, "cu-1"), ["k0", "k2", "k4"]);
    assert_eq!(
        q(CaseListParams {
            status: Some("resolved".into()),
            ..Default::default()
        }),
        ["k3", "k4"]
    );
    assert_eq!(
        q(CaseListParams {
            category: Some("tech".into()),
            ..Default::default()
        }),
        ["k2", "k3"]
    );
    assert_eq!(
        q(CaseListParams {
            queue: Some("q-a".into()),
            ..Default::default()
        }),
        ["k0", "k2", "k3", "k4"]
    );
    assert_eq!(
        q(CaseListParams {
            tier: Some("2".into()),
            ..Default::default()
        }),
        ["k1", "k3", "k4"]
    );
    assert_eq!(
        q(CaseListParams {
            customer_id: Some("cu-1".into()),
            category: Some("billing".into()),
            queue: Some("q-a".into()),
            tier: Some("2".into()),
            status: Some("resolved".into()),
            ..Default::default()
        }),
        ["k4"]
    );
    assert_eq!(
        q(CaseListParams {
            queue: Some("q-a".into()),
            status: Some("open".into()),
            ..Default::default()
        }),
        ["k0", "k2"]
    );
    assert!(q(CaseListParams {
        customer_id: Some("nobody".into()),
        ..Default::default()
    })
    .is_empty());
    // Empty strings are no filter.
    assert_eq!(
        q(CaseListParams {
            status: Some(String::new()),
            ..Default::default()
        })
        .len(),
        5
    );

    // Pages: limit 2 gives k0,k2 | k3,k4 for queue q-a; the last page has no cursor.
    let params = CaseListParams {
        queue: Some("q-a".into()),
        limit: Some(2),
        ..Default::default()
    };
    let p1 = list_cases(&store, &params, now(0)).unwrap();
    assert_eq!(
        p1.items
            .iter()
            .map(|s| s.case_id.as_str())
            .collect::<Vec<_>>(),
        ["k0", "k2"]
    );
    let cursor = p1.next_cursor.clone().unwrap();
    let p2 = list_cases(
        &store,
        &CaseListParams {
            cursor: Some(cursor.clone()),
            ..params.clone()
        },
        now(0),
    )
    .unwrap();
    assert_eq!(
        p2.items
            .iter()
            .map(|s| s.case_id.as_str())
            .collect::<Vec<_>>(),
        ["k3", "k4"]
    );
    assert_eq!(p2.next_cursor, None);
    let summary = &p2.items[1];
    assert_eq!(
        (summary.category.as_str(), summary.tier, summary.status),
        ("billing", 2, Status::Resolved)
    );
    assert_eq!(summary.customer_id.as_deref(), Some("cu-1"));

    // Bad input.
    let err = |p: CaseListParams| list_cases(&store, &p, now(0)).unwrap_err();
    assert!(
        matches!(err(CaseListParams { status: Some("pending".into()), ..Default::default() }),
        QueryError::Invalid { param, .. } if param == "status")
    );
    assert!(
        matches!(err(CaseListParams { tier: Some("0".into()), ..Default::default() }),
        QueryError::Invalid { param, .. } if param == "tier")
    );
    assert!(
        matches!(err(CaseListParams { tier: Some("two".into()), ..Default::default() }),
        QueryError::Invalid { param, .. } if param == "tier")
    );
    assert!(
        matches!(err(CaseListParams { limit: Some(0), ..Default::default() }),
        QueryError::Invalid { param, .. } if param == "limit")
    );
    let mut tampered = cursor.clone();
    tampered.replace_range(0..2, "6a");
    assert!(
        matches!(err(CaseListParams { cursor: Some(tampered), ..params.clone() }),
        QueryError::BadRequest { param, .. } if param == "cursor")
    );
    // A cursor of another list does not decode either.
    assert!(
        matches!(err(CaseListParams { cursor: Some(cursor), queue: Some("q-b".into()), ..params }),
        QueryError::BadRequest { param, .. } if param == "cursor")
    );
    assert!(matches!(
        count_cases(&store, &CaseCountParams::default(), now(0)).unwrap_err(),
        QueryError::Invalid { .. }
    ));
}

#[test]
fn merged_customers_cases_show_under_the_survivor_transitively_and_unmerge_restores() {
    let mut evs = vec![
        opened("oa", "ka", 0, json!({})),
        opened("ob", "kb", 0, json!({})),
        opened("oc", "kc", 0, json!({})),
    ];
    for (e, c) in evs.iter_mut().zip(["cu-a", "cu-b", "cu-c"]) {
        e["customer_id"] = json!(c);
    }
    evs.push(ev(
        "m1",
        "customer.merged",
        5,
        json!({"customer_id": "cu-b", "data": {"merged_customer_id": "cu-a"}}),
    ));
    evs.push(ev(
        "m2",
        "customer.merged",
        6,
        json!({"customer_id": "cu-c", "data": {"merged_customer_id": "cu-b"}}),
    ));
    let merged = events(evs.clone());
    let store = fold(&CasesProjection, &merged);
    assert_eq!(by_customer(&store, "cu-c"), ["ka", "kb", "kc"]);
    // A merged id stands for its survivor.
    assert_eq!(by_customer(&store, "cu-a"), ["ka", "kb", "kc"]);
    let v = case(&store, "ka", 10);
    assert_eq!(v.customer_id.as_deref(), Some("cu-c"));
    assert_eq!(v.attributed_customer_id.as_deref(), Some("cu-a"));
    let counts = count_cases(
        &store,
        &CaseCountParams {
            customer_id: Some("cu-c".into()),
            ..Default::default()
        },
        now(0),
    )
    .unwrap();
    assert_eq!(counts.total, 3);

    // Unmerging the middle link: cu-b comes back with what was its own (and cu-a's, merged into it).
    evs.push(ev(
        "u2",
        "customer.unmerged",
        7,
        json!({"customer_id": "cu-c", "data": {"merged_customer_id": "cu-b"}}),
    ));
    let store = fold(&CasesProjection, &events(evs));
    assert_eq!(by_customer(&store, "cu-c"), ["kc"]);
    assert_eq!(by_customer(&store, "cu-b"), ["ka", "kb"]);
    assert_eq!(case(&store, "ka", 10).customer_id.as_deref(), Some("cu-b"));
}

#[test]
fn filtered_lists_are_served_from_index_keys_not_scans_of_all_cases() {
    let mut evs = Vec::new();
    for i in 0..600 {
        let rare = i % 200 == 7;
        let mut e = opened(
            &format!("o{i}"),
            &format!("k{i:04}"),
            0,
            json!({"category": if rare { "fraud" } else { "billing" }, "queue": if i % 2 == 0 { "q-even" } else { "q-odd" }}),
        );
        e["customer_id"] = json!(format!("cu-{}", i % 100));
        evs.push(e);
    }
    let store = fold(&CasesProjection, &events(evs));
    let counting = testkit::CountingKv::new(&store);

    let fraud = list(
        &counting,
        CaseListParams {
            category: Some("fraud".into()),
            ..Default::default()
        },
    );
    assert_eq!(fraud, ["k0007", "k0207", "k0407"]);
    assert!(counting.reads() < 40, "read {} entries", counting.reads());

    // A small set intersected with a large one (300 cases in q-even): the
    // fraud cases are all odd, so the result is empty, found by a few seeks.
    counting.reset();
    let none = list(
        &counting,
        CaseListParams {
            category: Some("fraud".into()),
            queue: Some("q-even".into()),
            ..Default::default()
        },
    );
    assert!(none.is_empty());
    assert!(counting.reads() < 40, "read {} entries", counting.reads());

    counting.reset();
    assert_eq!(by_customer(&counting, "cu-7").len(), 6);
    assert!(counting.reads() < 60, "read {} entries", counting.reads());
}

// --------------------------------------------------------------- bad input

#[test]
fn case_events_before_case_opened_are_parked_then_applied() {
    let evs = events(vec![
        ev(
            "ident",
            "case.customer_identified",
            2,
            json!({"case_id": "k1", "customer_id": "cu-1"}),
        ),
        ev(
            "assign",
            "case.assigned",
            3,
            json!({"case_id": "k1", "agent_id": "ag-1"}),
        ),
        opened("open", "k1", 1, json!({"category": "tech"})),
    ]);
    let early = fold(&CasesProjection, &evs[..2]);
    assert!(
        get_case(&early, "k1", now(0)).unwrap().is_none(),
        "not a case before it is opened"
    );
    let dl = dead_letters(&early);
    assert_eq!(dl.len(), 2);
    assert!(dl
        .iter()
        .all(|d| d.parked && d.error.contains("waiting for case.opened")));
    assert_eq!(waiting_cases(&early).unwrap()["k1"], ["ident", "assign"]);
    assert!(by_customer(&early, "cu-1").is_empty());

    let store = fold(&CasesProjection, &evs);
    assert!(
        dead_letters(&store).is_empty(),
        "applied, so no longer dead letters"
    );
    assert!(waiting_cases(&store).unwrap().is_empty());
    let v = case(&store, "k1", 5);
    assert_eq!(v.customer_id.as_deref(), Some("cu-1"));
    assert_eq!(v.assignee.as_deref(), Some("ag-1"));
    assert_eq!(
        types(&v),
        ["case.opened", "case.customer_identified", "case.assigned"]
    );
    assert_eq!(by_customer(&store, "cu-1"), ["k1"]);
}

#[test]
fn a_second_case_opened_is_dead_lettered_never_merged() {
    let evs = events(vec![
        opened(
            "open",
            "k1",
            0,
            json!({"category": "tech", "priority": "low"}),
        ),
        opened(
            "open-again",
            "k1",
            1,
            json!({"category": "billing", "priority": "urgent"}),
        ),
    ]);
    let store = fold(&CasesProjection, &evs);
    let dl = dead_letters(&store);
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].event_id, "open-again");
    assert!(!dl[0].parked);
    assert!(dl[0].error.contains("already opened"));
    let v = case(&store, "k1", 2);
    assert_eq!((v.category.as_str(), v.priority.as_str()), ("tech", "low"));
    assert_eq!(v.history.len(), 1);
}

// ----------------------------------------------------------------- ordering

#[test]
fn history_is_in_event_time_order_with_ties_in_case_stream_order() {
    let evs = events(vec![
        opened("z-open", "k1", 0, json!({"category": "a"})),
        // Same time, event ids sorting against the stream order: stream order wins.
        ev(
            "y-note",
            "case.note_added",
            10,
            json!({"case_id": "k1", "data": {"text": "first"}}),
        ),
        ev(
            "x-note",
            "case.note_added",
            10,
            json!({"case_id": "k1", "data": {"text": "second"}}),
        ),
        ev(
            "cat-late",
            "case.categorized",
            20,
            json!({"case_id": "k1", "data": {"category": "late"}}),
        ),
        // Published last but happened earlier: placed by its time, and it
        // does not override the later categorization.
        ev(
            "cat-early",
            "case.categorized",
            5,
            json!({"case_id": "k1", "data": {"category": "early"}}),
        ),
    ]);
    let store = fold(&CasesProjection, &evs);
    let v = case(&store, "k1", 30);
    let ids: Vec<&str> = v.history.iter().map(|h| h.event_id.as_str()).collect();
    assert_eq!(ids, ["z-open", "cat-early", "y-note", "x-note", "cat-late"]);
    assert_eq!(
        v.history.iter().map(|h| h.seq.unwrap()).collect::<Vec<_>>(),
        [0, 4, 1, 2, 3]
    );
    assert_eq!(v.category, "late");
    assert_eq!(
        list(
            &store,
            CaseListParams {
                category: Some("late".into()),
                ..Default::default()
            }
        ),
        ["k1"]
    );
    assert!(list(
        &store,
        CaseListParams {
            category: Some("early".into()),
            ..Default::default()
        }
    )
    .is_empty());
}

#[test]
fn ids_with_separator_and_nul_bytes_do_not_collide() {
    let evs = events(vec![
        opened("o1", "a", 0, json!({"category": "x"})),
        opened("o2", "a/b", 0, json!({"category": "x/y"})),
        opened("o3", "a\u{0}", 0, json!({"category": "x"})),
    ]);
    let store = fold(&CasesProjection, &evs);
    assert_eq!(case(&store, "a", 0).history.len(), 1);
    assert_eq!(case(&store, "a/b", 0).category, "x/y");
    assert_eq!(
        list(
            &store,
            CaseListParams {
                category: Some("x".into()),
                ..Default::default()
            }
        ),
        ["a", "a\u{0}"]
    );
}

// ------------------------------------------------------------- more edges

#[test]
fn interactions_are_ordered_by_their_start_time_at_any_precision() {
    let evs = events(vec![
        opened("open", "k1", 0, json!({"origin_interaction_id": "i-b"})),
        ev(
            "l",
            "case.interaction_linked",
            1,
            json!({"case_id": "k1", "interaction_id": "i-a"}),
        ),
        ev(
            "l2",
            "case.interaction_linked",
            1,
            json!({"case_id": "k1", "interaction_id": "i-c"}),
        ),
        json!({"event_id": "sa", "type": "interaction.started", "occurred_at": "2026-11-20T09:00:00.5Z",
               "source": "t", "interaction_id": "i-a", "data": {"channel": "chat", "direction": "inbound"}}),
        json!({"event_id": "sb", "type": "interaction.started", "occurred_at": "2026-11-20T09:00:01Z",
               "source": "t", "interaction_id": "i-b", "data": {"channel": "phone", "direction": "inbound"}}),
    ]);
    let v = case(&fold(&CasesProjection, &evs), "k1", 5);
    let ids: Vec<&str> = v
        .interactions
        .iter()
        .map(|i| i.interaction_id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["i-a", "i-b", "i-c"],
        "by start time; unknown start last"
    );
}

#[test]
fn merge_cycles_and_double_merges_resolve_deterministically() {
    let mut evs = vec![
        opened("oa", "ka", 0, json!({})),
        opened("ob", "kb", 0, json!({})),
    ];
    evs[0]["customer_id"] = json!("cu-a");
    evs[1]["customer_id"] = json!("cu-b");
    // A cycle (bad data upstream) is broken at its oldest edge (b -> a,
    // at minute 1): its merged customer, cu-b, survives; the customers
    // projection uses the same rule.
    evs.push(ev(
        "m1",
        "customer.merged",
        2,
        json!({"customer_id": "cu-b", "data": {"merged_customer_id": "cu-a"}}),
    ));
    evs.push(ev(
        "m2",
        "customer.merged",
        1,
        json!({"customer_id": "cu-a", "data": {"merged_customer_id": "cu-b"}}),
    ));
    let store = fold(&CasesProjection, &events(evs.clone()));
    assert_eq!(case(&store, "ka", 5).customer_id.as_deref(), Some("cu-b"));
    assert_eq!(case(&store, "kb", 5).customer_id.as_deref(), Some("cu-b"));
    assert_eq!(by_customer(&store, "cu-a"), ["ka", "kb"]);

    // The latest merged/unmerged of a pair by event time decides, even when
    // an older one is published after it.
    let mut late = vec![opened("oa", "ka", 0, json!({}))];
    late[0]["customer_id"] = json!("cu-a");
    late.push(ev(
        "m",
        "customer.merged",
        10,
        json!({"customer_id": "cu-z", "data": {"merged_customer_id": "cu-a"}}),
    ));
    late.push(ev(
        "u",
        "customer.unmerged",
        5,
        json!({"customer_id": "cu-z", "data": {"merged_customer_id": "cu-a"}}),
    ));
    let store = fold(&CasesProjection, &events(late));
    assert_eq!(case(&store, "ka", 20).customer_id.as_deref(), Some("cu-z"));

    // One customer merged into two survivors: the latest merge wins.
    let mut evs = vec![opened("oa", "ka", 0, json!({}))];
    evs[0]["customer_id"] = json!("cu-a");
    evs.push(ev(
        "m1",
        "customer.merged",
        2,
        json!({"customer_id": "cu-x", "data": {"merged_customer_id": "cu-a"}}),
    ));
    evs.push(ev(
        "m2",
        "customer.merged",
        1,
        json!({"customer_id": "cu-y", "data": {"merged_customer_id": "cu-a"}}),
    ));
    let store = fold(&CasesProjection, &events(evs));
    assert_eq!(by_customer(&store, "cu-x"), ["ka"]);
    assert!(by_customer(&store, "cu-y").is_empty());
}

#[test]
fn without_a_response_the_first_response_clock_stops_when_the_case_does() {
    let open = opened("open", "k1", 0, json!({"first_response_due": at(30)}));
    let quick = fold(
        &CasesProjection,
        &events(vec![
            open.clone(),
            ev(
                "r",
                "case.resolved",
                20,
                json!({"case_id": "k1", "data": {"resolution": "x"}}),
            ),
        ]),
    );
    assert_eq!(
        case(&quick, "k1", 1000).sla.first_response_breached,
        Some(false)
    );
    let slow = fold(
        &CasesProjection,
        &events(vec![
            open,
            ev("c", "case.closed", 40, json!({"case_id": "k1"})),
        ]),
    );
    let v = case(&slow, "k1", 0);
    assert_eq!(v.sla.first_response_breached, Some(true));
    assert_eq!(
        v.time_to_resolution_seconds,
        Some(2400.0),
        "closed without a resolution: the close counts"
    );
}

/// The example in docs/cases.md is the output of this crate.
#[test]
fn the_documented_example_is_what_the_projection_answers() {
    let doc = include_str!("../../../docs/cases.md");
    let block = |marker: &str| -> Value {
        let start = doc
            .find(marker)
            .unwrap_or_else(|| panic!("{marker} missing"));
        let body = &doc[start..];
        let open = body.find("```json\n").unwrap() + "```json\n".len();
        let close = body[open..].find("```").unwrap();
        serde_json::from_str(&body[open..open + close]).unwrap()
    };
    let input: Vec<Value> = serde_json::from_value(block("<!-- example-events -->")).unwrap();
    let store = assert_order_independent(&CasesProjection, &events(input), 0..20);
    let view = get_case(&store, "case-501", "2026-11-22T00:00:00Z".parse().unwrap())
        .unwrap()
        .unwrap();
    let got = serde_json::to_value(&view).unwrap();
    if std::env::var_os("PRINT_EXAMPLE").is_some() {
        println!("{}", serde_json::to_string_pretty(&view).unwrap());
    }
    assert_eq!(got, block("<!-- example-view -->"));
}

#[test]
fn response_schemas_name_the_contract_fields() {
    use utoipa::PartialSchema;
    let view = serde_json::to_value(CaseView::schema()).unwrap();
    for field in [
        "case_id",
        "customer_id",
        "status",
        "category",
        "subcategory",
        "priority",
        "tier",
        "queue",
        "assignee",
        "related",
        "opened_at",
        "first_response_at",
        "resolved_at",
        "closed_at",
        "reopen_count",
        "void_reason",
        "escalations",
        "interactions",
        "sla",
        "history",
        "time_to_first_response_seconds",
        "time_to_resolution_seconds",
    ] {
        assert!(
            view["properties"].get(field).is_some(),
            "CaseView lacks {field}"
        );
    }
    assert_eq!(view["properties"]["related"]["type"], "object");
    let status = serde_json::to_value(Status::schema()).unwrap();
    assert_eq!(
        status["enum"],
        json!(["open", "resolved", "closed", "voided"])
    );
}

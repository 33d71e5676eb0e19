//! The timeline: order, filters, cursor pagination that stays stable while
//! events arrive, and bad input.

mod common;

use common::*;
use crm_customers::*;
use crm_projection::query::QueryError;
use serde_json::{json, Value};

fn rec(id: &str, minutes: i64, iid: &str, channel: &str) -> Value {
    json!({"event_id": id, "type": "interaction.recorded", "occurred_at": at(minutes), "interaction_id": iid,
           "customer_id": "c1", "data": {"channel": channel, "direction": "inbound"}})
}

fn history() -> Vec<Value> {
    vec![
        registered("r1", "c1", "Ana", json!([])),
        rec("e-b", 10, "i1", "phone"),
        // Same occurred_at: ordered by event_id.
        rec("e-a", 10, "i2", "email"),
        rec("e-c", 10, "i3", "sms"),
        json!({"event_id": "k1", "type": "case.opened", "occurred_at": at(20), "case_id": "case-1", "customer_id": "c1",
               "data": {"category": "billing"}}),
        json!({"event_id": "k2", "type": "case.responded", "occurred_at": at(30), "case_id": "case-1",
               "data": {"channel": "email"}}),
        json!({"event_id": "n1", "type": "consent.granted", "occurred_at": at(40), "customer_id": "c1",
               "data": {"channel": "sms", "purpose": "marketing"}}),
        rec("e-d", 50, "i4", "chat"),
    ]
}

#[test]
fn newest_first_by_occurred_at_then_event_id_unless_asc() {
    let store = fold(history());
    assert_eq!(
        ids(&tl(&store, "c1")),
        ["e-d", "n1", "k2", "k1", "e-c", "e-b", "e-a", "r1"]
    );
    let asc = tl_with(
        &store,
        "c1",
        TimelineParams {
            order: Some("asc".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        ids(&asc),
        ["r1", "e-a", "e-b", "e-c", "k1", "k2", "n1", "e-d"]
    );
    let item = &asc[4];
    assert_eq!(item.event_type, "case.opened");
    assert_eq!(item.occurred_at, at(20));
    assert_eq!(item.case_id.as_deref(), Some("case-1"));
    assert_eq!(item.summary, "case opened: billing");
    let v = serde_json::to_value(item).unwrap();
    for f in [
        "event_id",
        "type",
        "occurred_at",
        "interaction_id",
        "case_id",
        "campaign_id",
        "channel",
        "summary",
    ] {
        assert!(v.get(f).is_some(), "{f}");
    }
}

#[test]
fn filters_channel_type_prefix_from_and_to() {
    let store = fold(history());
    let p = |f: fn(&mut TimelineParams)| {
        let mut p = TimelineParams::default();
        f(&mut p);
        ids(&tl_with(&store, "c1", p))
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(p(|p| p.channel = Some("email".into())), ["k2", "e-a"]);
    assert_eq!(p(|p| p.event_type = Some("case.".into())), ["k2", "k1"]);
    assert_eq!(
        p(|p| p.event_type = Some("interaction.rec".into())),
        ["e-d", "e-c", "e-b", "e-a"]
    );
    // from inclusive, to exclusive.
    assert_eq!(
        p(|p| {
            p.from = Some(at(10));
            p.to = Some(at(40));
        }),
        ["k2", "k1", "e-c", "e-b", "e-a"]
    );
    assert_eq!(
        p(|p| {
            p.from = Some(at(10));
            p.to = Some(at(40));
            p.order = Some("asc".into());
        }),
        ["e-a", "e-b", "e-c", "k1", "k2"]
    );
    assert_eq!(
        p(|p| {
            p.from = Some("2026-11-20T09:30:00+00:00".into());
            p.channel = Some("sms".into());
        }),
        ["n1"]
    );
}

fn page(
    store: &crm_projection::MemStore,
    limit: usize,
    cursor: Option<String>,
    order: &str,
) -> (Vec<String>, Option<String>) {
    let p = timeline(
        store,
        "c1",
        &TimelineParams {
            limit: Some(limit),
            cursor,
            order: Some(order.into()),
            ..Default::default()
        },
    )
    .unwrap()
    .unwrap();
    (
        p.items.into_iter().map(|i| i.event_id).collect(),
        p.next_cursor,
    )
}

#[test]
fn pages_follow_the_cursor_to_the_end() {
    let store = fold(history());
    for order in ["desc", "asc"] {
        let mut all = vec![];
        let mut cursor = None;
        loop {
            let (ids, next) = page(&store, 3, cursor, order);
            assert!(ids.len() <= 3);
            all.extend(ids);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let expected: Vec<String> = if order == "desc" {
            ids(&tl(&store, "c1"))
                .into_iter()
                .map(String::from)
                .collect()
        } else {
            let asc = tl_with(
                &store,
                "c1",
                TimelineParams {
                    order: Some("asc".into()),
                    ..Default::default()
                },
            );
            ids(&asc).into_iter().map(String::from).collect()
        };
        assert_eq!(all, expected, "{order}");
    }
    // An exact last page has no next cursor.
    let (ids, next) = page(&store, 8, None, "desc");
    assert_eq!(ids.len(), 8);
    assert_eq!(next, None);
}

#[test]
fn pages_are_stable_while_new_events_arrive() {
    let mut store = fold(history());
    let (first, cursor) = page(&store, 3, None, "desc");
    assert_eq!(first, ["e-d", "n1", "k2"]);
    // New events: newer than the page, older than the cursor, and an
    // interaction identified later whose events fall before the cursor.
    apply_more(
        &mut store,
        vec![
            rec("e-new", 60, "i5", "phone"),
            rec("e-old", 15, "i6", "video"),
            json!({"event_id": "u1", "type": "interaction.started", "occurred_at": at(5), "interaction_id": "i7",
               "data": {"channel": "phone", "direction": "inbound"}}),
            json!({"event_id": "u2", "type": "interaction.identified", "occurred_at": at(45), "interaction_id": "i7",
               "customer_id": "c1"}),
        ],
    );
    let (second, _) = page(&store, 3, cursor.clone(), "desc");
    // Continues right after k2: the newer events do not shift it.
    assert_eq!(second, ["k1", "e-old", "e-c"]);
    let (rest, _) = page(&store, 100, cursor, "desc");
    assert_eq!(rest, ["k1", "e-old", "e-c", "e-b", "e-a", "u1", "r1"]);
}

#[test]
fn a_tampered_or_foreign_cursor_is_a_bad_request() {
    let store = fold(vec![
        registered("r1", "c1", "Ana", json!([])),
        registered("r2", "c2", "Bea", json!([])),
        rec("e1", 1, "i1", "phone"),
        rec("e2", 2, "i2", "phone"),
    ]);
    let (_, cursor) = page(&store, 1, None, "desc");
    let cursor = cursor.unwrap();
    let bad = |c: &str, id: &str, order: &str| {
        timeline(
            &store,
            id,
            &TimelineParams {
                cursor: Some(c.into()),
                order: Some(order.into()),
                ..Default::default()
            },
        )
    };
    assert!(bad(&cursor, "c1", "desc").is_ok());
    let mut tampered = cursor.clone();
    tampered.replace_range(0..2, if &cursor[0..2] == "00" { "01" } else { "00" });
    for (c, id, order) in [
        (tampered.as_str(), "c1", "desc"),
        ("junk", "c1", "desc"),
        (cursor.as_str(), "c2", "desc"),
        (cursor.as_str(), "c1", "asc"),
    ] {
        match bad(c, id, order) {
            Err(QueryError::BadRequest { param, .. }) => assert_eq!(param, "cursor"),
            other => panic!("{c} {id} {order}: {other:?}"),
        }
    }
}

#[test]
fn bad_parameters_are_invalid_naming_the_parameter() {
    let store = fold(history());
    let err = |p: TimelineParams| invalid_param(timeline(&store, "c1", &p).unwrap_err());
    assert_eq!(
        err(TimelineParams {
            order: Some("up".into()),
            ..Default::default()
        }),
        "order"
    );
    assert_eq!(
        err(TimelineParams {
            channel: Some("fax".into()),
            ..Default::default()
        }),
        "channel"
    );
    assert_eq!(
        err(TimelineParams {
            from: Some("yesterday".into()),
            ..Default::default()
        }),
        "from"
    );
    assert_eq!(
        err(TimelineParams {
            to: Some("2026-13-01".into()),
            ..Default::default()
        }),
        "to"
    );
    assert_eq!(
        err(TimelineParams {
            limit: Some(0),
            ..Default::default()
        }),
        "limit"
    );
    assert_eq!(
        err(TimelineParams {
            limit: Some(1001),
            ..Default::default()
        }),
        "limit"
    );
}

#[test]
fn unknown_ids_are_none() {
    let store = fold(history());
    assert!(customer(&store, "nobody", now()).unwrap().is_none());
    assert!(timeline(&store, "nobody", &TimelineParams::default())
        .unwrap()
        .is_none());
    assert!(interaction(&store, "no-such-call").unwrap().is_none());
    // A customer known only from an interaction attributed to it is known.
    let store = fold(vec![rec("e1", 1, "i1", "phone")]);
    assert_eq!(view(&store, "c1").stats.interactions_total, 1);
    assert!(
        customer(&store, "c", now()).unwrap().is_none(),
        "no prefix match"
    );
}

#[test]
fn interaction_list_pages_and_rejects_tampered_cursors() {
    let events = (0..5)
        .map(|n| json!({"event_id": format!("u{n}"), "type": "interaction.started", "occurred_at": at(n),
                        "interaction_id": format!("i{n}"), "data": {"channel": "phone", "direction": "inbound"}}))
        .collect();
    let store = fold(events);
    let params = |cursor| InteractionListParams {
        unidentified: Some(true),
        limit: Some(2),
        cursor,
    };
    let p1 = interactions(&store, &params(None)).unwrap();
    let p2 = interactions(&store, &params(p1.next_cursor.clone())).unwrap();
    let p3 = interactions(&store, &params(p2.next_cursor.clone())).unwrap();
    let got: Vec<String> = [p1.items, p2.items, p3.items.clone()]
        .concat()
        .into_iter()
        .map(|i| i.interaction_id)
        .collect();
    assert_eq!(got, ["i4", "i3", "i2", "i1", "i0"]);
    assert_eq!(p3.next_cursor, None);
    assert!(matches!(
        interactions(&store, &params(Some("00.00".into()))),
        Err(QueryError::BadRequest { .. })
    ));
    // A cursor of the unidentified list is not one of the full list.
    let all = InteractionListParams {
        unidentified: None,
        limit: Some(2),
        cursor: p1.next_cursor,
    };
    assert!(matches!(
        interactions(&store, &all),
        Err(QueryError::BadRequest { .. })
    ));
}

//! Every channel in one place: calls, emails, chats, SMS, social and video,
//! published as started..ended or as one recorded event, with their cases.

mod common;

use common::*;
use crm_customers::*;
use serde_json::json;

fn history() -> Vec<serde_json::Value> {
    vec![
        registered(
            "r1",
            "c1",
            "Ana",
            json!([{"kind": "phone", "value": "+44 20 7946 0958"}]),
        ),
        // A phone call, started..ended.
        json!({"event_id": "p1", "type": "interaction.started", "occurred_at": at(10), "interaction_id": "i-phone",
               "customer_id": "c1", "data": {"channel": "phone", "direction": "inbound", "queue": "billing",
               "from": {"kind": "phone", "value": "+442079460958"}}}),
        json!({"event_id": "p2", "type": "interaction.assigned", "occurred_at": at(11), "interaction_id": "i-phone",
               "agent_id": "ag-1", "data": {"queue": "billing", "wait_seconds": 30}}),
        json!({"event_id": "p3", "type": "interaction.ended", "occurred_at": at(15), "interaction_id": "i-phone",
               "agent_id": "ag-1", "data": {"outcome": "completed", "talk_seconds": 240}}),
        // An email, recorded in one event.
        json!({"event_id": "e1", "type": "interaction.recorded", "occurred_at": at(20), "interaction_id": "i-email",
               "customer_id": "c1", "data": {"channel": "email", "direction": "inbound", "subject": "Refund",
               "outcome": "completed"}}),
        // A chat, started..ended with messages.
        json!({"event_id": "ch1", "type": "interaction.started", "occurred_at": at(30), "interaction_id": "i-chat",
               "customer_id": "c1", "data": {"channel": "chat", "direction": "inbound"}}),
        json!({"event_id": "ch2", "type": "interaction.message", "occurred_at": at(31), "interaction_id": "i-chat",
               "data": {"author": "customer", "text": "hello"}}),
        json!({"event_id": "ch3", "type": "interaction.message", "occurred_at": at(32), "interaction_id": "i-chat",
               "agent_id": "ag-2", "data": {"author": "agent", "text": "hi"}}),
        json!({"event_id": "ch4", "type": "interaction.ended", "occurred_at": at(33), "interaction_id": "i-chat",
               "data": {"outcome": "completed"}}),
        // SMS and social, recorded.
        json!({"event_id": "s1", "type": "interaction.recorded", "occurred_at": at(40), "interaction_id": "i-sms",
               "customer_id": "c1", "data": {"channel": "sms", "direction": "outbound"}}),
        json!({"event_id": "so1", "type": "interaction.recorded", "occurred_at": at(50), "interaction_id": "i-social",
               "customer_id": "c1", "data": {"channel": "social", "direction": "inbound"}}),
        // A video call, started..ended.
        json!({"event_id": "v1", "type": "interaction.started", "occurred_at": at(60), "interaction_id": "i-video",
               "customer_id": "c1", "data": {"channel": "video", "direction": "outbound"}}),
        json!({"event_id": "v2", "type": "interaction.ended", "occurred_at": at(70), "interaction_id": "i-video",
               "data": {"outcome": "no_answer"}}),
        // Cases linked to interactions: by origin and by case.interaction_linked.
        json!({"event_id": "k1", "type": "case.opened", "occurred_at": at(12), "case_id": "case-1", "customer_id": "c1",
               "data": {"category": "billing", "origin_interaction_id": "i-phone"}}),
        json!({"event_id": "k2", "type": "case.opened", "occurred_at": at(21), "case_id": "case-2", "customer_id": "c1",
               "data": {"category": "refund"}}),
        json!({"event_id": "k3", "type": "case.interaction_linked", "occurred_at": at(22), "case_id": "case-2",
               "interaction_id": "i-email"}),
        json!({"event_id": "k4", "type": "case.interaction_linked", "occurred_at": at(34), "case_id": "case-2",
               "interaction_id": "i-phone"}),
    ]
}

#[test]
fn every_channel_shows_in_stats() {
    let store = fold(history());
    let v = view(&store, "c1");
    assert_eq!(v.stats.interactions_total, 6);
    for ch in ["phone", "email", "chat", "sms", "social", "video"] {
        assert_eq!(v.stats.interactions_by_channel.get(ch), Some(&1), "{ch}");
    }
    assert_eq!(
        v.stats.first_interaction_at.as_deref(),
        Some(at(10).as_str())
    );
    assert_eq!(
        v.stats.last_interaction_at.as_deref(),
        Some(at(60).as_str())
    );
    assert_eq!(v.stats.last_channel.as_deref(), Some("video"));
    assert_eq!(v.stats.cases_total, 2);
    assert_eq!(v.stats.cases_open, 2);
}

#[test]
fn every_channel_shows_in_recent_interactions_with_its_cases() {
    let store = fold(history());
    let v = view(&store, "c1");
    assert_eq!(
        recent_ids(&v),
        ["i-video", "i-social", "i-sms", "i-chat", "i-email", "i-phone"]
    );
    let phone = v
        .recent_interactions
        .iter()
        .find(|r| r.interaction_id == "i-phone")
        .unwrap();
    assert_eq!(phone.channel.as_deref(), Some("phone"));
    assert_eq!(phone.direction.as_deref(), Some("inbound"));
    assert_eq!(phone.started_at.as_deref(), Some(at(10).as_str()));
    assert_eq!(phone.outcome.as_deref(), Some("completed"));
    assert_eq!(phone.agent_id.as_deref(), Some("ag-1"));
    assert_eq!(phone.case_ids, ["case-1", "case-2"]);
    let email = v
        .recent_interactions
        .iter()
        .find(|r| r.interaction_id == "i-email")
        .unwrap();
    assert_eq!(email.case_ids, ["case-2"]);
    assert_eq!(email.outcome.as_deref(), Some("completed"));
    let video = &v.recent_interactions[0];
    assert_eq!(video.outcome.as_deref(), Some("no_answer"));
    assert!(video.case_ids.is_empty());
}

#[test]
fn every_channel_shows_in_the_timeline_with_its_channel() {
    let store = fold(history());
    let items = tl(&store, "c1");
    // Every event of the history concerns c1.
    assert_eq!(items.len(), history().len());
    let by_id = |id: &str| items.iter().find(|i| i.event_id == id).unwrap().clone();
    assert_eq!(by_id("p2").channel.as_deref(), Some("phone"));
    assert_eq!(by_id("p2").interaction_id.as_deref(), Some("i-phone"));
    assert_eq!(by_id("ch2").channel.as_deref(), Some("chat"));
    assert_eq!(by_id("e1").channel.as_deref(), Some("email"));
    assert_eq!(by_id("s1").channel.as_deref(), Some("sms"));
    assert_eq!(by_id("so1").channel.as_deref(), Some("social"));
    assert_eq!(by_id("v2").channel.as_deref(), Some("video"));
    assert_eq!(by_id("k1").case_id.as_deref(), Some("case-1"));
    assert_eq!(by_id("k1").interaction_id.as_deref(), Some("i-phone"));
    let video_only = tl_with(
        &store,
        "c1",
        TimelineParams {
            channel: Some("video".into()),
            ..Default::default()
        },
    );
    assert_eq!(ids(&video_only), ["v2", "v1"]);
}

#[test]
fn the_interaction_view_has_every_field() {
    let store = fold(history());
    let i = interaction(&store, "i-phone").unwrap().unwrap();
    assert_eq!(i.channel.as_deref(), Some("phone"));
    assert_eq!(i.direction.as_deref(), Some("inbound"));
    assert_eq!(i.customer_id.as_deref(), Some("c1"));
    assert_eq!(i.started_at.as_deref(), Some(at(10).as_str()));
    assert_eq!(i.ended_at.as_deref(), Some(at(15).as_str()));
    assert_eq!(i.outcome.as_deref(), Some("completed"));
    assert_eq!(i.queue.as_deref(), Some("billing"));
    assert_eq!(i.agent_ids, ["ag-1"]);
    assert_eq!(i.case_ids, ["case-1", "case-2"]);
    assert_eq!(ids(&i.events), ["p1", "p2", "p3"]);
    assert_eq!(i.talk_seconds, Some(240.0));
    let chat = interaction(&store, "i-chat").unwrap().unwrap();
    assert_eq!(chat.messages_count, 2);
    assert_eq!(chat.agent_ids, ["ag-2"]);
    let email = interaction(&store, "i-email").unwrap().unwrap();
    assert_eq!(email.subject.as_deref(), Some("Refund"));
    assert_eq!(email.ended_at.as_deref(), Some(at(20).as_str()));
}

#[test]
fn transfers_and_agents_of_an_interaction() {
    let store = fold(vec![
        json!({"event_id": "t1", "type": "interaction.started", "occurred_at": at(0), "interaction_id": "i1",
               "customer_id": "c1", "data": {"channel": "phone", "direction": "inbound", "queue": "front"}}),
        json!({"event_id": "t2", "type": "interaction.assigned", "occurred_at": at(1), "interaction_id": "i1",
               "agent_id": "ag-1", "data": {}}),
        json!({"event_id": "t3", "type": "interaction.transferred", "occurred_at": at(2), "interaction_id": "i1",
               "agent_id": "ag-1", "data": {"to_queue": "tier2", "to_agent_id": "ag-2", "tier": 2, "reason": "expert"}}),
    ]);
    let i = interaction(&store, "i1").unwrap().unwrap();
    assert_eq!(i.queue.as_deref(), Some("tier2"));
    assert_eq!(i.agent_ids, ["ag-1", "ag-2"]);
    assert_eq!(i.transfers.len(), 1);
    assert_eq!(i.transfers[0].to_agent_id.as_deref(), Some("ag-2"));
    assert_eq!(i.transfers[0].tier, Some(2));
    let v = view(&store, "c1");
    assert_eq!(v.recent_interactions[0].agent_id.as_deref(), Some("ag-2"));
}

#[test]
fn recent_interactions_are_newest_first_and_at_most_20() {
    let events = (0..25)
        .map(|n| {
            json!({"event_id": format!("r{n}"), "type": "interaction.recorded", "occurred_at": at(n),
                   "interaction_id": format!("i{n:02}"), "customer_id": "c1",
                   "data": {"channel": "sms", "direction": "outbound"}})
        })
        .collect();
    let store = fold(events);
    let v = view(&store, "c1");
    assert_eq!(v.stats.interactions_total, 25);
    assert_eq!(v.recent_interactions.len(), 20);
    assert_eq!(v.recent_interactions[0].interaction_id, "i24");
    assert_eq!(v.recent_interactions[19].interaction_id, "i05");
    assert_eq!(
        v.stats.first_interaction_at.as_deref(),
        Some(at(0).as_str())
    );
}

#[test]
fn an_interaction_whose_start_arrives_late_moves_to_its_start_time() {
    // Messages are published before the start (the start's occurred_at is earlier).
    let store = fold(vec![
        json!({"event_id": "m1", "type": "interaction.message", "occurred_at": at(5), "interaction_id": "i1",
               "customer_id": "c1", "data": {"author": "customer"}}),
        json!({"event_id": "s1", "type": "interaction.started", "occurred_at": at(1), "interaction_id": "i1",
               "data": {"channel": "chat", "direction": "inbound"}}),
        json!({"event_id": "x1", "type": "interaction.recorded", "occurred_at": at(3), "interaction_id": "i2",
               "customer_id": "c1", "data": {"channel": "email", "direction": "inbound"}}),
    ]);
    let v = view(&store, "c1");
    assert_eq!(recent_ids(&v), ["i2", "i1"]);
    assert_eq!(v.stats.interactions_by_channel.get("chat"), Some(&1));
    let items = tl(&store, "c1");
    assert_eq!(
        items
            .iter()
            .find(|i| i.event_id == "m1")
            .unwrap()
            .channel
            .as_deref(),
        Some("chat")
    );
}

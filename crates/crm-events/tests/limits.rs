//! Ingest limits inside one event: nesting depth and string lengths. Each
//! is rejected with an error naming the path.

use crm_events::{too_deep, Validator, MAX_DEPTH};
use serde_json::{json, Value};

fn note(text: Value) -> Value {
    json!({"event_id": "e1", "type": "case.note_added", "occurred_at": "2026-11-20T10:00:00Z",
           "source": "t", "case_id": "c1", "data": {"text": "hello", "custom": text}})
}

/// `levels` nested arrays around a number.
fn nested(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!([v]);
    }
    v
}

#[test]
fn depth_up_to_the_limit_is_accepted_past_it_rejected_naming_the_path() {
    let v = Validator::new();
    // The event is level 1, data level 2, custom's arrays from level 3.
    let ok = note(nested(MAX_DEPTH - 2));
    assert!(too_deep(&ok, MAX_DEPTH).is_none());
    v.validate(ok).expect("exactly at the limit");
    let bad = note(nested(MAX_DEPTH - 1));
    let errors = v.validate(bad).unwrap_err();
    assert_eq!(errors.len(), 1);
    let expected = format!("/data/custom{}", "/0".repeat(MAX_DEPTH - 2));
    assert_eq!(errors[0].path, expected);
    assert!(errors[0].message.contains("nested deeper than 32"));
}

#[test]
fn depth_paths_escape_keys_as_json_pointers() {
    let mut v = json!({});
    for _ in 0..40 {
        v = json!({"a/b~c": v});
    }
    let path = too_deep(&v, 3).unwrap();
    assert_eq!(path, "/a~1b~0c/a~1b~0c/a~1b~0c");
}

#[test]
fn free_text_fields_have_a_length_limit_named_at_their_path() {
    let v = Validator::new();
    let long = |n: usize| "x".repeat(n);
    let cases = [
        (
            json!({"event_id": "e2", "type": "case.note_added", "occurred_at": "2026-11-20T10:00:00Z",
                "source": "t", "case_id": "c1", "data": {"text": long(65_537)}}),
            "/data/text",
        ),
        (
            json!({"event_id": "e3", "type": "case.escalated", "occurred_at": "2026-11-20T10:00:00Z",
                "source": "t", "case_id": "c1", "data": {"to_tier": 2, "reason": long(2049)}}),
            "/data/reason",
        ),
        (
            json!({"event_id": "e4", "type": "interaction.started", "occurred_at": "2026-11-20T10:00:00Z",
                "source": "t", "interaction_id": "i1",
                "data": {"channel": "phone", "direction": "inbound", "queue": long(257)}}),
            "/data/queue",
        ),
        (
            json!({"event_id": "e5", "type": "interaction.started", "occurred_at": "2026-11-20T10:00:00Z",
                "source": "t", "interaction_id": "i1",
                "data": {"channel": "phone", "direction": "inbound", "ivr": {"path": ["main", long(257)]}}}),
            "/data/ivr/path/1",
        ),
        (
            json!({"event_id": long(129), "type": "case.closed", "occurred_at": "2026-11-20T10:00:00Z",
                "source": "t", "case_id": "c1", "data": {}}),
            "/event_id",
        ),
    ];
    for (event, path) in cases {
        let errors = v.validate(event).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.path == path && e.message.contains("longer")),
            "{path}: {errors:?}"
        );
    }
    // At the limit: accepted.
    v.validate(
        json!({"event_id": "e6", "type": "case.note_added", "occurred_at": "2026-11-20T10:00:00Z",
                      "source": "t", "case_id": "c1", "data": {"text": long(65_536)}}),
    )
    .unwrap();
}

//! What the runtime's integration tests share.

use crm_log::Append;
use serde_json::json;

/// A valid `case.note_added` event `id` of case `case`, as the log appends
/// it.
pub fn note(id: &str, case: &str, text: &str) -> Append {
    let e = crm_events::Validator::new()
        .validate(
            json!({"event_id": id, "type": "case.note_added", "occurred_at": "2026-11-20T10:00:00Z",
            "source": "t", "case_id": case, "data": {"text": text}}),
        )
        .unwrap();
    Append {
        event_id: id.into(),
        stream_key: e.stream_key(),
        content_hash: e.content_hash(),
        event_type: "case.note_added".into(),
        version: 1,
        payload: e.to_json().into_bytes(),
    }
}

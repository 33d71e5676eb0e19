//! Upcasting: stored events of an older `version` are converted to the
//! current version of their type when read, so any history replays into the
//! same read models. The stored bytes are never rewritten.

use serde_json::Value;

use crate::event::{EventData, EventType};

/// Deserialises `data` published as `version` of type `t`, upcast to the
/// current version.
pub fn data_from_json(t: EventType, version: u32, json: &str) -> Result<EventData, String> {
    if !t.versions().contains(&version) {
        return Err(format!("{t} has no version {version}"));
    }
    // Version 1 is the only version of every type so far: nothing to convert.
    EventData::from_json(t, json).map_err(|e| format!("{t} v{version} data: {e}"))
}

/// [`data_from_json`] for an already parsed value.
pub fn data_from_value(t: EventType, version: u32, value: Value) -> Result<EventData, String> {
    if !t.versions().contains(&version) {
        return Err(format!("{t} has no version {version}"));
    }
    EventData::from_value(t, value).map_err(|e| format!("{t} v{version} data: {e}"))
}

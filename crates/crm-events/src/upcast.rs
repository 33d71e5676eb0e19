//! Upcasting: stored events of an older `version` are converted to the
//! current version of their type when read, so any history replays into the
//! same read models. The stored bytes are never rewritten: the log keeps each
//! event as published, and [`crate::Event`] keeps an older version's `data`
//! as published beside the upcast form.
//!
//! Versions so far: `interaction.ended` v1 (flat `talk_seconds`,
//! `handle_seconds`) is upcast to v2 (structured `durations`); every other
//! type has only version 1.

use serde::Deserialize;
use serde_json::Value;

use crate::catalog::{InteractionEnded, InteractionEndedV1};
use crate::event::{EventData, EventType};

fn check(t: EventType, version: u32) -> Result<(), String> {
    if t.versions().contains(&version) {
        Ok(())
    } else {
        Err(format!("{t} has no version {version}"))
    }
}

/// Deserialises `data` published as `version` of type `t`, upcast to the
/// current version.
pub fn data_from_json(t: EventType, version: u32, json: &str) -> Result<EventData, String> {
    check(t, version)?;
    let err = |e: serde_json::Error| format!("{t} v{version} data: {e}");
    match (t, version) {
        (EventType::InteractionEnded, 1) => {
            let v1: InteractionEndedV1 = serde_json::from_str(json).map_err(err)?;
            Ok(EventData::InteractionEnded(InteractionEnded::from(v1)))
        }
        _ => EventData::from_json(t, json).map_err(err),
    }
}

/// [`data_from_json`] for an already parsed value.
pub fn data_from_value(t: EventType, version: u32, value: &Value) -> Result<EventData, String> {
    data_from(t, version, value)
}

/// [`data_from_value`] for a value it takes: its strings move into the
/// typed data instead of being copied.
pub fn data_from_owned_value(
    t: EventType,
    version: u32,
    value: Value,
) -> Result<EventData, String> {
    data_from(t, version, value)
}

fn data_from<'de, D>(t: EventType, version: u32, value: D) -> Result<EventData, String>
where
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    check(t, version)?;
    let err = |e: serde_json::Error| format!("{t} v{version} data: {e}");
    match (t, version) {
        (EventType::InteractionEnded, 1) => {
            let v1 = InteractionEndedV1::deserialize(value).map_err(err)?;
            Ok(EventData::InteractionEnded(InteractionEnded::from(v1)))
        }
        _ => EventData::deserialize_as(t, value).map_err(err),
    }
}

/// The JSON Schema of `data` for one type and version.
pub(crate) fn data_schema(
    t: EventType,
    version: u32,
    generator: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    match (t, version) {
        (EventType::InteractionEnded, 1) => generator.root_schema_for::<InteractionEndedV1>(),
        _ => t.data_schema(generator),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_interaction_ended_upcasts_to_structured_durations() {
        let d = data_from_json(
            EventType::InteractionEnded,
            1,
            r#"{"outcome":"completed","talk_seconds":125.5,"handle_seconds":180,"wrapup_code":"W1","x":1}"#,
        )
        .unwrap();
        let EventData::InteractionEnded(e) = d else {
            panic!()
        };
        assert_eq!(e.durations.talk_seconds, Some(125.5));
        assert_eq!(e.durations.handle_seconds, Some(180.0));
        assert_eq!(e.wrapup_code.as_deref(), Some("W1"));
        assert_eq!(e.extra["x"], serde_json::json!(1));
        assert!(data_from_json(EventType::InteractionEnded, 3, "{}").is_err());
        assert!(data_from_json(EventType::CaseClosed, 2, "{}").is_err());
    }
}

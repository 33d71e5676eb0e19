//! One event's bytes through `Validator::validate_json`: parse, depth limit,
//! JSON Schema, typed deserialisation, identity normalisation, cross-field
//! rules. Never a panic; a rejection always names its field. The quick path
//! (text straight to the typed event) and the full path (JSON Schema over a
//! `Value`) must give the same answer: the quick path never accepts what the
//! full path rejects, and returns the same event when it accepts.
#![no_main]

use std::sync::OnceLock;

use crm_events::Validator;
use libfuzzer_sys::fuzz_target;

static VALIDATOR: OnceLock<Validator> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let v = VALIDATOR.get_or_init(Validator::new);
    let (full, quick) = v.both_paths(data);
    if let Some(q) = &quick {
        assert_eq!(full.as_ref().ok(), Some(q), "the quick path accepted what the full path did not");
    }
    let answer = v.validate_json(data);
    assert_eq!(answer, v.validate_json_fully(data), "the two paths answer differently");
    match answer {
        Ok(event) => {
            // An accepted event serialises and reads back as stored.
            let json = event.to_json();
            let back = crm_events::Event::from_stored_json(&json).expect("stored form reads back");
            assert_eq!(back.event_id, event.event_id);
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a rejection without an error");
        }
    }
});

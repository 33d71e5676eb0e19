//! One event's bytes through `Validator::validate_json`: parse, depth limit,
//! JSON Schema, typed deserialisation, identity normalisation, cross-field
//! rules. Never a panic; a rejection always names its field.
#![no_main]

use std::sync::OnceLock;

use crm_events::Validator;
use libfuzzer_sys::fuzz_target;

static VALIDATOR: OnceLock<Validator> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let v = VALIDATOR.get_or_init(Validator::new);
    match v.validate_json(data) {
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

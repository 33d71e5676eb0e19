//! Identity normalisation (ingest and `/v1/lookup` share it): any kind, any
//! text. Never a panic; a normalised value normalises to itself.
#![no_main]

use crm_events::identity::normalize;
use crm_events::IdentityKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let kind = IdentityKind::ALL[k as usize % IdentityKind::ALL.len()];
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(n) = normalize(kind, text) {
        assert_eq!(normalize(kind, &n).as_deref(), Ok(n.as_str()), "idempotent");
    }
});

//! Identities (`{kind, value}`) and their normalisation.
//!
//! Values are normalised before they are stored or matched (events.md):
//! phone numbers to E.164 with the `phonenumber` crate, emails trimmed and
//! lower-cased, everything else trimmed. The same function serves ingest and
//! the `/v1/lookup` query, so a lookup finds exactly what ingest stored.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::string_enum;

string_enum!(
    /// Kind of an identity.
    IdentityKind {
        Phone = "phone", Email = "email", ChatHandle = "chat_handle", Social = "social",
        Account = "account", Card = "card", External = "external"
    }
);

/// One way to recognise a customer: a phone number, an email address, an
/// account number, a card, a chat handle...
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub kind: IdentityKind,
    #[schemars(length(min = 1, max = 256))]
    pub value: String,
}

impl Identity {
    /// Builds an identity, normalising the value.
    pub fn new(kind: IdentityKind, value: &str) -> Result<Self, String> {
        Ok(Identity {
            kind,
            value: normalize(kind, value)?,
        })
    }

    /// Normalises this identity's value in place.
    pub fn normalize(&mut self) -> Result<(), String> {
        self.value = normalize(self.kind, &self.value)?;
        Ok(())
    }

    /// A stable text key, `kind:value`, for indexes.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.value)
    }
}

/// Normalises `value` for `kind`, or says why it cannot be.
pub fn normalize(kind: IdentityKind, value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("must not be empty or blank".into());
    }
    match kind {
        IdentityKind::Phone => normalize_phone(trimmed),
        IdentityKind::Email => normalize_email(trimmed),
        _ => Ok(trimmed.to_string()),
    }
}

/// Phone to E.164: a `(0)` trunk marker after the country code is dropped
/// (`+44 (0)20 …`), `00` prefix becomes `+`; spaces, dashes, dots and
/// brackets are dropped; the number must then be international (start with
/// `+`), have 7 to 15 digits, and parse as a number of a known country
/// calling code. The value kept is `+` and the digits as written: the
/// `phonenumber` crate validates it, but its own formatting is not used, as
/// it strips a leading national prefix digit from some international numbers
/// (`+7 812 …` would lose its 8).
fn normalize_phone(value: &str) -> Result<String, String> {
    let without_trunk = value.replacen("(0)", "", 1);
    let mut compact = String::with_capacity(value.len());
    for c in without_trunk.chars() {
        match c {
            ' ' | '-' | '.' | '(' | ')' | '[' | ']' | '/' | '\u{a0}' | '\t' => {}
            '+' if compact.is_empty() => compact.push('+'),
            '0'..='9' => compact.push(c),
            _ => {
                return Err(format!(
                    "{value:?} is not a phone number: unexpected character {c:?}"
                ))
            }
        }
    }
    if let Some(rest) = compact.strip_prefix("00") {
        compact = format!("+{rest}");
    }
    if !compact.starts_with('+') {
        return Err(format!(
            "{value:?} is not in international format: a phone number must start with + or 00 and its country code"
        ));
    }
    let digits = compact.len() - 1;
    if !(7..=15).contains(&digits) {
        return Err(format!(
            "{value:?} is not a phone number: E.164 numbers have 7 to 15 digits, this has {digits}"
        ));
    }
    check_e164(&compact).map_err(|e| format!("{value:?} is not a phone number: {e}"))?;
    Ok(compact)
}

/// Whether `compact` (`+` and digits) parses as a number of a known country
/// calling code, or why not. `phonenumber::parse` runs regular expressions
/// and is most of the cost of validating an event with a phone number, and
/// the same numbers come again and again (a customer calls back, an agent's
/// line), so answers are remembered in a small bounded cache: at most
/// `SHARDS * 2 * PER_GENERATION` numbers (about 6 MB), the older generation
/// dropped whole when the newer one is full.
fn check_e164(compact: &str) -> Result<(), String> {
    use std::collections::HashMap;
    use std::hash::BuildHasher;
    use std::sync::{Mutex, OnceLock};

    const SHARDS: usize = 16;
    const PER_GENERATION: usize = 2048;
    type Answers = HashMap<String, Result<(), String>>;
    #[derive(Default)]
    struct Shard {
        current: Answers,
        previous: Answers,
    }
    static CACHE: OnceLock<(std::collections::hash_map::RandomState, Vec<Mutex<Shard>>)> =
        OnceLock::new();
    let (hasher, shards) = CACHE.get_or_init(|| {
        (
            Default::default(),
            (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        )
    });
    let shard = &shards[hasher.hash_one(compact) as usize % SHARDS];
    {
        let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(answer) = s.current.get(compact) {
            return answer.clone();
        }
        if let Some(answer) = s.previous.remove(compact) {
            s.current.insert(compact.to_string(), answer.clone());
            return answer;
        }
    }
    let answer = phonenumber::parse(None, compact)
        .map(|_| ())
        .map_err(|e| e.to_string());
    let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
    if s.current.len() >= PER_GENERATION {
        s.previous = std::mem::take(&mut s.current);
    }
    s.current.insert(compact.to_string(), answer.clone());
    answer
}

/// Loads the phone-number metadata now. `phonenumber` reads it on first use,
/// which takes about 130 ms: without this the first publishes after a start
/// that carry a phone number wait for it (about 330 ms for the first requests
/// of a load on two cores). [`crate::Validator::new`] calls it, so a server
/// is warm before it says it is ready.
pub fn warm_up() {
    let _ = phonenumber::parse(None, "+442079460000");
}

fn normalize_email(value: &str) -> Result<String, String> {
    let lower = value.to_lowercase();
    let (local, domain) = lower
        .split_once('@')
        .ok_or_else(|| format!("{value:?} is not an email address: no @"))?;
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || lower.chars().any(char::is_whitespace)
    {
        return Err(format!("{value:?} is not an email address"));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_in_messy_formats_normalise_to_e164() {
        for raw in [
            "+44 20 7946 0958",
            "0044 20 7946 0958",
            "+44 (0)20-7946-0958",
            "+44.20.7946.0958",
            " +442079460958 ",
        ] {
            assert_eq!(
                normalize(IdentityKind::Phone, raw).unwrap(),
                "+442079460958",
                "{raw}"
            );
        }
        assert_eq!(
            normalize(IdentityKind::Phone, "+1 (212) 555-0142").unwrap(),
            "+12125550142"
        );
        assert_eq!(
            normalize(IdentityKind::Phone, "(+1) 212.555.0142").unwrap(),
            "+12125550142"
        );
    }

    #[test]
    fn national_prefix_digits_of_international_numbers_are_kept() {
        // St Petersburg: the 8 of the area code is not a trunk prefix here.
        assert_eq!(
            normalize(IdentityKind::Phone, "+7 812 172-69-19").unwrap(),
            "+78121726919"
        );
        assert_eq!(
            normalize(IdentityKind::Phone, "+7 (843) 123-45-67").unwrap(),
            "+78431234567"
        );
        assert_eq!(
            normalize(IdentityKind::Phone, "007 916 123 45 67").unwrap(),
            "+79161234567"
        );
    }

    #[test]
    fn a_trunk_zero_in_brackets_is_dropped() {
        assert_eq!(
            normalize(IdentityKind::Phone, "+44 (0)7700 900123").unwrap(),
            "+447700900123"
        );
        assert_eq!(
            normalize(IdentityKind::Phone, "+49 (0)30 1234567").unwrap(),
            "+49301234567"
        );
    }

    #[test]
    fn phones_that_cannot_be_normalised_are_errors() {
        for raw in [
            "020 7946 0958",
            "+",
            "+999 123",
            "call me",
            "",
            "   ",
            "+44 20 x",
        ] {
            assert!(normalize(IdentityKind::Phone, raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            normalize(IdentityKind::Email, "  Ana.Lopez@Example.COM ").unwrap(),
            "ana.lopez@example.com"
        );
        for raw in [
            "ana",
            "@example.com",
            "ana@",
            "ana@example",
            "a b@example.com",
        ] {
            assert!(normalize(IdentityKind::Email, raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn other_kinds_are_trimmed() {
        assert_eq!(
            normalize(IdentityKind::Card, " 4111 ").unwrap(),
            "4111".to_string()
        );
        assert!(normalize(IdentityKind::Account, "  ").is_err());
    }
}

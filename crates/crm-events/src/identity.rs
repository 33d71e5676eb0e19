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
#[serde(deny_unknown_fields, remote = "Self")]
pub struct Identity {
    pub kind: IdentityKind,
    #[schemars(length(min = 1, max = 256))]
    pub value: String,
}

// `remote = "Self"` makes the derived impls inherent functions, so that
// the struct is read from an object only.
crate::quick::object_only_serde!(Identity);

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
    let answer = parse_e164(compact);
    let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
    if s.current.len() >= PER_GENERATION {
        s.previous = std::mem::take(&mut s.current);
    }
    s.current.insert(compact.to_string(), answer.clone());
    answer
}

/// `phonenumber::parse(None, compact)`, answered as whether it parses.
///
/// For a country calling code shared by several regions (+1, +7, +44, ...)
/// the parser first searches for the region of the number by matching each
/// region's patterns in turn: 4.7 us for a +1 number and 7.8 us for a +44
/// number of the demo history, against 1.5 us when it is told the region.
/// The region only matters to whether the number parses through one step:
/// the region's national prefix (and carrier code) is stripped from the
/// number, and the result must keep 2 to 17 digits. So when the number is
/// long enough, and short enough, that no region of its code can take it
/// out of 2..=17 digits ([`SharedCode`]), every region, and no region, give
/// the same answer, and the parser is told the code's main region instead
/// of searching. The only other use of a given region is its international
/// dialling prefix after the `+`; a number that starts with it takes the
/// search. `the_quick_path_answers_like_the_region_search` checks this
/// against the search on numbers of every shared code.
fn parse_e164(compact: &str) -> Result<(), String> {
    phonenumber::parse(quick_region(compact), compact)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// What the metadata allows for one shared country calling code.
struct SharedCode {
    main: phonenumber::country::Id,
    /// Digits after the code a number needs so that stripping any region's
    /// national prefix leaves at least 2.
    min_national: usize,
    /// Most digits after the code for which any region's prefix rewrite
    /// keeps at most 17.
    max_national: usize,
}

/// The region to give the parser for `compact` (`+` and digits), or `None`
/// to let it search (see [`parse_e164`]).
fn quick_region(compact: &str) -> Option<phonenumber::country::Id> {
    use phonenumber::metadata::DATABASE;
    use std::collections::{HashMap, HashSet};
    use std::sync::OnceLock;

    static SHARED: OnceLock<(HashSet<u16>, HashMap<u16, SharedCode>)> = OnceLock::new();
    let (known, shared) = SHARED.get_or_init(|| {
        (
            DATABASE.iter().map(|m| m.country_code()).collect(),
            shared_codes(&DATABASE),
        )
    });
    let digits = compact.strip_prefix('+')?;
    if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The code as the parser finds it: the shortest known prefix.
    let (code, len) = (1..=3).find_map(|len| {
        let code: u16 = digits.get(..len)?.parse().ok()?;
        known.contains(&code).then_some((code, len))
    })?;
    let s = shared.get(&code)?;
    let national = digits.len() - len;
    if national < s.min_national || national > s.max_national {
        return None;
    }
    let main = DATABASE.by_id(s.main.as_ref())?;
    if main
        .international_prefix()
        .and_then(|idd| idd.find(digits))
        .is_some_and(|m| m.start() == 0)
    {
        return None;
    }
    Some(s.main)
}

/// [`SharedCode`] for every code of several regions whose prefixes have a
/// bounded length. Bounds, per region: `national_number` strips at most the
/// longest match of its prefix pattern, or its national prefix when it has
/// no pattern, and `parse_with` then strips the national prefix once more;
/// a rewrite (`9$1`) replaces the match by its literal digits and the
/// groups it names, each no longer than the match. These bounds ignore the
/// patterns' `$` anchors, so they are loose (a +1 number needs its 10
/// digits, a +61 number 11, which takes Australian numbers to the search)
/// but they hold.
fn shared_codes(
    db: &phonenumber::metadata::Database,
) -> std::collections::HashMap<u16, SharedCode> {
    let mut out = std::collections::HashMap::new();
    let mut codes: Vec<u16> = db.iter().map(|m| m.country_code()).collect();
    codes.sort_unstable();
    codes.dedup();
    'codes: for code in codes {
        let Some(metas) = db.by_code(&code) else {
            continue;
        };
        if metas.len() < 2 {
            continue;
        }
        let (mut strip, mut growth) = (0usize, 0usize);
        for m in &metas {
            let prefix = m.national_prefix().map_or(0, str::len);
            let pattern = match m.national_prefix_for_parsing() {
                None => 0,
                Some(re) => match longest_match(re.as_str()) {
                    Some(n) => n,
                    None => continue 'codes,
                },
            };
            strip = strip.max(pattern.max(prefix) + prefix);
            if let Some(rule) = m.national_prefix_transform_rule() {
                // The match goes, its groups (each no longer than it) come
                // back with the rule's literal digits.
                let (literal, groups) = rewrite_size(rule);
                growth = growth.max(literal + groups.saturating_sub(1) * pattern);
            }
        }
        let Some(main) = metas
            .iter()
            .find(|m| m.is_main_country_for_code())
            .or(metas.first())
            .and_then(|m| m.id().parse().ok())
        else {
            continue;
        };
        out.insert(
            code,
            SharedCode {
                main,
                min_national: 2 + strip,
                max_national: 17usize.saturating_sub(growth),
            },
        );
    }
    out
}

/// The longest run of ASCII characters `pattern` can match; `None` when
/// unbounded or unreadable. (Read without Unicode classes: on ASCII digits
/// `\d` matches the same, and each character is one byte.)
fn longest_match(pattern: &str) -> Option<usize> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .build()
        .parse(pattern)
        .ok()?
        .properties()
        .maximum_len()
}

/// Literal characters of a rewrite rule and how many group references
/// (`$1`, `${1}`) it has.
fn rewrite_size(rule: &str) -> (usize, usize) {
    let (mut literal, mut groups) = (0, 0);
    let mut chars = rule.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            literal += 1;
            continue;
        }
        groups += 1;
        if chars.peek() == Some(&'{') {
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
            }
        } else {
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                chars.next();
            }
        }
    }
    (literal, groups)
}

/// Loads the phone-number metadata now. `phonenumber` reads it on first use,
/// which takes about 130 ms: without this the first publishes after a start
/// that carry a phone number wait for it (about 330 ms for the first requests
/// of a load on two cores). [`crate::Validator::new`] calls it, so a server
/// is warm before it says it is ready.
pub fn warm_up() {
    let _ = phonenumber::parse(None, "+442079460000");
    // and the bounds of the shared country codes (see `parse_e164`)
    let _ = quick_region("+442079460000");
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

    /// `parse_e164` (the parser told the code's main region when the number's
    /// length allows) must answer exactly like the parser's own region
    /// search, on numbers of every shared country code: random numbers of
    /// every length normalisation lets through, each region's example
    /// numbers with and without its national prefix, and two short numbers
    /// the search and Australia answer differently.
    #[test]
    fn the_quick_path_answers_like_the_region_search() {
        use phonenumber::metadata::DATABASE;
        use phonenumber::Type;

        let shared = shared_codes(&DATABASE);
        for code in [1, 7, 44] {
            assert!(shared.contains_key(&code), "+{code} is not a shared code");
        }
        let mut numbers: Vec<String> = vec!["+6118314".into(), "+6118324".into()];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for &code in shared.keys() {
            let cc = code.to_string();
            for national in 7usize.saturating_sub(cc.len())..=15 - cc.len() {
                for _ in 0..150 {
                    let mut n = format!("+{cc}");
                    for _ in 0..national {
                        n.push(char::from(b'0' + (next() % 10) as u8));
                    }
                    numbers.push(n);
                }
            }
            for m in DATABASE.by_code(&code).unwrap() {
                let np = m.national_prefix().unwrap_or("");
                let kinds = [
                    Type::Unknown,
                    Type::FixedLine,
                    Type::Mobile,
                    Type::TollFree,
                    Type::PremiumRate,
                    Type::SharedCost,
                    Type::PersonalNumber,
                    Type::Voip,
                    Type::Pager,
                    Type::Uan,
                    Type::Voicemail,
                ];
                for kind in kinds {
                    if let Some(example) = m.descriptors().get(kind).and_then(|d| d.example()) {
                        numbers.push(format!("+{cc}{example}"));
                        numbers.push(format!("+{cc}{np}{example}"));
                    }
                }
            }
        }
        let numbers: Vec<String> = numbers
            .into_iter()
            .filter(|n| (7..=15).contains(&(n.len() - 1)))
            .collect();
        let mut quick = 0;
        for n in &numbers {
            let searched = phonenumber::parse(None, n)
                .map(|_| ())
                .map_err(|e| e.to_string());
            quick += usize::from(quick_region(n).is_some());
            assert_eq!(parse_e164(n), searched, "{n}");
        }
        assert!(
            quick * 10 > numbers.len() * 8,
            "only {quick} of {} numbers took the quick path",
            numbers.len()
        );
        for n in ["+12125550142", "+442079460958", "+74951234567"] {
            assert!(quick_region(n).is_some(), "{n} searched for its region");
        }
    }

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

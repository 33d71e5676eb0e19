//! The quick path of ingest validation: JSON text straight to the typed
//! [`Event`], with no `serde_json::Value` in between.
//!
//! The full path ([`crate::Validator`]) parses the text into a `Value`, runs
//! the JSON Schema over it, then converts the `Value` into the typed event:
//! two trees built for every event, most of ingest's CPU. Most events are
//! well-formed, and for those the typed parse alone can tell: the schema is
//! generated from the same types, so what it adds to the types is a short
//! list (lengths, ranges, `null` for an absent id, strict RFC 3339 times, the
//! nesting limit, one conditional requirement) that [`parse`] checks on the
//! typed event.
//!
//! The rule this module keeps: **[`parse`] accepts only what the full path
//! accepts, and returns the same event** (sound, not complete). Whenever it
//! is unsure it returns `None` and the event takes the full path, which
//! decides and names the field at fault. An event the quick path accepts is
//! one the schema accepts. The tests in `tests/quick_path.rs` hold it to that
//! with every mutation the schemas suggest, field by field, and with random
//! changes to the demo history.
//!
//! Two changes to the types make the typed parse as strict as the schema
//! about shapes: the catalog's enums read only strings (serde would also
//! take `{"phone": null}`), and the structs without unknown fields
//! ([`crate::Identity`], [`crate::Durations`]) read only objects (serde
//! would also take an array of their fields in order); see [`MapOnly`].

use std::cell::Cell;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::catalog::*;
use crate::event::{Event, EventData, EventType};
use crate::identity::Identity;

/// The envelope as a publisher sends it: unknown fields (`recorded_at`,
/// `position` among them) are not accepted, and an id is a string or absent,
/// never `null`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Published<'a> {
    event_id: String,
    #[serde(rename = "type", borrow)]
    event_type: &'a str,
    #[serde(default, deserialize_with = "present")]
    version: Option<u32>,
    #[serde(borrow)]
    occurred_at: &'a str,
    source: String,
    #[serde(default, deserialize_with = "present")]
    customer_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    interaction_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    case_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    campaign_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    agent_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    correlation_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    causation_id: Option<String>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// A field that may be absent but not `null` (the schema's `type` has no
/// `null`): a present value is read as `T` itself.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// The envelope's length limits, as in [`crate::schema::envelope`].
const EVENT_ID_CHARS: usize = 128;
const SOURCE_CHARS: usize = 128;
const ID_CHARS: usize = 256;

/// The nesting a value of free form (`attributes`, unknown fields) may have
/// on the quick path. Such a value sits at level 3 or 4 of the event, so 16
/// more levels stay well inside [`crate::MAX_DEPTH`]; deeper ones take the
/// full path, which reports the exact place.
const FREE_FORM_DEPTH: usize = 16;

/// The event the full path would return for `text` before normalisation,
/// or `None` when the quick path cannot vouch for it (see the module's
/// rule).
pub(crate) fn parse(text: &[u8]) -> Option<Event> {
    // The typed parse reads a struct from an array as well; an event must be
    // an object.
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let p: Published = serde_json::from_slice(text).ok()?;
    let t = EventType::parse(p.event_type)?;
    let version = p.version.unwrap_or(1);
    // An older version is upcast, and its `data` kept as published. Only
    // the versions whose schema asks no more than [`within_schema`] checks
    // on the upcast data take the quick path: `interaction.ended` v1 limits
    // its two durations as v2 does, and `wrapup_code` not at all.
    let current = version == t.current_version();
    if !current && (t, version) != (EventType::InteractionEnded, 1) {
        return None;
    }
    let ids = [
        &p.customer_id,
        &p.interaction_id,
        &p.case_id,
        &p.campaign_id,
        &p.agent_id,
        &p.correlation_id,
        &p.causation_id,
    ];
    if !chars_within(&p.event_id, 1, EVENT_ID_CHARS)
        || !chars_within(&p.source, 1, SOURCE_CHARS)
        || !ids
            .iter()
            .all(|id| id.as_deref().is_none_or(|s| chars_within(s, 1, ID_CHARS)))
    {
        return None;
    }
    let occurred_at = strict_time(p.occurred_at)?;
    let data_text = p.data.get();
    if !data_text.starts_with('{') {
        return None;
    }
    let data = {
        let _strict = StrictTimes::on();
        crate::upcast::data_from_json(t, version, data_text).ok()?
    };
    if !within_schema(&data) {
        return None;
    }
    let published_data = if current {
        None
    } else {
        Some(serde_json::from_str(data_text).ok()?)
    };
    let event = Event {
        event_id: p.event_id,
        version,
        occurred_at,
        recorded_at: None,
        source: p.source,
        customer_id: p.customer_id,
        interaction_id: p.interaction_id,
        case_id: p.case_id,
        campaign_id: p.campaign_id,
        agent_id: p.agent_id,
        correlation_id: p.correlation_id,
        causation_id: p.causation_id,
        data,
        published_data,
    };
    if !t.required_ids().iter().all(|f| event.id(*f).is_some()) {
        return None;
    }
    Some(event)
}

/// `s` has between `min` and `max` characters (JSON Schema counts Unicode
/// code points).
fn chars_within(s: &str, min: usize, max: usize) -> bool {
    // A byte count bounds the character count from above.
    if s.len() <= max && s.len() >= min && s.is_ascii() {
        return true;
    }
    let n = s.chars().count();
    n >= min && n <= max
}

fn opt_chars(s: &Option<String>, min: usize, max: usize) -> bool {
    s.as_deref().is_none_or(|s| chars_within(s, min, max))
}

fn non_negative(x: Option<f64>) -> bool {
    x.is_none_or(|x| x >= 0.0)
}

fn shallow(extra: &Extra) -> bool {
    extra
        .values()
        .all(|v| !crate::validate::nests_deeper_than(v, FREE_FORM_DEPTH))
}

fn shallow_map(map: &std::collections::BTreeMap<String, Value>) -> bool {
    map.values()
        .all(|v| !crate::validate::nests_deeper_than(v, FREE_FORM_DEPTH))
}

fn identity_ok(id: &Identity) -> bool {
    chars_within(&id.value, 1, 256)
}

fn opt_identity_ok(id: &Option<Identity>) -> bool {
    id.as_ref().is_none_or(identity_ok)
}

/// What the schema of `data` says beyond its types: the `schemars`
/// attributes of [`crate::catalog`], one arm per struct.
fn within_schema(data: &EventData) -> bool {
    use EventData as E;
    match data {
        E::CustomerRegistered(d) => {
            opt_chars(&d.name, 1, 512)
                && d.identities.len() <= 100
                && d.identities.iter().all(identity_ok)
                && shallow_map(&d.attributes)
                && shallow(&d.extra)
        }
        E::CustomerProfileUpdated(d) => {
            opt_chars(&d.name, 1, 512) && shallow_map(&d.attributes) && shallow(&d.extra)
        }
        E::CustomerIdentityAdded(d) => identity_ok(&d.identity) && shallow(&d.extra),
        E::CustomerIdentityRemoved(d) => identity_ok(&d.identity) && shallow(&d.extra),
        E::CustomerMerged(d) | E::CustomerUnmerged(d) => {
            chars_within(&d.merged_customer_id, 1, 256)
                && opt_chars(&d.reason, 0, 2048)
                && shallow(&d.extra)
        }
        E::ConsentGranted(d) => shallow(&d.extra),
        E::ConsentRevoked(d) => shallow(&d.extra),
        E::InteractionStarted(d) => {
            opt_identity_ok(&d.from)
                && opt_identity_ok(&d.to)
                && opt_chars(&d.queue, 0, 256)
                && opt_chars(&d.subject, 0, 1024)
                && d.ivr.as_ref().is_none_or(|ivr| {
                    ivr.path.len() <= 100
                        && ivr.path.iter().all(|p| chars_within(p, 0, 256))
                        && shallow_map(&ivr.inputs)
                        && shallow(&ivr.extra)
                })
                && shallow(&d.extra)
        }
        E::InteractionMessage(d) => {
            opt_chars(&d.text, 0, 65536) && opt_chars(&d.subject, 0, 1024) && shallow(&d.extra)
        }
        E::InteractionAssigned(d) => {
            opt_chars(&d.queue, 0, 256) && non_negative(d.wait_seconds) && shallow(&d.extra)
        }
        E::InteractionTransferred(d) => {
            opt_chars(&d.to_queue, 0, 256)
                && opt_chars(&d.to_agent_id, 0, 256)
                && d.tier.is_none_or(|t| t >= 1)
                && opt_chars(&d.reason, 0, 2048)
                && shallow(&d.extra)
        }
        E::InteractionEnded(d) => {
            let x = &d.durations;
            [
                x.ring_seconds,
                x.queue_seconds,
                x.talk_seconds,
                x.hold_seconds,
                x.wrapup_seconds,
                x.handle_seconds,
            ]
            .into_iter()
            .all(non_negative)
                && opt_chars(&d.wrapup_code, 0, 256)
                && shallow(&d.extra)
        }
        E::InteractionRecorded(d) => {
            opt_identity_ok(&d.from)
                && opt_identity_ok(&d.to)
                && opt_chars(&d.subject, 0, 1024)
                && non_negative(d.talk_seconds)
                && shallow(&d.extra)
        }
        E::InteractionIdentified(d) => shallow(&d.extra),
        E::CaseOpened(d) => {
            chars_within(&d.category, 1, 256)
                && opt_chars(&d.subcategory, 0, 256)
                && opt_chars(&d.subject, 0, 1024)
                && d.tier.is_none_or(|t| t >= 1)
                && opt_chars(&d.queue, 0, 256)
                && opt_chars(&d.origin_interaction_id, 1, 256)
                && shallow_map(&d.related)
                && shallow(&d.extra)
        }
        E::CaseInteractionLinked(d)
        | E::CaseCustomerIdentified(d)
        | E::CaseClosed(d)
        | E::CampaignContactAssigned(d) => shallow(&d.extra),
        E::CaseCategorized(d) => {
            chars_within(&d.category, 1, 256)
                && opt_chars(&d.subcategory, 0, 256)
                && shallow(&d.extra)
        }
        E::CaseAssigned(d) => opt_chars(&d.queue, 0, 256) && shallow(&d.extra),
        E::CaseEscalated(d) => {
            d.to_tier >= 1
                && opt_chars(&d.reason, 0, 2048)
                && opt_chars(&d.queue, 0, 256)
                && shallow(&d.extra)
        }
        E::CaseNoteAdded(d) => chars_within(&d.text, 1, 65536) && shallow(&d.extra),
        E::CaseResponded(d) => opt_chars(&d.interaction_id, 1, 256) && shallow(&d.extra),
        E::CaseResolved(d) => {
            chars_within(&d.resolution, 1, 16384)
                && opt_chars(&d.resolution_code, 0, 256)
                && shallow(&d.extra)
        }
        E::CaseReopened(d) => opt_chars(&d.reason, 0, 2048) && shallow(&d.extra),
        E::CaseVoided(d) => opt_chars(&d.duplicate_of, 1, 256) && shallow(&d.extra),
        E::CampaignCreated(d) => {
            chars_within(&d.name, 1, 512)
                && d.max_attempts.is_none_or(|m| (1..=1000).contains(&m))
                && shallow(&d.extra)
        }
        E::CampaignContactAdded(d) => {
            opt_identity_ok(&d.identity) && opt_chars(&d.agent_id, 1, 256) && shallow(&d.extra)
        }
        E::CampaignAttemptMade(d) => {
            opt_identity_ok(&d.identity)
                && opt_chars(&d.interaction_id, 1, 256)
                && shallow(&d.extra)
        }
        E::CampaignContactOutcome(d) => {
            // `callback_at` is required for a callback; the typed parse
            // cannot tell `null` (allowed) from absent (not), so the full
            // path decides.
            (d.outcome != ContactOutcome::CallbackRequested || d.callback_at.is_some())
                && shallow(&d.extra)
        }
        E::CampaignPaused(d) | E::CampaignResumed(d) | E::CampaignCompleted(d) => {
            opt_chars(&d.reason, 0, 2048) && shallow(&d.extra)
        }
    }
}

// ------------------------------------------------------------------- times

/// A time the JSON Schema's `date-time` format accepts, in its plainest
/// form only: `YYYY-MM-DDTHH:MM:SS[.fraction]` then `Z` or `+HH:MM` /
/// `-HH:MM`, with an uppercase `T` and `Z`, at most nine fraction digits
/// and no leap second. chrono's own parser is more lenient (a space for
/// the `T`, offsets without a colon), so it is not enough on its own.
pub(crate) fn strict_time(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let two = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
    if b.len() < 20
        || !(digits(0..4)
            && b[4] == b'-'
            && digits(5..7)
            && b[7] == b'-'
            && digits(8..10)
            && b[10] == b'T'
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)
            && b[16] == b':'
            && digits(17..19))
        || two(11) > 23
        || two(14) > 59
        || two(17) > 59
    {
        return None;
    }
    let mut i = 19;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || i - start > 9 {
            return None;
        }
    }
    match b.get(i) {
        Some(b'Z') if i + 1 == b.len() => {}
        Some(b'+' | b'-')
            if b.len() == i + 6
                && digits(i + 1..i + 3)
                && b[i + 3] == b':'
                && digits(i + 4..i + 6)
                && two(i + 1) <= 23
                && two(i + 4) <= 59 => {}
        _ => return None,
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

thread_local! {
    /// Whether the times inside `data` are being read for the quick path
    /// (strictly) or from a stored or schema-checked event (as chrono reads
    /// them).
    static STRICT_TIMES: Cell<bool> = const { Cell::new(false) };
}

/// Strict times while it lives, on this thread.
struct StrictTimes;

impl StrictTimes {
    fn on() -> Self {
        STRICT_TIMES.with(|s| s.set(true));
        StrictTimes
    }
}

impl Drop for StrictTimes {
    fn drop(&mut self) {
        STRICT_TIMES.with(|s| s.set(false));
    }
}

/// `deserialize_with` for the optional times inside `data`: as chrono reads
/// them, except on the quick path, where only [`strict_time`]'s form is
/// taken (anything else goes to the full path, whose schema decides).
pub(crate) fn optional_time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    if !STRICT_TIMES.with(Cell::get) {
        return Option::<DateTime<Utc>>::deserialize(d);
    }
    struct Strict(DateTime<Utc>);
    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Strict;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an RFC 3339 time")
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Strict, E> {
                    strict_time(s)
                        .map(Strict)
                        .ok_or_else(|| E::custom("not a plain RFC 3339 time"))
                }
            }
            d.deserialize_str(V)
        }
    }
    Ok(Option::<Strict>::deserialize(d)?.map(|s| s.0))
}

// ------------------------------------------------------------------ shapes

/// The `Serialize` and `Deserialize` of a struct whose derives are declared
/// `#[serde(remote = "Self")]` (so they are inherent functions): serialised
/// as derived, read from an object only ([`MapOnly`]).
macro_rules! object_only_serde {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                <$t>::serialize(self, s)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$t>::deserialize($crate::quick::MapOnly(d))
            }
        }
    };
}
pub(crate) use object_only_serde;

/// Hands a derived struct's visitor to the inner deserializer as a map
/// only. serde's derived `Deserialize` for a struct also reads a JSON array
/// of the fields in order; the schema wants an object, and so does the
/// quick path, which has no schema to say so.
pub(crate) struct MapOnly<D>(pub D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for MapOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

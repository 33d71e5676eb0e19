//! The envelope and the catalog of event types.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::{Error as _, IgnoredAny};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::catalog::*;

/// An envelope field that carries an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdField {
    CustomerId,
    InteractionId,
    CaseId,
    CampaignId,
}

impl IdField {
    /// The field's name in the envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            IdField::CustomerId => "customer_id",
            IdField::InteractionId => "interaction_id",
            IdField::CaseId => "case_id",
            IdField::CampaignId => "campaign_id",
        }
    }
}

/// The family of a type, which names its stream (events.md, "Ordering").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StreamKind {
    Customer,
    Interaction,
    Case,
    Campaign,
}

impl StreamKind {
    /// The envelope field that names the stream.
    pub fn id_field(self) -> IdField {
        match self {
            StreamKind::Customer => IdField::CustomerId,
            StreamKind::Interaction => IdField::InteractionId,
            StreamKind::Case => IdField::CaseId,
            StreamKind::Campaign => IdField::CampaignId,
        }
    }
    /// Short prefix used in stream keys (`customer/c-1`).
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Customer => "customer",
            StreamKind::Interaction => "interaction",
            StreamKind::Case => "case",
            StreamKind::Campaign => "campaign",
        }
    }
}

macro_rules! event_catalog {
    ($( $variant:ident => $name:literal, $data:ty, $stream:ident, [$($req:ident),*] ;)+) => {
        /// Every event type of the catalog.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum EventType { $($variant),+ }

        /// The typed `data` of an event, in the current version of its type.
        #[derive(Debug, Clone, PartialEq)]
        pub enum EventData { $($variant($data)),+ }

        impl EventType {
            /// Every type, in catalog order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),+];

            /// The wire name, e.g. `interaction.started`.
            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $name),+ }
            }

            /// Looks a wire name up.
            pub fn parse(name: &str) -> Option<EventType> {
                match name { $($name => Some(EventType::$variant),)+ _ => None }
            }

            /// The stream family the type belongs to.
            pub fn stream_kind(self) -> StreamKind {
                match self { $(EventType::$variant => StreamKind::$stream),+ }
            }

            /// Envelope id fields this type requires (events.md `[x]`).
            pub fn required_ids(self) -> &'static [IdField] {
                match self { $(EventType::$variant => &[$(IdField::$req),*]),+ }
            }

            /// The JSON Schema of the current version's `data`.
            pub(crate) fn data_schema(self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                match self { $(EventType::$variant => generator.root_schema_for::<$data>()),+ }
            }
        }

        impl EventData {
            /// The type of this data.
            pub fn event_type(&self) -> EventType {
                match self { $(EventData::$variant(_) => EventType::$variant),+ }
            }

            /// Deserialises the `data` of a current-version event of type `t`.
            pub fn from_json(t: EventType, json: &str) -> Result<EventData, serde_json::Error> {
                Ok(match t { $(EventType::$variant => EventData::$variant(serde_json::from_str(json)?)),+ })
            }

            /// Deserialises the data of a current-version event of type `t`
            /// from any deserializer: `&Value` (strings copied) or `Value`
            /// (strings moved).
            pub fn deserialize_as<'de, D: serde::Deserializer<'de>>(t: EventType, d: D) -> Result<EventData, D::Error> {
                Ok(match t { $(EventType::$variant => EventData::$variant(<$data>::deserialize(d)?)),+ })
            }
        }

        impl Serialize for EventData {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self { $(EventData::$variant(d) => d.serialize(s)),+ }
            }
        }
    };
}

event_catalog! {
    CustomerRegistered => "customer.registered", CustomerRegistered, Customer, [CustomerId];
    CustomerProfileUpdated => "customer.profile_updated", CustomerProfileUpdated, Customer, [CustomerId];
    CustomerIdentityAdded => "customer.identity_added", CustomerIdentityAdded, Customer, [CustomerId];
    CustomerIdentityRemoved => "customer.identity_removed", CustomerIdentityRemoved, Customer, [CustomerId];
    CustomerMerged => "customer.merged", CustomerMerge, Customer, [CustomerId];
    CustomerUnmerged => "customer.unmerged", CustomerMerge, Customer, [CustomerId];
    ConsentGranted => "consent.granted", ConsentGranted, Customer, [CustomerId];
    ConsentRevoked => "consent.revoked", ConsentRevoked, Customer, [CustomerId];
    InteractionStarted => "interaction.started", InteractionStarted, Interaction, [InteractionId];
    InteractionMessage => "interaction.message", InteractionMessage, Interaction, [InteractionId];
    InteractionAssigned => "interaction.assigned", InteractionAssigned, Interaction, [InteractionId];
    InteractionTransferred => "interaction.transferred", InteractionTransferred, Interaction, [InteractionId];
    InteractionEnded => "interaction.ended", InteractionEnded, Interaction, [InteractionId];
    InteractionRecorded => "interaction.recorded", InteractionRecorded, Interaction, [InteractionId];
    InteractionIdentified => "interaction.identified", InteractionIdentified, Interaction, [InteractionId, CustomerId];
    CaseOpened => "case.opened", CaseOpened, Case, [CaseId];
    CaseInteractionLinked => "case.interaction_linked", Empty, Case, [CaseId, InteractionId];
    CaseCustomerIdentified => "case.customer_identified", Empty, Case, [CaseId, CustomerId];
    CaseCategorized => "case.categorized", CaseCategorized, Case, [CaseId];
    CaseAssigned => "case.assigned", CaseAssigned, Case, [CaseId];
    CaseEscalated => "case.escalated", CaseEscalated, Case, [CaseId];
    CaseNoteAdded => "case.note_added", CaseNoteAdded, Case, [CaseId];
    CaseResponded => "case.responded", CaseResponded, Case, [CaseId];
    CaseResolved => "case.resolved", CaseResolved, Case, [CaseId];
    CaseReopened => "case.reopened", Reason, Case, [CaseId];
    CaseClosed => "case.closed", Empty, Case, [CaseId];
    CaseVoided => "case.voided", CaseVoided, Case, [CaseId];
    CampaignCreated => "campaign.created", CampaignCreated, Campaign, [CampaignId];
    CampaignContactAdded => "campaign.contact_added", CampaignContactAdded, Campaign, [CampaignId, CustomerId];
    CampaignContactAssigned => "campaign.contact_assigned", Empty, Campaign, [CampaignId, CustomerId];
    CampaignAttemptMade => "campaign.attempt_made", CampaignAttemptMade, Campaign, [CampaignId, CustomerId];
    CampaignContactOutcome => "campaign.contact_outcome", CampaignContactOutcome, Campaign, [CampaignId, CustomerId];
    CampaignPaused => "campaign.paused", Reason, Campaign, [CampaignId];
    CampaignResumed => "campaign.resumed", Reason, Campaign, [CampaignId];
    CampaignCompleted => "campaign.completed", Reason, Campaign, [CampaignId];
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EventType {
    /// The versions of this type's `data` that ingest accepts. Older ones
    /// are upcast to the newest when read (events.md, "Versions").
    pub fn versions(self) -> &'static [u32] {
        match self {
            EventType::InteractionEnded => &[1, 2],
            _ => &[1],
        }
    }
    /// The newest version.
    pub fn current_version(self) -> u32 {
        *self.versions().last().expect("every type has a version")
    }
}

/// A validated event, as the ledger stores and serves it.
///
/// Identities are normalised and `occurred_at` is held in UTC. The ledger
/// sets `recorded_at` when it appends; publishers never send it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    /// The version the event was published as. `data` is always in the
    /// current version of the type (older versions are upcast, see
    /// [`crate::upcast`]).
    pub version: u32,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: Option<DateTime<Utc>>,
    pub source: String,
    pub customer_id: Option<String>,
    pub interaction_id: Option<String>,
    pub case_id: Option<String>,
    pub campaign_id: Option<String>,
    pub agent_id: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// The data, in the current version of the type.
    pub data: EventData,
    /// For an event published in an older version: its `data` as published,
    /// which is what is stored and served (stored events are never
    /// rewritten). `None` for the current version.
    pub published_data: Option<Value>,
}

impl Event {
    /// The type of the event.
    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }

    /// The value of an envelope id field.
    pub fn id(&self, field: IdField) -> Option<&str> {
        match field {
            IdField::CustomerId => self.customer_id.as_deref(),
            IdField::InteractionId => self.interaction_id.as_deref(),
            IdField::CaseId => self.case_id.as_deref(),
            IdField::CampaignId => self.campaign_id.as_deref(),
        }
    }

    /// The stream the event belongs to: its family and the id that names it.
    pub fn stream(&self) -> (StreamKind, &str) {
        let kind = self.event_type().stream_kind();
        (kind, self.id(kind.id_field()).unwrap_or(""))
    }

    /// The stream as one key, `family/id` (the Kafka message key).
    pub fn stream_key(&self) -> String {
        let (kind, id) = self.stream();
        format!("{}/{}", kind.as_str(), id)
    }

    /// The canonical JSON of the event: fixed field order, UTC times,
    /// normalised identities. `recorded_at` is included when set.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an Event always serialises")
    }

    /// A digest of the event's content as published (everything but
    /// `recorded_at`): equal for a harmless duplicate, different for a
    /// conflicting re-use of an `event_id`.
    pub fn content_hash(&self) -> [u8; 32] {
        let mut unrecorded = self.clone();
        unrecorded.recorded_at = None;
        *blake3::hash(unrecorded.to_json().as_bytes()).as_bytes()
    }

    /// [`Event::to_json`] and [`Event::content_hash`] in one serialisation
    /// (what publish stores): the entries before and after `recorded_at` are
    /// written once, hashed without it, and joined around it. Byte for byte
    /// the same as the two calls.
    pub fn encode(&self) -> (Vec<u8>, [u8; 32]) {
        fn entry<T: Serialize + ?Sized>(out: &mut Vec<u8>, key: &str, value: &T) {
            out.push(if out.is_empty() { b'{' } else { b',' });
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            serde_json::to_writer(&mut *out, value).expect("an Event always serialises");
        }
        let mut out = Vec::with_capacity(1024);
        entry(&mut out, "event_id", &self.event_id);
        entry(&mut out, "type", self.event_type().as_str());
        entry(&mut out, "version", &self.version);
        entry(&mut out, "occurred_at", &format_time(&self.occurred_at));
        let split = out.len();
        entry(&mut out, "source", &self.source);
        for (k, v) in [
            ("customer_id", &self.customer_id),
            ("interaction_id", &self.interaction_id),
            ("case_id", &self.case_id),
            ("campaign_id", &self.campaign_id),
            ("agent_id", &self.agent_id),
            ("correlation_id", &self.correlation_id),
            ("causation_id", &self.causation_id),
        ] {
            if let Some(v) = v {
                entry(&mut out, k, v);
            }
        }
        match &self.published_data {
            Some(d) => entry(&mut out, "data", d),
            None => entry(&mut out, "data", &self.data),
        }
        out.push(b'}');
        let hash = *blake3::hash(&out).as_bytes();
        if let Some(r) = &self.recorded_at {
            let mut recorded = b",\"recorded_at\":".to_vec();
            serde_json::to_writer(&mut recorded, &format_time(r)).expect("a time serialises");
            out.splice(split..split, recorded);
        }
        (out, hash)
    }

    /// Parses an event that the ledger stored (trusted: it was validated at
    /// ingest). Use [`crate::Validator`] for anything a publisher sent.
    pub fn from_stored_json(json: &str) -> Result<Event, serde_json::Error> {
        serde_json::from_str(json)
    }
}

/// RFC 3339 in UTC with `Z`, with sub-second digits only when present.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("event_id", &self.event_id)?;
        m.serialize_entry("type", self.event_type().as_str())?;
        m.serialize_entry("version", &self.version)?;
        m.serialize_entry("occurred_at", &format_time(&self.occurred_at))?;
        if let Some(r) = &self.recorded_at {
            m.serialize_entry("recorded_at", &format_time(r))?;
        }
        m.serialize_entry("source", &self.source)?;
        for (k, v) in [
            ("customer_id", &self.customer_id),
            ("interaction_id", &self.interaction_id),
            ("case_id", &self.case_id),
            ("campaign_id", &self.campaign_id),
            ("agent_id", &self.agent_id),
            ("correlation_id", &self.correlation_id),
            ("causation_id", &self.causation_id),
        ] {
            if let Some(v) = v {
                m.serialize_entry(k, v)?;
            }
        }
        match &self.published_data {
            Some(d) => m.serialize_entry("data", d)?,
            None => m.serialize_entry("data", &self.data)?,
        }
        m.end()
    }
}

/// The envelope as stored, generic over how `data` is held.
#[derive(Deserialize)]
struct Stored<D> {
    event_id: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default = "one")]
    version: u32,
    occurred_at: DateTime<Utc>,
    #[serde(default)]
    recorded_at: Option<DateTime<Utc>>,
    source: String,
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    interaction_id: Option<String>,
    #[serde(default)]
    case_id: Option<String>,
    #[serde(default)]
    campaign_id: Option<String>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    causation_id: Option<String>,
    data: D,
}

impl<D> Stored<D> {
    fn into_event(
        self,
        parse: impl FnOnce(EventType, u32, &D) -> Result<EventData, String>,
        keep: impl FnOnce(D) -> Result<Value, String>,
    ) -> Result<Event, String> {
        let t = EventType::parse(&self.event_type)
            .ok_or_else(|| format!("unknown event type {:?}", self.event_type))?;
        let data = parse(t, self.version, &self.data)?;
        let published_data = if self.version == t.current_version() {
            None
        } else {
            Some(keep(self.data)?)
        };
        Ok(Event {
            event_id: self.event_id,
            version: self.version,
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            source: self.source,
            customer_id: self.customer_id,
            interaction_id: self.interaction_id,
            case_id: self.case_id,
            campaign_id: self.campaign_id,
            agent_id: self.agent_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            data,
            published_data,
        })
    }
}

impl Event {
    /// Builds an event from a parsed value whose envelope is known to be
    /// well-formed (validation uses this after the schema check).
    pub(crate) fn from_value(value: Value) -> Result<Event, String> {
        let Value::Object(mut map) = value else {
            return Err("an event must be a JSON object".into());
        };
        // `data` is taken out before the envelope is read: a `Value` field
        // deserialised from a `Value` is rebuilt map by map, which cost more
        // than reading the rest of the envelope.
        let data = map.remove("data").ok_or("missing field `data`")?;
        let envelope: Stored<Option<IgnoredAny>> =
            Stored::deserialize(map).map_err(|e| e.to_string())?;
        let t = EventType::parse(&envelope.event_type)
            .ok_or_else(|| format!("unknown event type {:?}", envelope.event_type))?;
        if envelope.version == t.current_version() {
            // The usual case: `data` is not kept as published, so it is
            // taken apart rather than copied.
            let typed = crate::upcast::data_from_owned_value(t, envelope.version, data)?;
            return envelope.into_event(|_, _, _| Ok(typed), |_| Ok(Value::Null));
        }
        // An older version: upcast, and keep `data` as published.
        let upcast = crate::upcast::data_from_value(t, envelope.version, &data)?;
        envelope.into_event(|_, _, _| Ok(upcast), |_| Ok(data))
    }
}

fn one() -> u32 {
    1
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored: Stored<Box<RawValue>> = Stored::deserialize(d)?;
        stored
            .into_event(
                |t, v, raw| crate::upcast::data_from_json(t, v, raw.get()),
                |raw| serde_json::from_str(raw.get()).map_err(|e| e.to_string()),
            )
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_is_to_json_and_content_hash_in_one() {
        let texts = [
            r#"{"event_id":"e-\"1\"\u00e9","type":"interaction.ended","version":1,"occurred_at":"2026-11-20T09:30:00.250+01:00","source":"pbx","interaction_id":"i-1","agent_id":"a/1","data":{"outcome":"completed","talk_seconds":125.5,"handle_seconds":180,"x":{"y":[1,2.5,"z"]}}}"#,
            r#"{"event_id":"e-2","type":"customer.registered","occurred_at":"2026-11-20T09:30:00Z","source":"crm","customer_id":"c-1","correlation_id":"k","causation_id":"q","data":{"name":"Ana L\u00f3pez","identities":[{"kind":"email","value":"a@b.co"}]}}"#,
            r#"{"event_id":"e-3","type":"case.closed","occurred_at":"2026-11-20T09:30:00Z","source":"crm","case_id":"k-1","data":{}}"#,
        ];
        for t in texts {
            let mut e = Event::from_stored_json(t).expect(t);
            for recorded in [None, Some(Utc::now())] {
                e.recorded_at = recorded;
                let (json, hash) = e.encode();
                assert_eq!(String::from_utf8(json).unwrap(), e.to_json());
                assert_eq!(hash, e.content_hash());
            }
        }
    }
}
